//! Fencing: the store refuses writes from an instance that is not (or no
//! longer) the active one of its group.
//!
//! The lease driver updates the fence after every successful renewal; the
//! store asks it before every write. [`Fence::check`] compares the lease's
//! end with the monotonic clock at the moment of the write, so a process
//! that was paused past its lease is refused on its first write after it
//! resumes, before its lease driver has even run. [`Fence::confirm`] also
//! asks the coordination store whether the epoch is still the group's
//! (before a message is committed into a folder).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Backend;

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FenceError {
    /// The instance is not active.
    #[error("this instance is not the active one of its group")]
    NotActive,
    /// The lease of `epoch` ran out.
    #[error("the lease of epoch {0} has run out")]
    Expired(u64),
    /// The group's epoch moved past ours.
    #[error("epoch {ours} is superseded in the coordination store")]
    Superseded {
        /// The writer's epoch.
        ours: u64,
    },
}

/// The writer's right to write, shared by the lease driver and the store.
pub struct Fence {
    base: Instant,
    group: u32,
    /// The epoch held (0: none).
    epoch: AtomicU64,
    /// End of the lease, nanoseconds after `base` (0: not active).
    valid_until_ns: AtomicU64,
    backend: Option<Arc<dyn Backend>>,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence")
            .field("group", &self.group)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Fence {
    /// A fence for `group`, closed until [`Fence::grant`]; `backend`
    /// answers [`Fence::confirm`].
    pub fn new(group: u32, backend: Option<Arc<dyn Backend>>) -> Fence {
        Fence {
            base: Instant::now(),
            group,
            epoch: AtomicU64::new(0),
            valid_until_ns: AtomicU64::new(0),
            backend,
        }
    }

    /// Open (or extend) the fence: `epoch` may write until `valid_until`.
    pub fn grant(&self, epoch: u64, valid_until: Instant) {
        let ns = valid_until
            .saturating_duration_since(self.base)
            .as_nanos()
            .min(u128::from(u64::MAX)) as u64;
        // Order: the epoch first, then the deadline that makes it usable.
        self.epoch.store(epoch, Ordering::SeqCst);
        self.valid_until_ns.store(ns.max(1), Ordering::SeqCst);
    }

    /// Close the fence: no write passes until the next grant.
    pub fn revoke(&self) {
        self.valid_until_ns.store(0, Ordering::SeqCst);
    }

    /// The epoch held, if the fence is open now.
    pub fn check(&self) -> Result<u64, FenceError> {
        self.check_at(Instant::now())
    }

    /// [`Fence::check`] at `now`.
    pub fn check_at(&self, now: Instant) -> Result<u64, FenceError> {
        let until = self.valid_until_ns.load(Ordering::SeqCst);
        let epoch = self.epoch.load(Ordering::SeqCst);
        if until == 0 {
            return Err(FenceError::NotActive);
        }
        let until = self.base + Duration::from_nanos(until);
        if now >= until {
            return Err(FenceError::Expired(epoch));
        }
        Ok(epoch)
    }

    /// [`Fence::check`], then ask the coordination store whether the epoch
    /// is still the group's. A store that cannot answer does not refuse
    /// (the lease's validity already bounds the writer).
    pub fn confirm(&self) -> Result<u64, FenceError> {
        let epoch = self.check()?;
        if let Some(b) = &self.backend {
            if let Ok(false) = b.still_current(self.group, epoch) {
                self.revoke();
                return Err(FenceError::Superseded { ours: epoch });
            }
        }
        Ok(epoch)
    }

    /// The epoch last granted (0: never), whether or not it is still valid.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_until_granted_then_expires() {
        let f = Fence::new(1, None);
        assert_eq!(f.check(), Err(FenceError::NotActive));
        let now = Instant::now();
        f.grant(4, now + Duration::from_secs(2));
        assert_eq!(f.check_at(now), Ok(4));
        assert_eq!(
            f.check_at(now + Duration::from_secs(2)),
            Err(FenceError::Expired(4))
        );
        f.revoke();
        assert_eq!(f.check_at(now), Err(FenceError::NotActive));
    }
}
