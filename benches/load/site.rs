//! The vmail under test: a temporary SiteShare and configuration on free
//! 127.0.0.1 ports, mailboxes written straight into the store's layout,
//! the release binary started and stopped, recordings read back.

use std::fs::{self, File};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procfs;

/// The domain the harness's vmail serves.
pub const DOMAIN: &str = "test.rootdomain.ru";

/// A SiteShare, a configuration file and a log folder.
pub struct Site {
    /// Everything of this site lives here.
    pub root: PathBuf,
    /// `ext.siteshare`.
    pub siteshare: PathBuf,
    config: PathBuf,
    /// The whole configuration, rewritten by [`Site::set_ext`].
    doc: Value,
    /// vmail's SIP address.
    pub sip: SocketAddr,
    /// vmail's HTTP address (`/metrics`).
    pub http: SocketAddr,
    logs: u32,
}

impl Site {
    /// A site under `root` with `ext` settings on top of the harness's.
    pub fn new(root: &Path, ext: Value) -> std::io::Result<Site> {
        let siteshare = root.join("siteshare");
        fs::create_dir_all(siteshare.join("vmail/domains").join(DOMAIN))?;
        let sip_port = free_sip_port()?;
        let http_port = free_sip_port()?;
        let mut e = json!({
            "sip_port": sip_port,
            "http_port": http_port,
            // Below the ephemeral range the generator's ports come from.
            "rtp_port_min": 10000,
            "rtp_port_max": 29999,
            "siteshare": siteshare,
            "prompts": Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"),
            "max_calls": 20000,
            "min_message_seconds": 0,
        });
        if let (Some(base), Value::Object(more)) = (e.as_object_mut(), ext) {
            base.extend(more);
        }
        let config = json!({
            "site": "bench",
            "interfaces": { "lo": "127.0.0.1" },
            "roles": [{
                "name": "vmail1",
                "roletype": "vmail",
                "iface": "lo",
                "group": 1,
                "order": 1,
                "include_domains": [DOMAIN],
                "ext": e,
            }],
        });
        let path = root.join("vmail.json");
        fs::write(
            &path,
            serde_json::to_vec_pretty(&config).map_err(std::io::Error::other)?,
        )?;
        Ok(Site {
            root: root.to_path_buf(),
            siteshare,
            config: path,
            doc: config,
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            logs: 0,
        })
    }

    /// Sets `ext` keys for the next start.
    pub fn set_ext(&mut self, more: Value) -> std::io::Result<()> {
        if let (Some(ext), Value::Object(more)) = (
            self.doc
                .pointer_mut("/roles/0/ext")
                .and_then(Value::as_object_mut),
            more,
        ) {
            ext.extend(more);
        }
        fs::write(
            &self.config,
            serde_json::to_vec_pretty(&self.doc).map_err(std::io::Error::other)?,
        )
    }

    /// The value of the counter `name` with `label` (e.g.
    /// `reason="media_lag"`) in vmail's `/metrics`; 0 when absent.
    pub fn metric(&self, name: &str, label: &str) -> u64 {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&self.http, Duration::from_secs(2))
        else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = format!("GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.http);
        if s.write_all(req.as_bytes()).is_err() {
            return 0;
        }
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    /// `<siteshare>/vmail/domains/<DOMAIN>/<user>`.
    pub fn mailbox_dir(&self, user: &str) -> PathBuf {
        self.siteshare.join("vmail/domains").join(DOMAIN).join(user)
    }

    /// Writes mailbox `user` as the store lays it out (`mailbox.json`
    /// without a PIN, `INBOX/ Old/ greetings/ tmp/`), with `greeting` as
    /// its temporary greeting when given. No fsync: the harness made it.
    pub fn write_mailbox(&self, user: &str, greeting: Option<&[u8]>) -> std::io::Result<()> {
        let dir = self.mailbox_dir(user);
        for sub in ["INBOX", "Old", "greetings", "tmp"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(
            dir.join("mailbox.json"),
            br#"{"version":1,"settings":{},"pin_hash":null,"created":"2026-01-01T00:00:00Z"}"#,
        )?;
        if let Some(wav) = greeting {
            fs::write(dir.join("greetings/temp.wav"), wav)?;
        }
        Ok(())
    }

    /// Starts the release vmail (optionally under `wrapper`, e.g. valgrind)
    /// and waits until it answers an OPTIONS, then until it is the active
    /// instance of its group (OPTIONS answered `200`, not `503`): a fresh
    /// instance watches the group's lease for `lease_ms` (3 s) before it
    /// takes it, and meanwhile sends callers away. Calls started before
    /// that were lost to the steps that start sipp at once.
    pub fn start(&mut self, wrapper: &[String], ready_within: Duration) -> std::io::Result<Vmail> {
        self.logs += 1;
        let log_path = self.root.join(format!("vmail-{}.log", self.logs));
        let log = File::create(&log_path)?;
        let bin = env!("CARGO_BIN_EXE_vmail");
        let mut cmd = match wrapper.split_first() {
            Some((w, args)) => {
                let mut c = Command::new(w);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let spawned = Instant::now();
        let child = cmd.spawn()?;
        let mut v = Vmail {
            pid: child.id(),
            child,
            log: log_path,
            ready_after: Duration::ZERO,
            active_after: Duration::ZERO,
        };
        loop {
            if let Ok(Some(status)) = v.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "vmail exited before it was ready ({status}):\n{}",
                    v.log_tail(30)
                )));
            }
            match options_status(self.sip, Duration::from_millis(20)) {
                Some(code) if v.ready_after.is_zero() => {
                    v.ready_after = spawned.elapsed();
                    if code == 200 {
                        v.active_after = v.ready_after;
                        return Ok(v);
                    }
                }
                Some(200) => {
                    v.active_after = spawned.elapsed();
                    return Ok(v);
                }
                // Passive still: ask again shortly.
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
                None => {}
            }
            if spawned.elapsed() > ready_within {
                v.stop();
                return Err(std::io::Error::other("vmail was not ready in time"));
            }
        }
    }
}

/// A running vmail.
pub struct Vmail {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
    /// From spawn to the first answered OPTIONS.
    pub ready_after: Duration,
    /// From spawn to the first OPTIONS answered `200` (the active instance).
    pub active_after: Duration,
}

impl Vmail {
    /// CPU time used so far.
    pub fn cpu(&self) -> Duration {
        procfs::cpu_time(self.pid).unwrap_or_default()
    }

    /// VmRSS in KiB.
    pub fn rss_kib(&self) -> u64 {
        procfs::rss_kib(self.pid).unwrap_or(0)
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines at WARN or ERROR.
    pub fn warnings(&self) -> Vec<String> {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .map(str::to_string)
            .collect()
    }

    /// SIGTERM, then SIGKILL after 20 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vmail {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_sip_port() -> std::io::Result<u16> {
    for _ in 0..100 {
        let u = UdpSocket::bind(("127.0.0.1", 0))?;
        let port = u.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free port"))
}

/// True when an OPTIONS to `addr` gets any answer within `wait`.
/// The status code of vmail's answer to an OPTIONS within `wait`.
pub fn options_status(addr: SocketAddr, wait: Duration) -> Option<u16> {
    let sock = UdpSocket::bind(("127.0.0.1", 0)).ok()?;
    let local = sock.local_addr().ok()?;
    let msg = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-bench-{}-{};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:bench@127.0.0.1>;tag=bench{}\r\n\
         To: <sip:{addr}>\r\n\
         Call-ID: bench-probe-{}-{}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        std::process::id(),
        local.port(),
        local.port(),
        std::process::id(),
        local.port(),
    );
    sock.send_to(msg.as_bytes(), addr).ok()?;
    let _ = sock.set_read_timeout(Some(wait));
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    let status = buf[..n].strip_prefix(b"SIP/2.0 ")?;
    std::str::from_utf8(status.get(..3)?).ok()?.parse().ok()
}

/// A WAV file (16-bit mono 8 kHz PCM) of `pcm`.
pub fn wav_bytes(pcm: &[i16]) -> Vec<u8> {
    let data = (pcm.len() * 2) as u32;
    let mut v = Vec::with_capacity(44 + pcm.len() * 2);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&16000u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data.to_le_bytes());
    for s in pcm {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

/// A stored message as the harness reads it back.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stored {
    /// Samples in the WAV.
    pub samples: u64,
    /// Samples vmail filled with silence (runs of 4 or more zero samples:
    /// the generator's tone never has them).
    pub filled: u64,
}

impl Stored {
    /// 20 ms frames of the caller's audio found in the message.
    pub fn frames(&self) -> f64 {
        (self.samples - self.filled) as f64 / 160.0
    }
}

/// Reads every message WAV in the INBOX of `user`, then deletes the
/// messages (so the next step starts from empty mailboxes).
pub fn take_messages(site: &Site, user: &str) -> Vec<Stored> {
    let inbox = site.mailbox_dir(user).join("INBOX");
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(&inbox) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.extension().is_some_and(|e| e == "wav") {
            if let Ok(bytes) = fs::read(&p) {
                out.push(analyse_wav(&bytes));
            }
        }
        let _ = fs::remove_file(&p);
    }
    out
}

/// Counts the messages in the INBOX of `user`.
pub fn count_messages(site: &Site, user: &str) -> usize {
    fs::read_dir(site.mailbox_dir(user).join("INBOX"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .count()
        })
        .unwrap_or(0)
}

fn analyse_wav(bytes: &[u8]) -> Stored {
    // vmail writes the canonical 44-byte header.
    let data = bytes.get(44..).unwrap_or(&[]);
    let mut filled = 0u64;
    let mut run = 0u64;
    for s in data.chunks_exact(2) {
        if s[0] == 0 && s[1] == 0 {
            run += 1;
        } else {
            if run >= 4 {
                filled += run;
            }
            run = 0;
        }
    }
    if run >= 4 {
        filled += run;
    }
    Stored {
        samples: (data.len() / 2) as u64,
        filled,
    }
}

/// Writes `text` to `path`, creating its folder.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = File::create(path)?;
    f.write_all(text.as_bytes())
}
