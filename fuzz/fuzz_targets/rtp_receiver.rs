//! The receive path of a call's media: the RTP receiver (jitter buffer,
//! G.711 decoding, gap filling, RFC 4733 digits), then what the media task
//! does with its output: in-band DTMF detection when no telephone-event was
//! negotiated, silence detection, and the digit deduper (on a clock that
//! advances 20 ms per datagram).
//!
//! Input: a configuration byte, then datagrams, each preceded by a control
//! byte and a 2-byte big-endian length (a length past the end takes the
//! rest). Invariants: the PCM written equals the receiver's media time;
//! every digit is a DTMF key.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use vmail::media::{
    Codec, DigitDeduper, DigitSource, InbandDetector, RtpReceiver, RxConfig, SilenceDetector,
    DEFAULT_DEDUP_WINDOW,
};

fn config(b: u8) -> RxConfig {
    // Every codec, G.722, G.729 and Opus decoders included.
    let codec: Codec = vmail::media::ALL_CODECS[usize::from(b) % vmail::media::ALL_CODECS.len()];
    let dtmf_pt = match (b >> 1) & 3 {
        0 => None,
        1 => Some(101),
        2 => Some(96),
        _ => Some(codec.static_payload_type()),
    };
    let mut cfg = RxConfig::new(codec, dtmf_pt);
    cfg.jitter_depth_ms = [60, 0, 20, 200][usize::from((b >> 3) & 3)];
    if b & 0x20 != 0 {
        cfg.audio_pt = 96 + (b >> 6);
    }
    cfg
}

fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fn is_key(c: char) -> bool {
    "0123456789*#ABCD".contains(c)
}

struct Output {
    written: u64,
    inband: Option<InbandDetector>,
    silence: SilenceDetector,
}

impl Output {
    fn sink(&mut self) -> impl FnMut(&[i16]) + '_ {
        |pcm: &[i16]| {
            self.written += pcm.len() as u64;
            if let Some(d) = self.inband.as_mut() {
                d.feed(pcm);
            }
            self.silence.feed(pcm);
        }
    }

    fn digits(&mut self, rx: &mut RtpReceiver, dedup: &mut DigitDeduper, now: Instant) {
        while let Some(ev) = rx.poll_dtmf() {
            assert!(is_key(ev.digit), "{ev:?}");
            let _ = dedup.accept(now, DigitSource::Rfc4733, ev.digit);
        }
        while let Some(d) = self.inband.as_mut().and_then(InbandDetector::poll_digit) {
            assert!(is_key(d.digit), "{d:?}");
            let _ = dedup.accept(now, DigitSource::Inband, d.digit);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let cfg = config(first);
    let mut rx = RtpReceiver::new(cfg);
    let mut out = Output {
        written: 0,
        inband: cfg.dtmf_pt.is_none().then(|| InbandDetector::new(8000)),
        silence: SilenceDetector::new(8000),
    };
    let mut dedup = DigitDeduper::new(DEFAULT_DEDUP_WINDOW);
    let mut now = t0();
    while let [ctl, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(20);
        let _ = rx.push(packet);
        // Bit 0 set: no drain after this packet (the shell drains after
        // each read, but a burst may come first). Bit 1: a re-INVITE
        // changes the payload types (and in-band detection with them).
        if ctl & 1 == 0 {
            rx.drain(&mut out.sink());
        }
        if ctl & 2 != 0 {
            let cfg = config(ctl >> 2);
            if cfg.dtmf_pt.is_some() {
                out.inband = None;
            } else if out.inband.is_none() {
                out.inband = Some(InbandDetector::new(8000));
            }
            rx.set_config(cfg);
        }
        out.digits(&mut rx, &mut dedup, now);
        let _ = (rx.ssrc(), out.silence.silent_ms());
    }
    rx.flush(&mut out.sink());
    if let Some(d) = out.inband.as_mut() {
        d.flush();
    }
    out.digits(&mut rx, &mut dedup, now);
    let _ = rx.stats();
    assert_eq!(out.written, rx.media_samples());
});
