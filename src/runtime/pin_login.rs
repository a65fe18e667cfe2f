//! PIN login with the persistent lockout, one implementation for the
//! phone menu and the web inbox: both count in the same lockout state of
//! the store and hash in the same bounded pool ([`super::menu_driver::Logins`]).

use std::fmt::Display;
use std::time::SystemTime;

use tracing::{debug, info, warn};

use super::pin_pool::{Entry, PinPermit};
use super::Shared;
use crate::store::{FsStore, LoginAttempt, MailboxId};

/// How many wrong PINs lock a mailbox, and for how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lockout {
    /// Wrong PINs in a row that lock.
    pub failures: u32,
    /// Seconds the lock lasts.
    pub seconds: u64,
}

/// A successful login: the mailbox and how its owner wants things said.
#[derive(Debug, Clone)]
pub(crate) struct LoggedIn {
    pub mailbox: MailboxId,
    pub language: Option<String>,
    pub time_zone: Option<crate::config::TimeZone>,
}

/// The answer to [`verify_pin`].
#[derive(Debug)]
pub(crate) enum PinLogin {
    /// The PIN is right; the failures are cleared.
    Ok(LoggedIn),
    /// Wrong PIN (counted).
    Wrong,
    /// No such mailbox, or not a valid mailbox number (counted alike when
    /// valid, on the table of unknown numbers).
    NoSuchMailbox,
    /// Locked: refused without a check.
    Locked { until: SystemTime },
    /// The store failed.
    Failed,
}

/// PIN login with the persistent lockout; the same work and answer whether
/// the mailbox exists or not. The attempt is reserved (counted as a
/// failure) before the PIN is hashed, in one atomic step per mailbox
/// (`FsStore::reserve_login_attempt`, or `reserve_unknown_login_attempt`
/// for a number that does not exist), and only a good PIN clears it:
/// parallel logins get `lockout.failures` checks in all, and once the lock
/// is written a good PIN is refused too. A refused attempt costs no hash
/// in either case. Blocking (argon2, file I/O): run it on a blocking
/// thread holding a turn of the hashing pool.
pub(crate) fn verify_pin(
    store: &FsStore,
    domain: &str,
    user: &str,
    pin: &str,
    lockout: Lockout,
    peer: &dyn Display,
) -> PinLogin {
    let now = SystemTime::now();
    let Ok(id) = MailboxId::new(user, domain) else {
        warn!(peer = %peer, "PIN login failed: invalid mailbox number");
        return PinLogin::NoSuchMailbox;
    };
    let attempt = match store.reserve_login_attempt(&id, now, lockout.failures, lockout.seconds) {
        Ok(a) => a,
        // No such mailbox: the same decision on the table of unknown
        // numbers, so the lock does not tell which mailboxes exist.
        Err(e) if e.is_not_found() => {
            match store.reserve_unknown_login_attempt(&id, now, lockout.failures, lockout.seconds) {
                Ok(a) => a,
                Err(e) => {
                    warn!("login state of {id}: {e}");
                    return PinLogin::Failed;
                }
            }
        }
        Err(e) => {
            warn!("login state of {id}: {e}");
            return PinLogin::Failed;
        }
    };
    if let LoginAttempt::Locked { until } = attempt {
        warn!(mailbox = %id, peer = %peer, "PIN login refused: mailbox locked");
        return PinLogin::Locked { until };
    }
    match store.check_pin(&id, pin) {
        Ok(Some(true)) => {
            if let Err(e) = store.record_login_success(&id) {
                warn!("clearing login failures of {id}: {e}");
            }
            let settings = store.mailbox(&id).ok().flatten().map(|m| m.settings);
            let language = settings.as_ref().and_then(|st| st.language.clone());
            let time_zone = settings
                .as_ref()
                .and_then(|st| st.timezone.as_deref())
                .and_then(crate::config::parse_timezone);
            info!(mailbox = %id, peer = %peer, "PIN login");
            PinLogin::Ok(LoggedIn {
                mailbox: id,
                language,
                time_zone,
            })
        }
        Ok(Some(false)) => {
            warn!(mailbox = %id, peer = %peer, "PIN login failed: wrong PIN");
            locked_now(&id, attempt, lockout);
            PinLogin::Wrong
        }
        Ok(None) => {
            warn!(mailbox = %id, peer = %peer, "PIN login failed: no such mailbox");
            locked_now(&id, attempt, lockout);
            PinLogin::NoSuchMailbox
        }
        Err(e) => {
            warn!("PIN check of {id}: {e}");
            PinLogin::Failed
        }
    }
}

/// Logs the lock a failed last attempt leaves in place.
fn locked_now(id: &MailboxId, attempt: LoginAttempt, lockout: Lockout) {
    if attempt == LoginAttempt::Last {
        warn!(
            mailbox = %id,
            lockout_seconds = lockout.seconds,
            "mailbox locked after failed PIN logins"
        );
        if let Some(n) = crate::notify::installed() {
            n.mailbox_locked(
                id,
                SystemTime::now() + std::time::Duration::from_secs(lockout.seconds),
            );
        }
    }
}

/// What a login that does not wait with a caller on the line gets.
#[derive(Debug)]
pub(crate) enum PoolLogin {
    /// The check ran.
    Done(PinLogin),
    /// The hashing queue is full: nothing was checked or counted.
    Busy,
}

/// [`verify_pin`] in a turn of the process's hashing pool (bounded queue,
/// the same pool as the phone's logins), on a blocking thread.
pub(crate) async fn pooled_login(
    shared: &Shared,
    domain: String,
    user: String,
    pin: String,
    peer: String,
) -> PoolLogin {
    let pool = &shared.logins.pool;
    let permit: PinPermit = match pool.enter() {
        Entry::Ready(p) => p,
        Entry::Full => {
            warn!(
                peer = %peer,
                workers = pool.workers(),
                waiting = pool.waiting(),
                "PIN check refused: the hashing queue is full"
            );
            return PoolLogin::Busy;
        }
        Entry::Queued(q) => {
            debug!(
                waiting = pool.waiting(),
                "PIN check waits for a hashing turn"
            );
            match q.turn().await {
                Some(p) => p,
                None => return PoolLogin::Busy,
            }
        }
    };
    let store = shared.store.clone();
    let lockout = Lockout {
        failures: shared.role.ext.lockout_failures,
        seconds: shared.role.ext.lockout_seconds,
    };
    let result = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        verify_pin(&store, &domain, &user, &pin, lockout, &peer)
    })
    .await;
    match result {
        Ok(r) => PoolLogin::Done(r),
        Err(e) => {
            warn!("PIN check panicked: {e}");
            PoolLogin::Done(PinLogin::Failed)
        }
    }
}

/// Runs `f` (a PIN change: one argon2 hash) on a blocking thread in a turn
/// of the hashing pool, waiting however long the queue is (a logged-in
/// subscriber's change, which nobody can multiply). `None` if the task
/// failed.
pub(crate) async fn pooled<T: Send + 'static>(
    shared: &Shared,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let pool = &shared.logins.pool;
    let permit: PinPermit = match pool.enter_unbounded() {
        Entry::Ready(p) => p,
        Entry::Queued(q) => q.turn().await?,
        Entry::Full => return None,
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|e| warn!("PIN task panicked: {e}"))
    .ok()
}
