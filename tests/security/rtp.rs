//! Attacks on the RTP path (see tests/security.rs): an attacker is a plain
//! UDP socket on 127.0.0.1 that sends to the call's RTP port (read from the
//! 200's SDP); the caller is a raw SIP UA of this file with an [`RtpPeer`].

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost};

use crate::common::*;

const USER: &str = "1001";

/// vmail with mailbox [`USER`] and `ext` tweaks.
fn vmail_with(tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = json!([{"user": USER, "domain": DOMAIN, "pin": "1234"}]);
            tweak(ext);
        })
        .start()
}

/// A greeting of `ms` milliseconds (a 400 Hz tone) for [`USER`].
fn greeting(v: &Vmail, ms: u32) {
    let store = FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("store");
    let id = MailboxId::new(USER, DOMAIN).expect("mailbox");
    let pcm = vmail::media::tone(400.0, ms, 8000, 8000);
    store
        .store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .expect("greeting");
}

/// The one message of [`USER`], as PCM.
fn stored_message(v: &Vmail) -> Vec<i16> {
    let inbox = v.mailbox_dir(USER, DOMAIN).join("INBOX");
    let wavs = wait_for_files(&inbox, ".wav", 1, Duration::from_secs(10));
    assert_eq!(wavs.len(), 1, "{}", v.log());
    read_wav(&wavs[0]).1
}

fn sdp(ip: IpAddr, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 {port} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// A caller speaking SIP over a plain UDP socket: INVITE, ACK, re-INVITE,
/// BYE, and answering vmail's BYE.
struct RawCall {
    sock: UdpSocket,
    vmail: SocketAddr,
    call_id: String,
    to: String,
    cseq: u32,
    /// Where vmail receives the call's RTP.
    rtp: SocketAddr,
    /// vmail sent BYE.
    bye_from_vmail: bool,
}

/// What came back for an INVITE.
enum Answer {
    Ok(RawCall),
    Refused(u16),
}

impl RawCall {
    /// INVITEs [`USER`] from a SIP socket on `local_ip`, with an SDP naming
    /// `media`; the 200 is not acknowledged yet (see [`Self::ack`]).
    fn invite(v: &Vmail, local_ip: &str, media: SocketAddr) -> Answer {
        let sock = UdpSocket::bind((local_ip, 0)).expect("bind SIP socket");
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        let local = sock.local_addr().expect("address");
        let call_id = format!("rtp-sec-{}-{}", local.port(), std::process::id());
        let body = sdp(media.ip(), media.port());
        let msg = format!(
            "INVITE sip:{USER}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-i{}\r\n\
             From: <sip:5550001@{DOMAIN}>;tag=f{}\r\nTo: <sip:{USER}@{DOMAIN}>\r\nCall-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:5550001@{local}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            local.port(),
            local.port(),
            body.len()
        );
        let mut call = RawCall {
            sock,
            vmail: v.sip_addr(),
            call_id,
            to: String::new(),
            cseq: 1,
            rtp: v.sip_addr(),
            bye_from_vmail: false,
        };
        let resp = call
            .transact(&msg, "INVITE")
            .unwrap_or_else(|| panic!("no final answer to the INVITE\n{}", v.log()));
        let code = status(&resp);
        if code != 200 {
            return Answer::Refused(code);
        }
        call.to = header_value(&resp, "To").expect("To").to_owned();
        call.rtp = rtp_addr(&resp).expect("SDP with an audio port in the 200");
        Answer::Ok(call)
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().expect("address")
    }

    fn request(&self, method: &str, cseq_method: &str, body: &str) -> String {
        let local = self.local();
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "{method} sip:vmail@{} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{}-{}\r\n\
             From: <sip:5550001@{DOMAIN}>;tag=f{}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} {cseq_method}\r\n\
             Max-Forwards: 70\r\nContact: <sip:5550001@{local}>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
            self.vmail,
            method.to_ascii_lowercase(),
            self.cseq,
            local.port(),
            self.to,
            self.call_id,
            self.cseq,
            body.len()
        )
    }

    /// Sends `msg` (again every 500 ms) until a final response for
    /// `method` arrives; answers vmail's requests meanwhile.
    fn transact(&mut self, msg: &str, method: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut sent: Option<Instant> = None;
        while Instant::now() < deadline {
            if sent.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                self.sock.send_to(msg.as_bytes(), self.vmail).expect("send");
                sent = Some(Instant::now());
            }
            if let Some(text) = self.recv() {
                let cseq = header_value(&text, "CSeq").unwrap_or("");
                if text.starts_with("SIP/2.0 ") && cseq.ends_with(method) && status(&text) >= 200 {
                    return Some(text);
                }
            }
        }
        None
    }

    /// One message from vmail, if any within 5 ms; vmail's BYE is noted
    /// and answered.
    fn recv(&mut self) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        let n = self.sock.recv(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("BYE ") {
            self.bye_from_vmail = true;
            let mut ok = String::from("SIP/2.0 200 OK\r\n");
            for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                for value in header_values(&text, h) {
                    ok += &format!("{h}: {value}\r\n");
                }
            }
            ok += "Content-Length: 0\r\n\r\n";
            let _ = self.sock.send_to(ok.as_bytes(), self.vmail);
        }
        Some(text)
    }

    fn ack(&self) {
        let ack = self.request("ACK", "ACK", "");
        self.sock.send_to(ack.as_bytes(), self.vmail).expect("send");
    }

    /// A re-INVITE moving the media to `media`; its final status (ACKed).
    fn reinvite(&mut self, media: SocketAddr) -> u16 {
        self.cseq += 1;
        let msg = self.request("INVITE", "INVITE", &sdp(media.ip(), media.port()));
        let code = self.transact(&msg, "INVITE").map_or(0, |r| status(&r));
        if code >= 200 {
            self.ack();
        }
        code
    }

    /// Hangs up; the BYE's status (481 when vmail had already ended the
    /// call).
    fn bye(&mut self) -> u16 {
        self.cseq += 1;
        let msg = self.request("BYE", "BYE", "");
        self.transact(&msg, "BYE").map_or(0, |r| status(&r))
    }

    /// Reads (and answers) what vmail sends for `d`.
    fn idle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            let _ = self.recv();
        }
    }
}

fn status(resp: &str) -> u16 {
    resp.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// vmail's RTP address from the SDP of a 200.
fn rtp_addr(resp: &str) -> Option<SocketAddr> {
    let ip: IpAddr = resp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim()
        .parse()
        .ok()?;
    let port: u16 = resp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}

/// A tiny PRNG (xorshift) for the attacker's random fields.
struct Rand(u64);

impl Rand {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// An RTP packet (PCMA) with `payload`.
fn rtp_packet(ssrc: u32, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// 20 ms of a `hz` tone, PCMA.
fn tone_frame(hz: f32, frame: u32) -> Vec<u8> {
    let pcm = vmail::media::tone(hz, 20 * (frame + 1), 8000, 8000);
    pcm[pcm.len() - 160..]
        .iter()
        .map(|&s| g711_encode(8, s))
        .collect()
}

/// What the caller sends: `lead_ms` of a 300 Hz tone (speech stands in),
/// then `media/tones.wav`, then 500 ms of the 300 Hz tone, all at once
/// from its first packet.
fn caller_plan(lead_ms: u32) -> RtpPlan {
    let mut audio = vmail::media::tone(300.0, lead_ms, 6000, 8000);
    audio.extend(read_wav(&media("tones.wav")).1);
    audio.extend(vmail::media::tone(300.0, 500, 6000, 8000));
    RtpPlan {
        audio,
        payload_type: 8,
        ..RtpPlan::default()
    }
}

fn plan_ms(plan: &RtpPlan) -> u64 {
    plan.audio.len() as u64 / 8
}

fn attacker() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind attacker");
    s.set_nonblocking(true).expect("non-blocking");
    s
}

/// Datagrams waiting on `sock`.
fn drain_count(sock: &UdpSocket) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while sock.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    n
}

#[test]
fn attacker_packets_before_the_callers_do_not_take_the_greeting() {
    let v = vmail_with(|_| {});
    greeting(&v, 3000);
    let caller = RtpPeer::with_plan(RtpPlan {
        audio: vmail::media::tone(300.0, 4000, 6000, 8000),
        payload_type: 8,
        ..RtpPlan::default()
    });
    let Answer::Ok(mut call) = RawCall::invite(&v, "127.0.0.1", caller.addr()) else {
        panic!("INVITE refused\n{}", v.log());
    };
    // Between the 200 and the ACK, five packets in sequence from elsewhere;
    // then the attacker keeps streaming in sequence.
    let evil = attacker();
    let mut seq = 100u16;
    for i in 0..5 {
        let p = rtp_packet(0xbad, seq, i * 160, &tone_frame(2000.0, i));
        evil.send_to(&p, call.rtp).expect("send");
        seq = seq.wrapping_add(1);
    }
    std::thread::sleep(Duration::from_millis(100));
    call.ack();
    let mut got = 0;
    for i in 5..150u32 {
        let p = rtp_packet(0xbad, seq, i * 160, &tone_frame(2000.0, i));
        evil.send_to(&p, call.rtp).expect("send");
        seq = seq.wrapping_add(1);
        call.idle(Duration::from_millis(20));
        got += drain_count(&evil);
    }
    assert_eq!(call.bye(), 200);
    let cap = caller.finish();
    assert_eq!(got, 0, "vmail sent {got} packets to the attacker");
    assert!(
        cap.audio().count() >= 100,
        "the caller heard {} packets",
        cap.audio().count()
    );
}

#[test]
fn a_foreign_tone_does_not_end_up_in_the_message() {
    let v = vmail_with(|_| {});
    greeting(&v, 100);
    let plan = caller_plan(1500);
    let sent_ms = plan_ms(&plan);
    let caller = RtpPeer::with_plan(plan);
    let Answer::Ok(mut call) = RawCall::invite(&v, "127.0.0.1", caller.addr()) else {
        panic!("INVITE refused\n{}", v.log());
    };
    call.ack();
    // A 2 kHz tone in sequence, interleaved with the caller's audio.
    let evil = attacker();
    let frames = u32::try_from(sent_ms / 20).expect("frames");
    for i in 0..frames {
        let p = rtp_packet(
            0xbad,
            7000u16.wrapping_add(i as u16),
            i * 160,
            &tone_frame(2000.0, i),
        );
        evil.send_to(&p, call.rtp).expect("send");
        call.idle(Duration::from_millis(20));
    }
    call.idle(Duration::from_millis(500));
    assert_eq!(call.bye(), 200);
    drop(caller.finish());
    let pcm = stored_message(&v);
    let tones = tone_sequence(&pcm, 8000);
    assert!(
        tones.iter().all(|t| t.freq.abs_diff(2000) > 50),
        "the attacker's tone is in the message: {tones:?}"
    );
    assert_test_tones(&tones, 60);
}

#[test]
fn random_ssrc_packets_neither_silence_nor_end_the_call() {
    // A short silence limit: a call that looked silent would end at once.
    let v = vmail_with(|ext| ext["silence_seconds"] = json!(2));
    greeting(&v, 100);
    let plan = caller_plan(1500);
    let sent_ms = plan_ms(&plan);
    let caller = RtpPeer::with_plan(plan);
    let Answer::Ok(mut call) = RawCall::invite(&v, "127.0.0.1", caller.addr()) else {
        panic!("INVITE refused\n{}", v.log());
    };
    call.ack();
    call.idle(Duration::from_millis(600));
    // 600 packets of silence, each with a new SSRC and sequence number.
    let evil = attacker();
    let mut r = Rand(0x9e37_79b9_7f4a_7c15);
    let silence = [0xd5u8; 160];
    for i in 0..600u32 {
        let x = r.next();
        let p = rtp_packet(x as u32, (x >> 32) as u16, (x >> 40) as u32, &silence);
        evil.send_to(&p, call.rtp).expect("send");
        if i % 4 == 3 {
            call.idle(Duration::from_millis(20));
        }
    }
    call.idle(Duration::from_millis(sent_ms.saturating_sub(3600) + 300));
    assert!(!call.bye_from_vmail, "vmail ended the call\n{}", v.log());
    assert_eq!(call.bye(), 200, "the call was over\n{}", v.log());
    drop(caller.finish());
    assert_test_tones(&tone_sequence(&stored_message(&v), 8000), 60);
}

#[test]
fn a_flood_of_random_bytes_costs_the_caller_no_audio() {
    let v = vmail_with(|_| {});
    greeting(&v, 100);
    let plan = caller_plan(1500);
    let sent_ms = plan_ms(&plan);
    let caller = RtpPeer::with_plan(plan);
    let Answer::Ok(mut call) = RawCall::invite(&v, "127.0.0.1", caller.addr()) else {
        panic!("INVITE refused\n{}", v.log());
    };
    call.ack();
    // About 2,500 datagrams of random bytes a second for the whole message.
    let evil = attacker();
    let mut r = Rand(0x2545_f491_4f6c_dd1d);
    let until = Instant::now() + Duration::from_millis(sent_ms);
    let mut sent = 0u64;
    while Instant::now() < until {
        for _ in 0..25 {
            let bytes: Vec<u8> = (0..22).flat_map(|_| r.next().to_le_bytes()).collect();
            let _ = evil.send_to(&bytes[..172], call.rtp);
            sent += 1;
        }
        call.idle(Duration::from_millis(10));
    }
    call.idle(Duration::from_millis(500));
    assert_eq!(call.bye(), 200);
    drop(caller.finish());
    assert!(sent > 5_000, "sent {sent}");
    let pcm = stored_message(&v);
    let stored_ms = pcm.len() as u64 / 8;
    assert!(
        stored_ms + 1000 >= sent_ms,
        "stored {stored_ms} ms of {sent_ms} ms"
    );
    assert_test_tones(&tone_sequence(&pcm, 8000), 60);
}

#[test]
fn a_reinvite_to_a_new_media_address_moves_the_audio() {
    let v = vmail_with(|_| {});
    greeting(&v, 8000);
    let tone = |ms| RtpPlan {
        audio: vmail::media::tone(300.0, ms, 6000, 8000),
        payload_type: 8,
        ..RtpPlan::default()
    };
    let old = RtpPeer::with_plan(tone(1500));
    let old_started = Instant::now();
    let Answer::Ok(mut call) = RawCall::invite(&v, "127.0.0.1", old.addr()) else {
        panic!("INVITE refused\n{}", v.log());
    };
    call.ack();
    call.idle(Duration::from_millis(1500));
    let new = RtpPeer::with_plan(tone(3000));
    assert_eq!(call.reinvite(new.addr()), 200);
    let moved_at = old_started.elapsed();
    call.idle(Duration::from_millis(2500));
    assert_eq!(call.bye(), 200);
    let old = old.finish();
    let new = new.finish();
    assert!(
        old.audio().count() >= 40,
        "before the move: {} packets",
        old.audio().count()
    );
    let late = old
        .audio()
        .filter(|p| p.at > moved_at + Duration::from_millis(300))
        .count();
    assert_eq!(late, 0, "the old address still got {late} packets");
    assert!(
        new.audio().count() >= 80,
        "the new address got {} packets\n{}",
        new.audio().count(),
        v.log()
    );
}

#[test]
fn multicast_broadcast_and_unspecified_offers_get_488() {
    let v = vmail_with(|_| {});
    for ip in ["224.0.0.1", "239.255.255.250", "255.255.255.255", "0.0.0.0"] {
        let media = SocketAddr::new(ip.parse().expect("ip"), 40000);
        match RawCall::invite(&v, "127.0.0.1", media) {
            Answer::Refused(code) => assert_eq!(code, 488, "{ip}"),
            Answer::Ok(mut call) => {
                call.ack();
                let _ = call.bye();
                panic!("an offer with c={ip} was answered 200");
            }
        }
    }
    // A normal call still works afterwards.
    let peer = RtpPeer::listen();
    let Answer::Ok(mut call) = RawCall::invite(&v, "127.0.0.1", peer.addr()) else {
        panic!("INVITE refused\n{}", v.log());
    };
    call.ack();
    assert_eq!(call.bye(), 200);
}

#[test]
fn a_third_party_named_in_the_sdp_gets_no_audio() {
    let v = vmail_with(|_| {});
    greeting(&v, 3000);
    // The forged INVITE comes from 127.0.0.2 and names a victim on
    // 127.0.0.1 that never sends RTP.
    let victim = RtpPeer::listen();
    let Answer::Ok(mut call) = RawCall::invite(&v, "127.0.0.2", victim.addr()) else {
        panic!("INVITE refused\n{}", v.log());
    };
    call.ack();
    call.idle(Duration::from_secs(4));
    assert_eq!(call.bye(), 200);
    let cap = victim.finish();
    assert_eq!(
        cap.packets.len(),
        0,
        "vmail sent {} packets to the third party",
        cap.packets.len()
    );
    // The greeting did not wait for ever: it played (into nothing).
    assert!(
        v.log().contains("the greeting starts anyway"),
        "{}",
        v.log()
    );
}
