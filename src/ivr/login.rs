//! Login: mailbox number, PIN, the store's verdict, loading the messages.

use std::time::Instant;

use super::entry::{Entered, Entry};
use super::menu::Menu;
use super::phrases::{p, pr, you_have};
use super::state::{Msg, Pending, State};
use super::types::{PinReply, StoreOp, StoreReply};
use crate::store::{Folder, MessageMeta};

impl Menu {
    /// The first question: the PIN when the caller is known, else the
    /// mailbox number.
    pub(super) fn ask_login(&mut self) -> State {
        let (state, prompt) = self.login_question();
        self.say(vec![pr(prompt)]);
        state
    }

    fn login_question(&self) -> (State, &'static str) {
        match &self.known {
            Some(m) => (
                State::Pin {
                    mailbox: Some(m.clone()),
                    entry: Entry::default(),
                },
                p::ENTER_PIN,
            ),
            None => (State::Mailbox(Entry::default()), p::ENTER_MAILBOX),
        }
    }

    pub(super) fn mailbox_key(&mut self, now: Instant, mut entry: Entry, d: char) -> State {
        match d {
            '#' => {
                self.interrupt();
                let mailbox = match entry.finish() {
                    Entered::Empty => {
                        self.say(vec![pr(p::ENTER_MAILBOX)]);
                        return State::Mailbox(entry);
                    }
                    Entered::TooLong => None,
                    Entered::Digits(m) => Some(m),
                };
                self.say(vec![pr(p::ENTER_PIN)]);
                State::Pin {
                    mailbox,
                    entry: Entry::default(),
                }
            }
            '*' => {
                self.interrupt();
                self.say(vec![pr(p::ENTER_MAILBOX)]);
                State::Mailbox(Entry::default())
            }
            _ => {
                self.typed(now, &mut entry, d);
                State::Mailbox(entry)
            }
        }
    }

    pub(super) fn pin_key(
        &mut self,
        now: Instant,
        mailbox: Option<String>,
        mut entry: Entry,
        d: char,
    ) -> State {
        match d {
            '#' => {
                self.interrupt();
                match (mailbox, entry.finish()) {
                    (Some(mailbox), Entered::Digits(pin)) => {
                        self.store(
                            StoreOp::VerifyPin {
                                mailbox: mailbox.clone(),
                                pin,
                            },
                            Pending::Foreground,
                        );
                        State::CheckingPin { mailbox }
                    }
                    // An empty or overlong PIN, or an overlong mailbox
                    // number, is a wrong login without asking the store.
                    _ => self.login_failed(),
                }
            }
            '*' => {
                // Start the login over.
                self.interrupt();
                self.ask_login()
            }
            _ => {
                self.typed(now, &mut entry, d);
                State::Pin { mailbox, entry }
            }
        }
    }

    /// A wrong login (wrong PIN or no such mailbox: the same to the caller).
    fn login_failed(&mut self) -> State {
        self.login_failures = self.login_failures.saturating_add(1);
        if self.login_failures >= self.cfg.max_login_tries {
            return self.farewell(vec![pr(p::LOGIN_INCORRECT), pr(p::GOODBYE)]);
        }
        let (state, prompt) = self.login_question();
        self.say(vec![pr(p::LOGIN_INCORRECT), pr(prompt)]);
        state
    }

    pub(super) fn pin_checked(&mut self, mailbox: String, reply: StoreReply) -> State {
        match reply {
            StoreReply::Pin(PinReply::Ok) => {
                tracing::debug!(user = %mailbox, "retrieval login");
                self.user = Some(mailbox);
                self.store(StoreOp::LoadMessages, Pending::Foreground);
                State::Loading
            }
            StoreReply::Pin(PinReply::Wrong | PinReply::NoSuchMailbox) => self.login_failed(),
            StoreReply::Pin(PinReply::Locked { .. }) => {
                // The prompt ends with "goodbye".
                self.farewell(vec![pr(p::MAILBOX_LOCKED)])
            }
            StoreReply::Pin(PinReply::Busy) => {
                // The prompt ends with "goodbye".
                self.farewell(vec![pr(p::TRY_LATER)])
            }
            other => self.store_failed(&other),
        }
    }

    pub(super) fn loaded(&mut self, reply: StoreReply) -> State {
        let StoreReply::Messages {
            new,
            old,
            remote,
            partial,
        } = reply
        else {
            return self.store_failed(&reply);
        };
        // "Old" in the intro is the Old folder, as key 1 plays it after the
        // new ones; the other folders are reached with key 2.
        let in_old = old
            .iter()
            .filter(|m| matches!(m.folder, Folder::Inbox | Folder::Old))
            .count();
        let mut intro = you_have(new.len(), in_old);
        if partial {
            // After the counts: they leave out what could not be reached.
            intro.push(pr(p::SOME_UNREACHABLE));
        }
        intro.push(pr(p::MAIN_MENU));
        let remote = &remote;
        let tag = |was_new: bool| {
            move |mut meta: MessageMeta| {
                meta.folder = match meta.folder {
                    _ if was_new => Folder::Inbox,
                    Folder::Inbox => Folder::Old,
                    f => f,
                };
                Msg {
                    folder: meta.folder,
                    remote: remote.contains(&meta.id),
                    meta,
                    was_new,
                    moved: false,
                    deleted: false,
                }
            }
        };
        // Urgent messages first, each group still in order of arrival.
        let (mut new, mut old) = (new, old);
        new.sort_by_key(|m| !m.urgent);
        old.sort_by_key(|m| !m.urgent);
        self.msgs = new
            .into_iter()
            .map(tag(true))
            .chain(old.into_iter().map(tag(false)))
            .collect();
        self.say(intro);
        State::Main
    }
}
