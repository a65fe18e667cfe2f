//! SDES (RFC 4568): the `a=crypto` attributes of an `RTP/SAVP` stream,
//! which carry the SRTP master key and salt in the SDP itself. Only safe
//! when the SDP travels encrypted (SIP over TLS): the caller decides.
//!
//! Supported: `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`
//! (RFC 4568 §6.2), one inline key without MKI, any lifetime of at least
//! 2^31 packets, no session parameters. Anything else in a line makes
//! that line unusable; the next one is tried.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;

/// Length of an SRTP master key plus master salt for the AES-CM-128
/// suites: 16 + 14 bytes.
pub const SRTP_KEY_LEN: usize = 30;

/// An SRTP crypto suite vmail speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit tag.
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The name written in `a=crypto`.
    pub const fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// The suite named `name` (case-sensitive, as RFC 4568 registers it).
    pub fn from_name(name: &str) -> Option<SrtpSuite> {
        [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Bytes of authentication tag per SRTP packet.
    pub const fn tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// An SRTP master key (16 bytes) followed by its master salt (14 bytes).
/// Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKey(pub [u8; SRTP_KEY_LEN]);

impl SrtpKey {
    /// The master key.
    pub fn master_key(&self) -> &[u8] {
        &self.0[..16]
    }

    /// The master salt.
    pub fn master_salt(&self) -> &[u8] {
        &self.0[16..]
    }

    /// A fresh key from the operating system's random source.
    pub fn random() -> SrtpKey {
        use rand::RngCore as _;
        let mut k = [0u8; SRTP_KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        SrtpKey(k)
    }
}

impl fmt::Debug for SrtpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SrtpKey(..)")
    }
}

/// One `a=crypto` line of the offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    /// The tag, echoed in the answer.
    pub tag: u32,
    /// The suite, when vmail supports it.
    pub suite: Option<SrtpSuite>,
    /// The key, when the key parameters are usable (one inline key of
    /// the right length, no MKI, a long enough lifetime).
    pub key: Option<SrtpKey>,
    /// Session parameters were given (none is supported).
    pub session_params: bool,
}

impl CryptoAttr {
    /// Whether vmail can use this line: suite and key known, no session
    /// parameters.
    pub fn usable(&self) -> Option<(SrtpSuite, &SrtpKey)> {
        match (&self.suite, &self.key, self.session_params) {
            (Some(s), Some(k), false) => Some((*s, k)),
            _ => None,
        }
    }
}

/// Parses the value of an `a=crypto` attribute (after `crypto:`):
/// `<tag> <suite> <key-params> [<session-params>]`. `None` when it is not
/// one at all (no tag or suite); an unusable but well-formed line is kept
/// with `suite`/`key` empty, so the answer can skip it.
pub fn parse_crypto(value: &str) -> Option<CryptoAttr> {
    let mut fields = value.split_ascii_whitespace();
    let tag = fields.next()?;
    if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tag: u32 = tag.parse().ok()?;
    let suite_name = fields.next()?;
    let key_params = fields.next()?;
    let session_params = fields.next().is_some();
    let suite = SrtpSuite::from_name(suite_name);
    Some(CryptoAttr {
        tag,
        suite,
        key: parse_key_params(key_params),
        session_params,
    })
}

/// `inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>]`, one of them
/// (several `;`-separated keys need MKIs, which vmail does not take).
fn parse_key_params(s: &str) -> Option<SrtpKey> {
    if s.contains(';') {
        return None;
    }
    let rest = s.strip_prefix("inline:")?;
    let mut parts = rest.split('|');
    let b64 = parts.next()?;
    let mut lifetime_seen = false;
    for p in parts {
        if p.contains(':') {
            // An MKI.
            return None;
        }
        if lifetime_seen || !lifetime_ok(p) {
            return None;
        }
        lifetime_seen = true;
    }
    let bytes = STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .ok()?;
    let key: [u8; SRTP_KEY_LEN] = bytes.try_into().ok()?;
    Some(SrtpKey(key))
}

/// A key lifetime (`2^n` or a decimal count of packets) long enough for
/// any call: at least 2^31 packets (vmail does not re-key).
fn lifetime_ok(p: &str) -> bool {
    if let Some(exp) = p.strip_prefix("2^") {
        return exp.parse::<u32>().is_ok_and(|e| (31..=48).contains(&e));
    }
    p.parse::<u64>().is_ok_and(|n| n >= 1 << 31)
}

/// The value of our `a=crypto` answer line (after `crypto:`).
pub fn format_crypto(tag: u32, suite: SrtpSuite, key: &SrtpKey) -> String {
    format!("{tag} {} inline:{}", suite.name(), STANDARD.encode(key.0))
}

/// The SDES choice of a negotiation: the offer's line vmail answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChoice {
    /// The offered tag, echoed.
    pub tag: u32,
    /// The suite of both directions.
    pub suite: SrtpSuite,
    /// The key the peer sends with (vmail receives with it).
    pub remote_key: SrtpKey,
}

/// The first usable line of the offer, in its order (RFC 4568 §7.1.1:
/// the offerer lists its preference first).
pub fn choose(offered: &[CryptoAttr]) -> Option<SdesChoice> {
    offered.iter().find_map(|c| {
        c.usable().map(|(suite, key)| SdesChoice {
            tag: c.tag,
            suite,
            remote_key: key.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";

    #[test]
    fn parses_a_pjsip_line() {
        let c = parse_crypto(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")).expect("parse");
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, Some(SrtpSuite::AesCm128HmacSha1_80));
        let (_, key) = c.usable().expect("usable");
        assert_eq!(STANDARD.encode(key.0), KEY);
    }

    #[test]
    fn lifetimes_mki_and_session_params() {
        let ok = |s: &str| parse_crypto(s).and_then(|c| c.usable().map(|_| ()));
        assert!(ok(&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^31")).is_some());
        assert!(ok(&format!(
            "2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2147483648"
        ))
        .is_some());
        assert!(ok(&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^20")).is_none());
        assert!(ok(&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|1:4")).is_none());
        assert!(ok(&format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^31|1:4")).is_none());
        assert!(ok(&format!(
            "2 AES_CM_128_HMAC_SHA1_32 inline:{KEY};inline:{KEY}"
        ))
        .is_none());
        assert!(ok(&format!(
            "2 AES_CM_128_HMAC_SHA1_32 inline:{KEY} UNENCRYPTED_SRTP"
        ))
        .is_none());
        assert!(ok(&format!("2 AES_256_CM_HMAC_SHA1_80 inline:{KEY}")).is_none());
        assert!(ok("2 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=").is_none());
        assert!(ok("2 AES_CM_128_HMAC_SHA1_80 inline:!!!").is_none());
        assert!(parse_crypto("x AES_CM_128_HMAC_SHA1_80 inline:abc").is_none());
        assert!(parse_crypto("1").is_none());
    }

    #[test]
    fn choose_takes_the_first_usable_line() {
        let lines: Vec<CryptoAttr> = [
            format!("1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}"),
            format!("2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"),
            format!("3 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
        ]
        .iter()
        .filter_map(|l| parse_crypto(l))
        .collect();
        let c = choose(&lines).expect("a usable line");
        assert_eq!((c.tag, c.suite), (2, SrtpSuite::AesCm128HmacSha1_32));
    }

    #[test]
    fn answer_line_round_trips() {
        let key = SrtpKey::random();
        let line = format_crypto(7, SrtpSuite::AesCm128HmacSha1_80, &key);
        let back = parse_crypto(&line).expect("parse");
        assert_eq!(back.usable().map(|(_, k)| k.clone()), Some(key.clone()));
        assert_ne!(SrtpKey::random(), key, "fresh keys differ");
        assert_eq!(format!("{key:?}"), "SrtpKey(..)");
    }
}
