//! The web inbox in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`) driven through Selenium by tests/browser/inbox.py,
//! against the real binary, with messages left by real SIP calls.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{json, Value};
use vmail::store::{Folder, FsStore, GreetingKind, MailboxId, PinCost};

/// The demo mailboxes' PIN.
const PIN: &str = "1234";

/// vmail with demo mailboxes `users` of [`DOMAIN`] (PIN 1234), returned
/// once SIP and HTTP answer and the mailboxes exist.
fn web_vmail(users: &[&str], tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    let demo: Vec<Value> = users
        .iter()
        .map(|u| json!({"user": u, "domain": DOMAIN, "pin": PIN}))
        .collect();
    let v = Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = Value::Array(demo);
            tweak(ext);
        })
        .start();
    wait_for(Duration::from_secs(10), "GET /healthz 200", || {
        http_get(v.http_addr(), "/healthz", Duration::from_secs(2)).filter(|(code, _)| *code == 200)
    });
    let st = store(&v);
    for user in users {
        wait_for(Duration::from_secs(10), "the demo mailboxes", || {
            st.mailbox(&mailbox(user)).ok().flatten()
        });
    }
    v
}

fn store(v: &Vmail) -> FsStore {
    FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("open store")
}

fn mailbox(user: &str) -> MailboxId {
    MailboxId::new(user, DOMAIN).expect("mailbox id")
}

fn address(user: &str) -> String {
    format!("{user}@{DOMAIN}")
}

/// Give `user` a temporary greeting: a tone of `hz` for `ms` milliseconds.
fn set_temp_greeting(v: &Vmail, user: &str, hz: f32, ms: u32) {
    let pcm = vmail::media::tone(hz, ms, 8000, 8000);
    store(v)
        .store_greeting(&mailbox(user), GreetingKind::Temporary, &pcm, 8000)
        .expect("store greeting");
}

/// A short temporary greeting, so that recording starts about half a second
/// after the answer (100 ms greeting, 400 ms beep).
fn short_greeting(v: &Vmail, user: &str) {
    set_temp_greeting(v, user, 400.0, 100);
}

/// The ids of `user`'s messages in `folder`, oldest first.
fn message_ids(v: &Vmail, user: &str, folder: Folder) -> Vec<String> {
    store(v)
        .list_messages(&mailbox(user), folder)
        .expect("list messages")
        .into_iter()
        .map(|m| m.id)
        .collect()
}

/// Wait until `user`'s INBOX holds `n` messages; their ids, oldest first.
fn wait_inbox(v: &Vmail, user: &str, n: usize) -> Vec<String> {
    wait_for(Duration::from_secs(15), "messages in the INBOX", || {
        let ids = message_ids(v, user, Folder::Inbox);
        (ids.len() == n).then_some(ids)
    })
}

/// Leave `count` messages for `user` with sipp (2 s of speech each).
/// `false`: sipp is missing (test skipped).
fn sipp_deposits(v: &Vmail, user: &str, caller: &str, count: usize) -> bool {
    let Some(run) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox(user)
        .key("caller", caller)
        .hold_ms(2500)
        .arg("-m")
        .arg(count.to_string())
        .run()
    else {
        return false;
    };
    run.assert_success("deposit.xml");
    true
}

/// Length of a WAV in seconds.
fn wav_seconds(path: &Path) -> f64 {
    let (spec, pcm) = read_wav(path);
    pcm.len() as f64 / f64::from(spec.sample_rate)
}

// ---------------------------------------------------------------------------
// The harness itself, against a page served here

/// A tiny HTTP server on 127.0.0.1 standing in for the web pages, so that
/// the browser harness (Chromium, chromedriver, Selenium, the JSON lines,
/// screenshots, audio) is proved without vmail: `/inbox` lists one message
/// whose audio is media/tones.wav, every POST is refused 403 with the CSRF
/// error, anything else is 404.
struct StandInPages {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

const STAND_IN_INBOX: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Inbox</title></head>
<body><h1 id="inbox-title">Inbox</h1>
<p>New <span id="count-new">1</span> Old <span id="count-old">0</span></p>
<ul><li class="message" data-id="m1" data-duration-ms="2700">
<span class="caller">5551234</span> <span class="received">today</span>
<span class="duration">0:03</span>
<audio class="player" id="audio-m1" controls preload="metadata" src="/messages/m1/audio"></audio>
</li></ul></body></html>
"#;

const STAND_IN_403: &str = r#"<!doctype html>
<html lang="en"><head><title>Refused</title></head>
<body><p id="csrf-error">The form has expired.</p></body></html>
"#;

impl StandInPages {
    fn start() -> StandInPages {
        let listener = TcpListener::bind((LOCALHOST, 0)).expect("bind stand-in pages");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let wav = Arc::new(fs::read(media("tones.wav")).expect("read media/tones.wav"));
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let wav = wav.clone();
                        std::thread::spawn(move || {
                            let _ = serve_stand_in(stream, &wav);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => break,
                }
            }
        });
        StandInPages { addr, stop }
    }
}

impl Drop for StandInPages {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One connection (keep-alive): answer requests until the peer closes.
fn serve_stand_in(stream: TcpStream, wav: &[u8]) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; content_length.min(1 << 20)];
        reader.read_exact(&mut body)?;
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("");
        let (status, ctype, payload): (&str, &str, &[u8]) = match (method, path) {
            ("POST", _) => (
                "403 Forbidden",
                "text/html; charset=utf-8",
                STAND_IN_403.as_bytes(),
            ),
            ("GET", "/inbox") => (
                "200 OK",
                "text/html; charset=utf-8",
                STAND_IN_INBOX.as_bytes(),
            ),
            ("GET", "/messages/m1/audio") => ("200 OK", "audio/wav", wav),
            _ => ("404 Not Found", "text/plain", b"not found"),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\r\n",
            payload.len()
        );
        out.write_all(head.as_bytes())?;
        out.write_all(payload)?;
        out.flush()?;
    }
}

/// Chromium starts headless through Debian's chromedriver, Selenium runs the
/// steps and prints their JSON lines: a page with a message, its audio's
/// duration and `ended`, a POST refused 403, a 404, a PNG screenshot; a
/// failing step ends the run with status 1, a bad step list with status 2.
#[test]
fn browser_harness_loads_a_local_page() {
    if chromium_python().is_none() {
        return;
    }
    let pages = StandInPages::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("shots").join("inbox.png");
    let browser = Browser::new(pages.addr).timeout_s(90);
    let run = browser
        .run(&[
            "goto",
            "/inbox",
            "expect-messages",
            "1",
            "play",
            "m1",
            "play-to-end",
            "m1",
            "post-without-csrf",
            "/messages/m1/delete",
            "get",
            "/messages/other/audio",
            "get",
            "/messages/m1/audio",
            "screenshot",
            &shot.display().to_string(),
        ])
        .expect("browser present");
    run.assert_success("harness self-test");
    let report = run.report();

    let goto = run.step("goto");
    assert_eq!(goto["title"], "Inbox", "{report}");
    assert_eq!(goto["lang"], "en", "{report}");
    let msgs = &run.step("expect-messages")["messages"];
    assert_eq!(msgs[0]["id"], "m1", "{report}");
    assert_eq!(msgs[0]["duration_ms"], 2700, "{report}");
    assert_eq!(run.step("expect-messages")["count_new"], "1", "{report}");

    let tones = wav_seconds(&media("tones.wav"));
    let played = run.step("play");
    let d = played["duration"].as_f64().expect("duration");
    assert!(
        (d - tones).abs() <= 0.1,
        "duration {d} vs {tones}: {report}"
    );
    assert_eq!(played["playing"], false, "play pauses again: {report}");
    let ended = run.step("play-to-end");
    assert_eq!(ended["ended"], true, "{report}");
    assert!(
        ended["played_seconds"].as_f64().unwrap_or(0.0) >= tones - 0.5,
        "ended too early: {report}"
    );

    let post = run.step("post-without-csrf");
    assert_eq!(post["status"], 403, "{report}");
    assert_eq!(post["csrf_error"], true, "{report}");
    assert_eq!(run.nth("get", 0)["status"], 404, "{report}");
    assert_eq!(run.nth("get", 1)["status"], 200, "{report}");
    assert_eq!(run.nth("get", 1)["content_type"], "audio/wav", "{report}");
    assert!(is_png(&shot, 1000), "no screenshot at {}", shot.display());
    let done = run.steps.last().expect("a done line");
    assert_eq!(done["step"], "done", "{report}");
    assert_eq!(done["steps"], 8, "{report}");

    // A step that does not reach what it checks: "ok": false, exit 1.
    let run = Browser::new(pages.addr)
        .step_timeout_s(2)
        .timeout_s(60)
        .run(&[
            "goto",
            "/inbox",
            "expect-messages",
            "2",
            "screenshot",
            "/nonexistent",
        ])
        .expect("browser present");
    assert_eq!(run.output.status.code(), Some(1), "{}", run.report());
    let failed = run.step("expect-messages");
    assert_eq!(failed["ok"], false, "{}", run.report());
    assert!(
        run.step("screenshot").is_null(),
        "steps after a failure ran"
    );
    assert_eq!(run.steps.last().expect("done")["ok"], false);

    // A bad step list: exit 2 before any browser starts.
    let run = Browser::new(pages.addr)
        .run(&["expect-messages", "many"])
        .expect("browser present");
    assert_eq!(run.output.status.code(), Some(2), "{}", run.report());
}

// ---------------------------------------------------------------------------
// The web inbox of the real binary

/// A message left by a PJSIP call is listed, plays in the page for as long
/// as the stored WAV lasts, and is deleted (through the undo banner): the
/// store's INBOX is empty and a pjsua2 phone's lamp goes 0 → 1 → 0.
#[test]
fn deposited_message_is_played_and_deleted_in_the_browser() {
    if chromium_python().is_none() || pjsua_python().is_none() {
        return;
    }
    let v = web_vmail(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let Some(mwi) = PjsuaMwi::start(v.sip_addr(), "1001", "0,1,0") else {
        return;
    };
    mwi.wait_counts(0, 0, Duration::from_secs(20));

    let run = pjsua_tones_deposit(v.sip_addr(), "1001").expect("python present");
    run.assert_success("deposit.py");
    let ids = wait_inbox(&v, "1001", 1);
    let id = ids[0].clone();
    mwi.wait_counts(1, 0, Duration::from_secs(20));

    let st = store(&v);
    let meta = st
        .message(&mailbox("1001"), &id)
        .expect("read message")
        .expect("message there");
    let stored = st
        .message_audio_path(&mailbox("1001"), &id)
        .expect("audio path")
        .expect("audio there");
    let stored_seconds = wav_seconds(&stored);

    let browser = Browser::new(v.http_addr()).login_as(&address("1001"), PIN);
    let run = browser
        .run(&[
            "login",
            "expect-messages",
            "1",
            "play",
            &id,
            "delete",
            &id,
            "expect-messages",
            "0",
        ])
        .expect("browser present");
    run.assert_success("play and delete");
    let report = run.report();

    let listed = &run.step("expect-messages")["messages"][0];
    assert_eq!(listed["id"], id.as_str(), "{report}");
    assert_eq!(listed["duration_ms"], meta.duration_ms, "{report}");
    assert!(
        listed["caller"].as_str().unwrap_or("").contains("5557777"),
        "caller not shown: {report}"
    );
    let d = run.step("play")["duration"].as_f64().expect("duration");
    assert!(
        (d - stored_seconds).abs() <= 0.1,
        "the page's audio lasts {d} s, the stored WAV {stored_seconds} s: {report}"
    );
    assert_eq!(run.step("delete")["undo_seen"], true, "{report}");
    assert_eq!(
        run.nth("expect-messages", 1)["empty_shown"],
        true,
        "{report}"
    );

    assert!(message_ids(&v, "1001", Folder::Inbox).is_empty());
    assert!(message_ids(&v, "1001", Folder::Old).is_empty());
    mwi.wait_counts(0, 0, Duration::from_secs(20));
    assert!(mwi.wait_exit().success(), "mwi.py did not see 0,1,0");
}

/// A greeting uploaded through the greetings page (a 16 kHz WAV the
/// server converts) as the temporary greeting is what the next caller hears.
#[test]
fn greeting_uploaded_in_the_browser_is_heard_by_the_next_caller() {
    if chromium_python().is_none() || sipp_bin().is_none() {
        return;
    }
    let v = web_vmail(&["1001"], |_| {});
    set_temp_greeting(&v, "1001", 700.0, 600);
    let dir = tempfile::tempdir().expect("temp dir");
    let upload = dir.path().join("greeting.wav");
    write_wav(
        &upload,
        16000,
        &vmail::media::tone(1900.0, 800, 8000, 16000),
    );

    let run = Browser::new(v.http_addr())
        .login_as(&address("1001"), PIN)
        .run(&[
            "login",
            "upload-greeting",
            "temp",
            &upload.display().to_string(),
        ])
        .expect("browser present");
    run.assert_success("upload a greeting");
    let greeting = store(&v)
        .greeting_path(&mailbox("1001"), GreetingKind::Temporary)
        .expect("greeting path")
        .expect("the temporary greeting is there");
    let (spec, pcm) = read_wav(&greeting);
    assert_eq!(spec.sample_rate, 8000, "stored at 8 kHz");
    let stored: Vec<u32> = tone_sequence(&pcm, 8000).iter().map(|t| t.freq).collect();
    assert_eq!(stored, vec![1900], "stored greeting: {stored:?}");

    let peer = RtpPeer::listen();
    let Some(call) = Sipp::uac("deposit_rtp_peer.xml", v.sip_addr())
        .mailbox("1001")
        .key("rtp_port", &peer.port().to_string())
        .hold_ms(2500)
        .run()
    else {
        return;
    };
    call.assert_success("deposit_rtp_peer.xml");
    let heard: Vec<u32> = tone_sequence(&peer.finish().audio_pcm(), 8000)
        .iter()
        .map(|t| t.freq)
        .collect();
    assert!(
        heard.contains(&1900),
        "uploaded greeting not heard: {heard:?}"
    );
    assert!(
        !heard.contains(&700),
        "the old greeting was heard: {heard:?}"
    );
}

/// Five wrong PINs in the browser lock the mailbox in the lockout state the
/// phone uses; the right PIN is then refused with the same answer.
#[test]
fn five_wrong_pins_in_the_browser_lock_the_mailbox_for_the_phone() {
    if chromium_python().is_none() {
        return;
    }
    let v = web_vmail(&["1001"], |ext| {
        ext["lockout_failures"] = 5.into();
        ext["lockout_seconds"] = 300.into();
    });
    let browser = Browser::new(v.http_addr()).login_as(&address("1001"), PIN);
    let run = browser.run(&["wrong-pin", "5"]).expect("browser present");
    run.assert_success("five wrong PINs");
    let errors = run.step("wrong-pin")["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(errors.len(), 5, "{}", run.report());
    assert!(
        errors.iter().all(|e| e == &errors[0]),
        "the refusals differ: {errors:?}"
    );

    let state = store(&v)
        .login_state(&mailbox("1001"))
        .expect("login state");
    assert!(
        state.is_locked(SystemTime::now()),
        "not locked after five wrong PINs in the browser: {state:?}"
    );

    // The right PIN now: refused like a wrong one, and still locked.
    let run = browser.run(&["login"]).expect("browser present");
    assert!(!run.success(), "logged in while locked: {}", run.report());
    let login = run.step("login");
    assert!(
        login["error"]
            .as_str()
            .unwrap_or("")
            .contains("login refused"),
        "{}",
        run.report()
    );
    let state = store(&v)
        .login_state(&mailbox("1001"))
        .expect("login state");
    assert!(
        state.is_locked(SystemTime::now()),
        "lock cleared: {state:?}"
    );
}

/// A POST without the csrf field is refused 403 (and changes nothing);
/// another mailbox's message id, or an unknown one, in the audio URL is 404.
#[test]
fn csrf_is_required_and_other_mailboxes_messages_are_not_found() {
    if chromium_python().is_none() || sipp_bin().is_none() {
        return;
    }
    let v = web_vmail(&["1001", "1002"], |_| {});
    short_greeting(&v, "1001");
    short_greeting(&v, "1002");
    if !sipp_deposits(&v, "1001", "5551001", 1) || !sipp_deposits(&v, "1002", "5551002", 1) {
        return;
    }
    let mine = wait_inbox(&v, "1001", 1).remove(0);
    let theirs = wait_inbox(&v, "1002", 1).remove(0);
    // Well formed, but no mailbox has it.
    let unknown = format!("{mine}x");

    let run = Browser::new(v.http_addr())
        .login_as(&address("1001"), PIN)
        .run(&[
            "login",
            "post-without-csrf",
            &format!("/messages/{mine}/delete"),
            "post-without-csrf",
            &format!("/messages/{mine}/move"),
            "post-without-csrf",
            "/pin",
            "post-without-csrf",
            "/logout",
            "get",
            &format!("/messages/{mine}/audio"),
            "get",
            &format!("/messages/{theirs}/audio"),
            "get",
            &format!("/messages/{theirs}/audio?download=1"),
            "get",
            &format!("/messages/{unknown}/audio"),
            "expect-messages",
            "1",
        ])
        .expect("browser present");
    run.assert_success("csrf and foreign ids");
    let report = run.report();
    for n in 0..4 {
        let post = run.nth("post-without-csrf", n);
        assert_eq!(post["status"], 403, "{report}");
        assert_eq!(post["csrf_error"], true, "{report}");
    }
    assert_eq!(run.nth("get", 0)["status"], 200, "own message: {report}");
    for n in 1..4 {
        assert_eq!(run.nth("get", n)["status"], 404, "{report}");
    }
    // Nothing changed: both messages are where they were, 1001 still logged in.
    assert_eq!(message_ids(&v, "1001", Folder::Inbox), vec![mine]);
    assert_eq!(message_ids(&v, "1002", Folder::Inbox), vec![theirs]);
}

/// The inbox with two messages, as a PNG kept in target/web-artifacts/;
/// with VMAIL_UPDATE_SCREENSHOT=1 it also replaces docs/images/web-inbox.png
/// (the README's picture).
#[test]
fn inbox_screenshot_with_two_messages() {
    if chromium_python().is_none() || sipp_bin().is_none() {
        return;
    }
    let v = web_vmail(&["1001"], |_| {});
    short_greeting(&v, "1001");
    if !sipp_deposits(&v, "1001", "5551234", 1) || !sipp_deposits(&v, "1001", "5557788", 1) {
        return;
    }
    wait_inbox(&v, "1001", 2);
    let shot = web_artifacts_dir().join("inbox.png");
    let _ = fs::remove_file(&shot);
    let run = Browser::new(v.http_addr())
        .login_as(&address("1001"), PIN)
        .run(&[
            "login",
            "expect-messages",
            "2",
            "screenshot",
            &shot.display().to_string(),
        ])
        .expect("browser present");
    run.assert_success("inbox screenshot");
    assert!(is_png(&shot, 5000), "no screenshot at {}", shot.display());
    println!("inbox screenshot: {}", shot.display());
    if std::env::var("VMAIL_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = repo_root().join("docs").join("images");
        fs::create_dir_all(&docs).expect("create docs/images");
        fs::copy(&shot, docs.join("web-inbox.png")).expect("copy the screenshot to docs/images");
        println!("copied to {}", docs.join("web-inbox.png").display());
    }
}

/// A language chosen on the settings page in the browser: saved in the
/// mailbox, and the pages follow it at once.
#[test]
fn a_language_chosen_in_the_browser_changes_the_pages() {
    if chromium_python().is_none() {
        return;
    }
    // Russian prompts (and English, always loaded): both offered.
    let v = web_vmail(&["1001"], |ext| {
        ext["language"] = json!("ru");
    });
    let run = Browser::new(v.http_addr())
        .login_as(&address("1001"), PIN)
        .run(&[
            "login",
            "goto",
            "/settings",
            "set-language",
            "en",
            "goto",
            "/inbox",
            "set-language",
            "ru",
        ])
        .expect("browser present");
    run.assert_success("language change");
    let report = run.report();
    assert_eq!(run.step("goto")["lang"], "ru", "ext.language: {report}");
    let to_en = run.nth("set-language", 0);
    assert_eq!(to_en["lang"], "en", "{report}");
    assert_eq!(to_en["saved_text"], "Your settings are saved.", "{report}");
    assert_eq!(
        to_en["label_before"], "Язык подсказок и этих страниц",
        "{report}"
    );
    assert_eq!(run.nth("goto", 1)["lang"], "en", "the inbox too: {report}");
    let to_ru = run.nth("set-language", 1);
    assert_eq!(to_ru["lang"], "ru", "{report}");
    assert_eq!(to_ru["saved_text"], "Настройки сохранены.", "{report}");
    let settings = store(&v)
        .mailbox(&mailbox("1001"))
        .expect("store")
        .expect("mailbox")
        .settings;
    assert_eq!(settings.language.as_deref(), Some("ru"));
}
