//! Mailbox operations shared by the HTTP API and the `vmail mailbox`
//! command: one implementation of each, on top of [`FsStore`].
//!
//! Every function is blocking (file I/O): the API calls them from
//! `spawn_blocking`. Message-waiting notices need nothing here: the store
//! tells its observer of every change of a mailbox's counts (see
//! `FsStore::set_observer`), whoever makes it.

use std::time::SystemTime;

use crate::ivr::new_pin_allowed;
use crate::prompts::{decode_to_8k, SAMPLE_RATE};
use crate::store::{
    rfc3339, Attach, Counts, Folder, FsStore, GreetingKind, LoginState, Mailbox, MailboxId,
    MailboxSettings, MessageMeta, StoreError,
};

/// Largest greeting upload accepted (before decoding).
pub const MAX_GREETING_BYTES: usize = 10 * 1024 * 1024;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PIN breaks the rules of the phone menu.
    #[error(
        "PIN not allowed: 4 to 16 digits, not all the same digit, not a run such as 1234 or 4321"
    )]
    PinNotAllowed,
    /// The upload is not audio vmail can decode.
    #[error("not audio vmail can decode: {0}")]
    NotAudio(String),
    /// The upload is larger than [`MAX_GREETING_BYTES`].
    #[error("greeting upload larger than {MAX_GREETING_BYTES} bytes")]
    TooLarge,
    /// The time zone is not one vmail knows.
    #[error("unknown time zone {0:?}: expected an IANA zone name such as Europe/Moscow, UTC, or an offset such as +03:00")]
    UnknownTimezone(String),
}

/// Refuses a time zone setting that names no zone vmail knows.
fn check_timezone(settings: &MailboxSettings) -> Result<(), OpError> {
    match settings.timezone.as_deref() {
        Some(tz) if crate::config::TimeZone::parse(tz).is_none() => {
            Err(OpError::UnknownTimezone(tz.to_owned()))
        }
        _ => Ok(()),
    }
}

/// Which PIN rule a new PIN must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinRule {
    /// The phone menu's rule (4 to 16 digits, no repeated digit, no run):
    /// the API's.
    Phone,
    /// The store's rule (4 to 20 digits): the operator's command line.
    Store,
}

impl PinRule {
    fn check(self, pin: &str) -> Result<(), OpError> {
        match self {
            PinRule::Phone if !new_pin_allowed(pin) => Err(OpError::PinNotAllowed),
            _ => Ok(()),
        }
    }
}

/// A mailbox with its counts and lockout state.
#[derive(Debug, Clone)]
pub struct MailboxView {
    /// The mailbox.
    pub mailbox: Mailbox,
    /// Its message counts.
    pub counts: Counts,
    /// PIN login failures and lock.
    pub login: LoginState,
}

/// One page of a sorted listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts (pass as `after`), if there is one.
    pub next: Option<String>,
}

/// The items after `after` (exclusive), at most `limit`, of a sorted list.
pub fn page<T>(
    all: Vec<T>,
    key: impl Fn(&T) -> String,
    after: Option<&str>,
    limit: usize,
) -> Page<T> {
    let mut items: Vec<T> = all
        .into_iter()
        .filter(|t| after.is_none_or(|a| key(t).as_str() > a))
        .take(limit.saturating_add(1))
        .collect();
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(&key)
    } else {
        None
    };
    Page { items, next }
}

/// Creates a mailbox; `pin` follows `rule`.
pub fn create(
    store: &FsStore,
    id: &MailboxId,
    settings: MailboxSettings,
    pin: Option<&str>,
    rule: PinRule,
) -> Result<Mailbox, OpError> {
    if let Some(p) = pin {
        rule.check(p)?;
    }
    check_timezone(&settings)?;
    Ok(store.create_mailbox(id, settings, pin)?)
}

/// A mailbox with counts and lockout state (`NotFound` if missing).
pub fn view(store: &FsStore, id: &MailboxId) -> Result<MailboxView, OpError> {
    let mailbox = store
        .mailbox(id)?
        .ok_or(StoreError::NotFound { what: "mailbox" })?;
    Ok(MailboxView {
        mailbox,
        counts: store.counts(id)?,
        login: store.login_state(id)?,
    })
}

/// Mailboxes of `domain` (all domains when `None`), sorted by address.
pub fn list(store: &FsStore, domain: Option<&str>) -> Result<Vec<MailboxId>, OpError> {
    Ok(store.list_mailboxes(domain)?)
}

/// A page of the mailboxes of `domain`, by user, starting after the user
/// `after`.
pub fn list_page(
    store: &FsStore,
    domain: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<MailboxId>, OpError> {
    let all = store.list_mailboxes(Some(domain))?;
    Ok(page(all, |id| id.user().to_owned(), after, limit))
}

/// A change of a mailbox's settings: `None` leaves a setting as it is;
/// `Some(None)` clears it (back to its default).
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub display_name: Option<Option<String>>,
    pub language: Option<Option<String>>,
    pub timezone: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub attach: Option<Option<Attach>>,
    pub delete_after_send: Option<bool>,
    pub max_messages: Option<Option<u32>>,
    pub retention_old_days: Option<Option<u32>>,
    pub operator: Option<Option<String>>,
}

impl SettingsChange {
    /// Sets what the change names in `s`.
    pub fn apply(self, s: &mut MailboxSettings) {
        if let Some(v) = self.display_name {
            s.display_name = v;
        }
        if let Some(v) = self.language {
            s.language = v;
        }
        if let Some(v) = self.timezone {
            s.timezone = v;
        }
        if let Some(v) = self.email {
            s.email = v;
        }
        if let Some(v) = self.attach {
            s.attach = v;
        }
        if let Some(v) = self.delete_after_send {
            s.delete_after_send = v;
        }
        if let Some(v) = self.max_messages {
            s.max_messages = v;
        }
        if let Some(v) = self.retention_old_days {
            s.retention_old_days = v;
        }
        if let Some(v) = self.operator {
            s.operator = v;
        }
    }
}

/// Changes the settings with `change` applied to the current ones.
pub fn update(
    store: &FsStore,
    id: &MailboxId,
    change: impl FnOnce(&mut MailboxSettings),
) -> Result<Mailbox, OpError> {
    let mut settings = store
        .mailbox(id)?
        .ok_or(StoreError::NotFound { what: "mailbox" })?
        .settings;
    let zone_before = settings.timezone.clone();
    change(&mut settings);
    // A zone stored before it was checked is left alone until changed.
    if settings.timezone != zone_before {
        check_timezone(&settings)?;
    }
    Ok(store.update_settings(id, settings)?)
}

/// Removes a mailbox with all it holds.
pub fn remove(store: &FsStore, id: &MailboxId) -> Result<(), OpError> {
    Ok(store.remove_mailbox(id)?)
}

/// Sets the PIN; `pin` follows `rule`.
pub fn set_pin(store: &FsStore, id: &MailboxId, pin: &str, rule: PinRule) -> Result<(), OpError> {
    rule.check(pin)?;
    Ok(store.set_pin(id, pin)?)
}

/// Clears the PIN failures and the lock of a locked-out mailbox.
pub fn unlock(store: &FsStore, id: &MailboxId) -> Result<(), OpError> {
    store.record_login_success(id)?;
    tracing::info!(mailbox = %id, "PIN lockout cleared");
    Ok(())
}

/// A page of the messages of one folder, oldest first, starting after the
/// message id `after`.
pub fn messages(
    store: &FsStore,
    id: &MailboxId,
    folder: Folder,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<MessageMeta>, OpError> {
    let all = store.list_messages(id, folder)?;
    Ok(page(all, |m| m.id.clone(), after, limit))
}

/// One message's metadata (`NotFound` if the mailbox or message is missing).
pub fn message(store: &FsStore, id: &MailboxId, msg: &str) -> Result<MessageMeta, OpError> {
    Ok(store
        .message(id, msg)?
        .ok_or(StoreError::NotFound { what: "message" })?)
}

/// Marks a message heard or unheard and/or moves it to another folder.
pub fn update_message(
    store: &FsStore,
    id: &MailboxId,
    msg: &str,
    heard: Option<bool>,
    folder: Option<Folder>,
) -> Result<MessageMeta, OpError> {
    if let Some(h) = heard {
        let was_heard = store.message(id, msg)?.map(|m| m.heard);
        store.set_heard(id, msg, h)?;
        if h {
            crate::notify::heard_if_new(store, id, msg, was_heard);
        }
    }
    if let Some(f) = folder {
        store.move_message(id, msg, f)?;
    }
    message(store, id, msg)
}

/// Deletes a message. A call playing it keeps its copy (the menu reads the
/// whole audio before it plays).
pub fn delete_message(store: &FsStore, id: &MailboxId, msg: &str) -> Result<(), OpError> {
    Ok(crate::notify::delete_message(store, id, msg)?)
}

/// Copies a message into `to`'s `INBOX` as a new unheard message; returns
/// the new message.
pub fn forward_message(
    store: &FsStore,
    from: &MailboxId,
    msg: &str,
    to: &MailboxId,
) -> Result<MessageMeta, OpError> {
    let new_id = store.copy_message(from, msg, to, &from.to_string())?;
    crate::notify::forwarded(store, to, &new_id);
    message(store, to, &new_id)
}

/// Decodes an uploaded greeting (any format symphonia reads) to the store's
/// 8 kHz mono WAV and stores it, replacing the old one.
pub fn store_greeting(
    store: &FsStore,
    id: &MailboxId,
    kind: GreetingKind,
    bytes: Vec<u8>,
) -> Result<(), OpError> {
    if bytes.len() > MAX_GREETING_BYTES {
        return Err(OpError::TooLarge);
    }
    store
        .mailbox(id)?
        .ok_or(StoreError::NotFound { what: "mailbox" })?;
    let pcm = decode_to_8k(bytes, None).map_err(|e| OpError::NotAudio(e.to_string()))?;
    if pcm.is_empty() {
        return Err(OpError::NotAudio("no audio samples".into()));
    }
    Ok(store.store_greeting(id, kind, &pcm, SAMPLE_RATE)?)
}

/// Deletes a greeting (`NotFound` if there is none).
pub fn delete_greeting(store: &FsStore, id: &MailboxId, kind: GreetingKind) -> Result<(), OpError> {
    Ok(store.delete_greeting(id, kind)?)
}

/// Removes (or, `dry_run`, lists) the messages of the mailboxes in `scope`
/// that `rule` finds expired at `now`, a log line each (see
/// [`crate::retention`]).
pub fn purge(
    store: &FsStore,
    scope: &crate::retention::Scope,
    rule: &crate::retention::Rule,
    now: SystemTime,
    dry_run: bool,
) -> Result<Vec<crate::retention::Expired>, OpError> {
    Ok(crate::retention::run_pass(
        store,
        scope,
        rule,
        now,
        dry_run,
        &|| true,
        &mut |_| {},
    )?)
}

/// The lock's end as RFC 3339, when the mailbox is locked at `now`.
pub fn locked_until(login: &LoginState, now: SystemTime) -> Option<String> {
    login
        .is_locked(now)
        .then_some(login.locked_until)
        .flatten()
        .map(rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_cursor() {
        let all: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let p = page(all.clone(), Clone::clone, None, 2);
        assert_eq!(
            (p.items, p.next.as_deref()),
            (vec!["a".into(), "b".into()], Some("b"))
        );
        let p = page(all.clone(), Clone::clone, Some("b"), 2);
        assert_eq!(
            (p.items, p.next.as_deref()),
            (vec!["c".into(), "d".into()], Some("d"))
        );
        let p = page(all.clone(), Clone::clone, Some("d"), 2);
        assert_eq!((p.items, p.next), (vec!["e".to_string()], None));
        let p = page(all, Clone::clone, Some("zz"), 2);
        assert!(p.items.is_empty() && p.next.is_none());
    }

    #[test]
    fn unknown_time_zones_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FsStore::open_with_pin_cost(dir.path(), crate::store::PinCost::TestOnly)
            .expect("store");
        let id = MailboxId::new("1001", "example.com").expect("id");
        let zoned = |tz: &str| MailboxSettings {
            timezone: Some(tz.to_owned()),
            ..MailboxSettings::default()
        };
        let e = create(
            &store,
            &id,
            zoned("Mars/Olympus_Mons"),
            None,
            PinRule::Phone,
        )
        .expect_err("unknown zone");
        assert!(e.to_string().contains("\"Mars/Olympus_Mons\""), "{e}");
        create(&store, &id, zoned("Europe/Moscow"), None, PinRule::Phone).expect("known zone");
        let e = update(&store, &id, |s| s.timezone = Some("Europe/Atlantis".into()))
            .expect_err("unknown zone");
        assert!(matches!(e, OpError::UnknownTimezone(ref z) if z == "Europe/Atlantis"));
        let m = update(&store, &id, |s| s.timezone = Some("Asia/Tokyo".into())).expect("known");
        assert_eq!(m.settings.timezone.as_deref(), Some("Asia/Tokyo"));
        // Fixed offsets within ±14:59, as `ext.timezone` takes them.
        let m = update(&store, &id, |s| s.timezone = Some("-03:30".into())).expect("offset");
        assert_eq!(m.settings.timezone.as_deref(), Some("-03:30"));
        for bad in ["+15:00", "+3:00", "+03:0x"] {
            let e = update(&store, &id, |s| s.timezone = Some(bad.into())).expect_err(bad);
            assert!(matches!(e, OpError::UnknownTimezone(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn phone_pin_rule_applies_to_the_api_only() {
        assert!(matches!(
            PinRule::Phone.check("1234"),
            Err(OpError::PinNotAllowed)
        ));
        assert!(PinRule::Phone.check("1357").is_ok());
        assert!(PinRule::Store.check("1234").is_ok());
    }
}
