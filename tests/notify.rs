//! Notifications: e-mail through a real SMTP server (aiosmtpd, started by
//! the test) and signed webhooks to a receiver written here, with the
//! durable queue across failures and `kill -9`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost};

const TOKEN: &str = "notify-test-token-0123";
const SECRET: &str = "whsec_test_0123456789abcdef";
const G711A_PCAP_MS: u64 = 236 * 30;

/// The SMTP server: `python -m aiosmtpd` with the handler of
/// `tests/notify/smtp_sink.py`, writing what it receives to `dir`.
struct SmtpSink {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl SmtpSink {
    fn start_on(port: u16) -> Option<SmtpSink> {
        let Some(python) = pjsua_python() else {
            skip_or_fail("python with aiosmtpd (VMAIL_PYTHON)");
            return None;
        };
        let ok = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip_or_fail("aiosmtpd in VMAIL_PYTHON (scripts/test.sh installs it)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "smtp_sink.Sink"])
            .arg(dir.path())
            .env("PYTHONPATH", repo_root().join("tests/notify"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        wait_for(Duration::from_secs(20), "aiosmtpd listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Some(SmtpSink { child, dir, port })
    }

    /// The summaries (`<n>.json`) of the e-mails received, oldest first.
    fn mails(&self) -> Vec<Value> {
        files_with_suffix(self.dir.path(), ".json")
            .into_iter()
            .map(|p| serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    fn wait_mails(&self, n: usize, timeout: Duration) -> Vec<Value> {
        wait_for(timeout, &format!("{n} e-mail(s)"), || {
            let m = self.mails();
            (m.len() >= n).then_some(m)
        })
    }

    fn part_bytes(&self, part: &Value) -> Vec<u8> {
        fs::read(self.dir.path().join(part["file"].as_str().unwrap())).unwrap()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// vmail with mailbox 1001 and notifications to an SMTP server on
/// `smtp_port`, retrying quickly.
fn vmail(smtp_port: u16, tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    let v = Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
            ext["api_tokens"] = json!([TOKEN]);
            ext["smtp"] = json!({
                "host": "127.0.0.1",
                "port": smtp_port,
                "from": "Voicemail <vmail@example.com>",
                "tls": "none"
            });
            ext["notify_retry_ms"] = json!(300);
            ext["notify_retry_max_seconds"] = json!(1);
            tweak(ext);
        })
        .start();
    // A short greeting: recording starts about half a second in.
    let store = FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).unwrap();
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let pcm = vmail::media::tone(400.0, 100, 8000, 8000);
    store
        .store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .unwrap();
    v
}

fn api(v: &Vmail, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut req = client
        .request(method, format!("http://{}{path}", v.http_addr()))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().expect("API request");
    let code = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn set_mailbox(v: &Vmail, change: Value) {
    let path = format!("/api/v1/domains/{DOMAIN}/mailboxes/1001");
    let (code, body) = api(v, reqwest::Method::PATCH, &path, Some(change));
    assert_eq!(code, 200, "{body}");
}

/// One deposit to 1001 with sipp; false when sipp is missing (skipped).
fn deposit(v: &Vmail) -> bool {
    let Some(run) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox("1001")
        .hold_ms(G711A_PCAP_MS + 1000)
        .run()
    else {
        return false;
    };
    run.assert_success("deposit.xml");
    true
}

fn inbox(v: &Vmail) -> PathBuf {
    v.mailbox_dir("1001", DOMAIN).join("INBOX")
}

fn queue(v: &Vmail, channel: &str) -> Vec<PathBuf> {
    files_with_suffix(&v.store().join("queue").join(channel), ".json")
}

fn metric(v: &Vmail, line_start: &str) -> Option<f64> {
    let (_, text) = http_get(v.http_addr(), "/metrics", Duration::from_secs(5))?;
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
}

fn free_port() -> u16 {
    free_tcp_port()
}

#[test]
fn a_deposit_is_emailed_with_its_wav() {
    let smtp_port = free_port();
    let Some(sink) = SmtpSink::start_on(smtp_port) else {
        return;
    };
    let v = vmail(sink.port, |ext| {
        ext["email_link_template"] = json!("https://vm.example.com/web/{domain}/{user}/{id}");
    });
    set_mailbox(
        &v,
        json!({"email": "Owner <owner@example.com>, second@example.com"}),
    );
    if !deposit(&v) {
        return;
    }
    let mails = sink.wait_mails(1, Duration::from_secs(30));
    let wavs = wait_for_files(&inbox(&v), ".wav", 1, Duration::from_secs(5));
    let stored = fs::read(&wavs[0]).unwrap();
    let meta: Value =
        serde_json::from_str(&fs::read_to_string(wavs[0].with_extension("json")).unwrap()).unwrap();
    let id = meta["id"].as_str().unwrap();
    let m = &mails[0];
    assert_eq!(m["content_type"], "multipart/mixed", "{m}");
    let rcpt: Vec<&str> = m["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(rcpt, ["owner@example.com", "second@example.com"], "{m}");
    assert!(m["subject"].as_str().unwrap().contains("5551234"), "{m}");
    let parts = m["parts"].as_array().unwrap();
    let text = parts
        .iter()
        .find(|p| p["content_type"] == "text/plain")
        .unwrap_or_else(|| panic!("no text part: {m}"));
    let body = text["text"].as_str().unwrap();
    let secs = (meta["duration_ms"].as_u64().unwrap() + 500) / 1000;
    assert!(body.contains("5551234"), "{body}");
    assert!(
        body.contains(&format!("Duration: {}:{:02}", secs / 60, secs % 60)),
        "{body}"
    );
    assert!(
        body.contains(&format!("https://vm.example.com/web/{DOMAIN}/1001/{id}")),
        "{body}"
    );
    let audio = parts
        .iter()
        .find(|p| p["content_type"] == "audio/wav")
        .unwrap_or_else(|| panic!("no audio/wav part: {m}"));
    assert_eq!(audio["disposition"], "attachment", "{m}");
    assert!(audio["filename"].as_str().unwrap().ends_with(".wav"), "{m}");
    assert!(
        sink.part_bytes(audio) == stored,
        "the attachment differs from the stored WAV"
    );
    // Sent once, the queue is empty, the metrics and the API say so.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.mails().len(), 1);
    assert!(queue(&v, "email").is_empty());
    assert_eq!(
        metric(
            &v,
            "vmail_notify_sent_total{channel=\"email\",outcome=\"sent\"}"
        ),
        Some(1.0)
    );
    let (code, list) = api(&v, reqwest::Method::GET, "/api/v1/notifications", None);
    assert_eq!(
        (code, list["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{list}"
    );
    // The message stays: delete_after_send is off.
    assert_eq!(files_with_suffix(&inbox(&v), ".wav").len(), 1);
}

#[test]
fn delete_after_send_removes_the_message_once_emailed() {
    let smtp_port = free_port();
    let Some(sink) = SmtpSink::start_on(smtp_port) else {
        return;
    };
    let v = vmail(sink.port, |_| {});
    set_mailbox(
        &v,
        json!({"email": "owner@example.com", "attach": "none", "delete_after_send": true}),
    );
    if !deposit(&v) {
        return;
    }
    let mails = sink.wait_mails(1, Duration::from_secs(30));
    assert_eq!(mails[0]["content_type"], "text/plain", "{}", mails[0]);
    wait_for(Duration::from_secs(10), "the message deleted", || {
        files_with_suffix(&inbox(&v), ".wav")
            .is_empty()
            .then_some(())
    });
    assert!(files_with_suffix(&inbox(&v), ".json").is_empty());
}

#[test]
fn smtp_down_at_first_is_retried_and_delivered_once() {
    let smtp_port = free_port();
    // Nothing listens on the SMTP port yet.
    let v = vmail(smtp_port, |_| {});
    set_mailbox(&v, json!({"email": "owner@example.com"}));
    if !deposit(&v) {
        return;
    }
    // The failures show in the API and the metrics.
    let failing = wait_for(Duration::from_secs(20), "a failed attempt", || {
        let (_, list) = api(&v, reqwest::Method::GET, "/api/v1/notifications", None);
        let item = list["items"].as_array()?.first()?.clone();
        (item["attempts"].as_u64()? >= 2).then_some(item)
    });
    assert_eq!(failing["channel"], "email", "{failing}");
    assert_eq!(failing["type"], "message.created", "{failing}");
    assert!(failing["last_error"].as_str().is_some(), "{failing}");
    assert!(metric(
        &v,
        "vmail_notify_sent_total{channel=\"email\",outcome=\"failed\"}"
    )
    .is_some_and(|n| n >= 2.0));
    assert_eq!(
        metric(&v, "vmail_notify_queue{channel=\"email\"}"),
        Some(1.0)
    );
    let Some(sink) = SmtpSink::start_on(smtp_port) else {
        return;
    };
    sink.wait_mails(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.mails().len(), 1, "delivered more than once");
    assert!(queue(&v, "email").is_empty());
}

#[test]
fn kill9_between_deposit_and_send_then_restart_sends_exactly_once() {
    let smtp_port = free_port();
    let Some(sink) = SmtpSink::start_on(smtp_port) else {
        return;
    };
    // The first attempt waits 4 s after the message is stored: the kill
    // lands before it.
    let mut v = vmail(sink.port, |ext| ext["notify_delay_ms"] = json!(4000));
    set_mailbox(&v, json!({"email": "owner@example.com"}));
    if !deposit(&v) {
        return;
    }
    wait_for_files(&inbox(&v), ".wav", 1, Duration::from_secs(5));
    assert_eq!(
        queue(&v, "email").len(),
        1,
        "the job is in the store before the send"
    );
    v.kill9();
    assert!(sink.mails().is_empty(), "sent before the kill");
    v.restart();
    sink.wait_mails(1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.mails().len(), 1, "sent more than once");
    assert!(queue(&v, "email").is_empty());
}

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
struct Hook {
    signature: String,
    body: String,
    status: u16,
}

/// A webhook receiver on 127.0.0.1: answers each POST with the status
/// `answer` gives for the request's number (0, 1, ...).
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Hook>>>,
    mode: Arc<AtomicUsize>,
}

/// Receiver modes.
const FAIL_TWICE: usize = 0;
const ALWAYS_500: usize = 1;
const ALWAYS_200: usize = 2;

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(AtomicUsize::new(FAIL_TWICE));
        let (g, m) = (got.clone(), mode.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = BTreeMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                let mut list = g.lock().unwrap();
                let status = match m.load(Ordering::SeqCst) {
                    FAIL_TWICE if list.len() < 2 => 500,
                    ALWAYS_500 => 500,
                    _ => 200,
                };
                list.push(Hook {
                    signature: headers.get("vmail-signature").cloned().unwrap_or_default(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    status,
                });
                drop(list);
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver { port, got, mode }
    }

    fn hooks(&self) -> Vec<Hook> {
        self.got.lock().unwrap().clone()
    }

    fn wait(&self, what: &str, f: impl Fn(&[Hook]) -> bool) -> Vec<Hook> {
        wait_for(Duration::from_secs(30), what, || {
            let h = self.hooks();
            f(&h).then_some(h)
        })
    }
}

/// Checks `Vmail-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`.
fn verify(h: &Hook) -> Value {
    let mut t = None;
    let mut v1 = None;
    for kv in h.signature.split(',') {
        match kv.split_once('=') {
            Some(("t", x)) => t = Some(x.to_string()),
            Some(("v1", x)) => v1 = Some(x.to_string()),
            _ => {}
        }
    }
    let (t, v1) = (t.expect("t="), v1.expect("v1="));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t_n: u64 = t.parse().unwrap();
    assert!(
        now.abs_diff(t_n) < 300,
        "signature time {t_n} far from {now}"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{}", h.body).as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, want, "bad signature on {}", h.body);
    serde_json::from_str(&h.body).expect("the body is JSON")
}

fn ok_of(hooks: &[Hook], kind: &str) -> Vec<Value> {
    hooks
        .iter()
        .filter(|h| h.status == 200)
        .map(verify)
        .filter(|e| e["type"] == kind)
        .collect()
}

#[test]
fn webhooks_are_signed_retried_and_survive_a_restart() {
    let receiver = Receiver::start();
    let url = format!("http://127.0.0.1:{}/hook", receiver.port);
    let mut v = vmail(free_port(), move |ext| {
        ext.as_object_mut().unwrap().remove("smtp");
        ext["webhooks"] = json!([{
            "url": url,
            "secret": SECRET,
            "events": ["message.created", "message.heard"]
        }]);
    });
    if !deposit(&v) {
        return;
    }
    // 500, 500, then 200: three tries of the same event.
    let hooks = receiver.wait("message.created delivered", |h| {
        h.iter().any(|h| h.status == 200)
    });
    assert_eq!(hooks.len(), 3, "{hooks:?}");
    let events: Vec<Value> = hooks.iter().map(verify).collect();
    assert!(
        events.iter().all(|e| e["id"] == events[0]["id"]),
        "{events:?}"
    );
    assert!(hooks.iter().all(|h| h.body == hooks[0].body));
    let e = &events[0];
    assert_eq!(e["type"], "message.created");
    assert!(
        e["created"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{e}"
    );
    assert_eq!(e["data"]["mailbox"], format!("1001@{DOMAIN}"));
    let msg = e["data"]["message"]["id"].as_str().unwrap().to_string();
    assert!(
        e["data"]["message"]["caller"]
            .as_str()
            .unwrap()
            .contains("5551234"),
        "{e}"
    );
    assert_eq!(e["data"]["message"]["urgent"], false);
    assert!(
        e["data"]["message"]["duration_ms"].as_u64().unwrap() > 1000,
        "{e}"
    );

    // The receiver fails; the event waits in the queue across a kill -9.
    receiver.mode.store(ALWAYS_500, Ordering::SeqCst);
    let path = format!("/api/v1/domains/{DOMAIN}/mailboxes/1001/messages/{msg}");
    let (code, body) = api(
        &v,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"heard": true})),
    );
    assert_eq!(code, 200, "{body}");
    receiver.wait("message.heard tried", |h| {
        h.iter()
            .any(|h| h.status == 500 && h.body.contains("message.heard"))
    });
    assert_eq!(queue(&v, "webhook").len(), 1);
    v.kill9();
    receiver.mode.store(ALWAYS_200, Ordering::SeqCst);
    v.restart();
    let hooks = receiver.wait("message.heard delivered", |h| {
        h.iter()
            .any(|h| h.status == 200 && h.body.contains("message.heard"))
    });
    let heard = ok_of(&hooks, "message.heard");
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0]["data"]["message"]["id"], msg.as_str());
    assert_eq!(heard[0]["data"]["message"]["heard"], true);
    let tried: Vec<Value> = hooks
        .iter()
        .map(verify)
        .filter(|e| e["type"] == "message.heard")
        .collect();
    assert!(tried.iter().all(|e| e["id"] == heard[0]["id"]), "{tried:?}");
    assert_eq!(ok_of(&hooks, "message.created").len(), 1);
    wait_for(Duration::from_secs(5), "the webhook queue empty", || {
        queue(&v, "webhook").is_empty().then_some(())
    });
}

#[test]
fn the_command_line_sets_the_email_settings() {
    let v = vmail(free_port(), |_| {});
    let run = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmail"));
        cmd.arg("mailbox")
            .arg("--config")
            .arg(v.config_path())
            .arg("--name")
            .arg(&v.name)
            .args(args);
        run_bounded(cmd, Duration::from_secs(20)).expect("vmail mailbox")
    };
    let mailbox = format!("1001@{DOMAIN}");
    let out = run(&[
        "set",
        &mailbox,
        "--email",
        "a@example.com, B <b@example.com>",
        "--attach",
        "none",
        "--delete-after-send",
        "true",
    ]);
    assert!(out.status.success(), "{out:?}");
    let json: Value = serde_json::from_str(
        &fs::read_to_string(v.mailbox_dir("1001", DOMAIN).join("mailbox.json")).unwrap(),
    )
    .unwrap();
    let settings = if json.get("settings").is_some() {
        &json["settings"]
    } else {
        &json
    };
    assert_eq!(
        settings["email"], "a@example.com, B <b@example.com>",
        "{json}"
    );
    assert_eq!(settings["attach"], "none", "{json}");
    assert_eq!(settings["delete_after_send"], true, "{json}");
    let shown = String::from_utf8_lossy(&run(&["show", &mailbox]).stdout).into_owned();
    assert!(shown.contains("attach        none"), "{shown}");
    // A bad address is refused with a message; nothing changes.
    let out = run(&["set", &mailbox, "--email", "not an address"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("email"),
        "{out:?}"
    );
    // "" turns e-mail off.
    assert!(run(&["set", &mailbox, "--email", ""]).status.success());
    let shown = String::from_utf8_lossy(&run(&["show", &mailbox]).stdout).into_owned();
    assert!(shown.contains("e-mail        -"), "{shown}");
}

// ---------------------------------------------------------------------------
// TLS: SMTP with STARTTLS or implicit TLS and AUTH, webhooks over HTTPS,
// each trusting a private CA through its `ca_file`.

/// A Python helper of `tests/notify/` serving TLS with `cert`, writing what
/// it receives to its own directory; killed on drop.
struct TlsPeer {
    child: Child,
    dir: tempfile::TempDir,
}

impl TlsPeer {
    fn start(script: &str, port: u16, cert: &tempfile::TempDir, extra: &[&str]) -> Option<TlsPeer> {
        let Some(python) = pjsua_python() else {
            skip_or_fail("python with aiosmtpd (VMAIL_PYTHON)");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new(&python)
            .arg(repo_root().join("tests/notify").join(script))
            .arg("--port")
            .arg(port.to_string())
            .arg("--outdir")
            .arg(dir.path())
            .arg("--cert")
            .arg(cert.path().join("cert.pem"))
            .arg("--key")
            .arg(cert.path().join("key.pem"))
            .args(extra)
            .env("PYTHONPATH", repo_root().join("tests/notify"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the TLS peer");
        wait_for(Duration::from_secs(20), script, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Some(TlsPeer { child, dir })
    }

    fn records(&self) -> Vec<Value> {
        files_with_suffix(self.dir.path(), ".json")
            .into_iter()
            .map(|p| serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    fn wait(&self, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        wait_for(Duration::from_secs(30), what, || {
            let r = self.records();
            f(&r).then_some(r)
        })
    }
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// vmail e-mailing through an SMTP server on `port` with TLS `mode`
/// (`starttls` or `implicit`), AUTH as `owner`, trusting `ca`.
fn vmail_smtp_tls(
    port: u16,
    mode: &'static str,
    ca: Option<PathBuf>,
) -> (Vmail, tempfile::TempDir) {
    let secrets = tempfile::tempdir().expect("temp dir");
    let password = secrets.path().join("smtp-password");
    fs::write(&password, "s3cret-pass\n").unwrap();
    let v = vmail(port, move |ext| {
        let mut smtp = json!({
            "host": "127.0.0.1",
            "port": port,
            "from": "Voicemail <vmail@example.com>",
            "tls": mode,
            "username": "owner",
            "password_file": password,
        });
        if let Some(ca) = ca {
            smtp["ca_file"] = json!(ca);
        }
        ext["smtp"] = smtp;
    });
    set_mailbox(&v, json!({"email": "owner@example.com"}));
    (v, secrets)
}

/// STARTTLS and implicit TLS (SMTPS), each with AUTH inside TLS, to a
/// server whose certificate a private CA signed, which `ext.smtp.ca_file`
/// names: the
/// e-mail arrives over TLS, authenticated, with its WAV.
#[test]
fn email_over_starttls_and_implicit_tls_with_auth() {
    let cert = private_ca();
    for mode in ["starttls", "implicit"] {
        let port = free_port();
        let mut extra = vec!["--auth", "owner:s3cret-pass"];
        if mode == "implicit" {
            extra.push("--implicit");
        }
        let Some(server) = TlsPeer::start("smtp_server.py", port, &cert, &extra) else {
            return;
        };
        let (v, _secrets) = vmail_smtp_tls(port, mode, Some(cert.path().join("ca.pem")));
        if !deposit(&v) {
            return;
        }
        let mails = server.wait(&format!("an e-mail over {mode}"), |m| !m.is_empty());
        let m = &mails[0];
        assert_eq!(m["tls"], json!(true), "{mode}: {m}");
        assert_eq!(m["auth_login"], json!("owner"), "{mode}: {m}");
        assert_eq!(m["content_type"], "multipart/mixed", "{mode}: {m}");
        let wavs = wait_for_files(&inbox(&v), ".wav", 1, Duration::from_secs(5));
        let audio = m["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["content_type"] == "audio/wav")
            .unwrap_or_else(|| panic!("{mode}: no audio/wav part: {m}"));
        let sent = fs::read(server.dir.path().join(audio["file"].as_str().unwrap())).unwrap();
        assert!(
            sent == fs::read(&wavs[0]).unwrap(),
            "{mode}: the attachment differs"
        );
    }
}

/// Without `ca_file` the private CA is not trusted: nothing is
/// sent in clear or to an unverified server; the failure (a certificate
/// error) shows in the API, and the e-mail stays queued.
#[test]
fn an_untrusted_smtp_certificate_is_refused_and_reported() {
    let cert = private_ca();
    let port = free_port();
    let Some(server) = TlsPeer::start(
        "smtp_server.py",
        port,
        &cert,
        &["--auth", "owner:s3cret-pass"],
    ) else {
        return;
    };
    let (v, _secrets) = vmail_smtp_tls(port, "starttls", None);
    if !deposit(&v) {
        return;
    }
    let failing = wait_for(Duration::from_secs(20), "a failed attempt", || {
        let (_, list) = api(&v, reqwest::Method::GET, "/api/v1/notifications", None);
        let item = list["items"].as_array()?.first()?.clone();
        (item["attempts"].as_u64()? >= 1 && item["last_error"].is_string()).then_some(item)
    });
    let err = failing["last_error"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        err.contains("certificate") || err.contains("tls"),
        "{failing}"
    );
    assert!(server.records().is_empty());
    assert_eq!(queue(&v, "email").len(), 1);
}

/// An `https://` webhook whose certificate a private CA signed, named by
/// the endpoint's `ca_file`, receives the signed events of a deposit and of the
/// phone menu: message.created, then message.heard when the audio starts
/// playing and message.deleted for `7`.
#[test]
fn https_webhooks_carry_the_phone_menus_heard_and_deleted() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let cert = private_ca();
    let port = free_port();
    let Some(receiver) = TlsPeer::start("https_receiver.py", port, &cert, &[]) else {
        return;
    };
    let url = format!("https://127.0.0.1:{port}/hook");
    let ca = cert.path().join("ca.pem");
    let v = vmail(free_port(), move |ext| {
        ext.as_object_mut().unwrap().remove("smtp");
        ext["webhooks"] = json!([{ "url": url, "secret": SECRET, "ca_file": ca }]);
    });
    if !deposit(&v) {
        return;
    }
    let events = |records: &[Value]| -> Vec<Value> {
        records
            .iter()
            .map(|r| {
                verify(&Hook {
                    signature: r["signature"].as_str().unwrap_or_default().to_string(),
                    body: r["body"].as_str().unwrap_or_default().to_string(),
                    status: 200,
                })
            })
            .collect()
    };
    let created = receiver.wait("message.created over https", |r| {
        events(r).iter().any(|e| e["type"] == "message.created")
    });
    let created = events(&created);
    let id = created[0]["data"]["message"]["id"]
        .as_str()
        .expect("the event names its message")
        .to_owned();
    // The phone: mailbox and PIN, 1 plays the new message (heard when its
    // audio starts), 7 deletes it.
    let args = [
        "--target".to_string(),
        format!("sip:*98@{DOMAIN}"),
        "--proxy".into(),
        v.sip_addr().to_string(),
        "--caller".into(),
        "sip:5550000@example.net".into(),
        "--dtmf".into(),
        "1.0:1001#".into(),
        "--dtmf".into(),
        "3.0:1234#".into(),
        "--dtmf".into(),
        "6.0:1".into(),
        "--dtmf".into(),
        "11.0:7".into(),
        "--hangup-after-seconds".into(),
        "14.0".into(),
        "--codecs".into(),
        "PCMU,PCMA".into(),
        "--timeout".into(),
        "40".into(),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    pjsua("deposit.py", &argv)
        .expect("python present")
        .assert_success("deposit.py to the access number");
    let all = receiver.wait("message.heard and message.deleted over https", |r| {
        let e = events(r);
        e.iter().any(|e| e["type"] == "message.heard")
            && e.iter().any(|e| e["type"] == "message.deleted")
    });
    let all = events(&all);
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["type"].as_str()).collect();
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos("message.created") < pos("message.heard"), "{kinds:?}");
    assert!(pos("message.heard") < pos("message.deleted"), "{kinds:?}");
    for e in &all {
        assert_eq!(e["data"]["message"]["id"], json!(id), "{e}");
        assert_eq!(e["data"]["mailbox"], json!(format!("1001@{DOMAIN}")), "{e}");
    }
    assert!(files_with_suffix(&inbox(&v), ".wav").is_empty());
    assert!(files_with_suffix(&v.mailbox_dir("1001", DOMAIN).join("Old"), ".wav").is_empty());
}

/// `attach: opus`: the e-mail carries the message as Opus in Ogg
/// (`audio/ogg`, `.opus`), several times smaller than the WAV, which
/// `opusdec` (opus-tools, not vmail's code) decodes back to the stored
/// audio: the same length and the same loudness from one 50 ms block to
/// the next.
#[test]
fn an_opus_attachment_decodes_to_the_stored_audio() {
    let smtp_port = free_port();
    let Some(sink) = SmtpSink::start_on(smtp_port) else {
        return;
    };
    let v = vmail(sink.port, |_| {});
    set_mailbox(&v, json!({"email": "owner@example.com", "attach": "opus"}));
    if !deposit(&v) {
        return;
    }
    let mails = sink.wait_mails(1, Duration::from_secs(30));
    let m = &mails[0];
    let part = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == "audio/ogg")
        .unwrap_or_else(|| panic!("no audio/ogg part: {m}"));
    assert!(part["filename"].as_str().unwrap().ends_with(".opus"), "{m}");
    let ogg = sink.part_bytes(part);
    let wavs = wait_for_files(&inbox(&v), ".wav", 1, Duration::from_secs(5));
    let stored_bytes = fs::read(&wavs[0]).unwrap();
    assert!(
        ogg.len() * 4 < stored_bytes.len(),
        "{} bytes of Opus for {} of WAV",
        ogg.len(),
        stored_bytes.len()
    );
    let (spec, stored) = read_wav(&wavs[0]);
    let rate = spec.sample_rate;
    let dir = tempfile::tempdir().unwrap();
    let opus = dir.path().join("m.opus");
    let decoded_wav = dir.path().join("m.wav");
    fs::write(&opus, &ogg).unwrap();
    let mut cmd = Command::new("opusdec");
    cmd.args(["--quiet", "--rate", &rate.to_string()])
        .arg(&opus)
        .arg(&decoded_wav);
    let out = run_bounded(cmd, Duration::from_secs(30))
        .expect("run opusdec (scripts/test.sh installs opus-tools)");
    assert!(out.status.success(), "opusdec: {out:?}");
    let (_, decoded) = read_wav(&decoded_wav);
    let diff = decoded.len().abs_diff(stored.len());
    assert!(
        diff <= rate as usize / 100,
        "decoded {} samples, stored {}",
        decoded.len(),
        stored.len()
    );
    let block = rate as usize / 20;
    let rms = |x: &[i16]| -> Vec<f64> {
        x.chunks_exact(block)
            .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / c.len() as f64).sqrt())
            .collect()
    };
    let (a, b) = (rms(&stored), rms(&decoded));
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let var = |x: &[f64], m: f64| x.iter().map(|v| (v - m).powi(2)).sum::<f64>();
    let corr = cov / (var(a, ma) * var(b, mb)).sqrt();
    assert!(corr > 0.9, "loudness envelopes correlate at {corr:.3}");
}
