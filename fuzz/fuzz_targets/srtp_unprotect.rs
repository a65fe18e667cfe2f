//! The SRTP receive path (`media::SrtpRx`, RFC 3711): what a call does
//! with every datagram on an SRTP call before anything else looks at it.
//!
//! Input: a configuration byte (suite, and whether the datagrams are made
//! by protecting the input with the receiver's key before they are
//! mutated), then datagrams, each preceded by a control byte and a 2-byte
//! big-endian length (a length past the end takes the rest).
//!
//! Invariants (the protected datagrams use at most 4 streams): never panics; an accepted packet is an RTP packet no longer
//! than the datagram less the tag; a packet protected with the key comes
//! back byte for byte the first time and is refused as a replay after;
//! one flipped bit in a protected packet is never accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmail::media::{SrtpDrop, SrtpRx, SrtpTx};
use vmail::sdp::{SrtpKey, SrtpSuite, SRTP_KEY_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, mut rest)) = data.split_first() else {
        return;
    };
    let suite = if cfg & 1 == 0 {
        SrtpSuite::AesCm128HmacSha1_80
    } else {
        SrtpSuite::AesCm128HmacSha1_32
    };
    let key = SrtpKey([cfg; SRTP_KEY_LEN]);
    let mut rx = SrtpRx::new(suite, &key);
    let mut tx = SrtpTx::new(suite, &key);
    let protect = cfg & 2 != 0;
    // Each stream is sent in order, as a sender does: its sequence number
    // rises by 1 to 64 (wrapping) from one packet to the next.
    let mut seqs = [65000u16; 4];
    while rest.len() >= 3 {
        let control = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let body = &rest[3..];
        let (packet, next) = body.split_at(len.min(body.len()));
        rest = next;
        if protect && packet.len() >= 12 {
            let mut rtp = packet.to_vec();
            rtp[0] = 0x80 | (rtp[0] & 0x3f);
            rtp[0] &= !0x30; // no padding, no extension: what vmail sends
            rtp[0] &= 0xf0; // no CSRC
            // A few streams: a receiver keeps at most 8 (then it forgets
            // their rollover counters, as any receiver that starts late).
            let stream = control >> 6;
            rtp[8..12].copy_from_slice(&[0, 0, 0, stream]);
            let seq = &mut seqs[usize::from(stream)];
            *seq = seq.wrapping_add(1 + u16::from((control >> 1) & 0x3f));
            rtp[2..4].copy_from_slice(&seq.to_be_bytes());
            let Some(s) = tx.protect(&rtp) else { continue };
            if control & 1 == 0 {
                let mut flipped = s.clone();
                let bit = usize::from(control) * 7 % (flipped.len() * 8);
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(rx.unprotect(&flipped).is_err(), "a flipped bit was accepted");
            }
            assert_eq!(rx.unprotect(&s), Ok(rtp), "round trip");
            assert_eq!(rx.unprotect(&s), Err(SrtpDrop::Replay));
        } else if let Ok(plain) = rx.unprotect(packet) {
            assert!(plain.len() + suite.tag_len() <= packet.len());
            assert_eq!(plain.first().map(|b| b >> 6), Some(2));
        }
    }
});
