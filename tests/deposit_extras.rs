//! The deposit menu's extras with real peers: caller review and the urgent
//! mark (PJSIP caller, PJSIP MWI subscriber), and the operator escape with
//! REFER (sipp callers that accept or refuse the transfer).

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost};

const OPERATOR: &str = "sip:operator@pbx.example.com";

fn vmail_with(tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    let v = Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
            tweak(ext);
        })
        .start();
    // A 100 ms greeting: recording starts about half a second in.
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let store = FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).unwrap();
    let pcm = vmail::media::tone(400.0, 100, 8000, 8000);
    store
        .store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .unwrap();
    v
}

fn inbox(v: &Vmail) -> PathBuf {
    v.mailbox_dir("1001", DOMAIN).join("INBOX")
}

/// The stored messages: (duration in ms, metadata).
fn messages(v: &Vmail, n: usize) -> Vec<(u64, Value)> {
    wait_for_files(&inbox(v), ".wav", n, Duration::from_secs(10))
        .into_iter()
        .map(|wav| {
            let (_, pcm) = read_wav(&wav);
            let meta: Value =
                serde_json::from_str(&fs::read_to_string(wav.with_extension("json")).unwrap())
                    .unwrap();
            (pcm.len() as u64 / 8, meta)
        })
        .collect()
}

/// A PJSIP caller that speaks (a 440 Hz tone) for `speak_s` seconds,
/// sends `dtmf` (`"SECONDS:DIGITS"`), and hangs up after `hangup_s`
/// seconds, or waits for vmail's BYE.
fn pjsua_caller(v: &Vmail, speak_s: f64, dtmf: &[&str], hangup_s: Option<f64>) -> PjsuaRun {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("caller.wav");
    let pcm = vmail::media::tone(440.0, (speak_s * 1000.0) as u32, 8000, 8000);
    write_wav(&wav, 8000, &pcm);
    let target = format!("sip:1001@{DOMAIN}");
    let proxy = v.sip_addr().to_string();
    let wav_arg = wav.display().to_string();
    let mut args: Vec<String> = [
        "--target",
        target.as_str(),
        "--proxy",
        proxy.as_str(),
        "--wav",
        wav_arg.as_str(),
        "--timeout",
        "60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for d in dtmf {
        args.push("--dtmf".into());
        args.push(d.to_string());
    }
    match hangup_s {
        Some(s) => {
            args.push("--hangup-after-seconds".into());
            args.push(format!("{s:.1}"));
        }
        None => args.push("--wait-bye".into()),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    pjsua("deposit.py", &args).expect("python present")
}

/// `#`, then in review `4` (urgent) and `1` (accept): the message is
/// stored urgent, and the phone subscribed to the mailbox sees it in the
/// urgent counts of the NOTIFY.
#[test]
fn review_urgent_then_accept_stores_an_urgent_message() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let v = vmail_with(|ext| ext["review"] = true.into());
    let Some(phone) = PjsuaMwi::start(v.sip_addr(), "1001", "0,1") else {
        return;
    };
    phone.wait_counts(0, 0, Duration::from_secs(15));
    let run = pjsua_caller(&v, 8.0, &["2.5:#", "4.5:4", "7.0:1"], None);
    run.assert_success("deposit.py (review: urgent, accept)");
    let msgs = messages(&v, 1);
    let (ms, meta) = &msgs[0];
    assert_eq!(meta["urgent"], true, "{meta}");
    // What was said before `#`, not the review time after it.
    assert!((500..=3500).contains(ms), "stored {ms} ms");
    let lit = phone.wait_counts(1, 0, Duration::from_secs(15));
    let body = lit["body"].as_str().unwrap_or_default();
    assert!(body.contains("Voice-Message: 1/0 (1/0)"), "{lit}");
    assert!(v.log().contains("message urgency set by the caller"));
}

/// The caller hangs up while the review menu plays: the message is kept.
#[test]
fn hangup_in_review_keeps_the_message() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let v = vmail_with(|ext| ext["review"] = true.into());
    let run = pjsua_caller(&v, 6.0, &["2.5:#"], Some(4.5));
    run.assert_success("deposit.py (hang-up in review)");
    let msgs = messages(&v, 1);
    let (ms, meta) = &msgs[0];
    assert_eq!(meta["urgent"], false, "{meta}");
    assert!((500..=3500).contains(ms), "stored {ms} ms");
}

/// In review, `3` drops the recording and records again after the beep:
/// one message, the second take, and nothing left in `tmp/`.
#[test]
fn rerecord_keeps_only_the_second_take() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let v = vmail_with(|ext| ext["review"] = true.into());
    let run = pjsua_caller(&v, 12.0, &["4.0:#", "5.0:3", "7.0:#", "8.0:1"], None);
    run.assert_success("deposit.py (re-record)");
    let msgs = messages(&v, 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(files_with_suffix(&inbox(&v), ".wav").len(), 1);
    // The first take was about 3.5 s, the second about 1.5 s.
    let (ms, _) = &msgs[0];
    assert!((500..=2500).contains(ms), "stored {ms} ms");
    let tmp = v.mailbox_dir("1001", DOMAIN).join("tmp");
    assert!(files_with_suffix(&tmp, ".wav").is_empty(), "tmp/ not empty");
}

/// `0` while recording: vmail sends REFER in the call's dialog to the
/// caller (Refer-To the operator, Referred-By the mailbox); the caller's
/// side accepts (202) and reports success (NOTIFY, sipfrag 200): vmail
/// hangs up and keeps what was recorded.
#[test]
fn operator_escape_transfers_the_caller_with_refer() {
    let v = vmail_with(|ext| ext["operator_uri"] = json!({ DOMAIN: OPERATOR }));
    let Some(run) = Sipp::uac("deposit_refer.xml", v.sip_addr())
        .mailbox("1001")
        .key("refer_status", "SIP/2.0 202 Accepted")
        .hold_ms(3000)
        .run()
    else {
        return;
    };
    run.assert_success("deposit_refer.xml");
    let refers = run.received("REFER ");
    assert_eq!(refers.len(), 1, "{}", run.report());
    let refer = &refers[0];
    assert_eq!(
        header_value(refer, "Refer-To"),
        Some(format!("<{OPERATOR}>").as_str()),
        "{refer}"
    );
    assert_eq!(
        header_value(refer, "Referred-By"),
        Some(format!("<sip:1001@{DOMAIN}>").as_str()),
        "{refer}"
    );
    assert_eq!(run.received("BYE ").len(), 1, "{}", run.report());
    // operator_keeps_recording defaults to true.
    let msgs = messages(&v, 1);
    assert!(msgs[0].0 >= 1500, "stored {} ms", msgs[0].0);
}

/// A mailbox with its own operator (`vmail mailbox set --operator`, which
/// overrides the domain's `ext.operator_uri`): `0` while recording sends
/// a PJSIP caller a REFER; PJSIP accepts it and calls the operator, a sipp
/// UAS, which answers the transferred call (with `Referred-By` naming the
/// mailbox); the caller talks to it for a second and hangs up. What was
/// recorded is kept.
#[test]
fn operator_escape_reaches_the_mailbox_operator() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let v = vmail_with(|ext| ext["operator_uri"] = json!({ DOMAIN: OPERATOR }));
    let peer = RtpPeer::listen();
    let Some(operator) = Sipp::uas("uas_answer.xml")
        .key("rtp_port", &peer.port().to_string())
        .spawn()
    else {
        return;
    };
    let operator_uri = format!("sip:operator@{}", operator.addr());
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_vmail"));
    cli.arg("mailbox")
        .arg("--config")
        .arg(v.config_path())
        .arg("--name")
        .arg(&v.name)
        .args([
            "set",
            &format!("1001@{DOMAIN}"),
            "--operator",
            &operator_uri,
        ]);
    let out = run_bounded(cli, Duration::from_secs(20)).expect("vmail mailbox set");
    assert!(out.status.success(), "{out:?}");
    // A URI that is not one is refused by name, and changes nothing.
    let mut bad = std::process::Command::new(env!("CARGO_BIN_EXE_vmail"));
    bad.arg("mailbox")
        .arg("--config")
        .arg(v.config_path())
        .arg("--name")
        .arg(&v.name)
        .args(["set", &format!("1001@{DOMAIN}"), "--operator", "tel:+100"]);
    let out = run_bounded(bad, Duration::from_secs(20)).expect("vmail mailbox set");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("operator"),
        "{out:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("caller.wav");
    write_wav(&wav, 8000, &vmail::media::tone(440.0, 4000, 8000, 8000));
    let run = pjsua(
        "deposit.py",
        &[
            "--target",
            &format!("sip:1001@{DOMAIN}"),
            "--proxy",
            &v.sip_addr().to_string(),
            "--route",
            "--wav",
            &wav.display().to_string(),
            "--dtmf",
            "2.5:0",
            "--wait-bye",
            "--timeout",
            "30",
        ],
    )
    .expect("python present");
    run.assert_success("deposit.py (0 while recording, transfer followed)");
    let transfer_to = run.field("transfer_to").as_str().unwrap_or_default();
    assert!(transfer_to.contains(&operator_uri), "{:?}", run.result);
    assert_eq!(
        run.field("transfer_confirmed"),
        &json!(true),
        "{:?}",
        run.result
    );
    assert_eq!(
        run.field("hung_up_by").as_str(),
        Some("remote"),
        "{:?}",
        run.result
    );

    let op = operator.wait();
    op.assert_success("uas_answer.xml (the operator)");
    let invites = op.received("INVITE ");
    assert_eq!(invites.len(), 1, "{}", op.report());
    assert!(
        invites[0].starts_with(&format!("INVITE {operator_uri} ")),
        "{}",
        invites[0]
    );
    let referred_by = header_value(&invites[0], "Referred-By").unwrap_or_default();
    assert!(
        referred_by.contains(&format!("sip:1001@{DOMAIN}")),
        "{}",
        invites[0]
    );
    let msgs = messages(&v, 1);
    assert!(msgs[0].0 >= 1000, "stored {} ms", msgs[0].0);
}

/// The same with `operator_keeps_recording: false`: nothing is stored.
#[test]
fn operator_escape_can_drop_the_recording() {
    let v = vmail_with(|ext| {
        ext["operator_uri"] = OPERATOR.into();
        ext["operator_keeps_recording"] = false.into();
    });
    let Some(run) = Sipp::uac("deposit_refer.xml", v.sip_addr())
        .mailbox("1001")
        .key("refer_status", "SIP/2.0 202 Accepted")
        .hold_ms(3000)
        .run()
    else {
        return;
    };
    run.assert_success("deposit_refer.xml");
    std::thread::sleep(Duration::from_millis(1000));
    assert!(files_with_suffix(&inbox(&v), ".wav").is_empty());
    assert!(v.log().contains("recording discarded"), "{}", v.log());
}

/// A caller whose side refuses REFER (603 Declined, 405 Method Not
/// Allowed): vmail says the transfer is not possible and goes on
/// recording; `#` then ends the message, which holds the audio from
/// before and after.
#[test]
fn refused_refer_goes_on_recording() {
    for status in ["SIP/2.0 603 Declined", "SIP/2.0 405 Method Not Allowed"] {
        let v = vmail_with(|ext| ext["operator_uri"] = OPERATOR.into());
        let Some(run) = Sipp::uac("deposit_refer_refused.xml", v.sip_addr())
            .mailbox("1001")
            .key("refer_status", status)
            .hold_ms(3000)
            .run()
        else {
            return;
        };
        run.assert_success(&format!("deposit_refer_refused.xml ({status})"));
        assert_eq!(run.received("REFER ").len(), 1, "{}", run.report());
        assert_eq!(run.received("BYE ").len(), 1, "{}", run.report());
        let msgs = messages(&v, 1);
        // About 2.5 s before the 0 and about 1 s of speech after the beep.
        assert!(msgs[0].0 >= 3000, "{status}: stored {} ms", msgs[0].0);
        assert!(v.log().contains("REFER refused"), "{}", v.log());
    }
}

/// `*` during the greeting leads to the login of the same mailbox: its PIN
/// logs in (the menu answers), nothing is recorded.
#[test]
fn star_in_the_greeting_logs_in_to_the_same_mailbox() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let v = vmail_with(|_| {});
    // A 4 s greeting, so that `*` comes while it plays.
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let store = FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).unwrap();
    let pcm = vmail::media::tone(400.0, 4000, 8000, 8000);
    store
        .store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .unwrap();
    let run = pjsua_caller(&v, 9.0, &["1.5:*", "4.0:1234#", "8.0:#"], None);
    run.assert_success("deposit.py (* then PIN, # to leave)");
    let log = v.log();
    assert!(log.contains("to the login of the mailbox"), "{log}");
    assert!(log.contains("retrieval login"), "{log}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(files_with_suffix(&inbox(&v), ".wav").is_empty());
}
