//! Per-source rate limit of calls to an access number (mailbox login): a
//! token bucket per source address, on time given as an argument.
//!
//! Each address may place `burst` calls at once, then `per_minute` calls a
//! minute. IPv6 sources count per /64 (one subscriber's prefix), IPv4 per
//! address (IPv4-mapped IPv6 as IPv4). At most [`MAX_SOURCES`] addresses are
//! tracked: a full bucket is the same as none and is forgotten first; if
//! the table is still full, a new address is let in untracked (the overall
//! `max_calls` still holds) rather than turned away, so a spoofed flood from
//! many addresses cannot lock everybody out.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::sip::SourceKey;
use std::time::{Duration, Instant};

/// Source addresses tracked at most (a few MB).
pub const MAX_SOURCES: usize = 65_536;

/// How often a full table is scanned for forgettable buckets at most.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// The limit per source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls at once; 0 turns the limit off.
    pub burst: u32,
    /// Calls a minute once the burst is spent (at least 1).
    pub per_minute: u32,
}

/// What to do with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it in.
    Admit,
    /// Over the limit: refuse; one more call is allowed after this long.
    Refuse {
        /// Whole seconds, at least 1 (for `Retry-After`).
        retry_after: Duration,
        /// The first refusal since this address was last let in: log it
        /// (the rest of a flood need not fill the log).
        first: bool,
    },
}

/// One call in bucket units: a minute in nanoseconds, so a rate of
/// `per_minute` calls a minute refills `per_minute` units a nanosecond and
/// the arithmetic stays exact in integers.
const CALL: u128 = 60_000_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// In [`CALL`] units.
    tokens: u128,
    at: Instant,
    /// The last call was refused.
    refusing: bool,
}

/// Token buckets by source address.
#[derive(Debug)]
pub struct SourceLimiter {
    limit: RateLimit,
    capacity: usize,
    buckets: HashMap<SourceKey, Bucket>,
    pruned_at: Option<Instant>,
}

impl SourceLimiter {
    /// A limiter tracking at most [`MAX_SOURCES`] addresses.
    pub fn new(limit: RateLimit) -> Self {
        Self::with_capacity(limit, MAX_SOURCES)
    }

    /// A limiter tracking at most `capacity` addresses.
    pub fn with_capacity(limit: RateLimit, capacity: usize) -> Self {
        SourceLimiter {
            limit,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            pruned_at: None,
        }
    }

    /// A new limit (configuration reload); the buckets stay.
    pub fn set_limit(&mut self, limit: RateLimit) {
        self.limit = limit;
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    fn rate(&self) -> u128 {
        u128::from(self.limit.per_minute.max(1))
    }

    fn full(&self) -> u128 {
        u128::from(self.limit.burst) * CALL
    }

    /// Tokens of `b` at `now`, capped at the burst.
    fn refilled(&self, b: &Bucket, now: Instant) -> u128 {
        let dt = now.saturating_duration_since(b.at).as_nanos();
        b.tokens
            .saturating_add(dt.saturating_mul(self.rate()))
            .min(self.full())
    }

    /// Decides on a call from `ip` at `now` and, if admitted, counts it.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.limit.burst == 0 {
            return Verdict::Admit;
        }
        let key = SourceKey::from(ip);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            self.prune(now);
            if self.buckets.len() >= self.capacity {
                return Verdict::Admit;
            }
        }
        let (current, refusing) = match self.buckets.get(&key) {
            Some(b) => (self.refilled(b, now), b.refusing),
            None => (self.full(), false),
        };
        if current >= CALL {
            self.buckets.insert(
                key,
                Bucket {
                    tokens: current - CALL,
                    at: now,
                    refusing: false,
                },
            );
            return Verdict::Admit;
        }
        self.buckets.insert(
            key,
            Bucket {
                tokens: current,
                at: now,
                refusing: true,
            },
        );
        let nanos = (CALL - current).div_ceil(self.rate());
        let secs = nanos.div_ceil(1_000_000_000).max(1);
        Verdict::Refuse {
            retry_after: Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)),
            first: !refusing,
        }
    }

    /// Forgets the buckets that have filled up again (no different from
    /// an address never seen); at most once per [`PRUNE_EVERY`].
    fn prune(&mut self, now: Instant) {
        if self
            .pruned_at
            .is_some_and(|t| now.saturating_duration_since(t) < PRUNE_EVERY)
        {
            return;
        }
        self.pruned_at = Some(now);
        let full = self.full();
        let buckets = std::mem::take(&mut self.buckets);
        self.buckets = buckets
            .into_iter()
            .filter(|(_, b)| self.refilled(b, now) < full)
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    const LIMIT: RateLimit = RateLimit {
        burst: 10,
        per_minute: 60,
    };

    fn admitted(l: &mut SourceLimiter, from: IpAddr, now: Instant, n: usize) -> usize {
        (0..n)
            .filter(|_| l.check(from, now) == Verdict::Admit)
            .count()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(LIMIT);
        assert_eq!(admitted(&mut l, ip(1), t0, 10), 10);
        assert_eq!(
            l.check(ip(1), t0),
            Verdict::Refuse {
                retry_after: Duration::from_secs(1),
                first: true
            }
        );
        assert_eq!(admitted(&mut l, ip(1), t0, 14), 0);
        assert_eq!(
            l.check(ip(1), t0),
            Verdict::Refuse {
                retry_after: Duration::from_secs(1),
                first: false
            }
        );
        // One call a second after that.
        assert_eq!(
            admitted(&mut l, ip(1), t0 + Duration::from_millis(500), 3),
            0
        );
        assert_eq!(admitted(&mut l, ip(1), t0 + Duration::from_secs(1), 3), 1);
        assert_eq!(admitted(&mut l, ip(1), t0 + Duration::from_secs(4), 5), 3);
        // A full minute of quiet gives the whole burst back, never more.
        assert_eq!(
            admitted(&mut l, ip(1), t0 + Duration::from_secs(600), 30),
            10
        );
    }

    #[test]
    fn one_address_over_the_limit_does_not_stop_another() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(LIMIT);
        assert_eq!(admitted(&mut l, ip(1), t0, 50), 10);
        assert_eq!(admitted(&mut l, ip(2), t0, 1), 1);
    }

    #[test]
    fn retry_after_says_when_the_next_call_goes_in() {
        let t0 = Instant::now();
        let slow = RateLimit {
            burst: 2,
            per_minute: 6,
        };
        let mut l = SourceLimiter::new(slow);
        assert_eq!(admitted(&mut l, ip(1), t0, 2), 2);
        let Verdict::Refuse { retry_after, .. } = l.check(ip(1), t0) else {
            panic!("admitted over the limit");
        };
        assert_eq!(retry_after, Duration::from_secs(10));
        assert_eq!(admitted(&mut l, ip(1), t0 + Duration::from_secs(9), 1), 0);
        assert_eq!(admitted(&mut l, ip(1), t0 + Duration::from_secs(10), 1), 1);
        // Refused again after a call got in: logged again.
        assert!(matches!(
            l.check(ip(1), t0 + Duration::from_secs(10)),
            Verdict::Refuse { first: true, .. }
        ));
    }

    #[test]
    fn zero_burst_turns_it_off() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(RateLimit {
            burst: 0,
            per_minute: 1,
        });
        assert_eq!(admitted(&mut l, ip(1), t0, 1000), 1000);
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::new(LIMIT);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(admitted(&mut l, a, t0, 6), 6);
        assert_eq!(admitted(&mut l, b, t0, 6), 4, "same /64");
        assert_eq!(admitted(&mut l, other, t0, 1), 1);
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert_eq!(admitted(&mut l, ip(7), t0, 10), 10);
        assert_eq!(admitted(&mut l, mapped, t0, 1), 0);
        assert!(Ipv6Addr::LOCALHOST.to_canonical().is_loopback());
    }

    #[test]
    fn memory_is_bounded_and_refilled_buckets_are_forgotten() {
        let t0 = Instant::now();
        let mut l = SourceLimiter::with_capacity(LIMIT, 4);
        for last in 1..=4 {
            assert_eq!(admitted(&mut l, ip(last), t0, 10), 10);
        }
        assert_eq!(l.tracked(), 4);
        // Full of active sources: a newcomer is let in untracked, and the
        // tracked ones stay limited.
        assert_eq!(admitted(&mut l, ip(5), t0, 3), 3);
        assert_eq!(l.tracked(), 4);
        assert_eq!(admitted(&mut l, ip(1), t0, 1), 0);
        // Once their buckets are full again they are forgotten.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(admitted(&mut l, ip(5), later, 20), 10);
        assert_eq!(l.tracked(), 1);
    }
}
