//! The RTP receiver of a call: jitter buffer, G.711 decoding, gap filling
//! and RFC 4733 digits. The input is a configuration byte and then datagrams,
//! each preceded by a control byte and a 2-byte big-endian length (a length
//! past the end takes the rest). Invariant: the PCM written equals the
//! receiver's count of media samples.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmail::media::{Codec, RtpReceiver, RxConfig};

fn config(b: u8) -> RxConfig {
    let codec = if b & 1 == 0 { Codec::Pcmu } else { Codec::Pcma };
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

fuzz_target!(|data: &[u8]| {
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let mut rx = RtpReceiver::new(config(first));
    let mut written: u64 = 0;
    let mut sink = |pcm: &[i16]| written += pcm.len() as u64;
    while let [ctl, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        let _ = rx.push(packet);
        // Bit 0 set: no drain after this packet (the shell drains after
        // each read, but a burst may come first). Bit 1: a re-INVITE
        // changes the payload types.
        if ctl & 1 == 0 {
            rx.drain(&mut sink);
        }
        if ctl & 2 != 0 {
            rx.set_config(config(ctl >> 2));
        }
        while rx.poll_dtmf().is_some() {}
        let _ = rx.ssrc();
    }
    rx.flush(&mut sink);
    while rx.poll_dtmf().is_some() {}
    let _ = rx.stats();
    assert_eq!(written, rx.media_samples());
});
