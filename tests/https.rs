//! The HTTP port over TLS (`ext.http_tls`) on the real `vmail` binary:
//! the API and the web inbox answer over HTTPS with a certificate of a
//! private CA made by openssl here, cookies are `Secure`, responses carry
//! HSTS, plain HTTP on the port gets no page, and the certificate is
//! replaced on SIGHUP (a broken one is refused, the one in use kept).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::*;
use reqwest::blocking::Client;
use reqwest::redirect::Policy;
use serde_json::json;

const PIN: &str = "1357";

/// vmail with `http_tls` on, the certificate and key of `ca` copied into
/// `dir` (so that a test can replace them), demo mailbox 1001.
fn vmail_https(ca: &Path, dir: &Path) -> Vmail {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    fs::copy(ca.join("cert.pem"), &cert).expect("copy certificate");
    fs::copy(ca.join("key.pem"), &key).expect("copy key");
    Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ready(Ready::HttpHealthz)
        .ready_timeout(Duration::from_secs(20))
        .ext(move |ext| {
            ext["http_tls"] = json!(true);
            ext["tls_cert"] = json!(cert);
            ext["tls_key"] = json!(key);
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": PIN}]);
        })
        .start()
}

/// A client that trusts only the CA in `ca` (no pooled connections: each
/// request makes a handshake).
fn client(ca: &Path) -> Client {
    let pem = fs::read(ca.join("ca.pem")).expect("read ca.pem");
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA certificate"))
        .tls_built_in_root_certs(false)
        .redirect(Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTPS client")
}

fn url(v: &Vmail, path: &str) -> String {
    format!("https://{}{path}", v.http_addr())
}

fn set_cookies(r: &reqwest::blocking::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().expect("cookie text").to_owned())
        .collect()
}

/// The value of the cookie `name` set by `r`, which must be `Secure` and
/// `HttpOnly`.
fn secure_cookie(r: &reqwest::blocking::Response, name: &str) -> String {
    let set = set_cookies(r);
    let cookie = set
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no cookie {name}: {set:?}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    let (kv, _) = cookie.split_once(';').unwrap_or((cookie, ""));
    kv[name.len() + 1..].to_owned()
}

/// The metric `series` read over HTTPS.
fn metric(v: &Vmail, c: &Client, series: &str) -> f64 {
    let body = c
        .get(url(v, "/metrics"))
        .send()
        .expect("GET /metrics")
        .text()
        .expect("metrics text");
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// What the port answers to a plain HTTP request (bytes until it closes
/// or 5 s pass).
fn plain_request(v: &Vmail) -> Vec<u8> {
    let mut s = TcpStream::connect(v.http_addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[test]
fn https_serves_healthz_and_the_web_inbox_with_secure_cookies_and_hsts() {
    let ca = private_ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let v = vmail_https(ca.path(), dir.path());
    let c = client(ca.path());

    let r = c.get(url(&v, "/healthz")).send().expect("GET /healthz");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .and_then(|h| h.to_str().ok()),
        Some("max-age=31536000")
    );

    // The login form (active once it answers 200) and its pre-session
    // cookie, Secure.
    let page = wait_for(Duration::from_secs(20), "the login page", || {
        let r = c.get(url(&v, "/login")).send().ok()?;
        (r.status().as_u16() == 200).then_some(r)
    });
    let token = secure_cookie(&page, "vmail_csrf");
    let body = page.text().expect("page");
    assert!(body.contains(&token), "the form carries the token");

    let r = c
        .post(url(&v, "/login"))
        .header("Cookie", format!("vmail_csrf={token}"))
        .form(&[
            ("mailbox", format!("1001@{DOMAIN}").as_str()),
            ("pin", PIN),
            ("csrf", &token),
        ])
        .send()
        .expect("POST /login");
    assert_eq!(r.status().as_u16(), 303, "login over HTTPS");
    let sid = secure_cookie(&r, "vmail_session");
    let r = c
        .get(url(&v, "/inbox"))
        .header("Cookie", format!("vmail_session={sid}"))
        .send()
        .expect("GET /inbox");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("strict-transport-security"));

    // Plain HTTP on the TLS port: no page, the connection is closed, the
    // failed handshake counted; the port keeps serving HTTPS.
    let failed = r#"vmail_https_handshakes_failed_total{reason="protocol"}"#;
    let before = metric(&v, &c, failed);
    let answer = plain_request(&v);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1."),
        "plain HTTP got an HTTP answer: {answer:?}"
    );
    assert!(http_get(v.http_addr(), "/healthz", Duration::from_secs(5)).is_none());
    wait_for(
        Duration::from_secs(5),
        "the failed handshake counted",
        || (metric(&v, &c, failed) >= before + 2.0).then_some(()),
    );
    assert!(metric(&v, &c, "vmail_https_handshakes_total") >= 1.0);
    assert!(v.log().contains("HTTPS handshake failed"), "{}", v.log());
    let r = c.get(url(&v, "/healthz")).send().expect("GET /healthz");
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn https_takes_a_new_certificate_on_sighup_and_keeps_it_when_the_next_is_broken() {
    let ca = private_ca();
    let dir = tempfile::tempdir().expect("temp dir");
    let v = vmail_https(ca.path(), dir.path());
    let pid = v.pid().expect("running");
    let old = client(ca.path());
    assert_eq!(
        old.get(url(&v, "/healthz")).send().expect("GET").status(),
        200
    );

    // Renewed in place by another CA: new connections get the new one.
    let ca2 = private_ca();
    fs::copy(ca2.path().join("cert.pem"), dir.path().join("server.crt")).expect("copy");
    fs::copy(ca2.path().join("key.pem"), dir.path().join("server.key")).expect("copy");
    send_signal(pid, "HUP");
    let new = client(ca2.path());
    wait_for(Duration::from_secs(10), "the new certificate", || {
        new.get(url(&v, "/healthz")).send().ok()
    });
    assert!(
        old.get(url(&v, "/healthz")).send().is_err(),
        "the old CA no longer verifies the port"
    );

    // A broken certificate: refused, the one in use kept.
    let rejected = v.log().matches("configuration rejected").count();
    fs::write(dir.path().join("server.crt"), b"not a certificate").expect("write");
    send_signal(pid, "HUP");
    wait_for(Duration::from_secs(10), "the reload refused", || {
        (v.log().matches("configuration rejected").count() > rejected).then_some(())
    });
    let r = new.get(url(&v, "/healthz")).send().expect("still HTTPS");
    assert_eq!(r.status().as_u16(), 200);
}
