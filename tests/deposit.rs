//! Leaving a message: the real `vmail` binary on 127.0.0.1, called by sipp
//! and by the PJSIP client library (SPEC §3, §5, §6).

mod common;

use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost};

/// vmail with mailboxes `users` of [`DOMAIN`] (PIN 1234) and `ext` tweaks.
fn vmail_with(users: &[&str], tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    let demo: Vec<Value> = users
        .iter()
        .map(|u| json!({"user": u, "domain": DOMAIN, "pin": "1234"}))
        .collect();
    Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = Value::Array(demo);
            tweak(ext);
        })
        .start()
}

fn store(v: &Vmail) -> FsStore {
    FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("open store")
}

/// Give `user` a greeting of `kind`: a tone of `hz` for `ms` milliseconds.
fn set_greeting(v: &Vmail, user: &str, kind: GreetingKind, hz: f32, ms: u32) {
    let id = MailboxId::new(user, DOMAIN).unwrap();
    let pcm = vmail::media::tone(hz, ms, 8000, 8000);
    store(v).store_greeting(&id, kind, &pcm, 8000).unwrap();
}

/// A short temporary greeting, so that recording starts about half a second
/// after the answer (100 ms greeting, 400 ms beep).
fn short_greeting(v: &Vmail, user: &str) {
    set_greeting(v, user, GreetingKind::Temporary, 400.0, 100);
}

/// Wait for `n` messages in the INBOX of `user`; returns (wav, metadata).
fn wait_messages(v: &Vmail, user: &str, n: usize, timeout: Duration) -> Vec<(PathBuf, Value)> {
    let inbox = v.mailbox_dir(user, DOMAIN).join("INBOX");
    let wavs = wait_for_files(&inbox, ".wav", n, timeout);
    wavs.into_iter()
        .map(|wav| {
            let meta = wav.with_extension("json");
            let text = fs::read_to_string(&meta)
                .unwrap_or_else(|e| panic!("{}: metadata missing: {e}", meta.display()));
            (wav, serde_json::from_str(&text).expect("metadata is JSON"))
        })
        .collect()
}

fn inbox_count(v: &Vmail, user: &str) -> usize {
    files_with_suffix(&v.mailbox_dir(user, DOMAIN).join("INBOX"), ".wav").len()
}

fn wav_ms(path: &Path) -> u64 {
    let (spec, pcm) = read_wav(path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 8000, 16),
        "{}",
        path.display()
    );
    pcm.len() as u64 * 1000 / 8000
}

const G711A_PCAP_MS: u64 = 236 * 30;

fn sipp_deposit(transport_tcp: bool) {
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let mut sipp = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox("1001")
        .hold_ms(G711A_PCAP_MS + 1000);
    if transport_tcp {
        sipp = sipp.tcp();
    }
    let Some(run) = sipp.run() else { return };
    run.assert_success("deposit.xml");
    let msgs = wait_messages(&v, "1001", 1, Duration::from_secs(10));
    let (wav, meta) = &msgs[0];
    // The capture plays from the ACK on; recording starts after the 100 ms
    // greeting and the 400 ms beep, so the message holds the rest of it.
    let ms = wav_ms(wav);
    assert!(
        (G711A_PCAP_MS - 900..=G711A_PCAP_MS).contains(&ms),
        "stored {ms} ms of a {G711A_PCAP_MS} ms capture"
    );
    assert_eq!(meta["duration_ms"].as_u64(), Some(ms), "{meta}");
    assert!(
        meta["caller_uri"]
            .as_str()
            .unwrap_or("")
            .contains("5551234"),
        "{meta}"
    );
    assert!(
        meta["called_uri"].as_str().unwrap_or("").contains("1001"),
        "{meta}"
    );
    assert_eq!(meta["codec"], "PCMA", "{meta}");
    assert_eq!(meta["recovered"], false, "{meta}");
    assert_eq!(meta["instance"], "vmail1", "{meta}");
    // Nothing is left behind in tmp/.
    let tmp = v.mailbox_dir("1001", DOMAIN).join("tmp");
    assert!(files_with_suffix(&tmp, ".wav").is_empty());
}

#[test]
fn sipp_deposit_over_udp_stores_the_capture() {
    sipp_deposit(false);
}

#[test]
fn sipp_deposit_over_tcp_stores_the_capture() {
    sipp_deposit(true);
}

/// The test owns the caller's RTP: the stored WAV's length equals the media
/// time sent and holds the same tones at the same offsets.
#[test]
fn stored_audio_matches_what_the_caller_sent() {
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let (_, tones) = read_wav(&media("tones.wav"));
    let sent_ms = tones.len() as u64 / 8;
    let peer = RtpPeer::with_plan(RtpPlan {
        audio: tones,
        payload_type: 8,
        start_after: Duration::from_millis(1500),
        ..RtpPlan::default()
    });
    let Some(run) = Sipp::uac("deposit_rtp_peer.xml", v.sip_addr())
        .mailbox("1001")
        .key("rtp_port", &peer.port().to_string())
        .hold_ms(1500 + sent_ms + 1500)
        .run()
    else {
        return;
    };
    run.assert_success("deposit_rtp_peer.xml");
    let cap = peer.finish();
    assert!(cap.sent as u64 >= sent_ms / 20, "sent {} packets", cap.sent);
    let msgs = wait_messages(&v, "1001", 1, Duration::from_secs(10));
    let (wav, meta) = &msgs[0];
    let ms = wav_ms(wav);
    assert!(
        ms.abs_diff(sent_ms) <= 40,
        "stored {ms} ms, sent {sent_ms} ms"
    );
    // The offer lists PCMA first: vmail follows the caller's preference.
    assert_eq!(meta["codec"], "PCMA");
    let (_, pcm) = read_wav(wav);
    assert_test_tones(&tone_sequence(&pcm, 8000), 60);
}

/// Which greeting vmail plays, read from the RTP it sends.
fn greeting_heard(diversion: Option<&str>) -> Vec<u32> {
    let v = vmail_with(&["1001"], |_| {});
    set_greeting(&v, "1001", GreetingKind::Busy, 500.0, 600);
    set_greeting(&v, "1001", GreetingKind::Unavailable, 700.0, 600);
    let peer = RtpPeer::listen();
    let mut sipp = Sipp::uac("deposit_rtp_peer.xml", v.sip_addr())
        .service("vm")
        .key("to_user", "vm")
        .key("rtp_port", &peer.port().to_string())
        .hold_ms(2500);
    if let Some(d) = diversion {
        sipp = sipp.header(d);
    }
    let Some(run) = sipp.run() else {
        return Vec::new();
    };
    run.assert_success("deposit_rtp_peer.xml");
    let cap = peer.finish();
    let heard: Vec<u32> = tone_sequence(&cap.audio_pcm(), 8000)
        .iter()
        .map(|t| t.freq)
        .collect();
    heard
}

#[test]
fn diversion_user_busy_plays_the_busy_greeting() {
    let heard = greeting_heard(Some(&format!(
        "Diversion: <sip:1001@{DOMAIN}>;reason=user-busy;counter=1"
    )));
    if heard.is_empty() && !in_ci() && sipp_bin().is_none() {
        return;
    }
    assert!(heard.contains(&500), "busy greeting not heard: {heard:?}");
    assert!(
        !heard.contains(&700),
        "unavailable greeting heard: {heard:?}"
    );
    // Then the beep (1 kHz).
    assert!(heard.contains(&1000), "no beep: {heard:?}");
}

#[test]
fn diversion_no_answer_plays_the_unavailable_greeting() {
    let heard = greeting_heard(Some(&format!(
        "Diversion: <sip:1001@{DOMAIN}>;reason=no-answer"
    )));
    if heard.is_empty() && !in_ci() && sipp_bin().is_none() {
        return;
    }
    assert!(
        heard.contains(&700),
        "unavailable greeting not heard: {heard:?}"
    );
    assert!(!heard.contains(&500), "busy greeting heard: {heard:?}");
}

/// `#` (RFC 4733) ends the recording: "message saved", then vmail's BYE.
#[test]
fn pound_ends_the_recording_and_vmail_hangs_up() {
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let started = Instant::now();
    let Some(run) = Sipp::uac("deposit_dtmf.xml", v.sip_addr())
        .mailbox("1001")
        .hold_ms(3000)
        .run()
    else {
        return;
    };
    run.assert_success("deposit_dtmf.xml (expects vmail's BYE)");
    assert_eq!(run.received("BYE ").len(), 1, "{}", run.report());
    let msgs = wait_messages(&v, "1001", 1, Duration::from_secs(5));
    let ms = wav_ms(&msgs[0].0);
    // About 3 s of audio minus greeting and beep; the '#' is not in it.
    assert!((1800..=3200).contains(&ms), "stored {ms} ms");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn cancel_before_the_answer_gets_487() {
    let v = vmail_with(&["1001"], |ext| {
        ext["answer_delay_ms"] = 3000.into();
    });
    let Some(run) = Sipp::uac("cancel.xml", v.sip_addr()).mailbox("1001").run() else {
        return;
    };
    run.assert_success("cancel.xml");
    assert!(run.log.contains("cancel outcome: 487"), "{}", run.report());
    assert_eq!(run.received("SIP/2.0 180").len(), 1, "{}", run.report());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inbox_count(&v, "1001"), 0);
}

fn expect_status(v: &Vmail, user: &str, domain: &str, code: &str) -> Option<SippRun> {
    let mut sipp = Sipp::uac("expect_status.xml", v.sip_addr())
        .mailbox(user)
        .key("domain", domain)
        .set("expected", code);
    if code == "488" {
        sipp = sipp.offer("3", &["a=rtpmap:3 GSM/8000"]);
    }
    let run = sipp.run()?;
    run.assert_success(&format!("expect_status.xml {user}@{domain} → {code}"));
    Some(run)
}

#[test]
fn refusals_unknown_mailbox_domain_and_codec() {
    let v = vmail_with(&["1001"], |_| {});
    let Some(run) = expect_status(&v, "9999", DOMAIN, "404") else {
        return;
    };
    assert!(run.received("SIP/2.0 404")[0].contains("No such mailbox"));
    let run = expect_status(&v, "1001", "other.example", "404").unwrap();
    let resp = &run.received("SIP/2.0 404")[0];
    assert!(
        header_value(resp, "Reason").is_some_and(|r| r.contains("domain not served")),
        "{resp}"
    );
    expect_status(&v, "1001", DOMAIN, "488").unwrap();
    assert_eq!(inbox_count(&v, "1001"), 0);
}

#[test]
fn domain_of_another_group_is_redirected_to_its_instances() {
    let v = Vmail::builder()
        .ext(|ext| {
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
        })
        .config(|cfg| {
            let roles = cfg["roles"].as_array_mut().unwrap();
            for (name, order, port, http, rtp) in [
                ("sales2", 2, 15998, 18082, 40200),
                ("sales1", 1, 15999, 18081, 40000),
            ] {
                roles.push(json!({
                    "name": name, "roletype": "vmail", "iface": "lo",
                    "group": 20, "order": order,
                    "include_domains": [format!("sales.{DOMAIN}")],
                    "ext": { "sip_port": port, "http_port": http,
                             "rtp_port_min": rtp, "rtp_port_max": rtp + 99 }
                }));
            }
        })
        .start();
    let Some(run) = expect_status(&v, "2001", &format!("x.sales.{DOMAIN}"), "302") else {
        return;
    };
    let resp = &run.received("SIP/2.0 302")[0];
    let contacts = header_values(resp, "Contact").join(",");
    let first = contacts.find("sip:2001@127.0.0.1:15999").expect(&contacts);
    let second = contacts.find("sip:2001@127.0.0.1:15998").expect(&contacts);
    assert!(first < second, "order 1 first: {contacts}");
    assert!(contacts.contains("q=1.0"), "{contacts}");
    // Its own domain is still served.
    expect_status(&v, "9999", DOMAIN, "404").unwrap();
}

#[test]
fn fifty_concurrent_deposits_store_fifty_messages() {
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let Some(run) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox("1001")
        .hold_ms(4000)
        .arg("-m")
        .arg("50")
        .arg("-l")
        .arg("50")
        .arg("-r")
        .arg("25")
        .timeout_s(60)
        .run()
    else {
        return;
    };
    run.assert_success("deposit.xml ×50");
    let msgs = wait_messages(&v, "1001", 50, Duration::from_secs(20));
    assert_eq!(msgs.len(), 50);
    for (wav, meta) in &msgs {
        let ms = wav_ms(wav);
        assert!((2900..=4100).contains(&ms), "{}: {ms} ms", wav.display());
        assert_eq!(meta["duration_ms"].as_u64(), Some(ms));
    }
}

/// PJSIP plays a WAV of known tones; the stored WAV holds the same tones.
#[test]
fn pjsua_caller_tones_are_stored_in_order() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let run = pjsua_tones_deposit(v.sip_addr(), "1001").expect("python present");
    run.assert_success("deposit.py");
    let msgs = wait_messages(&v, "1001", 1, Duration::from_secs(10));
    let (wav, meta) = &msgs[0];
    let (_, pcm) = read_wav(wav);
    assert_test_tones(&tone_sequence(&pcm, 8000), 60);
    assert!(
        meta["caller_uri"]
            .as_str()
            .unwrap_or("")
            .contains("5557777"),
        "{meta}"
    );
    assert!(meta["called_uri"].as_str().unwrap_or("").contains("1001"));
    let ms = meta["duration_ms"].as_u64().unwrap_or(0);
    assert!(ms.abs_diff(wav_ms(wav)) <= 1 && ms >= 1500, "{meta}");
}

/// kill -9 during ten recordings: after the restart all ten are in INBOX,
/// marked recovered, valid WAVs holding the audio up to about a second
/// before the kill.
#[test]
fn kill9_during_ten_recordings_recovers_ten_messages() {
    let mut v = vmail_with(&["1001"], |ext| {
        ext["silence_seconds"] = 60.into();
    });
    short_greeting(&v, "1001");
    let Some(sipp) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox("1001")
        .hold_ms(30_000)
        .arg("-m")
        .arg("10")
        .arg("-l")
        .arg("10")
        .arg("-r")
        .arg("20")
        .timeout_s(40)
        .spawn()
    else {
        return;
    };
    // Let the recordings run about 3.5 s (the capture lasts 7 s).
    let tmp = v.mailbox_dir("1001", DOMAIN).join("tmp");
    wait_for_files(&tmp, ".wav", 10, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(3500));
    v.kill9();
    drop(sipp);
    assert_eq!(inbox_count(&v, "1001"), 0);
    v.restart();
    let msgs = wait_messages(&v, "1001", 10, Duration::from_secs(10));
    assert_eq!(msgs.len(), 10);
    for (wav, meta) in &msgs {
        assert_eq!(meta["recovered"], true, "{meta}");
        let ms = wav_ms(wav);
        assert!(ms >= 2000, "{}: only {ms} ms recovered", wav.display());
        assert!(meta["caller_uri"]
            .as_str()
            .unwrap_or("")
            .contains("5551234"));
    }
    assert!(files_with_suffix(&tmp, ".wav").is_empty());
}

/// A raw INVITE with `ruri` and `extra` headers; returns the final status.
fn raw_invite(v: &Vmail, ruri: &str, to: &str, extra: &str) -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let msg = format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{port}x\r\n\
         From: <sip:5551234@{DOMAIN}>;tag=h{port}\r\nTo: {to}\r\nCall-ID: hostile-{port}\r\n\
         CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:5551234@127.0.0.1:{port}>\r\n{extra}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent_at = None::<Instant>;
    while Instant::now() < deadline {
        if sent_at.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
            sock.send_to(msg.as_bytes(), v.sip_addr()).unwrap();
            sent_at = Some(Instant::now());
        }
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            let code: u16 = text.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0);
            if code >= 200 {
                return code;
            }
        }
    }
    0
}

#[test]
fn hostile_names_touch_nothing_outside_the_store() {
    let v = vmail_with(&["1001"], |ext| {
        ext["auto_create_mailboxes"] = true.into();
    });
    let outside = v.siteshare.path().join("outside-marker");
    let to = format!("<sip:1001@{DOMAIN}>");
    let long = "a".repeat(4096);
    let cases = [
        (
            format!("sip:..%2f..%2fx@{DOMAIN}"),
            to.clone(),
            String::new(),
        ),
        (
            format!("sip:%2e%2e%2f%2e%2e%2fx@{DOMAIN}"),
            to.clone(),
            String::new(),
        ),
        (format!("sip:a%00b@{DOMAIN}"), to.clone(), String::new()),
        (format!("sip:{long}@{DOMAIN}"), to.clone(), String::new()),
        (
            format!("sip:vm@{DOMAIN}"),
            to.clone(),
            format!("Diversion: <sip:..%2F..%2F..%2Fetc@{DOMAIN}>;reason=user-busy\r\n"),
        ),
        (
            format!("sip:vm@{DOMAIN}"),
            to.clone(),
            "Diversion: <sip:1001@..>;reason=user-busy\r\n".to_string(),
        ),
        (
            "sip:x@127.0.0.1".to_string(),
            "<sip:x/../y@127.0.0.1>".to_string(),
            String::new(),
        ),
    ];
    for (ruri, to, extra) in &cases {
        let code = raw_invite(&v, ruri, to, extra);
        assert!(
            code == 404 || code == 400,
            "{ruri} / {to} / {extra}: got {code}"
        );
    }
    assert!(!outside.exists());
    // Only the one real mailbox exists in the store.
    let users: Vec<String> = fs::read_dir(v.store().join("domains").join(DOMAIN))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(users, vec!["1001".to_string()]);
    let top: Vec<String> = fs::read_dir(v.siteshare.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, vec!["vmail".to_string()]);
    // And vmail still serves.
    assert!(sip_options_probe(v.sip_addr(), Duration::from_secs(2)).is_some());
}

#[test]
fn garbage_datagrams_get_no_crash_and_the_next_call_works() {
    let v = vmail_with(&["1001"], |_| {});
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for junk in [
        &b"\x00\x01\x02garbage"[..],
        b"INVITE sip:1001@test.rootdomain.ru SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        &[0xffu8; 1500][..],
        b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKq\r\nContent-Length: 99999\r\n\r\n",
    ] {
        sock.send_to(junk, v.sip_addr()).unwrap();
    }
    assert!(sip_options_probe(v.sip_addr(), Duration::from_secs(2)).is_some());
    let code = raw_invite(
        &v,
        &format!("sip:1001@{DOMAIN}"),
        &format!("<sip:1001@{DOMAIN}>"),
        "",
    );
    assert_eq!(code, 200);
}

#[test]
fn overload_answers_503_with_retry_after() {
    let v = vmail_with(&["1001"], |ext| {
        ext["max_calls"] = 1.into();
    });
    let Some(first) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox("1001")
        .hold_ms(4000)
        .spawn()
    else {
        return;
    };
    std::thread::sleep(Duration::from_millis(800));
    let run = expect_status(&v, "1001", DOMAIN, "503").unwrap();
    let resp = &run.received("SIP/2.0 503")[0];
    assert!(header_value(resp, "Retry-After").is_some(), "{resp}");
    first.wait().assert_success("first call keeps going");
}

/// sipp does SIP and waits for vmail's BYE; the test is the RTP peer.
fn call_until_vmail_hangs_up(v: &Vmail, plan: RtpPlan) -> Option<(SippRun, RtpCapture)> {
    let peer = RtpPeer::with_plan(plan);
    let run = Sipp::uac("deposit_rtp_peer.xml", v.sip_addr())
        .mailbox("1001")
        .key("rtp_port", &peer.port().to_string())
        .set("wait_bye", "1")
        .run()?;
    Some((run, peer.finish()))
}

fn speech_like(ms: u32) -> Vec<i16> {
    // A 300 Hz tone stands in for speech: loud enough not to count as silence.
    vmail::media::tone(300.0, ms, 6000, 8000)
}

/// The caller (a short greeting) sends `audio` until vmail hangs up; the
/// length of the one message stored.
fn stored_ms_when_vmail_hangs_up(
    tweak: impl FnOnce(&mut Value) + 'static,
    audio: Vec<i16>,
) -> Option<u64> {
    let v = vmail_with(&["1001"], tweak);
    short_greeting(&v, "1001");
    let plan = RtpPlan {
        audio,
        payload_type: 8,
        ..RtpPlan::default()
    };
    let (run, _) = call_until_vmail_hangs_up(&v, plan)?;
    run.assert_success("vmail hangs up");
    let msgs = wait_messages(&v, "1001", 1, Duration::from_secs(5));
    Some(wav_ms(&msgs[0].0))
}

#[test]
fn max_message_length_stops_the_recording_and_hangs_up() {
    let tweak = |ext: &mut Value| ext["max_message_seconds"] = 2.into();
    let Some(ms) = stored_ms_when_vmail_hangs_up(tweak, speech_like(8000)) else {
        return;
    };
    assert!((1900..=2300).contains(&ms), "stored {ms} ms");
}

#[test]
fn silence_ends_the_recording() {
    let mut audio = speech_like(1500);
    audio.extend(std::iter::repeat_n(0i16, 8000 * 6));
    let tweak = |ext: &mut Value| ext["silence_seconds"] = 2.into();
    let Some(ms) = stored_ms_when_vmail_hangs_up(tweak, audio) else {
        return;
    };
    assert!((2500..=4500).contains(&ms), "stored {ms} ms");
}

#[test]
fn full_mailbox_records_nothing_and_hangs_up() {
    let v = vmail_with(&["1001"], |ext| {
        ext["max_messages"] = 1.into();
    });
    // One message already there.
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let info = vmail::store::RecordingInfo {
        caller_uri: "sip:1@x".into(),
        caller_name: None,
        called_uri: "sip:1001@x".into(),
        cause: "unknown".into(),
        codec: "PCMU".into(),
        site: "site1".into(),
        instance: "vmail1".into(),
        epoch: 0,
        sample_rate: 8000,
    };
    let mut w = store(&v)
        .begin_recording(&id, info, std::time::SystemTime::now())
        .unwrap();
    w.append(&speech_like(1000)).unwrap();
    w.finish().unwrap();
    let plan = RtpPlan {
        audio: speech_like(6000),
        payload_type: 8,
        ..RtpPlan::default()
    };
    let Some((run, cap)) = call_until_vmail_hangs_up(&v, plan) else {
        return;
    };
    run.assert_success("vmail says the mailbox is full and hangs up");
    // "The mailbox is full" was played: speech, no beep.
    assert!(cap.audio().count() > 25, "nothing played");
    let heard: Vec<u32> = tone_sequence(&cap.audio_pcm(), 8000)
        .iter()
        .map(|t| t.freq)
        .collect();
    assert!(
        !heard.contains(&1000),
        "beep played to a full mailbox: {heard:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inbox_count(&v, "1001"), 1);
}

/// The store cannot take the recording (its tmp/ is unusable): the caller
/// hears "cannot be taken", vmail hangs up, nothing half-written appears.
#[test]
fn store_failure_is_told_to_the_caller_and_leaves_nothing() {
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let tmp = v.mailbox_dir("1001", DOMAIN).join("tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::write(&tmp, b"not a directory").unwrap();
    let plan = RtpPlan {
        audio: speech_like(6000),
        payload_type: 8,
        ..RtpPlan::default()
    };
    let Some((run, cap)) = call_until_vmail_hangs_up(&v, plan) else {
        return;
    };
    run.assert_success("vmail hangs up after the apology");
    assert!(cap.audio().count() > 50, "no apology played");
    assert_eq!(inbox_count(&v, "1001"), 0);
    assert!(v.log().contains("cannot start recording"), "{}", v.log());
}

/// Hold and resume by re-INVITE keep the call: both are answered with
/// the mirrored direction and the BYE afterwards finds the call.
#[test]
fn reinvite_hold_and_resume_keep_the_call() {
    let v = vmail_with(&["1001"], |_| {});
    let Some(run) = Sipp::uac("reinvite.xml", v.sip_addr())
        .mailbox("1001")
        .run()
    else {
        return;
    };
    run.assert_success("reinvite.xml");
    assert!(
        run.log.contains("reinvite 2 answer: a=recvonly"),
        "{}",
        run.report()
    );
    assert!(
        run.log.contains("reinvite 3 answer: a=sendrecv"),
        "{}",
        run.report()
    );
    assert_eq!(
        v.log().matches("re-INVITE answered").count(),
        2,
        "{}",
        v.log()
    );
}

/// SIGHUP reloads the file: a domain added to the group is served; a bad
/// file is rejected with its errors logged and the running one kept.
#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_bad() {
    let v = vmail_with(&["1001"], |_| {});
    let Some(run) = expect_status(&v, "1001", "other.example", "404") else {
        return;
    };
    assert!(run.received("SIP/2.0 404")[0].contains("domain not served"));
    let path = v.config_path().to_path_buf();
    let mut cfg: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    cfg["roles"][0]["include_domains"] = json!([DOMAIN, "other.example"]);
    fs::write(&path, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    v.sighup();
    wait_for(Duration::from_secs(5), "reload logged", || {
        v.log().contains("configuration reloaded").then_some(())
    });
    let run = expect_status(&v, "1001", "other.example", "404").unwrap();
    let resp = &run.received("SIP/2.0 404")[0];
    assert!(resp.contains("No such mailbox"), "{resp}");
    // A broken file: rejected, the running configuration stays.
    fs::write(&path, "{ \"roles\": [ {\"name\": \"1bad\" ").unwrap();
    v.sighup();
    wait_for(Duration::from_secs(5), "rejection logged", || {
        v.log().contains("configuration rejected").then_some(())
    });
    let run = expect_status(&v, "1001", "other.example", "404").unwrap();
    assert!(run.received("SIP/2.0 404")[0].contains("No such mailbox"));
    assert!(sip_options_probe(v.sip_addr(), Duration::from_secs(2)).is_some());
}
