//! RTP port pool: even ports (RTP on even, RTCP on the odd one above, by
//! convention), handed out round robin so that a freed port is not reused
//! at once (late packets of the old call must not reach a new one).

use std::collections::VecDeque;

use super::error::MediaError;

/// Even UDP ports of `min..=max` for RTP.
#[derive(Debug, Clone)]
pub struct PortPool {
    min: u16,
    /// Free ports, oldest-freed first.
    free: VecDeque<u16>,
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
        let free: VecDeque<u16> = (first..=max).step_by(2).collect();
        let in_use = vec![false; free.len()];
        Ok(PortPool {
            min: first,
            free,
            in_use,
        })
    }

    /// Takes the free port that has been free the longest.
    pub fn allocate(&mut self) -> Option<u16> {
        let port = self.free.pop_front()?;
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
                self.free.push_back(port);
                true
            }
            _ => false,
        }
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.free.len()
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
    fn even_ports_round_robin() {
        let mut p = PortPool::new(20001, 20009).unwrap();
        assert_eq!(p.capacity(), 4);
        assert_eq!(p.available(), 4);
        let a = p.allocate().unwrap();
        assert_eq!(a, 20002);
        assert!(p.release(a));
        // The freed port goes to the back of the queue.
        let got: Vec<u16> = (0..4).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(got, vec![20004, 20006, 20008, 20002]);
        assert_eq!(p.allocate(), None);
        assert_eq!(p.available(), 0);
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
