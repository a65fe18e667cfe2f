//! Web sessions: random 256-bit ids kept in this process's memory, each
//! with its mailbox, its CSRF token and its last use. A session unused for
//! `ext.web_session_seconds` ends; the map is bounded (the least recently
//! used session makes room) and swept of expired ones.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::store::MailboxId;

/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 10_000;
/// Expired sessions are swept at most this often (and when the map is full).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A random 256-bit value as 64 hex digits.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex(&b)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The mailbox it acts for.
    pub mailbox: MailboxId,
    /// The token every form of the session carries.
    pub csrf: String,
    last: Instant,
}

/// The sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    inner: Mutex<Inner>,
    max: usize,
}

#[derive(Debug)]
struct Inner {
    map: HashMap<String, Session>,
    swept: Instant,
}

impl Sessions {
    /// At most `max` sessions.
    pub fn new(max: usize) -> Self {
        Sessions {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                swept: Instant::now(),
            }),
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session for `mailbox`; returns its id.
    pub fn create(&self, mailbox: MailboxId, now: Instant, idle: Duration) -> String {
        let id = random_token();
        let mut inner = self.lock();
        if inner.map.len() >= self.max {
            sweep(&mut inner, now, idle);
        }
        while inner.map.len() >= self.max {
            let oldest = inner
                .map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    inner.map.remove(&k);
                }
                None => break,
            }
        }
        inner.map.insert(
            id.clone(),
            Session {
                mailbox,
                csrf: random_token(),
                last: now,
            },
        );
        id
    }

    /// The session `id` if it exists and was used within `idle`; its last
    /// use becomes `now`. An expired one is removed.
    pub fn touch(&self, id: &str, now: Instant, idle: Duration) -> Option<Session> {
        let mut inner = self.lock();
        if now.saturating_duration_since(inner.swept) >= SWEEP_EVERY {
            sweep(&mut inner, now, idle);
        }
        let s = inner.map.get_mut(id)?;
        if now.saturating_duration_since(s.last) >= idle {
            inner.map.remove(id);
            return None;
        }
        s.last = now;
        Some(s.clone())
    }

    /// Ends the session `id`.
    pub fn remove(&self, id: &str) {
        self.lock().map.remove(id);
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// No session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn sweep(inner: &mut Inner, now: Instant, idle: Duration) {
    inner
        .map
        .retain(|_, s| now.saturating_duration_since(s.last) < idle);
    inner.swept = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(u: &str) -> MailboxId {
        MailboxId::new(u, "test.example").expect("valid")
    }

    #[test]
    fn a_session_expires_after_the_idle_time_and_use_extends_it() {
        let s = Sessions::new(10);
        let idle = Duration::from_secs(1800);
        let t0 = Instant::now();
        let id = s.create(mb("1001"), t0, idle);
        assert_eq!(id.len(), 64);
        let got = s.touch(&id, t0 + Duration::from_secs(1700), idle);
        assert_eq!(got.map(|g| g.mailbox), Some(mb("1001")));
        // Used at 1700 s: alive until 3500 s.
        assert!(s.touch(&id, t0 + Duration::from_secs(3400), idle).is_some());
        assert!(s.touch(&id, t0 + Duration::from_secs(5300), idle).is_none());
        assert!(s.is_empty(), "the expired session is gone");
        assert!(s.touch("nope", t0, idle).is_none());
    }

    #[test]
    fn ids_and_tokens_are_random_and_distinct() {
        let s = Sessions::new(10);
        let now = Instant::now();
        let idle = Duration::from_secs(60);
        let a = s.create(mb("1001"), now, idle);
        let b = s.create(mb("1001"), now, idle);
        assert_ne!(a, b);
        let (sa, sb) = (s.touch(&a, now, idle), s.touch(&b, now, idle));
        let (sa, sb) = (sa.expect("a"), sb.expect("b"));
        assert_ne!(sa.csrf, sb.csrf);
        assert_ne!(sa.csrf, a);
        s.remove(&a);
        assert!(s.touch(&a, now, idle).is_none());
    }

    #[test]
    fn the_map_is_bounded_and_the_least_recently_used_goes() {
        let s = Sessions::new(3);
        let idle = Duration::from_secs(600);
        let t0 = Instant::now();
        let ids: Vec<String> = (0..3)
            .map(|i| s.create(mb("1001"), t0 + Duration::from_secs(i), idle))
            .collect();
        // The first is used again: the second is now the oldest.
        assert!(s
            .touch(&ids[0], t0 + Duration::from_secs(10), idle)
            .is_some());
        let d = s.create(mb("1002"), t0 + Duration::from_secs(11), idle);
        assert_eq!(s.len(), 3);
        let now = t0 + Duration::from_secs(12);
        assert!(s.touch(&ids[1], now, idle).is_none());
        assert!(s.touch(&ids[0], now, idle).is_some());
        assert!(s.touch(&d, now, idle).is_some());
    }

    #[test]
    fn expired_sessions_are_swept_before_evicting_live_ones() {
        let s = Sessions::new(2);
        let idle = Duration::from_secs(60);
        let t0 = Instant::now();
        let old = s.create(mb("1001"), t0, idle);
        let live = s.create(mb("1002"), t0 + Duration::from_secs(100), idle);
        let _new = s.create(mb("1003"), t0 + Duration::from_secs(120), idle);
        let now = t0 + Duration::from_secs(121);
        assert!(s.touch(&old, now, idle).is_none());
        assert!(s.touch(&live, now, idle).is_some(), "the live one stays");
    }
}
