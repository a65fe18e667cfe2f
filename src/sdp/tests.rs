//! Offers as real equipment sends them, edge cases, and property tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

const PREFER: &[Codec] = &[Codec::Pcmu, Codec::Pcma];

fn crlf(s: &str) -> Vec<u8> {
    s.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty())
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect()
}

fn params() -> AnswerParams<'static> {
    AnswerParams {
        local_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        local_port: 20000,
        session_id: 42,
        session_version: 1,
        username: "vmail",
        srtp_key: None,
    }
}

fn ip4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

// Asterisk (chan_pjsip), G.711 + GSM + G.726 + telephone-event 101.
const ASTERISK: &str = "
    v=0
    o=- 1929406012 1929406012 IN IP4 192.0.2.10
    s=Asterisk
    c=IN IP4 192.0.2.10
    t=0 0
    m=audio 10004 RTP/AVP 0 8 3 111 101
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:3 GSM/8000
    a=rtpmap:111 G726-32/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=ptime:20
    a=maxptime:150
    a=sendrecv
";

// FreeSWITCH: G.722 first, CN, explicit a=rtcp.
const FREESWITCH: &str = "
    v=0
    o=FreeSWITCH 1700000000 1700000001 IN IP4 198.51.100.7
    s=FreeSWITCH
    c=IN IP4 198.51.100.7
    t=0 0
    m=audio 24580 RTP/AVP 9 0 8 101 13
    a=rtpmap:9 G722/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=rtpmap:13 CN/8000
    a=ptime:20
    a=rtcp:24581 IN IP4 198.51.100.7
";

// A Cisco phone: c= only at media level, after m=; b=TIAS; G.729.
const CISCO: &str = "
    v=0
    o=Cisco-SIPUA 9708 0 IN IP4 10.1.1.50
    s=SIP Call
    t=0 0
    m=audio 28350 RTP/AVP 8 0 18 9 101
    c=IN IP4 10.1.1.50
    b=TIAS:64000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:18 G729/8000
    a=fmtp:18 annexb=no
    a=rtpmap:9 G722/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-15
    a=sendrecv
";

// A Polycom phone: session-level direction, G.722.1 and DTMF at 127, ptime 30.
const POLYCOM: &str = "
    v=0
    o=- 1331812345 1331812345 IN IP4 10.0.0.20
    s=Polycom IP Phone
    c=IN IP4 10.0.0.20
    t=0 0
    a=sendrecv
    m=audio 2226 RTP/AVP 9 102 0 8 18 127
    a=rtpmap:9 G722/8000
    a=rtpmap:102 G7221/16000
    a=fmtp:102 bitrate=32000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:18 G729/8000
    a=fmtp:18 annexb=no
    a=rtpmap:127 telephone-event/8000
    a=ptime:30
";

// sipp's uac_pcap scenario with its keywords filled in.
const SIPP_UAC_PCAP: &str = "
    v=0
    o=user1 53655765 2353687637 IN IP4 127.0.0.1
    s=-
    c=IN IP4 127.0.0.1
    t=0 0
    m=audio 6000 RTP/AVP 8 101
    a=rtpmap:8 PCMA/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-11,16
";

// pjsua 2.x: speex at three rates, iLBC, GSM, G.711, G.722 and one
// telephone-event per clock rate (120/16000, 121/8000, 122/32000).
const PJSUA: &str = "
    v=0
    o=- 3900000000 3900000000 IN IP4 192.168.1.100
    s=pjmedia
    b=AS:84
    t=0 0
    a=X-nat:0
    m=audio 4000 RTP/AVP 96 97 98 99 3 0 8 9 120 121 122
    c=IN IP4 192.168.1.100
    b=AS:64000
    a=rtcp:4001 IN IP4 192.168.1.100
    a=sendrecv
    a=rtpmap:96 speex/16000
    a=rtpmap:97 speex/8000
    a=rtpmap:98 speex/32000
    a=rtpmap:99 iLBC/8000
    a=fmtp:99 mode=30
    a=rtpmap:120 telephone-event/16000
    a=fmtp:120 0-16
    a=rtpmap:121 telephone-event/8000
    a=fmtp:121 0-16
    a=rtpmap:122 telephone-event/32000
    a=fmtp:122 0-16
    a=ssrc:1092412398 cname:5cc2d6a8523f4c2d
";

// pjsua built with opus: opus at 96 with telephone-event/48000 at 120 and
// telephone-event/8000 at 101; rtcp-mux offered.
const PJSUA_OPUS: &str = "
    v=0
    o=- 3900000001 3900000001 IN IP4 192.168.1.101
    s=pjmedia
    t=0 0
    m=audio 4002 RTP/AVP 96 9 8 0 120 101
    c=IN IP4 192.168.1.101
    a=rtcp-mux
    a=rtpmap:96 opus/48000/2
    a=fmtp:96 useinbandfec=1
    a=rtpmap:9 G722/8000
    a=rtpmap:8 PCMA/8000
    a=rtpmap:0 PCMU/8000
    a=rtpmap:120 telephone-event/48000
    a=fmtp:120 0-16
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
";

const REAL_WORLD: &[&str] = &[
    ASTERISK,
    FREESWITCH,
    CISCO,
    POLYCOM,
    SIPP_UAC_PCAP,
    PJSUA,
    PJSUA_OPUS,
];

#[test]
fn asterisk_offer() {
    let offer = parse(&crlf(ASTERISK)).unwrap();
    assert_eq!(offer.origin.session_id, "1929406012");
    assert_eq!(offer.origin.version(), Some(1929406012));
    let audio = offer.audio.as_ref().unwrap();
    assert_eq!(audio.port, 10004);
    assert_eq!(audio.formats.len(), 5);
    assert_eq!(audio.formats[2].encoding, "GSM");
    assert_eq!(audio.formats[3].codec, None);
    assert_eq!(audio.telephone_event, Some(101));
    assert_eq!(audio.formats[4].fmtp.as_deref(), Some("0-16"));

    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!(
        (neg.codec, neg.pt, neg.dtmf_pt),
        (Codec::Pcmu, 0, Some(101))
    );
    assert_eq!(neg.ptime_ms, 20);
    assert_eq!(neg.remote, Some(SocketAddr::new(ip4(192, 0, 2, 10), 10004)));
    assert_eq!(neg.direction, Direction::SendRecv);
    assert!(!neg.on_hold());
}

#[test]
fn freeswitch_offer_prefers_our_order_and_g722_when_asked() {
    let offer = parse(&crlf(FREESWITCH)).unwrap();
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!((neg.codec, neg.pt), (Codec::Pcmu, 0));
    let neg = negotiate(&offer, &[Codec::Pcma]).unwrap();
    assert_eq!((neg.codec, neg.pt), (Codec::Pcma, 8));
    let neg = negotiate(&offer, &[Codec::G722, Codec::Pcmu]).unwrap();
    assert_eq!((neg.codec, neg.pt), (Codec::G722, 9));
    assert_eq!(neg.codec.sample_rate(), 16000);
}

#[test]
fn cisco_offer_media_level_connection() {
    let offer = parse(&crlf(CISCO)).unwrap();
    assert_eq!(offer.connection, None);
    let audio = offer.audio.as_ref().unwrap();
    assert_eq!(audio.connection, Some(ip4(10, 1, 1, 50)));
    assert_eq!(audio.formats[2].encoding, "G729");
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!((neg.codec, neg.pt), (Codec::Pcmu, 0));
    assert_eq!(neg.remote, Some(SocketAddr::new(ip4(10, 1, 1, 50), 28350)));
}

#[test]
fn polycom_offer_ptime_30_and_dtmf_127() {
    let offer = parse(&crlf(POLYCOM)).unwrap();
    let audio = offer.audio.as_ref().unwrap();
    assert_eq!(audio.formats[1].clock, 16000);
    assert_eq!(audio.formats[1].codec, None);
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!(neg.ptime_ms, 30);
    assert_eq!(neg.dtmf_pt, Some(127));
    let text = answer(&neg, &params());
    assert!(text.contains("a=ptime:30\r\n"));
    assert!(text.contains("m=audio 20000 RTP/AVP 0 127\r\n"));
}

#[test]
fn sipp_uac_pcap_offer_pcma_only() {
    let offer = parse(&crlf(SIPP_UAC_PCAP)).unwrap();
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!(
        (neg.codec, neg.pt, neg.dtmf_pt),
        (Codec::Pcma, 8, Some(101))
    );
    assert_eq!(neg.remote, Some(SocketAddr::new(ip4(127, 0, 0, 1), 6000)));
    assert_eq!(
        negotiate(&offer, &[Codec::Pcmu]),
        Err(NegotiateError::NoCommonCodec)
    );
}

#[test]
fn pjsua_offer_picks_telephone_event_at_8000() {
    let offer = parse(&crlf(PJSUA)).unwrap();
    let audio = offer.audio.as_ref().unwrap();
    assert_eq!(audio.formats.len(), 11);
    assert_eq!(audio.formats[0].encoding, "speex");
    assert_eq!(audio.formats[0].clock, 16000);
    assert_eq!(audio.formats[4].encoding, "GSM");
    assert_eq!(audio.formats[7].codec, Some(Codec::G722));
    assert_eq!(audio.telephone_event, Some(121));
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!(
        (neg.codec, neg.pt, neg.dtmf_pt),
        (Codec::Pcmu, 0, Some(121))
    );
}

#[test]
fn pjsua_opus_offer() {
    let offer = parse(&crlf(PJSUA_OPUS)).unwrap();
    let audio = offer.audio.as_ref().unwrap();
    assert_eq!(audio.formats[0].channels, 2);
    assert_eq!(audio.formats[0].codec, Some(Codec::Opus));
    assert!(audio.rtcp_mux);
    assert_eq!(audio.telephone_event, Some(101));
    let neg = negotiate(&offer, &[Codec::Pcma, Codec::Pcmu]).unwrap();
    assert_eq!(
        (neg.codec, neg.pt, neg.dtmf_pt),
        (Codec::Pcma, 8, Some(101))
    );
    let text = answer(&neg, &params());
    assert!(!text.contains("rtcp-mux"));
}

#[test]
fn answer_text_is_exact() {
    let offer = parse(&crlf(ASTERISK)).unwrap();
    let neg = negotiate(&offer, PREFER).unwrap();
    let text = answer(&neg, &params());
    assert_eq!(
        text,
        "v=0\r\n\
         o=vmail 42 1 IN IP4 192.0.2.1\r\n\
         s=vmail\r\n\
         c=IN IP4 192.0.2.1\r\n\
         t=0 0\r\n\
         m=audio 20000 RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn answer_ipv6_and_sanitised_username() {
    let offer = parse(&crlf(SIPP_UAC_PCAP)).unwrap();
    let neg = negotiate(&offer, PREFER).unwrap();
    let p = AnswerParams {
        local_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
        username: "a b\r\nc",
        ..params()
    };
    let text = answer(&neg, &p);
    assert!(text.contains("o=a-b--c 42 1 IN IP6 ::1\r\n"));
    assert!(text.contains("c=IN IP6 ::1\r\n"));
    let empty = AnswerParams {
        username: "",
        ..params()
    };
    assert!(answer(&neg, &empty).contains("o=- 42 1 IN IP4"));
}

#[test]
fn static_payload_types_without_rtpmap() {
    let offer = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=audio 5004 RTP/AVP 18 8 0",
    ))
    .unwrap();
    let audio = offer.audio.as_ref().unwrap();
    assert_eq!(audio.formats[0].encoding, "G729");
    assert_eq!(audio.formats[1].codec, Some(Codec::Pcma));
    assert_eq!(audio.formats[2].codec, Some(Codec::Pcmu));
    assert_eq!(audio.telephone_event, None);
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!((neg.codec, neg.pt, neg.dtmf_pt), (Codec::Pcmu, 0, None));
    let text = answer(&neg, &params());
    assert!(text.contains("m=audio 20000 RTP/AVP 0\r\n"));
    assert!(!text.contains("telephone-event"));
}

#[test]
fn dynamic_pt_codec_names_case_insensitive_and_kept_in_answer() {
    let offer = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=audio 5004 RTP/AVP 112 97
         a=rtpmap:112 pcmu/8000
         a=rtpmap:97 Telephone-Event/8000",
    ))
    .unwrap();
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!(
        (neg.codec, neg.pt, neg.dtmf_pt),
        (Codec::Pcmu, 112, Some(97))
    );
    let text = answer(&neg, &params());
    assert!(text.contains("m=audio 20000 RTP/AVP 112 97\r\n"));
    assert!(text.contains("a=rtpmap:112 PCMU/8000\r\n"));
}

fn hold_offer(conn: &str, dir: &str) -> Offer {
    parse(&crlf(&format!(
        "v=0
         o=- 1 2 IN IP4 203.0.113.5
         s=-
         c={conn}
         t=0 0
         m=audio 5004 RTP/AVP 0
         {dir}"
    )))
    .unwrap()
}

#[test]
fn hold_variants() {
    let neg = negotiate(&hold_offer("IN IP4 203.0.113.5", "a=sendonly"), PREFER).unwrap();
    assert_eq!(neg.direction, Direction::RecvOnly);
    assert!(neg.on_hold());
    assert!(neg.remote.is_some());
    assert!(answer(&neg, &params()).contains("a=recvonly\r\n"));

    let neg = negotiate(&hold_offer("IN IP4 203.0.113.5", "a=inactive"), PREFER).unwrap();
    assert_eq!(neg.direction, Direction::Inactive);

    let neg = negotiate(&hold_offer("IN IP4 203.0.113.5", "a=recvonly"), PREFER).unwrap();
    assert_eq!(neg.direction, Direction::SendOnly);
    assert!(!neg.on_hold());

    // RFC 2543 hold: c=0.0.0.0.
    let neg = negotiate(&hold_offer("IN IP4 0.0.0.0", "a=sendrecv"), PREFER).unwrap();
    assert_eq!(neg.remote, None);
    assert_eq!(neg.direction, Direction::RecvOnly);
    assert!(neg.on_hold());

    let neg = negotiate(&hold_offer("IN IP4 0.0.0.0", "a=sendonly"), PREFER).unwrap();
    assert_eq!(neg.direction, Direction::RecvOnly);
    let neg = negotiate(&hold_offer("IN IP6 ::", "a=inactive"), PREFER).unwrap();
    assert_eq!((neg.remote, neg.direction), (None, Direction::Inactive));
}

#[test]
fn media_level_direction_and_connection_win() {
    let offer = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         a=sendonly
         m=audio 5004 RTP/AVP 0
         c=IN IP4 203.0.113.9
         a=sendrecv",
    ))
    .unwrap();
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!(neg.direction, Direction::SendRecv);
    assert_eq!(neg.remote, Some(SocketAddr::new(ip4(203, 0, 113, 9), 5004)));
}

#[test]
fn session_direction_applies_without_media_direction() {
    let offer = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         t=0 0
         a=sendonly
         m=audio 5004 RTP/AVP 0
         c=IN IP4 203.0.113.5",
    ))
    .unwrap();
    assert_eq!(offer.audio.unwrap().direction, Direction::SendOnly);
}

#[test]
fn ipv6_offer() {
    let offer = parse(&crlf(
        "v=0
         o=- 1 1 IN IP6 2001:db8::5
         s=-
         c=IN IP6 2001:db8::5
         t=0 0
         m=audio 5004 RTP/AVP 8",
    ))
    .unwrap();
    let neg = negotiate(&offer, PREFER).unwrap();
    let ip: IpAddr = "2001:db8::5".parse().unwrap();
    assert_eq!(neg.remote, Some(SocketAddr::new(ip, 5004)));
}

#[test]
fn ptime_rules() {
    for (ptime, expected) in [
        ("a=ptime:20", 20),
        ("a=ptime:30", 30),
        ("a=ptime:10", 20),
        ("a=ptime:60", 20),
        ("a=ptime:30.0", 30),
        ("a=ptime:x", 20),
        ("", 20),
    ] {
        let offer = parse(&crlf(&format!(
            "v=0
             o=- 1 1 IN IP4 203.0.113.5
             s=-
             c=IN IP4 203.0.113.5
             t=0 0
             m=audio 5004 RTP/AVP 0
             {ptime}"
        )))
        .unwrap();
        assert_eq!(
            negotiate(&offer, PREFER).unwrap().ptime_ms,
            expected,
            "{ptime}"
        );
    }
}

#[test]
fn session_connection_after_timing_line() {
    // Some carrier equipment writes c= after t=; the RFC order is not
    // enforced.
    let offer = parse(&crlf(
        "v=0
         o=LucentFS5000 1560282872 1560282872 IN IP4 test.example.com
         s=-
         t=0 0
         c=IN IP4 10.243.83.56
         m=audio 5004 RTP/AVP 0",
    ))
    .unwrap();
    assert_eq!(offer.connection, Some(ip4(10, 243, 83, 56)));
    assert_eq!(offer.origin.address, "test.example.com");
}

#[test]
fn lf_only_and_trailing_spaces_and_multicast_ttl() {
    let body = b"v=0\no=- 1 1 IN IP4 203.0.113.5 \ns=\nc=IN IP4 233.252.0.1/127\nt=0 0\nm=audio 5004/2 RTP/AVP 0 \n\n";
    let offer = parse(body).unwrap();
    assert_eq!(offer.connection, Some(ip4(233, 252, 0, 1)));
    assert_eq!(offer.audio.unwrap().port, 5004);
}

#[test]
fn non_utf8_session_name_is_tolerated() {
    let mut body = b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=".to_vec();
    body.extend_from_slice(&[0xff, 0xfe, b'x']);
    body.extend_from_slice(b"\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\n");
    assert!(parse(&body).is_ok());
}

#[test]
fn audio_and_video_answer_rejects_video() {
    let offer = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=video 5006 RTP/AVP 96
         a=rtpmap:96 H264/90000
         m=audio 5004 RTP/AVP 0
         m=application 5008 UDP/BFCP *",
    ))
    .unwrap();
    let neg = negotiate(&offer, PREFER).unwrap();
    assert_eq!(neg.audio_index, 1);
    let text = answer(&neg, &params());
    let m_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        [
            "m=video 0 RTP/AVP 96",
            "m=audio 20000 RTP/AVP 0",
            "m=application 0 UDP/BFCP *"
        ]
    );
    // The answer itself parses and negotiates to the same thing.
    let back = parse(text.as_bytes()).unwrap();
    let back_neg = negotiate(&back, PREFER).unwrap();
    assert_eq!((back_neg.codec, back_neg.pt), (Codec::Pcmu, 0));
}

#[test]
fn first_audio_with_nonzero_port_is_used() {
    let offer = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=audio 0 RTP/AVP 0
         m=audio 5010 RTP/AVP 8
         m=audio 5012 RTP/AVP 0",
    ))
    .unwrap();
    let audio = offer.audio.as_ref().unwrap();
    assert_eq!((audio.index, audio.port), (1, 5010));
    let text = answer(&negotiate(&offer, PREFER).unwrap(), &params());
    let m_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        [
            "m=audio 0 RTP/AVP 0",
            "m=audio 20000 RTP/AVP 8",
            "m=audio 0 RTP/AVP 0"
        ]
    );
}

#[test]
fn plain_rtp_preferred_over_srtp_and_srtp_only_rejected() {
    let both = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=audio 5004 RTP/SAVP 0
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
         m=audio 5006 RTP/AVP 0",
    ))
    .unwrap();
    assert_eq!(both.audio.as_ref().unwrap().port, 5006);
    assert!(negotiate(&both, PREFER).is_ok());

    let srtp = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=audio 5004 RTP/SAVP 0",
    ))
    .unwrap();
    assert_eq!(
        negotiate(&srtp, PREFER),
        Err(NegotiateError::NoUsableCrypto)
    );
}

#[test]
fn no_audio_and_no_common_codec() {
    let video_only = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=video 5006 RTP/AVP 96",
    ))
    .unwrap();
    assert_eq!(video_only.audio, None);
    assert_eq!(negotiate(&video_only, PREFER), Err(NegotiateError::NoAudio));

    let rejected_audio = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=audio 0 RTP/AVP 0",
    ))
    .unwrap();
    assert_eq!(
        negotiate(&rejected_audio, PREFER),
        Err(NegotiateError::NoAudio)
    );

    let g729_only = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=audio 5004 RTP/AVP 18 101
         a=rtpmap:101 telephone-event/8000",
    ))
    .unwrap();
    assert_eq!(
        negotiate(&g729_only, PREFER),
        Err(NegotiateError::NoCommonCodec)
    );
    // Stereo PCMU is not mono PCMU.
    let stereo = parse(&crlf(
        "v=0
         o=- 1 1 IN IP4 203.0.113.5
         s=-
         c=IN IP4 203.0.113.5
         t=0 0
         m=audio 5004 RTP/AVP 100
         a=rtpmap:100 PCMU/8000/2",
    ))
    .unwrap();
    assert_eq!(
        negotiate(&stereo, PREFER),
        Err(NegotiateError::NoCommonCodec)
    );
}

#[test]
fn bad_sdp_is_an_error() {
    let cases: &[(&[u8], SdpError)] = &[
        (b"", SdpError::Empty),
        (b"\r\n\r\n", SdpError::Empty),
        (b"hello world", SdpError::BadLine { line: 1 }),
        (b"v=1\r\n", SdpError::BadVersion { line: 1 }),
        (b"o=- 1 1 IN IP4 1.2.3.4\r\nv=0\r\n", SdpError::BadVersion { line: 1 }),
        (b"v=0\r\nv=0\r\n", SdpError::BadVersion { line: 2 }),
        (
            b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 0\r\n",
            SdpError::MissingOrigin,
        ),
        (b"v=0\r\no=- 1 1\r\n", SdpError::BadOrigin { line: 2 }),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n",
            SdpError::NoMedia,
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 0\r\n",
            SdpError::MissingConnection,
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
            SdpError::BadPort { line: 4 },
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio -1 RTP/AVP 0\r\n",
            SdpError::BadPort { line: 4 },
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP\r\n",
            SdpError::BadMedia { line: 4 },
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 0 200\r\n",
            SdpError::BadMedia { line: 4 },
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 host.example.com\r\n",
            SdpError::BadConnection { line: 3 },
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 2001:db8::1\r\n",
            SdpError::BadConnection { line: 3 },
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 96\r\na=rtpmap:96 opus\r\n",
            SdpError::BadRtpmap { line: 5 },
        ),
        (b"v=0\r\n =x\r\n", SdpError::BadLine { line: 2 }),
    ];
    for (body, expected) in cases {
        assert_eq!(
            parse(body).as_ref().err(),
            Some(expected),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(parse(&vec![b'a'; MAX_SDP_LEN + 1]), Err(SdpError::TooLarge));
    let many: String =
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n".to_owned() + &"m=video 0 RTP/AVP 96\r\n".repeat(40);
    assert_eq!(parse(many.as_bytes()), Err(SdpError::TooManyMedia));
}

#[test]
fn answers_of_real_offers_roundtrip() {
    for sdp in REAL_WORLD {
        let offer = parse(&crlf(sdp)).unwrap();
        let neg = negotiate(&offer, PREFER).unwrap();
        let text = answer(&neg, &params());
        let back = parse(text.as_bytes()).unwrap();
        let back_neg = negotiate(&back, PREFER).unwrap();
        assert_eq!(
            (back_neg.codec, back_neg.pt, back_neg.dtmf_pt),
            (neg.codec, neg.pt, neg.dtmf_pt)
        );
        assert_eq!(back.media.len(), offer.media.len());
    }
}

/// A mutation applied to a real offer.
#[derive(Debug, Clone)]
enum Mutation {
    SetByte(usize, u8),
    Delete(usize),
    Insert(usize, u8),
    DuplicateLine(usize),
    DropLine(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (
            any::<usize>(),
            prop::sample::select(b" \r\n=:/0189a-".to_vec())
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    if body.is_empty() {
        return;
    }
    let len = body.len();
    match *m {
        Mutation::SetByte(i, b) => body[i % len] = b,
        Mutation::Delete(i) => {
            body.remove(i % len);
        }
        Mutation::Insert(i, b) => body.insert(i % (len + 1), b),
        Mutation::Truncate(i) => body.truncate(i % len),
        Mutation::DuplicateLine(i) | Mutation::DropLine(i) => {
            let mut lines: Vec<Vec<u8>> = body
                .split_inclusive(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
            let k = i % lines.len();
            if matches!(m, Mutation::DuplicateLine(_)) {
                let line = lines[k].clone();
                lines.insert(k, line);
            } else {
                lines.remove(k);
            }
            *body = lines.concat();
        }
    }
}

/// Whatever parses also negotiates and answers without panicking, and an
/// answer always parses back to the same choice.
fn check_pipeline(body: &[u8]) {
    let Ok(offer) = parse(body) else { return };
    for prefer in [PREFER, &[Codec::G722, Codec::Pcma][..], &[]] {
        if let Ok(neg) = negotiate(&offer, prefer) {
            assert!(neg.ptime_ms == 20 || neg.ptime_ms == 30);
            let key = super::SrtpKey::random();
            let p = AnswerParams {
                srtp_key: neg.srtp.as_ref().map(|_| &key),
                ..params()
            };
            let text = answer(&neg, &p);
            let back = parse(text.as_bytes()).expect("our answer parses");
            let back_neg = negotiate(&back, &[neg.codec]).expect("our answer negotiates");
            assert_eq!((back_neg.codec, back_neg.pt), (neg.codec, neg.pt));
            assert_eq!(back.media.len(), neg.media.len().max(1));
        }
    }
}

fn direction() -> impl Strategy<Value = Option<Direction>> {
    prop::option::of(prop::sample::select(vec![
        Direction::SendRecv,
        Direction::SendOnly,
        Direction::RecvOnly,
        Direction::Inactive,
    ]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..1500)) {
        check_pipeline(&body);
    }

    #[test]
    fn random_lines_never_panic(
        lines in prop::collection::vec(
            (prop::sample::select(b"vocmatsbk".to_vec()), "[ -~]{0,40}"), 0..20)
    ) {
        let mut body = b"v=0\r\n".to_vec();
        for (k, v) in &lines {
            body.push(*k);
            body.push(b'=');
            body.extend_from_slice(v.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        check_pipeline(&body);
    }

    #[test]
    fn mutated_offers_never_panic(
        which in 0..REAL_WORLD.len(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut body = crlf(REAL_WORLD[which]);
        for m in &mutations {
            apply(&mut body, m);
        }
        check_pipeline(&body);
    }

    /// Generated well-formed offers parse to what was written.
    #[test]
    fn generated_offers_parse_as_written(
        port in 1u16..,
        pts in prop::collection::vec(0u8..=127, 1..8),
        pcmu_dynamic in prop::option::of(96u8..=127),
        dtmf in prop::option::of(96u8..=127),
        session_ip in prop::option::of(any::<Ipv4Addr>()),
        media_ip in prop::option::of(any::<Ipv6Addr>()),
        session_dir in direction(),
        media_dir in direction(),
        ptime in prop::option::of(prop::sample::select(vec![10u32, 20, 30, 40, 60])),
        lf_only in any::<bool>(),
    ) {
        // Some `c=` is required; default to a session-level one.
        let session_ip = session_ip.or(media_ip.is_none().then_some(Ipv4Addr::new(192, 0, 2, 50)));
        let mut pts = pts;
        if let Some(p) = pcmu_dynamic { pts.push(p); }
        if let Some(p) = dtmf { pts.push(p); }
        let mut uniq = Vec::new();
        for p in pts { if !uniq.contains(&p) { uniq.push(p); } }
        let pt_list: Vec<String> = uniq.iter().map(u8::to_string).collect();

        let mut s = String::from("v=0\no=- 7 9 IN IP4 192.0.2.9\ns=-\n");
        if let Some(ip) = session_ip { s += &format!("c=IN IP4 {ip}\n"); }
        s += "t=0 0\n";
        if let Some(d) = session_dir { s += &format!("a={}\n", d.attribute()); }
        s += &format!("m=audio {port} RTP/AVP {}\n", pt_list.join(" "));
        if let Some(ip) = media_ip { s += &format!("c=IN IP6 {ip}\n"); }
        if let Some(p) = pcmu_dynamic {
            if Some(p) != dtmf { s += &format!("a=rtpmap:{p} PCMU/8000\n"); }
        }
        if let Some(p) = dtmf {
            s += &format!("a=rtpmap:{p} telephone-event/8000\na=fmtp:{p} 0-15\n");
        }
        if let Some(d) = media_dir { s += &format!("a={}\n", d.attribute()); }
        if let Some(p) = ptime { s += &format!("a=ptime:{p}\n"); }
        let body = if lf_only { s } else { s.replace('\n', "\r\n") };

        let offer = parse(body.as_bytes()).unwrap();
        let audio = offer.audio.clone().unwrap();
        prop_assert_eq!(audio.port, port);
        prop_assert_eq!(audio.formats.iter().map(|f| f.pt).collect::<Vec<_>>(), uniq.clone());
        prop_assert_eq!(audio.telephone_event, dtmf);
        prop_assert_eq!(audio.ptime_ms, ptime);
        prop_assert_eq!(audio.direction, media_dir.or(session_dir).unwrap_or_default());
        let expected_ip = media_ip.map(IpAddr::V6).or(session_ip.map(IpAddr::V4));
        prop_assert_eq!(offer.audio_connection(), expected_ip);

        let has_pcmu = uniq.iter().any(|&p| {
            p == 0 || (Some(p) == pcmu_dynamic && Some(p) != dtmf)
        });
        match negotiate(&offer, PREFER) {
            Ok(neg) => {
                prop_assert_eq!(neg.ptime_ms, if ptime == Some(30) { 30 } else { 20 });
                prop_assert_eq!(neg.dtmf_pt, dtmf);
                if has_pcmu { prop_assert_eq!(neg.codec, Codec::Pcmu); }
                let unspecified = expected_ip.is_some_and(|ip| ip.is_unspecified());
                prop_assert_eq!(neg.remote.is_none(), unspecified);
                prop_assert!(neg.remote.is_none_or(|a| crate::media::usable_media_ip(a.ip())));
            }
            Err(NegotiateError::UnusableAddress { addr }) => {
                prop_assert_eq!(Some(addr), expected_ip);
                prop_assert!(!crate::media::usable_media_ip(addr));
            }
            Err(e) => {
                prop_assert_eq!(e, NegotiateError::NoCommonCodec);
                prop_assert!(!has_pcmu && !uniq.contains(&8));
            }
        }
    }
}

#[test]
fn multicast_broadcast_and_reserved_addresses_are_refused() {
    for (conn, addr) in [
        ("IN IP4 233.252.0.1/127", ip4(233, 252, 0, 1)),
        ("IN IP4 224.0.0.1", ip4(224, 0, 0, 1)),
        ("IN IP4 255.255.255.255", ip4(255, 255, 255, 255)),
        ("IN IP4 240.0.0.7", ip4(240, 0, 0, 7)),
        ("IN IP4 0.1.2.3", ip4(0, 1, 2, 3)),
        ("IN IP6 ff0e::101", "ff0e::101".parse().unwrap()),
    ] {
        let offer = hold_offer(conn, "a=sendrecv");
        assert_eq!(
            negotiate(&offer, PREFER),
            Err(NegotiateError::UnusableAddress { addr }),
            "{conn}"
        );
        assert_eq!(
            negotiate_initial(&offer, PREFER),
            Err(NegotiateError::UnusableAddress { addr }),
            "{conn}"
        );
    }
}

#[test]
fn an_initial_offer_must_name_an_address_a_reoffer_may_hold() {
    for conn in ["IN IP4 0.0.0.0", "IN IP6 ::"] {
        let offer = hold_offer(conn, "a=sendrecv");
        assert_eq!(
            negotiate_initial(&offer, PREFER),
            Err(NegotiateError::NoAddress)
        );
        assert!(negotiate(&offer, PREFER).unwrap().on_hold());
    }
    let offer = hold_offer("IN IP4 203.0.113.5", "a=sendonly");
    assert!(negotiate_initial(&offer, PREFER).is_ok());
}

const WIDEBAND: &str = "
    v=0
    o=- 7 7 IN IP4 192.0.2.9
    s=-
    c=IN IP4 192.0.2.9
    t=0 0
    m=audio 5004 RTP/AVP 107 9 18 0 101
    a=rtpmap:107 opus/48000/2
    a=fmtp:107 maxplaybackrate=8000;stereo=1; useinbandfec=1
    a=rtpmap:9 G722/8000
    a=rtpmap:18 G729/8000
    a=fmtp:18 annexb=no
    a=rtpmap:0 PCMU/8000
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-15
    a=ptime:60
";

#[test]
fn opus_is_answered_with_its_fmtp() {
    let offer = parse(&crlf(WIDEBAND)).unwrap();
    let neg = negotiate(&offer, &[Codec::Opus, Codec::G722]).unwrap();
    assert_eq!((neg.codec, neg.pt, neg.ptime_ms), (Codec::Opus, 107, 60));
    assert_eq!(neg.params.opus.max_playback_rate, 8000);
    assert!(neg.params.opus.peer_uses_fec && neg.params.opus.stereo);
    let text = answer(&neg, &params());
    assert!(text.contains("m=audio 20000 RTP/AVP 107 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:107 opus/48000/2\r\n"), "{text}");
    assert!(
        text.contains("a=fmtp:107 maxplaybackrate=16000;sprop-maxcapturerate=8000;stereo=0;sprop-stereo=0;useinbandfec=1\r\n"),
        "{text}"
    );
    assert!(text.contains("a=ptime:60\r\n"));
}

#[test]
fn g722_and_g729_answers() {
    let offer = parse(&crlf(WIDEBAND)).unwrap();
    let neg = negotiate(&offer, &[Codec::G722]).unwrap();
    assert_eq!((neg.codec, neg.pt, neg.ptime_ms), (Codec::G722, 9, 20));
    let text = answer(&neg, &params());
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n") && !text.contains("a=fmtp:9"));
    let neg = negotiate(&offer, &[Codec::G729]).unwrap();
    assert!(!neg.params.annexb);
    let text = answer(&neg, &params());
    assert!(
        text.contains("a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n"),
        "{text}"
    );
    // annex B is the default.
    let plain = parse(&crlf(&WIDEBAND.replace("a=fmtp:18 annexb=no\n", ""))).unwrap();
    assert!(negotiate(&plain, &[Codec::G729]).unwrap().params.annexb);
}

#[test]
fn opus_rtpmap_must_say_48000() {
    let offer = parse(&crlf(&WIDEBAND.replace("opus/48000/2", "opus/16000/1"))).unwrap();
    assert_eq!(offer.audio.unwrap().formats[0].codec, None);
}

proptest! {
    /// Any fmtp text on any codec negotiates without a panic, and the
    /// answer names the codec's rtpmap.
    #[test]
    fn fmtp_lines_never_break_negotiation(fmtp in "[ -~]{0,80}", pick in 0usize..3) {
        let sdp = WIDEBAND
            .replace("maxplaybackrate=8000;stereo=1; useinbandfec=1", &fmtp)
            .replace("annexb=no", &fmtp);
        if let Ok(offer) = parse(&crlf(&sdp)) {
            let prefer = [[Codec::Opus], [Codec::G729], [Codec::G722]][pick];
            if let Ok(neg) = negotiate(&offer, &prefer) {
                let text = answer(&neg, &params());
                let rtpmap = format!("{}/{}", neg.codec.encoding_name(), neg.codec.rtp_clock_rate());
                prop_assert!(text.contains(&rtpmap));
            }
        }
    }
}

#[test]
fn opus_takes_telephone_event_at_its_clock() {
    let offer = parse(&crlf(PJSUA_OPUS)).unwrap();
    let neg = negotiate(&offer, &[Codec::Opus]).unwrap();
    assert_eq!(
        (neg.codec, neg.pt, neg.dtmf_pt, neg.dtmf_clock),
        (Codec::Opus, 96, Some(120), 48000)
    );
    let text = answer(&neg, &params());
    assert!(text.contains("m=audio 20000 RTP/AVP 96 120\r\n"), "{text}");
    assert!(
        text.contains("a=rtpmap:120 telephone-event/48000\r\n"),
        "{text}"
    );
    // Another codec keeps telephone-event/8000.
    let neg = negotiate(&offer, &[Codec::G722]).unwrap();
    assert_eq!((neg.dtmf_pt, neg.dtmf_clock), (Some(101), 8000));
    // Opus without a 48000 one uses the 8000 one.
    let offer = parse(&crlf(WIDEBAND)).unwrap();
    let neg = negotiate(&offer, &[Codec::Opus]).unwrap();
    assert_eq!((neg.dtmf_pt, neg.dtmf_clock), (Some(101), 8000));
}
