//! RTP port pool: even ports (RTP on even, RTCP on the odd one above, by
//! convention), picked at random so that a call's port cannot be guessed
//! from the previous one's. A freed port first waits in a quarantine queue
//! and only goes back among the free ones after half the pool's size of
//! other ports were freed after it (late packets of the old call must not
//! reach a new one).

use std::collections::VecDeque;

use rand::Rng;

use super::error::MediaError;

/// Even UDP ports of `min..=max` for RTP.
#[derive(Debug, Clone)]
pub struct PortPool {
    min: u16,
    /// Free ports, picked from at random.
    free: Vec<u16>,
    /// Freed ports not yet given out again, oldest-freed first.
    cooling: VecDeque<u16>,
    /// How many freed ports wait before the oldest is free again.
    quarantine: usize,
    /// In-use flag per even port, indexed by `(port - min) / 2`.
    in_use: Vec<bool>,
}

impl PortPool {
    /// A pool of the even ports in `min..=max` (port 0 excluded).
    pub fn new(min: u16, max: u16) -> Result<Self, MediaError> {
        let low = min.max(2);
        let first = match low.checked_add(low % 2) {
            Some(p) if p <= max => p,
            _ => return Err(MediaError::EmptyPortRange { min, max }),
        };
        let free: Vec<u16> = (first..=max).step_by(2).collect();
        let in_use = vec![false; free.len()];
        Ok(PortPool {
            min: first,
            quarantine: free.len() / 2,
            free,
            cooling: VecDeque::new(),
            in_use,
        })
    }

    /// Takes a free port at random (the thread's RNG).
    pub fn allocate(&mut self) -> Option<u16> {
        self.allocate_with(&mut rand::thread_rng())
    }

    /// Takes a free port picked by `rng`; when none is free, the one that
    /// has been quarantined the longest.
    pub fn allocate_with(&mut self, rng: &mut impl Rng) -> Option<u16> {
        let port = if self.free.is_empty() {
            self.cooling.pop_front()?
        } else {
            let i = rng.gen_range(0..self.free.len());
            self.free.swap_remove(i)
        };
        if let Some(flag) = self.index(port).and_then(|i| self.in_use.get_mut(i)) {
            *flag = true;
        }
        Some(port)
    }

    /// Gives a port back; `false` if it is not an allocated port of this pool.
    pub fn release(&mut self, port: u16) -> bool {
        match self.index(port).and_then(|i| self.in_use.get_mut(i)) {
            Some(flag) if *flag => {
                *flag = false;
                self.cooling.push_back(port);
                while self.cooling.len() > self.quarantine {
                    match self.cooling.pop_front() {
                        Some(p) => self.free.push(p),
                        None => break,
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.free.len() + self.cooling.len()
    }

    /// Ports in the pool.
    pub fn capacity(&self) -> usize {
        self.in_use.len()
    }

    fn index(&self, port: u16) -> Option<usize> {
        if port < self.min || !(port - self.min).is_multiple_of(2) {
            return None;
        }
        Some(usize::from((port - self.min) / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_at_random_and_a_freed_one_not_at_once() {
        let mut p = PortPool::new(20001, 20009).unwrap();
        assert_eq!(p.capacity(), 4);
        assert_eq!(p.available(), 4);
        let a = p.allocate().unwrap();
        assert!([20002, 20004, 20006, 20008].contains(&a));
        assert!(p.release(a));
        assert_eq!(p.available(), 4);
        // The freed port comes back only when nothing else is free.
        let got: Vec<u16> = (0..4).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(got[3], a, "{got:?}");
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![20002, 20004, 20006, 20008]);
        assert_eq!(p.allocate(), None);
        assert_eq!(p.available(), 0);
    }

    #[test]
    fn ports_are_not_handed_out_in_sequence() {
        let mut p = PortPool::new(10000, 19998).unwrap();
        let got: Vec<u16> = (0..50).map(|_| p.allocate().unwrap()).collect();
        let ascending = got.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(ascending < 5, "{got:?}");
        // A port freed now is not among the next allocations.
        let freed = got[0];
        assert!(p.release(freed));
        for _ in 0..1000 {
            let q = p.allocate().unwrap();
            assert_ne!(q, freed);
            assert!(p.release(q));
        }
    }

    #[test]
    fn release_checks() {
        let mut p = PortPool::new(20000, 20010).unwrap();
        assert!(!p.release(20000), "not allocated");
        let a = p.allocate().unwrap();
        assert!(!p.release(a + 1), "odd");
        assert!(!p.release(30000), "outside");
        assert!(!p.release(10), "below");
        assert!(p.release(a));
        assert!(!p.release(a), "double release");
        assert_eq!(p.available(), 6);
    }

    #[test]
    fn bad_ranges() {
        assert!(PortPool::new(20001, 20001).is_err());
        assert!(PortPool::new(30000, 20000).is_err());
        assert!(PortPool::new(0, 1).is_err());
        assert_eq!(PortPool::new(0, 4).unwrap().capacity(), 2);
        assert_eq!(PortPool::new(65534, 65535).unwrap().capacity(), 1);
        assert!(PortPool::new(65535, 65535).is_err());
    }
}
