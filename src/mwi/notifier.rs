//! Unsolicited NOTIFYs to the `ext.mwi_notify` targets (a PBX that lights
//! the lamps itself): one per change and target, retried with a bounded
//! back-off while the target does not answer, the newest counts first.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::store::{Counts, MailboxId};

/// Retry policy: the pause doubles from `first` up to `max`; after
/// `attempts` failed tries in a row the change is given up (logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Pause after the first failure.
    pub first: Duration,
    /// Longest pause.
    pub max: Duration,
    /// Tries before giving up.
    pub attempts: u32,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s ... up to 60 s, 12 tries (each try is itself a
    /// transaction retransmitted for 32 s over UDP): about 12 minutes.
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            attempts: 12,
        }
    }
}

impl Backoff {
    /// The pause after `failures` failures in a row (1 or more).
    pub fn pause(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.first.saturating_mul(1u32 << shift).min(self.max)
    }
}

/// A NOTIFY to send now to target number `target` (its index in
/// `ext.mwi_notify`); report the outcome with [`Unsolicited::on_outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsolicitedSend {
    /// Index of the target.
    pub target: usize,
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its newest counts.
    pub counts: Counts,
}

#[derive(Debug)]
struct Entry {
    /// The newest counts.
    counts: Counts,
    /// A change came after the NOTIFY in flight was made.
    dirty: bool,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

type Key = (usize, MailboxId);

/// The state of every (target, mailbox) with a NOTIFY owed or in flight;
/// an entry is dropped once its newest counts are delivered.
#[derive(Debug)]
pub struct Unsolicited {
    targets: usize,
    backoff: Backoff,
    entries: HashMap<Key, Entry>,
    retries: BTreeSet<(Instant, usize, MailboxId)>,
    ready: VecDeque<Key>,
    given_up: VecDeque<UnsolicitedSend>,
}

impl Unsolicited {
    /// A notifier for `targets` targets.
    pub fn new(targets: usize, backoff: Backoff) -> Self {
        Unsolicited {
            targets,
            backoff,
            entries: HashMap::new(),
            retries: BTreeSet::new(),
            ready: VecDeque::new(),
            given_up: VecDeque::new(),
        }
    }

    /// Whether there is any target.
    #[cfg(test)]
    pub fn has_targets(&self) -> bool {
        self.targets > 0
    }

    /// (target, mailbox) pairs with work left.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    /// `mailbox` changed and now holds `counts`: every target is told.
    pub fn set_counts(&mut self, mailbox: &MailboxId, counts: Counts) {
        for target in 0..self.targets {
            let key = (target, mailbox.clone());
            match self.entries.get_mut(&key) {
                Some(e) => {
                    e.counts = counts;
                    e.dirty = true;
                    if !e.in_flight && e.retry_at.is_none() {
                        self.ready.push_back(key);
                    }
                }
                None => {
                    self.entries.insert(
                        key.clone(),
                        Entry {
                            counts,
                            dirty: true,
                            in_flight: false,
                            failures: 0,
                            retry_at: None,
                        },
                    );
                    self.ready.push_back(key);
                }
            }
        }
    }

    /// The next NOTIFY to send; in flight from here.
    pub fn poll_send(&mut self) -> Option<UnsolicitedSend> {
        while let Some(key) = self.ready.pop_front() {
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.in_flight || e.retry_at.is_some() || !e.dirty {
                continue;
            }
            e.in_flight = true;
            e.dirty = false;
            return Some(UnsolicitedSend {
                target: key.0,
                mailbox: key.1,
                counts: e.counts,
            });
        }
        None
    }

    /// The outcome of a NOTIFY (`true`: a 2xx). On failure the newest
    /// counts are tried again after the back-off, until it gives up.
    pub fn on_outcome(&mut self, now: Instant, target: usize, mailbox: &MailboxId, ok: bool) {
        let key = (target, mailbox.clone());
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.in_flight = false;
        if ok {
            e.failures = 0;
            if e.dirty {
                self.ready.push_back(key);
            } else {
                self.entries.remove(&key);
            }
            return;
        }
        e.failures += 1;
        if e.failures >= self.backoff.attempts {
            let counts = e.counts;
            self.entries.remove(&key);
            self.given_up.push_back(UnsolicitedSend {
                target,
                mailbox: mailbox.clone(),
                counts,
            });
            return;
        }
        // Whatever was in flight is owed again, with the newest counts.
        e.dirty = true;
        let at = now + self.backoff.pause(e.failures);
        e.retry_at = Some(at);
        self.retries.insert((at, target, mailbox.clone()));
    }

    /// Retries that are due by `now` become ready to send.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, target, mailbox)) = self.retries.first().cloned() {
            if at > now {
                break;
            }
            self.retries.remove(&(at, target, mailbox.clone()));
            let key = (target, mailbox);
            if let Some(e) = self.entries.get_mut(&key) {
                if e.retry_at == Some(at) {
                    e.retry_at = None;
                    self.ready.push_back(key);
                }
            }
        }
    }

    /// The next retry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.retries.first().map(|(t, _, _)| *t)
    }

    /// A change given up after the last try (for a log line).
    pub fn poll_given_up(&mut self) -> Option<UnsolicitedSend> {
        self.given_up.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(u: &str) -> MailboxId {
        MailboxId::new(u, "example.com").unwrap()
    }

    fn c(new: usize) -> Counts {
        Counts {
            new,
            ..Counts::default()
        }
    }

    #[test]
    fn every_target_gets_every_change() {
        let mut u = Unsolicited::new(2, Backoff::default());
        u.set_counts(&mb("1001"), c(1));
        let a = u.poll_send().unwrap();
        let b = u.poll_send().unwrap();
        assert_eq!((a.target, b.target), (0, 1));
        assert_eq!(u.poll_send(), None);
        let now = Instant::now();
        u.on_outcome(now, 0, &mb("1001"), true);
        u.on_outcome(now, 1, &mb("1001"), true);
        assert_eq!(u.pending(), 0);
        // The same counts again still make a NOTIFY: it is a change.
        u.set_counts(&mb("1001"), c(1));
        assert!(u.poll_send().is_some());
    }

    #[test]
    fn no_targets_no_work() {
        let mut u = Unsolicited::new(0, Backoff::default());
        assert!(!u.has_targets());
        u.set_counts(&mb("1001"), c(1));
        assert_eq!(u.poll_send(), None);
        assert_eq!(u.pending(), 0);
    }

    #[test]
    fn changes_during_a_notify_are_sent_after_it_with_the_newest_counts() {
        let now = Instant::now();
        let mut u = Unsolicited::new(1, Backoff::default());
        u.set_counts(&mb("1001"), c(1));
        assert_eq!(u.poll_send().unwrap().counts, c(1));
        u.set_counts(&mb("1001"), c(2));
        u.set_counts(&mb("1001"), c(3));
        assert_eq!(u.poll_send(), None, "one in flight per target and mailbox");
        u.on_outcome(now, 0, &mb("1001"), true);
        assert_eq!(u.poll_send().unwrap().counts, c(3));
        assert_eq!(u.poll_send(), None);
        u.on_outcome(now, 0, &mb("1001"), true);
        assert_eq!(u.pending(), 0);
    }

    #[test]
    fn a_silent_target_is_retried_with_back_off_and_the_newest_counts() {
        let t0 = Instant::now();
        let b = Backoff::default();
        let mut u = Unsolicited::new(1, b);
        u.set_counts(&mb("1001"), c(1));
        u.poll_send().unwrap();
        u.on_outcome(t0, 0, &mb("1001"), false);
        assert_eq!(u.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        // A change during the pause waits for it, then goes first.
        u.set_counts(&mb("1001"), c(2));
        assert_eq!(u.poll_send(), None);
        u.handle_timeout(t0 + Duration::from_millis(999));
        assert_eq!(u.poll_send(), None);
        let t1 = t0 + Duration::from_secs(1);
        u.handle_timeout(t1);
        assert_eq!(u.poll_send().unwrap().counts, c(2));
        u.on_outcome(t1, 0, &mb("1001"), false);
        assert_eq!(u.poll_timeout(), Some(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        u.handle_timeout(t2);
        assert_eq!(u.poll_send().unwrap().counts, c(2));
        u.on_outcome(t2, 0, &mb("1001"), true);
        assert_eq!(u.pending(), 0);
        assert_eq!(u.poll_timeout(), None);
    }

    #[test]
    fn back_off_is_bounded_and_gives_up() {
        let b = Backoff::default();
        assert_eq!(b.pause(1), Duration::from_secs(1));
        assert_eq!(b.pause(3), Duration::from_secs(4));
        assert_eq!(b.pause(7), Duration::from_secs(60));
        assert_eq!(b.pause(1000), Duration::from_secs(60));
        let mut u = Unsolicited::new(1, b);
        let mut now = Instant::now();
        u.set_counts(&mb("1001"), c(1));
        for i in 0..b.attempts {
            now = u.poll_timeout().unwrap_or(now);
            u.handle_timeout(now);
            assert!(u.poll_send().is_some(), "try {i}");
            u.on_outcome(now, 0, &mb("1001"), false);
        }
        assert_eq!(u.poll_send(), None);
        assert_eq!(u.pending(), 0);
        assert_eq!(u.poll_timeout(), None);
        assert_eq!(u.poll_given_up().unwrap().counts, c(1));
    }

    #[test]
    fn targets_are_independent() {
        let t0 = Instant::now();
        let mut u = Unsolicited::new(2, Backoff::default());
        u.set_counts(&mb("1001"), c(1));
        u.poll_send().unwrap();
        u.poll_send().unwrap();
        u.on_outcome(t0, 0, &mb("1001"), false);
        u.on_outcome(t0, 1, &mb("1001"), true);
        u.set_counts(&mb("1001"), c(2));
        let s = u.poll_send().unwrap();
        assert_eq!((s.target, s.counts), (1, c(2)));
        assert_eq!(u.poll_send(), None, "target 0 waits for its retry");
    }
}
