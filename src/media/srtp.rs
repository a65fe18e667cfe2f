//! SRTP (RFC 3711) for a call's RTP, keyed by SDES (see `sdp::crypto`):
//! [`SrtpRx`] authenticates, checks for replay and decrypts what the
//! caller sends; [`SrtpTx`] encrypts and authenticates what vmail sends.
//! Pure functions of the packets (no sockets, no clock), on the
//! `webrtc-srtp` crate's contexts (see docs/decisions.md).
//!
//! A packet that fails is dropped by the caller of [`SrtpRx::unprotect`]
//! and counted (`vmail_srtp_auth_failed`, `vmail_srtp_replayed`): it never
//! reaches the jitter buffer, so it can never be recorded.

use webrtc_srtp::context::Context;
use webrtc_srtp::option::{
    srtcp_no_replay_protection, srtp_no_replay_protection, srtp_replay_protection,
};
use webrtc_srtp::protection_profile::ProtectionProfile;

use crate::sdp::{SrtpKey, SrtpSuite};

/// Packets behind the newest one that are still accepted once (RFC 3711
/// §3.3.2 asks for at least 64).
pub const REPLAY_WINDOW: usize = 128;

/// Why an SRTP packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpDrop {
    /// The authentication tag is wrong: another key, or altered bytes.
    Auth,
    /// Already received, or older than the replay window.
    Replay,
    /// Too short to be SRTP, or not RTP at all.
    Malformed,
}

fn profile(suite: SrtpSuite) -> ProtectionProfile {
    match suite {
        SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
    }
}

/// A context for `suite` and `key`; with `replay`, a replay window.
fn context(suite: SrtpSuite, key: &SrtpKey, replay: bool) -> Context {
    let srtp_option = if replay {
        srtp_replay_protection(REPLAY_WINDOW)
    } else {
        srtp_no_replay_protection()
    };
    // Key and salt lengths are fixed by the types: the constructor cannot
    // fail for the AES-CM-128 suites.
    match Context::new(
        key.master_key(),
        key.master_salt(),
        profile(suite),
        Some(srtp_option),
        Some(srtcp_no_replay_protection()),
    ) {
        Ok(c) => c,
        Err(e) => unreachable!("SRTP context for a 30-byte AES-CM-128 key: {e}"),
    }
}

/// Streams (SSRCs) of the caller kept at once; past that the oldest
/// replay state is forgotten.
const MAX_STREAMS: usize = 8;
/// Packets of unknown streams checked by one probe context before it is
/// made anew (see [`SrtpRx`]).
const PROBE_LIMIT: usize = 64;

/// The receiving side of a call's SRTP.
///
/// The crate's context keeps state for every SSRC it is shown, before the
/// packet is authenticated: datagrams with made-up SSRCs would make it
/// grow without bound, and a forged first packet of a stream would set
/// where its replay window starts. So the first packet of a stream is
/// checked on a separate probe context (authentication only, no replay
/// window), renewed every [`PROBE_LIMIT`] unknown packets, and only a
/// stream that authenticated reaches the call's context (at most
/// [`MAX_STREAMS`] of them), whose replay window then starts at a genuine
/// packet.
pub struct SrtpRx {
    ctx: Context,
    probe: Context,
    probed: usize,
    streams: Vec<u32>,
    suite: SrtpSuite,
    key: SrtpKey,
}

impl SrtpRx {
    /// Receives with the peer's `key` (from its `a=crypto`).
    pub fn new(suite: SrtpSuite, key: &SrtpKey) -> SrtpRx {
        SrtpRx {
            ctx: context(suite, key, true),
            probe: context(suite, key, false),
            probed: 0,
            streams: Vec::new(),
            suite,
            key: key.clone(),
        }
    }

    /// Streams that authenticated, kept in the call's context.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// The RTP packet inside `packet`, authenticated and decrypted; a
    /// packet that is replayed or does not authenticate is refused.
    pub fn unprotect(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpDrop> {
        if packet.len() < crate::media::RTP_HEADER_LEN + self.suite.tag_len()
            || packet.first().is_none_or(|b| b >> 6 != 2)
            || !header_fits(&packet[..packet.len() - self.suite.tag_len()])
        {
            return Err(SrtpDrop::Malformed);
        }
        let ssrc = match packet.get(8..12) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => return Err(SrtpDrop::Malformed),
        };
        if !self.streams.contains(&ssrc) {
            if self.probed >= PROBE_LIMIT {
                self.probe = context(self.suite, &self.key, false);
                self.probed = 0;
            }
            self.probed += 1;
            self.probe.decrypt_rtp(packet).map_err(drop_reason)?;
            if self.streams.len() >= MAX_STREAMS {
                // A caller that changed streams this often: start over.
                self.ctx = context(self.suite, &self.key, true);
                self.streams.clear();
            }
            self.streams.push(ssrc);
        }
        match self.ctx.decrypt_rtp(packet) {
            Ok(plain) => Ok(plain.to_vec()),
            Err(e) => Err(drop_reason(e)),
        }
    }
}

/// Whether the RTP header of `packet` (the datagram less its tag) lies
/// within it: CSRCs, the extension block, and each RFC 8285 element inside
/// that block. webrtc-srtp parses the header with the `rtp` crate before
/// authenticating, and that parser trusts the element lengths: an element
/// running past the datagram panics it (found by fuzzing). Such a packet
/// is malformed whatever its tag says.
fn header_fits(packet: &[u8]) -> bool {
    let Some(&first) = packet.first() else {
        return false;
    };
    let mut at = crate::media::RTP_HEADER_LEN + 4 * usize::from(first & 0x0f);
    if first & 0x10 == 0 {
        return packet.len() >= at;
    }
    let Some(&[p0, p1, l0, l1]) = packet.get(at..at + 4) else {
        return false;
    };
    at += 4;
    let end = at + 4 * usize::from(u16::from_be_bytes([l0, l1]));
    if end > packet.len() {
        return false;
    }
    match u16::from_be_bytes([p0, p1]) {
        // One-byte elements: ID and length-1 in one byte; ID 15 ends them.
        0xBEDE => {
            while at < end {
                let b = packet[at];
                at += 1;
                if b == 0 {
                    continue;
                }
                if b >> 4 == 0x0f {
                    break;
                }
                at += usize::from(b & 0x0f) + 1;
                if at > end {
                    return false;
                }
            }
        }
        // Two-byte elements: ID byte, then a length byte.
        0x1000 => {
            while at < end {
                let b = packet[at];
                at += 1;
                if b == 0 {
                    continue;
                }
                let Some(&len) = packet.get(at).filter(|_| at < end) else {
                    return false;
                };
                at += 1 + usize::from(len);
                if at > end {
                    return false;
                }
            }
        }
        _ => {}
    }
    true
}

fn drop_reason(e: webrtc_srtp::Error) -> SrtpDrop {
    match e {
        webrtc_srtp::Error::SrtpSsrcDuplicated(..) => SrtpDrop::Replay,
        webrtc_srtp::Error::RtpFailedToVerifyAuthTag => SrtpDrop::Auth,
        _ => SrtpDrop::Malformed,
    }
}

impl std::fmt::Debug for SrtpRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SrtpRx({})", self.suite.name())
    }
}

/// The sending side of a call's SRTP.
pub struct SrtpTx {
    ctx: Context,
}

impl SrtpTx {
    /// Sends with our `key` (the one in our `a=crypto` answer).
    pub fn new(suite: SrtpSuite, key: &SrtpKey) -> SrtpTx {
        SrtpTx {
            ctx: context(suite, key, false),
        }
    }

    /// `rtp` encrypted and authenticated; `None` when it is not an RTP
    /// packet (vmail's packetizer always makes one).
    pub fn protect(&mut self, rtp: &[u8]) -> Option<Vec<u8>> {
        self.ctx.encrypt_rtp(rtp).ok().map(|b| b.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, RtpPacketizer};

    fn key(b: u8) -> SrtpKey {
        SrtpKey([b; crate::sdp::SRTP_KEY_LEN])
    }

    fn packets(n: usize) -> Vec<Vec<u8>> {
        let mut p = RtpPacketizer::new(8, Codec::Pcma, 0x1234_5678, 100, 0);
        (0..n)
            .map(|i| p.packetize(&[i as i16 * 100; 160], i == 0).to_vec())
            .collect()
    }

    #[test]
    fn round_trip_both_suites() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut tx = SrtpTx::new(suite, &key(1));
            let mut rx = SrtpRx::new(suite, &key(1));
            for p in packets(5) {
                let s = tx.protect(&p).expect("protect");
                assert_eq!(s.len(), p.len() + suite.tag_len());
                assert_ne!(s[12..p.len()], p[12..], "payload encrypted");
                assert_eq!(rx.unprotect(&s), Ok(p));
            }
        }
    }

    #[test]
    fn wrong_key_altered_and_replayed_packets_are_refused() {
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut tx = SrtpTx::new(suite, &key(1));
        let mut wrong = SrtpRx::new(suite, &key(2));
        let mut rx = SrtpRx::new(suite, &key(1));
        let ps: Vec<Vec<u8>> = packets(3)
            .iter()
            .map(|p| tx.protect(p).expect("p"))
            .collect();
        assert_eq!(wrong.unprotect(&ps[0]), Err(SrtpDrop::Auth));
        let mut altered = ps[0].clone();
        altered[20] ^= 1;
        assert_eq!(rx.unprotect(&altered), Err(SrtpDrop::Auth));
        assert!(rx.unprotect(&ps[0]).is_ok());
        assert!(rx.unprotect(&ps[1]).is_ok());
        assert_eq!(rx.unprotect(&ps[0]), Err(SrtpDrop::Replay));
        assert_eq!(rx.unprotect(&ps[1]), Err(SrtpDrop::Replay));
        assert!(rx.unprotect(&ps[2]).is_ok());
        assert_eq!(rx.unprotect(&[0x80; 12]), Err(SrtpDrop::Malformed));
        assert_eq!(rx.unprotect(&[]), Err(SrtpDrop::Malformed));
    }

    #[test]
    fn a_forged_first_packet_does_not_block_the_stream() {
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut rx = SrtpRx::new(suite, &key(1));
        let mut tx = SrtpTx::new(suite, &key(1));
        let mut pk = RtpPacketizer::new(8, Codec::Pcma, 42, 1000, 0);
        let real = tx.protect(pk.packetize(&[0; 160], true)).expect("protect");
        // Same stream, a sequence number far ahead, a wrong tag.
        let mut forged = real.clone();
        forged[2..4].copy_from_slice(&20_000u16.to_be_bytes());
        assert_eq!(rx.unprotect(&forged), Err(SrtpDrop::Auth));
        assert!(rx.unprotect(&real).is_ok());
    }

    #[test]
    fn made_up_streams_do_not_grow_the_state() {
        let suite = SrtpSuite::AesCm128HmacSha1_80;
        let mut rx = SrtpRx::new(suite, &key(1));
        let mut p = vec![0x80, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0u8; 170]);
        for ssrc in 0..10_000u32 {
            p[8..12].copy_from_slice(&ssrc.to_be_bytes());
            assert_eq!(rx.unprotect(&p), Err(SrtpDrop::Auth));
        }
        assert_eq!(rx.streams(), 0);
        assert!(rx.probed <= PROBE_LIMIT);
        // Many real streams: bounded too, and each still decrypts.
        for ssrc in 0..20u32 {
            let mut tx = SrtpTx::new(suite, &key(1));
            let mut pk = RtpPacketizer::new(8, Codec::Pcma, ssrc, 7, 0);
            let s = tx.protect(pk.packetize(&[0; 160], true)).expect("protect");
            assert!(rx.unprotect(&s).is_ok());
            assert!(rx.streams() <= MAX_STREAMS);
        }
    }

    proptest::proptest! {
        /// What the fuzz target `srtp_unprotect` checks, on stable: packets
        /// of up to 4 streams, each sent in order (sequence numbers rising
        /// by 1 to 64, wrapping), protected with the key, come back byte
        /// for byte once, and one flipped bit is never accepted.
        #[test]
        fn protected_packets_round_trip_and_flips_fail(
            tag32 in proptest::bool::ANY,
            packets in proptest::collection::vec(
                (0u8..4, 1u16..=64, proptest::collection::vec(proptest::num::u8::ANY, 0..200), proptest::num::usize::ANY),
                1..200,
            ),
        ) {
            let suite = if tag32 { SrtpSuite::AesCm128HmacSha1_32 } else { SrtpSuite::AesCm128HmacSha1_80 };
            let mut tx = SrtpTx::new(suite, &key(5));
            let mut rx = SrtpRx::new(suite, &key(5));
            let mut seqs = [65000u16; 4];
            for (ssrc, step, payload, flip) in packets {
                let seq = &mut seqs[usize::from(ssrc)];
                *seq = seq.wrapping_add(step);
                let mut rtp = vec![0x80, 8];
                rtp.extend_from_slice(&seq.to_be_bytes());
                rtp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, ssrc]);
                rtp.extend_from_slice(&payload);
                let s = tx.protect(&rtp).expect("protect");
                let mut flipped = s.clone();
                let bit = flip % (flipped.len() * 8);
                flipped[bit / 8] ^= 1 << (bit % 8);
                proptest::prop_assert!(rx.unprotect(&flipped).is_err());
                proptest::prop_assert_eq!(rx.unprotect(&s), Ok(rtp));
                proptest::prop_assert_eq!(rx.unprotect(&s), Err(SrtpDrop::Replay));
            }
        }

        /// Random datagrams never pass, and never panic.
        #[test]
        fn random_datagrams_are_refused(
            tag32 in proptest::bool::ANY,
            packets in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..400), 1..20),
        ) {
            let suite = if tag32 { SrtpSuite::AesCm128HmacSha1_32 } else { SrtpSuite::AesCm128HmacSha1_80 };
            let mut rx = SrtpRx::new(suite, &key(3));
            for p in &packets {
                proptest::prop_assert!(rx.unprotect(p).is_err());
            }
        }
    }

    #[test]
    fn header_extensions_that_overrun_are_malformed_not_a_panic() {
        let key = SrtpKey([9; crate::sdp::SRTP_KEY_LEN]);
        let mut rx = SrtpRx::new(SrtpSuite::AesCm128HmacSha1_80, &key);
        let rtp = |profile: [u8; 2], words: u8, ext: &[u8]| {
            let mut p = vec![0x90, 8, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7];
            p.extend_from_slice(&profile);
            p.extend_from_slice(&[0, words]);
            p.extend_from_slice(ext);
            p.extend_from_slice(&[0u8; 10]); // where the tag would be
            p
        };
        // A two-byte element of 200 bytes in a one-word block (the fuzzer's
        // find: the `rtp` parser ran past the datagram).
        let two = rtp([0x10, 0x00], 1, &[1, 200, 0, 0]);
        assert_eq!(rx.unprotect(&two), Err(SrtpDrop::Malformed));
        // A one-byte element of 16 bytes in a one-word block.
        let one = rtp([0xBE, 0xDE], 1, &[0x1f, 0, 0, 0]);
        assert_eq!(rx.unprotect(&one), Err(SrtpDrop::Malformed));
        // A block longer than the datagram.
        let long = rtp([0x12, 0x34], 40, &[0; 4]);
        assert_eq!(rx.unprotect(&long), Err(SrtpDrop::Malformed));
        // Well-formed extensions pass the check (and then fail
        // authentication, having no real tag).
        let fine = rtp([0xBE, 0xDE], 1, &[0x10, 0xaa, 0, 0]);
        assert!(header_fits(&fine[..fine.len() - 10]));
        assert_eq!(rx.unprotect(&fine), Err(SrtpDrop::Auth));
        let fine2 = rtp([0x10, 0x00], 1, &[1, 2, 0xaa, 0xbb]);
        assert!(header_fits(&fine2[..fine2.len() - 10]));
    }
}
