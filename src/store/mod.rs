//! The SiteShare mailbox store (SPEC §6, §7).
//!
//! Everything lives under `<siteshare>/vmail/domains/<domain>/<user>/`:
//! `mailbox.json` (settings, PIN as an argon2 hash), `subscriptions.json`
//! (message-waiting subscriptions), `login.json` (PIN
//! lockout, changed under a `flock` of `login.lock`), `INBOX/`, `Old/` and
//! the named folders `Work/`, `Family/`, `Friends/`, `Cust1/`..`Cust5/` (a
//! message is `<id>.wav` + `<id>.json`),
//! `greetings/{unavail,busy,temp,name}.wav`, `tmp/` (recordings in
//! progress). Lockouts of numbers that are no mailbox live in
//! `<siteshare>/vmail/login-unknown/` (a bounded, hashed table).
//!
//! Durability rules, which every operation follows:
//! - names are validated before any path is built ([`MailboxId`],
//!   message ids);
//! - small files are replaced atomically (temporary sibling, fsync,
//!   rename, directory fsync);
//! - a message is visible only when both its WAV and its JSON are in a
//!   folder, and the JSON is always put there first, so a reader never
//!   sees half a message;
//! - a recording is written to `tmp/` as it arrives with its header kept
//!   current; [`FsStore::recover`] completes whatever a crash left there;
//! - a new mailbox is built whole under `<siteshare>/vmail/staging/` and
//!   renamed into place (with its first message, when that creates it), so
//!   no mailbox folder is ever without `mailbox.json`.
//!
//! [`FsStore`] is the file-system implementation; [`MailboxStore`] is the
//! same API as an object-safe trait.

mod error;
mod fs;
pub(crate) mod fsutil;
mod ids;
mod login_unknown;
mod names;
mod pin;
mod recording;
mod recover;
mod staging;
mod subscriptions;
mod traits;
mod types;
pub(crate) mod wav;

#[cfg(test)]
mod fencing_tests;
#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use fs::{FsStore, Observer};
pub use ids::{new_message_id, parse_rfc3339, rfc3339};
pub use names::{validate_message_id, Folder, GreetingKind, MailboxId};
pub use pin::{validate_pin, PinCost};
pub use recording::RecordingWriter;
pub use recover::{DomainFilter, RecoverOptions};
pub use traits::{MailboxStore, MessageRecorder};
pub use types::{
    cause, Attach, Counts, LoginAttempt, LoginState, Mailbox, MailboxSettings, MessageMeta,
    RecordingInfo, MAX_MAILBOX_MESSAGES, MAX_RETENTION_DAYS, OPERATOR_NONE,
};
