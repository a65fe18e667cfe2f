//! The deposit flow (SPEC §6) as a pure state machine.
//!
//! greeting → beep → recording → (review) → (saved prompt) → hang up.
//! With review on (`ext.review`), the end of the recording leads to a
//! menu: 1 accept, 2 listen, 3 re-record, 4 mark urgent (or remove the
//! mark). With an operator configured, `0` during the greeting or the
//! recording asks the driver to transfer the caller (REFER). Inputs are
//! events with the current time; outputs are [`Action`]s that the call
//! driver carries out (play audio, start/stop the recording, send BYE).
//! The machine owns its deadlines (maximum message length, media timeout)
//! and exposes the earliest one through [`Deposit::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Clip;

/// Limits of one deposit, from the instance's `ext` settings.
#[derive(Debug, Clone)]
pub struct DepositLimits {
    /// Longest message; the recording stops there with a prompt.
    pub max_message: Duration,
    /// Messages shorter than this are dropped.
    pub min_message: Duration,
    /// This much continuous silence ends the recording.
    pub silence: Duration,
    /// No RTP at all for this long ends the call.
    pub media_timeout: Duration,
    /// Offer the review menu after the recording (`ext.review`).
    pub review: bool,
    /// An operator is configured: `0` transfers the caller.
    pub operator: bool,
    /// After a transfer to the operator, keep what was recorded
    /// (`ext.operator_keeps_recording`).
    pub operator_keeps_recording: bool,
    /// `*` during the greeting leads to the login of this same mailbox
    /// (the mailbox exists).
    pub login: bool,
}

/// How long the review menu waits for a key after its prompt.
pub const REVIEW_WAIT: Duration = Duration::from_secs(5);
/// The review prompt is played this many times without an answer; then
/// the message is accepted.
pub const REVIEW_PLAYS: u8 = 3;
/// How long a transfer may take, from the REFER to the final NOTIFY.
pub const TRANSFER_WAIT: Duration = Duration::from_secs(30);

/// The keys of the review menu.
pub mod review_keys {
    /// Accept the message.
    pub const ACCEPT: char = '1';
    /// Listen to it.
    pub const LISTEN: char = '2';
    /// Record it again.
    pub const RERECORD: char = '3';
    /// Mark it urgent (again: remove the mark).
    pub const URGENT: char = '4';
}

/// The key that asks for the operator during the greeting or recording.
pub const OPERATOR_KEY: char = '0';
/// The key that leads from the greeting to the mailbox's login.
pub const LOGIN_KEY: char = '*';

/// The prompts the flow may need, already resolved for the call's language.
#[derive(Debug, Clone, Default)]
pub struct DepositPrompts {
    /// The greeting playlist (temporary, busy/unavailable, or the default).
    pub greeting: Vec<Clip>,
    /// The tone before recording.
    pub beep: Vec<Clip>,
    /// "Your message has been saved. Goodbye."
    pub saved: Vec<Clip>,
    /// "Goodbye."
    pub goodbye: Vec<Clip>,
    /// "Sorry, the mailbox is full."
    pub mailbox_full: Vec<Clip>,
    /// "The maximum message length has been reached."
    pub max_length: Vec<Clip>,
    /// "Sorry, your message cannot be taken now."
    pub cannot_take: Vec<Clip>,
    /// The review menu: "Press 1 to accept, 2 to listen, 3 to re-record,
    /// 4 to mark it urgent."
    pub review: Vec<Clip>,
    /// "The message is marked urgent."
    pub urgent_on: Vec<Clip>,
    /// "The message is no longer marked urgent."
    pub urgent_off: Vec<Clip>,
    /// "Invalid option."
    pub invalid_option: Vec<Clip>,
    /// "Please hold, transferring your call."
    pub transferring: Vec<Clip>,
    /// "Sorry, the transfer is not possible."
    pub transfer_failed: Vec<Clip>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Replace whatever is playing with this playlist; report
    /// [`Deposit::on_playback_done`] when it has been sent completely.
    Play(Vec<Clip>),
    /// Stop the playback at once (a key interrupted it).
    StopPlayback,
    /// Start writing the caller's audio. The driver reports
    /// [`Deposit::on_silence`] once `silence` of continuous silence was
    /// recorded and [`Deposit::on_max_length`] at `max` of recorded audio.
    StartRecording { silence: Duration, max: Duration },
    /// Stop writing; keep the message when at least `min` was recorded, and
    /// report the outcome with [`Deposit::on_recording_closed`].
    StopRecording { min: Duration },
    /// Stop writing for now, keeping the recording open (review, transfer).
    PauseRecording,
    /// Go on writing into the paused recording (the silence count starts
    /// again).
    ResumeRecording,
    /// Drop the open recording (re-record, or a transfer that keeps
    /// nothing); nothing to report.
    DiscardRecording,
    /// Play the recording made so far; report
    /// [`Deposit::on_playback_done`] when it has been sent.
    PlayRecording,
    /// Mark the open recording urgent (or not).
    SetUrgent(bool),
    /// Transfer the caller to the operator (REFER); report the end with
    /// [`Deposit::on_transfer`].
    Transfer,
    /// The caller asked for the login of this mailbox: hand the call to
    /// the mailbox menu (PIN asked), or report [`Deposit::on_login_refused`].
    Login,
    /// Send BYE (vmail hangs up).
    Hangup,
    /// The call is over for the flow: release everything.
    Done,
}

/// Outcome of closing a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingOutcome {
    /// Stored in the mailbox.
    Stored,
    /// Too short: dropped.
    Discarded,
    /// The store failed (disk full, I/O error): nothing was stored.
    Failed,
}

/// Why the recording is being closed, which decides what is said next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseReason {
    /// `#`: say "saved", then hang up.
    Pound,
    /// Silence: say goodbye, then hang up.
    Silence,
    /// Maximum length: say so, then hang up.
    MaxLength,
    /// The caller hung up: nothing to say.
    CallerHungUp,
    /// No media: hang up without a word.
    MediaTimeout,
    /// Transferred to the operator: hang up without a word.
    Transferred,
}

/// Where the flow goes on after a transfer that did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resume {
    /// `0` came during the greeting: the beep, then a new recording.
    Greeting,
    /// `0` came during the recording: the beep, then the same recording.
    Recording,
}

#[derive(Debug)]
enum State {
    /// Not started yet.
    Idle,
    /// Playing the greeting; `#` skips to the beep.
    Greeting,
    /// Playing the beep.
    Beep,
    /// Recording the caller.
    Recording,
    /// The review menu: its prompt is playing (`deadline` unset) or vmail
    /// waits for a key until `deadline`; `plays` counts the prompts
    /// without an answer.
    Review {
        plays: u8,
        deadline: Option<Instant>,
        reason: CloseReason,
    },
    /// Playing the recording back to the caller.
    Listening { reason: CloseReason },
    /// Waiting for the transfer to the operator to end.
    Transferring { from: Resume, deadline: Instant },
    /// "Transfer not possible" and the beep, then back to `from`.
    Resuming { from: Resume },
    /// `*`: waiting for the driver to hand the call to the menu.
    LoginAsked,
    /// Waiting for the driver to close the recording.
    Closing { reason: CloseReason },
    /// Playing a last prompt, then BYE.
    Farewell,
    /// Over.
    Done,
}

/// One deposit call.
#[derive(Debug)]
pub struct Deposit {
    state: State,
    limits: DepositLimits,
    prompts: DepositPrompts,
    actions: VecDeque<Action>,
    last_media: Option<Instant>,
    started: Option<Instant>,
    urgent: bool,
}

/// How the call should begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Greeting, beep, record.
    Record,
    /// The mailbox is full: say so and hang up.
    MailboxFull,
    /// The store cannot take a message: say so and hang up.
    StoreUnavailable,
}

impl Deposit {
    /// A new deposit flow; nothing happens until [`Deposit::start`].
    pub fn new(limits: DepositLimits, prompts: DepositPrompts) -> Self {
        Deposit {
            state: State::Idle,
            limits,
            prompts,
            actions: VecDeque::new(),
            last_media: None,
            started: None,
            urgent: false,
        }
    }

    /// The call is answered (ACK received or 200 sent): begin.
    pub fn start(&mut self, now: Instant, opening: Opening) {
        if !matches!(self.state, State::Idle) {
            return;
        }
        self.started = Some(now);
        match opening {
            Opening::Record => {
                self.state = State::Greeting;
                let greeting = self.prompts.greeting.clone();
                if greeting.is_empty() {
                    self.play_beep();
                } else {
                    self.actions.push_back(Action::Play(greeting));
                }
            }
            Opening::MailboxFull => {
                let p = self.prompts.mailbox_full.clone();
                self.farewell(p);
            }
            Opening::StoreUnavailable => {
                let p = self.prompts.cannot_take.clone();
                self.farewell(p);
            }
        }
    }

    /// A DTMF digit from the caller.
    pub fn on_dtmf(&mut self, now: Instant, digit: char) {
        match (&self.state, digit) {
            (State::Greeting, '#') => {
                self.actions.push_back(Action::StopPlayback);
                self.play_beep();
            }
            (State::Recording, '#') => self.end_recording(CloseReason::Pound),
            (State::Greeting, LOGIN_KEY) if self.limits.login => {
                self.actions.push_back(Action::StopPlayback);
                self.state = State::LoginAsked;
                self.actions.push_back(Action::Login);
            }
            (State::Greeting, OPERATOR_KEY) if self.limits.operator => {
                self.actions.push_back(Action::StopPlayback);
                self.transfer(now, Resume::Greeting);
            }
            (State::Recording, OPERATOR_KEY) if self.limits.operator => {
                self.actions.push_back(Action::PauseRecording);
                self.transfer(now, Resume::Recording);
            }
            (State::Review { reason, .. } | State::Listening { reason }, _) => {
                let reason = *reason;
                self.review_key(reason, digit);
            }
            _ => {}
        }
    }

    /// The transfer to the operator ended: `true` when the caller is now
    /// with the operator (REFER accepted and a `2xx` sipfrag NOTIFY),
    /// `false` when it was refused, failed or took too long.
    pub fn on_transfer(&mut self, _now: Instant, succeeded: bool) {
        let State::Transferring { from, .. } = self.state else {
            return;
        };
        if succeeded {
            self.after_transfer(from);
            return;
        }
        self.state = State::Resuming { from };
        let mut p = self.prompts.transfer_failed.clone();
        p.extend(self.prompts.beep.iter().cloned());
        if p.is_empty() {
            self.resume(from);
        } else {
            self.actions.push_back(Action::Play(p));
        }
    }

    /// The call could not go to the login (rate limit of the source):
    /// on to the beep and the recording.
    pub fn on_login_refused(&mut self, _now: Instant) {
        if matches!(self.state, State::LoginAsked) {
            self.play_beep();
        }
    }

    /// Whether the message is marked urgent.
    pub fn is_urgent(&self) -> bool {
        self.urgent
    }

    /// The current playlist has been sent completely.
    pub fn on_playback_done(&mut self, now: Instant) {
        match self.state {
            State::Greeting => self.play_beep(),
            State::Beep => self.start_recording(),
            State::Farewell => self.hang_up(),
            State::Review {
                plays,
                deadline: None,
                reason,
            } => {
                self.state = State::Review {
                    plays,
                    deadline: Some(now + REVIEW_WAIT),
                    reason,
                };
            }
            State::Listening { reason } => self.review_menu(Vec::new(), reason),
            State::Resuming { from } => self.resume(from),
            _ => {}
        }
    }

    /// RTP arrived (any packet of the call's stream).
    pub fn on_media(&mut self, now: Instant) {
        self.last_media = Some(now);
    }

    /// The recording has seen `silence` of continuous silence.
    pub fn on_silence(&mut self, _now: Instant) {
        if matches!(self.state, State::Recording) {
            self.end_recording(CloseReason::Silence);
        }
    }

    /// The recording reached the maximum length.
    pub fn on_max_length(&mut self, _now: Instant) {
        if matches!(self.state, State::Recording) {
            self.end_recording(CloseReason::MaxLength);
        }
    }

    /// The driver closed the recording.
    pub fn on_recording_closed(&mut self, _now: Instant, outcome: RecordingOutcome) {
        let State::Closing { reason } = self.state else {
            return;
        };
        let prompt = match (outcome, reason) {
            (_, CloseReason::CallerHungUp) => {
                self.finish();
                return;
            }
            (_, CloseReason::MediaTimeout | CloseReason::Transferred) => {
                self.hang_up();
                return;
            }
            (RecordingOutcome::Failed, _) => self.prompts.cannot_take.clone(),
            (RecordingOutcome::Stored, CloseReason::Pound) => self.prompts.saved.clone(),
            (RecordingOutcome::Stored, CloseReason::MaxLength) => {
                let mut p = self.prompts.max_length.clone();
                p.extend(self.prompts.saved.iter().cloned());
                p
            }
            (RecordingOutcome::Discarded, CloseReason::MaxLength) => {
                let mut p = self.prompts.max_length.clone();
                p.extend(self.prompts.goodbye.iter().cloned());
                p
            }
            (RecordingOutcome::Stored, CloseReason::Silence) => self.prompts.saved.clone(),
            (RecordingOutcome::Discarded, _) => self.prompts.goodbye.clone(),
        };
        self.farewell(prompt);
    }

    /// Writing the recording failed while it was running (disk full...).
    pub fn on_store_error(&mut self, now: Instant) {
        if matches!(
            self.state,
            State::Recording | State::Review { .. } | State::Listening { .. }
        ) {
            self.state = State::Closing {
                reason: CloseReason::Pound,
            };
            self.on_recording_closed(now, RecordingOutcome::Failed);
        }
    }

    /// The caller hung up (BYE or CANCEL).
    pub fn on_hangup(&mut self, _now: Instant) {
        match self.state {
            // A caller who hangs up in review keeps the message.
            State::Recording | State::Review { .. } | State::Listening { .. } => {
                self.state = State::Closing {
                    reason: CloseReason::CallerHungUp,
                };
                self.actions.push_back(Action::StopRecording {
                    min: self.limits.min_message,
                });
            }
            State::Closing { .. } => {
                self.state = State::Closing {
                    reason: CloseReason::CallerHungUp,
                };
            }
            State::Transferring {
                from: Resume::Recording,
                ..
            }
            | State::Resuming {
                from: Resume::Recording,
            } => {
                // The caller asked for the operator: what was recorded
                // follows `operator_keeps_recording`.
                if self.limits.operator_keeps_recording {
                    self.state = State::Closing {
                        reason: CloseReason::CallerHungUp,
                    };
                    self.actions.push_back(Action::StopRecording {
                        min: self.limits.min_message,
                    });
                } else {
                    self.actions.push_back(Action::DiscardRecording);
                    self.finish();
                }
            }
            State::Done => {}
            _ => self.finish(),
        }
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Transferring { deadline, .. } = self.state {
            if now >= deadline {
                self.on_transfer(now, false);
            }
            return;
        }
        if let State::Review {
            plays,
            deadline: Some(deadline),
            reason,
        } = self.state
        {
            if now >= deadline {
                if plays >= REVIEW_PLAYS {
                    // No answer: the message is accepted.
                    self.close(CloseReason::Pound);
                } else {
                    self.state = State::Review {
                        plays: plays + 1,
                        deadline: None,
                        reason,
                    };
                    let p = self.prompts.review.clone();
                    self.play_review(p);
                }
                return;
            }
        }
        let Some(deadline) = self.media_deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            State::Recording
            | State::Review { .. }
            | State::Listening { .. }
            | State::Resuming {
                from: Resume::Recording,
            } => self.close(CloseReason::MediaTimeout),
            State::Closing { .. } | State::Done | State::Idle => {}
            _ => self.hang_up(),
        }
    }

    /// The earliest deadline of this call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle | State::Done | State::Closing { .. } => None,
            // The caller's side may hold the media while it transfers.
            State::Transferring { deadline, .. } => Some(deadline),
            State::Review {
                deadline: Some(d), ..
            } => Some(self.media_deadline().map_or(d, |m| m.min(d))),
            _ => self.media_deadline(),
        }
    }

    /// Next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True once the flow is over.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// True while the caller's audio is being recorded.
    pub fn is_recording(&self) -> bool {
        matches!(self.state, State::Recording)
    }

    fn media_deadline(&self) -> Option<Instant> {
        let base = self.last_media.or(self.started)?;
        Some(base + self.limits.media_timeout)
    }

    fn play_beep(&mut self) {
        self.state = State::Beep;
        let beep = self.prompts.beep.clone();
        if beep.is_empty() {
            self.start_recording();
        } else {
            self.actions.push_back(Action::Play(beep));
        }
    }

    fn start_recording(&mut self) {
        self.state = State::Recording;
        self.actions.push_back(Action::StartRecording {
            silence: self.limits.silence,
            max: self.limits.max_message,
        });
    }

    /// `#`, silence or the maximum length ended the recording: to the
    /// review menu when it is on, else close.
    fn end_recording(&mut self, reason: CloseReason) {
        if !self.limits.review {
            return self.close(reason);
        }
        self.actions.push_back(Action::PauseRecording);
        let first = if reason == CloseReason::MaxLength {
            self.prompts.max_length.clone()
        } else {
            Vec::new()
        };
        self.review_menu(first, reason);
    }

    /// Plays `first` then the review menu, and waits for a key.
    fn review_menu(&mut self, first: Vec<Clip>, reason: CloseReason) {
        self.state = State::Review {
            plays: 1,
            deadline: None,
            reason,
        };
        let mut p = first;
        p.extend(self.prompts.review.iter().cloned());
        self.play_review(p);
    }

    fn play_review(&mut self, p: Vec<Clip>) {
        if p.is_empty() {
            // No prompt to wait for: wait for the key at once.
            let State::Review { plays, reason, .. } = self.state else {
                return;
            };
            self.state = State::Review {
                plays,
                deadline: self.last_media.or(self.started).map(|t| t + REVIEW_WAIT),
                reason,
            };
        } else {
            self.actions.push_back(Action::Play(p));
        }
    }

    fn review_key(&mut self, reason: CloseReason, digit: char) {
        // Whatever is playing (the menu, the recording) stops.
        self.actions.push_back(Action::StopPlayback);
        match digit {
            review_keys::ACCEPT => self.close(CloseReason::Pound),
            review_keys::LISTEN => {
                self.state = State::Listening { reason };
                self.actions.push_back(Action::PlayRecording);
            }
            review_keys::RERECORD => {
                self.actions.push_back(Action::DiscardRecording);
                self.urgent = false;
                self.play_beep();
            }
            review_keys::URGENT => {
                self.urgent = !self.urgent;
                self.actions.push_back(Action::SetUrgent(self.urgent));
                let said = if self.urgent {
                    self.prompts.urgent_on.clone()
                } else {
                    self.prompts.urgent_off.clone()
                };
                self.review_menu(said, reason);
            }
            _ => {
                let said = self.prompts.invalid_option.clone();
                self.review_menu(said, reason);
            }
        }
    }

    fn transfer(&mut self, now: Instant, from: Resume) {
        self.state = State::Transferring {
            from,
            deadline: now + TRANSFER_WAIT,
        };
        self.actions.push_back(Action::Transfer);
        let hold = self.prompts.transferring.clone();
        if !hold.is_empty() {
            self.actions.push_back(Action::Play(hold));
        }
    }

    /// The caller is with the operator: keep (or drop) what was recorded,
    /// then hang up.
    fn after_transfer(&mut self, from: Resume) {
        match from {
            Resume::Greeting => self.hang_up(),
            Resume::Recording if self.limits.operator_keeps_recording => {
                self.close(CloseReason::Transferred)
            }
            Resume::Recording => {
                self.actions.push_back(Action::DiscardRecording);
                self.hang_up();
            }
        }
    }

    fn resume(&mut self, from: Resume) {
        match from {
            Resume::Greeting => self.start_recording(),
            Resume::Recording => {
                self.state = State::Recording;
                self.actions.push_back(Action::ResumeRecording);
            }
        }
    }

    fn close(&mut self, reason: CloseReason) {
        self.state = State::Closing { reason };
        self.actions.push_back(Action::StopRecording {
            min: self.limits.min_message,
        });
    }

    fn farewell(&mut self, prompt: Vec<Clip>) {
        if prompt.is_empty() {
            self.hang_up();
        } else {
            self.state = State::Farewell;
            self.actions.push_back(Action::Play(prompt));
        }
    }

    fn hang_up(&mut self) {
        self.actions.push_back(Action::Hangup);
        self.finish();
    }

    fn finish(&mut self) {
        if !matches!(self.state, State::Done) {
            self.state = State::Done;
            self.actions.push_back(Action::Done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn clip(n: usize) -> Clip {
        Clip::new(vec![0i16; n])
    }

    fn prompts() -> DepositPrompts {
        DepositPrompts {
            greeting: vec![clip(1), clip(2)],
            beep: vec![clip(3)],
            saved: vec![clip(4)],
            goodbye: vec![clip(5)],
            mailbox_full: vec![clip(6)],
            max_length: vec![clip(7)],
            cannot_take: vec![clip(8)],
            review: vec![clip(9)],
            urgent_on: vec![clip(10)],
            urgent_off: vec![clip(11)],
            invalid_option: vec![clip(12)],
            transferring: vec![clip(13)],
            transfer_failed: vec![clip(14)],
        }
    }

    fn limits() -> DepositLimits {
        DepositLimits {
            max_message: Duration::from_secs(180),
            min_message: Duration::from_secs(1),
            silence: Duration::from_secs(10),
            media_timeout: Duration::from_secs(30),
            review: false,
            operator: false,
            operator_keeps_recording: true,
            login: false,
        }
    }

    fn drain(d: &mut Deposit) -> Vec<Action> {
        std::iter::from_fn(|| d.poll_action()).collect()
    }

    fn lens(a: &Action) -> Vec<usize> {
        match a {
            Action::Play(p) => p.iter().map(|c| c.len()).collect(),
            _ => vec![],
        }
    }

    fn started() -> (Deposit, Instant) {
        started_with(limits())
    }

    fn started_with(l: DepositLimits) -> (Deposit, Instant) {
        let t0 = Instant::now();
        let mut d = Deposit::new(l, prompts());
        d.start(t0, Opening::Record);
        let a = drain(&mut d);
        assert_eq!(a.len(), 1);
        assert_eq!(lens(&a[0]), vec![1, 2]);
        (d, t0)
    }

    fn to_recording(d: &mut Deposit, t: Instant) {
        d.on_playback_done(t);
        let a = drain(d);
        assert_eq!(lens(&a[0]), vec![3]);
        d.on_playback_done(t);
        let a = drain(d);
        assert!(matches!(a[0], Action::StartRecording { .. }));
        assert!(d.is_recording());
    }

    #[test]
    fn greeting_beep_record_pound_saved_bye() {
        let (mut d, t0) = started();
        to_recording(&mut d, t0);
        d.on_dtmf(t0, '5');
        assert!(drain(&mut d).is_empty());
        d.on_dtmf(t0, '#');
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
        d.on_recording_closed(t0, RecordingOutcome::Stored);
        assert_eq!(lens(&drain(&mut d)[0]), vec![4]);
        d.on_playback_done(t0);
        assert_eq!(drain(&mut d), vec![Action::Hangup, Action::Done]);
        assert!(d.is_done());
    }

    #[test]
    fn pound_during_greeting_skips_play_beep() {
        let (mut d, t0) = started();
        d.on_dtmf(t0, '#');
        let a = drain(&mut d);
        assert_eq!(a[0], Action::StopPlayback);
        assert_eq!(lens(&a[1]), vec![3]);
        // A late "done" of the interrupted greeting must not skip the beep.
        d.on_playback_done(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StartRecording { .. }]));
    }

    #[test]
    fn bye_during_greeting_records_nothing() {
        let (mut d, t0) = started();
        d.on_hangup(t0);
        assert_eq!(drain(&mut d), vec![Action::Done]);
    }

    #[test]
    fn bye_while_recording_closes_then_done_without_bye() {
        let (mut d, t0) = started();
        to_recording(&mut d, t0);
        d.on_hangup(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
        d.on_recording_closed(t0, RecordingOutcome::Stored);
        assert_eq!(drain(&mut d), vec![Action::Done]);
    }

    #[test]
    fn silence_and_max_length() {
        let (mut d, t0) = started();
        to_recording(&mut d, t0);
        d.on_max_length(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
        d.on_recording_closed(t0, RecordingOutcome::Stored);
        assert_eq!(lens(&drain(&mut d)[0]), vec![7, 4]);

        let (mut d, t0) = started();
        to_recording(&mut d, t0);
        d.on_silence(t0);
        drain(&mut d);
        d.on_recording_closed(t0, RecordingOutcome::Discarded);
        assert_eq!(lens(&drain(&mut d)[0]), vec![5]);
    }

    #[test]
    fn full_mailbox_and_store_failure() {
        let t0 = Instant::now();
        let mut d = Deposit::new(limits(), prompts());
        d.start(t0, Opening::MailboxFull);
        assert_eq!(lens(&drain(&mut d)[0]), vec![6]);
        d.on_playback_done(t0);
        assert_eq!(drain(&mut d), vec![Action::Hangup, Action::Done]);

        let (mut d, t0) = started();
        to_recording(&mut d, t0);
        d.on_store_error(t0);
        assert_eq!(lens(&drain(&mut d)[0]), vec![8]);
    }

    #[test]
    fn media_timeout_on_simulated_time() {
        let (mut d, t0) = started();
        to_recording(&mut d, t0);
        d.on_media(t0 + Duration::from_secs(5));
        assert_eq!(d.poll_timeout(), Some(t0 + Duration::from_secs(35)));
        d.handle_timeout(t0 + Duration::from_secs(34));
        assert!(drain(&mut d).is_empty());
        d.handle_timeout(t0 + Duration::from_secs(35));
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
        d.on_recording_closed(t0, RecordingOutcome::Stored);
        assert_eq!(drain(&mut d), vec![Action::Hangup, Action::Done]);
    }

    #[test]
    fn media_timeout_during_greeting_hangs_up() {
        let (mut d, t0) = started();
        d.handle_timeout(t0 + Duration::from_secs(30));
        assert_eq!(drain(&mut d), vec![Action::Hangup, Action::Done]);
        assert_eq!(d.poll_timeout(), None);
    }

    fn reviewing() -> (Deposit, Instant) {
        let (mut d, t0) = started_with(DepositLimits {
            review: true,
            ..limits()
        });
        to_recording(&mut d, t0);
        d.on_dtmf(t0, '#');
        let a = drain(&mut d);
        assert_eq!(a[0], Action::PauseRecording);
        assert_eq!(lens(&a[1]), vec![9]);
        (d, t0)
    }

    #[test]
    fn review_accept_stores_and_says_saved() {
        let (mut d, t0) = reviewing();
        d.on_playback_done(t0);
        d.on_dtmf(t0, '1');
        let a = drain(&mut d);
        assert_eq!(a[0], Action::StopPlayback);
        assert!(matches!(a[1], Action::StopRecording { .. }));
        d.on_recording_closed(t0, RecordingOutcome::Stored);
        assert_eq!(lens(&drain(&mut d)[0]), vec![4]);
        assert!(!d.is_urgent());
    }

    #[test]
    fn review_listen_then_back_to_the_menu() {
        let (mut d, t0) = reviewing();
        d.on_dtmf(t0, '2');
        assert_eq!(
            drain(&mut d),
            vec![Action::StopPlayback, Action::PlayRecording]
        );
        d.on_playback_done(t0);
        assert_eq!(lens(&drain(&mut d)[0]), vec![9]);
    }

    #[test]
    fn review_rerecord_discards_and_beeps() {
        let (mut d, t0) = reviewing();
        d.on_dtmf(t0, '4');
        drain(&mut d);
        assert!(d.is_urgent());
        d.on_dtmf(t0, '3');
        let a = drain(&mut d);
        assert_eq!(a[0], Action::StopPlayback);
        assert_eq!(a[1], Action::DiscardRecording);
        assert_eq!(lens(&a[2]), vec![3]);
        // A new recording does not inherit the urgent mark.
        assert!(!d.is_urgent());
        d.on_playback_done(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StartRecording { .. }]));
        assert!(d.is_recording());
    }

    #[test]
    fn review_urgent_key_toggles_the_mark() {
        let (mut d, t0) = reviewing();
        d.on_dtmf(t0, '4');
        let a = drain(&mut d);
        assert_eq!(a[1], Action::SetUrgent(true));
        assert_eq!(lens(&a[2]), vec![10, 9]);
        d.on_dtmf(t0, '4');
        let a = drain(&mut d);
        assert_eq!(a[1], Action::SetUrgent(false));
        assert_eq!(lens(&a[2]), vec![11, 9]);
        d.on_dtmf(t0, '4');
        drain(&mut d);
        d.on_dtmf(t0, '7');
        assert_eq!(lens(&drain(&mut d)[1]), vec![12, 9]);
        d.on_dtmf(t0, '1');
        assert!(matches!(drain(&mut d)[1], Action::StopRecording { .. }));
        assert!(d.is_urgent());
    }

    #[test]
    fn review_without_answer_repeats_then_accepts() {
        let (mut d, t0) = reviewing();
        let mut t = t0;
        for _ in 1..REVIEW_PLAYS {
            d.on_playback_done(t);
            d.on_media(t);
            assert_eq!(d.poll_timeout(), Some(t + REVIEW_WAIT));
            d.handle_timeout(t + REVIEW_WAIT - Duration::from_millis(1));
            assert!(drain(&mut d).is_empty());
            t += REVIEW_WAIT;
            d.handle_timeout(t);
            assert_eq!(lens(&drain(&mut d)[0]), vec![9]);
        }
        d.on_playback_done(t);
        d.on_media(t);
        t += REVIEW_WAIT;
        d.handle_timeout(t);
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
        d.on_recording_closed(t, RecordingOutcome::Stored);
        assert_eq!(lens(&drain(&mut d)[0]), vec![4]);
    }

    #[test]
    fn hangup_in_review_keeps_the_message() {
        let (mut d, t0) = reviewing();
        d.on_hangup(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
        d.on_recording_closed(t0, RecordingOutcome::Stored);
        assert_eq!(drain(&mut d), vec![Action::Done]);

        let (mut d, t0) = reviewing();
        d.on_dtmf(t0, '2');
        drain(&mut d);
        d.on_hangup(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
    }

    #[test]
    fn max_length_with_review_says_so_first() {
        let (mut d, t0) = started_with(DepositLimits {
            review: true,
            ..limits()
        });
        to_recording(&mut d, t0);
        d.on_max_length(t0);
        let a = drain(&mut d);
        assert_eq!(a[0], Action::PauseRecording);
        assert_eq!(lens(&a[1]), vec![7, 9]);
    }

    fn with_operator(keeps: bool) -> DepositLimits {
        DepositLimits {
            operator: true,
            operator_keeps_recording: keeps,
            ..limits()
        }
    }

    #[test]
    fn zero_without_operator_does_nothing() {
        let (mut d, t0) = started();
        d.on_dtmf(t0, '0');
        assert!(drain(&mut d).is_empty());
        to_recording(&mut d, t0);
        d.on_dtmf(t0, '0');
        assert!(drain(&mut d).is_empty());
        assert!(d.is_recording());
    }

    #[test]
    fn operator_from_greeting_then_bye() {
        let (mut d, t0) = started_with(with_operator(true));
        d.on_dtmf(t0, '0');
        let a = drain(&mut d);
        assert_eq!(a[0], Action::StopPlayback);
        assert_eq!(a[1], Action::Transfer);
        assert_eq!(lens(&a[2]), vec![13]);
        assert_eq!(d.poll_timeout(), Some(t0 + TRANSFER_WAIT));
        d.on_transfer(t0, true);
        assert_eq!(drain(&mut d), vec![Action::Hangup, Action::Done]);
    }

    #[test]
    fn operator_from_recording_keeps_the_message() {
        let (mut d, t0) = started_with(with_operator(true));
        to_recording(&mut d, t0);
        d.on_dtmf(t0, '0');
        let a = drain(&mut d);
        assert_eq!(a[0], Action::PauseRecording);
        assert_eq!(a[1], Action::Transfer);
        d.on_transfer(t0, true);
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
        d.on_recording_closed(t0, RecordingOutcome::Stored);
        assert_eq!(drain(&mut d), vec![Action::Hangup, Action::Done]);
    }

    #[test]
    fn operator_from_recording_drops_the_message_when_told() {
        let (mut d, t0) = started_with(with_operator(false));
        to_recording(&mut d, t0);
        d.on_dtmf(t0, '0');
        drain(&mut d);
        d.on_transfer(t0, true);
        assert_eq!(
            drain(&mut d),
            vec![Action::DiscardRecording, Action::Hangup, Action::Done]
        );
    }

    #[test]
    fn refused_transfer_goes_on_recording() {
        let (mut d, t0) = started_with(with_operator(true));
        to_recording(&mut d, t0);
        d.on_dtmf(t0, '0');
        drain(&mut d);
        // Keys are ignored while the transfer runs.
        d.on_dtmf(t0, '#');
        assert!(drain(&mut d).is_empty());
        d.on_transfer(t0, false);
        assert_eq!(lens(&drain(&mut d)[0]), vec![14, 3]);
        d.on_playback_done(t0);
        assert_eq!(drain(&mut d), vec![Action::ResumeRecording]);
        assert!(d.is_recording());
        d.on_dtmf(t0, '#');
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
    }

    #[test]
    fn transfer_without_answer_times_out_and_records() {
        let (mut d, t0) = started_with(with_operator(true));
        d.on_dtmf(t0, '0');
        drain(&mut d);
        d.handle_timeout(t0 + TRANSFER_WAIT - Duration::from_millis(1));
        assert!(drain(&mut d).is_empty());
        d.handle_timeout(t0 + TRANSFER_WAIT);
        assert_eq!(lens(&drain(&mut d)[0]), vec![14, 3]);
        d.on_playback_done(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StartRecording { .. }]));
        // A late answer changes nothing.
        d.on_transfer(t0, true);
        assert!(drain(&mut d).is_empty());
    }

    #[test]
    fn hangup_during_transfer_follows_the_keep_setting() {
        let (mut d, t0) = started_with(with_operator(true));
        to_recording(&mut d, t0);
        d.on_dtmf(t0, '0');
        drain(&mut d);
        d.on_hangup(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StopRecording { .. }]));
        d.on_recording_closed(t0, RecordingOutcome::Stored);
        assert_eq!(drain(&mut d), vec![Action::Done]);

        let (mut d, t0) = started_with(with_operator(false));
        to_recording(&mut d, t0);
        d.on_dtmf(t0, '0');
        drain(&mut d);
        d.on_hangup(t0);
        assert_eq!(drain(&mut d), vec![Action::DiscardRecording, Action::Done]);
    }

    #[test]
    fn star_in_the_greeting_asks_for_the_login() {
        let (mut d, t0) = started();
        d.on_dtmf(t0, '*');
        assert!(drain(&mut d).is_empty(), "no login: * does nothing");

        let (mut d, t0) = started_with(DepositLimits {
            login: true,
            ..limits()
        });
        d.on_dtmf(t0, '*');
        assert_eq!(drain(&mut d), vec![Action::StopPlayback, Action::Login]);
        // Refused (rate limit): on to the beep and the recording.
        d.on_login_refused(t0);
        assert_eq!(lens(&drain(&mut d)[0]), vec![3]);
        d.on_playback_done(t0);
        assert!(matches!(drain(&mut d)[..], [Action::StartRecording { .. }]));
        // Not from the recording.
        d.on_dtmf(t0, '*');
        assert!(drain(&mut d).is_empty());
    }
}
