//! Attacks on the LOGIN path (see tests/security.rs): parallel PIN guesses
//! against the lockout, parallel PIN checks against memory, call floods to
//! the access number from one address.
//!
//! The calls are placed by a small SIP caller written here (raw UDP from
//! 127.0.0.x): it answers what vmail sends, streams silence as RTP, and
//! types digits as SIP INFO, so many calls can press `#` at the same moment.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use vmail::store::{FsStore, MailboxId, PinCost};

use crate::common::*;

const STEP: Duration = Duration::from_secs(10);

fn vmail_with(tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
            tweak(ext);
        })
        .start()
}

fn occurrences(log: &str, what: &str) -> usize {
    log.matches(what).count()
}

/// "PIN login" lines that are no failure or refusal.
fn successful_logins(log: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.match_indices("PIN login ").any(|(at, m)| {
                let rest = &l[at + m.len()..];
                !rest.starts_with("failed") && !rest.starts_with("refused")
            })
        })
        .count()
}

/// One call to the access number, from `source`.
struct Caller {
    sip: UdpSocket,
    vmail: SocketAddr,
    call_id: String,
    from: String,
    to: String,
    target: String,
    cseq: u32,
    local: SocketAddr,
    ended: bool,
    rtp_stop: Arc<AtomicBool>,
    rtp: Option<JoinHandle<()>>,
}

/// A SIP response: status, header lines, body.
#[derive(Debug)]
struct Response {
    status: u16,
    text: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.text, name)
    }
    fn body(&self) -> &str {
        self.text.split("\r\n\r\n").nth(1).unwrap_or("")
    }
}

fn cseq_of(text: &str) -> String {
    header_value(text, "CSeq").unwrap_or("").trim().to_owned()
}

fn branch() -> String {
    format!("z9hG4bK-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

impl Caller {
    /// Sends an INVITE to the access number; `Err(final response)` unless
    /// it is answered.
    fn call(vmail: SocketAddr, source: Ipv4Addr, from_user: &str) -> Result<Caller, Response> {
        let sip = UdpSocket::bind((source, 0)).expect("bind SIP");
        sip.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let media = UdpSocket::bind((source, 0)).expect("bind RTP");
        let local = sip.local_addr().unwrap();
        let tag = format!("{:x}", rand_u64());
        let mut c = Caller {
            sip,
            vmail,
            call_id: format!("{:x}-login@{source}", rand_u64()),
            from: format!("<sip:{from_user}@{DOMAIN}>;tag={tag}"),
            to: format!("<sip:*98@{DOMAIN}>"),
            target: format!("sip:*98@{DOMAIN}"),
            cseq: 1,
            local,
            ended: false,
            rtp_stop: Arc::new(AtomicBool::new(false)),
            rtp: None,
        };
        let rtp_port = media.local_addr().unwrap().port();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 {source}\r\ns=-\r\nc=IN IP4 {source}\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
        );
        let invite = c.request("INVITE", Some(("application/sdp", &sdp)));
        c.sip.send_to(invite.as_bytes(), vmail).unwrap();
        let deadline = Instant::now() + STEP;
        let resp = loop {
            assert!(Instant::now() < deadline, "no final answer to the INVITE");
            if let Some(r) = c.recv_response("1 INVITE") {
                if r.status >= 200 {
                    break r;
                }
            }
        };
        if resp.status != 200 {
            // The transaction layer wants an ACK for a failure too.
            let ack = c.ack(&resp);
            c.sip.send_to(ack.as_bytes(), vmail).unwrap();
            return Err(resp);
        }
        if let Some(to) = resp.header("To") {
            c.to = to.trim().to_owned();
        }
        if let Some(contact) = resp.header("Contact") {
            let contact = contact.trim();
            let uri = contact
                .split_once('<')
                .and_then(|(_, r)| r.split_once('>'))
                .map_or(contact, |(u, _)| u);
            c.target = uri.to_owned();
        }
        let ack = c.ack(&resp);
        c.sip.send_to(ack.as_bytes(), vmail).unwrap();
        // The RTP address vmail answered with: stream silence to it.
        let body = resp.body();
        let ip = body
            .lines()
            .find_map(|l| l.strip_prefix("c=IN IP4 "))
            .and_then(|a| a.trim().parse::<IpAddr>().ok())
            .expect("c= in the answer");
        let port = body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|m| m.split_whitespace().next())
            .and_then(|p| p.parse::<u16>().ok())
            .expect("m=audio in the answer");
        let remote = SocketAddr::new(ip, port);
        let stop = c.rtp_stop.clone();
        c.rtp = Some(std::thread::spawn(move || {
            media.set_nonblocking(true).unwrap();
            let ssrc = rand_u64() as u32;
            let mut buf = [0u8; 2048];
            let mut n: u32 = 0;
            // Bounded: a call of these tests never lasts two minutes.
            while !stop.load(Ordering::Relaxed) && n < 6000 {
                let mut pkt = vec![0x80, 0];
                pkt.extend_from_slice(&(n as u16).to_be_bytes());
                pkt.extend_from_slice(&(n.wrapping_mul(160)).to_be_bytes());
                pkt.extend_from_slice(&ssrc.to_be_bytes());
                pkt.extend(std::iter::repeat_n(0xFFu8, 160));
                let _ = media.send_to(&pkt, remote);
                while media.recv_from(&mut buf).is_ok() {}
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
        Ok(c)
    }

    fn request(&mut self, method: &str, body: Option<(&str, &str)>) -> String {
        let (ctype, body) = body.map_or((None, ""), |(t, b)| (Some(t), b));
        let mut m = format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{local}>\r\n",
            target = self.target,
            local = self.local,
            branch = branch(),
            from = self.from,
            to = self.to,
            cid = self.call_id,
            cseq = self.cseq,
        );
        if let Some(t) = ctype {
            m.push_str(&format!("Content-Type: {t}\r\n"));
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        m
    }

    /// The ACK of the INVITE's final response: in the INVITE transaction
    /// for a failure, a transaction of its own for a 200 (RFC 3261 §17.1.1.3,
    /// §13.2.2.4).
    fn ack(&self, resp: &Response) -> String {
        let via = if resp.status == 200 {
            format!("SIP/2.0/UDP {};branch={};rport", self.local, branch())
        } else {
            header_value(&resp.text, "Via")
                .unwrap_or("")
                .trim()
                .to_owned()
        };
        let to = resp.header("To").unwrap_or(&self.to).trim();
        format!(
            "ACK {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\n\
             To: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            target = self.target,
            from = self.from,
            cid = self.call_id,
        )
    }

    /// Reads one datagram: a response with `cseq` is returned; a BYE from
    /// vmail is answered (and ends the call); anything else is dropped.
    fn recv_response(&mut self, cseq: &str) -> Option<Response> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = self.sip.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(rest) = text.strip_prefix("SIP/2.0 ") {
            let status = rest.get(..3)?.parse().ok()?;
            return (cseq_of(&text) == cseq).then_some(Response { status, text });
        }
        if text.starts_with("BYE ") {
            self.ended = true;
            let mut ok = String::from("SIP/2.0 200 OK\r\n");
            for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                for v in header_values(&text, name) {
                    ok.push_str(&format!("{name}: {}\r\n", v.trim()));
                }
            }
            ok.push_str("Content-Length: 0\r\n\r\n");
            let _ = self.sip.send_to(ok.as_bytes(), self.vmail);
        }
        None
    }

    /// Sends a request in the dialog and waits for its final response.
    fn send(&mut self, method: &str, body: Option<(&str, &str)>) -> Option<u16> {
        self.cseq += 1;
        let msg = self.request(method, body);
        let cseq = format!("{} {method}", self.cseq);
        let deadline = Instant::now() + STEP;
        let mut resend = Instant::now();
        while Instant::now() < deadline {
            if Instant::now() >= resend {
                self.sip.send_to(msg.as_bytes(), self.vmail).unwrap();
                resend = Instant::now() + Duration::from_millis(500);
            }
            if let Some(r) = self.recv_response(&cseq) {
                if r.status >= 200 {
                    return Some(r.status);
                }
            }
        }
        None
    }

    /// Types `digits` as SIP INFO, one request each.
    fn press(&mut self, digits: &str) {
        for d in digits.chars() {
            let body = format!("Signal={d}\r\nDuration=160\r\n");
            let status = self.send("INFO", Some(("application/dtmf-relay", &body)));
            assert_eq!(status, Some(200), "INFO {d} not taken");
        }
    }

    /// Waits up to `t` for vmail to hang up (reads what is already there
    /// even when `t` is zero).
    fn wait_for_bye(&mut self, t: Duration) -> bool {
        let deadline = Instant::now() + t;
        loop {
            let mut buf = [0u8; 1];
            // Anything waiting is read; a timeout with nothing is the end.
            let waiting = self.sip.peek_from(&mut buf).is_ok();
            if waiting {
                let _ = self.recv_response("-");
            }
            if self.ended || (!waiting && Instant::now() >= deadline) {
                return self.ended;
            }
        }
    }

    fn hang_up(mut self) {
        self.rtp_stop.store(true, Ordering::Relaxed);
        if !self.ended {
            let _ = self.send("BYE", None);
        }
        if let Some(t) = self.rtp.take() {
            let _ = t.join();
        }
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// `n` calls from 127.0.0.1, each types `before` (its index in `{i}`),
/// then all press `#` at the same moment; returns when all are placed.
fn parallel_logins(v: &Vmail, n: usize, from_user: &str, before: &str) -> Vec<Caller> {
    parallel_logins_then(v, n, from_user, before, |_| {})
}

/// [`parallel_logins`], each call doing `then` right after its `#`.
fn parallel_logins_then(
    v: &Vmail,
    n: usize,
    from_user: &str,
    before: &str,
    then: fn(&mut Caller),
) -> Vec<Caller> {
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let addr = v.sip_addr();
            let from_user = from_user.replace("{i}", &i.to_string());
            let before = before.replace("{i}", &format!("{:02}", i));
            std::thread::spawn(move || {
                let mut c = match Caller::call(addr, Ipv4Addr::LOCALHOST, &from_user) {
                    Ok(c) => c,
                    Err(r) => panic!("call {i} refused: {}", r.text),
                };
                // Let the first prompt start, then type.
                std::thread::sleep(Duration::from_millis(300));
                c.press(&before);
                barrier.wait();
                c.press("#");
                then(&mut c);
                c
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("caller thread"))
        .collect()
}

/// 20 calls press `#` after a wrong PIN at the same moment: at most
/// `lockout_failures` PINs are really checked; the right PIN afterwards is
/// refused while the lock holds.
#[test]
fn parallel_wrong_pins_get_no_more_checks_than_the_lockout_allows() {
    let v = vmail_with(|ext| {
        ext["lockout_failures"] = 5.into();
        ext["lockout_seconds"] = 300.into();
        ext["access_rate_burst"] = 0.into();
    });
    // Caller 1001 is a known mailbox: vmail asks only for the PIN.
    let calls = parallel_logins(&v, 20, "1001", "99{i}");
    let verdicts = |log: &str| {
        occurrences(log, "PIN login failed: wrong PIN")
            + occurrences(log, "PIN login refused: mailbox locked")
    };
    wait_for(Duration::from_secs(60), "20 PIN verdicts", || {
        (verdicts(&v.log()) >= 20).then_some(())
    });
    for c in calls {
        c.hang_up();
    }
    let log = v.log();
    let checked = occurrences(&log, "PIN login failed: wrong PIN");
    assert!(
        checked <= 5,
        "{checked} wrong PINs were checked against a limit of 5\n{log}"
    );
    assert_eq!(checked, 5, "the limit's worth of checks ran\n{log}");
    let store = FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).unwrap();
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    assert!(store.login_state(&id).unwrap().is_locked(SystemTime::now()));

    // The right PIN while locked: refused, vmail hangs up, still locked.
    let refused_before = occurrences(&log, "PIN login refused: mailbox locked");
    let mut c = Caller::call(v.sip_addr(), Ipv4Addr::LOCALHOST, "1001").expect("call");
    std::thread::sleep(Duration::from_millis(300));
    c.press("1234#");
    assert!(c.wait_for_bye(Duration::from_secs(30)), "{}", v.log());
    c.hang_up();
    let log = v.log();
    assert_eq!(
        occurrences(&log, "PIN login refused: mailbox locked"),
        refused_before + 1,
        "{log}"
    );
    assert_eq!(successful_logins(&log), 0, "{log}");
    let state = store.login_state(&id).unwrap();
    assert!(
        state.is_locked(SystemTime::now()),
        "lock cleared: {state:?}"
    );
}

/// 48 calls to numbers that do not exist press `#` at once: the PIN checks
/// (dummy hashes, 19 MiB each) run a few at a time, so the process stays
/// small, and it stays small round after round.
#[test]
fn parallel_pin_checks_keep_memory_bounded() {
    let v = vmail_with(|ext| {
        ext["pin_hash_workers"] = 2.into();
        ext["pin_hash_queue"] = 64.into();
        ext["access_rate_burst"] = 0.into();
    });
    let pid = v.pid().expect("running");
    let base = vm_rss_kib(pid);
    // Unknown callers: mailbox number, `#`, PIN, then the `#` together.
    let limit_kib = base + 160 * 1024;
    let mut peak = 0;
    for round in 0..2 {
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let sampling = sampling.clone();
            std::thread::spawn(move || {
                let mut peak = 0;
                // Bounded: at most 3 minutes of samples.
                for _ in 0..9000 {
                    if !sampling.load(Ordering::Relaxed) {
                        break;
                    }
                    peak = peak.max(vm_rss_kib(pid));
                    std::thread::sleep(Duration::from_millis(20));
                }
                peak
            })
        };
        let before = occurrences(&v.log(), "PIN login failed: no such mailbox");
        let calls = parallel_logins(&v, 48, "7{i}", &format!("5{round}{{i}}#1111"));
        wait_for(Duration::from_secs(120), "48 PIN checks", || {
            (occurrences(&v.log(), "PIN login failed: no such mailbox") >= before + 48)
                .then_some(())
        });
        sampling.store(false, Ordering::Relaxed);
        let round_peak = sampler.join().expect("sampler");
        peak = peak.max(round_peak);
        for c in calls {
            c.hang_up();
        }
        eprintln!(
            "round {round}: VmRSS base {base} KiB, peak {round_peak} KiB, after {} KiB",
            vm_rss_kib(pid)
        );
    }
    assert!(
        peak < limit_kib,
        "VmRSS peaked at {peak} KiB (base {base} KiB, bound {limit_kib} KiB)"
    );
    let after = vm_rss_kib(pid);
    assert!(after < limit_kib, "VmRSS {after} KiB after the rounds");
    assert!(
        v.log().contains("PIN check waits for a hashing turn"),
        "the pool never queued: {}",
        v.log()
    );
}

/// A burst of calls from one address gets 503 + Retry-After past the
/// limit; another address still gets in.
#[test]
fn a_call_burst_from_one_address_is_refused_while_another_gets_in() {
    let v = vmail_with(|ext| {
        ext["access_rate_burst"] = 3.into();
        ext["access_rate_per_minute"] = 1.into();
    });
    let mut answered = 0;
    let mut refused = Vec::new();
    for _ in 0..6 {
        match Caller::call(v.sip_addr(), Ipv4Addr::LOCALHOST, "5550100") {
            Ok(c) => {
                answered += 1;
                c.hang_up();
            }
            Err(r) => refused.push(r),
        }
    }
    assert_eq!(answered, 3, "{}", v.log());
    assert_eq!(refused.len(), 3);
    for r in &refused {
        assert_eq!(r.status, 503, "{}", r.text);
        let retry: u64 = r
            .header("Retry-After")
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After: {}", r.text));
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
    }
    // The log is written by another thread: wait for the line.
    wait_for(Duration::from_secs(5), "the refusal logged", || {
        v.log()
            .contains("rate limit of the source address")
            .then_some(())
    });
    // Another source address is not held back by the first one's burst.
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let c = Caller::call(v.sip_addr(), other, "5550100")
        .unwrap_or_else(|r| panic!("second address refused: {}", r.text));
    c.hang_up();
}

/// With one hashing worker and no queue, PIN checks that find the worker
/// busy are refused with "try later" and are not counted against the
/// mailbox: the count on disk is the number of checks that ran.
#[test]
fn a_full_hashing_queue_asks_to_try_later_and_counts_nothing() {
    let v = vmail_with(|ext| {
        ext["pin_hash_workers"] = 1.into();
        ext["pin_hash_queue"] = 0.into();
        ext["lockout_failures"] = 100.into();
        ext["access_rate_burst"] = 0.into();
    });
    let calls = parallel_logins(&v, 20, "1001", "99{i}");
    let verdicts = |log: &str| {
        occurrences(log, "PIN login failed: wrong PIN")
            + occurrences(log, "PIN check refused: the hashing queue is full")
    };
    wait_for(Duration::from_secs(60), "20 PIN verdicts", || {
        (verdicts(&v.log()) >= 20).then_some(())
    });
    let log = v.log();
    let busy = occurrences(&log, "PIN check refused: the hashing queue is full");
    let checked = occurrences(&log, "PIN login failed: wrong PIN");
    assert!(busy > 0, "no call found the worker busy\n{log}");
    let store = FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).unwrap();
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    assert_eq!(
        store.login_state(&id).unwrap().failures as usize,
        checked,
        "refused attempts were counted\n{log}"
    );
    // The refused callers were told ("try later", about 4 s) and hung up on.
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut hung_up = 0;
    for mut c in calls {
        if c.wait_for_bye(deadline.saturating_duration_since(Instant::now())) {
            hung_up += 1;
        }
        c.hang_up();
    }
    assert!(hung_up >= busy, "{hung_up} BYEs for {busy} refusals");
}

/// Calls that hang up while their PIN check waits for a turn leave the
/// queue: their PINs are never checked, and vmail serves the next caller.
#[test]
fn callers_who_hang_up_while_waiting_leave_the_hashing_queue() {
    let v = vmail_with(|ext| {
        ext["pin_hash_workers"] = 1.into();
        ext["pin_hash_queue"] = 64.into();
        ext["lockout_failures"] = 100.into();
        ext["access_rate_burst"] = 0.into();
    });
    let calls = parallel_logins_then(&v, 20, "1001", "99{i}", |c| {
        c.rtp_stop.store(true, Ordering::Relaxed);
        let _ = c.send("BYE", None);
        c.ended = true;
    });
    for c in calls {
        c.hang_up();
    }
    wait_for(Duration::from_secs(60), "20 menu calls ended", || {
        (occurrences(&v.log(), "menu call ended") >= 20).then_some(())
    });
    let log = v.log();
    let checked = occurrences(&log, "PIN login failed: wrong PIN");
    assert!(
        log.contains("PIN check waits for a hashing turn"),
        "nobody waited\n{log}"
    );
    assert!(
        checked < 20,
        "all 20 PINs were checked after their callers had gone\n{log}"
    );
    // The queue is empty again: the next caller logs in.
    let mut c = Caller::call(v.sip_addr(), Ipv4Addr::LOCALHOST, "1001").expect("call");
    std::thread::sleep(Duration::from_millis(300));
    c.press("1234#");
    wait_for(Duration::from_secs(30), "the next login", || {
        (successful_logins(&v.log()) == 1).then_some(())
    });
    c.hang_up();
}
