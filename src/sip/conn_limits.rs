//! Limits of SIP over TCP that keep one client from taking the server:
//! how many connections a source address and all sources together may hold
//! open ([`ConnLimits`]), and how long a connection may sit idle or take to
//! deliver one message ([`ConnClock`]). Pure: the shell asks before it
//! accepts and passes `now` in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The unit a per-source limit counts: an IPv4 address, or the /64 prefix of
/// an IPv6 address (one subscriber usually holds a whole /64, so counting
/// single IPv6 addresses would limit nothing). IPv4-mapped IPv6 addresses
/// count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// An IPv4 address.
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl From<IpAddr> for SourceKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(u32::from(v4)),
                None => SourceKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// All sources together hold the overall limit.
    #[error("{limit} SIP/TCP connections are open (the overall limit)")]
    Total {
        /// `tcp_max_connections`.
        limit: u32,
    },
    /// This source holds its own limit.
    #[error("this source holds {limit} SIP/TCP connections (the per-address limit)")]
    PerSource {
        /// `tcp_max_connections_per_address`.
        limit: u32,
    },
}

/// Counts open connections per source and overall; [`ConnLimits::admit`]
/// before accepting, [`ConnLimits::release`] once closed.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: u32,
    max_per_source: u32,
    total: u32,
    /// Only sources with at least one open connection are kept.
    per_source: HashMap<SourceKey, u32>,
}

impl ConnLimits {
    /// At most `max_total` connections, `max_per_source` from one source
    /// (both at least 1).
    pub fn new(max_total: u32, max_per_source: u32) -> Self {
        ConnLimits {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            total: 0,
            per_source: HashMap::new(),
        }
    }

    /// Count a new connection from `ip`, or say why it must be refused (then
    /// nothing is counted).
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        let key = SourceKey::from(ip);
        let held = self.per_source.get(&key).copied().unwrap_or(0);
        if held >= self.max_per_source {
            return Err(Refusal::PerSource {
                limit: self.max_per_source,
            });
        }
        if self.total >= self.max_total {
            return Err(Refusal::Total {
                limit: self.max_total,
            });
        }
        self.per_source.insert(key, held + 1);
        self.total += 1;
        Ok(())
    }

    /// A connection admitted from `ip` has closed.
    pub fn release(&mut self, ip: IpAddr) {
        let key = SourceKey::from(ip);
        if let Some(held) = self.per_source.get_mut(&key) {
            *held -= 1;
            if *held == 0 {
                self.per_source.remove(&key);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Connections open overall.
    #[cfg(test)]
    pub fn open(&self) -> u32 {
        self.total
    }

    /// Connections open from the source of `ip`.
    #[cfg(test)]
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        self.per_source
            .get(&SourceKey::from(ip))
            .copied()
            .unwrap_or(0)
    }

    /// Sources holding at least one connection.
    #[cfg(test)]
    pub fn sources(&self) -> usize {
        self.per_source.len()
    }
}

/// Why a connection's time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No message or keep-alive for the idle timeout.
    Idle,
    /// A message begun was not complete within the message timeout.
    UnfinishedMessage,
}

/// The deadline of one connection: between messages it may stay idle for
/// `idle` after its last complete message or keep-alive; once the first
/// byte of a message is in, the whole message must arrive within `message`,
/// however the bytes trickle in (a byte does not restart the clock).
#[derive(Debug, Clone)]
pub struct ConnClock {
    idle: Duration,
    message: Duration,
    last_complete: Instant,
    /// When the first byte of the unfinished message came in.
    message_since: Option<Instant>,
}

impl ConnClock {
    /// A connection opened at `now`.
    pub fn new(now: Instant, idle: Duration, message: Duration) -> Self {
        ConnClock {
            idle,
            message,
            last_complete: now,
            message_since: None,
        }
    }

    /// Bytes were read at `now`: `completed` when at least one message or
    /// keep-alive was cut from them, `pending` when bytes of an unfinished
    /// message remain buffered afterwards.
    pub fn on_read(&mut self, now: Instant, completed: bool, pending: bool) {
        if completed {
            self.last_complete = now;
            // What remains (if anything) began in this read.
            self.message_since = pending.then_some(now);
        } else if pending {
            self.message_since.get_or_insert(now);
        } else {
            // Only separators (CR/LF) so far: not a message yet.
            self.message_since = None;
        }
    }

    /// When the connection is to be closed unless more happens.
    pub fn deadline(&self) -> Instant {
        match self.message_since {
            Some(since) => since + self.message,
            None => self.last_complete + self.idle,
        }
    }

    /// Why the connection is closed at `now`, if its time is up.
    pub fn expired(&self, now: Instant) -> Option<Expiry> {
        if now < self.deadline() {
            return None;
        }
        Some(match self.message_since {
            Some(_) => Expiry::UnfinishedMessage,
            None => Expiry::Idle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_is_refused_past_its_limit_while_others_are_admitted() {
        let mut l = ConnLimits::new(10, 2);
        assert_eq!(l.admit(ip("192.0.2.1")), Ok(()));
        assert_eq!(l.admit(ip("192.0.2.1")), Ok(()));
        assert_eq!(
            l.admit(ip("192.0.2.1")),
            Err(Refusal::PerSource { limit: 2 })
        );
        assert_eq!(l.admit(ip("192.0.2.2")), Ok(()));
        assert_eq!((l.open(), l.open_from(ip("192.0.2.1"))), (3, 2));
        l.release(ip("192.0.2.1"));
        assert_eq!(l.admit(ip("192.0.2.1")), Ok(()));
    }

    #[test]
    fn the_overall_limit_holds_across_sources_and_frees_on_release() {
        let mut l = ConnLimits::new(3, 2);
        for a in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            assert_eq!(l.admit(ip(a)), Ok(()));
        }
        assert_eq!(l.admit(ip("192.0.2.4")), Err(Refusal::Total { limit: 3 }));
        l.release(ip("192.0.2.2"));
        assert_eq!(l.admit(ip("192.0.2.4")), Ok(()));
        assert_eq!(l.open(), 3);
    }

    #[test]
    fn release_forgets_empty_sources_and_ignores_unknown_ones() {
        let mut l = ConnLimits::new(3, 3);
        l.admit(ip("192.0.2.1")).unwrap();
        l.release(ip("192.0.2.1"));
        l.release(ip("192.0.2.1"));
        l.release(ip("192.0.2.9"));
        assert_eq!((l.open(), l.sources()), (0, 0));
    }

    #[test]
    fn ipv6_counts_by_its_64_prefix_and_mapped_ipv4_as_ipv4() {
        let mut l = ConnLimits::new(10, 2);
        l.admit(ip("2001:db8:1:2::1")).unwrap();
        l.admit(ip("2001:db8:1:2:ffff::7")).unwrap();
        assert_eq!(
            l.admit(ip("2001:db8:1:2::99")),
            Err(Refusal::PerSource { limit: 2 })
        );
        assert_eq!(l.admit(ip("2001:db8:1:3::1")), Ok(()));
        l.admit(ip("192.0.2.1")).unwrap();
        l.admit(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(
            l.admit(ip("192.0.2.1")),
            Err(Refusal::PerSource { limit: 2 })
        );
    }

    #[test]
    fn zero_limits_are_taken_as_one() {
        let mut l = ConnLimits::new(0, 0);
        assert_eq!(l.admit(ip("192.0.2.1")), Ok(()));
        assert!(l.admit(ip("192.0.2.2")).is_err());
    }

    const IDLE: Duration = Duration::from_secs(300);
    const MSG: Duration = Duration::from_secs(10);

    #[test]
    fn an_idle_connection_expires_after_the_idle_timeout() {
        let t0 = Instant::now();
        let c = ConnClock::new(t0, IDLE, MSG);
        assert_eq!(c.deadline(), t0 + IDLE);
        assert_eq!(c.expired(t0 + IDLE - Duration::from_millis(1)), None);
        assert_eq!(c.expired(t0 + IDLE), Some(Expiry::Idle));
    }

    #[test]
    fn a_trickled_message_expires_from_its_first_byte() {
        let t0 = Instant::now();
        let mut c = ConnClock::new(t0, IDLE, MSG);
        let first = t0 + Duration::from_secs(5);
        c.on_read(first, false, true);
        // One byte a second keeps coming: the deadline does not move.
        for s in 1..10 {
            c.on_read(first + Duration::from_secs(s), false, true);
            assert_eq!(c.deadline(), first + MSG);
        }
        assert_eq!(c.expired(first + MSG), Some(Expiry::UnfinishedMessage));
    }

    #[test]
    fn a_completed_message_restarts_the_idle_clock() {
        let t0 = Instant::now();
        let mut c = ConnClock::new(t0, IDLE, MSG);
        let t1 = t0 + Duration::from_secs(1);
        c.on_read(t1, false, true);
        let t2 = t0 + Duration::from_secs(3);
        c.on_read(t2, true, false);
        assert_eq!(c.deadline(), t2 + IDLE);
        // The next message begins in the same read as the end of one.
        let t3 = t0 + Duration::from_secs(4);
        c.on_read(t3, true, true);
        assert_eq!(c.deadline(), t3 + MSG);
        // Keep-alive separators alone are no message.
        let mut c = ConnClock::new(t0, IDLE, MSG);
        c.on_read(t1, false, false);
        assert_eq!(c.deadline(), t0 + IDLE);
    }
}
