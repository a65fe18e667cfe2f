//! The deposit flow (SPEC §6) as a pure state machine.
//!
//! greeting → beep → recording → (saved prompt) → hang up. Inputs are
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
}

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
    pub fn on_dtmf(&mut self, _now: Instant, digit: char) {
        if digit != '#' {
            return;
        }
        match self.state {
            State::Greeting => {
                self.actions.push_back(Action::StopPlayback);
                self.play_beep();
            }
            State::Recording => self.close(CloseReason::Pound),
            _ => {}
        }
    }

    /// The current playlist has been sent completely.
    pub fn on_playback_done(&mut self, _now: Instant) {
        match self.state {
            State::Greeting => self.play_beep(),
            State::Beep => self.start_recording(),
            State::Farewell => self.hang_up(),
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
            self.close(CloseReason::Silence);
        }
    }

    /// The recording reached the maximum length.
    pub fn on_max_length(&mut self, _now: Instant) {
        if matches!(self.state, State::Recording) {
            self.close(CloseReason::MaxLength);
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
            (_, CloseReason::MediaTimeout) => {
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
        if matches!(self.state, State::Recording) {
            self.state = State::Closing {
                reason: CloseReason::Pound,
            };
            self.on_recording_closed(now, RecordingOutcome::Failed);
        }
    }

    /// The caller hung up (BYE or CANCEL).
    pub fn on_hangup(&mut self, _now: Instant) {
        match self.state {
            State::Recording => {
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
            State::Done => {}
            _ => self.finish(),
        }
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.media_deadline() else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            State::Recording => self.close(CloseReason::MediaTimeout),
            State::Closing { .. } | State::Done | State::Idle => {}
            _ => self.hang_up(),
        }
    }

    /// The earliest deadline of this call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Idle | State::Done | State::Closing { .. } => None,
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
        }
    }

    fn limits() -> DepositLimits {
        DepositLimits {
            max_message: Duration::from_secs(180),
            min_message: Duration::from_secs(1),
            silence: Duration::from_secs(10),
            media_timeout: Duration::from_secs(30),
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
        let t0 = Instant::now();
        let mut d = Deposit::new(limits(), prompts());
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
}
