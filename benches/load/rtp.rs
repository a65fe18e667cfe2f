//! The callers' RTP: a load generator that owns one UDP port per caller.
//!
//! sipp does the SIP; the SDP offer it sends for a call names one of these
//! ports. vmail sends its greeting there, so a port learns vmail's RTP
//! address from the first packet (symmetric RTP, as vmail does) and sends
//! the caller's audio back from the same socket.
//!
//! - receiving: one thread polling every port (mio, readable interest
//!   only, so thousands of idle ports cost nothing); it timestamps vmail's
//!   packets and notes where they come from;
//! - sending: a few threads, each with a timer heap of the ports it drives,
//!   plain `send_to` every 20 ms per call (a 1020 Hz tone, PCMA).
//!
//! A port can carry several calls one after the other (the setup-rate test
//! reuses them): a packet from a new source address starts a new call.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    last: Option<Instant>,
}

struct Slot {
    socket: UdpSocket,
    rx: Mutex<RxInfo>,
}

impl Slot {
    fn rx(&self) -> MutexGuard<'_, RxInfo> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters shared by the generator's threads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames sent to vmail.
    pub sent: AtomicU64,
    /// Packets received from vmail.
    pub received: AtomicU64,
    /// How late the senders ran, worst case, in µs.
    pub max_lag_us: AtomicU64,
}

/// A running generator.
pub struct Generator {
    slots: Arc<Vec<Arc<Slot>>>,
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    /// Live counters.
    pub counters: Arc<Counters>,
    senders: Vec<JoinHandle<Vec<CallRecord>>>,
    receiver: Option<JoinHandle<Pacing>>,
    rx_stop: Arc<AtomicBool>,
    window: Arc<OnceLock<(Instant, Instant)>>,
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

impl Generator {
    /// Binds `slots` UDP ports on 127.0.0.1 and starts `threads` sender
    /// threads and the receiver.
    pub fn start(slots: usize, threads: usize, cfg: GenConfig) -> std::io::Result<Generator> {
        let mut list = Vec::with_capacity(slots);
        let mut rx_sockets = Vec::with_capacity(slots);
        let mut ports = Vec::with_capacity(slots);
        for _ in 0..slots {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            s.set_nonblocking(true)?;
            ports.push(s.local_addr()?.port());
            rx_sockets.push(s.try_clone()?);
            list.push(Arc::new(Slot {
                socket: s,
                rx: Mutex::new(RxInfo::default()),
            }));
        }
        let slots = Arc::new(list);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let rx_stop = Arc::new(AtomicBool::new(false));

        let timed = match cfg.mode {
            Mode::Listen { timed_frames } => timed_frames,
            _ => 0,
        };
        let window: Arc<OnceLock<(Instant, Instant)>> = Arc::new(OnceLock::new());
        let receiver = {
            let slots = slots.clone();
            let counters = counters.clone();
            let window = window.clone();
            let rx_stop = rx_stop.clone();
            std::thread::Builder::new()
                .name("rtp-rx".into())
                .spawn(move || receive(slots, rx_sockets, rx_stop, counters, timed, window))?
        };
        let threads = threads.max(1);
        let payload: Arc<[u8]> = if cfg.g722 {
            tone_payload_g722().into()
        } else {
            tone_payload().into()
        };
        let mut senders = Vec::new();
        for t in 0..threads {
            let mine: Vec<usize> = (t..slots.len()).step_by(threads).collect();
            let slots = slots.clone();
            let stop = stop.clone();
            let counters = counters.clone();
            let payload = payload.clone();
            senders.push(
                std::thread::Builder::new()
                    .name(format!("rtp-tx{t}"))
                    .spawn(move || send(slots, mine, cfg, stop, counters, payload))?,
            );
        }
        Ok(Generator {
            slots,
            ports,
            stop,
            counters,
            senders,
            receiver: Some(receiver),
            rx_stop,
            window,
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
        self.slots.iter().map(|s| s.rx().calls).sum()
    }

    /// Stops everything and collects the results.
    pub fn finish(mut self) -> GenResult {
        self.stop.store(true, Ordering::SeqCst);
        self.rx_stop.store(true, Ordering::SeqCst);
        let mut calls = Vec::new();
        for h in self.senders.drain(..) {
            if let Ok(mut c) = h.join() {
                calls.append(&mut c);
            }
        }
        calls.sort_by_key(|c| (c.slot, c.call));
        let pacing = self
            .receiver
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let calls_seen = self.slots.iter().map(|s| s.rx().calls).collect();
        GenResult {
            calls,
            pacing,
            calls_seen,
        }
    }
}

/// The receiving thread: a mio poll over every port, readable interest
/// only. (tokio's UdpSocket registers for writability too, and then every
/// send_to of the senders woke this thread: about a fifth of the
/// generator's CPU.)
fn receive(
    slots: Arc<Vec<Arc<Slot>>>,
    sockets: Vec<UdpSocket>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    timed: u32,
    window: Arc<OnceLock<(Instant, Instant)>>,
) -> Pacing {
    use mio::{Events, Interest, Poll, Token};
    let mut pacing = Pacing::default();
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rtp receiver: cannot poll: {e}");
            return pacing;
        }
    };
    let mut socks: Vec<mio::net::UdpSocket> = Vec::with_capacity(sockets.len());
    for (i, s) in sockets.into_iter().enumerate() {
        // The kernel's arrival time of each packet (SO_TIMESTAMPNS): on
        // loopback that is when vmail's send_to delivered it, so the
        // intervals do not include this thread's own scheduling delays.
        if let Err(e) =
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::ReceiveTimestampns, &true)
        {
            eprintln!("rtp receiver: no kernel timestamps: {e}");
        }
        let mut sock = mio::net::UdpSocket::from_std(s);
        if let Err(e) = poll
            .registry()
            .register(&mut sock, Token(i), Interest::READABLE)
        {
            eprintln!("rtp receiver: cannot register a port: {e}");
        }
        socks.push(sock);
    }
    // Arrival of the previous timed packet, per port.
    let mut last: Vec<Option<Instant>> = vec![None; socks.len()];
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 2048];
    let mut cmsg = nix::cmsg_space!(nix::libc::timespec);
    while !stop.load(Ordering::Relaxed) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(50)))
            .is_err()
        {
            continue;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let (Some(sock), Some(slot)) = (socks.get(i), slots.get(i)) else {
                continue;
            };
            // Edge-triggered: read until empty (bounded: an error such as
            // ICMP unreachable is reported once and read past).
            for _ in 0..1024 {
                let (from, stamp) = match recv_stamped(sock, &mut buf, &mut cmsg) {
                    Ok(r) => r,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => continue,
                };
                let now = Instant::now();
                // Kernel time when there is one, else the time read.
                let at = stamp.map_or(now, |k| {
                    now.checked_sub(wall_now().saturating_sub(k)).unwrap_or(now)
                });
                counters.received.fetch_add(1, Ordering::Relaxed);
                let count = {
                    let mut rx = slot.rx();
                    if rx.src != Some(from) {
                        rx.calls += 1;
                        rx.src = Some(from);
                        rx.count = 0;
                        last[i] = None;
                    }
                    rx.count += 1;
                    rx.last = Some(now);
                    rx.count
                };
                let in_window = window.get().is_none_or(|(a, b)| at >= *a && at <= *b);
                if count <= timed {
                    if let Some(prev) = last[i].filter(|_| in_window) {
                        let d = at.saturating_duration_since(prev);
                        pacing.intervals.add(d);
                        pacing.deviation.add(d.abs_diff(FRAME));
                    }
                    last[i] = Some(at);
                }
            }
        }
    }
    pacing
}

/// Wall-clock time since the epoch (the clock of SO_TIMESTAMPNS).
fn wall_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// `recv_from` that also returns the kernel's arrival time (since the
/// epoch) when the socket has SO_TIMESTAMPNS on.
fn recv_stamped(
    sock: &mio::net::UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> std::io::Result<(SocketAddr, Option<Duration>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(sock.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())
        .map_err(std::io::Error::from)?;
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
    let from = msg
        .address
        .map(SocketAddr::from)
        .ok_or_else(|| std::io::Error::other("datagram without a source address"))?;
    Ok((from, stamp))
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

struct Local {
    slot: usize,
    /// Calls of this slot already taken care of.
    handled: u32,
    active: Option<Active>,
}

fn send(
    slots: Arc<Vec<Arc<Slot>>>,
    mine: Vec<usize>,
    cfg: GenConfig,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    payload: Arc<[u8]>,
) -> Vec<CallRecord> {
    let mut locals: Vec<Local> = mine
        .into_iter()
        .map(|slot| Local {
            slot,
            handled: 0,
            active: None,
        })
        .collect();
    let mut records: Vec<CallRecord> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let mut packet = vec![0u8; 12 + FRAME_SAMPLES];
    let frames_in_payload = payload.len() / FRAME_SAMPLES;
    let scan_every = Duration::from_millis(2);
    let mut next_scan = Instant::now();
    let mut max_lag = Duration::ZERO;
    let mut ssrc_seed: u32 = 0x5eed_0001 ^ (locals.first().map_or(0, |l| l.slot as u32) << 16);

    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_scan {
            next_scan = now + scan_every;
            let listen = matches!(cfg.mode, Mode::Listen { .. });
            for (i, l) in locals.iter_mut().enumerate() {
                if listen {
                    break;
                }
                if l.active.is_some() {
                    continue;
                }
                let slot = &slots[l.slot];
                let (calls, src, count, last) = {
                    let rx = slot.rx();
                    (rx.calls, rx.src, rx.count, rx.last)
                };
                if calls <= l.handled {
                    continue;
                }
                let (Some(dest), Some(last)) = (src, last) else {
                    continue;
                };
                let (ready, fallback) = match cfg.mode {
                    Mode::FromAnswer => (true, false),
                    Mode::AfterPrompt {
                        prompt_frames,
                        guard,
                        gap,
                    } => {
                        if count >= prompt_frames && now >= last + FRAME + guard {
                            (true, false)
                        } else if now >= last + gap {
                            (true, true)
                        } else {
                            (false, false)
                        }
                    }
                    Mode::Listen { .. } => (false, false),
                };
                if !ready {
                    continue;
                }
                l.handled = calls;
                ssrc_seed = ssrc_seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                records.push(CallRecord {
                    slot: l.slot,
                    call: calls,
                    prompt_packets: count,
                    sent: 0,
                    send_errors: 0,
                    fallback,
                    complete: cfg.frames == 0,
                });
                if cfg.frames == 0 {
                    continue;
                }
                l.active = Some(Active {
                    dest,
                    left: cfg.frames,
                    seq: (ssrc_seed >> 8) as u16,
                    ts: ssrc_seed.rotate_left(7),
                    ssrc: ssrc_seed,
                    frame: (ssrc_seed as usize) % frames_in_payload.max(1),
                    record: records.len() - 1,
                    srtp: cfg.srtp.and_then(|k| {
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
                heap.push(Reverse((now, i)));
            }
        }
        while let Some(&Reverse((due, i))) = heap.peek() {
            if due > now {
                break;
            }
            heap.pop();
            max_lag = max_lag.max(now.duration_since(due));
            let Some(l) = locals.get_mut(i) else { continue };
            let Some(a) = l.active.as_mut() else { continue };
            packet[0] = 0x80;
            packet[1] = if cfg.g722 { 9 } else { 8 };
            packet[2..4].copy_from_slice(&a.seq.to_be_bytes());
            packet[4..8].copy_from_slice(&a.ts.to_be_bytes());
            packet[8..12].copy_from_slice(&a.ssrc.to_be_bytes());
            let off = a.frame * FRAME_SAMPLES;
            packet[12..].copy_from_slice(&payload[off..off + FRAME_SAMPLES]);
            let rec = &mut records[a.record];
            let protected = a.srtp.as_mut().and_then(|c| c.encrypt_rtp(&packet).ok());
            let out: &[u8] = protected.as_deref().unwrap_or(&packet);
            match slots[l.slot].socket.send_to(out, a.dest) {
                Ok(_) => {
                    rec.sent += 1;
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => rec.send_errors += 1,
            }
            a.seq = a.seq.wrapping_add(1);
            a.ts = a.ts.wrapping_add(FRAME_SAMPLES as u32);
            a.frame = (a.frame + 1) % frames_in_payload.max(1);
            a.left -= 1;
            if a.left == 0 {
                rec.complete = true;
                l.active = None;
            } else {
                heap.push(Reverse((due + FRAME, i)));
            }
        }
        let lag_us = max_lag.as_micros() as u64;
        if lag_us > counters.max_lag_us.load(Ordering::Relaxed) {
            counters.max_lag_us.store(lag_us, Ordering::Relaxed);
        }
        let wake = heap
            .peek()
            .map(|Reverse((t, _))| *t)
            .unwrap_or(next_scan + scan_every)
            .min(next_scan);
        // Sleep at least 1 ms: waking for every due packet cost a thread
        // wake-up per packet (the generator spent ~18 µs a packet); in
        // batches the send itself dominates. Frames go out at most ~1 ms
        // late, which vmail's jitter buffer (media time) does not see.
        let now = Instant::now();
        if wake > now {
            std::thread::sleep(
                (wake - now).clamp(Duration::from_millis(1), Duration::from_millis(5)),
            );
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    records
}
