//! The main menu and listening to messages (envelope, navigation,
//! delete, forward, save to a folder); `2` to listen to another folder.

use std::time::Instant;

use super::entry::{Entered, Entry};
use super::menu::Menu;
use super::phrases::{envelope, folder_name, message_number, p, pr};
use super::state::{Browse, Pending, Phase, State, Timer};
use super::types::{Action, Audio, ForwardError, StoreOp, StoreReply};
use crate::store::Folder;

impl Menu {
    pub(super) fn main_key(&mut self, d: char) -> State {
        self.interrupt();
        match d {
            '1' => {
                // New messages, then old ones (INBOX and Old at login; the
                // other folders through key 2).
                let view: Vec<usize> = self
                    .msgs
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| matches!(m.meta.folder, Folder::Inbox | Folder::Old))
                    .map(|(i, _)| i)
                    .collect();
                if view.is_empty() {
                    self.say(vec![pr(p::YOU_HAVE), pr(p::NO_MESSAGES), pr(p::MAIN_MENU)]);
                    return State::Main;
                }
                self.open(view, Vec::new())
            }
            '2' => {
                // Asterisk's "change folders": a folder key follows.
                self.say(vec![pr(p::FOLDERS_MENU)]);
                State::FolderChoice
            }
            '0' => {
                self.say(vec![pr(p::OPTIONS_MENU)]);
                State::Options
            }
            '*' => {
                self.say(vec![pr(p::HELP), pr(p::MAIN_MENU)]);
                State::Main
            }
            '#' => self.farewell(vec![pr(p::GOODBYE)]),
            _ => {
                self.say(vec![pr(p::INVALID_OPTION), pr(p::MAIN_MENU)]);
                State::Main
            }
        }
    }

    fn urgent(&self, i: usize) -> bool {
        self.msgs.get(i).is_some_and(|m| m.meta.urgent)
    }

    /// A key after `2`: the messages now in that folder (urgent ones first,
    /// then oldest first) after its name; `#` goes back.
    pub(super) fn folder_key(&mut self, d: char) -> State {
        self.interrupt();
        if d == '#' {
            self.say(vec![pr(p::MAIN_MENU)]);
            return State::Main;
        }
        let Some(folder) = Folder::from_key(d) else {
            self.say(vec![pr(p::INVALID_OPTION), pr(p::FOLDERS_MENU)]);
            return State::FolderChoice;
        };
        let mut view: Vec<usize> = self
            .msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| m.folder == folder)
            .map(|(i, _)| i)
            .collect();
        // Urgent ones first, then by arrival (messages of several sites
        // interleave by time).
        view.sort_by(|a, b| self.order_key(*a).cmp(&self.order_key(*b)));
        if view.is_empty() {
            self.say(vec![
                pr(folder_name(folder)),
                pr(p::YOU_HAVE),
                pr(p::NO_MESSAGES),
                pr(p::MAIN_MENU),
            ]);
            return State::Main;
        }
        self.open(view, vec![pr(folder_name(folder))])
    }

    fn order_key(&self, i: usize) -> (bool, &str, &str) {
        let received = self.msgs.get(i).map_or("", |m| m.meta.received.as_str());
        (!self.urgent(i), received, self.id(i))
    }

    /// A remote message's audio is wanted soon: fetch it early.
    fn prefetch(&mut self, b: &Browse) {
        if let Some(m) = self.current(b).and_then(|i| self.msgs.get(i)) {
            if m.remote {
                let id = m.meta.id.clone();
                self.push_action(Action::Prefetch(id));
            }
        }
    }

    fn id(&self, i: usize) -> &str {
        self.msgs.get(i).map_or("", |m| m.meta.id.as_str())
    }

    /// Browse `view`, after saying `first` (a folder's name).
    fn open(&mut self, view: Vec<usize>, first: Vec<Audio>) -> State {
        let b = Browse {
            view,
            pos: 0,
            phase: Phase::Announce,
        };
        self.prefetch(&b);
        let mut say = first;
        say.extend(message_number(1));
        self.say(say);
        State::Browse(b)
    }

    /// "Message N", then (on done) its audio.
    fn announce(&mut self, mut b: Browse) -> State {
        b.phase = Phase::Announce;
        self.prefetch(&b);
        self.say(message_number(b.pos + 1));
        State::Browse(b)
    }

    /// Back to the message menu after saying `first` (a confirmation).
    fn menu_after(&mut self, mut b: Browse, first: Vec<Audio>) -> State {
        let mut say = Vec::new();
        if std::mem::take(&mut self.notice) {
            say.push(pr(p::CANNOT_NOW));
        }
        say.extend(first);
        say.push(pr(p::MESSAGE_MENU));
        b.phase = Phase::Menu;
        self.say(say);
        State::Browse(b)
    }

    fn current(&self, b: &Browse) -> Option<usize> {
        b.view.get(b.pos).copied().filter(|&i| i < self.msgs.len())
    }

    pub(super) fn browse_played(&mut self, now: Instant, mut b: Browse) -> State {
        match b.phase {
            Phase::Announce => {
                let Some(i) = self.current(&b) else {
                    return self.menu_after(b, Vec::new());
                };
                let id = self.id(i).to_string();
                b.phase = Phase::Audio;
                self.say(vec![Audio::Message(id)]);
                // Heard once its audio starts (as the common PBXs do).
                self.mark_heard(i);
                State::Browse(b)
            }
            Phase::Audio => self.menu_after(b, Vec::new()),
            Phase::Menu => {
                self.arm(now, self.cfg.no_input, Timer::NoInput);
                State::Browse(b)
            }
        }
    }

    /// A new message leaves `INBOX/` (once).
    fn mark_heard(&mut self, i: usize) {
        let Some(m) = self.msgs.get_mut(i) else {
            return;
        };
        if m.was_new && !m.moved {
            m.moved = true;
            m.folder = Folder::Old;
            let msg = m.meta.id.clone();
            self.store(StoreOp::MoveToOld { msg }, Pending::Background(i));
        }
    }

    /// The reply to a `MoveToOld` of message `i`: when its site could not
    /// be reached, the message is still new there, and the caller hears
    /// so before the next message menu.
    pub(super) fn heard_reply(&mut self, i: usize, reply: &StoreReply) {
        match reply {
            StoreReply::Done => {}
            StoreReply::Unreachable => {
                tracing::info!(
                    "a remote message could not be marked heard: its site is unreachable"
                );
                if let Some(m) = self.msgs.get_mut(i) {
                    m.folder = Folder::Inbox;
                    m.moved = false;
                }
                self.notice = true;
            }
            other => tracing::warn!(reply = ?other, "moving a message to Old failed"),
        }
    }

    pub(super) fn browse_key(&mut self, mut b: Browse, d: char) -> State {
        self.interrupt();
        let Some(i) = self.current(&b) else {
            self.say(vec![pr(p::MAIN_MENU)]);
            return State::Main;
        };
        match d {
            '3' => {
                let env = self
                    .msgs
                    .get(i)
                    .map(|m| envelope(&m.meta))
                    .unwrap_or_default();
                self.menu_after(b, env)
            }
            '4' => {
                if b.pos == 0 {
                    self.menu_after(b, vec![pr(p::FIRST_MESSAGE)])
                } else {
                    b.pos -= 1;
                    self.announce(b)
                }
            }
            '5' => self.announce(b),
            '6' => {
                if b.pos + 1 >= b.view.len() {
                    self.menu_after(b, vec![pr(p::NO_MORE_MESSAGES)])
                } else {
                    b.pos += 1;
                    self.announce(b)
                }
            }
            '7' if self.msgs.get(i).is_some_and(|m| m.remote) => {
                let deleted = self.msgs.get(i).is_some_and(|m| m.deleted);
                if deleted {
                    // Deleted at its site already: nothing to undo.
                    return self.menu_after(b, vec![pr(p::DELETED)]);
                }
                b.phase = Phase::Menu;
                let msg = self.id(i).to_string();
                self.store(StoreOp::DeleteNow { msg }, Pending::Foreground);
                State::Deleting { browse: b }
            }
            '7' => {
                let said = match self.msgs.get_mut(i) {
                    Some(m) => {
                        m.deleted = !m.deleted;
                        if m.deleted {
                            p::DELETED
                        } else {
                            p::UNDELETED
                        }
                    }
                    None => p::INVALID_OPTION,
                };
                self.menu_after(b, vec![pr(said)])
            }
            '8' => {
                b.phase = Phase::Menu;
                self.say(vec![pr(p::FORWARD_ENTER_MAILBOX)]);
                State::ForwardEntry {
                    browse: b,
                    entry: Entry::default(),
                }
            }
            '9' => {
                // Save: "which folder?", then a folder key (Asterisk's).
                b.phase = Phase::Menu;
                self.say(vec![pr(p::SAVE_TO_FOLDER), pr(p::FOLDERS_MENU)]);
                State::SaveFolder { browse: b }
            }
            '*' => {
                b.phase = Phase::Menu;
                self.say(vec![pr(p::HELP)]);
                State::Browse(b)
            }
            '#' => {
                self.say(vec![pr(p::MAIN_MENU)]);
                State::Main
            }
            _ => self.menu_after(b, vec![pr(p::INVALID_OPTION)]),
        }
    }

    /// A folder key after `9`: the message goes there and is no longer
    /// marked for deletion; `#` cancels.
    pub(super) fn save_folder_key(&mut self, b: Browse, d: char) -> State {
        self.interrupt();
        if d == '#' {
            return self.menu_after(b, Vec::new());
        }
        let Some(folder) = Folder::from_key(d) else {
            self.say(vec![pr(p::INVALID_OPTION), pr(p::FOLDERS_MENU)]);
            return State::SaveFolder { browse: b };
        };
        let Some(i) = self.current(&b) else {
            return self.menu_after(b, Vec::new());
        };
        let Some(m) = self.msgs.get_mut(i) else {
            return self.menu_after(b, Vec::new());
        };
        if m.folder == folder {
            if !m.remote {
                m.deleted = false;
            }
            return self.menu_after(b, vec![pr(p::SAVED_IN), pr(folder_name(folder))]);
        }
        let msg = m.meta.id.clone();
        self.store(StoreOp::MoveTo { msg, folder }, Pending::Foreground);
        State::Saving { browse: b, folder }
    }

    /// The reply to `MoveTo`.
    pub(super) fn saved(&mut self, b: Browse, folder: Folder, reply: StoreReply) -> State {
        match reply {
            StoreReply::Done => {}
            StoreReply::Unreachable => return self.menu_after(b, vec![pr(p::CANNOT_NOW)]),
            other => return self.store_failed(&other),
        }
        if let Some(m) = self.current(&b).and_then(|i| self.msgs.get_mut(i)) {
            m.folder = folder;
            // It has left INBOX: no MoveToOld for it later in this call.
            m.moved = true;
            if !m.remote {
                m.deleted = false;
            }
        }
        self.menu_after(b, vec![pr(p::SAVED_IN), pr(folder_name(folder))])
    }

    pub(super) fn forward_key(
        &mut self,
        now: Instant,
        browse: Browse,
        mut entry: Entry,
        d: char,
    ) -> State {
        match d {
            '#' => {
                self.interrupt();
                match entry.finish() {
                    Entered::Empty => self.menu_after(browse, Vec::new()),
                    Entered::TooLong => self.menu_after(browse, vec![pr(p::INVALID_MAILBOX)]),
                    Entered::Digits(to_user) => {
                        let Some(i) = self.current(&browse) else {
                            return self.menu_after(browse, Vec::new());
                        };
                        let msg = self.id(i).to_string();
                        self.store(StoreOp::Forward { msg, to_user }, Pending::Foreground);
                        State::Forwarding { browse }
                    }
                }
            }
            '*' => {
                self.interrupt();
                self.menu_after(browse, Vec::new())
            }
            _ => {
                self.typed(now, &mut entry, d);
                State::ForwardEntry { browse, entry }
            }
        }
    }

    pub(super) fn forwarded(&mut self, browse: Browse, reply: StoreReply) -> State {
        match reply {
            StoreReply::Forwarded(Ok(())) => self.menu_after(browse, vec![pr(p::FORWARDED)]),
            StoreReply::Forwarded(Err(ForwardError::NoSuchMailbox)) => {
                self.menu_after(browse, vec![pr(p::INVALID_MAILBOX)])
            }
            StoreReply::Unreachable => self.menu_after(browse, vec![pr(p::CANNOT_NOW)]),
            other => self.store_failed(&other),
        }
    }

    /// The reply to `DeleteNow` (`7` on a remote message).
    pub(super) fn deleted_now(&mut self, browse: Browse, reply: StoreReply) -> State {
        match reply {
            StoreReply::Done => {
                if let Some(m) = self.current(&browse).and_then(|i| self.msgs.get_mut(i)) {
                    m.deleted = true;
                }
                self.menu_after(browse, vec![pr(p::DELETED)])
            }
            StoreReply::Unreachable => self.menu_after(browse, vec![pr(p::CANNOT_NOW)]),
            other => self.store_failed(&other),
        }
    }
}
