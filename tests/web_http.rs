//! The web inbox of the real `vmail` binary on 127.0.0.1, over plain HTTP
//! (the browser tests drive the same pages in Chromium): login answers,
//! the lockout shared with the phone, CSRF, other mailboxes' ids, audio
//! ranges, session expiry, headers, static files, a passive instance.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::{Duration, SystemTime};

use common::*;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::redirect::Policy;
use serde_json::{json, Value};
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost, RecordingInfo};

const PIN: &str = "1357";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; media-src 'self' blob:; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

fn vmail_with(tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    let v = Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = json!([
                {"user": "1001", "domain": DOMAIN, "pin": PIN},
                {"user": "1002", "domain": DOMAIN, "pin": PIN},
            ]);
            tweak(ext);
        })
        .start();
    // Active (and the demo mailboxes made) once the login page answers 200.
    let b = Browser::new(v.http_addr().to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while b.get("/login").status().as_u16() != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never active\n{}",
            v.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let id = mb("1002");
    while store(&v).mailbox(&id).ok().flatten().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no demo mailboxes\n{}",
            v.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    v
}

fn store(v: &Vmail) -> FsStore {
    FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("open store")
}

fn mb(user: &str) -> MailboxId {
    MailboxId::new(user, DOMAIN).expect("mailbox id")
}

/// A message of `ms` milliseconds in `user`'s INBOX; its id.
fn deposit(v: &Vmail, user: &str, ms: u32) -> String {
    let info = RecordingInfo {
        caller_uri: "sip:5551234@example.net".into(),
        caller_name: Some("Caller <b>".into()),
        called_uri: format!("sip:{user}@{DOMAIN}"),
        cause: "unavailable".into(),
        codec: "PCMU".into(),
        site: "site1".into(),
        instance: "vmail1".into(),
        epoch: 0,
        sample_rate: 8000,
    };
    let mut w = store(v)
        .begin_recording(&mb(user), info, SystemTime::now())
        .expect("begin recording");
    w.append(&vmail::media::tone(600.0, ms, 8000, 8000))
        .expect("append");
    w.finish().expect("finish").id
}

/// A browser without JavaScript: cookies kept by hand, no redirects
/// followed.
struct Browser {
    base: String,
    client: Client,
    cookies: std::cell::RefCell<BTreeMap<String, String>>,
}

impl Browser {
    fn new(addr: String) -> Browser {
        Browser {
            base: format!("http://{addr}"),
            client: Client::builder()
                .redirect(Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
            cookies: Default::default(),
        }
    }

    fn with_cookies(&self, r: RequestBuilder) -> RequestBuilder {
        let c: Vec<String> = self
            .cookies
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if c.is_empty() {
            r
        } else {
            r.header("Cookie", c.join("; "))
        }
    }

    fn keep(&self, resp: &Response) {
        for v in resp.headers().get_all("set-cookie") {
            let s = v.to_str().expect("cookie text");
            let (kv, attrs) = s.split_once(';').unwrap_or((s, ""));
            let (k, val) = kv.split_once('=').expect("name=value");
            if attrs.contains("Max-Age=0") {
                self.cookies.borrow_mut().remove(k);
            } else {
                self.cookies.borrow_mut().insert(k.into(), val.into());
            }
        }
    }

    fn send(&self, r: RequestBuilder) -> Response {
        let resp = self.with_cookies(r).send().expect("HTTP request");
        self.keep(&resp);
        resp
    }

    fn get(&self, path: &str) -> Response {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    fn get_range(&self, path: &str, range: &str) -> Response {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .header("Range", range),
        )
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.send(self.client.post(format!("{}{path}", self.base)).form(form))
    }

    fn post_multipart(&self, path: &str, csrf: &str, file: &[u8]) -> Response {
        let boundary = "vmailTestBoundary7MA4YWxk";
        let mut body = Vec::new();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
                 --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"g.wav\"\r\n\
                 Content-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header(
                    "Content-Type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body),
        )
    }

    /// The value of the first hidden `csrf` field of `path`'s page.
    fn csrf_of(&self, path: &str) -> String {
        let page = self.get(path).text().expect("page");
        field_value(&page, "name=\"csrf\" value=\"").expect("a csrf field")
    }

    /// Logs in (a fresh login form first); the answer.
    fn login(&self, mailbox: &str, pin: &str) -> Response {
        let csrf = self.csrf_of("/login");
        self.post(
            "/login",
            &[("mailbox", mailbox), ("pin", pin), ("csrf", &csrf)],
        )
    }

    fn logged_in(addr: String, user: &str) -> Browser {
        let b = Browser::new(addr);
        let r = b.login(&format!("{user}@{DOMAIN}"), PIN);
        assert_eq!(r.status().as_u16(), 303, "login of {user}");
        b
    }
}

fn field_value(page: &str, after: &str) -> Option<String> {
    let start = page.find(after)? + after.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_owned())
}

fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The status and the page with `typed` (the echoed address) blanked.
fn answer(r: Response, typed: &str) -> (u16, String) {
    let status = r.status().as_u16();
    let page = r.text().expect("page");
    (
        status,
        page.replace(&format!("value=\"{typed}\""), "value=\"\""),
    )
}

fn wav(ms: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(&mut out, spec).expect("wav writer");
    for s in vmail::media::tone(440.0, ms, 8000, 16000) {
        w.write_sample(s).expect("sample");
    }
    w.finalize().expect("finalize");
    out.into_inner()
}

#[test]
fn login_answers_alike_for_wrong_pins_unknown_mailboxes_and_bad_addresses() {
    let v = vmail_with(|_| {});
    let b = Browser::new(v.http_addr().to_string());
    // Not logged in: / and /inbox go to the login page.
    assert_eq!(location(&b.get("/")), "/login");
    assert_eq!(location(&b.get("/inbox")), "/login");
    let page = b.get("/login");
    assert_eq!(page.status().as_u16(), 200);
    let cookie = header(&page, "set-cookie");
    assert!(
        cookie.starts_with("vmail_csrf=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let page = page.text().unwrap();
    for needle in [
        "<form id=\"login-form\" method=\"post\" action=\"/login\">",
        "id=\"mailbox\" name=\"mailbox\"",
        "id=\"pin\" name=\"pin\" type=\"password\"",
        "id=\"login-submit\" type=\"submit\"",
        "<html lang=\"en\">",
    ] {
        assert!(page.contains(needle), "{needle} in {page}");
    }
    // A login POST without the form's token: 403.
    let r = b.post(
        "/login",
        &[("mailbox", &format!("1001@{DOMAIN}")), ("pin", PIN)],
    );
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().unwrap().contains("id=\"csrf-error\""));

    let wrong_pin = format!("1001@{DOMAIN}");
    let unknown = format!("4711@{DOMAIN}");
    let (s1, p1) = answer(b.login(&wrong_pin, "9999"), &wrong_pin);
    let (s2, p2) = answer(b.login(&unknown, "9999"), &unknown);
    let (s3, p3) = answer(b.login("not an address", "9999"), "not an address");
    let (s4, p4) = answer(b.login("1001@other.example", PIN), "1001@other.example");
    assert_eq!((s1, s2, s3, s4), (401, 401, 401, 401));
    assert!(
        p1.contains("<p id=\"login-error\" class=\"error\" role=\"alert\">"),
        "{p1}"
    );
    assert_eq!(p1, p2, "wrong PIN and unknown mailbox answer alike");
    assert_eq!(p1, p3, "a bad address answers alike");
    assert_eq!(p1, p4, "a domain of no group here answers alike");
    // The unknown number was counted like a real one (the phone's table).
    let st = store(&v);
    assert_eq!(st.login_state(&mb("1001")).unwrap().failures, 1);

    // The right PIN: the session cookie and the inbox.
    let r = b.login(&wrong_pin, PIN);
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/inbox");
    let cookie = header(&r, "set-cookie");
    assert!(cookie.starts_with("vmail_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "no TLS here: {cookie}");
    let sid = cookie["vmail_session=".len()..].split(';').next().unwrap();
    assert_eq!(sid.len(), 64, "256 random bits in hex");
    assert_eq!(st.login_state(&mb("1001")).unwrap().failures, 0);
    assert_eq!(location(&b.get("/")), "/inbox");
    assert_eq!(location(&b.get("/login")), "/inbox");
    let inbox = b.get("/inbox").text().unwrap();
    assert!(inbox.contains("id=\"inbox-title\""), "{inbox}");
    assert!(inbox.contains("id=\"empty\""));
    assert!(inbox.contains("<span id=\"count-new\" class=\"count\">0</span>"));

    // Log out: without the token refused, with it the session is gone.
    let r = b.post("/logout", &[]);
    assert_eq!(r.status().as_u16(), 403);
    let csrf = b.csrf_of("/inbox");
    let r = b.post("/logout", &[("csrf", &csrf)]);
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/login".into()));
    assert_eq!(location(&b.get("/inbox")), "/login");
    // The old id is dead even when sent again.
    b.cookies
        .borrow_mut()
        .insert("vmail_session".into(), sid.into());
    assert_eq!(location(&b.get("/inbox")), "/login");
}

#[test]
fn five_wrong_web_pins_lock_the_mailbox_for_the_phone_and_back() {
    let v = vmail_with(|_| {});
    let b = Browser::new(v.http_addr().to_string());
    let addr = format!("1001@{DOMAIN}");
    let mut pages = Vec::new();
    for _ in 0..5 {
        pages.push(answer(b.login(&addr, "9999"), &addr));
    }
    let now = SystemTime::now();
    let st = store(&v);
    assert!(
        st.login_state(&mb("1001")).unwrap().is_locked(now),
        "the store (the phone's lockout state) shows the mailbox locked"
    );
    // The right PIN now: the same refusal as a wrong one.
    let locked = answer(b.login(&addr, PIN), &addr);
    assert_eq!(locked, pages[0]);
    assert!(pages.iter().all(|p| *p == pages[0]));

    // Failures counted by the phone lock the web login too.
    let other = mb("1002");
    for _ in 0..5 {
        st.reserve_login_attempt(&other, SystemTime::now(), 5, 300)
            .unwrap();
    }
    let addr2 = format!("1002@{DOMAIN}");
    let (status, page) = answer(b.login(&addr2, PIN), &addr2);
    assert_eq!((status, page), locked);
}

#[test]
fn messages_play_change_and_stay_in_their_mailbox() {
    let v = vmail_with(|_| {});
    let msg = deposit(&v, "1001", 2000);
    let foreign = deposit(&v, "1002", 1000);
    let b = Browser::logged_in(v.http_addr().to_string(), "1001");
    let st = store(&v);

    let page = b.get("/inbox").text().unwrap();
    assert!(
        page.contains(&format!("data-id=\"{msg}\" data-duration-ms=\"2000\"")),
        "{page}"
    );
    assert!(page.contains(&format!("src=\"/messages/{msg}/audio\"")));
    assert!(
        page.contains("Caller &lt;b&gt; &lt;5551234&gt;"),
        "escaped caller: {page}"
    );
    assert!(page.contains("<span class=\"duration\" aria-label=\"Length\">0:02</span>"));
    assert!(!page.contains(&foreign));
    let csrf = field_value(&page, "name=\"csrf\" value=\"").unwrap();

    // Audio: whole, a range, a download.
    let r = b.get(&format!("/messages/{msg}/audio"));
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "content-type"), "audio/wav");
    assert_eq!(r.bytes().unwrap().len(), 44 + 2000 * 16);
    let r = b.get_range(&format!("/messages/{msg}/audio"), "bytes=0-99");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes 0-99/{}", 44 + 2000 * 16)
    );
    assert_eq!(&r.bytes().unwrap()[..4], b"RIFF");
    let r = b.get(&format!("/messages/{msg}/audio?download=1"));
    assert!(header(&r, "content-disposition").starts_with("attachment"));

    // Another mailbox's id, an unknown id, a malformed one: 404, never 403.
    for id in [foreign.as_str(), "20260101T000000Z-nosuch", "..%2F..%2Fetc"] {
        assert_eq!(
            b.get(&format!("/messages/{id}/audio")).status().as_u16(),
            404,
            "{id}"
        );
        let r = b.post(&format!("/messages/{id}/delete"), &[("csrf", &csrf)]);
        assert_eq!(r.status().as_u16(), 404, "{id}");
        let r = b.post(&format!("/messages/{id}/heard"), &[("csrf", &csrf)]);
        assert_eq!(r.status().as_u16(), 404, "{id}");
    }
    assert!(st.message(&mb("1002"), &foreign).unwrap().is_some());

    // A change without the token: 403, nothing changed.
    let r = b.post(&format!("/messages/{msg}/heard"), &[("heard", "true")]);
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().unwrap().contains("id=\"csrf-error\""));
    let r = b.post(
        &format!("/messages/{msg}/heard"),
        &[("heard", "true"), ("csrf", "0".repeat(64).as_str())],
    );
    assert_eq!(r.status().as_u16(), 403);
    assert!(!st.message(&mb("1001"), &msg).unwrap().unwrap().heard);

    // Heard (like the phone: to Old), from a script: 204.
    let r = b.send(
        b.client
            .post(format!("{}/messages/{msg}/heard", b.base))
            .header("X-CSRF-Token", &csrf)
            .form(&[("heard", "true")]),
    );
    assert_eq!(r.status().as_u16(), 204);
    let m = st.message(&mb("1001"), &msg).unwrap().unwrap();
    assert!(m.heard);
    assert_eq!(m.folder, vmail::store::Folder::Old);
    // Move back with the form: PRG to the folder it came from.
    let r = b.post(
        &format!("/messages/{msg}/move"),
        &[("csrf", &csrf), ("folder", "INBOX"), ("from", "Old")],
    );
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/inbox?folder=Old&note=moved");
    assert_eq!(
        st.message(&mb("1001"), &msg).unwrap().unwrap().folder,
        vmail::store::Folder::Inbox
    );

    // Forward to 1002, and to a mailbox that does not exist.
    let r = b.post(
        &format!("/messages/{msg}/forward"),
        &[("csrf", &csrf), ("to", "1002"), ("from", "INBOX")],
    );
    assert_eq!(location(&r), "/inbox?folder=INBOX&note=forwarded");
    assert_eq!(st.counts(&mb("1002")).unwrap().new, 2);
    let r = b.post(
        &format!("/messages/{msg}/forward"),
        &[("csrf", &csrf), ("to", "4711"), ("from", "INBOX")],
    );
    assert_eq!(location(&r), "/inbox?folder=INBOX&note=forward-failed");
    let page = b
        .get("/inbox?folder=INBOX&note=forward-failed")
        .text()
        .unwrap();
    assert!(page.contains("role=\"alert\""));

    // Delete.
    let r = b.post(&format!("/messages/{msg}/delete"), &[("csrf", &csrf)]);
    assert_eq!(r.status().as_u16(), 303);
    assert!(st.message(&mb("1001"), &msg).unwrap().is_none());
    let page = b.get("/inbox").text().unwrap();
    assert!(page.contains("id=\"empty\""));
}

#[test]
fn greetings_and_the_pin_change() {
    let v = vmail_with(|ext| {
        ext["language"] = json!("ru");
    });
    let b = Browser::logged_in(v.http_addr().to_string(), "1001");
    let st = store(&v);
    let page = b.get("/greetings").text().unwrap();
    assert!(page.contains("<html lang=\"ru\">"), "ext.language: {page}");
    for kind in ["unavail", "busy", "temp", "name"] {
        assert!(
            page.contains(&format!("<section id=\"greeting-{kind}\"")),
            "{kind}"
        );
        assert!(page.contains(&format!("data-kind=\"{kind}\"")), "{kind}");
    }
    let csrf = field_value(&page, "name=\"csrf\" value=\"").unwrap();
    // Without the token: 403 and nothing stored.
    let r = b.post_multipart("/greetings/unavail", "", &wav(500));
    assert_eq!(r.status().as_u16(), 403);
    assert!(st
        .greeting_path(&mb("1001"), GreetingKind::Unavailable)
        .unwrap()
        .is_none());
    // Not audio: refused with a note.
    let r = b.post_multipart("/greetings/unavail", &csrf, b"not audio at all");
    assert_eq!(location(&r), "/greetings?note=greeting-failed");
    // A 16 kHz WAV: stored as the store's 8 kHz WAV, playable.
    let r = b.post_multipart("/greetings/unavail", &csrf, &wav(500));
    assert_eq!(location(&r), "/greetings?note=greeting-saved");
    assert!(st
        .greeting_path(&mb("1001"), GreetingKind::Unavailable)
        .unwrap()
        .is_some());
    let r = b.get_range("/greetings/unavail/audio", "bytes=0-3");
    assert_eq!(r.status().as_u16(), 206);
    let page = b.get("/greetings").text().unwrap();
    assert!(page.contains("src=\"/greetings/unavail/audio\""));
    let r = b.post("/greetings/unavail/delete", &[("csrf", &csrf)]);
    assert_eq!(location(&r), "/greetings?note=greeting-deleted");
    assert!(st
        .greeting_path(&mb("1001"), GreetingKind::Unavailable)
        .unwrap()
        .is_none());
    assert_eq!(b.get("/greetings/nosuch/audio").status().as_u16(), 404);

    // The PIN: mismatch and the phone's rule refuse with 400.
    let r = b.post(
        "/pin",
        &[("csrf", &csrf), ("pin", "2468"), ("pin2", "2469")],
    );
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().unwrap().contains("id=\"pin-error\""));
    let r = b.post(
        "/pin",
        &[("csrf", &csrf), ("pin", "1234"), ("pin2", "1234")],
    );
    assert_eq!(r.status().as_u16(), 400);
    let r = b.post("/pin", &[("pin", "2468"), ("pin2", "2468")]);
    assert_eq!(r.status().as_u16(), 403);
    let r = b.post(
        "/pin",
        &[("csrf", &csrf), ("pin", "2468"), ("pin2", "2468")],
    );
    assert_eq!(location(&r), "/settings?note=pin-changed");
    assert!(b
        .get("/settings?note=pin-changed")
        .text()
        .unwrap()
        .contains("id=\"pin-changed\""));
    assert_eq!(st.check_pin(&mb("1001"), "2468").unwrap(), Some(true));
    let fresh = Browser::new(v.http_addr().to_string());
    assert_eq!(
        fresh
            .login(&format!("1001@{DOMAIN}"), "2468")
            .status()
            .as_u16(),
        303
    );
}

#[test]
fn headers_static_files_and_the_api_beside_the_pages() {
    let v = vmail_with(|_| {});
    let b = Browser::new(v.http_addr().to_string());
    for path in ["/login", "/static/app.js", "/static/app.css"] {
        let r = b.get(path);
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(header(&r, "content-security-policy"), CSP, "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer", "{path}");
    }
    assert_eq!(header(&b.get("/login"), "cache-control"), "no-store");
    let r = b.get("/static/app.js");
    assert!(header(&r, "content-type").starts_with("text/javascript"));
    let js = r.text().unwrap();
    assert!(js.contains("'ended'") && js.contains("X-CSRF-Token"));
    let r = b.get("/static/app.css");
    assert!(header(&r, "content-type").starts_with("text/css"));
    // No inline script or style in a page.
    let page = b.get("/login").text().unwrap();
    assert!(!page.contains("<script>") && !page.contains("<style") && !page.contains("style="));
    // The API and health routes are as before; unknown API paths stay JSON.
    assert_eq!(b.get("/healthz").status().as_u16(), 200);
    let r = b.get("/api/v1/nosuch");
    assert_eq!(r.status().as_u16(), 401);
    assert!(header(&r, "content-type").starts_with("application/json"));
}

#[test]
fn logins_are_limited_per_source_like_access_calls() {
    let v = vmail_with(|ext| {
        ext["access_rate_burst"] = json!(2);
        ext["access_rate_per_minute"] = json!(1);
    });
    let b = Browser::new(v.http_addr().to_string());
    let addr = format!("1001@{DOMAIN}");
    let first = answer(b.login(&addr, "9999"), &addr);
    assert_eq!(first.0, 401);
    assert_eq!(b.login(&addr, "9999").status().as_u16(), 401);
    let r = b.login(&addr, PIN);
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = header(&r, "retry-after").parse().expect("Retry-After");
    assert!(retry >= 1);
    let (_, page) = answer(r, &addr);
    assert_eq!(page, first.1, "the same page text");
    // Not counted against the mailbox.
    assert_eq!(store(&v).login_state(&mb("1001")).unwrap().failures, 2);
}

#[test]
fn an_idle_session_expires() {
    let v = vmail_with(|ext| {
        ext["web_session_seconds"] = json!(10);
    });
    let b = Browser::logged_in(v.http_addr().to_string(), "1001");
    assert_eq!(b.get("/inbox").status().as_u16(), 200);
    // Used 7 s later, twice: still alive (idle time, not age).
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(b.get("/inbox").status().as_u16(), 200);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(b.get("/inbox").status().as_u16(), 200);
    // Then more than 10 s without use.
    std::thread::sleep(Duration::from_secs(12));
    let r = b.get("/inbox");
    assert_eq!((r.status().as_u16(), location(&r)), (303, "/login".into()));
}

#[test]
fn a_passive_instance_answers_503_naming_the_active_one() {
    let site = Site::new(&[(1, &[DOMAIN], 2)], |ext| {
        ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": PIN}]);
    });
    let active = site.start("g1n1");
    active.wait_role("active", Duration::from_secs(20));
    let passive = site.start("g1n2");
    passive.wait_role("passive", Duration::from_secs(20));
    // A passive learns of the active one at its next look at the group.
    let b = Browser::new(passive.http_addr().to_string());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let r = b.get("/login");
        assert_eq!(r.status().as_u16(), 503);
        assert!(!header(&r, "retry-after").is_empty());
        assert_eq!(header(&r, "content-security-policy"), CSP);
        let page = r.text().unwrap();
        if page.contains("g1n1") || std::time::Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(page.contains("id=\"passive\""), "{page}");
    assert!(
        page.contains(&format!("http://{}/", active.http_addr())),
        "names and links the active instance: {page}"
    );
    for path in ["/", "/inbox", "/greetings"] {
        assert_eq!(b.get(path).status().as_u16(), 503, "{path}");
    }
    let r = b.post("/login", &[("mailbox", "1001"), ("pin", PIN)]);
    assert_eq!(r.status().as_u16(), 503);
    // The active one serves the login page.
    let a = Browser::new(active.http_addr().to_string());
    assert_eq!(a.get("/login").status().as_u16(), 200);
}

const API_TOKEN: &str = "web-settings-test-token";

/// `GET` of the mailbox through the HTTP API.
fn api_mailbox(v: &Vmail, user: &str) -> Value {
    let r = Client::new()
        .get(format!(
            "http://{}/api/v1/domains/{DOMAIN}/mailboxes/{user}",
            v.http_addr()
        ))
        .bearer_auth(API_TOKEN)
        .timeout(Duration::from_secs(20))
        .send()
        .expect("API request");
    assert_eq!(r.status().as_u16(), 200);
    r.json().expect("API JSON")
}

/// The settings form's fields, each `(name, value)`.
fn settings_form<'a>(csrf: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![("csrf", csrf)];
    form.extend_from_slice(fields);
    form
}

#[test]
fn settings_changed_on_the_page_reach_the_store_and_the_api() {
    // Prompts in Russian (and English, always loaded): both offered.
    let v = vmail_with(|ext| {
        ext["api_tokens"] = json!([API_TOKEN]);
        ext["language"] = json!("ru");
    });
    let b = Browser::logged_in(v.http_addr().to_string(), "1001");
    let st = store(&v);
    let settings_of = |user: &str| st.mailbox(&mb(user)).unwrap().unwrap().settings;
    let before = settings_of("1001");

    let page = b.get("/settings").text().unwrap();
    assert!(page.contains("<html lang=\"ru\">"), "{page}");
    for id in [
        "display-name",
        "language",
        "timezone",
        "email",
        "attach",
        "delete-after-send",
    ] {
        assert!(
            page.contains(&format!("<label for=\"{id}\"")),
            "{id}: {page}"
        );
    }
    assert!(
        page.contains("<option value=\"en\">English</option>"),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"ru\">Русский</option>"),
        "{page}"
    );
    // No operator-only setting.
    assert!(!page.contains("max_messages") && !page.contains("name=\"operator\""));
    let csrf = field_value(&page, "name=\"csrf\" value=\"").unwrap();
    let good = [
        ("display_name", "Ann Example"),
        ("language", "en"),
        ("timezone", "Europe/Moscow"),
        ("email", "ann@example.com, Bob <bob@example.com>"),
        ("attach", "opus"),
        ("delete_after_send", "true"),
    ];

    // Without the token, or with a wrong one: 403, nothing changed.
    let r = b.post("/settings", &good);
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().unwrap().contains("id=\"csrf-error\""));
    let with_wrong = settings_form("0000", &good);
    assert_eq!(b.post("/settings", &with_wrong).status().as_u16(), 403);
    assert_eq!(settings_of("1001"), before);

    // Saved: PRG back to the page, in English at once.
    let r = b.post("/settings", &settings_form(&csrf, &good));
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(location(&r), "/settings?note=settings-saved");
    let saved = settings_of("1001");
    assert_eq!(saved.display_name.as_deref(), Some("Ann Example"));
    assert_eq!(saved.language.as_deref(), Some("en"));
    assert_eq!(saved.timezone.as_deref(), Some("Europe/Moscow"));
    assert_eq!(
        saved.email.as_deref(),
        Some("ann@example.com, Bob <bob@example.com>")
    );
    assert_eq!(saved.attach, Some(vmail::store::Attach::Opus));
    assert!(saved.delete_after_send);
    // Operator-only settings are untouched.
    assert_eq!(
        (
            saved.max_messages,
            saved.retention_old_days,
            &saved.operator
        ),
        (
            before.max_messages,
            before.retention_old_days,
            &before.operator
        )
    );
    let api = api_mailbox(&v, "1001");
    assert_eq!(api["display_name"], "Ann Example");
    assert_eq!(api["language"], "en");
    assert_eq!(api["timezone"], "Europe/Moscow");
    assert_eq!(api["email"], "ann@example.com, Bob <bob@example.com>");
    assert_eq!(api["attach"], "opus");
    assert_eq!(api["delete_after_send"], true);
    let page = b.get("/settings?note=settings-saved").text().unwrap();
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(page.contains(
        "id=\"settings-saved\" class=\"note\" role=\"status\">Your settings are saved.<"
    ));
    assert!(page.contains("<option value=\"en\" selected>"), "{page}");
    assert!(page.contains("value=\"Europe/Moscow\""));
    assert!(page.contains("<option value=\"opus\" selected>"));
    assert!(b
        .get("/inbox")
        .text()
        .unwrap()
        .contains("<html lang=\"en\">"));

    // Refused values: 400 with the reason, nothing changed (not even the
    // form's other fields), the form shown again as sent.
    let other = [
        ("display_name", "Bob Other"),
        ("language", "ru"),
        ("timezone", "Asia/Tokyo"),
        ("email", "bob@example.com"),
        ("attach", "none"),
    ];
    for (field, bad, says) in [
        ("timezone", "Mars/Olympus_Mons", "Unknown time zone. Use a name such as Europe/Moscow, UTC, or an offset such as +03:00: Mars/Olympus_Mons"),
        ("timezone", "../../etc/passwd", "Unknown time zone"),
        ("timezone", "+15:00", "Unknown time zone"),
        ("email", "not an address", "These are not e-mail addresses"),
        ("language", "xx", "This language is not one the prompts have"),
        ("attach", "mp3", "Choose what the e-mail carries"),
    ] {
        let mut fields: Vec<(&str, &str)> =
            other.iter().filter(|(k, _)| *k != field).copied().collect();
        fields.push((field, bad));
        let r = b.post("/settings", &settings_form(&csrf, &fields));
        assert_eq!(r.status().as_u16(), 400, "{field}={bad}");
        let page = r.text().unwrap();
        let alert = page
            .split("id=\"settings-error\" class=\"error\" role=\"alert\">")
            .nth(1)
            .unwrap_or_else(|| panic!("no alert for {field}={bad}: {page}"));
        let alert = alert.split('<').next().unwrap();
        assert!(alert.contains(says), "{field}={bad}: {alert}");
        assert!(page.contains("<html lang=\"en\">"));
        assert!(page.contains("value=\"Bob Other\""), "{page}");
        assert_eq!(settings_of("1001"), saved, "{field}={bad}");
    }

    // Russian, a fixed offset, no e-mail, the box unticked (a browser
    // leaves it out): the page is Russian at once.
    let r = b.post(
        "/settings",
        &settings_form(
            &csrf,
            &[
                ("display_name", ""),
                ("language", "ru"),
                ("timezone", "+03:00"),
                ("email", ""),
                ("attach", "none"),
            ],
        ),
    );
    assert_eq!(r.status().as_u16(), 303);
    let s = settings_of("1001");
    assert_eq!(s.display_name, None);
    assert_eq!(s.language.as_deref(), Some("ru"));
    assert_eq!(s.timezone.as_deref(), Some("+03:00"));
    assert_eq!(s.email, None);
    assert_eq!(s.attach, Some(vmail::store::Attach::None));
    assert!(!s.delete_after_send);
    let api = api_mailbox(&v, "1001");
    assert_eq!(api["timezone"], "+03:00");
    assert_eq!(api["attach"], "none");
    assert_eq!(api["email"], Value::Null);
    let page = b.get("/settings?note=settings-saved").text().unwrap();
    assert!(page.contains("<html lang=\"ru\">"), "{page}");
    assert!(page.contains("Настройки сохранены."));
    // Empty language and zone: the instance's defaults again.
    let r = b.post(
        "/settings",
        &settings_form(&csrf, &[("language", ""), ("timezone", "")]),
    );
    assert_eq!(r.status().as_u16(), 303);
    let s = settings_of("1001");
    assert_eq!((s.language, s.timezone), (None, None));
    // The other mailbox was never touched.
    assert_eq!(settings_of("1002"), before);
}

#[test]
fn a_folder_pages_fifty_newest_first_with_working_links() {
    let v = vmail_with(|_| {});
    let mut ids: Vec<String> = (0..60).map(|_| deposit(&v, "1001", 200)).collect();
    ids.sort();
    ids.reverse(); // newest first
    let b = Browser::logged_in(v.http_addr().to_string(), "1001");
    let shown = |page: &str| -> Vec<String> {
        page.split("data-id=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap().to_owned())
            .collect()
    };

    let first = b.get("/inbox?folder=INBOX").text().unwrap();
    assert_eq!(shown(&first), ids[..50], "page 1");
    // Counts are the folder's, not the page's.
    assert!(
        first.contains("id=\"count-new\" class=\"count\">60<"),
        "{first}"
    );
    assert!(first.contains("id=\"page-info\""));
    assert!(!first.contains("id=\"page-prev\""));
    let next = field_value(&first, "id=\"page-next\" rel=\"next\" href=\"")
        .expect("a next link")
        .replace("&amp;", "&");
    assert_eq!(next, "/inbox?folder=INBOX&page=2");

    let second = b.get(&next).text().unwrap();
    assert_eq!(shown(&second), ids[50..], "page 2");
    assert!(second.contains("id=\"count-new\" class=\"count\">60<"));
    assert!(!second.contains("id=\"page-next\""));
    let prev = field_value(&second, "id=\"page-prev\" rel=\"prev\" href=\"")
        .expect("a previous link")
        .replace("&amp;", "&");
    assert_eq!(shown(&b.get(&prev).text().unwrap()), ids[..50]);
    // Beyond the end: the last page; garbage: the first.
    assert_eq!(
        shown(&b.get("/inbox?folder=INBOX&page=9").text().unwrap()),
        ids[50..]
    );
    assert_eq!(
        shown(&b.get("/inbox?folder=INBOX&page=x").text().unwrap()),
        ids[..50]
    );

    // A change on page 2 comes back to page 2.
    let csrf = field_value(&second, "name=\"csrf\" value=\"").unwrap();
    let last = ids[59].clone();
    let r = b.post(
        &format!("/messages/{last}/delete"),
        &[("csrf", &csrf), ("from", "INBOX"), ("page", "2")],
    );
    assert_eq!(location(&r), "/inbox?folder=INBOX&page=2&note=deleted");
    let second = b.get("/inbox?folder=INBOX&page=2").text().unwrap();
    assert_eq!(shown(&second), ids[50..59]);
    assert!(second.contains("id=\"count-new\" class=\"count\">59<"));
}
