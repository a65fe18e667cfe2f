//! The HTTP API, `/healthz`, `/readyz` and `/metrics` of the real `vmail`
//! binary on 127.0.0.1: tokens, mailbox/message/greeting operations, JSON
//! errors, hostile names, concurrency with deposits, the OpenAPI
//! description and a schemathesis run against it.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::*;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use serde_json::{json, Value};
use vmail::store::{FsStore, MailboxId, PinCost, RecordingInfo};

const TOKEN: &str = "test-token-0123456789";

/// vmail with mailboxes `users` of [`DOMAIN`] (PIN 1357) and the API token.
fn vmail_with(users: &[&str]) -> Vmail {
    let demo: Vec<Value> = users
        .iter()
        .map(|u| json!({"user": u, "domain": DOMAIN, "pin": "1357"}))
        .collect();
    Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = Value::Array(demo);
            ext["api_tokens"] = json!(["another-token", TOKEN]);
        })
        .start()
}

fn store(v: &Vmail) -> FsStore {
    FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("open store")
}

struct Api {
    base: String,
    client: Client,
}

impl Api {
    fn new(v: &Vmail) -> Api {
        Api {
            base: format!("http://{}", v.http_addr()),
            client: Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
        }
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    fn send(&self, r: RequestBuilder) -> (u16, Value) {
        let resp = r.send().expect("HTTP request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.req(Method::GET, path))
    }

    fn json(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        self.send(self.req(method, path).json(&body))
    }

    fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.req(Method::DELETE, path))
    }

    fn raw(&self, r: RequestBuilder) -> Response {
        r.send().expect("HTTP request")
    }
}

fn mbx(user: &str) -> String {
    format!("/api/v1/domains/{DOMAIN}/mailboxes/{user}")
}

/// A request line sent as is (no URL normalisation): `(status, body)`.
fn raw_http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// A message of `ms` of a tone stored straight into `user`'s INBOX.
fn put_message(v: &Vmail, user: &str, ms: u32) -> String {
    let id = MailboxId::new(user, DOMAIN).unwrap();
    let info = RecordingInfo {
        caller_uri: "sip:5551234@example.net".into(),
        caller_name: Some("Caller".into()),
        called_uri: format!("sip:{user}@{DOMAIN}"),
        cause: "unavailable".into(),
        codec: "PCMU".into(),
        site: "site1".into(),
        instance: "vmail1".into(),
        epoch: 0,
        sample_rate: 8000,
    };
    let mut w = store(v)
        .begin_recording(&id, info, SystemTime::now())
        .expect("begin recording");
    w.append(&vmail::media::tone(600.0, ms, 8000, 8000))
        .expect("append");
    w.finish().expect("finish").id
}

/// Every file and directory under `dir` with its size.
fn tree(dir: &Path) -> BTreeSet<(PathBuf, u64)> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if p.is_dir() {
                stack.push(p.clone());
                out.insert((p, 0));
            } else {
                out.insert((p, len));
            }
        }
    }
    out
}

#[test]
fn missing_or_wrong_token_is_401_and_health_is_open() {
    let v = vmail_with(&["1001"]);
    let api = Api::new(&v);
    let url = format!("{}{}", api.base, mbx("1001"));
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic dGVzdA=="),
        Some("Bearer "),
    ] {
        let mut r = api.client.get(&url);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        let resp = api.raw(r);
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .and_then(|h| h.to_str().ok()),
            Some("Bearer")
        );
        let body: Value = resp.json().expect("JSON error");
        assert_eq!(body["error"], "unauthorized", "{body}");
        assert!(body["detail"].is_string(), "{body}");
    }
    // Unknown /api/ paths are 401 too without a token: nothing is revealed.
    for path in ["/api/v1/status", "/api/v1/no/such/route", "/api/v2"] {
        let resp = api.raw(api.client.get(format!("{}{path}", api.base)));
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
    let (code, _) = api.get("/api/v1/no/such/route");
    assert_eq!(code, 404);
    // Either configured token works.
    let (code, body) = api.get(&mbx("1001"));
    assert_eq!(code, 200, "{body}");
    let resp = api.raw(api.client.get(&url).bearer_auth("another-token"));
    assert_eq!(resp.status().as_u16(), 200);
    // Health and metrics need no token.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = api.raw(api.client.get(format!("{}{path}", api.base)));
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let resp = api.raw(api.client.get(format!("{}/metrics", api.base)));
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|h| h.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.text().unwrap();
    assert!(
        text.contains(r#"route="/api/v1/domains/{domain}/mailboxes/{user}",status="401""#),
        "{text}"
    );
}

#[test]
fn mailbox_crud_round_trip() {
    let v = vmail_with(&["1001"]);
    let api = Api::new(&v);
    let list = format!("/api/v1/domains/{DOMAIN}/mailboxes");
    let (code, body) = api.json(
        Method::POST,
        &list,
        json!({"user": "2001", "pin": "2468", "display_name": "Ann", "language": "ru",
               "timezone": "Europe/Moscow", "email": "ann@example.org", "max_messages": 7}),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["address"], format!("2001@{DOMAIN}"));
    assert_eq!(body["has_pin"], true);
    assert_eq!(body["max_messages"], 7);
    // On disk, where the phone menu and the CLI look.
    let on_disk = store(&v)
        .mailbox(&MailboxId::new("2001", DOMAIN).unwrap())
        .unwrap()
        .expect("mailbox on disk");
    assert_eq!(on_disk.settings.email.as_deref(), Some("ann@example.org"));
    assert!(store(&v)
        .verify_pin(&MailboxId::new("2001", DOMAIN).unwrap(), "2468")
        .unwrap());
    // Again: 409.
    let (code, body) = api.json(Method::POST, &list, json!({"user": "2001"}));
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("already_exists"))
    );
    // The phone's PIN rules: a run is refused.
    let (code, body) = api.json(Method::POST, &list, json!({"user": "2002", "pin": "1234"}));
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("pin_not_allowed")),
        "{body}"
    );
    for u in ["2003", "2004"] {
        let (code, _) = api.json(Method::POST, &list, json!({"user": u}));
        assert_eq!(code, 201);
    }
    // Paging: 1001, 2001, 2003, 2004 by two.
    let (code, p1) = api.get(&format!("{list}?limit=2"));
    assert_eq!(code, 200, "{p1}");
    let users = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["user"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(users(&p1), ["1001", "2001"]);
    let cursor = p1["next_cursor"].as_str().expect("a next page").to_owned();
    let (_, p2) = api.get(&format!("{list}?limit=2&cursor={cursor}"));
    assert_eq!(users(&p2), ["2003", "2004"]);
    assert!(p2["next_cursor"].is_null(), "{p2}");
    // Read, update (absent fields stay, null clears), read back.
    let (code, body) = api.get(&mbx("2001"));
    assert_eq!((code, body["language"].as_str()), (200, Some("ru")));
    let (code, body) = api.json(
        Method::PATCH,
        &mbx("2001"),
        json!({"language": "en", "timezone": "UTC", "email": null, "max_messages": 20}),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["language"], "en");
    assert_eq!(body["timezone"], "UTC");
    assert!(body["email"].is_null());
    assert_eq!(body["max_messages"], 20);
    assert_eq!(body["display_name"], "Ann");
    // Bad values; a time zone the database does not know is refused by
    // name.
    for (bad, named) in [
        (json!({"language": "../en"}), ""),
        (
            json!({"timezone": "Mars/Olympus_Mons"}),
            "Mars/Olympus_Mons",
        ),
    ] {
        let (code, body) = api.json(Method::PATCH, &mbx("2001"), bad);
        assert_eq!(
            (code, body["error"].as_str()),
            (400, Some("invalid_value")),
            "{body}"
        );
        assert!(
            body["detail"].as_str().unwrap_or("").contains(named),
            "{body}"
        );
    }
    let (code, body) = api.json(
        Method::PATCH,
        &mbx("2001"),
        json!({"timezone": "America/New_York"}),
    );
    assert_eq!(
        (code, body["timezone"].as_str()),
        (200, Some("America/New_York")),
        "{body}"
    );
    // PIN.
    let (code, _) = api.json(
        Method::PUT,
        &format!("{}/pin", mbx("2001")),
        json!({"pin": "97531"}),
    );
    assert_eq!(code, 204);
    assert!(store(&v)
        .verify_pin(&MailboxId::new("2001", DOMAIN).unwrap(), "97531")
        .unwrap());
    let (code, body) = api.json(
        Method::PUT,
        &format!("{}/pin", mbx("2001")),
        json!({"pin": "0000"}),
    );
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("pin_not_allowed"))
    );
    // Lockout: three failures lock it; the API shows and clears the lock.
    let id = MailboxId::new("2001", DOMAIN).unwrap();
    for _ in 0..3 {
        store(&v)
            .reserve_login_attempt(&id, SystemTime::now(), 3, 600)
            .unwrap();
    }
    let (_, body) = api.get(&mbx("2001"));
    assert_eq!(body["locked"], true, "{body}");
    assert!(body["locked_until"].is_string(), "{body}");
    let (code, _) = api.delete(&format!("{}/lockout", mbx("2001")));
    assert_eq!(code, 204);
    let (_, body) = api.get(&mbx("2001"));
    assert_eq!(
        (body["locked"].as_bool(), body["login_failures"].as_u64()),
        (Some(false), Some(0))
    );
    assert!(!store(&v)
        .login_state(&id)
        .unwrap()
        .is_locked(SystemTime::now()));
    // Delete: gone from the API and the disk.
    let (code, _) = api.delete(&mbx("2001"));
    assert_eq!(code, 204);
    let (code, body) = api.get(&mbx("2001"));
    assert_eq!(
        (code, body["error"].as_str()),
        (404, Some("mailbox_not_found"))
    );
    assert!(!v.mailbox_dir("2001", DOMAIN).exists());
    let (code, _) = api.delete(&mbx("2001"));
    assert_eq!(code, 404);
}

#[test]
fn bad_requests_get_json_errors_naming_the_problem() {
    let v = vmail_with(&["1001"]);
    let api = Api::new(&v);
    let list = format!("/api/v1/domains/{DOMAIN}/mailboxes");
    // Bad JSON: syntax, a missing field, a wrong type, an unknown field.
    let cases: [(&str, &str); 4] = [
        ("{\"user\": ", "EOF"),
        ("{}", "missing field `user`"),
        ("{\"user\": 5}", "invalid type"),
        ("{\"user\": \"x\", \"colour\": 1}", "unknown field `colour`"),
    ];
    for (body, says) in cases {
        let (code, err) = api.send(
            api.req(Method::POST, &list)
                .header("content-type", "application/json")
                .body(body),
        );
        assert_eq!(code, 400, "{body}: {err}");
        assert_eq!(err["error"], "invalid_json", "{err}");
        assert!(
            err["detail"].as_str().unwrap_or("").contains(says),
            "{body}: {err}"
        );
    }
    // Not JSON at all: 415.
    let (code, err) = api.send(api.req(Method::POST, &list).body("user=1"));
    assert_eq!(
        (code, err["error"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    // Unknown mailbox, message, greeting, route: 404.
    for path in [
        mbx("9999"),
        format!("{}/messages", mbx("9999")),
        format!("{}/messages/20240101T000000.000Z-x-abcdef", mbx("1001")),
        format!("{}/greetings/busy", mbx("1001")),
        "/api/v1/nothing/here".to_owned(),
        "/api/v1/domains/other.example/mailboxes/1001".to_owned(),
    ] {
        let (code, err) = api.get(&path);
        assert_eq!(code, 404, "{path}: {err}");
        assert!(
            err["error"].as_str().is_some() && err["detail"].as_str().is_some(),
            "{err}"
        );
    }
    // Wrong method: 405 in the same shape.
    let (code, err) = api.send(api.req(Method::PUT, &mbx("1001")));
    assert_eq!(
        (code, err["error"].as_str()),
        (405, Some("method_not_allowed")),
        "{err}"
    );
    // Bad query: 400.
    for q in ["?limit=0", "?limit=x", "?folder=Trash"] {
        let (code, err) = api.get(&format!("{}/messages{q}", mbx("1001")));
        assert_eq!(
            (code, err["error"].as_str()),
            (400, Some("invalid_query")),
            "{q}: {err}"
        );
    }
    // Not audio: 415; over 10 MiB: 413.
    let greeting = format!("{}/greetings/unavail", mbx("1001"));
    let (code, err) = api.send(
        api.req(Method::PUT, &greeting)
            .body("this is no audio file"),
    );
    assert_eq!(
        (code, err["error"].as_str()),
        (415, Some("not_audio")),
        "{err}"
    );
    let (code, err) = api.send(
        api.req(Method::PUT, &greeting)
            .body(vec![0u8; 10 * 1024 * 1024 + 1]),
    );
    assert_eq!(
        (code, err["error"].as_str()),
        (413, Some("payload_too_large")),
        "{err}"
    );
    let (code, err) = api.get("/api/v1/route/-bad-");
    assert_eq!(
        (code, err["error"].as_str()),
        (400, Some("invalid_domain")),
        "{err}"
    );
    // Configuration validation: the same errors as `vmail config check`.
    let (code, verdict) = api.send(
        api.req(Method::POST, "/api/v1/config/validate")
            .header("content-type", "application/json")
            .body(r#"{"roles": [{"name": "x", "roletype": "vmail", "group": 1}]}"#),
    );
    assert_eq!(code, 200, "{verdict}");
    assert_eq!(verdict["valid"], false);
    let errors = verdict["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e["field"] == "iface"), "{verdict}");
    let (_, ok) = api.send(
        api.req(Method::POST, "/api/v1/config/validate")
            .body(fs::read_to_string(v.config_path()).unwrap()),
    );
    assert_eq!(ok["valid"], true, "{ok}");
    // The running configuration, secrets masked.
    let (code, cfg) = api.get("/api/v1/config");
    assert_eq!(code, 200);
    assert_eq!(
        cfg["roles"][0]["ext"]["api_tokens"],
        json!(["********", "********"])
    );
    assert!(!cfg.to_string().contains(TOKEN));
    // Route and status.
    let (code, route) = api.get(&format!("/api/v1/route/{DOMAIN}"));
    assert_eq!(
        (code, route["group"].as_u64()),
        (200, Some(11390)),
        "{route}"
    );
    assert_eq!(route["instances"][0]["sip_port"], v.sip_port);
    let (code, route) = api.get("/api/v1/route/unknown.example");
    assert_eq!(code, 404, "{route}");
    let (code, status) = api.get("/api/v1/status");
    assert_eq!(code, 200);
    assert_eq!(status["name"], "vmail1");
    assert_eq!(status["group"], 11390);
    assert_eq!(
        status["calls_in_progress"],
        json!({"deposit": 0, "retrieval": 0})
    );
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn hostile_ids_touch_nothing_outside_the_store() {
    let v = vmail_with(&["1001"]);
    let api = Api::new(&v);
    let msg = put_message(&v, "1001", 300);
    // A file next to the store that a traversal would reach.
    let outside = v.siteshare.path().join("victim.txt");
    fs::write(&outside, "keep").unwrap();
    let before = tree(v.siteshare.path());
    let long = "a".repeat(10 * 1024);
    let base = format!("/api/v1/domains/{DOMAIN}/mailboxes");
    let users = [
        "..".to_owned(),
        "%2e%2e".to_owned(),
        "..%2f..%2fvictim.txt".to_owned(),
        "%2f".to_owned(),
        "a%00b".to_owned(),
        "%00".to_owned(),
        ".hidden".to_owned(),
        long.clone(),
        "1001%2f..%2f..".to_owned(),
    ];
    let addr = v.http_addr();
    for u in &users {
        for (method, suffix) in [
            ("GET", ""),
            ("DELETE", ""),
            ("PUT", "/pin"),
            ("GET", "/messages"),
            ("DELETE", "/greetings/busy"),
            ("PUT", "/greetings/busy"),
            ("DELETE", "/lockout"),
        ] {
            let body: &[u8] = if method == "PUT" {
                b"{\"pin\":\"2468\"}"
            } else {
                b""
            };
            let (code, text) = raw_http(addr, method, &format!("{base}/{u}{suffix}"), body);
            assert!(
                matches!(code, 400 | 404 | 405 | 415),
                "{method} {u}{suffix}: {code} {text}"
            );
            if code != 405 {
                let err: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert!(err["error"].is_string(), "{method} {u}{suffix}: {text}");
            }
        }
    }
    // Hostile domains and message ids.
    let targets = [
        "/api/v1/domains/../mailboxes/1001".to_owned(),
        "/api/v1/domains/%2e%2e/mailboxes/1001".to_owned(),
        format!("/api/v1/domains/{long}/mailboxes/1001"),
        "/api/v1/domains/a%00b/mailboxes".to_owned(),
        format!("{base}/1001/messages/..%2f..%2fmailbox"),
        format!("{base}/1001/messages/%2e%2e/audio"),
        format!("{base}/1001/messages/{msg}%00/audio"),
        format!("{base}/1001/messages/{long}"),
        format!("{base}/1001/greetings/..%2f..%2fmailbox.json"),
        "/api/v1/route/..%2f..".to_owned(),
    ];
    for t in &targets {
        for method in ["GET", "DELETE"] {
            let (code, text) = raw_http(addr, method, t, b"");
            assert!(
                matches!(code, 400 | 404 | 405),
                "{method} {t}: {code} {text}"
            );
        }
    }
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
    assert_eq!(tree(v.siteshare.path()), before, "the SiteShare changed");
    // The real message is still there.
    let (code, _) = api.get(&format!("{base}/1001/messages/{msg}"));
    assert_eq!(code, 200);
}

#[test]
fn messages_audio_range_heard_move_forward_delete() {
    let v = vmail_with(&["1001", "1002"]);
    let api = Api::new(&v);
    let first = put_message(&v, "1001", 400);
    let second = put_message(&v, "1001", 700);
    let msgs = format!("{}/messages", mbx("1001"));
    let (code, list) = api.get(&format!("{msgs}?folder=INBOX&limit=1"));
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"][0]["id"], first.as_str());
    let (_, list2) = api.get(&format!(
        "{msgs}?limit=1&cursor={}",
        list["next_cursor"].as_str().unwrap()
    ));
    assert_eq!(list2["items"][0]["id"], second.as_str());
    assert!(list2["next_cursor"].is_null());
    let (code, meta) = api.get(&format!("{msgs}/{first}"));
    assert_eq!(code, 200);
    assert_eq!(
        (meta["duration_ms"].as_u64(), meta["folder"].as_str()),
        (Some(400), Some("INBOX"))
    );
    assert_eq!(meta["caller_uri"], "sip:5551234@example.net");

    // Audio: byte-exact, then ranges.
    let wav = v
        .mailbox_dir("1001", DOMAIN)
        .join("INBOX")
        .join(format!("{first}.wav"));
    let stored = fs::read(&wav).unwrap();
    let audio = format!("{msgs}/{first}/audio");
    let resp = api.raw(api.req(Method::GET, &audio));
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/wav");
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.bytes().unwrap().as_ref(), stored.as_slice());
    let resp = api.raw(api.req(Method::GET, &audio).header("Range", "bytes=40-139"));
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 40-139/{}", stored.len()).as_str()
    );
    assert_eq!(resp.bytes().unwrap().as_ref(), &stored[40..140]);
    let resp = api.raw(api.req(Method::GET, &audio).header("Range", "bytes=-10"));
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.bytes().unwrap().as_ref(), &stored[stored.len() - 10..]);
    let resp = api.raw(
        api.req(Method::GET, &audio)
            .header("Range", format!("bytes={}-", stored.len() + 10)),
    );
    assert_eq!(resp.status().as_u16(), 416);
    let err: Value = resp.json().unwrap();
    assert_eq!(err["error"], "range_not_satisfiable");

    // Heard, unheard, move to Old and back.
    let (code, m) = api.json(
        Method::PATCH,
        &format!("{msgs}/{first}"),
        json!({"heard": true}),
    );
    assert_eq!((code, m["heard"].as_bool()), (200, Some(true)), "{m}");
    let (_, m) = api.json(
        Method::PATCH,
        &format!("{msgs}/{first}"),
        json!({"heard": false}),
    );
    assert_eq!(m["heard"], false);
    let (_, m) = api.json(
        Method::PATCH,
        &format!("{msgs}/{first}"),
        json!({"folder": "Old", "heard": true}),
    );
    assert_eq!(
        (m["folder"].as_str(), m["heard"].as_bool()),
        (Some("Old"), Some(true)),
        "{m}"
    );
    assert!(v
        .mailbox_dir("1001", DOMAIN)
        .join("Old")
        .join(format!("{first}.wav"))
        .exists());
    let (_, old) = api.get(&format!("{msgs}?folder=Old"));
    assert_eq!(old["items"].as_array().unwrap().len(), 1);
    let (_, mb) = api.get(&mbx("1001"));
    assert_eq!(
        (mb["counts"]["new"].as_u64(), mb["counts"]["old"].as_u64()),
        (Some(1), Some(1))
    );
    // The audio moved with it and still downloads byte-exact.
    let resp = api.raw(api.req(Method::GET, &audio));
    assert_eq!(resp.bytes().unwrap().as_ref(), stored.as_slice());

    // Forward to 1002 (same domain); not to a missing mailbox.
    let (code, fwd) = api.json(
        Method::POST,
        &format!("{msgs}/{first}/forward"),
        json!({"to": "1002"}),
    );
    assert_eq!(code, 201, "{fwd}");
    assert_eq!(fwd["forwarded_by"], format!("1001@{DOMAIN}"));
    assert_eq!(
        (fwd["folder"].as_str(), fwd["heard"].as_bool()),
        (Some("INBOX"), Some(false))
    );
    let fwd_id = fwd["id"].as_str().unwrap();
    let resp = api.raw(api.req(
        Method::GET,
        &format!("{}/messages/{fwd_id}/audio", mbx("1002")),
    ));
    assert_eq!(resp.bytes().unwrap().as_ref(), stored.as_slice());
    let (code, err) = api.json(
        Method::POST,
        &format!("{msgs}/{first}/forward"),
        json!({"to": "7777"}),
    );
    assert_eq!(
        (code, err["error"].as_str()),
        (404, Some("mailbox_not_found")),
        "{err}"
    );

    // Delete.
    let (code, _) = api.delete(&format!("{msgs}/{first}"));
    assert_eq!(code, 204);
    let (code, _) = api.get(&format!("{msgs}/{first}"));
    assert_eq!(code, 404);
    let (code, _) = api.get(&audio);
    assert_eq!(code, 404);
    assert!(!v
        .mailbox_dir("1001", DOMAIN)
        .join("Old")
        .join(format!("{first}.wav"))
        .exists());
}

/// Makes a tone file with sox; `None` (after `skip_or_fail`) without sox.
fn sox_tone(dir: &Path, name: &str, hz: u32) -> Option<Vec<u8>> {
    let path = dir.join(name);
    let out = Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2"])
        .arg(&path)
        .args(["synth", "0.8", "sine", &hz.to_string(), "vol", "0.5"])
        .output();
    match out {
        Ok(o) if o.status.success() => Some(fs::read(&path).expect("sox output")),
        Ok(o) => {
            skip_or_fail(&format!(
                "sox cannot write {name}: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
            None
        }
        Err(e) => {
            skip_or_fail(&format!("sox is not installed ({e})"));
            None
        }
    }
}

/// Tones a caller hears from the deposit greeting of 1001.
fn heard_by_a_caller(v: &Vmail) -> Vec<u32> {
    let peer = RtpPeer::listen();
    let Some(run) = Sipp::uac("deposit_rtp_peer.xml", v.sip_addr())
        .mailbox("1001")
        .key("rtp_port", &peer.port().to_string())
        .hold_ms(2000)
        .run()
    else {
        return Vec::new();
    };
    run.assert_success("deposit_rtp_peer.xml");
    tone_sequence(&peer.finish().audio_pcm(), 8000)
        .iter()
        .map(|t| t.freq)
        .collect()
}

#[test]
fn greetings_uploaded_as_mp3_flac_and_ogg_are_played_to_callers() {
    let v = vmail_with(&["1001"]);
    let api = Api::new(&v);
    let dir = tempfile::tempdir().unwrap();
    let greeting = format!("{}/greetings/temp", mbx("1001"));
    for (name, hz) in [("g.mp3", 500), ("g.flac", 700), ("g.ogg", 900)] {
        let Some(bytes) = sox_tone(dir.path(), name, hz) else {
            return;
        };
        let (code, err) = api.send(
            api.req(Method::PUT, &greeting)
                .header("content-type", "application/octet-stream")
                .body(bytes),
        );
        assert_eq!(code, 204, "{name}: {err}");
        // Stored in the store's format: 8 kHz mono WAV, byte-exact on download.
        let path = v.mailbox_dir("1001", DOMAIN).join("greetings/temp.wav");
        let (spec, pcm) = read_wav(&path);
        assert_eq!((spec.sample_rate, spec.channels), (8000, 1), "{name}");
        assert!(
            (6000..=7000).contains(&pcm.len()),
            "{name}: {} samples",
            pcm.len()
        );
        let resp = api.raw(api.req(Method::GET, &greeting));
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "audio/wav");
        assert_eq!(
            resp.bytes().unwrap().as_ref(),
            fs::read(&path).unwrap().as_slice()
        );
        let heard = heard_by_a_caller(&v);
        assert!(
            heard.contains(&hz),
            "{name}: heard {heard:?}, wanted {hz} Hz"
        );
    }
    let (code, _) = api.delete(&greeting);
    assert_eq!(code, 204);
    let (code, err) = api.get(&greeting);
    assert_eq!(
        (code, err["error"].as_str()),
        (404, Some("greeting_not_found"))
    );
    let heard = heard_by_a_caller(&v);
    assert!(
        !heard.contains(&900),
        "deleted greeting still played: {heard:?}"
    );
}

/// 200 API requests (reads, moves of the new messages, mailbox creations)
/// from 8 threads while sipp leaves 200 messages (50 at a time): every
/// message and every mailbox is there afterwards, and no request failed.
#[test]
fn api_requests_during_deposits_lose_nothing() {
    const DEPOSITS: usize = 200;
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    let v = Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(|ext| {
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1357"}]);
            ext["api_tokens"] = json!([TOKEN]);
            ext["max_messages"] = json!(1000);
        })
        .start();
    let api = Api::new(&v);
    let tone = vmail::media::tone(400.0, 100, 8000, 8000);
    store(&v)
        .store_greeting(
            &MailboxId::new("1001", DOMAIN).unwrap(),
            vmail::store::GreetingKind::Temporary,
            &tone,
            8000,
        )
        .unwrap();
    let Some(sipp) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox("1001")
        .hold_ms(3000)
        .arg("-m")
        .arg(DEPOSITS.to_string())
        // At most 50 at once: the test's RTP port range is small.
        .arg("-l")
        .arg("50")
        .arg("-r")
        .arg("40")
        .timeout_s(90)
        .spawn()
    else {
        return;
    };
    let base = api.base.clone();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let base = base.clone();
            std::thread::spawn(move || {
                let api = Api {
                    base,
                    client: Client::builder()
                        .timeout(Duration::from_secs(20))
                        .build()
                        .unwrap(),
                };
                let msgs = format!("{}/messages", mbx("1001"));
                let mut codes = Vec::new();
                for i in 0..PER_THREAD {
                    let (code, body) = match i % 5 {
                        0 => api.json(
                            Method::POST,
                            &format!("/api/v1/domains/{DOMAIN}/mailboxes"),
                            json!({"user": format!("c{t}x{i}")}),
                        ),
                        1 => api.get(&format!("{msgs}?folder=INBOX")),
                        2 => {
                            let (_, list) = api.get(&format!("{msgs}?folder=INBOX&limit=3"));
                            match list["items"].as_array().and_then(|a| a.last()) {
                                Some(m) => {
                                    let id = m["id"].as_str().unwrap_or("x");
                                    let (c, b) = api.json(
                                        Method::PATCH,
                                        &format!("{msgs}/{id}"),
                                        json!({"folder": "Old", "heard": true}),
                                    );
                                    // Another thread may have moved it first.
                                    (if c == 404 { 200 } else { c }, b)
                                }
                                None => (200, Value::Null),
                            }
                        }
                        3 => api.get(&mbx("1001")),
                        _ => api.get("/api/v1/status"),
                    };
                    codes.push((i, code, body));
                }
                codes
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.extend(h.join().expect("API thread"));
    }
    let run = sipp.wait();
    run.assert_success("deposit.xml ×200");
    assert_eq!(results.len(), THREADS * PER_THREAD);
    for (i, code, body) in &results {
        let want = if i % 5 == 0 { 201 } else { 200 };
        assert_eq!(*code, want, "request {i}: {body}");
    }
    let total = wait_for(Duration::from_secs(20), "all messages stored", || {
        let (_, mb) = api.get(&mbx("1001"));
        let n = mb["counts"]["new"].as_u64()? + mb["counts"]["old"].as_u64()?;
        (n as usize >= DEPOSITS).then_some(n)
    });
    assert_eq!(total as usize, DEPOSITS);
    let mut ids = BTreeSet::new();
    for folder in ["INBOX", "Old"] {
        let (_, list) = api.get(&format!(
            "{}/messages?folder={folder}&limit=1000",
            mbx("1001")
        ));
        for m in list["items"].as_array().unwrap() {
            ids.insert(m["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), DEPOSITS);
    let (_, list) = api.get(&format!("/api/v1/domains/{DOMAIN}/mailboxes?limit=1000"));
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1 + THREADS * PER_THREAD / 5,
        "{list}"
    );
    let (_, status) = api.get("/api/v1/status");
    assert_eq!(status["calls_in_progress"]["deposit"], 0, "{status}");
}

/// Every route the server answers is in the OpenAPI description, and every
/// operation the description lists is routed.
#[test]
fn openapi_describes_every_route() {
    let v = vmail_with(&["1001"]);
    let api = Api::new(&v);
    let (code, doc) = api.get("/api/v1/openapi.json");
    assert_eq!(code, 200);
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "{doc}"
    );
    let m = "/api/v1/domains/{domain}/mailboxes";
    let expected: Vec<(&str, String)> = vec![
        ("get", m.to_owned()),
        ("post", m.to_owned()),
        ("get", format!("{m}/{{user}}")),
        ("patch", format!("{m}/{{user}}")),
        ("delete", format!("{m}/{{user}}")),
        ("put", format!("{m}/{{user}}/pin")),
        ("delete", format!("{m}/{{user}}/lockout")),
        ("get", format!("{m}/{{user}}/messages")),
        ("get", format!("{m}/{{user}}/messages/{{id}}")),
        ("patch", format!("{m}/{{user}}/messages/{{id}}")),
        ("delete", format!("{m}/{{user}}/messages/{{id}}")),
        ("get", format!("{m}/{{user}}/messages/{{id}}/audio")),
        ("post", format!("{m}/{{user}}/messages/{{id}}/forward")),
        ("get", format!("{m}/{{user}}/greetings/{{kind}}")),
        ("put", format!("{m}/{{user}}/greetings/{{kind}}")),
        ("delete", format!("{m}/{{user}}/greetings/{{kind}}")),
        ("get", "/api/v1/config".to_owned()),
        ("post", "/api/v1/config/validate".to_owned()),
        ("post", "/api/v1/config/reload".to_owned()),
        ("get", "/api/v1/route/{domain}".to_owned()),
        ("get", "/api/v1/status".to_owned()),
        ("get", "/api/v1/notifications".to_owned()),
        ("get", "/api/v1/openapi.json".to_owned()),
        ("get", "/api/v1/sites/{domain}/{user}/messages".to_owned()),
        ("get", "/api/v1/sites/{domain}/{user}/counts".to_owned()),
        ("post", "/api/v1/sites/changed".to_owned()),
        ("get", "/healthz".to_owned()),
        ("get", "/readyz".to_owned()),
        ("get", "/metrics".to_owned()),
    ];
    let mut listed = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if item.get(method).is_some() {
                listed.insert((method.to_owned(), path.clone()));
            }
        }
    }
    let wanted: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.clone()))
        .collect();
    assert_eq!(listed, wanted, "the description and the routes differ");
    // Each listed operation reaches a handler (not the no-route fallback,
    // not 405).
    for (method, path) in &listed {
        let target = path
            .replace("{domain}", DOMAIN)
            .replace("{user}", "1001")
            .replace("{id}", "20240101T000000.000Z-x-abcdef")
            .replace("{kind}", "busy");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (code, body) = api.send(
            api.req(method.clone(), &target)
                .header("content-type", "application/json")
                .body("{}"),
        );
        assert_ne!(code, 405, "{method} {target}: {body}");
        assert!(
            !(code == 404 && body["error"] == "not_found"),
            "{method} {target} is not routed: {body}"
        );
    }
    // Every mailbox route lists its 503 `not_active` answer (a passive
    // instance), with `Retry-After`.
    for (method, path) in listed.iter().filter(|(_, p)| p.starts_with(m)) {
        let answer = &doc["paths"][path][method]["responses"]["503"];
        assert!(
            answer["description"]
                .as_str()
                .is_some_and(|d| d.contains("not_active")),
            "{method} {path}: {answer}"
        );
        assert!(
            answer["headers"].get("Retry-After").is_some(),
            "{method} {path}: {answer}"
        );
    }
    // Health routes are open in the description too.
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        json!([{}]),
        "{doc}"
    );
}

/// `/readyz` answers 503 with the reason while the store cannot be written.
#[test]
fn readyz_reports_an_unwritable_store() {
    let v = vmail_with(&["1001"]);
    let api = Api::new(&v);
    let url = format!("{}/readyz", api.base);
    assert_eq!(api.raw(api.client.get(&url)).status().as_u16(), 200);
    let root = v.store();
    let away = v.siteshare.path().join("vmail.away");
    fs::rename(&root, &away).unwrap();
    fs::write(&root, "not a directory").unwrap();
    let resp = api.raw(api.client.get(&url));
    let status = resp.status().as_u16();
    let body: Value = resp.json().unwrap_or(Value::Null);
    fs::remove_file(&root).unwrap();
    fs::rename(&away, &root).unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("store_not_writable")),
        "{body}"
    );
    assert_eq!(api.raw(api.client.get(&url)).status().as_u16(), 200);
    assert_eq!(
        api.raw(api.client.get(format!("{}/healthz", api.base)))
            .status()
            .as_u16(),
        200
    );
}

/// The schemathesis executable: `VMAIL_SCHEMATHESIS`, else next to
/// `VMAIL_PYTHON` (scripts/test.sh installs it into .venv).
fn schemathesis_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VMAIL_SCHEMATHESIS") {
        return Some(PathBuf::from(p));
    }
    let py = PathBuf::from(std::env::var_os("VMAIL_PYTHON")?);
    let bin = py.parent()?.join("schemathesis");
    bin.is_file().then_some(bin)
}

/// schemathesis generates requests from the description (bounded number
/// of examples per operation): no 5xx, no answer that contradicts the
/// description, no schema-violating request accepted, no deleted resource
/// still served.
#[test]
fn schemathesis_finds_no_server_error_or_schema_violation() {
    let Some(bin) = schemathesis_bin() else {
        skip_or_fail("schemathesis (run scripts/test.sh or set VMAIL_SCHEMATHESIS)");
        return;
    };
    let v = vmail_with(&["1001", "1002"]);
    let api = Api::new(&v);
    put_message(&v, "1001", 300);
    let (code, doc) = api.get("/api/v1/openapi.json");
    assert_eq!(code, 200);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.json");
    fs::write(&spec, doc.to_string()).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("--no-color")
        .arg("run")
        .arg(&spec)
        .arg("--url")
        .arg(&api.base)
        .arg("--header")
        .arg(format!("Authorization: Bearer {TOKEN}"))
        // Every check but positive_data_acceptance: what makes a valid
        // greeting (audio) or a new PIN (no 1234, no 1111) is beyond a
        // schema, so schema-valid data may rightly get 400/415.
        .arg("--checks")
        .arg("all")
        .arg("--exclude-checks")
        .arg("positive_data_acceptance")
        .arg("--max-examples")
        .arg("20")
        .arg("--request-timeout")
        .arg("10")
        .arg("--generation-database")
        .arg("none")
        .current_dir(dir.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .env("HOME", dir.path());
    let out = run_bounded(cmd, Duration::from_secs(240)).expect("run schemathesis");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    // The run reached the server.
    let metrics = api
        .raw(api.client.get(format!("{}/metrics", api.base)))
        .text()
        .unwrap();
    assert!(metrics.contains("vmail_api_requests_total"), "{metrics}");
}

/// A subscriber plays a message by phone while the API deletes it: the
/// call plays the whole message (its audio was read before it played), the
/// message is gone afterwards, and vmail goes on serving.
#[test]
fn api_delete_while_the_phone_plays_the_message_is_safe() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let v = vmail_with(&["1001"]);
    let api = Api::new(&v);
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let info = RecordingInfo {
        caller_uri: "sip:5551234@example.net".into(),
        caller_name: None,
        called_uri: format!("sip:1001@{DOMAIN}"),
        cause: "unavailable".into(),
        codec: "PCMA".into(),
        site: "site1".into(),
        instance: "vmail1".into(),
        epoch: 0,
        sample_rate: 8000,
    };
    let mut w = store(&v)
        .begin_recording(&id, info, SystemTime::now())
        .unwrap();
    w.append(&vmail::media::tone(500.0, 4000, 8000, 8000))
        .unwrap();
    let msg = w.finish().unwrap().id;
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
        "16.0".into(),
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
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let deleted = std::thread::scope(|scope| {
        let deleter = scope.spawn(|| {
            // Once the menu has asked to play the message (its audio is read
            // at once), delete it while the envelope is still being spoken.
            wait_for(Duration::from_secs(30), "the message played", || {
                v.log()
                    .lines()
                    .any(|l| l.contains("menu action") && l.contains(&msg))
                    .then_some(())
            });
            std::thread::sleep(Duration::from_millis(800));
            let (_, status) = api.get("/api/v1/status");
            assert_eq!(status["calls_in_progress"]["retrieval"], 1, "{status}");
            api.delete(&format!("{}/messages/{msg}", mbx("1001"))).0
        });
        let run = pjsua("deposit.py", &argv).expect("python present");
        run.assert_success("deposit.py to the access number");
        deleter.join().expect("deleter")
    });
    assert_eq!(deleted, 204);
    let heard = read_wav(&rec).1;
    let tone = tone_sequence(&heard, 8000)
        .into_iter()
        .find(|t| t.freq == 500)
        .unwrap_or_else(|| panic!("the message was not played\n{}", v.log()));
    assert!(tone.duration_ms >= 3500, "message cut short: {tone:?}");
    let (code, _) = api.get(&format!("{}/messages/{msg}", mbx("1001")));
    assert_eq!(code, 404);
    let (code, body) = api.get(&mbx("1001"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["counts"],
        json!({"new": 0, "old": 0, "urgent_new": 0, "urgent_old": 0})
    );
    assert!(!v.log().contains("panicked"), "{}", v.log());
}

/// A client that never finishes its headers is disconnected, and past 256
/// open connections new ones are closed at once; the port serves again
/// when they go.
#[test]
fn slow_or_too_many_http_clients_are_cut_off() {
    let v = vmail_with(&["1001"]);
    let addr = v.http_addr();
    let mut slow = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 512];
    // Closed (possibly with a 408) within the header timeout, not held.
    let n = match slow.read(&mut buf) {
        Ok(n) => n,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("a client with unfinished headers is still connected after 30 s")
        }
        Err(_) => 0, // reset: closed
    };
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    if n > 0 {
        assert_eq!(slow.read(&mut buf).unwrap_or(0), 0, "still open");
    }

    let idle: Vec<TcpStream> = (0..256)
        .map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap())
        .collect();
    // Let the accept loop take them all.
    wait_for(Duration::from_secs(10), "the limit reached", || {
        let mut extra = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut b = [0u8; 64];
        (extra.read(&mut b).unwrap_or(0) == 0).then_some(())
    });
    drop(idle);
    let api = Api::new(&v);
    wait_for(Duration::from_secs(10), "served again", || {
        let (code, _) = api.get("/api/v1/status");
        (code == 200).then_some(())
    });
}
