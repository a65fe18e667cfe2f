//! Named folders and retention against the real `vmail` binary: saving a
//! message into Work from the phone menu (`9` then `2`) with the PJSIP
//! client library, listing and moving between folders through the API,
//! the background retention pass of the active instance (log line and
//! `vmail_messages_expired_total`), and `vmail mailbox purge`.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use common::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};
use vmail::store::{Folder, FsStore, MailboxId, PinCost, RecordingInfo};

const TOKEN: &str = "folders-test-token-0123";
const DAY: Duration = Duration::from_secs(86_400);

fn start(tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = json!([
                {"user": "1001", "domain": DOMAIN, "pin": "1357"},
                {"user": "1002", "domain": DOMAIN, "pin": "2468"}
            ]);
            ext["api_tokens"] = json!([TOKEN]);
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

/// A message of a 1 s tone in `user`'s INBOX, recorded at `when`.
fn deposit(v: &Vmail, user: &str, when: SystemTime) -> String {
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
    let mut w = store(v).begin_recording(&id(user), info, when).unwrap();
    w.append(&vmail::media::tone(600.0, 1000, 8000, 8000))
        .unwrap();
    let m = w.finish().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    m.id
}

fn ids_in(v: &Vmail, user: &str, folder: Folder) -> Vec<String> {
    store(v)
        .list_messages(&id(user), folder)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect()
}

struct Api {
    base: String,
    client: Client,
}

impl Api {
    fn new(v: &Vmail) -> Api {
        Api {
            base: format!("http://{}/api/v1/domains/{DOMAIN}/mailboxes", v.http_addr()),
            client: Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().expect("HTTP request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None)
    }

    fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body))
    }

    fn listed(&self, user: &str, folder: &str) -> Vec<String> {
        let (code, body) = self.get(&format!("/{user}/messages?folder={folder}"));
        assert_eq!(code, 200, "{body}");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Login, `1` to hear the new message, `9` then `2`: it is saved in Work,
/// heard, and the phone's message waiting counts it as old.
#[test]
fn nine_then_two_saves_a_message_into_work_from_the_phone() {
    let v = start(|_| {});
    let msg = deposit(&v, "1001", SystemTime::now());
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("heard.wav");
    let args: Vec<String> = vec![
        "--target".into(),
        format!("sip:*98@{DOMAIN}"),
        "--proxy".into(),
        v.sip_addr().to_string(),
        "--caller".into(),
        format!("sip:5551234@{DOMAIN}"),
        "--record".into(),
        rec.display().to_string(),
        "--hangup-after-seconds".into(),
        "17".into(),
        "--dtmf-method".into(),
        "rfc2833".into(),
        "--codecs".into(),
        "PCMU,PCMA".into(),
        "--timeout".into(),
        "40".into(),
        "--dtmf".into(),
        "1.0:1001#".into(),
        "--dtmf".into(),
        "3.0:1357#".into(),
        "--dtmf".into(),
        "6.0:1".into(),
        "--dtmf".into(),
        "10.0:9".into(),
        "--dtmf".into(),
        "12.0:2".into(),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = pjsua("deposit.py", &argv).expect("python present");
    run.assert_success("deposit.py to the access number");
    // The tone of the message was heard before the save.
    let heard = if rec.exists() {
        read_wav(&rec).1
    } else {
        Vec::new()
    };
    assert!(
        tone_sequence(&heard, 8000)
            .iter()
            .any(|t| t.freq.abs_diff(600) <= 25 && t.duration_ms >= 600),
        "{}",
        v.log()
    );
    let in_work = wait_for(Duration::from_secs(5), "the message in Work", || {
        let w = ids_in(&v, "1001", Folder::Work);
        (!w.is_empty()).then_some(w)
    });
    assert_eq!(in_work, vec![msg.clone()], "{}", v.log());
    assert!(ids_in(&v, "1001", Folder::Inbox).is_empty());
    assert!(ids_in(&v, "1001", Folder::Old).is_empty());
    let meta = store(&v).message(&id("1001"), &msg).unwrap().unwrap();
    assert_eq!(meta.folder, Folder::Work);
    assert!(meta.heard);
    let counts = store(&v).counts(&id("1001")).unwrap();
    assert_eq!((counts.new, counts.old), (0, 1));
    assert!(v.log().contains("message saved to a folder"), "{}", v.log());
}

/// Lists by folder, moves to every kind of folder, refuses unknown ones;
/// the counts call everything outside INBOX old; the mailbox's own
/// retention is set and cleared through PATCH.
#[test]
fn the_api_lists_and_moves_between_folders() {
    let v = start(|_| {});
    let api = Api::new(&v);
    let a = deposit(&v, "1001", SystemTime::now());
    let b = deposit(&v, "1001", SystemTime::now());
    assert_eq!(api.listed("1001", "INBOX"), vec![a.clone(), b.clone()]);
    assert!(api.listed("1001", "Work").is_empty());

    let (code, body) = api.patch(&format!("/1001/messages/{a}"), json!({"folder": "Work"}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["folder"], "Work");
    let (code, body) = api.patch(
        &format!("/1001/messages/{b}"),
        json!({"folder": "Cust3", "heard": true}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["folder"], "Cust3");
    assert_eq!(api.listed("1001", "Work"), vec![a.clone()]);
    assert_eq!(api.listed("1001", "Cust3"), vec![b.clone()]);
    assert!(api.listed("1001", "INBOX").is_empty());
    assert_eq!(ids_in(&v, "1001", Folder::Cust3), vec![b.clone()]);
    assert!(v
        .mailbox_dir("1001", DOMAIN)
        .join("Work")
        .join(format!("{a}.wav"))
        .is_file());

    let (code, body) = api.get("/1001");
    assert_eq!(code, 200);
    assert_eq!(body["counts"]["new"], 0);
    assert_eq!(body["counts"]["old"], 2);

    // Family, then back to INBOX.
    let (code, body) = api.patch(&format!("/1001/messages/{a}"), json!({"folder": "Family"}));
    assert_eq!((code, body["folder"].as_str()), (200, Some("Family")));
    let (code, _) = api.patch(&format!("/1001/messages/{a}"), json!({"folder": "INBOX"}));
    assert_eq!(code, 200);
    assert_eq!(api.listed("1001", "INBOX"), vec![a.clone()]);

    for bad in ["Spam", "Deleted", "cust6"] {
        let (code, body) = api.patch(&format!("/1001/messages/{a}"), json!({"folder": bad}));
        assert_eq!(code, 400, "{bad}: {body}");
        let (code, _) = api.get(&format!("/1001/messages?folder={bad}"));
        assert_eq!(code, 400, "{bad}");
    }

    // The OpenAPI description names every folder.
    let (code, doc) = {
        let r = api
            .client
            .get(format!("http://{}/api/v1/openapi.json", v.http_addr()))
            .bearer_auth(TOKEN)
            .send()
            .expect("openapi");
        let code = r.status().as_u16();
        (code, r.json::<Value>().unwrap_or(Value::Null))
    };
    assert_eq!(code, 200, "{doc}");
    let names = &doc["components"]["schemas"]["FolderName"]["enum"];
    for f in Folder::ALL {
        assert!(
            names
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n == f.dir_name())),
            "{f} not in {names}"
        );
    }

    // The mailbox's own retention.
    let (code, body) = api.patch("/1001", json!({"retention_old_days": 7}));
    assert_eq!((code, body["retention_old_days"].as_u64()), (200, Some(7)));
    let (code, _) = api.patch("/1001", json!({"retention_old_days": 36501}));
    assert_eq!(code, 400);
    let (code, _) = api.patch("/1001", json!({"retention_old_days": -1}));
    assert_eq!(code, 400);
    let (code, body) = api.patch("/1001", json!({"retention_old_days": null}));
    assert_eq!(code, 200);
    assert!(body["retention_old_days"].is_null(), "{body}");

    // The mailbox's own operator (Asterisk's per-mailbox operator).
    let (code, body) = api.patch("/1001", json!({"operator": "sip:desk@pbx.example.com"}));
    assert_eq!(
        (code, body["operator"].as_str()),
        (200, Some("sip:desk@pbx.example.com"))
    );
    let (code, body) = api.patch("/1001", json!({"operator": "tel:+100"}));
    assert_eq!(code, 400, "{body}");
    let (code, body) = api.patch("/1001", json!({"operator": "none"}));
    assert_eq!((code, body["operator"].as_str()), (200, Some("none")));
    let (code, body) = api.patch("/1001", json!({"operator": null}));
    assert_eq!(code, 200);
    assert!(body["operator"].is_null(), "{body}");
}

fn vmail_cli(v: &Vmail, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmail"));
    cmd.arg("mailbox")
        .arg("--config")
        .arg(v.config_path())
        .arg("--name")
        .arg(&v.name)
        .args(args)
        .stdin(Stdio::null());
    run_bounded(cmd, Duration::from_secs(30)).expect("run vmail mailbox")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn expired_metric(v: &Vmail) -> Option<f64> {
    let (code, body) = http_get(v.http_addr(), "/metrics", Duration::from_secs(5))?;
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| l.strip_prefix("vmail_messages_expired_total "))
        .and_then(|n| n.trim().parse().ok())
}

/// Old messages past `old_days`, named folders past the domain's
/// `folders_days`: removed by the pass the active instance runs at
/// takeover, each with a log line, counted in the metric; INBOX (no
/// period), young messages and a mailbox that keeps its Old messages stay.
#[test]
fn the_active_instance_removes_expired_messages_in_the_background() {
    let mut v = start(|ext| {
        ext["retention"] = json!({
            "old_days": 7,
            "domains": { DOMAIN: { "folders_days": 30 } }
        });
        ext["retention_interval_minutes"] = json!(60);
    });
    // The first pass runs at the first takeover, before these messages
    // exist; the next one an hour later.
    let passes = |v: &Vmail| v.log().matches("retention pass done").count();
    wait_for(Duration::from_secs(10), "the first retention pass", || {
        (passes(&v) >= 1).then_some(())
    });
    let s = store(&v);
    let now = SystemTime::now();
    let old_expired = deposit(&v, "1001", now - 10 * DAY);
    s.move_message(&id("1001"), &old_expired, Folder::Old)
        .unwrap();
    let old_young = deposit(&v, "1001", now - 2 * DAY);
    s.move_message(&id("1001"), &old_young, Folder::Old)
        .unwrap();
    let work_expired = deposit(&v, "1001", now - 40 * DAY);
    s.move_message(&id("1001"), &work_expired, Folder::Work)
        .unwrap();
    let work_young = deposit(&v, "1001", now - 20 * DAY);
    s.move_message(&id("1001"), &work_young, Folder::Work)
        .unwrap();
    let inbox_ancient = deposit(&v, "1001", now - 400 * DAY);
    // 1002 keeps its Old messages for ever.
    let kept = deposit(&v, "1002", now - 100 * DAY);
    s.move_message(&id("1002"), &kept, Folder::Old).unwrap();
    let (code, _) = Api::new(&v).patch("/1002", json!({"retention_old_days": 0}));
    assert_eq!(code, 200);

    // The next takeover runs one at once.
    assert_eq!(passes(&v), 1, "{}", v.log());
    v.restart();
    wait_for(Duration::from_secs(20), "the retention pass", || {
        (passes(&v) >= 2).then_some(())
    });
    let log = v.log();
    for gone in [&old_expired, &work_expired] {
        assert!(
            log.lines()
                .any(|l| l.contains("message expired") && l.contains(gone.as_str())),
            "no log line for {gone}\n{log}"
        );
    }
    assert_eq!(
        ids_in(&v, "1001", Folder::Old),
        vec![old_young.clone()],
        "{log}"
    );
    assert_eq!(ids_in(&v, "1001", Folder::Work), vec![work_young.clone()]);
    assert_eq!(ids_in(&v, "1001", Folder::Inbox), vec![inbox_ancient]);
    assert_eq!(ids_in(&v, "1002", Folder::Old), vec![kept]);
    assert_eq!(expired_metric(&v), Some(2.0), "{log}");
}

/// `purge --dry-run` lists and keeps; without it the same messages go;
/// `--older-than` picks folders and one mailbox; bad input is refused.
#[test]
fn mailbox_purge_lists_with_dry_run_and_removes_without() {
    let v = start(|_| {});
    let s = store(&v);
    let now = SystemTime::now();
    let a = deposit(&v, "1001", now - 3 * DAY);
    s.move_message(&id("1001"), &a, Folder::Old).unwrap();
    let b = deposit(&v, "1001", now - 3 * DAY);
    s.move_message(&id("1001"), &b, Folder::Friends).unwrap();
    let c = deposit(&v, "1002", now - 3 * DAY);
    s.move_message(&id("1002"), &c, Folder::Old).unwrap();
    let young = deposit(&v, "1001", now);
    s.move_message(&id("1001"), &young, Folder::Old).unwrap();

    // `show` lists the named folders that hold messages.
    let out = vmail_cli(&v, &["show", &format!("1001@{DOMAIN}")]);
    let t = text(&out);
    assert!(t.contains("folders       Friends 1"), "{t}");
    assert!(t.contains("messages      new 0  old 3"), "{t}");

    let out = vmail_cli(&v, &["purge", "--older-than", "1", "--dry-run"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains(&format!("would remove 1001@{DOMAIN} Old/{a}")),
        "{t}"
    );
    assert!(
        t.contains(&format!("would remove 1002@{DOMAIN} Old/{c}")),
        "{t}"
    );
    assert!(!t.contains(&young), "{t}");
    assert!(!t.contains(&b), "{t}");
    assert!(t.contains("2 message(s) would be removed"), "{t}");
    assert_eq!(ids_in(&v, "1001", Folder::Old).len(), 2);
    assert_eq!(ids_in(&v, "1002", Folder::Old), vec![c.clone()]);

    // One mailbox, two folders.
    let out = vmail_cli(
        &v,
        &[
            "purge",
            "--domain",
            DOMAIN,
            "--user",
            "1001",
            "--older-than",
            "2",
            "--folder",
            "Old",
            "--folder",
            "friends",
        ],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("removed 1001@{DOMAIN} Old/{a}")), "{t}");
    assert!(
        t.contains(&format!("removed 1001@{DOMAIN} Friends/{b}")),
        "{t}"
    );
    assert!(t.contains("2 message(s) removed"), "{t}");
    assert_eq!(ids_in(&v, "1001", Folder::Old), vec![young]);
    assert!(ids_in(&v, "1001", Folder::Friends).is_empty());
    assert_eq!(ids_in(&v, "1002", Folder::Old), vec![c]);

    // Without --older-than and with retention off nothing goes.
    let out = vmail_cli(&v, &["purge"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("0 message(s) removed"), "{t}");

    for bad in [
        vec!["purge", "--older-than", "1", "--folder", "Spam"],
        vec!["purge", "--user", "1001"],
        vec!["purge", "--older-than", "-3"],
        vec!["purge", "--folder", "Old"],
    ] {
        let out = vmail_cli(&v, &bad);
        assert_ne!(out.status.code(), Some(0), "{bad:?}: {}", text(&out));
    }
}
