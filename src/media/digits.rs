//! One key press = one digit, whichever way it arrives (SPEC §7).
//!
//! A call's digits come from up to three sources: RFC 4733 telephone-events
//! (reported at key release, by `RtpReceiver`), SIP INFO (usually sent at key
//! press) and in-band tones (reported at key release, by `InbandDetector`).
//! The shell runs the in-band detector only when the call negotiated no
//! telephone-event, but some gateways send RFC 4733 *and* INFO for the same
//! key, and a caller without telephone-event may still get INFO relayed.
//!
//! # The rule
//! Each source already reports one key press once: the RFC 4733 decoder
//! deduplicates by event timestamp, the SIP layer absorbs retransmitted INFO
//! (same CSeq), the in-band detector needs a pause between keys. So reports
//! from the *same* source are never merged: "11" typed quickly stays two
//! digits however close they arrive.
//!
//! Across sources, a report is the same key press as an earlier accepted
//! one when it carries the same digit, arrives within `window` of it, and
//! that press has not yet been matched by this source. Each press is matched
//! at most once per source, so "11" sent both as INFO and as RFC 4733 gives
//! two digits (INFO 1, RFC 1, INFO 1, RFC 1 pairs up as two presses) even
//! when the reports interleave.
//!
//! The window covers the skew between sources, at most the key press
//! duration (INFO at press, RFC 4733 at release) plus jitter buffer and
//! network delays: [`DEFAULT_DEDUP_WINDOW`] is 500 ms, enough for presses up
//! to about 400 ms. A longer window can only merge presses when the sources
//! disagree (one misses a press, the other misses the next press of the same
//! key).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::dtmf::{digit_to_event, event_to_digit};

/// The recommended cross-source window (see the module docs).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_millis(500);

/// Presses remembered; a caller cannot press more keys than this in a window.
const HISTORY_CAP: usize = 16;

/// Where a digit report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigitSource {
    /// RTP telephone-event.
    Rfc4733,
    /// SIP INFO (`application/dtmf-relay`, `application/dtmf`).
    Info,
    /// Tones in the audio.
    Inband,
}

impl DigitSource {
    const fn bit(self) -> u8 {
        match self {
            DigitSource::Rfc4733 => 1,
            DigitSource::Info => 2,
            DigitSource::Inband => 4,
        }
    }
}

/// A key press accepted recently.
#[derive(Debug, Clone, Copy)]
struct Press {
    at: Instant,
    digit: char,
    /// Sources that reported it ([`DigitSource::bit`]).
    seen: u8,
}

/// Merges digit reports from several sources into key presses. Pure: the
/// time comes in with each report.
#[derive(Debug, Clone)]
pub struct DigitDeduper {
    window: Duration,
    recent: VecDeque<Press>,
}

impl DigitDeduper {
    /// A deduper matching reports of different sources up to `window` apart.
    pub fn new(window: Duration) -> Self {
        DigitDeduper {
            window,
            recent: VecDeque::with_capacity(HISTORY_CAP),
        }
    }

    /// Returns `Some(digit)` if this report is a new key press, `None` if it
    /// is a press already reported by another source (or not a DTMF digit).
    /// Letters come out upper case.
    pub fn accept(&mut self, now: Instant, source: DigitSource, digit: char) -> Option<char> {
        let Some(digit) = digit_to_event(digit).and_then(event_to_digit) else {
            tracing::debug!(?source, ?digit, "not a DTMF digit, ignored");
            return None;
        };
        let window = self.window;
        self.recent
            .retain(|p| now.saturating_duration_since(p.at) <= window);
        let bit = source.bit();
        if let Some(p) = self
            .recent
            .iter_mut()
            .find(|p| p.digit == digit && p.seen & bit == 0)
        {
            p.seen |= bit;
            tracing::trace!(?source, %digit, "digit already reported by another source");
            return None;
        }
        if self.recent.len() == HISTORY_CAP {
            self.recent.pop_front();
        }
        self.recent.push_back(Press {
            at: now,
            digit,
            seen: bit,
        });
        Some(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use DigitSource::{Inband, Info, Rfc4733};

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Runs reports `(ms, source, digit)` and returns the accepted digits.
    fn run(window_ms: u64, reports: &[(u64, DigitSource, char)]) -> String {
        let t0 = Instant::now();
        let mut d = DigitDeduper::new(Duration::from_millis(window_ms));
        reports
            .iter()
            .filter_map(|&(t, s, c)| d.accept(ms(t0, t), s, c))
            .collect()
    }

    #[test]
    fn single_source_never_merges() {
        // A quick "11" by INFO, 100 ms apart, and by RFC 4733 in one burst.
        assert_eq!(run(500, &[(0, Info, '1'), (100, Info, '1')]), "11");
        assert_eq!(run(500, &[(0, Rfc4733, '1'), (0, Rfc4733, '1')]), "11");
        assert_eq!(run(500, &[(0, Inband, '5'), (150, Inband, '5')]), "55");
    }

    #[test]
    fn same_press_from_two_sources_is_one_digit() {
        // Gateway sending INFO at press and RFC 4733 at release.
        assert_eq!(run(500, &[(0, Info, '5'), (180, Rfc4733, '5')]), "5");
        // The other order, and in-band with INFO.
        assert_eq!(run(500, &[(0, Rfc4733, '#'), (40, Info, '#')]), "#");
        assert_eq!(run(500, &[(0, Info, '0'), (150, Inband, '0')]), "0");
        // All three.
        assert_eq!(
            run(
                500,
                &[(0, Info, '7'), (120, Rfc4733, '7'), (160, Inband, '7')]
            ),
            "7"
        );
    }

    #[test]
    fn double_press_from_two_sources_is_two_digits() {
        // INFO at press, RFC 4733 at release: the reports interleave.
        let r = [
            (0, Info, '1'),
            (120, Rfc4733, '1'),
            (250, Info, '1'),
            (370, Rfc4733, '1'),
        ];
        assert_eq!(run(500, &r), "11");
        // The second INFO before the first RFC digit (slow RTP path).
        let r = [
            (0, Info, '1'),
            (200, Info, '1'),
            (230, Rfc4733, '1'),
            (380, Rfc4733, '1'),
        ];
        assert_eq!(run(500, &r), "11");
    }

    #[test]
    fn different_digits_are_not_merged() {
        let r = [
            (0, Info, '1'),
            (10, Rfc4733, '2'),
            (100, Rfc4733, '1'),
            (110, Info, '2'),
        ];
        assert_eq!(run(500, &r), "12");
    }

    #[test]
    fn outside_the_window_is_a_new_press() {
        assert_eq!(run(200, &[(0, Info, '3'), (201, Rfc4733, '3')]), "33");
        assert_eq!(run(200, &[(0, Info, '3'), (200, Rfc4733, '3')]), "3");
    }

    #[test]
    fn letters_and_invalid() {
        assert_eq!(
            run(500, &[(0, Info, 'a'), (50, Rfc4733, 'A'), (60, Info, 'x')]),
            "A"
        );
    }

    #[test]
    fn history_is_bounded() {
        let t0 = Instant::now();
        let mut d = DigitDeduper::new(DEFAULT_DEDUP_WINDOW);
        for i in 0..1000u64 {
            assert_eq!(d.accept(ms(t0, i), Info, '9'), Some('9'));
        }
        assert!(d.recent.len() <= HISTORY_CAP);
    }

    proptest! {
        /// Presses reported by two sources, each with its own delay (less
        /// than the window apart), come out exactly once each.
        #[test]
        fn two_sources_give_each_press_once(
            presses in proptest::collection::vec((0usize..16, 100u64..400), 1..20),
            skew in proptest::collection::vec(0u64..300, 20),
        ) {
            let keys: Vec<char> = "0123456789*#ABCD".chars().collect();
            let mut t = 0;
            let mut reports = Vec::new();
            let mut expected = String::new();
            for (i, &(k, gap)) in presses.iter().enumerate() {
                t += gap;
                reports.push((t, Info, keys[k]));
                reports.push((t + skew[i], Rfc4733, keys[k]));
                expected.push(keys[k]);
            }
            reports.sort_by_key(|r| r.0);
            prop_assert_eq!(run(500, &reports), expected);
        }
    }
}
