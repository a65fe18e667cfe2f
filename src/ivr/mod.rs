//! The voicemail retrieval menu (SPEC §7) as a pure state machine.
//!
//! [`Menu`] takes the caller's keys, "playback finished", the end of a
//! greeting recording, the replies of store operations, timer expiries and
//! the hang-up, each with the current time; it answers with [`Action`]s
//! (play these prompts, record, run this store operation, hang up) that the
//! runtime shell carries out. It knows no SIP, files or clock.
//!
//! The tree: login (mailbox number, PIN) → "you have N new and M old
//! messages" → main menu (`1` new then old, `2` change folders: then a
//! folder key, `0` options, `*` help, `#` goodbye) → messages (`3`
//! envelope, `4`/`5`/`6` previous / repeat / next, `7` delete toggle, `8`
//! forward, `9` save: then a folder key, `*` help, `#` back) and options
//! (`1`/`2`/`3` record unavailable / busy / name, `4` temporary greeting,
//! `5` PIN, `*` back). Folder keys are Asterisk's: `0` INBOX, `1` Old, `2`
//! Work, `3` Family, `4` Friends, `5`..`9` Cust1..Cust5; `#` cancels.
//!
//! Decisions a shell author should know:
//! - A new message counts as heard once its audio starts playing (after
//!   "Message N"), as in the common PBXs: `MoveToOld` is issued then, once
//!   per message, without waiting for the reply (a failure is logged).
//!   `9` and a folder key issue `MoveTo` instead (foreground: "saved in
//!   <folder>" follows the reply); the message leaves `INBOX` then.
//! - "Old" in the greeting counts the `Old` folder only (key `1` plays
//!   `INBOX` then `Old`); message waiting counts every folder but `INBOX`.
//! - Deletions are only marks during the call; the `Delete` ops come at the
//!   end of the call (also when the caller hangs up), before `Done`.
//!   `MoveToOld` ops still queued at that moment are dropped.
//! - "No such mailbox" at login is handled exactly like a wrong PIN.
//! - A failed store operation (other than a forward to an unknown mailbox)
//!   ends the call with "goodbye".
//! - A menu is repeated `max_repeats` times for lack of input; the next
//!   silence says "goodbye" and hangs up. Keys reset the count.
//! - Sites (SPEC §10): the listing may hold messages kept at other sites
//!   (`StoreReply::Messages::remote`). When a site did not answer, "some
//!   messages cannot be reached right now" follows the counts. A remote
//!   message's audio is announced with [`Action::Prefetch`] when its
//!   "Message N" starts. Its changes go to its site and may come back
//!   [`StoreReply::Unreachable`]: nothing changed, the caller hears "that
//!   cannot be done right now" and the menu goes on (for the background
//!   `MoveToOld`, before the next message menu; the message stays new).
//!   `7` on a remote message deletes it at its site at once (`DeleteNow`):
//!   the caller must hear whether that happened, which the end of the call
//!   cannot tell; it cannot be undone in the call.

mod browse;
mod entry;
mod login;
mod menu;
mod options;
mod phrases;
mod pin_rules;
mod state;
mod types;

#[cfg(test)]
mod tests;

pub use menu::Menu;
pub use phrases::{PROMPT_NAMES, WAIT_PROMPT};
pub use pin_rules::{new_pin_allowed, MAX_PIN_DIGITS, MIN_PIN_DIGITS};
pub use types::{Action, Audio, ForwardError, MenuConfig, PinReply, StoreOp, StoreReply};
