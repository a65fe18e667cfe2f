//! The menu's states, one struct or variant per place in the tree.

use crate::store::{Folder, GreetingKind, MessageMeta};

use super::entry::Entry;

/// Where the call is in the menu.
#[derive(Debug)]
pub(super) enum State {
    /// Not started.
    Idle,
    /// Typing the mailbox number.
    Mailbox(Entry),
    /// Typing the PIN; `mailbox` is `None` when the number typed can never
    /// be valid (too long): the login then fails like a wrong PIN.
    Pin {
        mailbox: Option<String>,
        entry: Entry,
    },
    /// `VerifyPin` is out.
    CheckingPin { mailbox: String },
    /// `LoadMessages` is out.
    Loading,
    /// The main menu.
    Main,
    /// `2` from the main menu: which folder to listen to.
    FolderChoice,
    /// `9` on a message: which folder to save it to.
    SaveFolder { browse: Browse },
    /// `MoveTo` is out.
    Saving { browse: Browse, folder: Folder },
    /// Listening to messages.
    Browse(Browse),
    /// Typing the mailbox to forward the current message to.
    ForwardEntry { browse: Browse, entry: Entry },
    /// `Forward` is out.
    Forwarding { browse: Browse },
    /// `DeleteNow` (a remote message) is out.
    Deleting { browse: Browse },
    /// The mailbox options menu.
    Options,
    /// The temporary greeting menu.
    TempMenu,
    /// "Record after the tone", beep.
    RecordIntro { kind: GreetingKind },
    /// Recording a greeting.
    Recording { kind: GreetingKind },
    /// `StopRecording` sent, waiting for the shell to report the end.
    StoppingRecording { kind: GreetingKind },
    /// Accept / listen / re-record.
    Review { kind: GreetingKind },
    /// `SaveGreeting` is out.
    SavingGreeting,
    /// `DeleteGreeting` is out.
    ErasingGreeting,
    /// Changing the PIN.
    NewPin(PinStep),
    /// `SetPin` is out.
    SettingPin,
    /// Saying a last prompt; then vmail hangs up.
    Farewell,
    /// Over.
    Done,
}

/// The two entries of a PIN change.
#[derive(Debug)]
pub(super) enum PinStep {
    /// The new PIN.
    First(Entry),
    /// The same again.
    Second { first: String, entry: Entry },
}

/// A walk through a list of messages.
#[derive(Debug, Clone)]
pub(super) struct Browse {
    /// Indexes into the mailbox's message list, in playing order.
    pub view: Vec<usize>,
    /// Current position in `view`.
    pub pos: usize,
    /// What is playing.
    pub phase: Phase,
}

/// What a [`Browse`] is playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// "Message N".
    Announce,
    /// The message audio.
    Audio,
    /// A confirmation and/or the message menu, or waiting for a key.
    Menu,
}

/// A message of the logged-in mailbox as the call sees it.
#[derive(Debug, Clone)]
pub(super) struct Msg {
    /// Its metadata at login (`folder`: where it was then).
    pub meta: MessageMeta,
    /// The folder it is in now (after the moves of this call).
    pub folder: Folder,
    /// It was in `INBOX/` at login.
    pub was_new: bool,
    /// `MoveToOld` has been issued for it.
    pub moved: bool,
    /// Marked for deletion at the end of the call; for a remote message:
    /// deleted at its site already.
    pub deleted: bool,
    /// Kept at another site: its changes travel there.
    pub remote: bool,
}

/// What the one timer of the menu is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// A menu prompt finished and nothing was pressed.
    NoInput,
    /// A pause while typing an entry: it ends the entry.
    InterDigit,
    /// The shell did not report the end of a recording in time.
    RecordingGuard,
}

/// Why a store operation is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pending {
    /// The state waits for the reply.
    Foreground,
    /// Nobody waits (`MoveToOld` of this message, by index); a failure is
    /// only logged, an unreachable site is told before the next menu.
    Background(usize),
}
