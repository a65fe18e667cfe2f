//! Attacks on the TCP path (see tests/security.rs): one source taking every
//! connection, messages trickled a byte at a time, oversize messages, and
//! the memory that unfinished messages hold.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use socket2::{Domain, Socket, Type};

use crate::common::*;

/// A TCP connection to `to` from the address `from` (any port).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .expect("bind the source address");
    sock.connect_timeout(&to.into(), Duration::from_secs(2))
        .expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    s
}

/// An OPTIONS over the TCP connection `s`.
fn options(s: &TcpStream, tag: &str) -> String {
    let local = s.local_addr().expect("local address");
    let to = s.peer_addr().expect("peer address");
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/TCP {local};branch=z9hG4bK-{tag};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag={tag}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: {tag}@{local}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// What the server sends until it closes, `wait` passes, or a full SIP
/// head is in (whichever is first); and whether it closed.
fn read_reply(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

/// The first line of the answer to an OPTIONS on `s`, if one comes.
fn ask(s: &mut TcpStream, tag: &str) -> Option<String> {
    if s.write_all(options(s, tag).as_bytes()).is_err() {
        return None;
    }
    let (reply, _) = read_reply(s, Duration::from_secs(3));
    reply
        .lines()
        .next()
        .filter(|l| l.starts_with("SIP/2.0 "))
        .map(str::to_string)
}

/// Whether the server closes `s` within `wait` (EOF or reset).
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn one_address_is_refused_past_its_limit_while_another_is_served() {
    let vm = Vmail::start_with(|ext| {
        ext["tcp_max_connections_per_address"] = json!(4);
    });
    let a = Ipv4Addr::new(127, 0, 0, 1);
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect_from(a, vm.sip_addr())).collect();
    for (i, s) in held.iter_mut().enumerate() {
        let first = ask(s, &format!("held{i}"));
        assert_eq!(first.as_deref(), Some("SIP/2.0 200 OK"), "connection {i}");
    }
    // The fifth from the same address is closed unanswered.
    let mut fifth = connect_from(a, vm.sip_addr());
    assert_eq!(ask(&mut fifth, "fifth"), None);
    assert!(closed_within(&mut fifth, Duration::from_secs(3)));
    // Another address is served, and so are the four held ones.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 2), vm.sip_addr());
    assert_eq!(ask(&mut other, "other").as_deref(), Some("SIP/2.0 200 OK"));
    assert_eq!(
        ask(&mut held[0], "again").as_deref(),
        Some("SIP/2.0 200 OK")
    );
    // A closed one frees its place.
    drop(held.pop());
    let mut retry = wait_for(Duration::from_secs(5), "a freed place", || {
        let mut s = connect_from(a, vm.sip_addr());
        ask(&mut s, "retry").map(|_| s)
    });
    assert_eq!(ask(&mut retry, "retry2").as_deref(), Some("SIP/2.0 200 OK"));
}

#[test]
fn the_overall_limit_refuses_every_source_beyond_it() {
    let vm = Vmail::start_with(|ext| {
        ext["tcp_max_connections"] = json!(3);
    });
    let mut held: Vec<TcpStream> = (1..=3)
        .map(|i| connect_from(Ipv4Addr::new(127, 0, 0, i), vm.sip_addr()))
        .collect();
    for (i, s) in held.iter_mut().enumerate() {
        assert_eq!(
            ask(s, &format!("all{i}")).as_deref(),
            Some("SIP/2.0 200 OK")
        );
    }
    let mut fourth = connect_from(Ipv4Addr::new(127, 0, 0, 4), vm.sip_addr());
    assert_eq!(ask(&mut fourth, "fourth"), None);
    // The log is written by another thread: wait for the line.
    wait_for(Duration::from_secs(5), "the refusal logged", || {
        vm.log().contains("the overall limit").then_some(())
    });
}

#[test]
fn keep_alives_hold_an_idle_connection_and_silence_closes_it() {
    let vm = Vmail::start_with(|ext| {
        ext["tcp_idle_seconds"] = json!(2);
    });
    let mut s = connect_from(Ipv4Addr::LOCALHOST, vm.sip_addr());
    // RFC 5626 keep-alives (CRLFCRLF) for twice the idle timeout.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        s.write_all(b"\r\n\r\n").expect("keep-alive");
        assert!(!closed_within(&mut s, Duration::from_millis(500)));
    }
    assert_eq!(ask(&mut s, "alive").as_deref(), Some("SIP/2.0 200 OK"));
    // Then silence: closed as idle.
    assert!(closed_within(&mut s, Duration::from_secs(6)));
}

#[test]
fn a_trickled_message_is_closed_after_the_bound_though_bytes_keep_coming() {
    let vm = Vmail::start_with(|ext| {
        ext["tcp_message_seconds"] = json!(2);
    });
    let mut s = connect_from(Ipv4Addr::LOCALHOST, vm.sip_addr());
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let msg = options(&s, "trickle");
    // One byte every 100 ms: the whole message would take far longer than
    // the 2 s bound; the connection must be closed before it is complete.
    let mut closed_after = None;
    let mut buf = [0u8; 256];
    for (i, b) in msg.as_bytes().iter().enumerate() {
        if s.write_all(&[*b]).is_err() {
            closed_after = Some(i);
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(i);
                break;
            }
            Ok(_) => panic!("an answer to an unfinished message"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed_after = Some(i);
                break;
            }
        }
    }
    let sent = closed_after.expect("the trickled message was never cut off");
    assert!(sent < msg.len(), "{sent} of {} bytes", msg.len());
    assert!(
        vm.log().contains("message not complete within 2 s"),
        "the log says why"
    );
    // The server still serves a well-behaved client.
    let mut ok = connect_from(Ipv4Addr::LOCALHOST, vm.sip_addr());
    assert_eq!(ask(&mut ok, "after").as_deref(), Some("SIP/2.0 200 OK"));
}

#[test]
fn an_oversize_message_gets_413_and_endless_headers_513() {
    let vm = Vmail::start();
    let mut s = connect_from(Ipv4Addr::LOCALHOST, vm.sip_addr());
    let head = options(&s, "big").replace("Content-Length: 0", "Content-Length: 100000");
    s.write_all(head.as_bytes()).expect("send");
    s.write_all(&[b'x'; 4000]).expect("send some of the body");
    let (reply, _) = read_reply(&mut s, Duration::from_secs(5));
    assert!(reply.starts_with("SIP/2.0 413 "), "reply: {reply:?}");
    assert!(reply.contains("CSeq: 1 OPTIONS\r\n"), "{reply}");
    assert!(closed_within(&mut s, Duration::from_secs(5)));

    let mut s = connect_from(Ipv4Addr::LOCALHOST, vm.sip_addr());
    let head = options(&s, "wide").replace("Content-Length: 0\r\n\r\n", "");
    s.write_all(head.as_bytes()).expect("send");
    let pad = format!("X-Pad: {}\r\n", "p".repeat(1000));
    for _ in 0..70 {
        if s.write_all(pad.as_bytes()).is_err() {
            break;
        }
    }
    let (reply, _) = read_reply(&mut s, Duration::from_secs(5));
    assert!(reply.starts_with("SIP/2.0 513 "), "reply: {reply:?}");
    assert!(closed_within(&mut s, Duration::from_secs(5)));
}

/// VmRSS of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn memory_held_by_unfinished_messages_is_given_back_when_they_close() {
    const CONNS: usize = 800;
    const BODY: usize = 60_000;
    let vm = Vmail::start_with(|ext| {
        ext["tcp_max_connections_per_address"] = json!(2000);
        ext["tcp_message_seconds"] = json!(60);
    });
    let pid = vm.pid().expect("vmail runs");
    let before = rss_kb(pid);
    let mut conns = Vec::with_capacity(CONNS);
    for i in 0..CONNS {
        let mut s = connect_from(Ipv4Addr::LOCALHOST, vm.sip_addr());
        let head = options(&s, &format!("m{i}"))
            .replace("Content-Length: 0", &format!("Content-Length: {BODY}"));
        s.write_all(head.as_bytes()).expect("send the head");
        s.write_all(&vec![b'x'; BODY - 100])
            .expect("send most of the body");
        conns.push(s);
    }
    // The unfinished messages are held: about 48 MB.
    let held_kb = (CONNS * BODY / 1024) as u64;
    let peak = wait_for(
        Duration::from_secs(20),
        "vmail to hold the messages",
        || {
            let r = rss_kb(pid);
            (r > before + held_kb * 3 / 4).then_some(r)
        },
    );
    drop(conns);
    // Closed: at least a third of what they took goes back to the system
    // (not merely to the allocator's free lists). The allocator gives pages
    // back on its next activity, so the server is kept lightly busy.
    // The allocator hands freed pages back to the system lazily: when the
    // threads that own them allocate again (seen: 2 to 16 s after the close
    // with UDP probes alone). Ordinary traffic goes on meanwhile, including
    // a few large unfinished messages like the flood's (which reuse the
    // freed pages rather than taking new ones), for up to about 40 s.
    // A leak keeps all of it; the allocator keeps some freed segments
    // cached per thread (about half of the peak was seen to stay for a
    // while): at least a third must go back.
    let limit = before + (peak - before) * 2 / 3;
    let settled = (0..120).find_map(|i| {
        std::thread::sleep(Duration::from_millis(250));
        sip_options_probe(vm.sip_addr(), Duration::from_millis(200));
        let mut busy = Vec::new();
        for k in 0..4 {
            let mut s = connect_from(Ipv4Addr::LOCALHOST, vm.sip_addr());
            let head = options(&s, &format!("settle{i}x{k}"))
                .replace("Content-Length: 0", &format!("Content-Length: {BODY}"));
            if s.write_all(head.as_bytes()).is_ok() {
                let _ = s.write_all(&vec![b'x'; BODY / 2]);
            }
            busy.push(s);
        }
        std::thread::sleep(Duration::from_millis(50));
        drop(busy);
        let r = rss_kb(pid);
        (r <= limit).then_some(r)
    });
    assert!(
        settled.is_some(),
        "RSS before {before} kB, peak {peak} kB, after closing {} kB (limit {limit} kB)",
        rss_kb(pid)
    );
    // And it still serves.
    let mut ok = connect_from(Ipv4Addr::LOCALHOST, vm.sip_addr());
    assert_eq!(ask(&mut ok, "after").as_deref(), Some("SIP/2.0 200 OK"));
}
