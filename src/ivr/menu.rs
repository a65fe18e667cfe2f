//! [`Menu`]: the inputs, the outputs, and what every state shares
//! (playback, the one timer, the store queue, the end of the call).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::entry::Entry;
use super::phrases::{p, pr};
use super::state::{Msg, Pending, PinStep, State, Timer};
use super::types::{Action, Audio, MenuConfig, StoreOp, StoreReply};

/// Extra time given to the shell to report the end of a recording.
const RECORDING_GRACE: Duration = Duration::from_secs(5);

/// The voicemail retrieval menu of one call (SPEC §7), as a pure state
/// machine: feed it keys, "playback finished", recording ends, store
/// replies, timer expiries and the hang-up; carry out what
/// [`Menu::poll_action`] returns, in order.
///
/// Contract with the shell:
/// - [`Action::Play`] replaces any current playback; report
///   [`Menu::on_playback_done`] only for the latest `Play`, and not after
///   [`Action::StopPlayback`].
/// - At most one [`Action::Store`] is unanswered at a time: answer each with
///   [`Menu::on_store`], in order, always (a failure is
///   [`StoreReply::Failed`]). The `Delete` ops emitted at the end of the
///   call are the exception: they come in a batch before [`Action::Done`]
///   and need no answer.
/// - Call [`Menu::handle_timeout`] at [`Menu::poll_timeout`] and drain
///   [`Menu::poll_action`] after every input.
#[derive(Debug)]
pub struct Menu {
    pub(super) cfg: MenuConfig,
    /// The caller's own mailbox, when the shell knows it (PIN only).
    pub(super) known: Option<String>,
    /// The logged-in user.
    pub(super) user: Option<String>,
    pub(super) state: State,
    /// The messages loaded at login: `INBOX/` first, then `Old/`.
    pub(super) msgs: Vec<Msg>,
    actions: VecDeque<Action>,
    /// A `Play` is out and its "done" not yet reported.
    playing: bool,
    timer: Option<(Instant, Timer)>,
    /// Menu repetitions for lack of input since the last key.
    pub(super) repeats: u32,
    /// Failed logins in this call.
    pub(super) login_failures: u32,
    /// The unanswered store op.
    in_flight: Option<Pending>,
    /// Ops waiting for the one in flight (at most one `MoveToOld` per
    /// message plus one foreground op).
    queued: VecDeque<(StoreOp, Pending)>,
    /// A background change found its site unreachable: said before the
    /// next message menu.
    pub(super) notice: bool,
}

impl Menu {
    /// A menu for a call; `known_mailbox` is the caller's own mailbox user
    /// when the shell recognised the caller (then only the PIN is asked).
    pub fn new(cfg: MenuConfig, known_mailbox: Option<String>) -> Self {
        Menu {
            cfg,
            known: known_mailbox.filter(|m| !m.is_empty()),
            user: None,
            state: State::Idle,
            msgs: Vec::new(),
            actions: VecDeque::new(),
            playing: false,
            timer: None,
            repeats: 0,
            login_failures: 0,
            in_flight: None,
            queued: VecDeque::new(),
            notice: false,
        }
    }

    /// The call is answered: ask for the mailbox (or the PIN).
    pub fn start(&mut self, _now: Instant) {
        if matches!(self.state, State::Idle) {
            self.state = self.ask_login();
            tracing::debug!(known = self.known.is_some(), "retrieval menu started");
        }
    }

    /// A key from the caller (`0`-`9`, `*`, `#`; others are ignored).
    pub fn on_digit(&mut self, now: Instant, d: char) {
        if !matches!(d, '0'..='9' | '*' | '#') {
            return;
        }
        let state = self.take_state();
        self.state = match state {
            State::Idle => State::Idle,
            State::Done => State::Done,
            State::Mailbox(entry) => self.mailbox_key(now, entry, d),
            State::Pin { mailbox, entry } => self.pin_key(now, mailbox, entry, d),
            State::Main => self.main_key(d),
            State::FolderChoice => self.folder_key(d),
            State::SaveFolder { browse } => self.save_folder_key(browse, d),
            State::Browse(b) => self.browse_key(b, d),
            State::ForwardEntry { browse, entry } => self.forward_key(now, browse, entry, d),
            State::Options => self.options_key(d),
            State::TempMenu => self.temp_key(d),
            State::RecordIntro { kind } => self.record_intro_key(now, kind, d),
            State::Recording { kind } => self.recording_key(now, kind, d),
            State::Review { kind } => self.review_key(kind, d),
            State::NewPin(step) => self.new_pin_key(now, step, d),
            // Waiting for the store, for the recording to close, or saying
            // goodbye: keys are dropped.
            s @ (State::CheckingPin { .. }
            | State::Loading
            | State::Forwarding { .. }
            | State::Deleting { .. }
            | State::Saving { .. }
            | State::StoppingRecording { .. }
            | State::SavingGreeting
            | State::ErasingGreeting
            | State::SettingPin
            | State::Farewell) => s,
        };
    }

    /// The latest `Play` has been played completely.
    pub fn on_playback_done(&mut self, now: Instant) {
        if !self.playing {
            return;
        }
        self.playing = false;
        let state = self.take_state();
        self.state = match state {
            State::Farewell => self.hang_up(),
            State::RecordIntro { kind } => self.start_recording(now, kind),
            State::Browse(b) => self.browse_played(now, b),
            s => {
                if s.waits_for_key() {
                    self.arm(now, self.cfg.no_input, Timer::NoInput);
                }
                s
            }
        };
    }

    /// The greeting recording ended (after [`Action::StopRecording`] or at
    /// a limit of the shell), with this much audio.
    pub fn on_recording_done(&mut self, now: Instant, duration_ms: u64) {
        let state = self.take_state();
        self.state = match state {
            State::Recording { kind } | State::StoppingRecording { kind } => {
                self.recorded(now, kind, duration_ms)
            }
            s => s,
        };
    }

    /// The reply to the oldest unanswered store op. Ignored after the end.
    pub fn on_store(&mut self, _now: Instant, reply: StoreReply) {
        if matches!(self.state, State::Done | State::Idle) {
            return;
        }
        let Some(pending) = self.in_flight.take() else {
            tracing::warn!(?reply, "store reply with no operation out; ignored");
            return;
        };
        // Send the next queued op first, so that whatever the reply leads to
        // is queued behind it.
        if let Some((op, p)) = self.queued.pop_front() {
            self.in_flight = Some(p);
            self.actions.push_back(Action::Store(op));
        }
        if let Pending::Background(i) = pending {
            self.heard_reply(i, &reply);
            return;
        }
        let state = self.take_state();
        self.state = match state {
            State::CheckingPin { mailbox } => self.pin_checked(mailbox, reply),
            State::Loading => self.loaded(reply),
            State::Forwarding { browse } => self.forwarded(browse, reply),
            State::Deleting { browse } => self.deleted_now(browse, reply),
            State::Saving { browse, folder } => self.saved(browse, folder, reply),
            State::SavingGreeting | State::ErasingGreeting | State::SettingPin => {
                self.options_done(state, reply)
            }
            s => {
                tracing::warn!(
                    ?reply,
                    "store reply in a state that waits for none; ignored"
                );
                s
            }
        };
    }

    /// The caller hung up: the deletions of this call are emitted, then
    /// [`Action::Done`].
    pub fn on_hangup(&mut self, _now: Instant) {
        if !matches!(self.state, State::Done) {
            self.state = self.finish();
        }
    }

    /// A deadline from [`Menu::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some((at, timer)) = self.timer else {
            return;
        };
        if now < at {
            return;
        }
        self.timer = None;
        match timer {
            Timer::InterDigit => self.on_digit(now, '#'),
            Timer::NoInput => {
                self.repeats = self.repeats.saturating_add(1);
                let state = self.take_state();
                self.state = if self.repeats > self.cfg.max_repeats {
                    self.farewell(vec![pr(p::GOODBYE)])
                } else {
                    if let Some(prompt) = state.menu_prompt() {
                        self.say(vec![pr(prompt)]);
                    }
                    state
                };
            }
            Timer::RecordingGuard => {
                let state = self.take_state();
                self.state = match state {
                    State::Recording { kind } => self.stop_recording(now, kind),
                    State::StoppingRecording { kind } => {
                        tracing::warn!("the recording did not report its end; dropped");
                        self.recorded(now, kind, 0)
                    }
                    s => s,
                };
            }
        }
    }

    /// The next deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer.map(|(at, _)| at)
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True once [`Action::Done`] has been emitted.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The logged-in mailbox user.
    pub fn mailbox(&self) -> Option<&str> {
        self.user.as_deref()
    }

    // ---- shared helpers ------------------------------------------------

    fn take_state(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Idle)
    }

    /// A key is acted upon: stop the prompt, cancel the timer, and count
    /// the caller as present.
    pub(super) fn interrupt(&mut self) {
        if self.playing {
            self.playing = false;
            self.actions.push_back(Action::StopPlayback);
        }
        self.timer = None;
        self.repeats = 0;
    }

    /// An action that needs no bookkeeping.
    pub(super) fn push_action(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    /// Play a playlist (replacing what plays).
    pub(super) fn say(&mut self, items: Vec<Audio>) {
        self.timer = None;
        self.playing = true;
        self.actions.push_back(Action::Play(items));
    }

    /// A digit of an entry was typed: the entry ends after a pause.
    pub(super) fn typed(&mut self, now: Instant, entry: &mut Entry, d: char) {
        self.interrupt();
        entry.push(d, self.cfg.max_digits);
        self.arm(now, self.cfg.inter_digit, Timer::InterDigit);
    }

    pub(super) fn arm(&mut self, now: Instant, after: Duration, timer: Timer) {
        self.timer = Some((now + after, timer));
    }

    /// Issue a store op now, or after the one in flight.
    pub(super) fn store(&mut self, op: StoreOp, pending: Pending) {
        if self.in_flight.is_none() {
            self.in_flight = Some(pending);
            self.actions.push_back(Action::Store(op));
        } else {
            self.queued.push_back((op, pending));
        }
    }

    /// Begin recording a greeting.
    pub(super) fn start_recording(
        &mut self,
        now: Instant,
        kind: crate::store::GreetingKind,
    ) -> State {
        self.actions.push_back(Action::StartRecording {
            max: self.cfg.max_greeting,
        });
        self.arm(
            now,
            self.cfg.max_greeting + RECORDING_GRACE,
            Timer::RecordingGuard,
        );
        State::Recording { kind }
    }

    /// Ask the shell to stop the recording.
    pub(super) fn stop_recording(
        &mut self,
        now: Instant,
        kind: crate::store::GreetingKind,
    ) -> State {
        self.actions.push_back(Action::StopRecording);
        self.arm(now, RECORDING_GRACE, Timer::RecordingGuard);
        State::StoppingRecording { kind }
    }

    /// Say something, then hang up.
    pub(super) fn farewell(&mut self, items: Vec<Audio>) -> State {
        self.say(items);
        State::Farewell
    }

    /// A store op failed where the menu cannot go on sensibly.
    pub(super) fn store_failed(&mut self, reply: &StoreReply) -> State {
        tracing::warn!(?reply, "store operation failed; ending the call");
        self.farewell(vec![pr(p::GOODBYE)])
    }

    /// vmail hangs up.
    fn hang_up(&mut self) -> State {
        self.actions.push_back(Action::Hangup);
        self.finish()
    }

    /// The end: the deletions of this call, then `Done`. Nothing that is
    /// queued or playing matters any more.
    fn finish(&mut self) -> State {
        self.playing = false;
        self.timer = None;
        self.queued.clear();
        self.in_flight = None;
        // Remote messages marked deleted are gone at their site already.
        for m in self.msgs.iter().filter(|m| m.deleted && !m.remote) {
            self.actions.push_back(Action::Store(StoreOp::Delete {
                msg: m.meta.id.clone(),
            }));
        }
        self.actions.push_back(Action::Done);
        tracing::debug!(user = ?self.user, "retrieval menu done");
        State::Done
    }
}

impl State {
    /// True in the states where the caller is expected to press a key
    /// once the prompt has finished (the no-input timer runs there).
    fn waits_for_key(&self) -> bool {
        self.menu_prompt().is_some()
    }

    /// The prompt repeated when nothing is pressed.
    fn menu_prompt(&self) -> Option<&'static str> {
        Some(match self {
            State::Mailbox(_) => p::ENTER_MAILBOX,
            State::Pin { .. } => p::ENTER_PIN,
            State::Main => p::MAIN_MENU,
            State::FolderChoice | State::SaveFolder { .. } => p::FOLDERS_MENU,
            State::Browse(_) => p::MESSAGE_MENU,
            State::ForwardEntry { .. } => p::FORWARD_ENTER_MAILBOX,
            State::Options => p::OPTIONS_MENU,
            State::TempMenu => p::TEMP_GREETING_MENU,
            State::Review { .. } => p::REVIEW_RECORDING,
            State::NewPin(PinStep::First(_)) => p::ENTER_NEW_PIN,
            State::NewPin(PinStep::Second { .. }) => p::REENTER_PIN,
            _ => return None,
        })
    }
}
