//! SDP offer → parse → negotiate (the caller's codec order among G.711, as
//! the server does, and a fixed preference including G.722) → answer.
//! Invariant: vmail's own answer parses and negotiates to the same codec,
//! payload type and packet time.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use vmail::sdp::{self, AnswerParams, Codec, SrtpKey, SRTP_KEY_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = sdp::parse(data) else {
        return;
    };
    let _ = offer.audio_connection();
    let mut prefer = Vec::new();
    if let Some(audio) = &offer.audio {
        let _ = audio.is_plain_rtp();
        for f in &audio.formats {
            if let Some(c) = f.codec {
                if !prefer.contains(&c) {
                    prefer.push(c);
                }
            }
        }
    }
    let all = [Codec::Opus, Codec::G722, Codec::G729, Codec::Pcmu, Codec::Pcma];
    for prefer in [&prefer[..], &all] {
        let Ok(neg) = sdp::negotiate(&offer, prefer) else {
            continue;
        };
        let _ = neg.on_hold();
        // An SDES offer is answered with our own key, as the server does.
        let key = SrtpKey([7; SRTP_KEY_LEN]);
        let answer = sdp::answer(
            &neg,
            &AnswerParams {
                local_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
                local_port: 20_000,
                session_id: 42,
                session_version: 2,
                username: "vmail",
                srtp_key: neg.srtp.as_ref().map(|_| &key),
            },
        );
        let again = sdp::parse(answer.as_bytes())
            .unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{answer}"));
        let neg2 = sdp::negotiate(&again, &[neg.codec])
            .unwrap_or_else(|e| panic!("our answer does not negotiate: {e}\n{answer}"));
        assert_eq!(
            (neg2.codec, neg2.pt, neg2.ptime_ms, neg2.dtmf_pt),
            (neg.codec, neg.pt, neg.ptime_ms, neg.dtmf_pt),
            "{answer}"
        );
    }
});
