//! SIP over TLS and SRTP (SDES) against real peers: pjsua2 over TLS with
//! SRTP deposits and retrieves (the wire shows no G.711 of the tone it
//! played), SDES over UDP is refused by default, SRTP with a wrong key
//! stores nothing but silence, and the TLS port survives plaintext,
//! garbage and slow handshakes and reloads its certificate on SIGHUP.
//!
//! The certificates are made at run time with the `openssl` command.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use vmail::store::{FsStore, GreetingKind, MailboxId, PinCost};
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

// ---------------------------------------------------------------------------
// Certificates, vmail with TLS

/// A self-signed certificate for 127.0.0.1 and its key, made by `openssl`.
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=vmail-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    let out =
        run_bounded(cmd, Duration::from_secs(30)).expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

struct TlsVmail {
    v: Vmail,
    tls_port: u16,
    dir: tempfile::TempDir,
}

impl TlsVmail {
    fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.tls_port))
    }
}

/// vmail with SIP over TLS on a port of its own, demo mailboxes 1001
/// (PIN 1234) and `*98` as the access number.
fn vmail_tls(tweak: impl FnOnce(&mut Value) + 'static) -> TlsVmail {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = make_cert(dir.path(), "server");
    let tls_port = free_tcp_port();
    let v = Vmail::builder()
        .ext(move |ext| {
            ext["sip_tls_port"] = json!(tls_port);
            ext["tls_cert"] = json!(cert);
            ext["tls_key"] = json!(key);
            ext["access_numbers"] = json!(["*98"]);
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
            tweak(ext);
        })
        .start();
    TlsVmail { v, tls_port, dir }
}

/// The stored messages (WAV paths) of 1001.
fn messages(v: &Vmail) -> Vec<PathBuf> {
    files_with_suffix(&inbox(v), ".wav")
}

fn inbox(v: &Vmail) -> PathBuf {
    v.mailbox_dir("1001", DOMAIN).join("INBOX")
}

/// A short greeting for 1001 (100 ms of 300 Hz, then the beep), so that
/// recording starts about half a second after the answer.
fn short_greeting(v: &Vmail) {
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let pcm = vmail::media::tone(300.0, 100, 8000, 8000);
    FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly)
        .expect("open store")
        .store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .unwrap();
}

fn metric(v: &Vmail, series: &str) -> f64 {
    let (code, body) =
        http_get(v.http_addr(), "/metrics", Duration::from_secs(5)).expect("GET /metrics");
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{body}"))
}

// ---------------------------------------------------------------------------
// What travels on the loopback interface

/// Every UDP datagram to or from a port in `ports` on the loopback
/// interface, seen by a packet socket (needs root, as in CI) while it
/// lives: the wire, without changing the path of the media.
struct Wire {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Wire {
    fn watch(ports: (u16, u16)) -> Option<Wire> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
        let fd = match socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK,
            SockProtocol::EthAll,
        ) {
            Ok(fd) => fd,
            Err(e) => {
                skip_or_fail(&format!("a packet socket to watch the wire (root): {e}"));
                return None;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, out) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                match nix::sys::socket::recv(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    &mut buf,
                    nix::sys::socket::MsgFlags::empty(),
                ) {
                    Ok(n) => {
                        if let Some(p) = udp_payload(&buf[..n], ports) {
                            out.lock().unwrap().push(p.to_vec());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Some(Wire {
            stop,
            seen,
            thread: Some(thread),
        })
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// The payload of an IPv4 UDP datagram in an Ethernet frame (loopback
/// frames have an all-zero Ethernet header) with either port in `ports`.
fn udp_payload(frame: &[u8], ports: (u16, u16)) -> Option<&[u8]> {
    let ip = frame.get(14..)?;
    if frame.get(12..14)? != [0x08, 0x00] || ip.first()? >> 4 != 4 || *ip.get(9)? != 17 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let udp = ip.get(ihl..)?;
    let src = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
    let dst = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let inside = |p: u16| (ports.0..=ports.1).contains(&p);
    (inside(src) || inside(dst)).then(|| udp.get(8..)).flatten()
}

/// 16-byte pieces of the G.711 (μ-law and A-law) encoding of the tones of
/// `media/tones.wav`, where they are not silence.
fn tone_pieces() -> HashSet<Vec<u8>> {
    let (_, pcm) = read_wav(&media("tones.wav"));
    let mut set = HashSet::new();
    for pt in [0u8, 8] {
        let enc: Vec<u8> = pcm.iter().map(|&s| g711_encode(pt, s)).collect();
        let loud: Vec<bool> = pcm.iter().map(|s| s.unsigned_abs() > 200).collect();
        for (i, w) in enc.windows(16).enumerate() {
            if loud[i..i + 16].iter().filter(|l| **l).count() >= 8 {
                set.insert(w.to_vec());
            }
        }
    }
    set
}

/// How many of `datagrams` carry a piece of the tone's G.711 in clear.
fn datagrams_with_the_tone(datagrams: &[Vec<u8>]) -> usize {
    let pieces = tone_pieces();
    datagrams
        .iter()
        .filter(|d| d.windows(16).any(|w| pieces.contains(w)))
        .count()
}

// ---------------------------------------------------------------------------
// pjsua2

/// pjsua2 (tests/pjsua/deposit.py) calls `target` through `proxy` over
/// `transport`, with `srtp` (`off`/`mandatory`), playing the test tones
/// after a second of silence; extra arguments follow.
fn pjsua_call(
    proxy: SocketAddr,
    transport: &str,
    srtp: &str,
    target: &str,
    extra: &[&str],
) -> Option<PjsuaRun> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tones) = read_wav(&media("tones.wav"));
    let mut audio = vec![0i16; 8000];
    audio.extend_from_slice(&tones);
    let wav = dir.path().join("caller.wav");
    write_wav(&wav, 8000, &audio);
    let target = if target.contains(':') {
        target.to_string()
    } else {
        format!("sip:{target}@{DOMAIN}")
    };
    let proxy = proxy.to_string();
    let wav = wav.display().to_string();
    let mut args = vec![
        "--target",
        &target,
        "--proxy",
        &proxy,
        "--transport",
        transport,
        "--srtp",
        srtp,
        "--caller",
        "sip:5557777@test.rootdomain.ru",
        "--codecs",
        "PCMU,PCMA",
        "--timeout",
        "40",
    ];
    if !extra.contains(&"--record") {
        args.extend(["--wav", wav.as_str()]);
    }
    args.extend_from_slice(extra);
    pjsua("deposit.py", &args)
}

fn pjsua_ready() -> bool {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return false;
    }
    true
}

/// A deposit from pjsua2 over TLS with SRTP: stored with the tones in
/// order, and no datagram on the media ports carries the tone in clear,
/// while the same call over UDP without SRTP does (the check sees it).
/// Then the same client logs in over TLS with SRTP and hears the message.
#[test]
fn pjsua_over_tls_with_srtp_deposits_and_retrieves_and_the_wire_shows_no_tone() {
    if !pjsua_ready() {
        return;
    }
    let t = vmail_tls(|_| {});
    short_greeting(&t.v);
    let Some(wire) = Wire::watch(t.v.rtp_ports) else {
        return;
    };
    let run = pjsua_call(
        t.tls_addr(),
        "tls",
        "mandatory",
        "1001",
        &["--hangup-after-seconds", "4.5"],
    )
    .expect("python present");
    run.assert_success("deposit over TLS with SRTP");
    let datagrams = wire.finish();
    let wavs = wait_for_files(&inbox(&t.v), ".wav", 1, Duration::from_secs(10));
    let (_, pcm) = read_wav(&wavs[0]);
    assert_test_tones(&tone_sequence(&pcm, 8000), 60);
    assert!(
        datagrams.len() > 100,
        "only {} datagrams seen",
        datagrams.len()
    );
    assert_eq!(
        datagrams_with_the_tone(&datagrams),
        0,
        "the tone travels in clear"
    );
    // PCMU, 20 ms, with the 80-bit tag: 12 + 160 + 10 bytes each way.
    let srtp_sized = datagrams.iter().filter(|d| d.len() == 182).count();
    assert!(srtp_sized > 100, "{srtp_sized} datagrams of SRTP size");
    assert!(t.v.log().contains("SIP/2.0/TLS") || metric(&t.v, "vmail_tls_handshakes_total") >= 1.0);

    // The control: over UDP in clear, the same check finds the tone.
    let Some(wire) = Wire::watch(t.v.rtp_ports) else {
        return;
    };
    let run = pjsua_call(
        t.v.sip_addr(),
        "udp",
        "off",
        "1001",
        &["--hangup-after-seconds", "4.5"],
    )
    .expect("python present");
    run.assert_success("deposit over UDP");
    let clear = wire.finish();
    assert!(
        datagrams_with_the_tone(&clear) > 20,
        "the check does not see the tone in clear"
    );
    wait_for_files(&inbox(&t.v), ".wav", 2, Duration::from_secs(10));

    // Retrieval over TLS with SRTP: mailbox, PIN, play the first message.
    let heard = t.dir.path().join("heard.wav");
    let heard_arg = heard.display().to_string();
    let run = pjsua_call(
        t.tls_addr(),
        "tls",
        "mandatory",
        "*98",
        &[
            "--record",
            &heard_arg,
            "--hangup-after-seconds",
            "14",
            "--dtmf",
            "1.0:1001#",
            "--dtmf",
            "3.0:1234#",
            "--dtmf",
            "6.0:1",
        ],
    )
    .expect("python present");
    run.assert_success("retrieval over TLS with SRTP");
    let (_, pcm) = read_wav(&heard);
    let freqs: Vec<u32> = tone_sequence(&pcm, 8000).iter().map(|t| t.freq).collect();
    let found = TEST_TONES_HZ.iter().filter(|f| freqs.contains(f)).count();
    assert!(
        found >= 4,
        "the message was not heard: {freqs:?}\n{}",
        t.v.log()
    );
    assert!(!t.v.log().contains("panicked"));
}

/// SDES keys in SDP that came over UDP are refused with 488 by default:
/// anyone on the path could read them.
#[test]
fn sdes_keys_over_udp_are_refused_by_default() {
    if !pjsua_ready() {
        return;
    }
    let t = vmail_tls(|_| {});
    let run = pjsua_call(
        t.v.sip_addr(),
        "udp",
        "mandatory",
        "1001",
        &["--srtp-secure-signaling", "0", "--expect-status", "488"],
    )
    .expect("python present");
    run.assert_success("SRTP offered over UDP");
    assert!(
        t.v.log().contains("SRTP is accepted over SIP/TLS only"),
        "{}",
        t.v.log()
    );
    assert!(metric(&t.v, "vmail_calls_refused_total{reason=\"not_acceptable\"}") >= 1.0);
}

// ---------------------------------------------------------------------------
// The test as the SRTP peer (SIP by sipp over UDP, ext.srtp_over_insecure)

const SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

/// What the test's SRTP peer did.
struct PeerRun {
    /// Datagrams received from vmail.
    received: Vec<Vec<u8>>,
}

/// Waits for vmail's first datagram on `sock`, then sends a second of
/// silence and the test tones as PCMA in SRTP with `key` (each packet
/// twice when `replay`), paced at 20 ms, and keeps reading what vmail
/// sends until `until`.
fn srtp_peer(sock: UdpSocket, key: [u8; 30], replay: bool, until: Instant) -> JoinHandle<PeerRun> {
    std::thread::spawn(move || {
        let mut received = Vec::new();
        let mut buf = [0u8; 2048];
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let vmail = loop {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                received.push(buf[..n].to_vec());
                break from;
            }
            assert!(Instant::now() < deadline, "vmail sent nothing");
        };
        let mut ctx = Context::new(
            &key[..16],
            &key[16..],
            ProtectionProfile::Aes128CmHmacSha1_80,
            None,
            None,
        )
        .expect("srtp context");
        let (_, tones) = read_wav(&media("tones.wav"));
        let mut audio = vec![0i16; 8000];
        audio.extend_from_slice(&tones);
        let start = Instant::now();
        for (i, frame) in audio.chunks(160).enumerate() {
            let mut p = vec![0x80, 8];
            p.extend_from_slice(&(i as u16).to_be_bytes());
            p.extend_from_slice(&((i * 160) as u32).to_be_bytes());
            p.extend_from_slice(&0x5eed_5eedu32.to_be_bytes());
            p.extend(frame.iter().map(|&s| g711_encode(8, s)));
            let s = ctx.encrypt_rtp(&p).expect("encrypt");
            sock.send_to(&s, vmail).unwrap();
            if replay {
                sock.send_to(&s, vmail).unwrap();
            }
            let due = start + Duration::from_millis(20 * (i as u64 + 1));
            while Instant::now() < due {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    received.push(buf[..n].to_vec());
                }
            }
        }
        while Instant::now() < until {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                received.push(buf[..n].to_vec());
            }
        }
        PeerRun { received }
    })
}

/// One SDES deposit over UDP offering `offered`, the peer sending with
/// `sending`.
fn srtp_deposit(v: &Vmail, offered: [u8; 30], sending: [u8; 30], replay: bool) -> Option<PeerRun> {
    let sock = UdpSocket::bind((LOCALHOST, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    let hold_ms = 1500 + 3500 + 1000;
    let peer = srtp_peer(
        sock,
        sending,
        replay,
        Instant::now() + Duration::from_millis(hold_ms + 500),
    );
    let run = Sipp::uac("deposit_srtp_peer.xml", v.sip_addr())
        .mailbox("1001")
        .key("rtp_port", &port.to_string())
        .key("crypto_suite", SUITE)
        .key("crypto_key", &STANDARD.encode(offered))
        .hold_ms(hold_ms)
        .run()?;
    run.assert_success("deposit_srtp_peer.xml");
    Some(peer.join().expect("srtp peer"))
}

/// With the key it offered, the test's SRTP is recorded (replayed packets
/// dropped and counted: the tones keep their timing); vmail's own packets
/// are SRTP (nothing of the greeting in clear). With another key nothing
/// is recorded but silence (or nothing at all), and the failures are
/// counted.
#[test]
fn srtp_with_the_right_key_is_recorded_and_with_a_wrong_key_never() {
    if sipp_bin().is_none() {
        return;
    }
    let t = vmail_tls(|ext| ext["srtp_over_insecure"] = json!(true));
    short_greeting(&t.v);
    let key = [7u8; 30];
    let Some(peer) = srtp_deposit(&t.v, key, key, true) else {
        return;
    };
    let wavs = wait_for_files(&inbox(&t.v), ".wav", 1, Duration::from_secs(10));
    let (_, pcm) = read_wav(&wavs[0]);
    assert_test_tones(&tone_sequence(&pcm, 8000), 60);
    assert!(peer.received.len() > 20);
    assert!(
        peer.received.iter().all(|d| d.len() == 12 + 160 + 10),
        "vmail sent other than SRTP"
    );
    assert!(metric(&t.v, "vmail_srtp_replayed_total") >= 100.0);

    let wrong = [9u8; 30];
    let Some(_) = srtp_deposit(&t.v, key, wrong, false) else {
        return;
    };
    wait_for(Duration::from_secs(10), "the call's end", || {
        t.v.log().contains("call ended received=").then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    for wav in messages(&t.v).iter().filter(|w| **w != wavs[0]) {
        let (_, pcm) = read_wav(wav);
        let loudest = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(loudest < 50, "a wrong key recorded sound: peak {loudest}");
    }
    assert!(metric(&t.v, "vmail_srtp_auth_failed_total") >= 100.0);
    assert!(!t.v.log().contains("panicked"));
}

// ---------------------------------------------------------------------------
// The TLS port itself

/// A TLS client that trusts `cert` only.
fn tls_client(cert: &Path) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// OPTIONS over TLS with a client trusting `cert`: the response, and the
/// certificate the server showed.
fn options_over_tls(addr: SocketAddr, cert: &Path) -> Result<(String, Vec<u8>), String> {
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let conn = rustls::ClientConnection::new(tls_client(cert), name).map_err(|e| e.to_string())?;
    let sock =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let local = tls.sock.local_addr().unwrap();
    let req = format!(
        "OPTIONS sips:1001@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{}\r\n\
         From: <sips:probe@{DOMAIN}>;tag=p1\r\nTo: <sips:1001@{DOMAIN}>\r\nCall-ID: tls-{}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        local.port(),
        local.port()
    );
    tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let shown = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok((String::from_utf8_lossy(&got).into_owned(), shown))
}

fn pem_der(cert: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(cert)
        .unwrap()
        .to_vec()
}

/// Plaintext SIP, garbage and a client that never finishes its handshake
/// are cut off with a log line and counted; the port keeps serving TLS,
/// and `openssl s_client` gets the certificate.
#[test]
fn the_tls_port_refuses_plaintext_garbage_and_slow_handshakes_and_keeps_serving() {
    let t = vmail_tls(|ext| ext["tcp_message_seconds"] = json!(2));
    let cert = t.dir.path().join("server.crt");
    let addr = t.tls_addr();

    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .write_all(b"OPTIONS sip:1001@test.rootdomain.ru SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5;branch=z9hG4bKp\r\n\r\n")
        .unwrap();
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0, 0, 0, 0xde, 0xad])
        .unwrap();
    garbage.write_all(&[0xab; 2000]).unwrap();
    let slow = TcpStream::connect(addr).unwrap();
    for mut s in [plain, garbage] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1024];
        // Closed, after at most a TLS alert: never a SIP answer in clear.
        let mut got = Vec::new();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            !String::from_utf8_lossy(&got).contains("SIP/2.0"),
            "{got:?}"
        );
    }
    let mut s = slow;
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let started = Instant::now();
    let n = s.read(&mut [0u8; 64]).unwrap_or(0);
    assert_eq!(n, 0, "a silent client is closed");
    assert!(started.elapsed() < Duration::from_secs(5));

    let (resp, _) = options_over_tls(addr, &cert).expect("OPTIONS over TLS");
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    assert!(resp.contains("Via: SIP/2.0/TLS"), "{resp}");
    assert!(
        metric(
            &t.v,
            "vmail_tls_handshakes_failed_total{reason=\"protocol\"}"
        ) >= 2.0
    );
    assert!(
        metric(
            &t.v,
            "vmail_tls_handshakes_failed_total{reason=\"timeout\"}"
        ) >= 1.0
    );
    assert!(metric(&t.v, "vmail_tls_handshakes_total") >= 1.0);
    assert!(
        t.v.log().contains("SIP/TLS handshake failed"),
        "{}",
        t.v.log()
    );

    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), "-brief"])
        .stdin(std::process::Stdio::null());
    let out = run_bounded(cmd, Duration::from_secs(20)).expect("openssl s_client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("CN = vmail-test") || text.contains("CN=vmail-test"),
        "{text}"
    );
    assert!(!t.v.log().contains("panicked"));
}

/// SIGHUP: new connections get the renewed certificate; a certificate
/// that does not go with its key is refused and the one in use stays.
#[test]
fn sighup_reloads_the_certificate_and_refuses_a_broken_one() {
    let t = vmail_tls(|_| {});
    let cert = t.dir.path().join("server.crt");
    let key = t.dir.path().join("server.key");
    let (_, first) = options_over_tls(t.tls_addr(), &cert).expect("first certificate");
    assert_eq!(first, pem_der(&cert));

    let (new_cert, new_key) = make_cert(t.dir.path(), "renewed");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    t.v.sighup();
    wait_for(Duration::from_secs(10), "the reload", || {
        t.v.log()
            .contains("SIP/TLS certificate reloaded")
            .then_some(())
    });
    let (resp, shown) = options_over_tls(t.tls_addr(), &cert).expect("renewed certificate");
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    assert_eq!(shown, pem_der(&new_cert));

    // A key of another certificate: the reload is refused.
    let (_, other_key) = make_cert(t.dir.path(), "other");
    std::fs::copy(&other_key, &key).unwrap();
    t.v.sighup();
    wait_for(Duration::from_secs(10), "the refusal", || {
        t.v.log().contains("configuration rejected").then_some(())
    });
    assert!(t.v.log().contains("do not go together"), "{}", t.v.log());
    let (_, shown) = options_over_tls(t.tls_addr(), &cert).expect("still serving");
    assert_eq!(shown, pem_der(&new_cert));
}

/// A call to a `sips:` URI: vmail's BYE (the message reached its
/// longest) goes to the caller on the caller's own TLS connection.
#[test]
fn vmail_hangs_up_over_the_callers_tls_connection() {
    if !pjsua_ready() {
        return;
    }
    let t = vmail_tls(|ext| ext["max_message_seconds"] = json!(2));
    short_greeting(&t.v);
    let run = pjsua_call(
        t.tls_addr(),
        "tls",
        "mandatory",
        &format!("sips:1001@{DOMAIN}"),
        &["--wait-bye", "--timeout", "20"],
    )
    .expect("python present");
    run.assert_success("deposit over TLS ended by vmail");
    assert_eq!(run.field("hung_up_by"), "remote", "{:?}", run.result);
    wait_for_files(&inbox(&t.v), ".wav", 1, Duration::from_secs(10));
}
