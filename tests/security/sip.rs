//! Attacks on the SIP path (see tests/security.rs): in-dialog requests
//! spoofed from another address, Call-ID reuse, mailboxes auto-created by
//! calls that store nothing.
//!
//! The callers here are raw UDP user agents written for the test: they
//! control every tag, CSeq and branch, which is the point of the probes.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

static BRANCH: AtomicU32 = AtomicU32::new(1);

fn branch() -> String {
    format!(
        "z9hG4bKsec{}x{}",
        std::process::id(),
        BRANCH.fetch_add(1, Ordering::Relaxed)
    )
}

/// The status code of a response's first line.
fn status(msg: &str) -> u16 {
    msg.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The `tag=` parameter of a header value.
fn tag_of(value: &str) -> Option<String> {
    value
        .split(';')
        .find_map(|p| p.trim().strip_prefix("tag="))
        .map(str::to_owned)
}

/// The audio port of an SDP body.
fn sdp_port(msg: &str) -> Option<u16> {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.trim().parse().ok())
}

/// One dialog of a raw UDP caller.
struct RawCall {
    sock: UdpSocket,
    rtp: Arc<UdpSocket>,
    vmail: SocketAddr,
    call_id: String,
    ruri: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    /// Requests vmail sent us (its BYE), answered with 200.
    requests: Vec<String>,
    media: Option<SocketAddr>,
    rtp_stop: Arc<AtomicBool>,
    rtp_thread: Option<JoinHandle<()>>,
}

impl RawCall {
    fn new(vmail: SocketAddr, ruri: &str, call_id: &str, from_tag: &str) -> RawCall {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind sip");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
        RawCall {
            sock,
            rtp: Arc::new(rtp),
            vmail,
            call_id: call_id.to_owned(),
            ruri: ruri.to_owned(),
            from_tag: from_tag.to_owned(),
            to_tag: None,
            cseq: 0,
            requests: Vec::new(),
            media: None,
            rtp_stop: Arc::new(AtomicBool::new(false)),
            rtp_thread: None,
        }
    }

    fn local(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn sdp(&self) -> String {
        let port = self.rtp.local_addr().unwrap().port();
        format!(
            "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        )
    }

    /// A request of this dialog; `cseq` as given, tags as the dialog has
    /// them unless `from_tag`/`to_tag` say otherwise.
    fn request(
        &self,
        method: &str,
        cseq: u32,
        branch: &str,
        to_tag: Option<&str>,
        extra: &str,
        body: &str,
    ) -> String {
        let local = self.local();
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let ctype = if body.is_empty() {
            ""
        } else if method == "INFO" {
            "Content-Type: application/dtmf-relay\r\n"
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:caller@127.0.0.1>;tag={from}\r\n\
             To: <{ruri}>{to_tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{local}>\r\n\
             {extra}{ctype}\
             Content-Length: {len}\r\n\r\n{body}",
            ruri = self.ruri,
            from = self.from_tag,
            cid = self.call_id,
            len = body.len(),
        )
    }

    /// Sends `text` (resent every 500 ms over UDP) until a final response
    /// to `method` comes; answers vmail's own requests meanwhile.
    fn transact(&mut self, text: &str, method: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut sent_at: Option<Instant> = None;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline {
            if sent_at.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                self.sock.send_to(text.as_bytes(), self.vmail).unwrap();
                sent_at = Some(Instant::now());
            }
            let Ok(n) = self.sock.recv(&mut buf) else {
                continue;
            };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !msg.starts_with("SIP/2.0") {
                self.answer_request(&msg);
                continue;
            }
            let cseq = header_value(&msg, "CSeq").unwrap_or_default();
            if status(&msg) >= 200 && cseq.ends_with(method) {
                return Some(msg);
            }
        }
        None
    }

    /// Answers a request from vmail (BYE) with 200 and keeps it.
    fn answer_request(&mut self, msg: &str) {
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for v in header_values(msg, h) {
                resp.push_str(&format!("{h}: {v}\r\n"));
            }
        }
        resp.push_str("Content-Length: 0\r\n\r\n");
        if let Some(via) = header_value(msg, "Via") {
            // vmail's sent-by (host:port) after the transport.
            if let Some(addr) = via
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.split(';').next())
                .and_then(|s| s.parse::<SocketAddr>().ok())
            {
                let _ = self.sock.send_to(resp.as_bytes(), addr);
            }
        }
        self.requests.push(msg.to_owned());
    }

    /// Waits up to `wait` for vmail's requests (a BYE); true when a BYE
    /// of this dialog came.
    fn got_bye(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < deadline && !self.bye_seen() {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if !msg.starts_with("SIP/2.0") {
                    self.answer_request(&msg);
                }
            }
        }
        self.bye_seen()
    }

    fn bye_seen(&self) -> bool {
        self.requests.iter().any(|r| r.starts_with("BYE "))
    }

    /// INVITE, and on 200 the ACK; returns the final status.
    fn invite(&mut self) -> u16 {
        self.cseq += 1;
        let text = self.request("INVITE", self.cseq, &branch(), None, "", &self.sdp());
        let Some(resp) = self.transact(&text, "INVITE") else {
            return 0;
        };
        let code = status(&resp);
        self.to_tag = header_value(&resp, "To").and_then(tag_of);
        if code == 200 {
            self.media = sdp_port(&resp).map(|p| SocketAddr::from((LOCALHOST, p)));
            let ack = self.request("ACK", self.cseq, &branch(), self.to_tag.as_deref(), "", "");
            self.sock.send_to(ack.as_bytes(), self.vmail).unwrap();
        }
        code
    }

    /// An in-dialog request with the next CSeq; returns the final status.
    fn in_dialog(&mut self, method: &str, body: &str) -> u16 {
        self.cseq += 1;
        self.in_dialog_cseq(method, self.cseq, body)
    }

    /// An in-dialog request with a chosen CSeq; returns the final status.
    fn in_dialog_cseq(&mut self, method: &str, cseq: u32, body: &str) -> u16 {
        let to = self.to_tag.clone();
        let text = self.request(method, cseq, &branch(), to.as_deref(), "", body);
        self.transact(&text, method).map_or(0, |r| status(&r))
    }

    /// Sends 20 ms PCMU packets of a tone to vmail's media port from now on.
    fn start_rtp(&mut self) {
        let Some(to) = self.media else {
            return;
        };
        let (rtp, stop) = (self.rtp.clone(), self.rtp_stop.clone());
        self.rtp_thread = Some(std::thread::spawn(move || {
            let ssrc = 0x5ec0_0001u32;
            let start = Instant::now();
            let mut n: u32 = 0;
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(30) {
                let mut pkt = vec![0x80, 0];
                pkt.extend_from_slice(&(n as u16).to_be_bytes());
                pkt.extend_from_slice(&(n * 160).to_be_bytes());
                pkt.extend_from_slice(&ssrc.to_be_bytes());
                for i in 0..160u32 {
                    let t = f64::from(n * 160 + i) / 8000.0;
                    let s = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
                    pkt.push(g711_encode(0, s));
                }
                let _ = rtp.send_to(&pkt, to);
                n += 1;
                let next = start + Duration::from_millis(20 * u64::from(n));
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }));
    }
}

impl Drop for RawCall {
    fn drop(&mut self) {
        self.rtp_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.rtp_thread.take() {
            let _ = t.join();
        }
    }
}

const DTMF_POUND: &str = "Signal=#\r\nDuration=160\r\n";

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

fn unique(what: &str) -> String {
    format!(
        "{what}-{}-{}",
        std::process::id(),
        BRANCH.fetch_add(1, Ordering::Relaxed)
    )
}

/// Wait for `n` WAVs in a mailbox's INBOX.
fn inbox_wavs(v: &Vmail, user: &str, domain: &str, n: usize) -> usize {
    let inbox = v.mailbox_dir(user, domain).join("INBOX");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = files_with_suffix(&inbox, ".wav").len();
        if count >= n || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spoofed BYE, INFO `#` and re-INVITE from another address with tags
/// that are not the dialog's get 481 and leave the call alone; the real
/// caller's requests still work; an old CSeq gets 500.
#[test]
fn spoofed_in_dialog_requests_do_not_touch_the_call() {
    let v = vmail_with(&["1001"], |_| {});
    let ruri = format!("sip:1001@{DOMAIN}");
    let cid = unique("victim");
    let mut victim = RawCall::new(v.sip_addr(), &ruri, &cid, "victim-tag");
    assert_eq!(victim.invite(), 200, "{}", v.log());
    victim.start_rtp();
    let real_tag = victim.to_tag.clone().expect("vmail's To tag");

    // The attacker knows the Call-ID. From another port, it tries with a
    // made-up To tag, then with the real To tag but its own From tag.
    for (to_tag, from_tag) in [("guessed", "victim-tag"), (real_tag.as_str(), "evil")] {
        let mut evil = RawCall::new(v.sip_addr(), &ruri, &cid, from_tag);
        evil.to_tag = Some(to_tag.to_owned());
        evil.cseq = 100;
        assert_eq!(
            evil.in_dialog("INFO", DTMF_POUND),
            481,
            "INFO # with {to_tag}/{from_tag}"
        );
        let sdp = evil.sdp();
        assert_eq!(
            evil.in_dialog("INVITE", &sdp),
            481,
            "re-INVITE with {to_tag}/{from_tag}"
        );
        assert_eq!(
            evil.in_dialog("BYE", ""),
            481,
            "BYE with {to_tag}/{from_tag}"
        );
    }
    assert!(
        !victim.got_bye(Duration::from_millis(500)),
        "the call goes on"
    );

    // The caller's own request with an old CSeq: 500 (RFC 3261 §12.2.2).
    assert_eq!(victim.in_dialog_cseq("INFO", 1, "Signal=5\r\n"), 500);
    // The caller's own requests still work, and its BYE ends its call.
    assert_eq!(victim.in_dialog("INFO", "Signal=5\r\n"), 200);
    assert_eq!(victim.in_dialog("BYE", ""), 200, "{}", v.log());
}

/// Two INVITEs with one Call-ID and different From tags are two dialogs:
/// each gets its own To tag, the first call's BYE ends only the first, and
/// a copy of an INVITE with the same From tag and CSeq on a new branch
/// (a merged request) gets 482.
#[test]
fn invites_sharing_a_call_id_are_separate_dialogs() {
    let v = vmail_with(&["1001"], |_| {});
    let ruri = format!("sip:1001@{DOMAIN}");
    let cid = unique("shared");
    let mut first = RawCall::new(v.sip_addr(), &ruri, &cid, "first");
    let mut second = RawCall::new(v.sip_addr(), &ruri, &cid, "second");
    assert_eq!(first.invite(), 200);
    first.start_rtp();
    assert_eq!(second.invite(), 200);
    second.start_rtp();
    assert_ne!(first.to_tag, second.to_tag, "two dialogs, two tags");

    let mut merged = RawCall::new(v.sip_addr(), &ruri, &cid, "first");
    assert_eq!(merged.invite(), 482, "{}", v.log());

    assert_eq!(first.in_dialog("BYE", ""), 200);
    // The second call lives on: its requests are answered in its dialog.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(second.in_dialog("INFO", "Signal=5\r\n"), 200, "{}", v.log());
    assert!(!second.got_bye(Duration::from_millis(300)));
    assert_eq!(second.in_dialog("BYE", ""), 200);
    // And the first is gone.
    assert_eq!(first.in_dialog("INFO", "Signal=5\r\n"), 481);
}

/// With `auto_create_mailboxes`, calls that store nothing create nothing:
/// 200 INVITE+BYE pairs to new mailboxes in 100 domains leave the store
/// empty. A call that stores a message creates its mailbox whole.
#[test]
fn auto_create_makes_mailboxes_only_for_stored_messages() {
    let v = vmail_with(&[], |ext| {
        ext["auto_create_mailboxes"] = true.into();
    });
    let domains = v.store().join("domains");
    for i in 0..200 {
        let ruri = format!("sip:u{i}@d{}.{DOMAIN}", i % 100);
        let mut call = RawCall::new(v.sip_addr(), &ruri, &unique("empty"), "t");
        assert_eq!(call.invite(), 200, "call {i}: {}", v.log());
        assert_eq!(call.in_dialog("BYE", ""), 200);
    }
    // Give the drivers time to end; nothing may appear meanwhile either.
    std::thread::sleep(Duration::from_millis(500));
    let left: Vec<_> = fs::read_dir(&domains)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "mailboxes or domains made: {left:?}");
    assert!(
        v.log().contains("caller hung up before the beep"),
        "why nothing was stored is logged"
    );

    // A message: `#` skips the greeting, 2 s of tone, `#` ends it.
    let domain = format!("new.{DOMAIN}");
    let ruri = format!("sip:4242@{domain}");
    let mut call = RawCall::new(v.sip_addr(), &ruri, &unique("deposit"), "t");
    assert_eq!(call.invite(), 200);
    call.start_rtp();
    assert_eq!(call.in_dialog("INFO", DTMF_POUND), 200);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(call.in_dialog("INFO", DTMF_POUND), 200);
    assert_eq!(inbox_wavs(&v, "4242", &domain, 1), 1, "{}", v.log());
    let dir = v.mailbox_dir("4242", &domain);
    assert!(dir.join("mailbox.json").is_file());
    assert!(call.got_bye(Duration::from_secs(10)));
    assert_eq!(
        v.log().matches("message stored").count(),
        1,
        "one log line per stored message"
    );
}

/// The first message of a new mailbox whose folder cannot be made (a
/// file stands where its domain folder goes, as a full disk refuses the
/// last step) leaves no half-made mailbox; the caller is told. A folder
/// without mailbox.json in the way is replaced by the complete mailbox.
#[test]
fn a_first_message_never_leaves_a_half_made_mailbox() {
    let v = vmail_with(&[], |ext| {
        ext["auto_create_mailboxes"] = true.into();
    });
    let domain = format!("full.{DOMAIN}");
    let domains = v.store().join("domains");
    fs::create_dir_all(&domains).unwrap();
    let blocker = domains.join(&domain);
    fs::write(&blocker, b"not a folder").unwrap();

    let ruri = format!("sip:4343@{domain}");
    let mut call = RawCall::new(v.sip_addr(), &ruri, &unique("full"), "t");
    let code = call.invite();
    if code == 200 {
        call.start_rtp();
        assert_eq!(call.in_dialog("INFO", DTMF_POUND), 200);
        std::thread::sleep(Duration::from_millis(2000));
        call.in_dialog("INFO", DTMF_POUND);
        assert!(call.got_bye(Duration::from_secs(15)), "vmail ends the call");
    }
    assert!(blocker.is_file(), "nothing made in its place");
    assert!(no_half_made_mailbox(&domains), "{}", v.log());

    // A folder without mailbox.json in the way (as an interrupted
    // creation leaves it): the first message completes the mailbox
    // instead of failing halfway next to it.
    let domain = format!("stale.{DOMAIN}");
    let stale = domains.join(&domain).join("4444");
    fs::create_dir_all(&stale).unwrap();
    fs::write(stale.join("tmp"), b"not a folder").unwrap();
    let ruri = format!("sip:4444@{domain}");
    let mut call = RawCall::new(v.sip_addr(), &ruri, &unique("stale"), "t");
    if call.invite() == 200 {
        call.start_rtp();
        assert_eq!(call.in_dialog("INFO", DTMF_POUND), 200);
        std::thread::sleep(Duration::from_millis(2000));
        call.in_dialog("INFO", DTMF_POUND);
        assert_eq!(inbox_wavs(&v, "4444", &domain, 1), 1, "{}", v.log());
    }
    assert!(no_half_made_mailbox(&domains), "{}", v.log());
}

/// True if every mailbox folder under `domains` has its mailbox.json.
fn no_half_made_mailbox(domains: &Path) -> bool {
    let Ok(ds) = fs::read_dir(domains) else {
        return true;
    };
    ds.flatten().filter(|d| d.path().is_dir()).all(|d| {
        fs::read_dir(d.path()).map_or(true, |us| {
            us.flatten()
                .filter(|u| !u.file_name().to_string_lossy().starts_with('.'))
                .all(|u| u.path().join("mailbox.json").is_file())
        })
    })
}
