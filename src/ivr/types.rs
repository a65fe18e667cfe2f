//! The data the menu exchanges with the runtime shell: configuration,
//! audio items, store operations and their replies, and actions.

use std::time::{Duration, SystemTime};

use crate::prompts::Gender;
use crate::store::{Folder, GreetingKind, MessageMeta};

/// Limits and timers of the retrieval menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuConfig {
    /// Silence after a menu prompt before it is repeated (SPEC §7: 10 s).
    pub no_input: Duration,
    /// Pause between digits that completes an entry as if `#` was pressed.
    pub inter_digit: Duration,
    /// How often a menu is repeated for lack of input before "goodbye".
    pub max_repeats: u32,
    /// Wrong logins in one call before the call ends.
    pub max_login_tries: u32,
    /// Longest greeting or name recording.
    pub max_greeting: Duration,
    /// Most digits kept of one entry (mailbox, PIN); more make it invalid.
    pub max_digits: usize,
    /// The domain whose mailboxes this menu serves: the users in
    /// [`StoreOp`]s are users of this domain.
    pub domain: String,
}

impl MenuConfig {
    /// The defaults of SPEC §7 for `domain`.
    pub fn new(domain: impl Into<String>) -> Self {
        MenuConfig {
            no_input: Duration::from_secs(10),
            inter_digit: Duration::from_secs(5),
            max_repeats: 3,
            max_login_tries: 3,
            max_greeting: Duration::from_secs(120),
            max_digits: 32,
            domain: domain.into(),
        }
    }
}

/// One item of a playlist; the shell turns it into audio in the
/// mailbox's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audio {
    /// A prompt by name (`prompts/<lang>/<name>.*`, see
    /// [`PROMPT_NAMES`](super::PROMPT_NAMES)).
    Prompt(&'static str),
    /// A key string read key by key (`PromptSet::digits`), e.g. a caller
    /// number; only `0`-`9` occur.
    Digits(String),
    /// A cardinal number (`PromptSet::number`), e.g. the message number.
    Number(u32),
    /// A number agreeing with a word of `gender`
    /// (`PromptSet::number_gendered`; Russian "одно сообщение").
    NumberGendered(u32, Gender),
    /// The form of a word that agrees with `n`
    /// (`PromptSet::counted(lang, n, one, many)`): "message"/"messages".
    Counted {
        /// The number the word follows.
        n: u32,
        /// The singular prompt name.
        one: &'static str,
        /// The plural prompt name (Russian adds `-few`/`-many` forms).
        many: &'static str,
    },
    /// The audio of a stored message of the logged-in mailbox, by id.
    Message(String),
    /// When a message was received: its RFC 3339 time, spoken by the shell
    /// in the mailbox's time zone (`PromptSet::date_time`).
    DateTime(String),
    /// The greeting just recorded (kept in memory by the shell).
    LastRecording,
}

/// Reply to [`StoreOp::VerifyPin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReply {
    /// Logged in.
    Ok,
    /// Wrong PIN (the store counted the failure).
    Wrong,
    /// The mailbox is locked after too many failures.
    Locked {
        /// Until when.
        until: SystemTime,
    },
    /// No such mailbox; the menu treats it exactly like [`PinReply::Wrong`].
    NoSuchMailbox,
    /// Too many PIN checks are waiting already: nothing was checked or
    /// counted; the caller is asked to try later.
    Busy,
}

/// Why a forward did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// The target mailbox does not exist.
    #[error("no such mailbox")]
    NoSuchMailbox,
    /// The store failed (I/O, target full).
    #[error("forwarding failed")]
    Failed,
}

/// A store operation the shell carries out for the logged-in mailbox
/// (or, for `VerifyPin`, the mailbox named) and answers with
/// [`Menu::on_store`](super::Menu::on_store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Check a PIN; the shell also keeps the lockout bookkeeping
    /// (`lockout_failures`, `lockout_seconds`). Reply: [`StoreReply::Pin`].
    VerifyPin {
        /// Mailbox user in [`MenuConfig::domain`].
        mailbox: String,
        /// The digits entered.
        pin: String,
    },
    /// List the messages. Reply: [`StoreReply::Messages`].
    LoadMessages,
    /// Move a new message to `Old/` (mark heard). Reply: `Done`/`Failed`.
    MoveToOld {
        /// Message id.
        msg: String,
    },
    /// Save a message into a folder (`9` then a folder key): moved there,
    /// heard unless the folder is `INBOX`. Reply: `Done`/`Failed`.
    MoveTo {
        /// Message id.
        msg: String,
        /// Where to.
        folder: Folder,
    },
    /// Remove a message, from whichever folder it is in. Only emitted at
    /// the end of the call; no reply is expected.
    Delete {
        /// Message id.
        msg: String,
    },
    /// Remove a message kept at another site at once (`7` on it): the
    /// subscriber hears whether its site took the change, so it cannot
    /// wait for the end of the call. Reply: `Done` (also when the site
    /// no longer has it), [`StoreReply::Unreachable`] or `Failed`.
    DeleteNow {
        /// Message id.
        msg: String,
    },
    /// Copy a message into another mailbox of the domain.
    /// Reply: [`StoreReply::Forwarded`].
    Forward {
        /// Message id.
        msg: String,
        /// Target mailbox user.
        to_user: String,
    },
    /// Store the last recording as this greeting. Reply: `Done`/`Failed`.
    SaveGreeting {
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Remove a greeting. Reply: `Done`/`Failed`.
    DeleteGreeting {
        /// Which greeting.
        kind: GreetingKind,
    },
    /// Set a new PIN (already checked against the menu's PIN rules).
    /// Reply: `Done`/`Failed`.
    SetPin {
        /// The new PIN.
        pin: String,
    },
}

/// The shell's answer to the oldest unanswered [`StoreOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreReply {
    /// Answer to `VerifyPin`.
    Pin(PinReply),
    /// Answer to `LoadMessages`: this site's and the other sites'
    /// messages merged, each folder in order of arrival.
    Messages {
        /// `INBOX/`.
        new: Vec<MessageMeta>,
        /// `Old/`, then the other folders (`Work/`, ... `Cust5/`) in key
        /// order, each message with its folder (one whose folder says
        /// `INBOX` counts as `Old`).
        old: Vec<MessageMeta>,
        /// Ids of the messages kept at another site: their changes are
        /// applied there (and may find it unreachable).
        remote: Vec<String>,
        /// Some site that keeps messages of the mailbox did not answer: the
        /// subscriber hears that some messages cannot be reached now.
        partial: bool,
    },
    /// The operation succeeded.
    Done,
    /// Answer to `Forward`.
    Forwarded(Result<(), ForwardError>),
    /// The operation failed (any op).
    Failed,
    /// The message is kept at another site, which cannot be reached (or
    /// refused): nothing was changed. Any op on a remote message.
    Unreachable,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Replace whatever is playing with this playlist; report
    /// [`Menu::on_playback_done`](super::Menu::on_playback_done) when it
    /// has been played completely.
    Play(Vec<Audio>),
    /// Stop the playback at once (a key interrupted it); no "done" follows.
    StopPlayback,
    /// Record the caller (a greeting) for at most `max`; report
    /// [`Menu::on_recording_done`](super::Menu::on_recording_done) after
    /// [`Action::StopRecording`] or when the shell's own limit (length,
    /// silence) ended it. The shell keeps the last recording in memory.
    StartRecording {
        /// Longest recording.
        max: Duration,
    },
    /// Stop the recording.
    StopRecording,
    /// Carry out a store operation.
    Store(StoreOp),
    /// The audio of this message (kept at another site) is likely to be
    /// played next: the shell may start fetching it now, so that it starts
    /// without a gap. Needs no answer; a later `Play` of another message
    /// (or none) makes it moot.
    Prefetch(String),
    /// Send BYE (vmail hangs up).
    Hangup,
    /// The menu is over; release the call. Comes exactly once, last.
    Done,
}
