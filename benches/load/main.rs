//! vmail load harness: `bash benches/load.sh [--quick]`.
//!
//! Builds and starts the release `vmail` on a temporary SiteShare and
//! configuration (free ports on 127.0.0.1), drives it with sipp (SIP) and
//! an RTP generator of its own (the callers' audio; see `rtp.rs`), and
//! prints one table:
//!
//! - the loopback floor: what `send_to` and `recv_from` cost on this
//!   machine without vmail;
//! - concurrent deposits held for a minute each, stepping up until a step
//!   is not clean: failed calls, SIP retransmissions, the share of the sent
//!   audio frames found in the stored WAVs, vmail's CPU (% of one core, µs
//!   per received RTP packet), RSS per call;
//! - call set-up rate: short deposits at rising rates until more than
//!   0.1 % fail;
//! - prompt pacing: inter-arrival times of vmail's RTP at 100/500/1000
//!   concurrent greetings;
//! - CPU per 11-second phone-like deposit at 400 concurrent calls, and
//!   (`srtp`) the same calls in SRTP (SDES keys offered over UDP, the
//!   generator encrypting every packet);
//! - start-up with 100,000 mailboxes;
//! - (`overload`, only when named in `--only`) phone-like calls offered
//!   faster than the box can carry, with the admission by media lag on and
//!   then off: the refusals (503) against how late the admitted calls'
//!   greetings arrive.
//!
//! Everything is bounded (sipp `-m` and `-timeout`, every wait has a limit)
//! and all traffic stays on 127.0.0.1. Run by `cargo bench` or `cargo test`
//! without `--quick`/`--full`, it only prints how to start it.

mod procfs;
mod rtp;
mod sipp;
mod site;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use rtp::{GenConfig, Generator, Mode, FRAME, FRAME_SAMPLES};
use site::{Site, DOMAIN};

const USAGE: &str = "\
vmail load harness

  bash benches/load.sh [--quick | --full] [options]
  cargo bench --bench load -- --quick | --full [options]

  --quick            small steps, about 3 minutes
  --full             the whole measurement, about 10 minutes
  --only LIST        comma-separated subset of: floor,deposits,rate,pacing,cpu,cpu-g722,srtp,startup,
                     and overload (saturates the box; run only when named)
  --overload N,R     overload step: N calls offered at R per second
  --steps LIST       concurrent deposits per step (e.g. 250,500,1000)
  --hold SECONDS     how long each concurrent deposit is held
  --rates LIST       call set-up rates to try (calls per second)
  --pacing LIST      concurrent greetings per pacing step (e.g. 100,500,1000)
  --mailboxes N      mailboxes for the start-up test
  --wrap CMD         run vmail under CMD (e.g. \"valgrind --tool=callgrind\")
  --threads N        RTP generator threads (default: one per core)
  --keep             keep the temporary folder (logs, sipp files)
";

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    only: Option<Vec<String>>,
    steps: Vec<usize>,
    hold: Duration,
    ramp_rate: f64,
    rates: Vec<u32>,
    rate_seconds: u32,
    pacing_steps: Vec<usize>,
    cpu_concurrent: usize,
    cpu_calls: usize,
    overload_calls: usize,
    overload_rate: u32,
    startup_mailboxes: usize,
    wrapper: Vec<String>,
    threads: usize,
    keep: bool,
}

impl Opts {
    fn parse() -> Result<Option<Opts>, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let full = args.iter().any(|a| a == "--full");
        if !quick && !full {
            return Ok(None);
        }
        let mut o = if quick {
            Opts {
                quick: true,
                only: None,
                steps: vec![100, 200],
                hold: Duration::from_secs(20),
                ramp_rate: 100.0,
                rates: vec![100, 200, 400],
                rate_seconds: 4,
                pacing_steps: vec![100],
                cpu_concurrent: 100,
                cpu_calls: 100,
                overload_calls: 2400,
                overload_rate: 200,
                startup_mailboxes: 100_000,
                wrapper: Vec::new(),
                threads: 0,
                keep: false,
            }
        } else {
            Opts {
                quick: false,
                only: None,
                steps: vec![250, 500, 1000, 2000, 4000],
                hold: Duration::from_secs(60),
                ramp_rate: 250.0,
                rates: vec![200, 400, 600, 800, 1000, 1200, 1500, 2000],
                rate_seconds: 10,
                pacing_steps: vec![100, 500, 1000],
                cpu_concurrent: 400,
                cpu_calls: 1200,
                overload_calls: 4000,
                overload_rate: 300,
                startup_mailboxes: 100_000,
                wrapper: Vec::new(),
                threads: 0,
                keep: false,
            }
        };
        let mut it = args.iter();
        // The value after option `name`, parsed.
        fn value<T: std::str::FromStr>(v: Option<&String>, name: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            let v = v.ok_or_else(|| format!("{name} needs a value"))?;
            v.trim().parse().map_err(|e| format!("{name} {v}: {e}"))
        }
        // A comma-separated list after option `name`, each item parsed.
        fn list<T: std::str::FromStr>(v: Option<&String>, name: &str) -> Result<Vec<T>, String>
        where
            T::Err: std::fmt::Display,
        {
            let v = v.ok_or_else(|| format!("{name} needs a list"))?;
            v.split(',')
                .map(|x| value(Some(&x.to_string()), name))
                .collect()
        }
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" | "--full" | "--bench" => {}
                "--only" => o.only = Some(list(it.next(), a)?),
                "--steps" => o.steps = list(it.next(), a)?,
                "--pacing" => o.pacing_steps = list(it.next(), a)?,
                "--rates" => o.rates = list(it.next(), a)?,
                "--hold" => o.hold = Duration::from_secs(value(it.next(), a)?),
                "--mailboxes" => o.startup_mailboxes = value(it.next(), a)?,
                "--threads" => o.threads = value(it.next(), a)?,
                "--overload" => {
                    let v: Vec<usize> = list(it.next(), a)?;
                    let [n, r] = v[..] else {
                        return Err("--overload needs N,R".into());
                    };
                    o.overload_calls = n;
                    o.overload_rate = u32::try_from(r).map_err(|e| e.to_string())?.max(1);
                }
                "--wrap" => {
                    o.wrapper = value::<String>(it.next(), a)?
                        .split_whitespace()
                        .map(str::to_string)
                        .collect()
                }
                "--keep" => o.keep = true,
                other => return Err(format!("unknown option {other}\n\n{USAGE}")),
            }
        }
        if o.hold < Duration::from_secs(8) {
            return Err("--hold must be at least 8 seconds".into());
        }
        Ok(Some(o))
    }

    fn wants(&self, test: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|l| l.iter().any(|t| t == test))
    }

    /// Steps that run only when `--only` names them.
    fn names(&self, test: &str) -> bool {
        self.only
            .as_ref()
            .is_some_and(|l| l.iter().any(|t| t == test))
    }
}

/// One line of the table.
struct Row {
    test: String,
    load: String,
    calls: String,
    retrans: String,
    frames: String,
    cpu: String,
    per_packet: String,
    rss: String,
    notes: String,
}

impl Row {
    fn new(test: &str, load: String) -> Row {
        Row {
            test: test.into(),
            load,
            calls: "-".into(),
            retrans: "-".into(),
            frames: "-".into(),
            cpu: "-".into(),
            per_packet: "-".into(),
            rss: "-".into(),
            notes: String::new(),
        }
    }
}

/// What the targets are checked against.
#[derive(Default)]
struct Verdicts {
    lines: Vec<String>,
}

impl Verdicts {
    fn add(&mut self, target: &str, figure: String, met: bool) {
        self.lines.push(format!(
            "| {target} | {figure} | {} |",
            if met { "met" } else { "**missed**" }
        ));
    }
}

/// Shared state of one run.
struct Bench {
    opts: Opts,
    root: PathBuf,
    site: Site,
    /// Packets of the short temporary greeting plus the beep.
    prompt_frames: u32,
    /// Duration of greeting + beep.
    prompt_time: Duration,
    /// Mailboxes `1NNNNN` (short greeting) written.
    short_mailboxes: usize,
    /// Mailboxes `2NNNNN` (5 s greeting) written.
    phone_mailboxes: usize,
    /// Length of the default greeting of the pacing mailbox.
    default_greeting: Duration,
    rows: Vec<Row>,
    verdicts: Verdicts,
    log: String,
}

/// The SDES key (AES-128 key and salt) of the SRTP step's calls, and its
/// base64 form as the offer's `a=crypto` carries it.
const SRTP_KEY: [u8; 30] = [0x5a; 30];
const SRTP_KEY_B64: &str = "WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa";

fn short_user(i: usize) -> String {
    format!("1{i:05}")
}

fn phone_user(i: usize) -> String {
    format!("2{i:05}")
}

const PACING_USER: &str = "300000";
/// The caller starts talking this long after the end of the beep.
const GUARD: Duration = Duration::from_millis(100);
/// Short greeting of the deposit tests.
const SHORT_GREETING_MS: u32 = 100;
/// Greeting of the phone-like calls of the CPU test.
const PERSONAL_GREETING_MS: u32 = 5000;

fn frames_of(samples: usize) -> u32 {
    samples.div_ceil(FRAME_SAMPLES) as u32
}

fn say(msg: &str) {
    eprintln!("[load {}] {msg}", time_of_day());
}

fn time_of_day() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

fn main() {
    let opts = match Opts::parse() {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("vmail load harness: not run by `cargo bench`/`cargo test`.\n\n{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(opts) {
        eprintln!("load harness failed: {e}");
        std::process::exit(1);
    }
}

fn run(opts: Opts) -> Result<(), String> {
    let started = Instant::now();
    if std::process::Command::new("sipp")
        .arg("-v")
        .output()
        .is_err()
    {
        return Err(
            "sipp not found (Debian package sip-tester; `bash scripts/test.sh` installs it)".into(),
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("vmail-load-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let root = tmp.path().to_path_buf();
    say(&format!("working in {}", root.display()));
    // SDES keys over UDP: only the SRTP step offers them (sipp has no TLS).
    let site = Site::new(&root.join("site"), json!({"srtp_over_insecure": true}))
        .map_err(|e| e.to_string())?;

    // What vmail will play after the short greeting: the beep.
    let prompts_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let prompts =
        vmail::prompts::PromptSet::load(&prompts_dir, &["en"]).map_err(|e| e.to_string())?;
    let beep = prompts.get("en", "beep").map_or(0, |p| p.len());
    let greeting = vmail::media::tone(400.0, SHORT_GREETING_MS, 8000, 8000);
    let prompt_frames = frames_of(greeting.len()) + frames_of(beep);
    let prompt_time = FRAME * prompt_frames;

    let short_mailboxes = opts
        .steps
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(if opts.wants("rate") { 4000 } else { 0 });
    let phone_mailboxes = if opts.wants("cpu")
        || opts.wants("cpu-g722")
        || opts.wants("srtp")
        || opts.names("overload")
    {
        opts.cpu_concurrent
    } else {
        0
    };
    let t = Instant::now();
    let wav = site::wav_bytes(&greeting);
    for i in 0..short_mailboxes {
        site.write_mailbox(&short_user(i), Some(&wav))
            .map_err(|e| e.to_string())?;
    }
    // The phone-like calls: a personal greeting of 5 s.
    let personal = site::wav_bytes(&vmail::media::tone(400.0, PERSONAL_GREETING_MS, 8000, 8000));
    for i in 0..phone_mailboxes {
        site.write_mailbox(&phone_user(i), Some(&personal))
            .map_err(|e| e.to_string())?;
    }
    // Pacing: the default greeting (shared prompts), which speaks the number.
    site.write_mailbox(PACING_USER, None)
        .map_err(|e| e.to_string())?;
    let mut default_greeting = 0usize;
    for name in ["greeting-intro", "is-unavailable", "leave-message"] {
        default_greeting += prompts.get("en", name).map_or(0, |p| p.len());
    }
    default_greeting += prompts
        .digits("en", PACING_USER)
        .iter()
        .map(|p| p.len())
        .sum::<usize>();
    say(&format!(
        "{} mailboxes written in {:.1} s; greeting+beep = {} frames",
        short_mailboxes + phone_mailboxes + 1,
        t.elapsed().as_secs_f64(),
        prompt_frames,
    ));

    let mut b = Bench {
        opts: opts.clone(),
        root: root.clone(),
        site,
        prompt_frames,
        prompt_time,
        short_mailboxes,
        phone_mailboxes,
        default_greeting: Duration::from_millis(default_greeting as u64 / 8),
        rows: Vec::new(),
        verdicts: Verdicts::default(),
        log: String::new(),
    };

    if opts.wants("floor") {
        b.floor()?;
    }
    if opts.wants("deposits") {
        b.deposits()?;
    }
    if opts.wants("rate") {
        b.setup_rate()?;
    }
    if opts.wants("pacing") {
        b.pacing()?;
    }
    if opts.wants("cpu") {
        b.cpu_per_call(false, false)?;
    }
    if opts.wants("cpu-g722") {
        b.cpu_per_call(true, false)?;
    }
    if opts.wants("srtp") {
        b.cpu_per_call(false, true)?;
    }
    if opts.wants("startup") {
        b.startup()?;
    }
    if opts.names("overload") {
        b.overload()?;
    }

    let report = b.report(started.elapsed());
    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-load")
        .join(format!(
            "report-{}.md",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ));
    if site::write_file(&out, &report).is_ok() {
        say(&format!("report written to {}", out.display()));
    }
    if opts.keep {
        let kept = tmp.keep();
        say(&format!("kept {}", kept.display()));
    }
    Ok(())
}

/// Sleeps until `t`.
fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part * 100.0 / whole
    } else {
        0.0
    }
}

impl Bench {
    /// Waits until the INBOXes of `users` hold `expected` messages, or the
    /// count has not moved for `quiet` (bounded by `limit`).
    fn wait_messages(&self, users: &[String], expected: usize, quiet: Duration, limit: Duration) {
        let t0 = Instant::now();
        let mut last = (0usize, Instant::now());
        loop {
            let n: usize = users
                .iter()
                .map(|u| site::count_messages(&self.site, u))
                .sum();
            if n >= expected || t0.elapsed() > limit {
                return;
            }
            if n != last.0 {
                last = (n, Instant::now());
            } else if last.1.elapsed() > quiet {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The machine's own cost of loopback UDP, without vmail: what one
    /// `send_to` (which on loopback also delivers into the receiving
    /// socket), one `recv_from` and one `recv_from` of an empty socket take
    /// in CPU time, with as many ports as a large step. Every figure above
    /// it pays these once per packet.
    fn floor(&mut self) -> Result<(), String> {
        use std::net::UdpSocket;
        const PORTS: usize = 2000;
        const ROUNDS: usize = 100;
        say(&format!("loopback floor: {PORTS} ports × {ROUNDS} packets"));
        let bind = || -> std::io::Result<UdpSocket> {
            let s = UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
            s.set_nonblocking(true)?;
            Ok(s)
        };
        let rx: Vec<UdpSocket> = (0..PORTS)
            .map(|_| bind())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("floor: {e}"))?;
        let tx: Vec<UdpSocket> = (0..PORTS)
            .map(|_| bind())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("floor: {e}"))?;
        let to: Vec<std::net::SocketAddr> = rx
            .iter()
            .map(|s| s.local_addr())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("floor: {e}"))?;
        let cpu = || procfs::thread_cpu().unwrap_or_default();
        let packet = [0x80u8; 172];
        let mut buf = [0u8; 2048];
        let (mut sent, mut got, mut empty) = (0u64, 0u64, 0u64);
        let (mut send_cpu, mut recv_cpu, mut empty_cpu) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        // In rounds of one packet per port, so the sockets' buffers never
        // fill; each phase measured on its own.
        for _ in 0..ROUNDS {
            let c0 = cpu();
            for (s, a) in tx.iter().zip(&to) {
                if s.send_to(&packet, a).is_ok() {
                    sent += 1;
                }
            }
            let c1 = cpu();
            for s in &rx {
                if s.recv_from(&mut buf).is_ok() {
                    got += 1;
                }
            }
            let c2 = cpu();
            for s in &rx {
                if s.recv_from(&mut buf).is_err() {
                    empty += 1;
                }
            }
            let c3 = cpu();
            send_cpu += c1.saturating_sub(c0);
            recv_cpu += c2.saturating_sub(c1);
            empty_cpu += c3.saturating_sub(c2);
        }
        let per = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n.max(1) as f64;
        let (s_us, r_us, e_us) = (
            per(send_cpu, sent),
            per(recv_cpu, got),
            per(empty_cpu, empty),
        );
        let mut row = Row::new("loopback floor", format!("{PORTS} ports × {ROUNDS}"));
        row.per_packet = format!("{:.2}", s_us + r_us);
        row.notes = format!(
            "no vmail: send_to {s_us:.2} µs (delivery into the receiving socket included), \
             recv_from {r_us:.2} µs, empty recv_from {e_us:.2} µs; {sent} sent, {got} received"
        );
        let _ = writeln!(
            self.log,
            "floor: sent {sent} in {send_cpu:?}, received {got} in {recv_cpu:?}, empty {empty} in {empty_cpu:?}"
        );
        say(&format!(
            "loopback floor: send_to {s_us:.2} µs, recv_from {r_us:.2} µs, empty recv_from {e_us:.2} µs"
        ));
        self.rows.push(row);
        Ok(())
    }

    fn deposits(&mut self) -> Result<(), String> {
        let steps = self.opts.steps.clone();
        for n in steps {
            let clean = self.deposit_step(n)?;
            if !clean {
                say(&format!(
                    "{n} concurrent deposits were not clean: stopping here"
                ));
                break;
            }
        }
        Ok(())
    }

    /// `n` deposits held `hold` each, the caller talking from 100 ms after
    /// the beep to about a second before the BYE.
    fn deposit_step(&mut self, n: usize) -> Result<bool, String> {
        let hold = self.opts.hold;
        let rate = self.opts.ramp_rate.min(n as f64);
        let ramp = Duration::from_secs_f64(n as f64 / rate);
        let talk =
            hold.saturating_sub(self.prompt_time + FRAME + GUARD + Duration::from_millis(1000));
        let frames = (talk.as_millis() / FRAME.as_millis()) as u32;
        say(&format!(
            "deposits: {n} concurrent, {:.0} s each, ramp {rate:.0}/s, {frames} frames per caller",
            hold.as_secs_f64()
        ));
        let mut vm = self
            .site
            .start(&self.opts.wrapper, Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
        say(&format!("vmail pid {}", vm.pid));
        std::thread::sleep(Duration::from_millis(500));
        let idle_rss = vm.rss_kib();
        let gen = Generator::start(
            n,
            self.opts.threads,
            GenConfig {
                mode: Mode::AfterPrompt {
                    prompt_frames: self.prompt_frames,
                    guard: GUARD,
                    gap: Duration::from_secs(1),
                },
                frames,
                g722: false,
                srtp: None,
                prompt_span: None,
            },
        )
        .map_err(|e| format!("RTP generator: {e}"))?;
        let users: Vec<String> = (0..n).map(short_user).collect();
        let lines = users
            .iter()
            .cloned()
            .zip(gen.ports().iter().copied())
            .collect();
        let udp0 = procfs::UdpCounters::read();
        let job = sipp::SippJob {
            remote: self.site.sip,
            domain: DOMAIN,
            lines,
            hold,
            rate,
            limit: n,
            timeout: ramp + hold + Duration::from_secs(90),
            dir: self.root.join(format!("sipp-deposits-{n}")),
            g722: false,
            srtp_key: None,
        };
        let t0 = Instant::now();
        let sipp = job.start().map_err(|e| format!("sipp: {e}"))?;

        // The window where every call is up and its caller talking. The
        // generator's and sipp's CPU are read over the same window as
        // vmail's (before, from sipp's start on: about twice too high).
        let w0 = t0 + ramp + self.prompt_time + GUARD + Duration::from_secs(2);
        let w1 = (t0 + self.prompt_time + GUARD + talk).max(w0 + Duration::from_secs(1));
        sleep_until(w0);
        let own0 = procfs::cpu_time(std::process::id()).unwrap_or_default();
        let sipp0 = procfs::cpu_time(sipp.pid).unwrap_or_default();
        let (cpu0, sent0, at0) = (
            vm.cpu(),
            gen.counters.sent.load(std::sync::atomic::Ordering::Relaxed),
            Instant::now(),
        );
        let mut max_rss = vm.rss_kib();
        let mut calls_up = gen.calls_seen();
        while Instant::now() + Duration::from_secs(1) < w1 {
            std::thread::sleep(Duration::from_secs(1));
            max_rss = max_rss.max(vm.rss_kib());
            calls_up = calls_up.max(gen.calls_seen());
        }
        sleep_until(w1);
        let (cpu1, sent1, at1) = (
            vm.cpu(),
            gen.counters.sent.load(std::sync::atomic::Ordering::Relaxed),
            Instant::now(),
        );
        let own1 = procfs::cpu_time(std::process::id()).unwrap_or_default();
        let sipp1 = procfs::cpu_time(sipp.pid).unwrap_or_default();
        let res = sipp.wait();
        let udp = procfs::UdpCounters::read().since(&udp0);
        self.wait_messages(
            &users,
            res.successful as usize,
            Duration::from_secs(10),
            Duration::from_secs(120),
        );
        let lag_ms = gen
            .counters
            .max_lag_us
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / 1000.0;
        let send_path = gen.send_path;
        let genres = gen.finish();
        let warnings = vm.warnings();
        vm.stop();

        // Frames: what each caller sent against what its message holds.
        let mut sent_frames = 0u64;
        let mut found = 0f64;
        let mut stored_msgs = 0usize;
        let mut missing = 0usize;
        let mut fallback = 0usize;
        for (i, user) in users.iter().enumerate() {
            let msgs = site::take_messages(&self.site, user);
            let rec = genres.calls.iter().find(|c| c.slot == i && c.call == 1);
            let sent = rec.map_or(0, |r| u64::from(r.sent));
            if rec.is_some_and(|r| r.fallback) {
                fallback += 1;
            }
            sent_frames += sent;
            stored_msgs += msgs.len();
            if msgs.is_empty() {
                missing += 1;
            }
            // Extra frames (none expected) do not make up for lost ones.
            let f: f64 = msgs.iter().map(site::Stored::frames).sum();
            found += f.min(sent as f64);
        }
        let prompt_packets = genres.calls.iter().map(|c| c.prompt_packets);
        let prompt_range = (
            prompt_packets.clone().min().unwrap_or(0),
            prompt_packets.max().unwrap_or(0),
        );
        let sipp_failed = res.failed + (n as u64).saturating_sub(res.created);
        let failed = (sipp_failed as usize).max(missing);
        let share = pct(found, sent_frames as f64);
        let cpu = cpu1.saturating_sub(cpu0);
        let dt = at1.duration_since(at0);
        let packets = sent1.saturating_sub(sent0);
        let cpu_pct = pct(cpu.as_secs_f64(), dt.as_secs_f64());
        let us_per_packet = if packets > 0 {
            cpu.as_secs_f64() * 1e6 / packets as f64
        } else {
            0.0
        };
        let rss_per_call = max_rss.saturating_sub(idle_rss) as f64 / n as f64;
        let retrans = res.retrans_sent + res.retrans_received;
        let clean = failed == 0 && retrans == 0 && share >= 99.99;

        let mut row = Row::new("concurrent deposits", format!("{n} × {} s", hold.as_secs()));
        row.calls = format!("{n} ({failed} failed)");
        row.retrans = format!("{} / {}", res.retrans_sent, res.retrans_received);
        row.frames = format!("{share:.3} %");
        row.cpu = format!("{cpu_pct:.0} %");
        row.per_packet = format!("{us_per_packet:.2}");
        row.rss = format!("{rss_per_call:.1} KiB");
        let own = own1.saturating_sub(own0);
        let sipp_cpu = sipp1.saturating_sub(sipp0);
        let mut notes = format!(
            "{:.0} kpps in; generator {:.0} % CPU ({:.2} µs per packet sent, {send_path}), sipp {:.0} %; idle RSS {:.1} MiB",
            packets as f64 / dt.as_secs_f64() / 1000.0,
            pct(own.as_secs_f64(), dt.as_secs_f64()),
            own.as_secs_f64() * 1e6 / packets.max(1) as f64,
            pct(sipp_cpu.as_secs_f64(), dt.as_secs_f64()),
            idle_rss as f64 / 1024.0
        );
        if udp.rcvbuf_errors > 0 {
            let _ = write!(notes, "; {} UDP drops (rcvbuf)", udp.rcvbuf_errors);
        }
        if udp.no_ports > 0 {
            let _ = write!(
                notes,
                "; {} datagrams reached closed ports (sent after the call's BYE)",
                udp.no_ports
            );
        }
        if fallback > 0 {
            let _ = write!(notes, "; {fallback} callers started on silence");
        }
        if lag_ms > 5.0 {
            let _ = write!(notes, "; generator ran up to {lag_ms:.0} ms late");
        }
        if !res.reasons.is_empty() {
            let _ = write!(notes, "; sipp: {:?}", res.reasons);
        }
        if stored_msgs > n {
            let _ = write!(notes, "; {} extra messages", stored_msgs - n);
        }
        row.notes = notes;
        let _ = writeln!(
            self.log,
            "deposits {n}: calls up {calls_up}, sipp {:?} created {} ok {} failed {} unexpected {}, \
             messages {stored_msgs}, prompt packets {prompt_range:?}, frames sent {sent_frames} found {found:.0}, cpu {:?} over {:?}, \
             rss idle {idle_rss} max {max_rss} KiB, udp {udp:?}, warnings {}",
            res.status,
            res.created,
            res.successful,
            res.failed,
            res.unexpected,
            cpu,
            dt,
            warnings.len()
        );
        for w in warnings.iter().take(5) {
            let _ = writeln!(self.log, "  {w}");
        }
        if failed > 0 {
            let _ = writeln!(self.log, "{}", res.tail);
        }
        say(&format!(
            "deposits {n}: {failed} failed, retrans {retrans}, frames {share:.3} %, CPU {cpu_pct:.0} %, \
             {us_per_packet:.2} µs/packet, {rss_per_call:.1} KiB/call"
        ));
        self.rows.push(row);
        // Frames sent more than a second late mostly reach closed ports:
        // then the step measured the generator, not vmail.
        let behind = if lag_ms > 1000.0 {
            format!(" (the generator fell {:.1} s behind)", lag_ms / 1000.0)
        } else {
            String::new()
        };
        if n >= 4000 || n == *self.opts.steps.iter().max().unwrap_or(&0) {
            self.verdicts.add(
                "≥ 4,000 concurrent deposits: 0 failed, no retransmissions, ≥ 99.99 % frames",
                format!(
                    "{n}: {failed} failed, {retrans} retransmissions, {share:.3} % frames{behind}"
                ),
                n >= 4000 && clean,
            );
        } else if !clean {
            self.verdicts.add(
                "≥ 4,000 concurrent deposits: 0 failed, no retransmissions, ≥ 99.99 % frames",
                format!(
                    "gave at {n}: {failed} failed, {retrans} retransmissions, {share:.3} % frames{behind}"
                ),
                false,
            );
        }
        self.verdicts.add(
            "≤ 64 KiB RSS per call in progress",
            format!("{rss_per_call:.1} KiB at {n} calls"),
            rss_per_call <= 64.0,
        );
        Ok(clean)
    }

    fn setup_rate(&mut self) -> Result<(), String> {
        let rates = self.opts.rates.clone();
        let mut best: Option<u32> = None;
        let mut gave: Option<String> = None;
        for r in rates {
            let (clean, summary) = self.rate_step(r)?;
            if clean {
                best = Some(r);
            } else {
                gave = Some(summary);
                break;
            }
        }
        let mut row = Row::new("set-up rate", "highest clean".into());
        row.calls = best.map_or("none".into(), |b| format!("{b} calls/s"));
        row.notes = gave.map_or("no step failed".into(), |g| format!("next step: {g}"));
        self.rows.push(row);
        self.verdicts.add(
            "≥ 1,000 call set-ups per second",
            best.map_or("none clean".into(), |b| format!("{b}/s clean")),
            best.is_some_and(|b| b >= 1000),
        );
        Ok(())
    }

    /// Short deposits (1 s of audio after the beep) at `rate` for a few seconds.
    fn rate_step(&mut self, rate: u32) -> Result<(bool, String), String> {
        let calls = (rate * self.opts.rate_seconds) as usize;
        let hold = self.prompt_time + GUARD + Duration::from_millis(1000 + 400);
        let limit = (rate as usize * 3).max(50);
        let slots = limit * 2;
        say(&format!("set-up rate: {rate}/s, {calls} calls"));
        let mut vm = self
            .site
            .start(&self.opts.wrapper, Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
        let gen = Generator::start(
            slots,
            self.opts.threads,
            GenConfig {
                mode: Mode::AfterPrompt {
                    prompt_frames: self.prompt_frames,
                    guard: GUARD,
                    gap: Duration::from_secs(1),
                },
                frames: 50,
                g722: false,
                srtp: None,
                prompt_span: None,
            },
        )
        .map_err(|e| format!("RTP generator: {e}"))?;
        let nmb = self.short_mailboxes.max(1);
        let lines = (0..calls)
            .map(|i| (short_user(i % nmb), gen.ports()[i % slots]))
            .collect();
        let job = sipp::SippJob {
            remote: self.site.sip,
            domain: DOMAIN,
            lines,
            hold,
            rate: f64::from(rate),
            limit,
            timeout: Duration::from_secs(u64::from(self.opts.rate_seconds) + 90),
            dir: self.root.join(format!("sipp-rate-{rate}")),
            g722: false,
            srtp_key: None,
        };
        let cpu0 = vm.cpu();
        let t0 = Instant::now();
        let mut sipp = job.start().map_err(|e| format!("sipp: {e}"))?;
        // When vmail had answered every call (its greeting reached the caller).
        let mut answered_all: Option<Duration> = None;
        while sipp.running() {
            if answered_all.is_none() && gen.calls_seen() as usize >= calls {
                answered_all = Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let res = sipp.wait();
        let users: Vec<String> = (0..calls.min(nmb)).map(short_user).collect();
        self.wait_messages(
            &users,
            res.successful as usize,
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        let cpu = vm.cpu().saturating_sub(cpu0);
        let genres = gen.finish();
        let warnings = vm.warnings();
        vm.stop();
        let stored: usize = users
            .iter()
            .map(|u| site::take_messages(&self.site, u).len())
            .sum();
        let sipp_failed = res.failed + (calls as u64).saturating_sub(res.created);
        let failed = (sipp_failed as usize).max(calls.saturating_sub(stored));
        let retrans = res.retrans_sent + res.retrans_received;
        let fail_pct = pct(failed as f64, calls as f64);
        let answered_rate = answered_all.map(|d| calls as f64 / d.as_secs_f64());
        let clean = fail_pct <= 0.1 && answered_rate.is_some_and(|a| a >= f64::from(rate) * 0.9);
        let mut row = Row::new(
            "set-up rate",
            format!("{rate}/s × {} s", self.opts.rate_seconds),
        );
        row.calls = format!("{calls} ({failed} failed)");
        row.retrans = format!("{} / {}", res.retrans_sent, res.retrans_received);
        row.cpu = format!("{:.2} ms/call", cpu.as_secs_f64() * 1000.0 / calls as f64);
        let mut notes = match answered_rate {
            Some(a) => format!("answered at {a:.0}/s"),
            None => format!(
                "only {} of {calls} answered",
                genres.calls_seen.iter().sum::<u32>()
            ),
        };
        if let Some(rt) = res.response_time {
            let _ = write!(
                notes,
                "; mean INVITE→200 {:.1} ms",
                rt.as_secs_f64() * 1000.0
            );
        }
        let _ = write!(notes, "; {stored} messages stored");
        if !res.reasons.is_empty() {
            let _ = write!(notes, "; sipp: {:?}", res.reasons);
        }
        row.notes = notes.clone();
        let _ = writeln!(
            self.log,
            "rate {rate}: sipp {:?} created {} ok {} failed {} retrans {}/{} unexpected {}, stored {stored}, warnings {}",
            res.status,
            res.created,
            res.successful,
            res.failed,
            res.retrans_sent,
            res.retrans_received,
            res.unexpected,
            warnings.len()
        );
        for w in warnings.iter().take(5) {
            let _ = writeln!(self.log, "  {w}");
        }
        if failed > 0 {
            let _ = writeln!(self.log, "{}", res.tail);
        }
        say(&format!(
            "set-up rate {rate}/s: {failed} failed ({fail_pct:.2} %), retrans {retrans}, {notes}"
        ));
        self.rows.push(row);
        Ok((
            clean,
            format!("{rate}/s: {failed} failed ({fail_pct:.2} %), {notes}"),
        ))
    }

    fn pacing(&mut self) -> Result<(), String> {
        let steps = self.opts.pacing_steps.clone();
        for n in steps {
            self.pacing_step(n)?;
        }
        Ok(())
    }

    /// `n` callers listening to the default greeting of one mailbox (about
    /// 10 s); they hang up before its end, so nothing is recorded. Intervals
    /// count while all `n` are playing.
    fn pacing_step(&mut self, n: usize) -> Result<(), String> {
        let greeting = self.default_greeting;
        let rate = self.opts.ramp_rate.min(n as f64);
        let ramp = Duration::from_secs_f64(n as f64 / rate);
        let hold = greeting.saturating_sub(Duration::from_millis(300));
        say(&format!(
            "pacing: {n} concurrent greetings of {:.1} s",
            greeting.as_secs_f64()
        ));
        let mut vm = self
            .site
            .start(&self.opts.wrapper, Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
        let gen = Generator::start(
            n,
            self.opts.threads,
            GenConfig {
                mode: Mode::Listen {
                    timed_frames: (greeting.as_millis() / FRAME.as_millis()) as u32,
                },
                frames: 0,
                g722: false,
                srtp: None,
                prompt_span: None,
            },
        )
        .map_err(|e| format!("RTP generator: {e}"))?;
        let lines = gen
            .ports()
            .iter()
            .map(|p| (PACING_USER.to_string(), *p))
            .collect();
        let job = sipp::SippJob {
            remote: self.site.sip,
            domain: DOMAIN,
            lines,
            hold,
            rate,
            limit: n,
            timeout: Duration::from_secs_f64(n as f64 / rate) + hold + Duration::from_secs(60),
            dir: self.root.join(format!("sipp-pacing-{n}")),
            g722: false,
            srtp_key: None,
        };
        let cpu0 = vm.cpu();
        let own0 = procfs::cpu_time(std::process::id()).unwrap_or_default();
        let t0 = Instant::now();
        let sipp = job.start().map_err(|e| format!("sipp: {e}"))?;
        // Every call is playing from the end of the ramp until the first
        // call hangs up.
        let w0 = t0 + ramp + Duration::from_millis(500);
        let w1 = (t0 + hold - Duration::from_millis(200)).max(w0 + Duration::from_secs(1));
        gen.time_window(w0, w1);
        // Hypervisor steal within the window: a vCPU that is not running
        // stalls every thread on it, the pacer's too.
        let stolen = std::thread::spawn(move || {
            sleep_until(w0);
            let s0 = procfs::steal().unwrap_or_default();
            sleep_until(w1);
            procfs::steal().unwrap_or_default().saturating_sub(s0)
        });
        let res = sipp.wait();
        let stolen = stolen.join().unwrap_or_default();
        let dt = t0.elapsed();
        let cpu = vm.cpu().saturating_sub(cpu0);
        let own = procfs::cpu_time(std::process::id())
            .unwrap_or_default()
            .saturating_sub(own0);
        std::thread::sleep(Duration::from_millis(300));
        let genres = gen.finish();
        vm.stop();
        let p = &genres.pacing;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut row = Row::new("prompt pacing", format!("{n} greetings"));
        row.calls = format!("{n} ({} failed)", res.failed);
        row.retrans = format!("{} / {}", res.retrans_sent, res.retrans_received);
        row.cpu = format!("{:.0} %", pct(cpu.as_secs_f64(), dt.as_secs_f64()));
        row.notes = format!(
            "over {:.1} s with all {n} playing: interval p50 {:.2} / p99 {:.2} / max {:.2} ms; |interval − 20 ms| p99 {:.2} ms; {} intervals; generator {:.0} % CPU; steal {:.0} ms",
            w1.duration_since(w0).as_secs_f64(),
            ms(p.intervals.quantile(0.5)),
            ms(p.intervals.quantile(0.99)),
            ms(p.intervals.max()),
            ms(p.deviation.quantile(0.99)),
            p.intervals.count(),
            pct(own.as_secs_f64(), dt.as_secs_f64()),
            ms(stolen)
        );
        say(&format!("pacing {n}: {}", row.notes));
        if n == 1000 || n == *self.opts.pacing_steps.iter().max().unwrap_or(&0) {
            let dev = ms(p.deviation.quantile(0.99));
            self.verdicts.add(
                "pacing p99 ≤ 2 ms at 1,000 concurrent playbacks",
                format!("|interval − 20 ms| p99 {dev:.2} ms at {n}"),
                n >= 1000 && dev <= 2.0,
            );
        }
        self.rows.push(row);
        Ok(())
    }

    /// Phone-like 11-second deposits (5 s personal greeting, beep, message;
    /// RTP both ways from the answer) at `cpu_concurrent` calls in progress,
    /// in PCMA or (`g722`) in G.722: recorded at 16 kHz, prompts encoded
    /// in G.722; with `srtp`, the same calls in SRTP (SDES keys offered
    /// over UDP: the site allows it for this).
    /// One run of phone-like calls (11 s: greeting, beep, message) placed
    /// by sipp with the RTP generator's ports, against a vmail started for
    /// it; what the CPU-per-call and the overload steps both measure.
    fn phone_run(&mut self, run: PhoneRun) -> Result<PhoneOutcome, String> {
        let call = Duration::from_secs(11);
        let frames = ((call - Duration::from_millis(400)).as_millis() / FRAME.as_millis()) as u32;
        let mut vm = self
            .site
            .start(&self.opts.wrapper, Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
        let gen = Generator::start(
            run.slots,
            self.opts.threads,
            GenConfig {
                mode: Mode::FromAnswer,
                frames,
                g722: run.g722,
                srtp: run.srtp.then_some(SRTP_KEY),
                prompt_span: run.prompt_span,
            },
        )
        .map_err(|e| format!("RTP generator: {e}"))?;
        let calls = run.calls;
        let nmb = self.phone_mailboxes.max(1);
        let lines = (0..calls)
            .map(|i| (phone_user(i % nmb), gen.ports()[i % run.slots]))
            .collect();
        let job = sipp::SippJob {
            remote: self.site.sip,
            domain: DOMAIN,
            lines,
            hold: call,
            rate: run.rate,
            limit: run.limit,
            timeout: Duration::from_secs_f64(calls as f64 / run.rate)
                + call
                + Duration::from_secs(60),
            dir: self.root.join(run.dir),
            g722: run.g722,
            srtp_key: run.srtp.then(|| SRTP_KEY_B64.to_string()),
        };
        std::thread::sleep(Duration::from_millis(500));
        let cpu0 = vm.cpu();
        let own0 = procfs::cpu_time(std::process::id()).unwrap_or_default();
        let t0 = Instant::now();
        let sipp = job.start().map_err(|e| format!("sipp: {e}"))?;
        let sipp0 = procfs::cpu_time(sipp.pid).unwrap_or_default();
        let sipp_pid = sipp.pid;
        let mut sipp_cpu = Duration::ZERO;
        let mut sipp = Some(sipp);
        // sipp's own CPU, read while it runs.
        while sipp.as_mut().is_some_and(|s| s.running()) {
            if let Some(c) = procfs::cpu_time(sipp_pid) {
                sipp_cpu = c.saturating_sub(sipp0);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let res = sipp.take().map(sipp::SippProc::wait).unwrap_or_default();
        // CPU since sipp started: vmail's and the harness's own.
        let window = || Window {
            dt: t0.elapsed(),
            cpu: vm.cpu().saturating_sub(cpu0),
            own: procfs::cpu_time(std::process::id())
                .unwrap_or_default()
                .saturating_sub(own0),
        };
        let calls_ended = window();
        let refused_by_lag = self.site.metric("vmail_calls_refused_total", "media_lag");
        let refused_by_count = self
            .site
            .metric("vmail_calls_refused_total", "\"overload\"");
        let users: Vec<String> = (0..calls.min(nmb)).map(phone_user).collect();
        self.wait_messages(
            &users,
            res.successful as usize,
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        let stored_too = window();
        let send_path = gen.send_path;
        let sent = gen.counters.sent.load(std::sync::atomic::Ordering::Relaxed);
        let received = gen
            .counters
            .received
            .load(std::sync::atomic::Ordering::Relaxed);
        let generated = gen.finish();
        vm.stop();
        let stored: usize = users
            .iter()
            .map(|u| site::take_messages(&self.site, u).len())
            .sum();
        Ok(PhoneOutcome {
            res,
            calls_ended,
            stored_too,
            sipp_cpu,
            send_path,
            sent,
            received,
            generated,
            stored,
            refused_by_lag,
            refused_by_count,
        })
    }

    fn cpu_per_call(&mut self, g722: bool, srtp: bool) -> Result<(), String> {
        let codec = if g722 { "G.722" } else { "PCMA" };
        let c = self.opts.cpu_concurrent;
        let calls = self.opts.cpu_calls;
        let rate = c as f64 / 11.0;
        let limit = c + c / 2;
        let what = format!(
            "CPU per call, {codec}{}",
            if srtp { " in SRTP" } else { "" }
        );
        say(&format!(
            "{what}: {calls} calls of 11 s at {rate:.1}/s ({c} in progress)"
        ));
        let out = self.phone_run(PhoneRun {
            calls,
            slots: limit * 2,
            rate,
            limit,
            g722,
            srtp,
            prompt_span: None,
            dir: match (g722, srtp) {
                (true, _) => "sipp-cpu-g722",
                (false, true) => "sipp-cpu-srtp",
                (false, false) => "sipp-cpu",
            },
        })?;
        let (res, sent, received) = (&out.res, out.sent, out.received);
        let w = &out.stored_too;
        let per_call = w.cpu.as_secs_f64() * 1000.0 / calls as f64;
        let per_packet = w.cpu.as_secs_f64() * 1e6 / (sent + received).max(1) as f64;
        let failed = ((res.failed + (calls as u64).saturating_sub(res.created)) as usize)
            .max(calls.saturating_sub(out.stored));
        let dt = w.dt.as_secs_f64();
        let mut row = Row::new(&what, format!("{c} × 11 s phone-like"));
        row.calls = format!("{calls} ({failed} failed)");
        row.retrans = format!("{} / {}", res.retrans_sent, res.retrans_received);
        row.cpu = format!("{per_call:.2} ms/call");
        row.per_packet = format!("{per_packet:.2}");
        row.notes = format!(
            "{:.0} s greeting + beep, then the message; {} packets in, {} out; {:.0} % CPU over {:.0} s; \
             generator {:.0} % CPU, {:.2} µs per packet sent or received ({})",
            f64::from(PERSONAL_GREETING_MS) / 1000.0,
            sent,
            received,
            pct(w.cpu.as_secs_f64(), dt),
            dt,
            pct(w.own.as_secs_f64(), dt),
            w.own.as_secs_f64() * 1e6 / (sent + received).max(1) as f64,
            out.send_path,
        );
        say(&format!(
            "{what}: {per_call:.2} ms, {per_packet:.2} µs/packet, {failed} failed"
        ));
        if srtp || g722 {
            self.rows.push(row);
            return Ok(());
        }
        self.verdicts.add(
            "≤ 3 ms CPU per 11-second deposit at 400 concurrent",
            format!("{per_call:.2} ms at {c}"),
            c >= 400 && per_call <= 3.0 && failed == 0,
        );
        self.rows.push(row);
        Ok(())
    }

    /// Past what the box carries: phone-like calls (5 s greeting, beep,
    /// message, 11 s) offered at `overload_rate` per second, so that
    /// about `rate × 11` would be in progress, once with the admission by
    /// media lag on (`media_lag_limit_ms` 20) and once off. Shown:
    /// the INVITEs refused and how much later than its nominal length each
    /// admitted call's greeting and beep arrived at the caller.
    fn overload(&mut self) -> Result<(), String> {
        let on = self.overload_step(true);
        let off = self.overload_step(false);
        self.site
            .set_ext(json!({ "media_lag_limit_ms": 20 }))
            .map_err(|e| e.to_string())?;
        on.and(off)
    }

    fn overload_step(&mut self, gate: bool) -> Result<(), String> {
        let calls = self.opts.overload_calls;
        let rate = f64::from(self.opts.overload_rate);
        let beep = self
            .prompt_frames
            .saturating_sub(frames_of(SHORT_GREETING_MS as usize * 8));
        let prompt = frames_of(PERSONAL_GREETING_MS as usize * 8) + beep;
        let what = if gate {
            "overload, admission by media lag"
        } else {
            "overload, lag check off"
        };
        say(&format!(
            "{what}: {calls} calls of 11 s offered at {rate:.0}/s"
        ));
        self.site
            .set_ext(json!({ "media_lag_limit_ms": if gate { 20 } else { 0 } }))
            .map_err(|e| e.to_string())?;
        let out = self.phone_run(PhoneRun {
            calls,
            slots: calls,
            rate,
            limit: (rate * 11.0 * 1.5) as usize + 10,
            g722: false,
            srtp: false,
            prompt_span: Some(prompt),
            dir: if gate {
                "sipp-overload-on"
            } else {
                "sipp-overload-off"
            },
        })?;
        let res = &out.res;
        let w = &out.calls_ended;
        let dt = w.dt.as_secs_f64();
        let s = &out.generated.stretch;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut row = Row::new(what, format!("{calls} × 11 s phone-like at {rate:.0}/s"));
        row.calls = format!(
            "{calls} ({} refused by lag, {} by max_calls)",
            out.refused_by_lag, out.refused_by_count
        );
        row.retrans = format!("{} / {}", res.retrans_sent, res.retrans_received);
        row.cpu = format!("{:.0} %", pct(w.cpu.as_secs_f64(), dt));
        row.notes = format!(
            "{} answered, {} messages; greeting + beep ({prompt} frames) of {} admitted calls \
             late by p50 {:.0} / p99 {:.0} / max {:.0} ms, {} calls over 100 ms; generator {:.0} %, \
             sipp {:.0} % CPU over {:.0} s",
            res.successful,
            out.stored,
            s.count(),
            ms(s.quantile(0.5)),
            ms(s.quantile(0.99)),
            ms(s.max()),
            s.count_over(Duration::from_millis(100)),
            pct(w.own.as_secs_f64(), dt),
            pct(out.sipp_cpu.as_secs_f64(), dt),
            dt
        );
        say(&format!("{what}: {}", row.notes));
        self.rows.push(row);
        Ok(())
    }

    /// Start-up with many mailboxes in the store.
    fn startup(&mut self) -> Result<(), String> {
        let n = self.opts.startup_mailboxes;
        let mut site =
            Site::new(&self.root.join("startup"), json!({})).map_err(|e| e.to_string())?;
        let t = Instant::now();
        for i in 0..n {
            site.write_mailbox(&format!("4{i:05}"), None)
                .map_err(|e| e.to_string())?;
        }
        say(&format!(
            "start-up: {n} mailboxes written in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        let mut readies = Vec::new();
        let mut actives = Vec::new();
        let mut rss = Vec::new();
        let mut scans = Vec::new();
        for _ in 0..2 {
            let spawned = Instant::now();
            let mut vm = site
                .start(&self.opts.wrapper, Duration::from_secs(120))
                .map_err(|e| e.to_string())?;
            let at_ready = vm.rss_kib();
            // The recovery scan of the store runs on after "ready".
            let mut scan = None;
            while spawned.elapsed() < Duration::from_secs(120) {
                if std::fs::read_to_string(&vm.log)
                    .unwrap_or_default()
                    .contains("recovery of interrupted recordings done")
                {
                    scan = Some(spawned.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let after = vm.rss_kib();
            readies.push(vm.ready_after);
            actives.push(vm.active_after);
            rss.push((at_ready, after));
            scans.push(scan);
            vm.stop();
        }
        let mut row = Row::new("start-up", format!("{n} mailboxes"));
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let scan = |s: &Option<Duration>| {
            s.map_or("not seen".to_string(), |d| {
                format!("{:.1} s", d.as_secs_f64())
            })
        };
        row.rss = format!("{:.1} MiB", rss[1].0 as f64 / 1024.0);
        row.notes = format!(
            "ready (OPTIONS answered) after {:.0} ms, again {:.0} ms; active (OPTIONS answered 200, \
             the group's lease taken) after {:.2} / {:.2} s; RSS at ready {:.1} MiB; \
             background recovery scan done after {} / {} (RSS then {:.1} MiB)",
            ms(&readies[0]),
            ms(&readies[1]),
            actives[0].as_secs_f64(),
            actives[1].as_secs_f64(),
            rss[1].0 as f64 / 1024.0,
            scan(&scans[0]),
            scan(&scans[1]),
            rss[1].1 as f64 / 1024.0
        );
        say(&format!("start-up: {}", row.notes));
        let worst = readies.iter().max().copied().unwrap_or_default();
        self.verdicts.add(
            "start-up with 100,000 mailboxes ≤ 1 s",
            format!("{:.0} ms (worst of 2) with {n}", ms(&worst)),
            n >= 100_000 && worst <= Duration::from_secs(1),
        );
        self.rows.push(row);
        Ok(())
    }

    fn report(&self, took: Duration) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n## vmail load ({}, {:.0} min)\n\nMachine: {}\n",
            if self.opts.quick { "--quick" } else { "--full" },
            took.as_secs_f64() / 60.0,
            procfs::machine()
        );
        let _ = writeln!(
            s,
            "| test | load | calls (failed) | SIP retrans sipp / vmail | frames stored | vmail CPU | µs / packet | RSS / call | notes |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.test, r.load, r.calls, r.retrans, r.frames, r.cpu, r.per_packet, r.rss, r.notes
            );
        }
        if !self.verdicts.lines.is_empty() {
            let _ = writeln!(s, "\n| target | measured | |\n|---|---|---|");
            for l in &self.verdicts.lines {
                let _ = writeln!(s, "{l}");
            }
        }
        if !self.log.is_empty() {
            let _ = writeln!(
                s,
                "\n<details><summary>details</summary>\n\n```\n{}```\n</details>",
                self.log
            );
        }
        s
    }
}

/// What [`Bench::phone_run`] places.
struct PhoneRun {
    calls: usize,
    /// Generator ports (callers reuse them in turn).
    slots: usize,
    /// New calls per second.
    rate: f64,
    /// Calls in progress at most (sipp).
    limit: usize,
    g722: bool,
    srtp: bool,
    /// Frames of the greeting and beep whose arrival is timed.
    prompt_span: Option<u32>,
    /// sipp's folder under the run's root.
    dir: &'static str,
}

/// What [`Bench::phone_run`] measured.
struct PhoneOutcome {
    res: sipp::SippResult,
    /// From sipp's start to its end (the last call over).
    calls_ended: Window,
    /// From sipp's start to the last message stored.
    stored_too: Window,
    /// sipp's CPU while it ran.
    sipp_cpu: Duration,
    send_path: &'static str,
    sent: u64,
    received: u64,
    generated: rtp::GenResult,
    stored: usize,
    refused_by_lag: u64,
    refused_by_count: u64,
}

/// CPU over a span of a run.
struct Window {
    dt: Duration,
    /// vmail's.
    cpu: Duration,
    /// The harness's own (the generator).
    own: Duration,
}
