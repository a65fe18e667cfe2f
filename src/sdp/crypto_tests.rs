//! SDES negotiation (RTP/SAVP with `a=crypto`) and its property tests.

use std::net::{IpAddr, Ipv4Addr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;

use super::*;

const PREFER: &[Codec] = &[Codec::Pcmu, Codec::Pcma];

fn offer(proto: &str, crypto: &[String]) -> Vec<u8> {
    let mut s = format!(
        "v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
         m=audio 4000 {proto} 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    for c in crypto {
        s.push_str(&format!("a=crypto:{c}\r\n"));
    }
    s.into_bytes()
}

fn b64(k: &[u8; SRTP_KEY_LEN]) -> String {
    STANDARD.encode(k)
}

fn params(key: Option<&SrtpKey>) -> AnswerParams<'_> {
    AnswerParams {
        local_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        local_port: 20000,
        session_id: 1,
        session_version: 1,
        username: "vmail",
        srtp_key: key,
    }
}

#[test]
fn savp_with_a_usable_line_answers_our_own_key() {
    let theirs = [7u8; SRTP_KEY_LEN];
    let body = offer(
        "RTP/SAVP",
        &[
            format!("1 AES_CM_256_HMAC_SHA1_80 inline:{}", b64(&theirs)),
            format!("2 AES_CM_128_HMAC_SHA1_32 inline:{}", b64(&theirs)),
            format!("3 AES_CM_128_HMAC_SHA1_80 inline:{}", b64(&theirs)),
        ],
    );
    let o = parse(&body).expect("parse");
    assert_eq!(o.audio.as_ref().map(|a| a.crypto.len()), Some(3));
    let n = negotiate(&o, PREFER).expect("negotiate");
    let choice = n.srtp.clone().expect("srtp chosen");
    assert_eq!(choice.tag, 2);
    assert_eq!(choice.suite, SrtpSuite::AesCm128HmacSha1_32);
    assert_eq!(choice.remote_key, SrtpKey(theirs));
    let ours = SrtpKey::random();
    let text = answer(&n, &params(Some(&ours)));
    assert!(text.contains("m=audio 20000 RTP/SAVP 0 101\r\n"), "{text}");
    let line = format!(
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
        b64(&ours.0)
    );
    assert!(text.contains(&line), "{text}");
    assert_eq!(text.matches("a=crypto").count(), 1);
    // The answer is itself a valid SAVP description with our key.
    let back = negotiate(&parse(text.as_bytes()).expect("parse answer"), PREFER).expect("neg");
    assert_eq!(back.srtp.map(|c| c.remote_key), Some(ours));
}

#[test]
fn savp_without_usable_crypto_is_refused() {
    for lines in [
        vec![],
        vec!["1 F8_128_HMAC_SHA1_80 inline:AAAA".to_string()],
        vec![format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{}|1:4",
            b64(&[1; SRTP_KEY_LEN])
        )],
        vec!["garbage".to_string()],
    ] {
        let o = parse(&offer("RTP/SAVP", &lines)).expect("parse");
        assert_eq!(negotiate(&o, PREFER), Err(NegotiateError::NoUsableCrypto));
    }
}

#[test]
fn avp_ignores_crypto_and_dtls_is_unsupported() {
    let line = format!(
        "1 AES_CM_128_HMAC_SHA1_80 inline:{}",
        b64(&[1; SRTP_KEY_LEN])
    );
    let o = parse(&offer("RTP/AVP", std::slice::from_ref(&line))).expect("parse");
    let n = negotiate(&o, PREFER).expect("negotiate");
    assert_eq!(n.srtp, None);
    let text = answer(&n, &params(None));
    assert!(!text.contains("crypto"));
    assert!(text.contains("RTP/AVP"));

    let o = parse(&offer("UDP/TLS/RTP/SAVP", &[line])).expect("parse");
    assert_eq!(
        negotiate(&o, PREFER),
        Err(NegotiateError::UnsupportedProfile {
            proto: "UDP/TLS/RTP/SAVP".into()
        })
    );
}

fn suite_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("AES_CM_128_HMAC_SHA1_80".to_string()),
        Just("AES_CM_128_HMAC_SHA1_32".to_string()),
        Just("AES_256_CM_HMAC_SHA1_80".to_string()),
        "[A-Z_0-9]{0,30}",
    ]
}

fn key_params() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::array::uniform30(any::<u8>()).prop_map(|k| format!("inline:{}", b64(&k))),
        (prop::array::uniform30(any::<u8>()), "[|0-9^:]{0,12}")
            .prop_map(|(k, tail)| format!("inline:{}{tail}", b64(&k))),
        "inline:[A-Za-z0-9+/=]{0,60}",
        "[ -~]{0,50}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random crypto lines never panic; when negotiation succeeds on a
    /// SAVP offer the choice is one of the offered lines, usable, and the
    /// answer round-trips with our key.
    #[test]
    fn crypto_lines_negotiate_consistently(
        savp in any::<bool>(),
        lines in prop::collection::vec(
            (0u32..2_000_000_000, suite_name(), key_params(), prop::option::of("[A-Z_=0-9]{1,12}")),
            0..6,
        ),
    ) {
        let lines: Vec<String> = lines
            .iter()
            .map(|(tag, suite, key, session)| match session {
                Some(p) => format!("{tag} {suite} {key} {p}"),
                None => format!("{tag} {suite} {key}"),
            })
            .collect();
        let proto = if savp { "RTP/SAVP" } else { "RTP/AVP" };
        let Ok(o) = parse(&offer(proto, &lines)) else { return Ok(()) };
        match negotiate(&o, PREFER) {
            Ok(n) => {
                prop_assert_eq!(n.srtp.is_some(), savp);
                let ours = SrtpKey::random();
                let text = answer(&n, &params(n.srtp.as_ref().map(|_| &ours)));
                if let Some(choice) = &n.srtp {
                    let offered = o.audio.as_ref().map(|a| a.crypto.clone()).unwrap_or_default();
                    prop_assert!(offered.iter().any(|c| c.tag == choice.tag
                        && c.usable() == Some((choice.suite, &choice.remote_key))));
                    let back = negotiate(&parse(text.as_bytes()).expect("answer parses"), PREFER)
                        .expect("answer negotiates");
                    prop_assert_eq!(back.srtp.map(|c| (c.tag, c.suite, c.remote_key)),
                        Some((choice.tag, choice.suite, ours)));
                } else {
                    prop_assert!(!text.contains("a=crypto"));
                }
            }
            Err(e) => {
                prop_assert!(savp);
                prop_assert_eq!(e, NegotiateError::NoUsableCrypto);
            }
        }
    }

    /// Any text after `crypto:` parses or is ignored, never panics.
    #[test]
    fn crypto_values_never_panic(value in "[ -~]{0,120}") {
        let _ = parse_crypto(&value);
    }
}
