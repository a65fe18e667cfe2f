//! Message-waiting indication (SPEC §8): the RFC 3842 `message-summary`
//! body, the RFC 6665 subscriptions of phones, and the unsolicited NOTIFYs
//! to the `ext.mwi_notify` targets.
//!
//! Pure state machines: no sockets, no files, no clock. The runtime shell
//! (`runtime::mwi`) reads the counts from the store, builds and sends the
//! NOTIFYs through the transaction layer and feeds outcomes and `now` back.
//!
//! Decisions a newcomer asks about:
//! - Counts come in as a whole ([`Counts`]), never as deltas: the shell
//!   reads the store again after every change notice, so a NOTIFY carries
//!   what the store holds, and a store that cannot be read sends nothing.
//! - At most one NOTIFY is in flight per subscription and per (target,
//!   mailbox); what changes meanwhile is sent when it completes, with the
//!   newest counts: a stale count never follows a newer one.
//! - A subscription ends on expiry, `Expires: 0`, a removed mailbox
//!   (`noresource`), or a NOTIFY that fails (481, 408/timeout, any other
//!   final non-2xx, RFC 6665 §4.2.2).

mod body;
mod notifier;
mod subscriptions;

pub use body::{is_message_summary, summary_body, CONTENT_TYPE, EVENT};
pub use notifier::{Backoff, Unsolicited, UnsolicitedSend};
pub use subscriptions::{
    grant, EndReason, Grant, Limits, Notify, NotifyState, SubId, Subscriptions, DEFAULT_EXPIRES,
};

pub use crate::store::Counts;
