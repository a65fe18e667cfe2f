//! The bounded pool of PIN checks: at most `workers` argon2 checks run at
//! once (each holds its work memory, 19 MiB at the recommended cost), at
//! most `queue` more wait for a turn (in arrival order), and a check beyond
//! that is refused at once, before anything is counted against the mailbox.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Checks that run at once when `pin_hash_workers` is 0: two per core, at
/// most this many.
const AUTO_WORKERS_MAX: usize = 16;

/// The pool; shared by every menu call of the process.
#[derive(Debug)]
pub struct PinPool {
    permits: Arc<Semaphore>,
    workers: usize,
    queue: usize,
    waiting: AtomicUsize,
}

/// A turn to run one PIN check; the next waiting call gets it on drop.
pub type PinPermit = OwnedSemaphorePermit;

/// The answer to [`PinPool::enter`].
#[derive(Debug)]
pub enum Entry {
    /// A worker is free: check now.
    Ready(PinPermit),
    /// Wait in the queue ([`Queued::turn`]); dropping it leaves the queue.
    Queued(Queued),
    /// The queue is full: refuse without a check.
    Full,
}

/// A place in the queue.
#[derive(Debug)]
pub struct Queued {
    pool: Arc<PinPool>,
}

impl PinPool {
    /// A pool of `workers` checks at once (0: two per core, at most 16)
    /// and `queue` waiting ones.
    pub fn new(workers: usize, queue: usize) -> Arc<Self> {
        let workers = if workers == 0 {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            (2 * cores).min(AUTO_WORKERS_MAX)
        } else {
            workers
        };
        Arc::new(PinPool {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
            queue,
            waiting: AtomicUsize::new(0),
        })
    }

    /// Checks that may run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Calls waiting for a turn now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Asks for a turn; [`Entry::Full`] when the queue is full.
    pub fn enter(self: &Arc<Self>) -> Entry {
        self.enter_bounded(true)
    }

    /// Asks for a turn, waiting however long the queue is (for a logged-in
    /// caller's PIN change, which an attacker cannot multiply).
    pub fn enter_unbounded(self: &Arc<Self>) -> Entry {
        self.enter_bounded(false)
    }

    fn enter_bounded(self: &Arc<Self>, bounded: bool) -> Entry {
        // Nobody waiting and a worker free: go. With others waiting, take a
        // place behind them (the semaphore hands turns out in order).
        if self.waiting.load(Ordering::Acquire) == 0 {
            if let Ok(p) = self.permits.clone().try_acquire_owned() {
                return Entry::Ready(p);
            }
        }
        let placed = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (!bounded || n < self.queue).then_some(n + 1)
            });
        match placed {
            Ok(_) => Entry::Queued(Queued { pool: self.clone() }),
            Err(_) => Entry::Full,
        }
    }
}

impl Queued {
    /// Waits for the turn; `None` only if the pool is gone.
    pub async fn turn(&self) -> Option<PinPermit> {
        self.pool.permits.clone().acquire_owned().await.ok()
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.pool.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(e: Entry) -> PinPermit {
        match e {
            Entry::Ready(p) => p,
            other => panic!("expected a turn, got {other:?}"),
        }
    }

    fn queued(e: Entry) -> Queued {
        match e {
            Entry::Queued(q) => q,
            other => panic!("expected a queue place, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn workers_then_queue_then_full() {
        let pool = PinPool::new(2, 3);
        let a = ready(pool.enter());
        let _b = ready(pool.enter());
        let q1 = queued(pool.enter());
        let q2 = queued(pool.enter());
        let _q3 = queued(pool.enter());
        assert!(matches!(pool.enter(), Entry::Full));
        assert_eq!(pool.waiting(), 3);
        // A waiting call that hangs up leaves the queue: room for one more.
        drop(q2);
        assert_eq!(pool.waiting(), 2);
        let _q4 = queued(pool.enter());
        assert!(matches!(pool.enter(), Entry::Full));
        // A finished check hands its turn to the first in line.
        drop(a);
        let p1 = q1.turn().await.expect("turn");
        drop(q1);
        assert_eq!(pool.waiting(), 2);
        drop(p1);
    }

    #[tokio::test]
    async fn a_free_worker_does_not_jump_the_queue() {
        let pool = PinPool::new(1, 4);
        let a = ready(pool.enter());
        let q1 = queued(pool.enter());
        let first = tokio::spawn(async move {
            let p = q1.turn().await;
            drop(q1);
            p
        });
        tokio::task::yield_now().await;
        drop(a);
        // The worker just freed belongs to the waiting call, not to a
        // newcomer.
        let p = first.await.expect("task").expect("turn");
        assert!(matches!(pool.enter(), Entry::Queued(_)));
        drop(p);
    }

    #[test]
    fn zero_workers_means_a_few_per_core() {
        let pool = PinPool::new(0, 1);
        assert!((1..=AUTO_WORKERS_MAX).contains(&pool.workers()));
    }

    #[test]
    fn zero_queue_refuses_when_every_worker_is_busy() {
        let pool = PinPool::new(1, 0);
        let _a = ready(pool.enter());
        assert!(matches!(pool.enter(), Entry::Full));
        // A PIN change waits regardless.
        let _q = queued(pool.enter_unbounded());
        assert!(matches!(pool.enter(), Entry::Full));
    }
}
