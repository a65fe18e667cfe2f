//! Plain data the store hands out and takes in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::names::{Folder, MailboxId};

/// Subscriber settings kept in `mailbox.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MailboxSettings {
    /// Name shown in listings.
    pub display_name: Option<String>,
    /// Prompt language (`en`, `ru`, ...), a directory name under `prompts/`.
    pub language: Option<String>,
    /// IANA time zone for the envelope (`Europe/Moscow`).
    pub timezone: Option<String>,
    /// Where a new message is e-mailed: one address or a comma-separated
    /// list (`a@example.com, Bob <b@example.com>`), as in a `To:` header.
    pub email: Option<String>,
    /// What the e-mail carries (`none` or `wav`; default `wav`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach: Option<Attach>,
    /// Delete the message from the store once it has been e-mailed
    /// (Asterisk's `delete`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delete_after_send: bool,
    /// Most messages the mailbox holds (all folders together); `None`:
    /// the instance's `max_messages`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u32>,
    /// Days a message is kept in `Old/` before retention removes it
    /// (0: kept for ever); `None`: the domain's or instance's
    /// `ext.retention`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_old_days: Option<u32>,
    /// Where `0` during the greeting or the recording transfers the caller:
    /// a `sip:`/`sips:` URI, or [`OPERATOR_NONE`] for no transfer at all;
    /// `None`: the domain's `ext.operator_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// The mailbox `operator` value that turns the operator escape off for
/// the mailbox even when its domain has an operator.
pub const OPERATOR_NONE: &str = "none";

impl MailboxSettings {
    /// The operator URI of a mailbox whose domain's is `domain_operator`:
    /// its own, none when it said `none`, else the domain's.
    pub fn operator_uri<'a>(&'a self, domain_operator: Option<&'a str>) -> Option<&'a str> {
        match self.operator.as_deref() {
            Some(OPERATOR_NONE) => None,
            Some(uri) => Some(uri),
            None => domain_operator,
        }
    }
}

/// Largest retention period in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// What a notification e-mail carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attach {
    /// Text only.
    None,
    /// The message's audio as stored (WAV).
    Wav,
    /// The message's audio compressed: Opus in Ogg (about an eighth of
    /// the WAV).
    Opus,
}

impl Attach {
    /// Parses `none` or `wav`.
    pub fn parse(s: &str) -> Option<Attach> {
        match s {
            "none" => Some(Attach::None),
            "wav" => Some(Attach::Wav),
            "opus" => Some(Attach::Opus),
            _ => None,
        }
    }
}

/// Largest `max_messages` a mailbox may have (the instance setting's bound).
pub const MAX_MAILBOX_MESSAGES: u32 = 1_000_000;

impl MailboxSettings {
    /// Checks the values (lengths, and the characters of those that other
    /// modules may turn into paths: language and time zone).
    pub fn validate(&self) -> Result<(), StoreError> {
        fn text(v: &Option<String>, what: &'static str, max: usize) -> Result<(), StoreError> {
            if let Some(s) = v {
                if s.len() > max {
                    return Err(StoreError::InvalidValue {
                        what,
                        reason: "too long",
                    });
                }
                if s.chars().any(char::is_control) {
                    return Err(StoreError::InvalidValue {
                        what,
                        reason: "control characters are not allowed",
                    });
                }
            }
            Ok(())
        }
        text(&self.display_name, "display_name", 256)?;
        text(&self.email, "email", 2048)?;
        if let Some(e) = &self.email {
            if e.parse::<lettre::message::Mailboxes>().is_err() {
                return Err(StoreError::InvalidValue {
                    what: "email",
                    reason: "expected e-mail addresses separated by commas",
                });
            }
        }
        if let Some(n) = self.max_messages {
            if !(1..=MAX_MAILBOX_MESSAGES).contains(&n) {
                return Err(StoreError::InvalidValue {
                    what: "max_messages",
                    reason: "must be from 1 to 1000000",
                });
            }
        }
        if self
            .retention_old_days
            .is_some_and(|d| d > MAX_RETENTION_DAYS)
        {
            return Err(StoreError::InvalidValue {
                what: "retention_old_days",
                reason: "must be from 0 (keep for ever) to 36500",
            });
        }
        if let Some(op) = &self.operator {
            if op != OPERATOR_NONE && !crate::sip::is_sip_uri(op) {
                return Err(StoreError::InvalidValue {
                    what: "operator",
                    reason: "expected a sip: or sips: URI, or none",
                });
            }
        }
        if let Some(l) = &self.language {
            let ok = (1..=16).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && l.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
            if !ok {
                return Err(StoreError::InvalidValue {
                    what: "language",
                    reason: "expected a language tag such as en or pt-BR",
                });
            }
        }
        if let Some(tz) = &self.timezone {
            // A fixed offset `+hh:mm` / `-hh:mm`, or a zone name.
            let offset = tz.len() == 6
                && tz.starts_with(['+', '-'])
                && tz.bytes().enumerate().skip(1).all(|(i, b)| {
                    if i == 3 {
                        b == b':'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            let name = (1..=64).contains(&tz.len())
                && tz
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'+' | b'-'))
                && tz.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
                && !tz.contains("//");
            let ok = offset || name;
            if !ok {
                return Err(StoreError::InvalidValue {
                    what: "timezone",
                    reason: "expected an IANA zone name such as Europe/Moscow, or an offset such as +03:00",
                });
            }
        }
        Ok(())
    }
}

/// A mailbox as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    /// Its address.
    pub id: MailboxId,
    /// Subscriber settings.
    pub settings: MailboxSettings,
    /// Whether a PIN is set (the hash itself never leaves the store).
    pub has_pin: bool,
    /// Creation time, RFC 3339.
    pub created: String,
}

/// Why the call reached voicemail.
pub mod cause {
    /// The subscriber was busy.
    pub const BUSY: &str = "busy";
    /// The subscriber did not answer / was unreachable.
    pub const UNAVAILABLE: &str = "unavailable";
    /// Not known.
    pub const UNKNOWN: &str = "unknown";
}

fn default_rate() -> u32 {
    8000
}

/// A stored message's metadata (`<id>.json`).
///
/// `id` and `folder` are taken from where the file lies, whatever the
/// JSON says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Message id (sortable by time).
    #[serde(default)]
    pub id: String,
    /// Folder it is in.
    #[serde(default = "inbox")]
    pub folder: Folder,
    /// Caller's URI (From / P-Asserted-Identity).
    #[serde(default)]
    pub caller_uri: String,
    /// Caller's display name.
    #[serde(default)]
    pub caller_name: Option<String>,
    /// The URI that was called (the diverting user).
    #[serde(default)]
    pub called_uri: String,
    /// `busy`, `unavailable` or `unknown` (see [`cause`]).
    #[serde(default = "unknown_cause")]
    pub cause: String,
    /// When the recording began, RFC 3339 UTC.
    #[serde(default)]
    pub received: String,
    /// Length of the audio.
    #[serde(default)]
    pub duration_ms: u64,
    /// Codec the caller sent (`PCMU`, `PCMA`, `G722`, `G729`, `opus`).
    #[serde(default)]
    pub codec: String,
    /// Site where it was recorded.
    #[serde(default)]
    pub site: String,
    /// Instance that recorded it.
    #[serde(default)]
    pub instance: String,
    /// Active-Passive epoch under which this metadata was last written
    /// (fencing): the recording's, the recovery's for a recovered message,
    /// the copier's for a forwarded one, then that of a move or of a
    /// change of the heard flag. 0: unfenced, or an older vmail.
    #[serde(default)]
    pub epoch: u64,
    /// Listened to.
    #[serde(default)]
    pub heard: bool,
    /// Marked urgent.
    #[serde(default)]
    pub urgent: bool,
    /// Completed by recovery after a crash, not by a normal end of call.
    #[serde(default)]
    pub recovered: bool,
    /// Mailbox that forwarded it here, if forwarded.
    #[serde(default)]
    pub forwarded_by: Option<String>,
    /// Sample rate of the WAV.
    #[serde(default = "default_rate")]
    pub sample_rate: u32,
}

fn inbox() -> Folder {
    Folder::Inbox
}

fn unknown_cause() -> String {
    cause::UNKNOWN.to_owned()
}

/// What the call layer knows when a recording starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// Caller's URI.
    pub caller_uri: String,
    /// Caller's display name.
    #[serde(default)]
    pub caller_name: Option<String>,
    /// The URI that was called.
    pub called_uri: String,
    /// `busy`, `unavailable` or `unknown`.
    pub cause: String,
    /// Negotiated codec name.
    pub codec: String,
    /// Site name.
    pub site: String,
    /// Instance name.
    pub instance: String,
    /// Active-Passive epoch (a store with a fence writes its fence's).
    pub epoch: u64,
    /// Sample rate of the audio handed to `append` (8000, or 16000 for
    /// G.722 and Opus).
    pub sample_rate: u32,
}

/// Message counts of a mailbox (for the menu and MWI).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Messages in `INBOX/`.
    pub new: usize,
    /// Messages in every other folder: `Old/` and the named ones (heard
    /// or saved).
    pub old: usize,
    /// Urgent messages in `INBOX/`.
    pub urgent_new: usize,
    /// Urgent messages among the old ones.
    pub urgent_old: usize,
}

/// PIN login failures of a mailbox, kept across calls and restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginState {
    /// Failures in a row since the last success or lock.
    pub failures: u32,
    /// Locked until this time, if locked.
    pub locked_until: Option<SystemTime>,
}

impl LoginState {
    /// True while the lock is in force at `now`.
    pub fn is_locked(&self, now: SystemTime) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }

    /// Reserves one PIN attempt at `now`, before the PIN is checked: the
    /// attempt counts as a failure up front (a good PIN clears the count
    /// afterwards), so parallel attempts cannot all pass a check made
    /// before any of them is recorded. The reservation that brings the
    /// count to `lockout_failures` still gets its check and writes the lock
    /// for `lockout_seconds` (the count then starts again); every later one
    /// is refused until the lock runs out. `lockout_failures == 0` never
    /// locks. The caller keeps the state under one lock per mailbox from
    /// this call until the new state is stored.
    pub fn reserve(
        &mut self,
        now: SystemTime,
        lockout_failures: u32,
        lockout_seconds: u64,
    ) -> LoginAttempt {
        if let Some(until) = self.locked_until {
            if now < until {
                return LoginAttempt::Locked { until };
            }
            // The lock ran out: count from zero again.
            self.locked_until = None;
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        if lockout_failures > 0 && self.failures >= lockout_failures {
            self.locked_until = now.checked_add(Duration::from_secs(lockout_seconds));
            self.failures = 0;
            return LoginAttempt::Last;
        }
        LoginAttempt::Granted
    }
}

impl LoginAttempt {
    /// The PIN is to be checked ([`Granted`](Self::Granted) or
    /// [`Last`](Self::Last)).
    pub fn is_granted(self) -> bool {
        matches!(self, LoginAttempt::Granted | LoginAttempt::Last)
    }
}

/// The answer to [`LoginState::reserve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Check the PIN; the attempt is already counted as a failure.
    Granted,
    /// Check the PIN; this attempt reached the limit and wrote the lock,
    /// which only a good PIN lifts.
    Last,
    /// Refused without a check: locked until then.
    Locked {
        /// When the lock runs out.
        until: SystemTime,
    },
}

/// On-disk form of [`LoginState`] (`login.json`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct LoginRecord {
    pub failures: u32,
    /// Unix time in milliseconds.
    pub locked_until_ms: Option<u64>,
    /// Active-Passive epoch of the writer (0: unfenced, or an older vmail).
    pub epoch: u64,
}

impl From<LoginRecord> for LoginState {
    fn from(r: LoginRecord) -> Self {
        LoginState {
            failures: r.failures,
            locked_until: r
                .locked_until_ms
                .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms))),
        }
    }
}

impl From<LoginState> for LoginRecord {
    fn from(s: LoginState) -> Self {
        LoginRecord {
            failures: s.failures,
            locked_until_ms: s.locked_until.map(|t| {
                let ms = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
                u64::try_from(ms).unwrap_or(u64::MAX)
            }),
            epoch: 0,
        }
    }
}

/// On-disk form of a mailbox (`mailbox.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MailboxRecord {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub settings: MailboxSettings,
    /// Argon2 PHC string.
    #[serde(default)]
    pub pin_hash: Option<String>,
    #[serde(default)]
    pub created: String,
    /// Active-Passive epoch of the last writer (0: unfenced, or an older
    /// vmail).
    #[serde(default)]
    pub epoch: u64,
}

fn one() -> u32 {
    1
}

/// The sidecar written next to a recording in progress (`tmp/<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sidecar {
    pub id: String,
    pub received: String,
    #[serde(default)]
    pub urgent: bool,
    pub info: RecordingInfo,
}

#[cfg(test)]
mod login_tests {
    use super::*;

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn reservations_grant_exactly_the_limit_then_lock() {
        let mut st = LoginState::default();
        let granted = (0..20)
            .filter(|_| st.reserve(t0(), 5, 300).is_granted())
            .count();
        assert_eq!(granted, 5, "20 attempts at once, 5 checks");
        assert_eq!(st.locked_until, Some(t0() + Duration::from_secs(300)));
        assert_eq!(
            st.reserve(t0() + Duration::from_secs(299), 5, 300),
            LoginAttempt::Locked {
                until: t0() + Duration::from_secs(300)
            }
        );
    }

    #[test]
    fn the_lock_runs_out_and_counting_starts_again() {
        let mut st = LoginState::default();
        for _ in 0..4 {
            assert_eq!(st.reserve(t0(), 5, 60), LoginAttempt::Granted);
        }
        assert_eq!(st.reserve(t0(), 5, 60), LoginAttempt::Last);
        let later = t0() + Duration::from_secs(60);
        assert_eq!(st.reserve(later, 5, 60), LoginAttempt::Granted);
        assert_eq!((st.failures, st.locked_until), (1, None));
    }

    #[test]
    fn a_reservation_is_a_failure_until_cleared() {
        let mut st = LoginState::default();
        for i in 1..=4 {
            assert_eq!(st.reserve(t0(), 5, 60), LoginAttempt::Granted);
            assert_eq!(st.failures, i);
            assert!(!st.is_locked(t0()));
        }
        // A good PIN clears the state (the store removes login.json).
        st = LoginState::default();
        assert_eq!(st.reserve(t0(), 5, 60), LoginAttempt::Granted);
        assert_eq!(st.failures, 1);
    }

    #[test]
    fn zero_never_locks() {
        let mut st = LoginState::default();
        for _ in 0..1000 {
            assert_eq!(st.reserve(t0(), 0, 60), LoginAttempt::Granted);
        }
        assert_eq!(st.locked_until, None);
    }
}
