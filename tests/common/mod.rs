//! Shared helpers for vmail's integration tests (`mod common;` in a test file).
//!
//! - [`Vmail`]: the real `vmail` binary, started on free 127.0.0.1 ports with a
//!   temporary configuration and SiteShare; killed on drop, its log printed
//!   when the test fails.
//! - [`Sipp`]: sipp scenarios from `tests/sipp/` (bounded, 127.0.0.1 only),
//!   with the trace files collected into a [`SippRun`].
//! - [`pjsua`]: the pjsua2 scripts in `tests/pjsua/` (a real SIP client
//!   library), run with `VMAIL_PYTHON`.
//! - [`RtpPeer`]: a plain UDP socket that is the caller's RTP endpoint: records
//!   exactly what vmail sends, can send audio and RFC 4733 DTMF back.
//! - [`read_wav`] / [`tone_sequence`]: find the tones of `media/tones.wav`
//!   (Goertzel) in a recorded message or in what a caller heard.
//!
//! Policy for external tools (sipp, python with pjsua2): when one is missing the
//! helper prints `SKIP: ...` and returns `None`, so the test returns early;
//! with `CI=true` a missing tool is a failure (panic). `bash scripts/test.sh`
//! installs them. See docs/testing.md.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// The domain the test configurations serve.
pub const DOMAIN: &str = "test.rootdomain.ru";
/// The loopback address every test process uses.
pub const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// Frequencies (Hz) of the tones in `media/tones.wav`, in order.
pub const TEST_TONES_HZ: [u32; 5] = [400, 600, 800, 1000, 1200];
/// Onsets (ms) of the tones in `media/tones.wav`.
pub const TEST_TONES_ONSET_MS: [u32; 5] = [200, 700, 1200, 1700, 2200];
/// Hard limit for any external process a helper starts.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// Paths and environment

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `media/`.
pub fn media(name: &str) -> PathBuf {
    repo_root().join("media").join(name)
}

/// A scenario file under `tests/sipp/`.
pub fn sipp_scenario(name: &str) -> PathBuf {
    repo_root().join("tests").join("sipp").join(name)
}

/// A script under `tests/pjsua/`.
pub fn pjsua_script(name: &str) -> PathBuf {
    repo_root().join("tests").join("pjsua").join(name)
}

/// True when running in CI (`CI=true`): missing tools fail instead of skipping.
pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Ok("true" | "1" | "yes")
    )
}

/// Report a missing tool: panic in CI, print `SKIP: ...` otherwise.
pub fn skip_or_fail(what: &str) {
    if in_ci() {
        panic!("{what} (CI=true: a missing test tool is a failure; `bash scripts/test.sh` installs it)");
    }
    eprintln!("SKIP: {what} -- run `bash scripts/test.sh` to install the test tools");
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The sipp binary (`VMAIL_SIPP`, else `sipp` on PATH), or `None` after
/// [`skip_or_fail`].
pub fn sipp_bin() -> Option<PathBuf> {
    static SIPP: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = SIPP
        .get_or_init(|| {
            std::env::var_os("VMAIL_SIPP")
                .map(PathBuf::from)
                .or_else(|| find_in_path("sipp"))
        })
        .clone();
    if found.is_none() {
        skip_or_fail("sipp not found (Debian package sip-tester)");
    }
    found
}

/// The Python that has pjsua2 (`VMAIL_PYTHON`, else `<repo>/.venv/bin/python`),
/// or `None` after [`skip_or_fail`].
pub fn pjsua_python() -> Option<PathBuf> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PY.get_or_init(|| {
        let py = std::env::var_os("VMAIL_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
        python_importing(py, "pjsua2")
    });
    found_or_skip(found)
}

/// `py` if it exists and imports `module`, else why not.
fn python_importing(py: PathBuf, module: &str) -> Result<PathBuf, String> {
    if !py.exists() {
        return Err(format!("python for {module} not found at {}", py.display()));
    }
    let mut cmd = Command::new(&py);
    cmd.args(["-c", &format!("import {module}")]);
    match run_bounded(cmd, Duration::from_secs(30)) {
        Ok(out) if out.status.success() => Ok(py),
        Ok(out) => Err(format!(
            "{} cannot import {module}: {}",
            py.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {}: {e}", py.display())),
    }
}

/// The found tool, or `None` after [`skip_or_fail`] with why not.
fn found_or_skip(found: &Result<PathBuf, String>) -> Option<PathBuf> {
    match found {
        Ok(p) => Some(p.clone()),
        Err(msg) => {
            skip_or_fail(msg);
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Ports and waiting

/// Ports for the test's own listeners come from 10000-19999: below the
/// kernel's ephemeral range (32768 and up, where every outgoing connection
/// takes its source port, so a port found free there can be taken again
/// before the test's peer binds it) and below the RTP ranges (20000 and
/// up). Each test process starts at its own offset and walks the range.
fn next_listen_port(free: impl Fn(u16) -> bool) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const BASE: u16 = 10000;
    const SPAN: u16 = 10000;
    let offset = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = BASE + offset.wrapping_add(step.wrapping_mul(7)) % SPAN;
        if free(port) {
            return port;
        }
    }
    panic!("no free port in 10000-19999 on 127.0.0.1");
}

/// A UDP port free on 127.0.0.1 right now.
pub fn free_udp_port() -> u16 {
    next_listen_port(|p| UdpSocket::bind((LOCALHOST, p)).is_ok())
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_tcp_port() -> u16 {
    next_listen_port(|p| TcpListener::bind((LOCALHOST, p)).is_ok())
}

/// A port free for both UDP and TCP (a SIP port serves both).
pub fn free_sip_port() -> u16 {
    next_listen_port(|p| {
        UdpSocket::bind((LOCALHOST, p)).is_ok() && TcpListener::bind((LOCALHOST, p)).is_ok()
    })
}

/// An even UDP port `p` with `p` and `p + 2` free: sipp's `-mp` binds both
/// (audio and video media sockets).
pub fn free_media_port() -> u16 {
    next_listen_port(|p| {
        p.is_multiple_of(2)
            && p < 19998
            && UdpSocket::bind((LOCALHOST, p)).is_ok()
            && UdpSocket::bind((LOCALHOST, p + 2)).is_ok()
    })
}

/// Poll `f` every 50 ms until it returns `Some`, or panic with `what` after
/// `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Files directly in `dir` whose name ends with `suffix` (e.g. ".wav"), sorted.
pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Wait until `dir` holds at least `count` files ending with `suffix`.
pub fn wait_for_files(dir: &Path, suffix: &str, count: usize, timeout: Duration) -> Vec<PathBuf> {
    wait_for(
        timeout,
        &format!("{count} '*{suffix}' file(s) in {}", dir.display()),
        || {
            let files = files_with_suffix(dir, suffix);
            (files.len() >= count).then_some(files)
        },
    )
}

/// True when something already holds UDP `port` on 127.0.0.1 (tries to bind it).
pub fn udp_port_taken(port: u16) -> bool {
    UdpSocket::bind((LOCALHOST, port)).is_err()
}

/// True when a socket is bound to UDP `port` (or listens on TCP `port`),
/// read from /proc/net without touching the port. Falls back to a bind attempt
/// (UDP) or a connect (TCP) where /proc/net is not readable.
pub fn port_bound(port: u16, transport: Transport) -> bool {
    let (files, listen_only) = match transport {
        Transport::Udp => (["/proc/net/udp", "/proc/net/udp6"], false),
        Transport::Tcp => (["/proc/net/tcp", "/proc/net/tcp6"], true),
    };
    let mut readable = false;
    for f in files {
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        readable = true;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            let Some((_, hex_port)) = local.rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(hex_port, 16) == Ok(port) && (!listen_only || *state == "0A") {
                return true;
            }
        }
    }
    if readable {
        return false;
    }
    match transport {
        Transport::Udp => udp_port_taken(port),
        Transport::Tcp => TcpStream::connect((LOCALHOST, port)).is_ok(),
    }
}

// ---------------------------------------------------------------------------
// Bounded processes

/// Run `cmd` to completion with its output captured, killing it after
/// `timeout`. Output goes through temporary files, so a chatty child never
/// blocks on a full pipe.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> std::io::Result<Output> {
    let dir = tempfile::tempdir()?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?);
    let mut child = cmd.spawn()?;
    let status = wait_child(&mut child, timeout)?;
    Ok(Output {
        status,
        stdout: fs::read(&out_path)?,
        stderr: fs::read(&err_path)?,
    })
}

/// Wait for `child` at most `timeout`, then kill it (SIGKILL) and reap it.
pub fn wait_child(child: &mut Child, timeout: Duration) -> std::io::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            eprintln!("killing pid {} after {timeout:?}", child.id());
            let _ = child.kill();
            return child.wait();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn send_signal(pid: u32, signal: &str) {
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{signal}")).arg(pid.to_string());
    let _ = run_bounded(cmd, Duration::from_secs(5));
}

// ---------------------------------------------------------------------------
// sipp

/// The raw sipp wrapper: runs `sipp ARGS` in a temporary folder and returns its
/// output, or `None` when sipp is missing outside CI. Adds what is not given:
/// `-i 127.0.0.1 -mi 127.0.0.1 -m 1 -nostdin -timeout 60s -timeout_error`.
/// The process is killed after [`PROCESS_LIMIT`] whatever happens.
pub fn sipp(args: &[&str]) -> Option<Output> {
    let bin = sipp_bin()?;
    let mut argv: Vec<OsString> = args.iter().map(OsString::from).collect();
    add_bounds(&mut argv, 60);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(bin);
    cmd.args(&argv).current_dir(dir.path());
    Some(run_bounded(cmd, PROCESS_LIMIT).expect("run sipp"))
}

fn has_arg(argv: &[OsString], name: &str) -> bool {
    argv.iter().any(|a| a == name)
}

fn add_bounds(argv: &mut Vec<OsString>, timeout_s: u64) {
    let mut add = |name: &str, value: Option<String>| {
        if !has_arg(argv, name) {
            argv.push(name.into());
            if let Some(v) = value {
                argv.push(v.into());
            }
        }
    };
    add("-i", Some("127.0.0.1".into()));
    add("-mi", Some("127.0.0.1".into()));
    add("-m", Some("1".into()));
    add("-nostdin", None);
    add("-timeout", Some(format!("{timeout_s}s")));
    add("-timeout_error", None);
}

/// SIP transport for sipp (`-t u1` / `-t t1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP, one socket.
    Udp,
    /// TCP, one connection.
    Tcp,
}

/// A sipp run being prepared: scenario, keys, variables, ports. Every
/// scenario key of `tests/sipp/*.xml` gets a default (see docs/testing.md):
///
/// | key | default |
/// |---|---|
/// | `-s` (service) / `to_user` | `1001` |
/// | `domain` | [`DOMAIN`] |
/// | `caller` | `5551234` |
/// | `payloads` / `rtpmaps` | `8 0 101`: PCMA, PCMU, telephone-event/8000 |
/// | `extra_headers` | none |
/// | `audio_pcap` | `media/g711a.pcap` (7.08 s of speech, PCMA) |
/// | `dtmf_pcap` | `media/dtmf_2833_pound.pcap` (`#`) |
/// | `rtp_port` | `0` |
/// | `-d` (hold / pause) | 7500 ms |
pub struct Sipp {
    scenario: PathBuf,
    remote: Option<SocketAddr>,
    keys: BTreeMap<String, String>,
    sets: BTreeMap<String, String>,
    headers: Vec<String>,
    extra_args: Vec<OsString>,
    transport: Transport,
    sip_port: u16,
    media_port: u16,
    hold_ms: u64,
    timeout_s: u64,
}

/// The result of a sipp run, with its trace files read back.
#[derive(Debug)]
pub struct SippRun {
    /// sipp's exit status (0: all calls succeeded, 1: a call failed, 97/99/255: other).
    pub status: ExitStatus,
    /// sipp's screen output.
    pub stdout: String,
    /// sipp's stderr.
    pub stderr: String,
    /// `<log>` actions (-trace_logs).
    pub log: String,
    /// Every SIP message sent and received (-trace_msg).
    pub messages: String,
    /// Unexpected messages and errors (-trace_err).
    pub errors: String,
    /// sipp's SIP port.
    pub sip_port: u16,
    /// sipp's media port (`[media_port]`).
    pub media_port: u16,
}

impl Sipp {
    /// A UAC scenario (file name in `tests/sipp/`) sending to `remote`.
    pub fn uac(scenario: &str, remote: SocketAddr) -> Sipp {
        let mut s = Sipp::new(scenario);
        s.remote = Some(remote);
        s
    }

    /// A UAS scenario (a test peer) listening on a free port.
    pub fn uas(scenario: &str) -> Sipp {
        Sipp::new(scenario)
    }

    fn new(scenario: &str) -> Sipp {
        let path = if Path::new(scenario).is_absolute() {
            PathBuf::from(scenario)
        } else {
            sipp_scenario(scenario)
        };
        let rtpmaps = "\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\
                       \r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15";
        let mut keys = BTreeMap::new();
        for (k, v) in [
            ("domain", DOMAIN.to_string()),
            ("to_user", "1001".to_string()),
            ("caller", "5551234".to_string()),
            ("payloads", "8 0 101".to_string()),
            ("rtpmaps", rtpmaps.to_string()),
            ("audio_pcap", media("g711a.pcap").display().to_string()),
            (
                "dtmf_pcap",
                media("dtmf_2833_pound.pcap").display().to_string(),
            ),
            ("uas_pcap", media("tones_pcma.pcap").display().to_string()),
            ("rtp_port", "0".to_string()),
            ("status_line", "SIP/2.0 200 OK".to_string()),
            ("resp_headers", String::new()),
        ] {
            keys.insert(k.to_string(), v);
        }
        Sipp {
            scenario: path,
            remote: None,
            keys,
            sets: BTreeMap::new(),
            headers: Vec::new(),
            extra_args: Vec::new(),
            transport: Transport::Udp,
            sip_port: free_sip_port(),
            media_port: free_media_port(),
            hold_ms: 7500,
            timeout_s: 60,
        }
    }

    /// The mailbox user: Request-URI user (`-s`) and To user.
    pub fn mailbox(mut self, user: &str) -> Self {
        self.keys.insert("to_user".into(), user.into());
        self.keys.insert("service".into(), user.into());
        self
    }

    /// The Request-URI user only (`-s`), e.g. a pilot or access number.
    pub fn service(mut self, user: &str) -> Self {
        self.keys.insert("service".into(), user.into());
        self
    }

    /// Set a scenario key (`-key NAME VALUE`).
    pub fn key(mut self, name: &str, value: &str) -> Self {
        self.keys.insert(name.into(), value.into());
        self
    }

    /// Set a global scenario variable (`-set NAME VALUE`), e.g. `expected`.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.sets.insert(name.into(), value.into());
        self
    }

    /// Add a header line to the INVITE, e.g. `Diversion: <sip:1001@d>;reason=user-busy`.
    pub fn header(mut self, line: &str) -> Self {
        self.headers.push(line.into());
        self
    }

    /// Offer these RTP payload types with these `a=` lines, e.g.
    /// `offer("18", &["a=rtpmap:18 G729/8000"])`.
    pub fn offer(mut self, payloads: &str, attributes: &[&str]) -> Self {
        self.keys.insert("payloads".into(), payloads.into());
        let lines: String = attributes.iter().map(|a| format!("\r\n{a}")).collect();
        self.keys.insert("rtpmaps".into(), lines);
        self
    }

    /// The pause (`-d`), e.g. how long deposit.xml holds the call.
    pub fn hold_ms(mut self, ms: u64) -> Self {
        self.hold_ms = ms;
        self
    }

    /// sipp's global timeout (`-timeout`), 60 s by default.
    pub fn timeout_s(mut self, s: u64) -> Self {
        self.timeout_s = s;
        self
    }

    /// Use TCP (`-t t1`).
    pub fn tcp(mut self) -> Self {
        self.transport = Transport::Tcp;
        self
    }

    /// Any other sipp argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// The SIP port sipp will use.
    pub fn sip_port(&self) -> u16 {
        self.sip_port
    }

    /// The media port sipp will use (`-mp`, `[media_port]`).
    pub fn media_port(&self) -> u16 {
        self.media_port
    }

    /// sipp's SIP address (for a UAS: where to send to).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.sip_port))
    }

    fn command(&self, bin: &Path, dir: &Path) -> Command {
        let mut argv: Vec<OsString> = vec!["-sf".into(), self.scenario.clone().into()];
        if let Some(remote) = self.remote {
            argv.push(remote.to_string().into());
        }
        for (flag, value) in [
            ("-p", self.sip_port.to_string()),
            ("-mp", self.media_port.to_string()),
            ("-d", self.hold_ms.to_string()),
            (
                "-t",
                match self.transport {
                    Transport::Udp => "u1".to_string(),
                    Transport::Tcp => "t1".to_string(),
                },
            ),
        ] {
            argv.push(flag.into());
            argv.push(value.into());
        }
        let mut keys = self.keys.clone();
        let service = keys.remove("service").unwrap_or_else(|| "1001".into());
        argv.push("-s".into());
        argv.push(service.into());
        let extra: String = self.headers.iter().map(|h| format!("\r\n{h}")).collect();
        keys.insert("extra_headers".into(), extra);
        for (k, v) in &keys {
            argv.push("-key".into());
            argv.push(k.into());
            argv.push(v.into());
        }
        for (k, v) in &self.sets {
            argv.push("-set".into());
            argv.push(k.into());
            argv.push(v.into());
        }
        for (flag, file) in [
            ("-trace_msg", None),
            ("-message_file", Some("messages.log")),
            ("-trace_err", None),
            ("-error_file", Some("errors.log")),
            ("-trace_logs", None),
            ("-log_file", Some("actions.log")),
        ] {
            argv.push(flag.into());
            if let Some(f) = file {
                argv.push(dir.join(f).into());
            }
        }
        argv.extend(self.extra_args.iter().cloned());
        add_bounds(&mut argv, self.timeout_s);
        let mut cmd = Command::new(bin);
        cmd.args(argv).current_dir(dir);
        cmd
    }

    /// Run to completion (bounded). `None`: sipp is missing (test skipped).
    pub fn run(self) -> Option<SippRun> {
        let child = self.spawn()?;
        Some(child.wait())
    }

    /// Start in the background (a UAS peer); returns once its SIP port is bound.
    /// `None`: sipp is missing (test skipped).
    pub fn spawn(self) -> Option<SippChild> {
        let bin = sipp_bin()?;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = self.command(&bin, dir.path());
        cmd.stdin(Stdio::null())
            .stdout(File::create(dir.path().join("stdout")).expect("stdout file"))
            .stderr(File::create(dir.path().join("stderr")).expect("stderr file"));
        let child = cmd.spawn().expect("start sipp");
        let mut c = SippChild {
            child: Some(child),
            dir,
            sip_port: self.sip_port,
            media_port: self.media_port,
            limit: Duration::from_secs(self.timeout_s + 15),
            started: Instant::now(),
        };
        if self.remote.is_none() {
            let port = self.sip_port;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if port_bound(port, self.transport) {
                    break;
                }
                if let Some(Ok(Some(_))) = c.child.as_mut().map(|ch| ch.try_wait()) {
                    break; // exited early: wait() will show why
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(c)
    }
}

/// A sipp process running in the background; killed on drop.
pub struct SippChild {
    child: Option<Child>,
    dir: TempDir,
    sip_port: u16,
    media_port: u16,
    limit: Duration,
    started: Instant,
}

impl SippChild {
    /// sipp's SIP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.sip_port))
    }

    /// sipp's media port.
    pub fn media_port(&self) -> u16 {
        self.media_port
    }

    /// Wait for sipp to end (bounded by its -timeout plus a margin).
    pub fn wait(mut self) -> SippRun {
        let mut child = self.child.take().expect("sipp child");
        let left = self.limit.saturating_sub(self.started.elapsed());
        let status = wait_child(&mut child, left).expect("wait for sipp");
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        SippRun {
            status,
            stdout: read("stdout"),
            stderr: read("stderr"),
            log: read("actions.log"),
            messages: read("messages.log"),
            errors: read("errors.log"),
            sip_port: self.sip_port,
            media_port: self.media_port,
        }
    }
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl SippRun {
    /// sipp exited 0 (every call succeeded).
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panic with the errors log and the screen's tail unless sipp exited 0.
    pub fn assert_success(&self, what: &str) {
        if !self.success() {
            panic!("{what}: sipp failed ({})\n{}", self.status, self.report());
        }
    }

    /// Errors, stderr and the last screen, for a failure message.
    pub fn report(&self) -> String {
        let tail: Vec<&str> = self.stdout.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- errors ---\n{}\n--- stderr ---\n{}\n--- log ---\n{}\n--- screen (tail) ---\n{}",
            self.errors.trim(),
            self.stderr.trim(),
            self.log.trim(),
            tail.join("\n")
        )
    }

    /// The SIP messages sipp received whose first line starts with `start`
    /// (e.g. `"SIP/2.0 302"`, `"INVITE "`), in order.
    pub fn received(&self, start: &str) -> Vec<String> {
        self.trace_messages("received")
            .into_iter()
            .filter(|m| m.starts_with(start))
            .collect()
    }

    /// The SIP messages sipp sent whose first line starts with `start`.
    pub fn sent(&self, start: &str) -> Vec<String> {
        self.trace_messages("sent")
            .into_iter()
            .filter(|m| m.starts_with(start))
            .collect()
    }

    fn trace_messages(&self, direction: &str) -> Vec<String> {
        // -trace_msg blocks: a dashed line with a time, "UDP message received
        // [N] bytes :" / "UDP message sent (N bytes):", a blank line, the message.
        let mut out = Vec::new();
        for block in self
            .messages
            .split("-----------------------------------------------")
        {
            let mut lines = block
                .lines()
                .skip_while(|l| l.trim().is_empty() || l.starts_with(' '));
            let Some(head) = lines.next() else { continue };
            let head = if head.contains("message") {
                head
            } else {
                lines.next().unwrap_or("")
            };
            if !head.contains(&format!("message {direction}")) {
                continue;
            }
            let body: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
            out.push(body.join("\n").trim_end().to_string());
        }
        out
    }
}

/// The value of the first header `name` (case-insensitive) in a SIP message.
pub fn header_value<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    header_values(message, name).into_iter().next()
}

/// All values of header `name` (case-insensitive) in a SIP message, in order.
pub fn header_values<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    message
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// pjsua2 scripts

/// The result of a pjsua2 script.
#[derive(Debug)]
pub struct PjsuaRun {
    /// The script's exit status and output.
    pub output: Output,
    /// The JSON line the script printed on stdout (deposit.py), if any.
    pub result: Option<Value>,
}

impl PjsuaRun {
    /// The script exited 0.
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// Panic with the script's stderr unless it exited 0.
    pub fn assert_success(&self, what: &str) {
        if !self.success() {
            panic!(
                "{what}: pjsua script failed ({})\nresult: {:?}\n--- stderr ---\n{}",
                self.output.status,
                self.result,
                String::from_utf8_lossy(&self.output.stderr)
            );
        }
    }

    /// A field of the JSON result.
    pub fn field(&self, name: &str) -> &Value {
        self.result
            .as_ref()
            .and_then(|r| r.get(name))
            .unwrap_or(&Value::Null)
    }
}

/// A pjsua2 caller (`tests/pjsua/deposit.py`, PCMU/PCMA) from
/// `5557777@`[`DOMAIN`] to mailbox `user` through `proxy`: one second of
/// silence (recording starts about half a second in, after a short
/// greeting), then `media/tones.wav`, then it hangs up. `None`: Python
/// with pjsua2 is missing (skipped).
pub fn pjsua_tones_deposit(proxy: SocketAddr, user: &str) -> Option<PjsuaRun> {
    let (_, tones) = read_wav(&media("tones.wav"));
    let mut audio = vec![0i16; 8000];
    audio.extend_from_slice(&tones);
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("caller.wav");
    write_wav(&wav, 8000, &audio);
    let seconds = audio.len() as f64 / 8000.0 + 0.5;
    pjsua(
        "deposit.py",
        &[
            "--target",
            &format!("sip:{user}@{DOMAIN}"),
            "--proxy",
            &proxy.to_string(),
            "--caller",
            &format!("sip:5557777@{DOMAIN}"),
            "--wav",
            &wav.display().to_string(),
            "--hangup-after-seconds",
            &format!("{seconds:.1}"),
            "--codecs",
            "PCMU,PCMA",
            "--timeout",
            "30",
        ],
    )
}

/// Run `tests/pjsua/<script>` with the pjsua2 Python (bounded by
/// [`PROCESS_LIMIT`]). `None`: Python with pjsua2 is missing (test skipped).
pub fn pjsua(script: &str, args: &[&str]) -> Option<PjsuaRun> {
    let py = pjsua_python()?;
    let mut cmd = Command::new(py);
    cmd.arg(pjsua_script(script)).args(args);
    let output = run_bounded(cmd, PROCESS_LIMIT).expect("run pjsua script");
    let result = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok());
    Some(PjsuaRun { output, result })
}

// ---------------------------------------------------------------------------
// vmail itself

/// What an active instance logs when its takeover repair of the store has
/// ended (done or failed).
const RECOVERY_DONE: &str = "recovery of interrupted recordings";

/// How [`Vmail`] decides that the instance is up.
#[derive(Clone, Copy, Debug)]
pub enum Ready {
    /// A 200 to an OPTIONS sent over UDP to the SIP port (the instance is
    /// its group's active one), and its takeover repair of the store done.
    SipOptions,
    /// `GET /healthz` on the HTTP port answers 200.
    HttpHealthz,
    /// Just wait this long (for a binary that answers nothing yet).
    Delay(Duration),
}

/// Why [`Vmail`] did not start.
#[derive(Debug)]
pub enum VmailStartError {
    /// The process ended before it was ready.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// Its log so far.
        log: String,
    },
    /// Not ready within the timeout.
    NotReady {
        /// Its log so far.
        log: String,
    },
}

type Tweak = Box<dyn FnOnce(&mut Value)>;

/// How to start a [`Vmail`]: configuration tweaks, name, readiness check.
pub struct VmailBuilder {
    name: String,
    ready: Ready,
    ready_timeout: Duration,
    tweaks: Vec<Tweak>,
    ext_tweaks: Vec<Tweak>,
    env: Vec<(String, String)>,
}

/// The real vmail binary, running on 127.0.0.1 with a temporary configuration
/// and SiteShare. Killed on drop; its log is printed when the test panics.
pub struct Vmail {
    /// SIP port (UDP and TCP).
    pub sip_port: u16,
    /// HTTP API port.
    pub http_port: u16,
    /// First and last RTP port of its range.
    pub rtp_ports: (u16, u16),
    /// The SiteShare root (`ext.siteshare`).
    pub siteshare: TempDir,
    /// Instance name (`--name`).
    pub name: String,
    dir: TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    ready: Ready,
    ready_timeout: Duration,
    env: Vec<(String, String)>,
}

impl Default for VmailBuilder {
    fn default() -> Self {
        VmailBuilder {
            name: "vmail1".into(),
            ready: Ready::SipOptions,
            ready_timeout: Duration::from_secs(10),
            tweaks: Vec::new(),
            ext_tweaks: Vec::new(),
            env: Vec::new(),
        }
    }
}

impl VmailBuilder {
    /// Change the instance's `ext` object (ports and paths are already set).
    pub fn ext(mut self, f: impl FnOnce(&mut Value) + 'static) -> Self {
        self.ext_tweaks.push(Box::new(f));
        self
    }

    /// Change the whole configuration document (after the `ext` tweaks).
    pub fn config(mut self, f: impl FnOnce(&mut Value) + 'static) -> Self {
        self.tweaks.push(Box::new(f));
        self
    }

    /// Instance name written into the configuration and passed as `--name`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Readiness check (default: SIP OPTIONS answered).
    pub fn ready(mut self, ready: Ready) -> Self {
        self.ready = ready;
        self
    }

    /// How long to wait for readiness (default 10 s).
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }

    /// An environment variable for the process (`RUST_LOG` is `debug` unless set).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Start it; panics with the log when it does not come up.
    pub fn start(self) -> Vmail {
        match self.try_start() {
            Ok(v) => v,
            Err(VmailStartError::Exited { status, log }) => {
                panic!("vmail exited before it was ready ({status})\n--- vmail log ---\n{log}")
            }
            Err(VmailStartError::NotReady { log }) => {
                panic!("vmail was not ready in time\n--- vmail log ---\n{log}")
            }
        }
    }

    /// Start it, reporting failure as a value.
    pub fn try_start(self) -> Result<Vmail, VmailStartError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let siteshare = tempfile::tempdir().expect("siteshare dir");
        let sip_port = free_sip_port();
        let http_port = free_tcp_port();
        let rtp_ports = rtp_range();
        let mut ext = json!({
            "sip_port": sip_port,
            "http_port": http_port,
            "rtp_port_min": rtp_ports.0,
            "rtp_port_max": rtp_ports.1,
            "siteshare": siteshare.path(),
            "prompts": repo_root().join("prompts"),
        });
        for t in self.ext_tweaks {
            t(&mut ext);
        }
        let mut config = json!({
            "site": "site1",
            "interfaces": { "lo": "127.0.0.1" },
            "roles": [{
                "name": self.name,
                "roletype": "vmail",
                "iface": "lo",
                "group": 11390,
                "order": 1,
                "include_domains": [DOMAIN],
                "ext": ext,
            }],
        });
        for t in self.tweaks {
            t(&mut config);
        }
        let config_path = dir.path().join("vmail.json");
        let text = serde_json::to_string_pretty(&config).expect("serialize config");
        fs::write(&config_path, text).expect("write config");
        let log_path = dir.path().join("vmail.log");
        let mut vmail = Vmail {
            sip_port,
            http_port,
            rtp_ports,
            siteshare,
            name: self.name,
            dir,
            config_path,
            log_path,
            child: None,
            ready: self.ready,
            ready_timeout: self.ready_timeout,
            env: self.env,
        };
        vmail.spawn_and_wait()?;
        Ok(vmail)
    }
}

fn rtp_range() -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = (std::process::id() as u16 % 40 + NEXT.fetch_add(1, Ordering::Relaxed)) % 90;
    let min = 20000 + slot * 200;
    (min, min + 199)
}

impl Vmail {
    /// Start with the default configuration (one instance serving [`DOMAIN`]).
    pub fn start() -> Vmail {
        Vmail::builder().start()
    }

    /// Start with a tweak of the instance's `ext` object.
    pub fn start_with(f: impl FnOnce(&mut Value) + 'static) -> Vmail {
        Vmail::builder().ext(f).start()
    }

    /// A builder for other settings.
    pub fn builder() -> VmailBuilder {
        VmailBuilder::default()
    }

    /// SIP address (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.sip_port))
    }

    /// HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.http_port))
    }

    /// The configuration file it runs with (rewrite it and [`Vmail::sighup`]).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The store root, `<siteshare>/vmail`.
    pub fn store(&self) -> PathBuf {
        self.siteshare.path().join("vmail")
    }

    /// A mailbox folder, `<siteshare>/vmail/domains/<domain>/<user>`.
    pub fn mailbox_dir(&self, user: &str, domain: &str) -> PathBuf {
        self.store().join("domains").join(domain).join(user)
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn_and_wait(&mut self) -> Result<(), VmailStartError> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open vmail log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmail"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--name")
            .arg(&self.name)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "debug");
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start the vmail binary"));
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), VmailStartError> {
        let deadline = Instant::now() + self.ready_timeout;
        // Takeover repairs the store in the background; a test that then
        // writes into the store itself (as another process) waits for it,
        // or the repair could take the test's half-written file for a
        // crashed recording.
        let repairs_before = self.log().matches(RECOVERY_DONE).count();
        if let Ready::Delay(d) = self.ready {
            std::thread::sleep(d);
        }
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(VmailStartError::Exited {
                        status,
                        log: self.log(),
                    });
                }
            }
            let ok = match self.ready {
                // 200: the instance is the active one of its group (a
                // passive or starting one answers 503).
                Ready::SipOptions => {
                    sip_options_probe(self.sip_addr(), Duration::from_millis(200))
                        .is_some_and(|line| line.starts_with("SIP/2.0 200"))
                        && self.log().matches(RECOVERY_DONE).count() > repairs_before
                }
                Ready::HttpHealthz => healthz_ready(self),
                Ready::Delay(_) => true,
            };
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(VmailStartError::NotReady { log: self.log() });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill it with SIGKILL (a crash); the SiteShare stays.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Ask it to stop (SIGTERM) and wait up to `timeout`; SIGKILL after that.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        send_signal(child.id(), "TERM");
        wait_child(&mut child, timeout).ok()
    }

    /// Send SIGHUP (reload the configuration file).
    pub fn sighup(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, "HUP");
        }
    }

    /// Kill (SIGKILL) if running, then start again with the same
    /// configuration, ports and SiteShare, and wait until ready.
    pub fn restart(&mut self) {
        self.kill9();
        if let Err(e) = self.spawn_and_wait() {
            panic!("vmail did not come back after restart: {e:?}");
        }
    }

    /// Everything it has logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Print the log to stderr (shown by cargo test for a failing test).
    pub fn print_log(&self) {
        eprintln!(
            "--- vmail {} log ({}) ---\n{}",
            self.name,
            self.log_path.display(),
            self.log()
        );
    }
}

impl Drop for Vmail {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            self.print_log();
        }
    }
}

/// Send one SIP OPTIONS over UDP to `addr` and return the first line of the
/// response, if one comes within `wait`.
pub fn sip_options_probe(addr: SocketAddr, wait: Duration) -> Option<String> {
    let sock = UdpSocket::bind((LOCALHOST, 0)).ok()?;
    let local = sock.local_addr().ok()?;
    let branch = format!("z9hG4bK-probe-{}-{}", std::process::id(), local.port());
    let msg = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=probe{port}\r\n\
         To: <sip:{addr}>\r\n\
         Call-ID: probe-{port}-{pid}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:probe@{local}>\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        port = local.port(),
        pid = std::process::id(),
    );
    sock.set_read_timeout(Some(wait)).ok()?;
    sock.send_to(msg.as_bytes(), addr).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let first = text.lines().next()?.to_string();
    first.starts_with("SIP/2.0 ").then_some(first)
}

/// A minimal HTTP/1.0 GET on 127.0.0.1: `(status, body)`.
pub fn http_get(addr: SocketAddr, path: &str, wait: Duration) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, wait).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    stream.set_write_timeout(Some(wait)).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    stream.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp).to_string();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

// ---------------------------------------------------------------------------
// RTP peer

/// One RTP packet an [`RtpPeer`] received.
#[derive(Clone, Debug)]
pub struct RtpPacket {
    /// When it arrived, since the peer started.
    pub at: Duration,
    /// Where it came from.
    pub from: SocketAddr,
    /// Payload type.
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// What an [`RtpPeer`] sends.
#[derive(Clone, Debug)]
pub struct RtpPlan {
    /// 8 kHz PCM sent once, in 20 ms packets.
    pub audio: Vec<i16>,
    /// Payload type: 8 (PCMA) or 0 (PCMU).
    pub payload_type: u8,
    /// Where to send; `None`: to wherever the first packet came from
    /// (symmetric RTP, the way vmail does it).
    pub dest: Option<SocketAddr>,
    /// Wait this long after the destination is known before sending.
    pub start_after: Duration,
    /// RFC 4733 events: (time after sending starts, digit `0-9*#A-D`).
    /// An event replaces the audio for 160 ms (100 ms of event, then 3 end
    /// packets); silence is sent between the end of the audio and a later event.
    pub dtmf: Vec<(Duration, char)>,
    /// Payload type of telephone-event.
    pub dtmf_payload_type: u8,
    /// After the audio, keep sending silence this long.
    pub tail_silence: Duration,
}

impl Default for RtpPlan {
    fn default() -> Self {
        RtpPlan {
            audio: Vec::new(),
            payload_type: 8,
            dest: None,
            start_after: Duration::ZERO,
            dtmf: Vec::new(),
            dtmf_payload_type: 101,
            tail_silence: Duration::ZERO,
        }
    }
}

/// Everything an [`RtpPeer`] saw and did.
#[derive(Clone, Debug, Default)]
pub struct RtpCapture {
    /// Packets received, in arrival order.
    pub packets: Vec<RtpPacket>,
    /// Packets sent.
    pub sent: usize,
    /// Where they were sent.
    pub sent_to: Option<SocketAddr>,
}

/// A caller's RTP endpoint on 127.0.0.1: a UDP socket in a thread that records
/// every packet and (optionally) sends an [`RtpPlan`]. Put [`RtpPeer::port`]
/// into the SDP (sipp `deposit_rtp_peer.xml`, key `rtp_port`).
pub struct RtpPeer {
    port: u16,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<RtpCapture>>,
}

impl RtpPeer {
    /// Only listen.
    pub fn listen() -> RtpPeer {
        RtpPeer::start(None)
    }

    /// Listen and send `plan`.
    pub fn with_plan(plan: RtpPlan) -> RtpPeer {
        RtpPeer::start(Some(plan))
    }

    fn start(plan: Option<RtpPlan>) -> RtpPeer {
        let sock = UdpSocket::bind((LOCALHOST, 0)).expect("bind RTP socket");
        let port = sock.local_addr().expect("local addr").port();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || rtp_peer_loop(sock, plan, stop2));
        RtpPeer {
            port,
            stop,
            handle: Some(handle),
        }
    }

    /// The local RTP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The local RTP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.port))
    }

    /// Stop and return what happened.
    pub fn finish(mut self) -> RtpCapture {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().expect("RTP peer thread"))
            .unwrap_or_default()
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// RFC 4733 event code of a DTMF digit.
pub fn dtmf_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        _ => None,
    }
}

/// The DTMF digit of an RFC 4733 event code.
pub fn dtmf_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// G.711 encode one sample (payload type 0 = PCMU, 8 = PCMA).
pub fn g711_encode(payload_type: u8, sample: i16) -> u8 {
    if payload_type == 0 {
        audio_codec_algorithms::encode_ulaw(sample)
    } else {
        audio_codec_algorithms::encode_alaw(sample)
    }
}

/// G.711 decode one byte (payload type 0 = PCMU, 8 = PCMA).
pub fn g711_decode(payload_type: u8, byte: u8) -> i16 {
    if payload_type == 0 {
        audio_codec_algorithms::decode_ulaw(byte)
    } else {
        audio_codec_algorithms::decode_alaw(byte)
    }
}

fn rtp_peer_loop(sock: UdpSocket, plan: Option<RtpPlan>, stop: Arc<AtomicBool>) -> RtpCapture {
    const FRAME: usize = 160;
    let start = Instant::now();
    let hard_stop = start + Duration::from_secs(300);
    let mut cap = RtpCapture::default();
    let mut buf = [0u8; 2048];
    let mut dest = plan.as_ref().and_then(|p| p.dest);
    let mut send_start: Option<Instant> = None;
    let mut frame_no: u64 = 0;
    let ssrc: u32 = 0x7465_7374; // "test"
    let mut seq: u16 = 1000;
    while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Ok(r) = rtp_rs::RtpReader::new(&buf[..n]) {
                    cap.packets.push(RtpPacket {
                        at: start.elapsed(),
                        from,
                        payload_type: r.payload_type(),
                        marker: r.mark(),
                        seq: u16::from(r.sequence_number()),
                        timestamp: r.timestamp(),
                        ssrc: r.ssrc(),
                        payload: r.payload().to_vec(),
                    });
                }
                if dest.is_none() && plan.is_some() {
                    dest = Some(from);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {}
        }
        let (Some(plan), Some(to)) = (plan.as_ref(), dest) else {
            continue;
        };
        let t0 = *send_start.get_or_insert_with(|| Instant::now() + plan.start_after);
        let now = Instant::now();
        if now < t0 {
            continue;
        }
        let audio_frames = plan.audio.len().div_ceil(FRAME) as u64;
        let tail_frames = (plan.tail_silence.as_millis() / 20) as u64;
        let dtmf_frames = plan
            .dtmf
            .iter()
            .map(|(at, _)| at.as_millis() as u64 / 20 + 8)
            .max()
            .unwrap_or(0);
        let total_frames = (audio_frames + tail_frames).max(dtmf_frames);
        // Send every frame that is due (20 ms each).
        while frame_no * 20 <= now.duration_since(t0).as_millis() as u64 {
            if frame_no >= total_frames {
                break;
            }
            let t_ms = frame_no * 20;
            let ts = (frame_no as u32).wrapping_mul(FRAME as u32);
            let event = plan.dtmf.iter().find_map(|(at, digit)| {
                let at_ms = at.as_millis() as u64;
                (t_ms >= at_ms && t_ms < at_ms + 160).then_some((at_ms, *digit))
            });
            let packet = if let Some((at_ms, digit)) = event {
                // 100 ms of event (5 packets), then 3 end packets; the event's
                // timestamp is the one of its first packet.
                let k = (t_ms - at_ms) / 20;
                let start_ts = ((at_ms / 20) as u32).wrapping_mul(FRAME as u32);
                let end = k >= 5;
                let dur = ((k.min(5) + 1) * FRAME as u64) as u16;
                let code = dtmf_event(digit).unwrap_or(0);
                let payload = [
                    code,
                    if end { 0x80 | 10 } else { 10 },
                    (dur >> 8) as u8,
                    dur as u8,
                ];
                rtp_rs::RtpPacketBuilder::new()
                    .payload_type(plan.dtmf_payload_type)
                    .marked(k == 0)
                    .ssrc(ssrc)
                    .sequence(rtp_rs::Seq::from(seq))
                    .timestamp(start_ts)
                    .payload(&payload)
                    .build()
            } else {
                let from = (frame_no as usize) * FRAME;
                let payload: Vec<u8> = (from..from + FRAME)
                    .map(|i| {
                        g711_encode(plan.payload_type, plan.audio.get(i).copied().unwrap_or(0))
                    })
                    .collect();
                rtp_rs::RtpPacketBuilder::new()
                    .payload_type(plan.payload_type)
                    .marked(frame_no == 0)
                    .ssrc(ssrc)
                    .sequence(rtp_rs::Seq::from(seq))
                    .timestamp(ts)
                    .payload(&payload)
                    .build()
            };
            if let Ok(bytes) = packet {
                if sock.send_to(&bytes, to).is_ok() {
                    cap.sent += 1;
                    cap.sent_to = Some(to);
                }
            }
            seq = seq.wrapping_add(1);
            frame_no += 1;
        }
    }
    cap
}

impl RtpCapture {
    /// Audio packets (payload type 0 or 8), in arrival order.
    pub fn audio(&self) -> impl Iterator<Item = &RtpPacket> {
        self.packets
            .iter()
            .filter(|p| p.payload_type == 0 || p.payload_type == 8)
    }

    /// Packets of payload type `pt`.
    pub fn of_type(&self, pt: u8) -> impl Iterator<Item = &RtpPacket> {
        self.packets.iter().filter(move |p| p.payload_type == pt)
    }

    /// Source addresses seen.
    pub fn sources(&self) -> BTreeSet<SocketAddr> {
        self.packets.iter().map(|p| p.from).collect()
    }

    /// The received G.711 audio as 8 kHz PCM on the RTP timeline of the
    /// stream with the most audio packets: each packet is placed at its
    /// timestamp, gaps are silence.
    pub fn audio_pcm(&self) -> Vec<i16> {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for p in self.audio() {
            *counts.entry(p.ssrc).or_default() += 1;
        }
        let Some((&ssrc, _)) = counts.iter().max_by_key(|(_, n)| **n) else {
            return Vec::new();
        };
        let stream: Vec<&RtpPacket> = self.audio().filter(|p| p.ssrc == ssrc).collect();
        let ts0 = stream.iter().map(|p| p.timestamp).min().unwrap_or(0);
        let mut out: Vec<i16> = Vec::new();
        for p in stream {
            let off = p.timestamp.wrapping_sub(ts0) as usize;
            if off > 8000 * 600 {
                continue; // wrapped or absurd
            }
            let end = off + p.payload.len();
            if out.len() < end {
                out.resize(end, 0);
            }
            for (i, b) in p.payload.iter().enumerate() {
                out[off + i] = g711_decode(p.payload_type, *b);
            }
        }
        out
    }

    /// The received G.711 audio placed by arrival time (robust to SSRC and
    /// timestamp jumps, off by the network jitter): sample 0 is the first
    /// packet's arrival.
    pub fn audio_pcm_by_arrival(&self) -> Vec<i16> {
        let mut it = self.audio().peekable();
        let Some(first) = it.peek() else {
            return Vec::new();
        };
        let t0 = first.at;
        let mut out: Vec<i16> = Vec::new();
        for p in self.audio() {
            let off = ((p.at - t0).as_micros() as usize * 8) / 1000;
            let off = off.max(out.len().saturating_sub(80)); // never overlap more than 10 ms
            let end = off + p.payload.len();
            if out.len() < end {
                out.resize(end, 0);
            }
            for (i, b) in p.payload.iter().enumerate() {
                out[off + i] = g711_decode(p.payload_type, *b);
            }
        }
        out
    }

    /// DTMF digits carried as RFC 4733 events of payload type `pt`, one per
    /// event (retransmitted end packets and updates counted once).
    pub fn dtmf_digits(&self, pt: u8) -> String {
        let mut seen: BTreeSet<(u32, u32)> = BTreeSet::new();
        let mut out = String::new();
        for p in self.of_type(pt) {
            if p.payload.len() < 4 || !seen.insert((p.ssrc, p.timestamp)) {
                continue;
            }
            if let Some(d) = dtmf_digit(p.payload[0]) {
                out.push(d);
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// WAV and tones

/// Read a WAV file: its format and its samples as i16 (first channel).
pub fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>) {
    let mut reader =
        hound::WavReader::open(path).unwrap_or_else(|e| panic!("open WAV {}: {e}", path.display()));
    let spec = reader.spec();
    let channels = spec.channels.max(1) as usize;
    let samples: Vec<i16> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect(),
        (hound::SampleFormat::Int, bits) => reader
            .samples::<i32>()
            .map(|s| (s.expect("sample") >> (bits.saturating_sub(16))) as i16)
            .collect(),
        (hound::SampleFormat::Float, _) => reader
            .samples::<f32>()
            .map(|s| (s.expect("sample").clamp(-1.0, 1.0) * 32767.0) as i16)
            .collect(),
    };
    let mono = samples.chunks(channels).map(|c| c[0]).collect();
    (spec, mono)
}

/// Write 16-bit mono PCM as a WAV file.
pub fn write_wav(path: &Path, rate: u32, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create WAV");
    for s in samples {
        w.write_sample(*s).expect("write sample");
    }
    w.finalize().expect("finish WAV");
}

/// A steady tone found by [`tone_sequence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tone {
    /// Frequency in Hz (on a 25 Hz grid).
    pub freq: u32,
    /// Start, ms from the first sample.
    pub onset_ms: u32,
    /// Length in ms.
    pub duration_ms: u32,
}

/// Goertzel power of `freq` in `frame` (unnormalised |X|^2).
pub fn goertzel_power(frame: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in frame {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Find the steady tones (200-3400 Hz) in `samples`: 20 ms Goertzel frames
/// every 10 ms; a frame is tonal when one frequency holds at least 60 % of
/// the frame's energy and the level is above -45 dBFS; runs of at least 60 ms
/// at one frequency are tones. Onsets are accurate to about 10 ms. Speech,
/// noise and silence give nothing.
pub fn tone_sequence(samples: &[i16], rate: u32) -> Vec<Tone> {
    let candidates: Vec<f64> = (200..=3400).step_by(25).map(f64::from).collect();
    let n = (rate as usize) / 50; // 20 ms
    let hop = (rate as usize) / 100; // 10 ms
    if n == 0 || samples.len() < n {
        return Vec::new();
    }
    let min_rms = 32768.0 * 10f64.powf(-45.0 / 20.0);
    let mut frames: Vec<Option<u32>> = Vec::new();
    let mut pos = 0;
    while pos + n <= samples.len() {
        let frame = &samples[pos..pos + n];
        let energy: f64 = frame.iter().map(|&x| (x as f64) * (x as f64)).sum();
        let rms = (energy / n as f64).sqrt();
        let mut best = None;
        if rms >= min_rms {
            let (f, p) = candidates
                .iter()
                .map(|&f| (f, goertzel_power(frame, rate, f)))
                .fold((0.0, 0.0), |acc, x| if x.1 > acc.1 { x } else { acc });
            // For a pure tone 2|X|^2 / (N * sum x^2) is about 1.
            let fraction = 2.0 * p / (n as f64 * energy);
            if fraction >= 0.6 {
                best = Some(f as u32);
            }
        }
        frames.push(best);
        pos += hop;
    }
    let hop_ms = 10u32;
    let mut tones = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let Some(f) = frames[i] else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < frames.len() && frames[j].is_some_and(|g| g.abs_diff(f) <= 25) {
            j += 1;
        }
        // frames i..j: the tone covers [i*hop, (j-1)*hop + 20ms]; a frame counts
        // once it is about half full, so shift the ends by a quarter frame.
        let duration = (j - i) as u32 * hop_ms + 10;
        if duration >= 60 {
            tones.push(Tone {
                freq: f,
                onset_ms: i as u32 * hop_ms + 5,
                duration_ms: duration,
            });
        }
        i = j;
    }
    // Merge neighbours split by a dropped frame (same frequency, gap <= 20 ms).
    let mut merged: Vec<Tone> = Vec::new();
    for t in tones {
        if let Some(last) = merged.last_mut() {
            let last_end = last.onset_ms + last.duration_ms;
            if last.freq.abs_diff(t.freq) <= 25 && t.onset_ms <= last_end + 20 {
                last.duration_ms = t.onset_ms + t.duration_ms - last.onset_ms;
                continue;
            }
        }
        merged.push(t);
    }
    merged
}

/// Check that `found` contains the tones of `media/tones.wav` in order, with
/// the same spacing (onsets relative to the first tone) within `tol_ms`.
/// Returns the onset of the first test tone in `found`'s time base.
pub fn assert_test_tones(found: &[Tone], tol_ms: u32) -> u32 {
    let seq: Vec<&Tone> = found
        .iter()
        .filter(|t| TEST_TONES_HZ.contains(&t.freq))
        .collect();
    let start = seq
        .windows(TEST_TONES_HZ.len())
        .position(|w| w.iter().zip(TEST_TONES_HZ).all(|(t, f)| t.freq == f))
        .unwrap_or_else(|| panic!("tones {TEST_TONES_HZ:?} not found in order in {found:?}"));
    let run = &seq[start..start + TEST_TONES_HZ.len()];
    let base = run[0].onset_ms;
    for (k, t) in run.iter().enumerate() {
        let want = TEST_TONES_ONSET_MS[k] - TEST_TONES_ONSET_MS[0];
        let got = t.onset_ms - base;
        assert!(
            got.abs_diff(want) <= tol_ms,
            "tone {} Hz at +{got} ms, expected +{want} ms (±{tol_ms}); all: {found:?}",
            t.freq
        );
        assert!(
            t.duration_ms.abs_diff(300) <= 2 * tol_ms,
            "tone {} Hz lasts {} ms, expected 300 (±{}); all: {found:?}",
            t.freq,
            t.duration_ms,
            2 * tol_ms
        );
    }
    base
}

// ---------------------------------------------------------------------------
// Active-Passive: several instances of one site on one SiteShare

/// The API token of [`Site`] configurations.
pub const SITE_TOKEN: &str = "ha-test-token";

/// One instance of a [`Site`]: its place in the configuration.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub name: String,
    pub group: u32,
    pub order: u32,
    pub sip_port: u16,
    pub http_port: u16,
}

/// A site configuration with several groups and instances sharing one
/// SiteShare; each instance is started as its own `vmail` process with
/// [`Site::start`].
pub struct Site {
    /// The shared SiteShare root.
    pub siteshare: TempDir,
    dir: TempDir,
    config_path: PathBuf,
    /// Every instance, in the order given.
    pub specs: Vec<NodeSpec>,
}

/// A running instance of a [`Site`]; killed on drop, its log printed when
/// the test fails.
pub struct Node {
    pub spec: NodeSpec,
    log_path: PathBuf,
    config_path: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Site {
    /// `groups`: `(group, include_domains, instances)`; instance number
    /// `k`, counted from 1, of group `g` is named `g<g>n<k>` with order `k`.
    /// `tweak` changes every instance's `ext` (ports, paths, tokens and
    /// `lease_ms` 3000 are set already).
    pub fn new(groups: &[(u32, &[&str], u32)], tweak: impl Fn(&mut Value)) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let siteshare = tempfile::tempdir().expect("siteshare dir");
        let mut roles = Vec::new();
        let mut specs = Vec::new();
        for &(group, domains, n) in groups {
            for k in 1..=n {
                let name = format!("g{group}n{k}");
                let sip_port = free_sip_port();
                let http_port = free_tcp_port();
                let rtp = rtp_range();
                let mut ext = json!({
                    "sip_port": sip_port,
                    "http_port": http_port,
                    "rtp_port_min": rtp.0,
                    "rtp_port_max": rtp.1,
                    "siteshare": siteshare.path(),
                    "prompts": repo_root().join("prompts"),
                    "api_tokens": [SITE_TOKEN],
                    "lease_ms": 3000,
                });
                tweak(&mut ext);
                roles.push(json!({
                    "name": name, "roletype": "vmail", "iface": "lo",
                    "group": group, "order": k,
                    "include_domains": domains, "ext": ext,
                }));
                specs.push(NodeSpec {
                    name,
                    group,
                    order: k,
                    sip_port,
                    http_port,
                });
            }
        }
        let config = json!({
            "site": "site1",
            "interfaces": { "lo": "127.0.0.1" },
            "roles": roles,
        });
        let config_path = dir.path().join("vmail.json");
        fs::write(
            &config_path,
            serde_json::to_string_pretty(&config).expect("config"),
        )
        .expect("write config");
        Site {
            siteshare,
            dir,
            config_path,
            specs,
        }
    }

    /// The configuration file (rewrite it, then SIGHUP the nodes).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The store root, `<siteshare>/vmail`.
    pub fn store(&self) -> PathBuf {
        self.siteshare.path().join("vmail")
    }

    /// A mailbox folder.
    pub fn mailbox_dir(&self, user: &str, domain: &str) -> PathBuf {
        self.store().join("domains").join(domain).join(user)
    }

    /// The spec of instance `name`.
    pub fn spec(&self, name: &str) -> &NodeSpec {
        self.specs
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no instance {name}"))
    }

    /// Starts instance `name` (does not wait for any role).
    pub fn start(&self, name: &str) -> Node {
        let spec = self.spec(name).clone();
        let dir = self.dir.path().join(&spec.name);
        fs::create_dir_all(&dir).expect("node dir");
        let mut node = Node {
            log_path: dir.join("vmail.log"),
            config_path: self.config_path.clone(),
            dir,
            spec,
            child: None,
        };
        node.spawn();
        node
    }
}

impl Node {
    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmail"));
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--name")
            .arg(&self.spec.name)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,vmail=debug");
        }
        self.child = Some(cmd.spawn().expect("start vmail"));
    }

    /// SIP address.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.spec.sip_port))
    }

    /// HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.spec.http_port))
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `GET /api/v1/status` (with the token): the JSON, if it answers.
    pub fn status(&self) -> Option<Value> {
        let url = format!("http://{}/api/v1/status", self.http_addr());
        let resp = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .ok()?
            .get(url)
            .bearer_auth(SITE_TOKEN)
            .send()
            .ok()?;
        resp.json().ok()
    }

    /// Its role (`starting`, `passive`, `active`) per the API.
    pub fn role(&self) -> Option<String> {
        self.status()?["cluster"]["role"]
            .as_str()
            .map(str::to_owned)
    }

    /// Waits until its role is `role`; panics with the log after `timeout`.
    pub fn wait_role(&self, role: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.role().as_deref() == Some(role) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} did not become {role} within {timeout:?} (now {:?})\n{}",
                    self.spec.name,
                    self.role(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first line of its answer to a SIP OPTIONS.
    pub fn options(&self) -> Option<String> {
        sip_options_probe(self.sip_addr(), Duration::from_millis(300))
    }

    /// SIGKILL (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (SIGKILL after `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        send_signal(c.id(), "TERM");
        wait_child(&mut c, timeout).ok()
    }

    /// Sends `signal` (`STOP`, `CONT`, `HUP`).
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.pid() {
            send_signal(pid, signal);
        }
    }

    /// Starts it again (same configuration and SiteShare) after a kill.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // A stopped process must be continued to die promptly.
            send_signal(pid, "CONT");
        }
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- vmail {} log ---\n{}", self.spec.name, self.log());
        }
    }
}

// ---------------------------------------------------------------------------
// MWI: a pjsua2 phone

/// A pjsua2 phone (tests/pjsua/mwi.py) subscribed to a mailbox's MWI,
/// running in the background; its JSON lines arrive on a channel.
pub struct PjsuaMwi {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl PjsuaMwi {
    /// `None`: Python with pjsua2 is missing (test skipped).
    /// A phone that exits once NOTIFYs said `until_new` new messages in
    /// this order (e.g. `"0,1,0"`).
    pub fn start(proxy: SocketAddr, user: &str, until_new: &str) -> Option<PjsuaMwi> {
        use std::io::BufRead;
        let py = pjsua_python()?;
        let mut child = std::process::Command::new(py)
            .arg(pjsua_script("mwi.py"))
            .args([
                "--aor",
                &format!("sip:{user}@{DOMAIN}"),
                "--proxy",
                &proxy.to_string(),
                "--until-new-sequence",
                until_new,
                "--timeout",
                "90",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start mwi.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(line.trim()) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        Some(PjsuaMwi { child, lines })
    }

    /// Waits for an MWI report with `new`/`old` counts; returns it.
    pub fn wait_counts(&self, new: u64, old: u64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v["event"] == "mwi" && v["new"] == new && v["old"] == old => return v,
                Ok(v) => seen.push(v),
                Err(_) => panic!("pjsua2 never saw {new}/{old}; saw {seen:?}"),
            }
        }
    }

    pub fn wait_exit(mut self) -> std::process::ExitStatus {
        wait_child(&mut self.child, Duration::from_secs(30)).expect("mwi.py ends")
    }
}

impl Drop for PjsuaMwi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Kamailio in front of a vmail group (tests/kamailio/vmail-dispatcher.cfg)

/// The Kamailio configuration an operator copies: dispatcher with OPTIONS
/// probing in front of the instances of one vmail group.
pub fn kamailio_config() -> PathBuf {
    repo_root()
        .join("tests")
        .join("kamailio")
        .join("vmail-dispatcher.cfg")
}

/// The kamailio binary (`VMAIL_KAMAILIO`, else `kamailio` on PATH, else
/// `/usr/sbin/kamailio`: Debian puts it in sbin, which a non-root PATH
/// often lacks), or `None` after [`skip_or_fail`].
pub fn kamailio_bin() -> Option<PathBuf> {
    static KAMAILIO: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = KAMAILIO
        .get_or_init(|| {
            std::env::var_os("VMAIL_KAMAILIO")
                .map(PathBuf::from)
                .or_else(|| find_in_path("kamailio"))
                .or_else(|| {
                    let p = PathBuf::from("/usr/sbin/kamailio");
                    p.is_file().then_some(p)
                })
        })
        .clone();
    if found.is_none() {
        skip_or_fail("kamailio not found (Debian package kamailio)");
    }
    found
}

/// One destination of Kamailio's dispatcher set, as `dispatcher.list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatcherDest {
    /// `sip:127.0.0.1:PORT`.
    pub uri: String,
    /// State letters: `A` active / `I` inactive / `T` trying / `D` disabled,
    /// then `P` while probed.
    pub flags: String,
    /// Its priority in the set (the highest is tried first).
    pub priority: i64,
}

impl DispatcherDest {
    /// Kamailio sends new requests to it (state `A` or `T`).
    pub fn active(&self) -> bool {
        self.flags.starts_with('A') || self.flags.starts_with('T')
    }

    /// The address in its URI.
    pub fn addr(&self) -> Option<SocketAddr> {
        let hostport = self.uri.strip_prefix("sip:")?;
        let hostport = hostport.split(';').next()?;
        hostport.parse().ok()
    }
}

/// The URI Kamailio's dispatcher list uses for a vmail instance.
pub fn dispatcher_uri(addr: SocketAddr) -> String {
    format!("sip:{addr}")
}

/// Kamailio (Debian 5.6) running `tests/kamailio/vmail-dispatcher.cfg` on a
/// free 127.0.0.1 port, in the foreground (`-DD -E`, its own process group),
/// with a dispatcher set of the given vmail instances and a control socket
/// for `kamcmd` in its temp dir. Killed (the whole process group) on drop;
/// its log is printed when the test panics.
pub struct Kamailio {
    /// SIP port (UDP and TCP).
    pub sip_port: u16,
    /// The dispatcher set, in list order (the first has the highest priority).
    pub destinations: Vec<SocketAddr>,
    dir: TempDir,
    log_path: PathBuf,
    ctl: String,
    kamcmd: PathBuf,
    child: Option<Child>,
}

impl Kamailio {
    /// Start Kamailio dispatching to `destinations`, the first with the
    /// highest priority (give the vmail instance with the lowest `order`
    /// first). Returns once its SIP port is bound and its control socket
    /// answers; `None` when kamailio is missing outside CI (test skipped).
    pub fn start(destinations: &[SocketAddr]) -> Option<Kamailio> {
        let bin = kamailio_bin()?;
        let kamcmd = bin.with_file_name("kamcmd");
        if !kamcmd.is_file() {
            skip_or_fail(&format!(
                "kamcmd not found next to {} (Debian package kamailio)",
                bin.display()
            ));
            return None;
        }
        let dir = tempfile::tempdir().expect("kamailio temp dir");
        let sip_port = free_sip_port();
        let n = destinations.len();
        let list: String = destinations
            .iter()
            .enumerate()
            .map(|(i, d)| format!("1 {} 0 {} name=dest{}\n", dispatcher_uri(*d), n - i, i + 1))
            .collect();
        let list_path = dir.path().join("dispatcher.list");
        fs::write(&list_path, list).expect("write dispatcher list");
        let ctl = format!("unix:{}", dir.path().join("kamailio_ctl").display());
        let log_path = dir.path().join("kamailio.log");
        let log = File::create(&log_path).expect("kamailio log");
        let mut cmd = Command::new(&bin);
        cmd.arg("-DD")
            .arg("-E")
            .arg("-f")
            .arg(kamailio_config())
            .arg("-A")
            .arg(format!("LISTEN_IP={LOCALHOST}"))
            .arg("-A")
            .arg(format!("SIP_PORT={sip_port}"))
            .arg("-A")
            .arg(format!("DS_LIST_FILE=\"{}\"", list_path.display()))
            .arg("-A")
            .arg(format!("CTL_SOCKET=\"{ctl}\""))
            .arg("-m")
            .arg("32")
            .arg("-M")
            .arg("8")
            .arg("-Y")
            .arg(dir.path())
            .arg("-w")
            .arg(dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn().expect("start kamailio");
        let mut k = Kamailio {
            sip_port,
            destinations: destinations.to_vec(),
            dir,
            log_path,
            ctl,
            kamcmd,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(Ok(Some(status))) = k.child.as_mut().map(|c| c.try_wait()) {
                k.child = None;
                panic!(
                    "kamailio exited at start ({status})\n--- kamailio log ---\n{}",
                    k.log()
                );
            }
            if port_bound(sip_port, Transport::Udp) && k.try_dispatcher().is_ok() {
                return Some(k);
            }
            if Instant::now() >= deadline {
                panic!(
                    "kamailio not ready within 15 s\n--- kamailio log ---\n{}",
                    k.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its SIP address (UDP and TCP): send the calls here.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from((LOCALHOST, self.sip_port))
    }

    /// Run `kamcmd -s <ctl> ARGS` (bounded) and return its output.
    pub fn kamcmd(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(&self.kamcmd);
        cmd.arg("-s").arg(&self.ctl).args(args);
        let out = run_bounded(cmd, Duration::from_secs(10)).map_err(|e| e.to_string())?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "kamcmd {args:?}: {}\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn try_dispatcher(&self) -> Result<Vec<DispatcherDest>, String> {
        let text = self.kamcmd(&["dispatcher.list"])?;
        Ok(parse_dispatcher_list(&text))
    }

    /// The dispatcher set's state now (`kamcmd dispatcher.list`).
    pub fn dispatcher(&self) -> Vec<DispatcherDest> {
        self.try_dispatcher()
            .unwrap_or_else(|e| panic!("{e}\n--- kamailio log ---\n{}", self.log()))
    }

    /// Whether Kamailio sends new requests to `dest` now.
    pub fn is_active(&self, dest: SocketAddr) -> bool {
        self.dispatcher()
            .iter()
            .find(|d| d.addr() == Some(dest))
            .unwrap_or_else(|| panic!("{dest} is not in the dispatcher set"))
            .active()
    }

    /// Wait (polling every 50 ms, at most `timeout`) until the destinations
    /// in `up` are active and those in `down` inactive; returns how long it
    /// took. Panics with the state and the log when it does not happen.
    pub fn wait_states(
        &self,
        up: &[SocketAddr],
        down: &[SocketAddr],
        timeout: Duration,
    ) -> Duration {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let state = self.dispatcher();
            let find = |a: &SocketAddr| state.iter().find(|d| d.addr() == Some(*a));
            let ok = up
                .iter()
                .all(|a| find(a).is_some_and(DispatcherDest::active))
                && down.iter().all(|a| find(a).is_some_and(|d| !d.active()));
            if ok {
                return start.elapsed();
            }
            if Instant::now() >= deadline {
                panic!(
                    "dispatcher state not reached in {timeout:?}: want up {up:?}, down {down:?}; \
                     have {state:?}\n--- kamailio log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where Kamailio sent each INVITE, from its log, in order: the first
    /// choice (`vmail-dispatch: INVITE <ruri> to <du>`) and every retry after
    /// a failure (`vmail-dispatch: retry INVITE <ruri> to <du>`).
    pub fn invites_routed(&self) -> Vec<SocketAddr> {
        self.log()
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once("vmail-dispatch: ")?;
                let rest = rest.strip_prefix("retry ").unwrap_or(rest);
                let rest = rest.strip_prefix("INVITE ")?;
                let (_, du) = rest.rsplit_once(" to ")?;
                DispatcherDest {
                    uri: du.trim().to_string(),
                    flags: String::new(),
                    priority: 0,
                }
                .addr()
            })
            .collect()
    }

    /// How many INVITEs Kamailio sent to `dest` (first choices and retries).
    pub fn invites_routed_to(&self, dest: SocketAddr) -> usize {
        self.invites_routed().iter().filter(|a| **a == dest).count()
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Print the log to stderr.
    pub fn print_log(&self) {
        eprintln!(
            "--- kamailio log ({}) ---\n{}",
            self.log_path.display(),
            self.log()
        );
    }

    /// The temp dir holding its dispatcher list, control socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the main process stops its workers and reaps them
            // (workers killed together with it would be left to init as
            // zombies).
            send_signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                // Still there: SIGKILL its whole process group (its own, see
                // process_group(0) in start(); the leader is not reaped yet,
                // so the group id is still ours).
                let mut kill = Command::new("kill");
                kill.arg("-KILL").arg("--").arg(format!("-{}", child.id()));
                let _ = run_bounded(kill, Duration::from_secs(5));
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            self.print_log();
        }
    }
}

/// Parse `kamcmd dispatcher.list`: each `DEST: {` block's `URI:`, `FLAGS:`
/// and `PRIORITY:`.
pub fn parse_dispatcher_list(text: &str) -> Vec<DispatcherDest> {
    let mut out = Vec::new();
    let mut cur: Option<DispatcherDest> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("DEST:") {
            if let Some(d) = cur.take() {
                out.push(d);
            }
            cur = Some(DispatcherDest {
                uri: String::new(),
                flags: String::new(),
                priority: 0,
            });
            continue;
        }
        let Some(d) = cur.as_mut() else { continue };
        if let Some(v) = line.strip_prefix("URI:") {
            d.uri = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("FLAGS:") {
            d.flags = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("PRIORITY:") {
            d.priority = v.trim().parse().unwrap_or(0);
        }
    }
    if let Some(d) = cur.take() {
        out.push(d);
    }
    out
}

/// A stand-in for a passive vmail instance (`tests/sipp/uas_passive.xml`):
/// answers every OPTIONS with `options_status_line`, every INVITE with
/// `invite_status_line` + `resp_headers` (CRLF-prefixed lines). Runs until
/// stopped ([`SippChild::stop`]) or 300 s. `None`: sipp missing (skip).
pub fn passive_standin(
    options_status_line: &str,
    invite_status_line: &str,
    resp_headers: &str,
) -> Option<SippChild> {
    Sipp::uas("uas_passive.xml")
        .key("options_status_line", options_status_line)
        .key("status_line", invite_status_line)
        .key("resp_headers", resp_headers)
        .arg("-m")
        .arg("100000")
        .timeout_s(300)
        .spawn()
}

impl SippChild {
    /// Stop a background sipp (SIGTERM, then SIGKILL after 5 s) and read its
    /// trace files back, e.g. to check which requests a test peer received.
    pub fn stop(mut self) -> SippRun {
        if let Some(child) = self.child.as_mut() {
            send_signal(child.id(), "TERM");
            let _ = wait_child(child, Duration::from_secs(5));
        }
        self.wait()
    }
}

/// The Call-IDs of the calls a vmail instance answered, from its log
/// (`deposit call accepted call_id=...` and `mailbox menu call accepted
/// call_id=...`, logged at info level): which instance took which call.
pub fn calls_accepted(vmail_log: &str) -> Vec<String> {
    vmail_log
        .lines()
        .filter(|l| l.contains("deposit call accepted") || l.contains("menu call accepted"))
        .filter_map(|l| {
            let (_, rest) = l.split_once("call_id=")?;
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// etcd: a real etcd cluster on 127.0.0.1 (the etcd coordination backend)

/// The etcd server binary (`VMAIL_ETCD`, else `etcd` on PATH), or `None`
/// after [`skip_or_fail`].
pub fn etcd_bin() -> Option<PathBuf> {
    let found = std::env::var_os("VMAIL_ETCD")
        .map(PathBuf::from)
        .or_else(|| find_in_path("etcd"));
    if found.is_none() {
        skip_or_fail("etcd is not installed (Debian package etcd-server)");
    }
    found
}

/// One member of an [`EtcdCluster`].
struct EtcdMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

/// An n-member etcd cluster on 127.0.0.1 with free ports, data in a
/// temporary folder, quick elections (heartbeat 50 ms, election timeout
/// 500 ms). Every member is killed on drop; the members' logs are printed
/// when the test fails.
pub struct EtcdCluster {
    bin: PathBuf,
    initial_cluster: String,
    token: String,
    members: Vec<EtcdMember>,
    _dir: TempDir,
}

impl EtcdCluster {
    /// Start `n` members and wait until the cluster has a leader; `None`
    /// (after [`skip_or_fail`]) when etcd is not installed.
    pub fn start(n: usize) -> Option<EtcdCluster> {
        assert!(n >= 1, "an etcd cluster has at least one member");
        let bin = etcd_bin()?;
        let dir = tempfile::tempdir().expect("temp dir for etcd");
        let mut members = Vec::new();
        for i in 0..n {
            let client_port = free_tcp_port();
            let mut peer_port = free_tcp_port();
            while peer_port == client_port {
                peer_port = free_tcp_port();
            }
            members.push(EtcdMember {
                name: format!("m{i}"),
                client_port,
                peer_port,
                data_dir: dir.path().join(format!("m{i}.etcd")),
                log_path: dir.path().join(format!("m{i}.log")),
                child: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "vmail-test-{}-{}",
            std::process::id(),
            members[0].client_port
        );
        let mut cluster = EtcdCluster {
            bin,
            initial_cluster,
            token,
            members,
            _dir: dir,
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_leader(Duration::from_secs(30));
        Some(cluster)
    }

    fn spawn(&mut self, i: usize) {
        let m = &self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .expect("etcd log file");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone etcd log handle"))
            .stderr(log);
        let child = cmd.spawn().expect("start etcd");
        self.members[i].child = Some(child);
    }

    /// Number of members (live or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The client URLs of every member (`http://127.0.0.1:PORT`), killed
    /// ones included, as an operator would configure them.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    /// Whether member `i` is running.
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// `(own member id, leader id)` from member `i`'s status (the gRPC
    /// gateway's `/v3/maintenance/status`); `None` when it does not answer
    /// or knows no leader.
    fn status(&self, i: usize) -> Option<(String, String)> {
        let m = &self.members[i];
        m.child.as_ref()?;
        let addr = SocketAddr::from((LOCALHOST, m.client_port));
        let body = http_post_json(addr, "/v3/maintenance/status", "{}", Duration::from_secs(1))?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let id = json_id(&v["header"]["member_id"])?;
        let leader = json_id(&v["leader"])?;
        (leader != "0").then_some((id, leader))
    }

    /// The index of the current leader, as the running members see it
    /// (all the ones that answer agree), or `None`.
    pub fn leader(&self) -> Option<usize> {
        let statuses: Vec<(usize, String, String)> = (0..self.members.len())
            .filter_map(|i| self.status(i).map(|(id, l)| (i, id, l)))
            .collect();
        let (_, _, leader) = statuses.first()?;
        if statuses.iter().any(|(_, _, l)| l != leader) {
            return None;
        }
        statuses
            .iter()
            .find(|(_, id, _)| id == leader)
            .map(|(i, _, _)| *i)
    }

    /// Wait (at most `timeout`) until the running members agree on a
    /// leader that is running; its index.
    pub fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            if Instant::now() >= deadline {
                self.print_logs();
                panic!("the etcd cluster has no leader after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kill member `i` (SIGKILL); its data stays for [`EtcdCluster::restart`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze member `i` (SIGSTOP): a member that went silent, its
    /// connections open and unanswered.
    pub fn pause(&self, i: usize) {
        if let Some(child) = &self.members[i].child {
            send_signal(child.id(), "STOP");
        }
    }

    /// Let a paused member go on (SIGCONT).
    pub fn resume(&self, i: usize) {
        if let Some(child) = &self.members[i].child {
            send_signal(child.id(), "CONT");
        }
    }

    /// Kill the current leader; its index.
    pub fn kill_leader(&mut self) -> usize {
        let l = self.wait_leader(Duration::from_secs(10));
        self.kill(l);
        l
    }

    /// Start member `i` again on its ports and data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Member `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        fs::read_to_string(&self.members[i].log_path).unwrap_or_default()
    }

    /// Print the last lines of every member's log to stderr.
    pub fn print_logs(&self) {
        for (i, m) in self.members.iter().enumerate() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            eprintln!(
                "--- etcd {} (client port {}) log, last {} lines ---\n{}",
                m.name,
                m.client_port,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// A uint64 of the gRPC gateway's JSON (a string, or a number).
fn json_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A minimal HTTP/1.0 POST of a JSON body on 127.0.0.1: the body of a 200
/// answer.
pub fn http_post_json(addr: SocketAddr, path: &str, body: &str, wait: Duration) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, wait).ok()?;
    stream.set_read_timeout(Some(wait)).ok()?;
    stream.set_write_timeout(Some(wait)).ok()?;
    let req = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    stream.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp).to_string();
    let code: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    (code == 200).then(|| body.to_string())
}

// ---------------------------------------------------------------------------
// A browser: headless Chromium driven by tests/browser/inbox.py (Selenium)

/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver (package `chromium-driver`), given to Selenium
/// explicitly so that it never looks for or downloads a driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A script under `tests/browser/`.
pub fn browser_script(name: &str) -> PathBuf {
    repo_root().join("tests").join("browser").join(name)
}

/// The Python that has selenium (`VMAIL_BROWSER_PYTHON`, else `VMAIL_PYTHON`,
/// else `<repo>/.venv/bin/python`), once [`CHROMIUM`] and [`CHROMEDRIVER`]
/// are there too; `None` after [`skip_or_fail`].
pub fn chromium_python() -> Option<PathBuf> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PY.get_or_init(|| {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).is_file() {
                return Err(format!(
                    "{bin} not found (Debian packages chromium, chromium-driver)"
                ));
            }
        }
        let py = std::env::var_os("VMAIL_BROWSER_PYTHON")
            .or_else(|| std::env::var_os("VMAIL_PYTHON"))
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
        python_importing(py, "selenium")
    });
    found_or_skip(found)
}

/// What one run of tests/browser/inbox.py printed: one JSON line per step.
#[derive(Debug)]
pub struct BrowserRun {
    /// The script's exit status and output.
    pub output: Output,
    /// The JSON lines, in order (the last one is `{"step": "done", ...}`).
    pub steps: Vec<Value>,
}

impl BrowserRun {
    /// Every step passed (exit status 0).
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// Panic with the steps and the script's stderr unless it exited 0.
    pub fn assert_success(&self, what: &str) {
        if !self.success() {
            panic!("{what}: browser steps failed\n{}", self.report());
        }
    }

    /// The steps, the exit status and the stderr's tail, for a panic message.
    pub fn report(&self) -> String {
        let stderr = String::from_utf8_lossy(&self.output.stderr);
        // Chromium is chatty on stderr (D-Bus, audio devices): the tail is enough.
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        let steps: Vec<String> = self.steps.iter().map(Value::to_string).collect();
        format!(
            "exit: {}\n--- steps ---\n{}\n--- stderr (tail) ---\n{tail}",
            self.output.status,
            steps.join("\n")
        )
    }

    /// The `n`-th (from 0) line of step `name`; `Null` when there is none.
    pub fn nth(&self, name: &str, n: usize) -> &Value {
        self.steps
            .iter()
            .filter(|s| s["step"] == name)
            .nth(n)
            .unwrap_or(&Value::Null)
    }

    /// The first line of step `name`; `Null` when there is none.
    pub fn step(&self, name: &str) -> &Value {
        self.nth(name, 0)
    }
}

/// A browser session against `base` (an `http://127.0.0.1:PORT` origin):
/// each [`Browser::run`] starts headless Chromium, runs the steps of
/// tests/browser/inbox.py in order and closes it.
#[derive(Clone, Debug)]
pub struct Browser {
    base: String,
    mailbox: Option<String>,
    pin: Option<String>,
    timeout_s: u64,
    step_timeout_s: u64,
}

impl Browser {
    /// A browser for the web pages of `http` (vmail's HTTP port).
    pub fn new(http: SocketAddr) -> Browser {
        Browser {
            base: format!("http://{http}"),
            mailbox: None,
            pin: None,
            timeout_s: 120,
            step_timeout_s: 20,
        }
    }

    /// The mailbox address (`user@domain`) and PIN the `login` and
    /// `wrong-pin` steps use.
    pub fn login_as(mut self, mailbox: &str, pin: &str) -> Self {
        self.mailbox = Some(mailbox.into());
        self.pin = Some(pin.into());
        self
    }

    /// The script's overall limit (default 120 s); the process is killed
    /// 30 s after that whatever happens.
    pub fn timeout_s(mut self, s: u64) -> Self {
        self.timeout_s = s;
        self
    }

    /// The limit of one wait inside a step (default 20 s).
    pub fn step_timeout_s(mut self, s: u64) -> Self {
        self.step_timeout_s = s;
        self
    }

    /// Run the steps (e.g. `["login", "expect-messages", "1"]`). `None`:
    /// Chromium, chromedriver or selenium is missing (test skipped).
    pub fn run(&self, steps: &[&str]) -> Option<BrowserRun> {
        let py = chromium_python()?;
        let mut cmd = Command::new(py);
        cmd.arg(browser_script("inbox.py"))
            .args(["--base", &self.base])
            .args(["--timeout", &self.timeout_s.to_string()])
            .args(["--step-timeout", &self.step_timeout_s.to_string()])
            .args(["--chromium", CHROMIUM, "--chromedriver", CHROMEDRIVER])
            .env("SE_OFFLINE", "true");
        if let (Some(m), Some(p)) = (&self.mailbox, &self.pin) {
            cmd.args(["--mailbox", m, "--pin", p]);
        }
        cmd.args(steps);
        let limit = Duration::from_secs(self.timeout_s + 30);
        let output = run_bounded(cmd, limit).expect("run tests/browser/inbox.py");
        let steps = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
            .collect();
        Some(BrowserRun { output, steps })
    }
}

/// Where browser screenshots are kept: `<target>/web-artifacts/` (the
/// cargo target directory, `CARGO_TARGET_DIR` when set).
pub fn web_artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                repo_root().join(p)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("web-artifacts");
    fs::create_dir_all(&dir).expect("create web-artifacts dir");
    dir
}

/// True when `path` holds a PNG image (its 8-byte signature) of more than
/// `min_bytes`.
pub fn is_png(path: &Path, min_bytes: u64) -> bool {
    let Ok(bytes) = fs::read(path) else {
        return false;
    };
    bytes.len() as u64 > min_bytes && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

// ---------------------------------------------------------------------------
// HTTPS on the HTTP port (`ext.http_tls`): readiness probe, private CA.

/// Whether the instance's configuration turns `ext.http_tls` on.
pub fn http_tls_on(v: &Vmail) -> bool {
    fs::read(v.config_path())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|c| {
            c["roles"].as_array().map(|roles| {
                roles
                    .iter()
                    .any(|r| r["ext"]["http_tls"].as_bool() == Some(true))
            })
        })
        .unwrap_or(false)
}

/// `GET /healthz` answers 200, over HTTPS when the instance serves it (the
/// probe checks readiness, not the certificate: any is accepted).
fn healthz_ready(v: &Vmail) -> bool {
    if !http_tls_on(v) {
        return http_get(v.http_addr(), "/healthz", Duration::from_millis(500))
            .is_some_and(|(code, _)| code == 200);
    }
    reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_millis(500))
        .build()
        .ok()
        .and_then(|c| {
            c.get(format!("https://{}/healthz", v.http_addr()))
                .send()
                .ok()
        })
        .is_some_and(|r| r.status().as_u16() == 200)
}

/// A private CA (`ca.pem`) and a certificate for 127.0.0.1 it signed
/// (`cert.pem`, `key.pem`), in the returned directory, made with the
/// openssl command: what an operator's internal server has.
pub fn private_ca() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let openssl = |args: &[&str]| {
        let mut cmd = Command::new("openssl");
        cmd.args(args).current_dir(dir.path());
        let out = run_bounded(cmd, Duration::from_secs(30))
            .expect("run openssl (scripts/test.sh installs it)");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "2",
        "-subj",
        "/CN=vmail test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    openssl(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&csr);
    fs::write(
        dir.path().join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write leaf.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    dir
}
// Sites: two sites on 127.0.0.1, each its own vmail and SiteShare, each
// naming the other under `sites` (tests/sites.rs)

/// The Bearer token site A's API accepts (site B uses it to reach A).
pub const SITE_A_TOKEN: &str = "site-a-token-0123456789";
/// The Bearer token site B's API accepts.
pub const SITE_B_TOKEN: &str = "site-b-token-0123456789";

/// Two sites serving [`DOMAIN`]: `siteA` (instance `vmailA`) and `siteB`
/// (`vmailB`).
pub struct TwoSites {
    pub a: Vmail,
    pub b: Vmail,
}

/// Starts both sites with demo mailboxes `users` (PIN 1234); `tweak`
/// changes both instances' `ext`.
pub fn two_sites(users: &[&str], tweak: impl Fn(&mut Value) + Clone + 'static) -> TwoSites {
    let port_a = free_tcp_port();
    let mut port_b = free_tcp_port();
    while port_b == port_a {
        port_b = free_tcp_port();
    }
    let demo: Vec<Value> = users
        .iter()
        .map(|u| json!({"user": u, "domain": DOMAIN, "pin": "1234"}))
        .collect();
    let start = |me: &str, port: u16, token: &str, peer: &str, peer_port: u16, peer_token: &str| {
        let (demo, tweak) = (demo.clone(), tweak.clone());
        let (me, token, peer, peer_token) = (
            me.to_owned(),
            token.to_owned(),
            peer.to_owned(),
            peer_token.to_owned(),
        );
        Vmail::builder()
            .name(&format!("vmail{}", &me[4..]))
            .env("RUST_LOG", "info,vmail=debug")
            .ext(move |ext| {
                ext["http_port"] = json!(port);
                ext["api_tokens"] = json!([token]);
                ext["demo_mailboxes"] = Value::Array(demo);
                tweak(ext);
            })
            .config(move |c| {
                c["site"] = json!(me);
                c["sites"] = json!({ peer: {
                    "api": format!("http://127.0.0.1:{peer_port}"),
                    "token": peer_token,
                }});
            })
            .start()
    };
    let mut a = start("siteA", port_a, SITE_A_TOKEN, "siteB", port_b, SITE_B_TOKEN);
    let mut b = start("siteB", port_b, SITE_B_TOKEN, "siteA", port_a, SITE_A_TOKEN);
    // the ports chosen here, not the builder's
    a.http_port = port_a;
    b.http_port = port_b;
    TwoSites { a, b }
}

/// The HTTP API of one site, as an operator's client uses it.
pub struct SiteApi {
    base: String,
    token: String,
    client: reqwest::blocking::Client,
}

impl SiteApi {
    /// The API of `v`, with `token`.
    pub fn new(v: &Vmail, token: &str) -> SiteApi {
        SiteApi {
            base: format!("http://{}", v.http_addr()),
            token: token.to_owned(),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
        }
    }

    /// `path` under `/api/v1/domains/<DOMAIN>/mailboxes/`.
    pub fn mailbox_url(&self, path: &str) -> String {
        format!("{}/api/v1/domains/{DOMAIN}/mailboxes/{path}", self.base)
    }

    /// A request with the token; status and JSON body (`null` when none).
    pub fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, self.mailbox_url(path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("HTTP request");
        let code = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The messages of `user`'s `folder`.
    pub fn messages(&self, user: &str, folder: &str) -> Value {
        let (code, body) = self.send(
            reqwest::Method::GET,
            &format!("{user}/messages?folder={folder}"),
            None,
        );
        assert_eq!(code, 200, "{body}");
        body
    }

    /// The bytes of a message's audio, with an optional `Range`.
    pub fn audio(&self, user: &str, id: &str, range: Option<&str>) -> (u16, Vec<u8>) {
        let mut req = self
            .client
            .get(self.mailbox_url(&format!("{user}/messages/{id}/audio")))
            .bearer_auth(&self.token);
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        let resp = req.send().expect("HTTP request");
        let code = resp.status().as_u16();
        (code, resp.bytes().map(|b| b.to_vec()).unwrap_or_default())
    }
}

/// The ids of a listing's items, in order.
pub fn listed_ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Leaves one message in `user`'s mailbox at `v` with sipp and waits until
/// its INBOX there holds `inbox` messages; the new message's id.
pub fn deposit_at(v: &Vmail, user: &str, inbox: usize) -> String {
    // a 100 ms greeting: recording starts about half a second after the answer
    let store = vmail::store::FsStore::open_with_pin_cost(
        v.siteshare.path(),
        vmail::store::PinCost::TestOnly,
    )
    .expect("open store");
    let id = vmail::store::MailboxId::new(user, DOMAIN).expect("mailbox id");
    let pcm = vmail::media::tone(400.0, 100, 8000, 8000);
    store
        .store_greeting(&id, vmail::store::GreetingKind::Temporary, &pcm, 8000)
        .expect("store a short greeting");
    let before: BTreeSet<PathBuf> =
        files_with_suffix(&v.mailbox_dir(user, DOMAIN).join("INBOX"), ".wav")
            .into_iter()
            .collect();
    let new = sipp_deposit(v, user, inbox)
        .into_iter()
        .find(|p| !before.contains(p))
        .expect("a new message");
    new.file_stem()
        .and_then(|s| s.to_str())
        .expect("message id")
        .to_owned()
}
// --- end of the sites helpers ---
// Calls to the access number with pjsua (tests/retrieval.rs,
// tests/sites_menu.rs) and deposits with sipp (tests/mwi.rs, sites)

/// A pjsua call to the access number (`*98`), as `caller` (a user of
/// [`DOMAIN`]), hanging up after `hangup_after` seconds.
pub struct AccessCall<'a> {
    /// `sip:<caller>@DOMAIN`.
    pub caller: String,
    pub dtmf: Vec<(f64, &'a str)>,
    /// `rfc2833` (the default) or `info`.
    pub method: &'a str,
    pub hangup_after: f64,
    /// A WAV file the caller plays, and after how many seconds.
    pub wav: Option<(PathBuf, f64)>,
}

impl<'a> AccessCall<'a> {
    pub fn new(caller: &str, hangup_after: f64) -> Self {
        AccessCall {
            caller: format!("sip:{caller}@{DOMAIN}"),
            dtmf: Vec::new(),
            method: "rfc2833",
            hangup_after,
            wav: None,
        }
    }

    /// Sends `digits` at `at` seconds.
    pub fn dtmf(mut self, at: f64, digits: &'a str) -> Self {
        self.dtmf.push((at, digits));
        self
    }

    /// Calls the access number; returns the pjsua result and what the
    /// caller heard.
    pub fn run(self, v: &Vmail) -> Option<(PjsuaRun, Vec<i16>)> {
        if pjsua_python().is_none() {
            skip_or_fail("pjsua2 (VMAIL_PYTHON)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("heard.wav");
        let mut args: Vec<String> = vec![
            "--target".into(),
            format!("sip:*98@{DOMAIN}"),
            "--proxy".into(),
            v.sip_addr().to_string(),
            "--caller".into(),
            self.caller.clone(),
            "--record".into(),
            rec.display().to_string(),
            "--hangup-after-seconds".into(),
            format!("{:.1}", self.hangup_after),
            "--dtmf-method".into(),
            self.method.into(),
            "--codecs".into(),
            "PCMU,PCMA".into(),
            "--timeout".into(),
            format!("{:.0}", self.hangup_after + 20.0),
        ];
        for (at, digits) in &self.dtmf {
            args.push("--dtmf".into());
            args.push(format!("{at:.1}:{digits}"));
        }
        if let Some((wav, delay)) = &self.wav {
            args.push("--wav".into());
            args.push(wav.display().to_string());
            args.push("--wav-delay".into());
            args.push(format!("{delay:.1}"));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = pjsua("deposit.py", &argv).expect("python present");
        run.assert_success("deposit.py to the access number");
        let heard = if rec.exists() {
            read_wav(&rec).1
        } else {
            Vec::new()
        };
        Some((run, heard))
    }
}

/// Leaves one message in `user`'s mailbox at `v` with sipp (3 s of audio)
/// and waits until its INBOX holds `inbox` messages; their `.wav` files.
pub fn sipp_deposit(v: &Vmail, user: &str, inbox: usize) -> Vec<PathBuf> {
    let Some(run) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox(user)
        .hold_ms(3000)
        .run()
    else {
        panic!("sipp is needed");
    };
    run.assert_success("deposit.xml");
    wait_for_files(
        &v.mailbox_dir(user, DOMAIN).join("INBOX"),
        ".wav",
        inbox,
        Duration::from_secs(10),
    )
}
// --- end of the access call and deposit helpers ---
