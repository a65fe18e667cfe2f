//! Prompt pacing: one timer per shard sends the next RTP frame of every
//! call that is playing something (not a task or a timer per call).
//!
//! A call registers once (socket, where to send, packetizer); then it asks
//! to play a playlist or to stop. Each tick (2 ms) the shard sends every
//! frame that has come due and reports finished playlists to the call's
//! driver. Idle calls keep their RTP timestamp running with wall time so the
//! next talkspurt starts at the right timestamp (with the marker bit).
//!
//! Timing (measured with `benches/load.sh --only pacing`):
//! - a shard is an OS thread of its own, not a task: on the tokio workers
//!   its ticks waited behind whatever the call drivers were doing. The
//!   sockets are plain non-blocking sockets, so a full send buffer drops
//!   the frame instead of blocking the shard;
//! - frames are due against the tick's scheduled instant, never against
//!   the time the thread woke, so a call's frames keep one place on the
//!   grid (comparing with the wake-up time sent a frame due near a tick
//!   boundary one tick early or late);
//! - calls start playing at any time, so their frames spread over the ten
//!   2 ms ticks of a frame time: each tick sends a tenth of them, and a
//!   frame waits behind that short burst only, not behind every call's;
//! - the shards tick offset from each other, so their bursts do not meet;
//! - each shard measures how late its ticks run against the grid and
//!   publishes the mean of every quarter second (`admission::MediaLag`):
//!   new calls wait while the shards fall behind.
//!
//! A playlist item is a decoded clip or a [`StreamClip`], audio that is
//! still arriving (a message kept at another site): the shard takes what
//! has arrived without waiting; a frame it has too little for is filled
//! with silence and the stream goes on (see `stream_clip`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use crate::admission::{LagChange, LagMeter, MediaLag, LAG_WINDOW};
use crate::call::Clip;
use crate::media::{RtpPacketizer, SrtpTx};

use crate::metrics::{CallCounts, Metrics, FOLD_INTERVAL};

use super::media_io::RtpSocket;
use super::stream_clip::StreamClip;

/// One item of a playlist.
#[derive(Debug)]
pub enum Playable {
    /// Decoded audio.
    Clip(Clip),
    /// Audio still arriving.
    Stream(StreamClip),
}

impl From<Clip> for Playable {
    fn from(c: Clip) -> Self {
        Playable::Clip(c)
    }
}

/// Where a call's RTP goes (`None`: nowhere yet, frames are dropped): the
/// SDP offer's address when the driver starts, then what the call's
/// `media::SourceLatch` allows (see `media_io`).
pub type RemoteAddr = Arc<Mutex<Option<SocketAddr>>>;

/// What the pacer tells a call's driver.
#[derive(Debug)]
pub struct PlaybackDone {
    /// The generation of the finished playlist.
    pub generation: u64,
}

enum Command {
    Register {
        call: u64,
        socket: RtpSocket,
        remote: RemoteAddr,
        packetizer: Box<RtpPacketizer>,
        frame_samples: usize,
        done: mpsc::UnboundedSender<PlaybackDone>,
    },
    Play {
        call: u64,
        clips: Vec<Playable>,
        generation: u64,
    },
    Stop {
        call: u64,
    },
    Protect {
        call: u64,
        srtp: Box<SrtpTx>,
    },
    Unregister {
        call: u64,
    },
}

/// Handle to the pacer shards; cheap to clone.
#[derive(Clone)]
pub struct Pacer {
    shards: Arc<[mpsc::UnboundedSender<Command>]>,
    next: Arc<AtomicUsize>,
}

/// A call's slot in one pacer shard.
#[derive(Clone)]
pub struct PacerSlot {
    shard: mpsc::UnboundedSender<Command>,
    call: u64,
}

const TICK: Duration = Duration::from_millis(2);

impl Pacer {
    /// Starts `shards` pacing threads; each ends when every handle to it
    /// is gone.
    /// Shard `i` publishes its lag as source `i` of `lag`.
    pub fn start(
        shards: usize,
        metrics: Arc<Metrics>,
        lag: Arc<MediaLag>,
    ) -> std::io::Result<Pacer> {
        let n = shards.max(1);
        // The shards tick on one grid, each offset by its share of a tick,
        // so their bursts of packets do not coincide.
        let epoch = Instant::now() + TICK;
        let shards = (0..n)
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel();
                let metrics = metrics.clone();
                let lag = lag.clone();
                let first =
                    epoch + TICK * u32::try_from(i).unwrap_or(0) / u32::try_from(n).unwrap_or(1);
                std::thread::Builder::new()
                    .name(format!("vmail-pacer{i}"))
                    .spawn(move || shard(rx, metrics, first, (lag, i)))?;
                Ok(tx)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pacer {
            shards: shards.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Registers a call with the next shard (round robin).
    pub fn register(
        &self,
        call: u64,
        socket: RtpSocket,
        remote: RemoteAddr,
        packetizer: RtpPacketizer,
        frame_samples: usize,
        done: mpsc::UnboundedSender<PlaybackDone>,
    ) -> PacerSlot {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let shard = self.shards[i].clone();
        let _ = shard.send(Command::Register {
            call,
            socket,
            remote,
            packetizer: Box::new(packetizer),
            frame_samples: frame_samples.max(1),
            done,
        });
        PacerSlot { shard, call }
    }
}

impl PacerSlot {
    /// Replaces whatever plays with `clips`.
    pub fn play(&self, clips: Vec<Clip>, generation: u64) {
        self.play_items(clips.into_iter().map(Playable::Clip).collect(), generation);
    }

    /// Replaces whatever plays with `items` (clips and streams).
    pub fn play_items(&self, items: Vec<Playable>, generation: u64) {
        let _ = self.shard.send(Command::Play {
            call: self.call,
            clips: items,
            generation,
        });
    }

    /// From now on the call's packets are sent as SRTP. Sent right after
    /// registering, before anything plays: no packet goes out in clear.
    pub fn protect(&self, srtp: SrtpTx) {
        let _ = self.shard.send(Command::Protect {
            call: self.call,
            srtp: Box::new(srtp),
        });
    }

    /// Stops the playback; no `PlaybackDone` is sent for it.
    pub fn stop(&self) {
        let _ = self.shard.send(Command::Stop { call: self.call });
    }

    /// Forgets the call.
    pub fn unregister(&self) {
        let _ = self.shard.send(Command::Unregister { call: self.call });
    }
}

struct Playing {
    clips: Vec<Playable>,
    clip: usize,
    pos: usize,
    generation: u64,
    first: bool,
}

struct Entry {
    socket: RtpSocket,
    remote: RemoteAddr,
    packetizer: Box<RtpPacketizer>,
    frame_samples: usize,
    frame: Vec<i16>,
    done: mpsc::UnboundedSender<PlaybackDone>,
    playing: Option<Playing>,
    next_due: Instant,
    /// Packets sent and sends failed since the last fold into the metrics.
    counts: CallCounts,
    /// SRTP: each packet is protected on its way to the socket.
    srtp: Option<Box<SrtpTx>>,
}

impl Entry {
    /// Folds what the call sent since the last fold into `metrics`.
    fn fold(&mut self, metrics: &Metrics) {
        metrics.fold(&std::mem::take(&mut self.counts));
    }

    /// Fills `self.frame` with the next frame; returns false when the
    /// playlist was already exhausted before this frame.
    fn next_frame(&mut self) -> bool {
        let Some(p) = self.playing.as_mut() else {
            return false;
        };
        let rate = self.packetizer.sample_rate();
        let mut filled = 0;
        while filled < self.frame_samples {
            let clip = match p.clips.get_mut(p.clip) {
                None => break,
                Some(Playable::Clip(clip)) => clip,
                Some(Playable::Stream(stream)) => {
                    filled += stream.read(&mut self.frame[filled..], rate);
                    if filled < self.frame_samples {
                        if stream.is_finished() {
                            p.clip += 1;
                            continue;
                        }
                        // An underrun: the rest of this frame is silence,
                        // the stream goes on with the next one.
                        self.frame[filled..].fill(0);
                        filled = self.frame_samples;
                    }
                    continue;
                }
            };
            let rest = clip.samples_at(rate).get(p.pos..).unwrap_or(&[]);
            if rest.is_empty() {
                p.clip += 1;
                p.pos = 0;
                continue;
            }
            let n = rest.len().min(self.frame_samples - filled);
            self.frame[filled..filled + n].copy_from_slice(&rest[..n]);
            filled += n;
            p.pos += n;
        }
        if filled == 0 {
            return false;
        }
        self.frame[filled..].fill(0);
        true
    }
}

/// Publishes a window's lag of `source` and logs what it changed.
pub(super) fn publish_lag(lag: &MediaLag, source: usize, now: Instant, mean: Duration) {
    match lag.publish(source, now, mean) {
        Some(LagChange::Refusing(l)) => tracing::warn!(
            lag_ms = l.as_secs_f64() * 1000.0,
            "media threads running late: new calls refused (503) until they catch up"
        ),
        Some(LagChange::Admitting(l)) => tracing::info!(
            lag_ms = l.as_secs_f64() * 1000.0,
            "media threads caught up: new calls taken again"
        ),
        None => {}
    }
}

fn shard(
    mut rx: mpsc::UnboundedReceiver<Command>,
    metrics: Arc<Metrics>,
    first: Instant,
    (lag, source): (Arc<MediaLag>, usize),
) {
    let mut calls = Calls::default();
    let mut meter = LagMeter::new(LAG_WINDOW);
    let mut ended: Vec<u64> = Vec::new();
    // Ticks on a fixed grid; after a stall the missed ticks are skipped
    // and the grid is kept, so every call's frames stay on it.
    let mut tick = first;
    let mut fold_at = first + FOLD_INTERVAL;
    std::thread::sleep(first.saturating_duration_since(Instant::now()));
    loop {
        let woke = Instant::now();
        if let Some(mean) = meter.tick(tick, woke) {
            publish_lag(&lag, source, woke, mean);
            metrics
                .media_lag_us
                .set(i64::try_from(lag.worst().as_micros()).unwrap_or(i64::MAX));
        }
        loop {
            match rx.try_recv() {
                Ok(cmd) => calls.apply(cmd, &metrics),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        // Due against the scheduled instant `tick` (see the module docs).
        for (call, entry) in calls.playing.iter_mut() {
            if !send_due(entry, tick) {
                ended.push(*call);
            }
        }
        for call in ended.drain(..) {
            calls.make_idle(call);
        }
        if tick >= fold_at {
            fold_at = tick + FOLD_INTERVAL;
            for e in calls.playing.values_mut().chain(calls.idle.values_mut()) {
                e.fold(&metrics);
            }
        }
        tick += TICK;
        let now = Instant::now();
        if tick <= now {
            let behind = now.duration_since(tick).as_micros() / TICK.as_micros() + 1;
            tick += TICK * u32::try_from(behind).unwrap_or(u32::MAX);
        }
        // Commands that arrive meanwhile wait for the tick: a new playlist
        // starts within 2 ms.
        std::thread::sleep(tick.duration_since(now));
    }
}

/// The calls of a shard: those playing are visited every tick; idle ones
/// only when they are asked to play again (their timestamp then catches
/// up with the time they were idle).
#[derive(Default)]
struct Calls {
    playing: HashMap<u64, Entry>,
    idle: HashMap<u64, Entry>,
}

impl Calls {
    fn make_idle(&mut self, call: u64) {
        if let Some(e) = self.playing.remove(&call) {
            self.idle.insert(call, e);
        }
    }

    fn apply(&mut self, cmd: Command, metrics: &Metrics) {
        match cmd {
            Command::Register {
                call,
                socket,
                remote,
                packetizer,
                frame_samples,
                done,
            } => {
                let playing = self.playing.remove(&call);
                let idle = self.idle.remove(&call);
                for mut e in playing.into_iter().chain(idle) {
                    e.fold(metrics);
                }
                self.idle.insert(
                    call,
                    Entry {
                        socket,
                        remote,
                        packetizer,
                        frame_samples,
                        frame: vec![0; frame_samples],
                        done,
                        playing: None,
                        next_due: Instant::now(),
                        counts: CallCounts::default(),
                        srtp: None,
                    },
                );
            }
            Command::Play {
                call,
                clips,
                generation,
            } => {
                let now = Instant::now();
                let e = match self.idle.remove(&call) {
                    Some(mut e) => {
                        e.catch_up(now);
                        self.playing.entry(call).or_insert(e)
                    }
                    None => match self.playing.get_mut(&call) {
                        Some(e) => e,
                        None => return,
                    },
                };
                e.playing = Some(Playing {
                    clips,
                    clip: 0,
                    pos: 0,
                    generation,
                    first: true,
                });
                // Start now, not at the idle schedule.
                if e.next_due > now {
                    e.next_due = now;
                }
            }
            Command::Protect { call, srtp } => {
                if let Some(e) = self.playing.get_mut(&call).or(self.idle.get_mut(&call)) {
                    e.srtp = Some(srtp);
                }
            }
            Command::Stop { call } => {
                if let Some(e) = self.playing.get_mut(&call) {
                    e.playing = None;
                }
                self.make_idle(call);
            }
            Command::Unregister { call } => {
                let playing = self.playing.remove(&call);
                let idle = self.idle.remove(&call);
                for mut e in playing.into_iter().chain(idle) {
                    e.fold(metrics);
                }
            }
        }
    }
}

impl Entry {
    /// Playing time of one frame (`frame_samples` at the codec's rate).
    fn frame_time(&self) -> Duration {
        let rate = u64::from(self.packetizer.sample_rate().max(1));
        Duration::from_micros(self.frame_samples as u64 * 1_000_000 / rate)
    }

    /// Advances the RTP timestamp over the frames an idle call did not
    /// send, as if it had been skipping one frame per frame time.
    fn catch_up(&mut self, now: Instant) {
        if self.next_due > now {
            return;
        }
        let frame_time = self.frame_time();
        let behind = now.duration_since(self.next_due).as_micros();
        let frames = behind / frame_time.as_micros().max(1) + 1;
        let frames = u32::try_from(frames).unwrap_or(u32::MAX);
        let samples = u32::try_from(self.frame_samples).unwrap_or(u32::MAX);
        self.packetizer.skip(frames.wrapping_mul(samples));
        self.next_due += frame_time * frames;
    }
}

/// Sends the frames of a playing call that are due at `now`; false once
/// its playlist has ended (it is then idle).
fn send_due(e: &mut Entry, now: Instant) -> bool {
    let frame_time = e.frame_time();
    // Never burst more than a few frames after a stall.
    if now.saturating_duration_since(e.next_due) > frame_time * 5 {
        e.next_due = now;
    }
    while e.next_due <= now {
        e.next_due += frame_time;
        if !e.next_frame() {
            if let Some(p) = e.playing.take() {
                let _ = e.done.send(PlaybackDone {
                    generation: p.generation,
                });
            }
            e.packetizer.skip(e.frame_samples as u32);
            return false;
        }
        let marker = e
            .playing
            .as_mut()
            .is_some_and(|p| std::mem::take(&mut p.first));
        let remote = e.remote.lock().ok().and_then(|r| *r);
        let packet = e.packetizer.packetize(&e.frame, marker);
        if let Some(to) = remote {
            let sent = match e.srtp.as_mut() {
                None => e.socket.send_to(packet, to).is_ok(),
                Some(srtp) => srtp
                    .protect(packet)
                    .is_some_and(|p| e.socket.send_to(&p, to).is_ok()),
            };
            if sent {
                e.counts.rtp_sent += 1;
            } else {
                e.counts.rtp_send_errors += 1;
            }
        }
    }
    e.playing.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A media lag tracker for one shard, as the runtime makes them.
    fn test_lag() -> Arc<MediaLag> {
        Arc::new(MediaLag::new(
            1,
            Duration::from_millis(20),
            Duration::from_secs(1),
        ))
    }

    /// A call registered on `pacer` (id 1, PCMU, 20 ms frames), sending to
    /// the returned socket (reads time out after 5 s).
    fn register(
        pacer: &Pacer,
    ) -> (
        std::net::UdpSocket,
        PacerSlot,
        mpsc::UnboundedReceiver<PlaybackDone>,
    ) {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("non-blocking");
        let remote: RemoteAddr =
            Arc::new(Mutex::new(Some(receiver.local_addr().expect("address"))));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let slot = pacer.register(
            1,
            Arc::new(socket),
            remote,
            RtpPacketizer::new(0, crate::media::Codec::Pcmu, 7, 1, 0),
            160,
            done_tx,
        );
        (receiver, slot, done_rx)
    }

    /// Waits (at most 5 s) for the end of playlist `generation`.
    fn wait_done(done_rx: &mut mpsc::UnboundedReceiver<PlaybackDone>, generation: u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match done_rx.try_recv() {
                Ok(done) => {
                    assert_eq!(done.generation, generation);
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("no end of playback: {e}"),
            }
        }
    }

    /// The frames a call sent are in the metrics once it is unregistered,
    /// exactly once.
    #[test]
    fn a_calls_sent_frames_are_folded_in_when_it_ends() {
        let metrics = Arc::new(Metrics::default());
        let pacer = Pacer::start(1, metrics.clone(), test_lag()).expect("pacer");
        let (_receiver, slot, mut done_rx) = register(&pacer);
        // 10 frames of 20 ms.
        slot.play(vec![Clip::new(vec![0i16; 1600])], 1);
        wait_done(&mut done_rx, 1);
        slot.unregister();
        // Well before the periodic fold (FOLD_INTERVAL): the unregister did it.
        let deadline = Instant::now() + Duration::from_secs(2);
        while metrics.rtp_sent.get() < 10 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // A little longer: nothing more arrives.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(metrics.rtp_sent.get(), 10);
        assert_eq!(metrics.rtp_send_errors.get(), 0);
    }

    /// A stream that has nothing yet plays silence frames and goes on;
    /// what arrives is played; the playlist ends once the stream is closed
    /// and drained.
    #[test]
    fn a_stream_is_played_as_it_arrives() {
        let metrics = Arc::new(Metrics::default());
        let pacer = Pacer::start(1, metrics, test_lag()).expect("pacer");
        let (receiver, slot, mut done_rx) = register(&pacer);
        let (tx, stream) = StreamClip::channel(8000);
        // Two frames of a clip, then the stream.
        slot.play_items(
            vec![
                Playable::Clip(Clip::new(vec![1000i16; 320])),
                Playable::Stream(stream),
            ],
            3,
        );
        let mut buf = [0u8; 2048];
        let mut payload = |receiver: &std::net::UdpSocket| -> Vec<u8> {
            let n = receiver.recv(&mut buf).expect("a packet");
            buf[12..n].to_vec()
        };
        // µ-law: silence is 0xFF (or 0x7F), the clip's level is not.
        let silent = |p: &[u8]| p.iter().all(|&b| b == 0xFF || b == 0x7F);
        assert!(!silent(&payload(&receiver)));
        assert!(!silent(&payload(&receiver)));
        // Underrun: silence keeps coming, the playlist is not over.
        for _ in 0..5 {
            assert!(silent(&payload(&receiver)));
        }
        assert!(done_rx.try_recv().is_err());
        // 300 ms arrive in pieces: all of it is played, then silence again.
        for _ in 0..3 {
            tx.try_send(vec![-2000i16; 800]).expect("room");
        }
        let mut heard = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while heard < 15 && Instant::now() < deadline {
            if !silent(&payload(&receiver)) {
                heard += 1;
            }
        }
        assert_eq!(heard, 15);
        assert!(done_rx.try_recv().is_err());
        // Closed: the playlist ends.
        drop(tx);
        wait_done(&mut done_rx, 3);
        slot.unregister();
    }
}
