//! Mailbox options: greetings (record, review, erase) and the PIN change.

use std::time::Instant;

use crate::store::GreetingKind;

use super::entry::{Entered, Entry};
use super::menu::Menu;
use super::phrases::{p, pr};
use super::pin_rules::new_pin_allowed;
use super::state::{Pending, PinStep, State};
use super::types::{Audio, StoreOp, StoreReply};

impl Menu {
    fn options_menu(&mut self, first: Option<&'static str>) -> State {
        let mut say: Vec<Audio> = first.map(pr).into_iter().collect();
        say.push(pr(p::OPTIONS_MENU));
        self.say(say);
        State::Options
    }

    pub(super) fn options_key(&mut self, d: char) -> State {
        self.interrupt();
        match d {
            '1' => self.record(GreetingKind::Unavailable),
            '2' => self.record(GreetingKind::Busy),
            '3' => self.record(GreetingKind::Name),
            '4' => {
                self.say(vec![pr(p::TEMP_GREETING_MENU)]);
                State::TempMenu
            }
            '5' => {
                self.say(vec![pr(p::ENTER_NEW_PIN)]);
                State::NewPin(PinStep::First(Entry::default()))
            }
            '*' | '#' => {
                self.say(vec![pr(p::MAIN_MENU)]);
                State::Main
            }
            _ => self.options_menu(Some(p::INVALID_OPTION)),
        }
    }

    pub(super) fn temp_key(&mut self, d: char) -> State {
        self.interrupt();
        match d {
            '1' => self.record(GreetingKind::Temporary),
            '2' => {
                self.store(
                    StoreOp::DeleteGreeting {
                        kind: GreetingKind::Temporary,
                    },
                    Pending::Foreground,
                );
                State::ErasingGreeting
            }
            '*' | '#' => self.options_menu(None),
            _ => {
                self.say(vec![pr(p::INVALID_OPTION), pr(p::TEMP_GREETING_MENU)]);
                State::TempMenu
            }
        }
    }

    /// "Record after the tone", beep, then record.
    fn record(&mut self, kind: GreetingKind) -> State {
        self.say(vec![pr(p::RECORD_AFTER_TONE), pr(p::BEEP)]);
        State::RecordIntro { kind }
    }

    pub(super) fn record_intro_key(&mut self, now: Instant, kind: GreetingKind, d: char) -> State {
        match d {
            // Skip the instructions: record at once.
            '#' => {
                self.interrupt();
                self.start_recording(now, kind)
            }
            '*' => {
                self.interrupt();
                self.options_menu(None)
            }
            _ => State::RecordIntro { kind },
        }
    }

    pub(super) fn recording_key(&mut self, now: Instant, kind: GreetingKind, d: char) -> State {
        if d == '#' {
            self.interrupt();
            self.stop_recording(now, kind)
        } else {
            State::Recording { kind }
        }
    }

    pub(super) fn recorded(
        &mut self,
        _now: Instant,
        kind: GreetingKind,
        duration_ms: u64,
    ) -> State {
        if duration_ms == 0 {
            // Nothing to keep.
            return self.options_menu(None);
        }
        self.say(vec![pr(p::REVIEW_RECORDING)]);
        State::Review { kind }
    }

    pub(super) fn review_key(&mut self, kind: GreetingKind, d: char) -> State {
        self.interrupt();
        match d {
            '1' => {
                self.store(StoreOp::SaveGreeting { kind }, Pending::Foreground);
                State::SavingGreeting
            }
            '2' => {
                self.say(vec![Audio::LastRecording, pr(p::REVIEW_RECORDING)]);
                State::Review { kind }
            }
            '3' => self.record(kind),
            '*' => self.options_menu(None),
            _ => {
                self.say(vec![pr(p::INVALID_OPTION), pr(p::REVIEW_RECORDING)]);
                State::Review { kind }
            }
        }
    }

    pub(super) fn new_pin_key(&mut self, now: Instant, step: PinStep, d: char) -> State {
        match (step, d) {
            (_, '*') => {
                self.interrupt();
                self.options_menu(None)
            }
            (PinStep::First(mut entry), '#') => {
                self.interrupt();
                match entry.finish() {
                    Entered::Digits(pin) if new_pin_allowed(&pin) => {
                        self.say(vec![pr(p::REENTER_PIN)]);
                        State::NewPin(PinStep::Second {
                            first: pin,
                            entry: Entry::default(),
                        })
                    }
                    _ => self.options_menu(Some(p::PIN_INVALID)),
                }
            }
            (PinStep::Second { first, mut entry }, '#') => {
                self.interrupt();
                match entry.finish() {
                    Entered::Digits(pin) if pin == first => {
                        self.store(StoreOp::SetPin { pin }, Pending::Foreground);
                        State::SettingPin
                    }
                    _ => self.options_menu(Some(p::PIN_MISMATCH)),
                }
            }
            (PinStep::First(mut entry), _) => {
                self.typed(now, &mut entry, d);
                State::NewPin(PinStep::First(entry))
            }
            (PinStep::Second { first, mut entry }, _) => {
                self.typed(now, &mut entry, d);
                State::NewPin(PinStep::Second { first, entry })
            }
        }
    }

    /// The reply to `SaveGreeting`, `DeleteGreeting` or `SetPin`.
    pub(super) fn options_done(&mut self, waiting: State, reply: StoreReply) -> State {
        if reply != StoreReply::Done {
            return self.store_failed(&reply);
        }
        let said = match waiting {
            State::SavingGreeting => p::GREETING_SAVED,
            State::ErasingGreeting => p::TEMP_GREETING_ERASED,
            _ => p::PIN_CHANGED,
        };
        self.options_menu(Some(said))
    }
}
