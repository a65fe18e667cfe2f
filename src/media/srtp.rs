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
use webrtc_srtp::option::{srtcp_no_replay_protection, srtp_replay_protection};
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

fn context(suite: SrtpSuite, key: &SrtpKey) -> Context {
    // Key and salt lengths are fixed by the types: the constructor cannot
    // fail for the AES-CM-128 suites.
    match Context::new(
        key.master_key(),
        key.master_salt(),
        profile(suite),
        Some(srtp_replay_protection(REPLAY_WINDOW)),
        Some(srtcp_no_replay_protection()),
    ) {
        Ok(c) => c,
        Err(e) => unreachable!("SRTP context for a 30-byte AES-CM-128 key: {e}"),
    }
}

/// The receiving side of a call's SRTP.
pub struct SrtpRx {
    ctx: Context,
    suite: SrtpSuite,
}

impl SrtpRx {
    /// Receives with the peer's `key` (from its `a=crypto`).
    pub fn new(suite: SrtpSuite, key: &SrtpKey) -> SrtpRx {
        SrtpRx {
            ctx: context(suite, key),
            suite,
        }
    }

    /// The RTP packet inside `packet`, authenticated and decrypted; a
    /// packet that is replayed or does not authenticate is refused.
    pub fn unprotect(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpDrop> {
        if packet.len() < crate::media::RTP_HEADER_LEN + self.suite.tag_len()
            || packet.first().is_none_or(|b| b >> 6 != 2)
        {
            return Err(SrtpDrop::Malformed);
        }
        match self.ctx.decrypt_rtp(packet) {
            Ok(plain) => Ok(plain.to_vec()),
            Err(webrtc_srtp::Error::SrtpSsrcDuplicated(..)) => Err(SrtpDrop::Replay),
            Err(webrtc_srtp::Error::RtpFailedToVerifyAuthTag) => Err(SrtpDrop::Auth),
            Err(_) => Err(SrtpDrop::Malformed),
        }
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
            ctx: context(suite, key),
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
}
