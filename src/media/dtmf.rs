//! RFC 4733 telephone-event decoding: one key press = one [`DtmfEvent`].
//!
//! An event is identified by its RTP timestamp (all packets of one key press
//! carry the timestamp of its start). A digit is emitted exactly once: when
//! the first packet with the end bit arrives (the usual three end packets
//! count once), or when an event with a new timestamp starts while the
//! previous one never showed its end (end packets lost). Volume and duration
//! updates change nothing; events above 15 (flash, tones) are ignored.

use std::collections::VecDeque;

/// One key press received as RFC 4733 telephone-event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// `'0'..='9'`, `'*'`, `'#'`, `'A'..='D'`.
    pub digit: char,
    /// Duration of the key press as the sender reported it (last known).
    pub duration_ms: u32,
    /// RTP timestamp of the event start (its identity).
    pub rtp_ts: u32,
}

/// Maps an RFC 4733 event code 0–15 to its DTMF digit.
pub fn event_to_digit(event: u8) -> Option<char> {
    const DIGITS: &[u8; 16] = b"0123456789*#ABCD";
    DIGITS.get(usize::from(event)).map(|&b| char::from(b))
}

/// Maps a DTMF digit (case-insensitive letters) to its RFC 4733 event code.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => u8::try_from(u32::from(digit) - u32::from('0')).ok(),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => u8::try_from(u32::from(digit) - u32::from('A') + 12).ok(),
        'a'..='d' => u8::try_from(u32::from(digit) - u32::from('a') + 12).ok(),
        _ => None,
    }
}

/// The fields of one RFC 4733 event payload (first event block only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventPayload {
    pub event: u8,
    pub end: bool,
    pub duration: u16,
}

impl EventPayload {
    /// Parses the 4-byte event block; `None` if the payload is too short.
    pub(crate) fn parse(payload: &[u8]) -> Option<EventPayload> {
        match payload {
            [event, flags, d0, d1, ..] => Some(EventPayload {
                event: *event,
                end: flags & 0x80 != 0,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => None,
        }
    }
}

/// An event that started and has not ended yet.
#[derive(Debug, Clone, Copy)]
struct Pending {
    ts: u32,
    digit: char,
    duration: u16,
}

/// Max digits kept for `poll` (a caller cannot type faster than this between polls).
const QUEUE_CAP: usize = 32;

/// Deduplicating RFC 4733 decoder.
#[derive(Debug)]
pub(crate) struct DtmfDecoder {
    pending: Option<Pending>,
    /// Timestamp of the last emitted event: it and anything older is done.
    last_emitted: Option<u32>,
    queue: VecDeque<DtmfEvent>,
    clock_rate: u32,
}

impl DtmfDecoder {
    pub(crate) fn new(clock_rate: u32) -> Self {
        DtmfDecoder {
            pending: None,
            last_emitted: None,
            queue: VecDeque::with_capacity(QUEUE_CAP),
            clock_rate: clock_rate.max(1),
        }
    }

    pub(crate) fn set_clock_rate(&mut self, clock_rate: u32) {
        self.clock_rate = clock_rate.max(1);
    }

    /// Feeds one telephone-event packet (RTP timestamp + parsed payload).
    pub(crate) fn feed(&mut self, ts: u32, ev: EventPayload) {
        let Some(digit) = event_to_digit(ev.event) else {
            tracing::trace!(event = ev.event, "non-DTMF telephone-event ignored");
            return;
        };
        if let Some(done) = self.last_emitted {
            // Same event or an older one (a late retransmission): already handled.
            if ts.wrapping_sub(done) as i32 <= 0 {
                return;
            }
        }
        match self.pending {
            Some(p) if p.ts == ts => {
                if ev.end {
                    self.emit(ts, p.digit, ev.duration.max(p.duration));
                } else if let Some(p) = self.pending.as_mut() {
                    p.duration = p.duration.max(ev.duration);
                }
                return;
            }
            Some(p) if (ts.wrapping_sub(p.ts) as i32) < 0 => {
                // An older, never-seen event reordered behind the current one: ignore.
                return;
            }
            Some(p) => {
                // A new event while the previous never ended: its end packets were lost.
                self.emit(p.ts, p.digit, p.duration);
            }
            None => {}
        }
        if ev.end {
            self.emit(ts, digit, ev.duration);
        } else {
            self.pending = Some(Pending {
                ts,
                digit,
                duration: ev.duration,
            });
        }
    }

    /// Emits the event still open (end of call or stream change).
    pub(crate) fn finish(&mut self) {
        if let Some(p) = self.pending {
            self.emit(p.ts, p.digit, p.duration);
        }
    }

    /// Forgets the timestamp history (new SSRC: timestamps restart), keeping queued digits.
    pub(crate) fn reset_stream(&mut self) {
        self.finish();
        self.last_emitted = None;
    }

    pub(crate) fn poll(&mut self) -> Option<DtmfEvent> {
        self.queue.pop_front()
    }

    fn emit(&mut self, ts: u32, digit: char, duration: u16) {
        self.pending = None;
        self.last_emitted = Some(ts);
        let duration_ms =
            u32::try_from(u64::from(duration) * 1000 / u64::from(self.clock_rate)).unwrap_or(0);
        if self.queue.len() >= QUEUE_CAP {
            self.queue.pop_front();
        }
        tracing::trace!(%digit, ts, duration_ms, "RFC 4733 digit");
        self.queue.push_back(DtmfEvent {
            digit,
            duration_ms,
            rtp_ts: ts,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> EventPayload {
        EventPayload {
            event,
            end,
            duration,
        }
    }

    fn digits(d: &mut DtmfDecoder) -> String {
        std::iter::from_fn(|| d.poll()).map(|e| e.digit).collect()
    }

    #[test]
    fn mapping_round_trips() {
        for code in 0..16u8 {
            let d = event_to_digit(code).unwrap();
            assert_eq!(digit_to_event(d), Some(code));
        }
        assert_eq!(event_to_digit(16), None);
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(digit_to_event('b'), Some(13));
    }

    #[test]
    fn payload_parse() {
        assert_eq!(
            EventPayload::parse(&[1, 0x8a, 0x08, 0xc0]),
            Some(ev(1, true, 0x08c0))
        );
        assert_eq!(EventPayload::parse(&[1, 0x8a, 0x08]), None);
    }

    #[test]
    fn three_end_packets_one_digit() {
        let mut d = DtmfDecoder::new(8000);
        for dur in [0, 160, 320, 480] {
            d.feed(1000, ev(5, false, dur));
        }
        for _ in 0..3 {
            d.feed(1000, ev(5, true, 800));
        }
        let e = d.poll().unwrap();
        assert_eq!(e.digit, '5');
        assert_eq!(e.duration_ms, 100);
        assert_eq!(e.rtp_ts, 1000);
        assert!(d.poll().is_none());
    }

    #[test]
    fn lost_end_then_new_event() {
        let mut d = DtmfDecoder::new(8000);
        d.feed(1000, ev(1, false, 160));
        d.feed(1000, ev(1, false, 320));
        d.feed(5000, ev(2, false, 0));
        d.feed(5000, ev(2, true, 400));
        d.feed(5000, ev(2, true, 400));
        assert_eq!(digits(&mut d), "12");
        // A late update of the first event does not bring it back.
        d.feed(1000, ev(1, true, 400));
        assert_eq!(digits(&mut d), "");
    }

    #[test]
    fn same_digit_twice() {
        let mut d = DtmfDecoder::new(8000);
        for ts in [1000u32, 3000] {
            d.feed(ts, ev(1, false, 0));
            for _ in 0..3 {
                d.feed(ts, ev(1, true, 480));
            }
        }
        assert_eq!(digits(&mut d), "11");
    }

    #[test]
    fn other_events_ignored_and_finish_emits_open_event() {
        let mut d = DtmfDecoder::new(8000);
        d.feed(10, ev(16, true, 100));
        assert_eq!(digits(&mut d), "");
        d.feed(20, ev(11, false, 100));
        d.finish();
        assert_eq!(digits(&mut d), "#");
    }

    #[test]
    fn timestamp_wrap_is_newer() {
        let mut d = DtmfDecoder::new(8000);
        d.feed(u32::MAX - 10, ev(3, true, 100));
        d.feed(50, ev(4, true, 100));
        assert_eq!(digits(&mut d), "34");
    }
}
