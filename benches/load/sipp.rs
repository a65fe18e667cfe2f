//! sipp for the load harness: `benches/sipp/deposit_csv.xml`, one CSV line
//! per call (mailbox user; caller's RTP port), bounded in calls and time,
//! 127.0.0.1 only. Results come from sipp's statistics and counts files.

use std::fs::{self, File};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One sipp run.
pub struct SippJob<'a> {
    /// vmail's SIP address.
    pub remote: SocketAddr,
    /// The Request-URI domain.
    pub domain: &'a str,
    /// (mailbox user, caller RTP port) per call, in order.
    pub lines: Vec<(String, u16)>,
    /// How long each call is held after the ACK.
    pub hold: Duration,
    /// New calls per second.
    pub rate: f64,
    /// Calls in progress at most.
    pub limit: usize,
    /// sipp's own time limit.
    pub timeout: Duration,
    /// Where sipp runs (its files go there).
    pub dir: PathBuf,
    /// Offer G.722 only (else PCMA and PCMU).
    pub g722: bool,
    /// SRTP: the SDES key (base64) offered in every call's `a=crypto`.
    pub srtp_key: Option<String>,
}

/// A sipp process.
pub struct SippProc {
    child: Child,
    dir: PathBuf,
    started: Instant,
    limit: Duration,
    /// sipp's pid.
    pub pid: u32,
}

/// What sipp reported.
#[derive(Debug, Default, Clone)]
pub struct SippResult {
    /// Exit status (0: every call succeeded).
    pub status: Option<i32>,
    /// Calls created.
    pub created: u64,
    /// Calls that went through the whole scenario.
    pub successful: u64,
    /// Calls that failed, and why (sipp's Failed* counters that are not 0).
    pub failed: u64,
    /// Failure reasons with their counts.
    pub reasons: Vec<(String, u64)>,
    /// Requests sipp had to retransmit (no answer within 500 ms).
    pub retrans_sent: u64,
    /// Responses vmail retransmitted (a 200 resent before sipp's ACK got there).
    pub retrans_received: u64,
    /// Unexpected messages.
    pub unexpected: u64,
    /// Mean INVITE to 200 time.
    pub response_time: Option<Duration>,
    /// The tail of sipp's screen and errors, for failures.
    pub tail: String,
}

fn scenario(srtp: bool) -> PathBuf {
    let name = if srtp {
        "deposit_csv_srtp.xml"
    } else {
        "deposit_csv.xml"
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/sipp")
        .join(name)
}

/// A UDP port free on 127.0.0.1 now.
pub fn free_udp_port() -> std::io::Result<u16> {
    Ok(UdpSocket::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

impl SippJob<'_> {
    /// Starts sipp.
    pub fn start(&self) -> std::io::Result<SippProc> {
        fs::create_dir_all(&self.dir)?;
        let csv = self.dir.join("calls.csv");
        let mut f = std::io::BufWriter::new(File::create(&csv)?);
        writeln!(f, "SEQUENTIAL")?;
        for (user, port) in &self.lines {
            writeln!(f, "{user};{port};")?;
        }
        f.flush()?;
        drop(f);
        let port = free_udp_port()?;
        // The rate as calls per 10 s keeps fractional rates exact.
        let per_10s = (self.rate * 10.0).round().max(1.0) as u64;
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf")
            .arg(scenario(self.srtp_key.is_some()))
            .arg(self.remote.to_string())
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-t", "u1"])
            .args(["-p", &port.to_string()])
            .arg("-inf")
            .arg(&csv)
            .args(["-key", "domain", self.domain])
            .args(if self.g722 {
                [
                    "-key",
                    "payloads",
                    "9",
                    "-key",
                    "rtpmaps",
                    "\r\na=rtpmap:9 G722/8000",
                ]
            } else {
                [
                    "-key",
                    "payloads",
                    "8 0",
                    "-key",
                    "rtpmaps",
                    "\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000",
                ]
            })
            .args(["-d", &self.hold.as_millis().to_string()])
            .args(["-r", &per_10s.to_string(), "-rp", "10000"])
            .args(["-m", &self.lines.len().to_string()])
            .args(["-l", &self.limit.to_string()])
            .args(["-timeout", &format!("{}s", self.timeout.as_secs().max(1))])
            .arg("-timeout_error")
            .args(["-buff_size", "4194304"])
            .args(["-watchdog_major_maxtriggers", "1000000"])
            .args(["-watchdog_minor_maxtriggers", "1000000"])
            .arg("-nostdin")
            .args(["-trace_stat", "-stf"])
            .arg(self.dir.join("stat.csv"))
            .args(["-fd", "1", "-trace_counts", "-trace_err", "-error_file"])
            .arg(self.dir.join("errors.log"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(File::create(self.dir.join("screen.txt"))?)
            .stderr(File::create(self.dir.join("stderr.txt"))?);
        if let Some(key) = &self.srtp_key {
            cmd.args(["-key", "crypto_key", key]);
        }
        let child = cmd.spawn()?;
        Ok(SippProc {
            pid: child.id(),
            child,
            dir: self.dir.clone(),
            started: Instant::now(),
            limit: self.timeout + Duration::from_secs(20),
        })
    }
}

impl SippProc {
    /// True while sipp runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for sipp (killed past its time limit) and reads its results.
    pub fn wait(mut self) -> SippResult {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if self.started.elapsed() > self.limit => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
                Err(_) => break None,
            }
        };
        let mut r = read_results(&self.dir);
        r.status = status;
        r
    }
}

/// Reads the last line of the statistics file and the counts file.
fn read_results(dir: &Path) -> SippResult {
    let mut r = SippResult::default();
    let stat = fs::read_to_string(dir.join("stat.csv")).unwrap_or_default();
    let mut lines = stat.lines().filter(|l| !l.trim().is_empty());
    if let (Some(head), Some(last)) = (lines.next(), stat.lines().rfind(|l| !l.is_empty())) {
        let names: Vec<&str> = head.split(';').collect();
        let values: Vec<&str> = last.split(';').collect();
        let get = |name: &str| -> Option<&str> {
            names
                .iter()
                .position(|n| *n == name)
                .and_then(|i| values.get(i).copied())
        };
        let num = |name: &str| get(name).and_then(|v| v.trim().parse::<u64>().ok());
        r.created = num("TotalCallCreated").unwrap_or(0);
        r.successful = num("SuccessfulCall(C)").unwrap_or(0);
        r.failed = num("FailedCall(C)").unwrap_or(0);
        r.retrans_sent = num("Retransmissions(C)").unwrap_or(0);
        for n in &names {
            if n.starts_with("Failed") && n.ends_with("(C)") && *n != "FailedCall(C)" {
                if let Some(v) = num(n).filter(|v| *v > 0) {
                    r.reasons.push((
                        n.trim_start_matches("Failed")
                            .trim_end_matches("(C)")
                            .to_string(),
                        v,
                    ));
                }
            }
        }
        r.response_time = get("ResponseTime1(C)").and_then(parse_sipp_time);
    }
    // Counts: "<n>_<msg>_Retrans" after a "_Recv" column is a retransmission
    // received; "_Unexp" are unexpected messages.
    if let Some(counts) = fs::read_dir(dir).ok().and_then(|rd| {
        rd.filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("_counts.csv"))
    }) {
        let text = fs::read_to_string(counts).unwrap_or_default();
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        if let (Some(head), Some(last)) = (lines.next(), text.lines().rfind(|l| !l.is_empty())) {
            let names: Vec<&str> = head.split(';').collect();
            let values: Vec<&str> = last.split(';').collect();
            let is_recv: Vec<bool> = names.iter().map(|n| n.ends_with("_Recv")).collect();
            for (i, n) in names.iter().enumerate() {
                let v: u64 = values
                    .get(i)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                // A _Retrans column belongs to the step named just before it.
                let prefix = n.trim_end_matches("_Retrans");
                if n.ends_with("_Retrans")
                    && names
                        .iter()
                        .zip(&is_recv)
                        .any(|(m, recv)| *recv && m.trim_end_matches("_Recv") == prefix)
                {
                    r.retrans_received += v;
                }
                if n.ends_with("_Unexp") {
                    r.unexpected += v;
                }
            }
        }
    }
    let screen = fs::read_to_string(dir.join("screen.txt")).unwrap_or_default();
    let errors = fs::read_to_string(dir.join("errors.log")).unwrap_or_default();
    let stderr = fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
    let tail = |s: &str, n: usize| {
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    };
    r.tail = format!(
        "--- sipp errors ---\n{}\n--- sipp stderr ---\n{}\n--- sipp screen ---\n{}",
        tail(&errors, 15),
        tail(&stderr, 10),
        tail(&screen, 25)
    );
    r
}

/// sipp's "HH:MM:SS:uuuuuu".
fn parse_sipp_time(s: &str) -> Option<Duration> {
    let p: Vec<u64> = s
        .trim()
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    match p.as_slice() {
        [h, m, sec, us] => Some(Duration::from_micros(
            ((h * 60 + m) * 60 + sec) * 1_000_000 + us,
        )),
        _ => None,
    }
}
