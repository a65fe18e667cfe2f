//! Message-waiting indication: the real `vmail` binary on 127.0.0.1 with
//! SUBSCRIBEs from a minimal UDP subscriber written here, from a real SIP
//! client library (pjsua2), and a sipp UAS as the `mwi_notify` target.

mod common;

use std::collections::VecDeque;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use vmail::store::{Folder, FsStore, GreetingKind, MailboxId, PinCost};

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

/// A 100 ms greeting: recording starts about half a second after the answer.
fn short_greeting(v: &Vmail, user: &str) {
    let id = MailboxId::new(user, DOMAIN).unwrap();
    let pcm = vmail::media::tone(400.0, 100, 8000, 8000);
    store(v)
        .store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .unwrap();
}

/// A minimal SIP subscriber over UDP: sends SUBSCRIBEs in one dialog and
/// answers every NOTIFY with 200 (unless told otherwise), keeping them.
struct Subscriber {
    sock: UdpSocket,
    local: SocketAddr,
    vmail: SocketAddr,
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    cseq: u32,
    /// SUBSCRIBEs sent (each gets a new branch).
    sent: u32,
    notifies: VecDeque<String>,
    /// Status sent for NOTIFYs (200 normally).
    notify_status: u16,
}

impl Subscriber {
    fn new(vmail: SocketAddr) -> Subscriber {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let local = sock.local_addr().unwrap();
        Subscriber {
            sock,
            local,
            vmail,
            call_id: format!("mwi-{}-{}", std::process::id(), local.port()),
            from_tag: format!("sub{}", local.port()),
            to_tag: None,
            cseq: 0,
            sent: 0,
            notifies: VecDeque::new(),
            notify_status: 200,
        }
    }

    /// Sends a SUBSCRIBE for `user@domain` and returns its final response.
    fn subscribe(
        &mut self,
        user: &str,
        domain: &str,
        event: Option<&str>,
        expires: Option<u32>,
    ) -> String {
        self.cseq += 1;
        self.sent += 1;
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let mut extra = String::new();
        if let Some(e) = event {
            extra.push_str(&format!("Event: {e}\r\n"));
        }
        if let Some(x) = expires {
            extra.push_str(&format!("Expires: {x}\r\n"));
        }
        let msg = format!(
            "SUBSCRIBE sip:{user}@{domain} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-sub-{port}-{sent};rport\r\n\
             From: <sip:{user}@{domain}>;tag={from_tag}\r\n\
             To: <sip:{user}@{domain}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} SUBSCRIBE\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Max-Forwards: 70\r\n\
             Accept: application/simple-message-summary\r\n\
             {extra}Content-Length: 0\r\n\r\n",
            local = self.local,
            port = self.local.port(),
            sent = self.sent,
            cseq = self.cseq,
            from_tag = self.from_tag,
            call_id = self.call_id,
        );
        self.sock.send_to(msg.as_bytes(), self.vmail).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self
                .recv(deadline)
                .unwrap_or_else(|| panic!("no answer to SUBSCRIBE {}", self.cseq));
            if m.starts_with("NOTIFY ") {
                self.answer(&m);
                self.notifies.push_back(m);
                continue;
            }
            let code: u16 = m.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0);
            let cseq_ok =
                header_value(&m, "CSeq").is_some_and(|c| c == format!("{} SUBSCRIBE", self.cseq));
            if code >= 200 && cseq_ok {
                if code < 300 && self.to_tag.is_none() {
                    self.to_tag = header_value(&m, "To")
                        .and_then(|t| t.split(";tag=").nth(1))
                        .map(|t| t.split(';').next().unwrap_or(t).to_string());
                }
                return m;
            }
        }
    }

    fn recv(&self, deadline: Instant) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            if let Ok((n, _)) = self.sock.recv_from(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    fn answer(&self, notify: &str) {
        let mut resp = format!("SIP/2.0 {} Answer\r\n", self.notify_status);
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for v in header_values(notify, name) {
                resp.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        resp.push_str("Content-Length: 0\r\n\r\n");
        self.sock.send_to(resp.as_bytes(), self.vmail).unwrap();
    }

    /// The next NOTIFY (answered), within `timeout`.
    fn notify(&mut self, timeout: Duration) -> Option<String> {
        if let Some(n) = self.notifies.pop_front() {
            return Some(n);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.recv(deadline)?;
            if m.starts_with("NOTIFY ") {
                self.answer(&m);
                return Some(m);
            }
        }
    }

    /// The next NOTIFY whose body has `Voice-Message: <voice>`.
    fn notify_with(&mut self, voice: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = self
                .notify(left)
                .unwrap_or_else(|| panic!("no NOTIFY with Voice-Message: {voice}"));
            if n.contains(&format!("Voice-Message: {voice}")) {
                return n;
            }
        }
    }
}

fn body_of(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[test]
fn subscribe_answers_200_and_notifies_the_counts_at_once() {
    let v = vmail_with(&["1001"], |_| {});
    let mut s = Subscriber::new(v.sip_addr());
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    assert_eq!(header_value(&resp, "Expires"), Some("600"));
    assert!(header_value(&resp, "Contact").is_some(), "{resp}");
    let n = s.notify(Duration::from_secs(5)).expect("first NOTIFY");
    assert_eq!(header_value(&n, "Event"), Some("message-summary"));
    let state = header_value(&n, "Subscription-State").unwrap();
    assert!(state.starts_with("active;expires="), "{state}");
    assert_eq!(
        header_value(&n, "Content-Type"),
        Some("application/simple-message-summary")
    );
    assert_eq!(
        body_of(&n),
        format!(
            "Messages-Waiting: no\r\nMessage-Account: sip:1001@{DOMAIN}\r\nVoice-Message: 0/0 (0/0)\r\n"
        )
    );
    // The dialog: From carries the 200's To tag, To ours.
    let tag = s.to_tag.clone().unwrap();
    assert!(header_value(&n, "From").unwrap().contains(&tag), "{n}");
    assert!(header_value(&n, "To").unwrap().contains(&s.from_tag), "{n}");
}

#[test]
fn deposit_refresh_and_unsubscribe() {
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let mut s = Subscriber::new(v.sip_addr());
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    s.notify_with("0/0 (0/0)", Duration::from_secs(5));
    // A message: the lamp lights.
    sipp_deposit(&v, "1001", 1);
    let n = s.notify_with("1/0 (0/0)", Duration::from_secs(10));
    assert!(body_of(&n).starts_with("Messages-Waiting: yes\r\n"), "{n}");
    // Moved to Old behind vmail's back (another process): a refresh
    // re-reads the store and tells the truth.
    let st = store(&v);
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let msg = st.list_messages(&id, Folder::Inbox).unwrap().remove(0);
    st.move_message(&id, &msg.id, Folder::Old).unwrap();
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(300));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    assert_eq!(header_value(&resp, "Expires"), Some("300"));
    let n = s.notify_with("0/1 (0/0)", Duration::from_secs(5));
    assert!(body_of(&n).starts_with("Messages-Waiting: no\r\n"), "{n}");
    // Too brief a refresh: 423 with Min-Expires.
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(5));
    assert!(resp.starts_with("SIP/2.0 423"), "{resp}");
    assert_eq!(header_value(&resp, "Min-Expires"), Some("60"));
    // Expires: 0 ends it with a terminated NOTIFY.
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(0));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    let n = s.notify(Duration::from_secs(5)).expect("final NOTIFY");
    assert_eq!(
        header_value(&n, "Subscription-State"),
        Some("terminated;reason=timeout")
    );
    // The dialog is gone, and so is the saved subscription.
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 481"), "{resp}");
    wait_for(Duration::from_secs(5), "subscriptions.json removed", || {
        (!v.mailbox_dir("1001", DOMAIN)
            .join("subscriptions.json")
            .exists())
        .then_some(())
    });
}

#[test]
fn expires_zero_fetches_once_with_a_terminated_notify() {
    let v = vmail_with(&["1001"], |_| {});
    let mut s = Subscriber::new(v.sip_addr());
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(0));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    assert_eq!(header_value(&resp, "Expires"), Some("0"));
    let n = s.notify(Duration::from_secs(5)).expect("NOTIFY");
    assert_eq!(
        header_value(&n, "Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert!(body_of(&n).contains("Voice-Message: 0/0 (0/0)"), "{n}");
    assert!(s.notify(Duration::from_millis(500)).is_none());
}

#[test]
fn refusals_489_404_302_423() {
    let v = Vmail::builder()
        .ext(|ext| {
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
        })
        .config(|cfg| {
            cfg["roles"].as_array_mut().unwrap().push(json!({
                "name": "sales1", "roletype": "vmail", "iface": "lo",
                "group": 20, "order": 1,
                "include_domains": [format!("sales.{DOMAIN}")],
                "ext": { "sip_port": 15999, "http_port": 18081,
                         "rtp_port_min": 40000, "rtp_port_max": 40099 }
            }));
        })
        .start();
    let mut s = Subscriber::new(v.sip_addr());
    let resp = s.subscribe("1001", DOMAIN, Some("presence"), Some(600));
    assert!(resp.starts_with("SIP/2.0 489"), "{resp}");
    assert_eq!(header_value(&resp, "Allow-Events"), Some("message-summary"));
    let resp = s.subscribe("1001", DOMAIN, None, Some(600));
    assert!(resp.starts_with("SIP/2.0 489"), "{resp}");
    let resp = s.subscribe("4040", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 404"), "{resp}");
    let resp = s.subscribe("1001", "nobody.example", Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 404"), "{resp}");
    let resp = s.subscribe(
        "2001",
        &format!("sales.{DOMAIN}"),
        Some("message-summary"),
        Some(600),
    );
    assert!(resp.starts_with("SIP/2.0 302"), "{resp}");
    let contact = header_value(&resp, "Contact").unwrap();
    assert!(contact.contains("sip:2001@127.0.0.1:15999"), "{contact}");
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(10));
    assert!(resp.starts_with("SIP/2.0 423"), "{resp}");
    assert_eq!(header_value(&resp, "Min-Expires"), Some("60"));
    // Longer than the maximum: shortened.
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(999_999));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    assert_eq!(header_value(&resp, "Expires"), Some("3600"));
}

#[test]
fn a_481_to_notify_ends_the_subscription() {
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let mut s = Subscriber::new(v.sip_addr());
    s.notify_status = 481;
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    s.notify(Duration::from_secs(5)).expect("first NOTIFY");
    wait_for(Duration::from_secs(5), "subscription ended", || {
        v.log()
            .contains("NOTIFY failed: subscription ended")
            .then_some(())
    });
    sipp_deposit(&v, "1001", 1);
    assert!(
        s.notify(Duration::from_secs(2)).is_none(),
        "no NOTIFY after a 481"
    );
}

#[test]
fn subscriptions_survive_a_restart() {
    let mut v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let mut s = Subscriber::new(v.sip_addr());
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    s.notify_with("0/0 (0/0)", Duration::from_secs(5));
    let saved = v.mailbox_dir("1001", DOMAIN).join("subscriptions.json");
    wait_for(Duration::from_secs(5), "subscription saved", || {
        saved.exists().then_some(())
    });
    v.restart();
    // Restored and re-NOTIFYed with the current counts, in the same dialog.
    let n = s.notify_with("0/0 (0/0)", Duration::from_secs(10));
    let tag = s.to_tag.clone().unwrap();
    assert!(header_value(&n, "From").unwrap().contains(&tag), "{n}");
    sipp_deposit(&v, "1001", 1);
    s.notify_with("1/0 (0/0)", Duration::from_secs(10));
    // A saved subscription that expired while vmail was down is dropped.
    let text = fs::read_to_string(&saved).unwrap();
    let mut list: Value = serde_json::from_str(&text).unwrap();
    list[0]["expires_unix_ms"] = json!(1000);
    fs::write(&saved, serde_json::to_string(&list).unwrap()).unwrap();
    v.restart();
    wait_for(
        Duration::from_secs(5),
        "expired subscription removed",
        || (!saved.exists()).then_some(()),
    );
    assert!(s.notify(Duration::from_millis(500)).is_none());
}

/// The unsolicited NOTIFYs a sipp target received, in order (sipp's
/// trace has lines ending in `\n`: given back with `\r\n`).
fn target_notifies(run: &SippRun) -> Vec<String> {
    run.received("NOTIFY ")
        .into_iter()
        .map(|m| {
            let lines: Vec<&str> = m.lines().map(|l| l.trim_end_matches('\r')).collect();
            format!("{}\r\n", lines.join("\r\n"))
        })
        .collect()
}

#[test]
fn mwi_notify_target_gets_an_unsolicited_notify_per_change() {
    let target = Sipp::uas("uas_mwi_notify.xml").arg("-m").arg("1");
    let addr = target.addr();
    let v = vmail_with(&["1001"], move |ext| {
        ext["mwi_notify"] = json!([format!("sip:{addr}")]);
    });
    short_greeting(&v, "1001");
    let Some(target) = target.spawn() else { return };
    sipp_deposit(&v, "1001", 1);
    let run = target.wait();
    run.assert_success("uas_mwi_notify.xml");
    let n = target_notifies(&run);
    assert_eq!(n.len(), 1, "{n:?}");
    let n = &n[0];
    assert!(
        n.starts_with(&format!("NOTIFY sip:1001@{addr} SIP/2.0")),
        "{n}"
    );
    assert_eq!(header_value(n, "Event"), Some("message-summary"));
    assert_eq!(
        header_value(n, "To"),
        Some(&*format!("<sip:1001@{DOMAIN}>"))
    );
    assert!(body_of(n).starts_with(&format!(
        "Messages-Waiting: yes\r\nMessage-Account: sip:1001@{DOMAIN}\r\nVoice-Message: 1/0 (0/0)\r\n"
    )));
    wait_for(Duration::from_secs(5), "NOTIFY outcome logged", || {
        v.log().contains("unsolicited NOTIFY sent").then_some(())
    });
}

#[test]
fn mwi_notify_target_down_gets_the_newest_counts_once_up() {
    let target = Sipp::uas("uas_mwi_notify.xml").arg("-m").arg("2");
    let addr = target.addr();
    let v = vmail_with(&["1001"], move |ext| {
        ext["mwi_notify"] = json!([format!("sip:{addr}")]);
    });
    short_greeting(&v, "1001");
    // Two changes while nobody listens there.
    sipp_deposit(&v, "1001", 1);
    sipp_deposit(&v, "1001", 2);
    let Some(target) = target.spawn() else { return };
    let run = target.wait();
    run.assert_success("uas_mwi_notify.xml");
    let n = target_notifies(&run);
    // The first NOTIFY (retransmitted until the target answers), then the
    // newest counts; never an older count after a newer one.
    let voices: Vec<&str> = n
        .iter()
        .map(|m| body_of(m).lines().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(
        voices.last(),
        Some(&"Voice-Message: 2/0 (0/0)"),
        "{voices:?}"
    );
    assert!(
        voices.windows(2).all(|w| w[0] <= w[1]),
        "counts went back: {voices:?}"
    );
}

#[test]
fn pjsua_lamp_lights_after_a_deposit_and_goes_out_after_an_api_delete_across_a_restart() {
    const TOKEN: &str = "mwi-test-token-0123456789";
    let mut v = vmail_with(&["1001"], |ext| {
        ext["api_tokens"] = json!([TOKEN]);
    });
    short_greeting(&v, "1001");
    let Some(phone) = PjsuaMwi::start(v.sip_addr(), "1001", "0,1,2,0") else {
        return;
    };
    let first = phone.wait_counts(0, 0, Duration::from_secs(15));
    assert_eq!(first["waiting"], false, "{first}");
    sipp_deposit(&v, "1001", 1);
    let lit = phone.wait_counts(1, 0, Duration::from_secs(15));
    assert_eq!(lit["waiting"], true, "{lit}");
    // vmail restarts: the subscription comes back by itself, re-NOTIFYed
    // with the current counts, and later changes are told too.
    v.restart();
    let again = phone.wait_counts(1, 0, Duration::from_secs(15));
    assert_eq!(again["waiting"], true, "{again}");
    sipp_deposit(&v, "1001", 2);
    let two = phone.wait_counts(2, 0, Duration::from_secs(15));
    assert_eq!(two["waiting"], true, "{two}");
    // Both messages deleted through the HTTP API: the lamp goes out.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("HTTP client");
    let base = format!(
        "http://{}/api/v1/domains/{DOMAIN}/mailboxes/1001/messages",
        v.http_addr()
    );
    let list: Value = client
        .get(format!("{base}?folder=INBOX"))
        .bearer_auth(TOKEN)
        .send()
        .and_then(|r| r.json())
        .expect("message list");
    let ids: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    for id in &ids {
        let status = client
            .delete(format!("{base}/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .expect("DELETE")
            .status();
        assert!(status.is_success(), "DELETE {id}: {status}");
    }
    let out = phone.wait_counts(0, 0, Duration::from_secs(15));
    assert_eq!(out["waiting"], false, "{out}");
    assert!(phone.wait_exit().success());
}

#[test]
fn a_message_deleted_by_phone_puts_the_lamp_out() {
    let v = vmail_with(&["1001"], |_| {});
    short_greeting(&v, "1001");
    let mut s = Subscriber::new(v.sip_addr());
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    sipp_deposit(&v, "1001", 1);
    s.notify_with("1/0 (0/0)", Duration::from_secs(10));
    // The mailbox menu: mailbox, PIN, `1` new messages, `7` delete.
    let args = [
        "--target".to_string(),
        format!("sip:*98@{DOMAIN}"),
        "--proxy".into(),
        v.sip_addr().to_string(),
        "--caller".into(),
        format!("sip:5551234@{DOMAIN}"),
        "--hangup-after-seconds".into(),
        "13".into(),
        "--codecs".into(),
        "PCMU,PCMA".into(),
        "--dtmf".into(),
        "1.0:1001#".into(),
        "--dtmf".into(),
        "3.0:1234#".into(),
        "--dtmf".into(),
        "6.0:1".into(),
        "--dtmf".into(),
        "9.5:7".into(),
        "--timeout".into(),
        "40".into(),
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(run) = pjsua("deposit.py", &argv) else {
        return;
    };
    run.assert_success("menu call");
    let n = s.notify_with("0/0 (0/0)", Duration::from_secs(10));
    assert!(body_of(&n).starts_with("Messages-Waiting: no\r\n"), "{n}");
}

#[test]
fn a_refresh_must_match_the_dialog_and_raise_the_cseq() {
    let v = vmail_with(&["1001"], |_| {});
    let mut s = Subscriber::new(v.sip_addr());
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    s.notify_with("0/0 (0/0)", Duration::from_secs(5));
    // Same Call-ID and To tag, another From tag: another dialog.
    let tag = std::mem::replace(&mut s.from_tag, "someone-else".into());
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 481"), "{resp}");
    s.from_tag = tag;
    // An old CSeq: 500.
    s.cseq = 0;
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 500"), "{resp}");
    s.cseq = 10;
    let resp = s.subscribe("1001", DOMAIN, Some("message-summary"), Some(600));
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    s.notify_with("0/0 (0/0)", Duration::from_secs(5));
}
