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
    let out = run_bounded(cmd, Duration::from_secs(30)).expect("run openssl (Debian package openssl)");
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
    let (code, body) = http_get(v.http_addr(), "/metrics", Duration::from_secs(5)).expect("GET /metrics");
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
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
fn pjsua_call(proxy: SocketAddr, transport: &str, srtp: &str, target: &str, extra: &[&str]) -> Option<PjsuaRun> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, tones) = read_wav(&media("tones.wav"));
    let mut audio = vec![0i16; 8000];
    audio.extend_from_slice(&tones);
    let wav = dir.path().join("caller.wav");
    write_wav(&wav, 8000, &audio);
    let target = format!("sip:{target}@{DOMAIN}");
    let proxy = proxy.to_string();
    let wav = wav.display().to_string();
    let mut args = vec![
        "--target", &target, "--proxy", &proxy, "--transport", transport, "--srtp", srtp,
        "--caller", "sip:5557777@test.rootdomain.ru", "--codecs", "PCMU,PCMA", "--timeout", "40",
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
    let Some(wire) = Wire::watch(t.v.rtp_ports) else { return };
    let run = pjsua_call(t.tls_addr(), "tls", "mandatory", "1001", &["--hangup-after-seconds", "4.5"])
        .expect("python present");
    run.assert_success("deposit over TLS with SRTP");
    let datagrams = wire.finish();
    let wavs = wait_for_files(&inbox(&t.v), ".wav", 1, Duration::from_secs(10));
    let (_, pcm) = read_wav(&wavs[0]);
    assert_test_tones(&tone_sequence(&pcm, 8000), 60);
    assert!(datagrams.len() > 100, "only {} datagrams seen", datagrams.len());
    assert_eq!(datagrams_with_the_tone(&datagrams), 0, "the tone travels in clear");
    // PCMU, 20 ms, with the 80-bit tag: 12 + 160 + 10 bytes each way.
    let srtp_sized = datagrams.iter().filter(|d| d.len() == 182).count();
    assert!(srtp_sized > 100, "{srtp_sized} datagrams of SRTP size");
    assert!(t.v.log().contains("SIP/2.0/TLS") || metric(&t.v, "vmail_tls_handshakes_total") >= 1.0);

    // The control: over UDP in clear, the same check finds the tone.
    let Some(wire) = Wire::watch(t.v.rtp_ports) else { return };
    let run = pjsua_call(t.v.sip_addr(), "udp", "off", "1001", &["--hangup-after-seconds", "4.5"])
        .expect("python present");
    run.assert_success("deposit over UDP");
    let clear = wire.finish();
    assert!(datagrams_with_the_tone(&clear) > 20, "the check does not see the tone in clear");
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
            "--record", &heard_arg, "--hangup-after-seconds", "14",
            "--dtmf", "1.0:1001#", "--dtmf", "3.0:1234#", "--dtmf", "6.0:1",
        ],
    )
    .expect("python present");
    run.assert_success("retrieval over TLS with SRTP");
    let (_, pcm) = read_wav(&heard);
    let freqs: Vec<u32> = tone_sequence(&pcm, 8000).iter().map(|t| t.freq).collect();
    let found = TEST_TONES_HZ.iter().filter(|f| freqs.contains(f)).count();
    assert!(found >= 4, "the message was not heard: {freqs:?}\n{}", t.v.log());
    assert!(!t.v.log().contains("panicked"));
}
