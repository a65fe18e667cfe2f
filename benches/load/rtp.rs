//! The callers' RTP: a load generator that owns one UDP port per caller.
//!
//! sipp does the SIP; the SDP offer it sends for a call names one of these
//! ports. vmail sends its greeting there, so a port learns vmail's RTP
//! address from the first packet (symmetric RTP, as vmail does) and sends
//! the caller's audio back from the same port.
//!
//! One worker thread per core (`--threads`, default: the cores), each with
//! its share of the ports and no state shared with the others:
//! - receiving: an epoll set of its ports (mio, readable interest only, so
//!   thousands of idle ports cost nothing), read with `recvmmsg` (one
//!   system call drains a port); counters are kept per worker and added to
//!   the shared ones once per batch;
//! - sending: a timer heap of its calls; every frame that is due goes out
//!   in one `sendmmsg` over a raw socket (`IPPROTO_RAW`: the worker writes
//!   the IPv4 and UDP headers, with the caller's port as the source, so
//!   vmail sees exactly what the caller's own socket would have sent), or,
//!   without the privilege for a raw socket (root or `CAP_NET_RAW`), with
//!   one `send_to` per frame from the caller's socket;
//! - between rounds the worker sleeps at least 1 ms, so frames go out in
//!   batches (at most ~1 ms late, which vmail's jitter buffer, on media
//!   time, does not see).
//!
//! A port can carry several calls one after the other (the setup-rate test
//! reuses them): a packet from a new source address starts a new call.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmmsg, sendmmsg, sendto, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    MultiHeaders, SockFlag, SockProtocol, SockType, SockaddrIn,
};
use vmail::media::{encode, tone, AudioEncoder, Codec, OpusParams};

/// Samples in a 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// The frame period.
pub const FRAME: Duration = Duration::from_millis(20);

/// When a caller talks.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// After vmail's prompts: once `prompt_frames` packets (greeting and
    /// beep) have arrived, wait for the end of the last one (20 ms) plus
    /// `guard`, then send `frames` frames. If the count is never reached,
    /// a silence of `gap` after the last packet counts as the end (noted
    /// as a fallback start).
    AfterPrompt {
        prompt_frames: u32,
        guard: Duration,
        gap: Duration,
    },
    /// From vmail's first packet on, like a phone (RTP both ways at once).
    FromAnswer,
    /// Send nothing; time the arrival of the first `timed_frames` packets.
    Listen { timed_frames: u32 },
}

/// What the generator does per call.
#[derive(Debug, Clone, Copy)]
pub struct GenConfig {
    /// When to talk.
    pub mode: Mode,
    /// Frames sent per call.
    pub frames: u32,
    /// Send G.722 (payload type 9) instead of PCMA (8).
    pub g722: bool,
    /// SRTP (AES_CM_128_HMAC_SHA1_80): every packet sent is protected
    /// with this key and salt (what the SDP offer carried).
    pub srtp: Option<[u8; 30]>,
    /// Time how long each call's first `n` packets from vmail took to
    /// arrive (the greeting and the beep), against `(n - 1) × 20 ms`.
    pub prompt_span: Option<u32>,
}

/// What happened on one call, as the generator saw it.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The port slot.
    pub slot: usize,
    /// The call's number on this slot (1, 2, ...).
    pub call: u32,
    /// Packets received from vmail when sending started.
    pub prompt_packets: u32,
    /// Frames sent (successful `send_to`).
    pub sent: u32,
    /// `send_to` failures.
    pub send_errors: u32,
    /// Started by the silence fallback rather than the packet count.
    pub fallback: bool,
    /// Whether all frames were sent.
    pub complete: bool,
}

/// A histogram of durations with 10 µs buckets up to 1 s.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max: Duration,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 100_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS + 1],
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl Histogram {
    /// Adds one value.
    pub fn add(&mut self, d: Duration) {
        let i = (d.as_micros() as u64 / BUCKET_US).min(BUCKETS as u64) as usize;
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(d);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// Values above `d` (to the bucket: values in the bucket of `d` do
    /// not count).
    pub fn count_over(&self, d: Duration) -> u64 {
        let i = (d.as_micros() as u64 / BUCKET_US).min(BUCKETS as u64) as usize;
        self.buckets.get(i + 1..).map_or(0, |b| b.iter().sum())
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The `q` quantile (0..=1), to the bucket's upper edge.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                if i == BUCKETS {
                    return self.max;
                }
                return Duration::from_micros((i as u64 + 1) * BUCKET_US).min(self.max);
            }
        }
        self.max
    }
}

/// Pacing as heard by the callers.
#[derive(Debug, Clone, Default)]
pub struct Pacing {
    /// Intervals between consecutive packets of a call.
    pub intervals: Histogram,
    /// |interval - 20 ms|.
    pub deviation: Histogram,
}

#[derive(Debug, Default)]
struct RxInfo {
    /// Calls seen on this port (a new source address is a new call).
    calls: u32,
    src: Option<SocketAddr>,
    /// Packets of the current call.
    count: u32,
    /// Arrival of its first packet.
    first: Option<Instant>,
    last: Option<Instant>,
    /// Arrival of the previous timed packet (Listen mode).
    last_timed: Option<Instant>,
}

/// Counters shared by the generator's threads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames sent to vmail.
    pub sent: AtomicU64,
    /// Packets received from vmail.
    pub received: AtomicU64,
    /// Calls started on any port (new source addresses seen).
    pub calls: AtomicU64,
    /// How late the senders ran, worst case, in µs.
    pub max_lag_us: AtomicU64,
}

/// A running generator.
pub struct Generator {
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    /// Live counters.
    pub counters: Arc<Counters>,
    workers: Vec<JoinHandle<WorkerResult>>,
    window: Arc<OnceLock<(Instant, Instant)>>,
    slots: usize,
    /// How frames are sent: "sendmmsg (raw socket)" or "send_to".
    pub send_path: &'static str,
}

/// The generator's results.
#[derive(Debug, Default)]
pub struct GenResult {
    /// One record per call that started sending.
    pub calls: Vec<CallRecord>,
    /// Inter-arrival times of vmail's packets (Listen mode).
    pub pacing: Pacing,
    /// Calls vmail started per slot (new source addresses seen).
    pub calls_seen: Vec<u32>,
    /// With `prompt_span`: how much longer than its nominal length each
    /// call's prompt took to arrive.
    pub stretch: Histogram,
}

#[derive(Default)]
struct WorkerResult {
    records: Vec<CallRecord>,
    pacing: Pacing,
    stretch: Histogram,
    /// (slot, calls seen on it)
    seen: Vec<(usize, u32)>,
}

/// One second of a 1020 Hz tone in PCMA: 50 frames, then it repeats
/// (1020 whole periods per second). It never holds a run of zero samples,
/// so silence in a recording is where vmail filled in a lost frame.
fn tone_payload() -> Vec<u8> {
    let pcm = tone(1020.0, 1000, 10_000, 8000);
    let mut out = vec![0u8; pcm.len()];
    encode(Codec::Pcma, &pcm, &mut out);
    out
}

/// The same second in G.722 (160 bytes per 20 ms frame, as PCMA).
fn tone_payload_g722() -> Vec<u8> {
    let pcm = tone(1020.0, 1000, 10_000, 16000);
    let mut enc = AudioEncoder::new(Codec::G722, &OpusParams::default());
    let mut out = Vec::with_capacity(8000);
    for frame in pcm.chunks(2 * FRAME_SAMPLES) {
        enc.encode(frame, &mut out);
    }
    out
}

/// A send-only raw IPv4 socket (`IPPROTO_RAW`): each datagram carries its
/// own IPv4 and UDP headers, so one `sendmmsg` sends the frames of many
/// callers, each from its own port.
struct RawSender {
    fd: OwnedFd,
}

impl RawSender {
    /// `None` without the privilege (root or `CAP_NET_RAW`).
    fn open() -> Option<RawSender> {
        nix::sys::socket::socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::empty(),
            SockProtocol::Raw,
        )
        .ok()
        .map(|fd| RawSender { fd })
    }
}

/// IPv4 (20) + UDP (8) headers in front of the RTP packet.
const RAW_HEADERS: usize = 28;
/// Longest RTP packet the generator sends (12 + 160, SRTP tag 10).
const MAX_RTP: usize = 12 + FRAME_SAMPLES + 16;
/// Frames per `sendmmsg`.
const SEND_BATCH: usize = 256;
/// Datagrams per `recvmmsg`.
const RECV_BATCH: usize = 16;

/// Writes the IPv4 and UDP headers for `len` bytes of payload from
/// `127.0.0.1:sport` to `dest` into `out[..28]`. The kernel fills in the
/// IPv4 checksum and id; the UDP checksum is 0 (none, allowed on IPv4).
fn raw_headers(out: &mut [u8], sport: u16, dest: SocketAddrV4, len: usize) {
    let total = (RAW_HEADERS + len) as u16;
    out[0] = 0x45;
    out[1] = 0;
    out[2..4].copy_from_slice(&total.to_be_bytes());
    out[4..8].fill(0);
    out[8] = 64;
    out[9] = libc::IPPROTO_UDP as u8;
    out[10..12].fill(0);
    out[12..16].copy_from_slice(&Ipv4Addr::LOCALHOST.octets());
    out[16..20].copy_from_slice(&dest.ip().octets());
    out[20..22].copy_from_slice(&sport.to_be_bytes());
    out[22..24].copy_from_slice(&dest.port().to_be_bytes());
    out[24..26].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    out[26..28].fill(0);
}

impl Generator {
    /// Binds `slots` UDP ports on 127.0.0.1 and starts `threads` workers
    /// (0: one per core), each sending and receiving for its share.
    pub fn start(slots: usize, threads: usize, cfg: GenConfig) -> std::io::Result<Generator> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        let mut shares: Vec<Vec<(usize, UdpSocket)>> = (0..threads).map(|_| Vec::new()).collect();
        let mut ports = Vec::with_capacity(slots);
        for slot in 0..slots {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            s.set_nonblocking(true)?;
            ports.push(s.local_addr()?.port());
            shares[slot % threads].push((slot, s));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let window: Arc<OnceLock<(Instant, Instant)>> = Arc::new(OnceLock::new());
        let payload: Arc<[u8]> = if cfg.g722 {
            tone_payload_g722().into()
        } else {
            tone_payload().into()
        };
        // VMAIL_LOAD_SEND_TO=1: one send_to per frame even where a raw
        // socket is allowed (to compare the two paths).
        let raw_ok =
            std::env::var_os("VMAIL_LOAD_SEND_TO").is_none() && RawSender::open().is_some();
        let mut workers = Vec::new();
        for (t, share) in shares.into_iter().enumerate() {
            let stop = stop.clone();
            let counters = counters.clone();
            let payload = payload.clone();
            let window = window.clone();
            let raw = if raw_ok { RawSender::open() } else { None };
            workers.push(
                std::thread::Builder::new()
                    .name(format!("rtp-gen{t}"))
                    .spawn(move || {
                        Worker::new(share, cfg, counters, payload, window, raw).run(&stop)
                    })?,
            );
        }
        Ok(Generator {
            ports,
            stop,
            counters,
            workers,
            window,
            slots,
            send_path: if raw_ok {
                "sendmmsg (raw socket)"
            } else {
                "send_to"
            },
        })
    }

    /// Listen mode: only the intervals that end within `from..until` count.
    pub fn time_window(&self, from: Instant, until: Instant) {
        let _ = self.window.set((from, until));
    }

    /// The UDP port of each slot.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Calls that have started on any slot so far.
    pub fn calls_seen(&self) -> u32 {
        self.counters.calls.load(Ordering::Relaxed) as u32
    }

    /// Stops everything and collects the results.
    pub fn finish(mut self) -> GenResult {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = GenResult {
            calls: Vec::new(),
            pacing: Pacing::default(),
            calls_seen: vec![0; self.slots],
            stretch: Histogram::default(),
        };
        for h in self.workers.drain(..) {
            if let Ok(mut r) = h.join() {
                out.calls.append(&mut r.records);
                out.pacing.intervals.merge(&r.pacing.intervals);
                out.pacing.deviation.merge(&r.pacing.deviation);
                out.stretch.merge(&r.stretch);
                for (slot, n) in r.seen {
                    if let Some(c) = out.calls_seen.get_mut(slot) {
                        *c = n;
                    }
                }
            }
        }
        out.calls.sort_by_key(|c| (c.slot, c.call));
        out
    }
}

/// Wall-clock time since the epoch (the clock of SO_TIMESTAMPNS).
fn wall_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// A call being sent to.
struct Active {
    dest: SocketAddr,
    left: u32,
    seq: u16,
    ts: u32,
    ssrc: u32,
    frame: usize,
    record: usize,
    srtp: Option<Box<webrtc_srtp::context::Context>>,
}

/// One port of a worker.
struct Port {
    slot: usize,
    sock: mio::net::UdpSocket,
    port: u16,
    rx: RxInfo,
    /// Calls of this port already taken care of.
    handled: u32,
    active: Option<Active>,
}

/// Buffers of one `recvmmsg`.
struct RecvBufs {
    data: Vec<[u8; 2048]>,
    headers: MultiHeaders<SockaddrIn>,
}

/// Buffers of one `sendmmsg`.
struct SendBufs {
    data: Vec<[u8; RAW_HEADERS + MAX_RTP]>,
    lens: Vec<usize>,
    dests: Vec<Option<SockaddrIn>>,
    /// The call record of each datagram.
    owners: Vec<usize>,
    headers: MultiHeaders<SockaddrIn>,
}

struct Worker {
    ports: Vec<Port>,
    cfg: GenConfig,
    counters: Arc<Counters>,
    payload: Arc<[u8]>,
    window: Arc<OnceLock<(Instant, Instant)>>,
    raw: Option<RawSender>,
    poll: Option<mio::Poll>,
    records: Vec<CallRecord>,
    pacing: Pacing,
    stretch: Histogram,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Ports with a call not yet taken care of (AfterPrompt).
    waiting: Vec<usize>,
    timed: u32,
    ssrc_seed: u32,
    max_lag: Duration,
    /// What one `recvmmsg` brought (kept to reuse its allocation).
    got: Vec<(SocketAddr, Option<Duration>)>,
}

impl Worker {
    fn new(
        share: Vec<(usize, UdpSocket)>,
        cfg: GenConfig,
        counters: Arc<Counters>,
        payload: Arc<[u8]>,
        window: Arc<OnceLock<(Instant, Instant)>>,
        raw: Option<RawSender>,
    ) -> Worker {
        use mio::{Interest, Poll, Token};
        let timed = match cfg.mode {
            Mode::Listen { timed_frames } => timed_frames,
            _ => 0,
        };
        let poll = match Poll::new() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("rtp generator: cannot poll: {e}");
                None
            }
        };
        let mut ports = Vec::with_capacity(share.len());
        for (i, (slot, s)) in share.into_iter().enumerate() {
            // Listen mode: the kernel's arrival time of each packet
            // (SO_TIMESTAMPNS): on loopback that is when vmail's send_to
            // delivered it, so the intervals do not include this thread's
            // own scheduling delays.
            if timed > 0 {
                if let Err(e) = nix::sys::socket::setsockopt(
                    &s,
                    nix::sys::socket::sockopt::ReceiveTimestampns,
                    &true,
                ) {
                    eprintln!("rtp generator: no kernel timestamps: {e}");
                }
            }
            let port = s.local_addr().map_or(0, |a| a.port());
            let mut sock = mio::net::UdpSocket::from_std(s);
            if let Some(p) = &poll {
                if let Err(e) = p
                    .registry()
                    .register(&mut sock, Token(i), Interest::READABLE)
                {
                    eprintln!("rtp generator: cannot register a port: {e}");
                }
            }
            ports.push(Port {
                slot,
                sock,
                port,
                rx: RxInfo::default(),
                handled: 0,
                active: None,
            });
        }
        let first = ports.first().map_or(0, |p| p.slot as u32);
        Worker {
            ports,
            cfg,
            counters,
            payload,
            window,
            raw,
            poll,
            records: Vec::new(),
            pacing: Pacing::default(),
            stretch: Histogram::default(),
            heap: BinaryHeap::new(),
            waiting: Vec::new(),
            timed,
            ssrc_seed: 0x5eed_0001 ^ (first << 16),
            max_lag: Duration::ZERO,
            got: Vec::with_capacity(RECV_BATCH),
        }
    }

    fn run(mut self, stop: &AtomicBool) -> WorkerResult {
        let mut events = mio::Events::with_capacity(4096);
        let mut bufs = RecvBufs {
            data: vec![[0u8; 2048]; RECV_BATCH],
            headers: MultiHeaders::preallocate(
                RECV_BATCH,
                (self.timed > 0).then(|| nix::cmsg_space!(nix::libc::timespec)),
            ),
        };
        let mut out = SendBufs {
            data: vec![[0u8; RAW_HEADERS + MAX_RTP]; SEND_BATCH],
            lens: vec![0; SEND_BATCH],
            dests: vec![None; SEND_BATCH],
            owners: vec![0; SEND_BATCH],
            headers: MultiHeaders::preallocate(SEND_BATCH, None),
        };
        let scan_every = Duration::from_millis(2);
        let mut next_scan = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            // Everything that arrived since the last round.
            if let Some(poll) = self.poll.as_mut() {
                if poll.poll(&mut events, Some(Duration::ZERO)).is_ok() {
                    for ev in events.iter() {
                        self.receive(ev.token().0, &mut bufs);
                    }
                }
            }
            let now = Instant::now();
            if now >= next_scan {
                next_scan = now + scan_every;
                self.start_waiting(now);
            }
            self.send_due(now, &mut out);
            let lag_us = self.max_lag.as_micros() as u64;
            self.counters
                .max_lag_us
                .fetch_max(lag_us, Ordering::Relaxed);
            let wake = self
                .heap
                .peek()
                .map(|Reverse((t, _))| *t)
                .unwrap_or(next_scan + scan_every)
                .min(next_scan);
            // Sleep at least 1 ms: waking for every due packet cost a
            // thread wake-up per packet; in batches the send dominates.
            let now = Instant::now();
            let nap = if wake > now {
                (wake - now).clamp(Duration::from_millis(1), Duration::from_millis(5))
            } else {
                Duration::from_millis(1)
            };
            std::thread::sleep(nap);
        }
        WorkerResult {
            seen: self.ports.iter().map(|p| (p.slot, p.rx.calls)).collect(),
            records: self.records,
            pacing: self.pacing,
            stretch: self.stretch,
        }
    }

    /// Drains port `i` with `recvmmsg` (edge-triggered: until a batch
    /// comes back short; bounded, so an error is read past).
    fn receive(&mut self, i: usize, bufs: &mut RecvBufs) {
        let Some(fd) = self.ports.get(i).map(|p| p.sock.as_raw_fd()) else {
            return;
        };
        let mut got = std::mem::take(&mut self.got);
        for _ in 0..64 {
            got.clear();
            match recv_batch(fd, bufs, &mut got) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            }
            let n = got.len();
            if n == 0 {
                break;
            }
            self.counters
                .received
                .fetch_add(n as u64, Ordering::Relaxed);
            let now = Instant::now();
            for &(from, stamp) in &got {
                self.packet(i, from, now, stamp);
            }
            if n < RECV_BATCH {
                break;
            }
        }
        self.got = got;
    }

    /// One packet from vmail on port `i`.
    fn packet(&mut self, i: usize, from: SocketAddr, now: Instant, stamp: Option<Duration>) {
        let Some(p) = self.ports.get_mut(i) else {
            return;
        };
        let new_call = p.rx.src != Some(from);
        if new_call {
            p.rx.calls += 1;
            p.rx.src = Some(from);
            p.rx.count = 0;
            p.rx.first = Some(now);
            p.rx.last_timed = None;
            self.counters.calls.fetch_add(1, Ordering::Relaxed);
        }
        p.rx.count += 1;
        p.rx.last = Some(now);
        if let (Some(n), Some(first)) = (self.cfg.prompt_span, p.rx.first) {
            if p.rx.count == n {
                let nominal = FRAME * n.saturating_sub(1);
                self.stretch
                    .add(now.saturating_duration_since(first).saturating_sub(nominal));
            }
        }
        if self.timed > 0 && p.rx.count <= self.timed {
            // Kernel time when there is one, else the time read.
            let at = stamp.map_or(now, |k| {
                now.checked_sub(wall_now().saturating_sub(k)).unwrap_or(now)
            });
            let in_window = self.window.get().is_none_or(|(a, b)| at >= *a && at <= *b);
            if let Some(prev) = p.rx.last_timed.filter(|_| in_window) {
                let d = at.saturating_duration_since(prev);
                self.pacing.intervals.add(d);
                self.pacing.deviation.add(d.abs_diff(FRAME));
            }
            p.rx.last_timed = Some(at);
        }
        if new_call {
            match self.cfg.mode {
                Mode::FromAnswer => {
                    if p.active.is_none() {
                        self.begin(i, now, false);
                    } else {
                        self.waiting.push(i);
                    }
                }
                Mode::AfterPrompt { .. } => self.waiting.push(i),
                Mode::Listen { .. } => {}
            }
        }
    }

    /// Starts the calls that waited for the end of the prompt (or for the
    /// port's previous call to end).
    fn start_waiting(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.waiting.len() {
            let i = self.waiting[k];
            let Some(p) = self.ports.get(i) else {
                self.waiting.swap_remove(k);
                continue;
            };
            if p.rx.calls <= p.handled {
                self.waiting.swap_remove(k);
                continue;
            }
            if p.active.is_some() {
                k += 1;
                continue;
            }
            let Some(last) = p.rx.last else {
                k += 1;
                continue;
            };
            let (ready, fallback) = match self.cfg.mode {
                Mode::FromAnswer => (true, false),
                Mode::AfterPrompt {
                    prompt_frames,
                    guard,
                    gap,
                } => {
                    if p.rx.count >= prompt_frames && now >= last + FRAME + guard {
                        (true, false)
                    } else if now >= last + gap {
                        (true, true)
                    } else {
                        (false, false)
                    }
                }
                Mode::Listen { .. } => (false, false),
            };
            if ready {
                self.waiting.swap_remove(k);
                self.begin(i, now, fallback);
            } else {
                k += 1;
            }
        }
    }

    /// The current call of port `i` starts sending now.
    fn begin(&mut self, i: usize, now: Instant, fallback: bool) {
        let frames = self.cfg.frames;
        let frames_in_payload = (self.payload.len() / FRAME_SAMPLES).max(1);
        let Some(p) = self.ports.get_mut(i) else {
            return;
        };
        let Some(dest) = p.rx.src else {
            return;
        };
        p.handled = p.rx.calls;
        self.ssrc_seed = self
            .ssrc_seed
            .wrapping_mul(1_103_515_245)
            .wrapping_add(12_345);
        let seed = self.ssrc_seed;
        self.records.push(CallRecord {
            slot: p.slot,
            call: p.rx.calls,
            prompt_packets: p.rx.count,
            sent: 0,
            send_errors: 0,
            fallback,
            complete: frames == 0,
        });
        if frames == 0 {
            return;
        }
        p.active = Some(Active {
            dest,
            left: frames,
            seq: (seed >> 8) as u16,
            ts: seed.rotate_left(7),
            ssrc: seed,
            frame: (seed as usize) % frames_in_payload,
            record: self.records.len() - 1,
            srtp: self.cfg.srtp.and_then(|k| {
                webrtc_srtp::context::Context::new(
                    &k[..16],
                    &k[16..],
                    webrtc_srtp::protection_profile::ProtectionProfile::Aes128CmHmacSha1_80,
                    None,
                    None,
                )
                .ok()
                .map(Box::new)
            }),
        });
        self.heap.push(Reverse((now, i)));
    }

    /// Sends every frame that is due, in batches.
    fn send_due(&mut self, now: Instant, out: &mut SendBufs) {
        let frames_in_payload = (self.payload.len() / FRAME_SAMPLES).max(1);
        let pt = if self.cfg.g722 { 9 } else { 8 };
        let mut n = 0;
        let mut packet = [0u8; 12 + FRAME_SAMPLES];
        while let Some(&Reverse((due, i))) = self.heap.peek() {
            if due > now {
                break;
            }
            self.heap.pop();
            self.max_lag = self.max_lag.max(now.duration_since(due));
            let Some(p) = self.ports.get_mut(i) else {
                continue;
            };
            let sport = p.port;
            let Some(a) = p.active.as_mut() else {
                continue;
            };
            packet[0] = 0x80;
            packet[1] = pt;
            packet[2..4].copy_from_slice(&a.seq.to_be_bytes());
            packet[4..8].copy_from_slice(&a.ts.to_be_bytes());
            packet[8..12].copy_from_slice(&a.ssrc.to_be_bytes());
            let off = a.frame * FRAME_SAMPLES;
            packet[12..].copy_from_slice(&self.payload[off..off + FRAME_SAMPLES]);
            let protected = a.srtp.as_mut().and_then(|c| c.encrypt_rtp(&packet).ok());
            let rtp: &[u8] = protected.as_deref().unwrap_or(&packet);
            let rec = &mut self.records[a.record];
            match (&self.raw, a.dest) {
                (Some(_), SocketAddr::V4(d)) if rtp.len() <= MAX_RTP => {
                    let buf = &mut out.data[n];
                    raw_headers(buf, sport, d, rtp.len());
                    buf[RAW_HEADERS..RAW_HEADERS + rtp.len()].copy_from_slice(rtp);
                    out.lens[n] = RAW_HEADERS + rtp.len();
                    out.dests[n] = Some(SockaddrIn::from(d));
                    out.owners[n] = a.record;
                    n += 1;
                }
                _ => match p.sock.send_to(rtp, a.dest) {
                    Ok(_) => {
                        rec.sent += 1;
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => rec.send_errors += 1,
                },
            }
            a.seq = a.seq.wrapping_add(1);
            a.ts = a.ts.wrapping_add(FRAME_SAMPLES as u32);
            a.frame = (a.frame + 1) % frames_in_payload;
            a.left -= 1;
            if a.left == 0 {
                rec.complete = true;
                p.active = None;
                if p.rx.calls > p.handled {
                    // Another call came in meanwhile.
                    self.waiting.push(i);
                }
            } else {
                self.heap.push(Reverse((due + FRAME, i)));
            }
            if n == SEND_BATCH {
                self.flush(n, out);
                n = 0;
            }
        }
        if n > 0 {
            self.flush(n, out);
        }
    }

    /// One `sendmmsg` of the `n` raw datagrams prepared. nix does not
    /// tell how many of them went out (the kernel stops at the first that
    /// fails and reports that on the next call): on success all count as
    /// sent. A failed call is retried one datagram at a time, each counted.
    fn flush(&mut self, n: usize, out: &mut SendBufs) {
        let Some(raw) = &self.raw else {
            return;
        };
        let fd = raw.fd.as_raw_fd();
        let slices: Vec<[IoSlice<'_>; 1]> = out.data[..n]
            .iter()
            .zip(&out.lens)
            .map(|(b, &len)| [IoSlice::new(&b[..len])])
            .collect();
        let sent = sendmmsg(
            fd,
            &mut out.headers,
            &slices,
            &out.dests[..n],
            [] as [ControlMessage<'_>; 0],
            MsgFlags::empty(),
        )
        .is_ok();
        for (k, &o) in out.owners[..n].iter().enumerate() {
            let ok = sent
                || out.dests[k]
                    .as_ref()
                    .is_some_and(|d| sendto(fd, &slices[k][0], d, MsgFlags::empty()).is_ok());
            if let Some(rec) = self.records.get_mut(o) {
                if ok {
                    rec.sent += 1;
                } else {
                    rec.send_errors += 1;
                }
            }
            if ok {
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One `recvmmsg` of up to [`RECV_BATCH`] datagrams (without waiting):
/// the source of each, and its SO_TIMESTAMPNS time when the headers have
/// room for it.
fn recv_batch(
    fd: RawFd,
    bufs: &mut RecvBufs,
    got: &mut Vec<(SocketAddr, Option<Duration>)>,
) -> std::io::Result<()> {
    let mut slices: Vec<[IoSliceMut<'_>; 1]> = bufs
        .data
        .iter_mut()
        .map(|b| [IoSliceMut::new(&mut b[..])])
        .collect();
    let results = recvmmsg(
        fd,
        &mut bufs.headers,
        &mut slices,
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(std::io::Error::from)?;
    for msg in results {
        let Some(from) = msg.address else { continue };
        let mut stamp = None;
        if let Ok(list) = msg.cmsgs() {
            for c in list {
                if let ControlMessageOwned::ScmTimestampns(t) = c {
                    stamp = Some(Duration::new(
                        t.tv_sec().max(0) as u64,
                        t.tv_nsec().max(0) as u32,
                    ));
                }
            }
        }
        got.push((SocketAddr::V4(SocketAddrV4::from(from)), stamp));
    }
    Ok(())
}
