//! Retrieving messages by phone: the access number, PIN login with the
//! persistent lockout, the DTMF menus and greetings recorded by phone
//! (SPEC §7), against the real `vmail` binary with the PJSIP client library
//! and sipp.

mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{json, Value};
use vmail::store::{Folder, FsStore, GreetingKind, MailboxId, PinCost, RecordingInfo};

fn vmail_with(tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = json!([
                {"user": "1001", "domain": DOMAIN, "pin": "1234"},
                {"user": "1002", "domain": DOMAIN, "pin": "5678"}
            ]);
            tweak(ext);
        })
        .start()
}

fn store(v: &Vmail) -> FsStore {
    FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("open store")
}

fn id(user: &str) -> MailboxId {
    MailboxId::new(user, DOMAIN).unwrap()
}

/// A message in `user`'s INBOX holding a tone of `hz` for 1 s.
fn deposit_tone(v: &Vmail, user: &str, hz: f32) {
    let info = RecordingInfo {
        caller_uri: "sip:5551234@test.rootdomain.ru".into(),
        caller_name: None,
        called_uri: format!("sip:{user}@{DOMAIN}"),
        cause: "unavailable".into(),
        codec: "PCMA".into(),
        site: "site1".into(),
        instance: "vmail1".into(),
        epoch: 0,
        sample_rate: 8000,
    };
    let mut w = store(v)
        .begin_recording(&id(user), info, SystemTime::now())
        .unwrap();
    w.append(&vmail::media::tone(hz, 1000, 8000, 8000)).unwrap();
    w.finish().unwrap();
    std::thread::sleep(Duration::from_millis(5)); // distinct, ordered ids
}

fn count(v: &Vmail, user: &str, folder: Folder) -> usize {
    store(v).list_messages(&id(user), folder).unwrap().len()
}

fn tones_heard(heard: &[i16], candidates: &[u32]) -> Vec<u32> {
    tone_sequence(heard, 8000)
        .iter()
        .filter(|t| candidates.contains(&t.freq) && t.duration_ms >= 600)
        .map(|t| t.freq)
        .collect()
}

/// Mailbox and PIN as RFC 4733 (or INFO), `1` for new messages: both tones
/// come back in order; `6` next, `7` delete, hang up → one message left.
fn listen_and_delete(method: &str) {
    let v = vmail_with(|_| {});
    deposit_tone(&v, "1001", 500.0);
    deposit_tone(&v, "1001", 700.0);
    let mut call = AccessCall::new("5551234", 15.0)
        .dtmf(1.0, "1001#")
        .dtmf(3.0, "1234#")
        .dtmf(6.0, "1")
        .dtmf(9.5, "6")
        .dtmf(12.5, "7");
    call.method = method;
    let Some((run, heard)) = call.run(&v) else {
        return;
    };
    assert_eq!(run.field("hung_up_by"), "local", "{:?}", run.result);
    assert_eq!(
        tones_heard(&heard, &[500, 700]),
        vec![500, 700],
        "{}",
        v.log()
    );
    // Each tone came after speech ("Message one", "Message two").
    let seq = tone_sequence(&heard, 8000);
    let first = seq.iter().find(|t| t.freq == 500).unwrap();
    assert!(first.onset_ms > 6000, "{seq:?}");
    std::thread::sleep(Duration::from_millis(500));
    let left = count(&v, "1001", Folder::Inbox) + count(&v, "1001", Folder::Old);
    assert_eq!(left, 1, "{}", v.log());
    // The one left was heard: it moved to Old.
    assert_eq!(count(&v, "1001", Folder::Old), 1);
}

#[test]
fn login_listen_and_delete_with_rfc4733_digits() {
    listen_and_delete("rfc2833");
}

#[test]
fn login_listen_and_delete_with_sip_info_digits() {
    listen_and_delete("info");
}

#[test]
fn caller_id_login_asks_only_the_pin() {
    let v = vmail_with(|_| {});
    deposit_tone(&v, "1001", 600.0);
    let Some((_, heard)) = AccessCall::new("1001", 10.0)
        .dtmf(1.0, "1234#")
        .dtmf(4.0, "1")
        .run(&v)
    else {
        return;
    };
    assert_eq!(tones_heard(&heard, &[600]), vec![600], "{}", v.log());
    assert!(v.log().contains("PIN login"), "{}", v.log());
}

#[test]
fn wrong_pins_lock_the_mailbox_across_calls_and_restarts() {
    let mut v = vmail_with(|ext| {
        ext["lockout_failures"] = 5.into();
        ext["lockout_seconds"] = 12.into();
    });
    deposit_tone(&v, "1001", 600.0);
    // Three wrong PINs: vmail says goodbye and hangs up.
    let Some((run, _)) = AccessCall::new("1001", 20.0)
        .dtmf(1.0, "0000#")
        .dtmf(4.0, "1111#")
        .dtmf(7.0, "2222#")
        .run(&v)
    else {
        return;
    };
    assert_eq!(run.field("hung_up_by"), "remote", "{:?}", run.result);
    // Two more in a second call: five in a row lock the mailbox.
    AccessCall::new("1001", 8.0)
        .dtmf(1.0, "3333#")
        .dtmf(4.0, "4444#")
        .run(&v)
        .unwrap();
    let state = store(&v).login_state(&id("1001")).unwrap();
    assert!(state.is_locked(SystemTime::now()), "{state:?}\n{}", v.log());
    // Survives a restart; the right PIN is refused while locked.
    v.restart();
    let (run, heard) = AccessCall::new("1001", 10.0)
        .dtmf(1.0, "1234#")
        .dtmf(4.0, "1")
        .run(&v)
        .unwrap();
    assert_eq!(run.field("hung_up_by"), "remote", "{:?}", run.result);
    assert!(
        tones_heard(&heard, &[600]).is_empty(),
        "message played while locked"
    );
    assert!(v.log().contains("mailbox locked"), "{}", v.log());
    // After lockout_seconds the right PIN works again.
    let until = state.locked_until.unwrap();
    while SystemTime::now() < until + Duration::from_millis(200) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, heard) = AccessCall::new("1001", 10.0)
        .dtmf(1.0, "1234#")
        .dtmf(4.0, "1")
        .run(&v)
        .unwrap();
    assert_eq!(tones_heard(&heard, &[600]), vec![600], "{}", v.log());
}

/// sipp does the SIP; the caller's RTP (no telephone-event offered) carries
/// the digits as in-band tones.
#[test]
fn in_band_digits_log_in() {
    let v = vmail_with(|_| {});
    let mut audio = vec![0i16; 8000];
    for d in "1234#".chars() {
        audio.extend(vmail::media::dtmf_tone(d, 100).unwrap());
        audio.extend(vec![0i16; 800]);
    }
    audio.extend(vec![0i16; 8000]);
    let peer = RtpPeer::with_plan(RtpPlan {
        audio,
        payload_type: 8,
        ..RtpPlan::default()
    });
    let Some(run) = Sipp::uac("deposit_rtp_peer.xml", v.sip_addr())
        .service("*98")
        .key("to_user", "*98")
        .key("caller", "1001")
        .offer("8", &[])
        .key("rtp_port", &peer.port().to_string())
        .hold_ms(4000)
        .run()
    else {
        return;
    };
    run.assert_success("deposit_rtp_peer.xml to *98");
    drop(peer);
    assert!(
        v.log().contains("PIN login"),
        "in-band PIN not understood:\n{}",
        v.log()
    );
}

/// A greeting recorded by phone is played to the next caller.
#[test]
fn greeting_recorded_by_phone_is_played_to_the_next_caller() {
    let v = vmail_with(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("greeting.wav");
    write_wav(&wav, 8000, &vmail::media::tone(900.0, 1500, 8000, 8000));
    // PIN, 0 options, 1 unavailable greeting, (record after the tone), # stop, 1 accept.
    let mut call = AccessCall::new("1001", 17.0)
        .dtmf(1.0, "1234#")
        .dtmf(4.0, "0")
        .dtmf(6.0, "1")
        .dtmf(12.0, "#")
        .dtmf(14.0, "1");
    call.wav = Some((wav, 9.0));
    let Some(_) = call.run(&v) else {
        return;
    };
    let greeting = store(&v)
        .greeting_path(&id("1001"), GreetingKind::Unavailable)
        .unwrap()
        .unwrap_or_else(|| panic!("no greeting stored\n{}", v.log()));
    assert!(fs::metadata(&greeting).unwrap().len() > 8000);
    // The next caller hears it.
    let peer = RtpPeer::listen();
    let run = Sipp::uac("deposit_rtp_peer.xml", v.sip_addr())
        .mailbox("1001")
        .key("rtp_port", &peer.port().to_string())
        .hold_ms(4000)
        .run()
        .unwrap();
    run.assert_success("deposit after the new greeting");
    let heard: Vec<u32> = tone_sequence(&peer.finish().audio_pcm(), 8000)
        .iter()
        .map(|t| t.freq)
        .collect();
    assert!(
        heard.contains(&900),
        "recorded greeting not played: {heard:?}"
    );
}

/// A 200-digit PIN, digit floods by INFO and keys in odd places: the menu
/// stays consistent, the call ends cleanly and the next one works.
#[test]
fn digit_floods_and_absurd_input_leave_the_menu_consistent() {
    let v = vmail_with(|_| {});
    deposit_tone(&v, "1001", 600.0);
    let long_pin = "9".repeat(200) + "#";
    let flood = "*#0#*7#8#9#6#5#4#3".repeat(5);
    let mut call = AccessCall::new("1001", 8.0)
        .dtmf(0.5, &long_pin)
        .dtmf(3.0, &flood)
        .dtmf(4.0, "##**##");
    call.method = "info";
    let Some(_) = call.run(&v) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(v.log().contains("menu call ended"), "{}", v.log());
    // Nothing was deleted or moved by the flood.
    assert_eq!(count(&v, "1001", Folder::Inbox), 1);
    // The next call logs in and hears the message.
    let (_, heard) = AccessCall::new("1001", 10.0)
        .dtmf(1.0, "1234#")
        .dtmf(4.0, "1")
        .run(&v)
        .unwrap();
    assert_eq!(tones_heard(&heard, &[600]), vec![600], "{}", v.log());
}
