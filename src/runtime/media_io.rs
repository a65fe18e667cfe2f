//! A call's RTP socket as both call drivers use it: receive into the jitter
//! buffer, learn where the caller sends from (symmetric RTP), follow
//! re-INVITEs (codec, address, hold), and collect digits from every source
//! (RFC 4733, SIP INFO, in-band tones when no telephone-event was agreed),
//! one digit per keypress.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use crate::media::{
    DigitDeduper, DigitSource, InbandDetector, PushResult, RtpReceiver, RxConfig,
    DEFAULT_DEDUP_WINDOW,
};
use crate::metrics::Metrics;

use super::media_clock::MediaTick;
use super::pacer::RemoteAddr;

/// The call's RTP socket: non-blocking, read on the media clock (see
/// [`super::media_clock`]), sent to by the pacer.
pub type RtpSocket = Arc<std::net::UdpSocket>;

/// Datagrams read per tick at most; the rest wait for the next tick, so a
/// flood on one port cannot hold a worker.
const MAX_READS_PER_TICK: usize = 64;

/// The receive side of a call's media.
pub struct MediaIo {
    socket: RtpSocket,
    buf: Vec<u8>,
    /// Reads tried in the current tick.
    reads: usize,
    /// Datagrams read in the current tick.
    got: usize,
    /// Ticks in a row that found nothing to read.
    empty_ticks: u32,
    remote: RemoteAddr,
    pub receiver: RtpReceiver,
    learned: Option<SocketAddr>,
    on_hold: bool,
    inband: Option<InbandDetector>,
    digits: DigitDeduper,
}

impl MediaIo {
    /// Media for a call answered with `rx`.
    pub fn new(socket: RtpSocket, remote: RemoteAddr, rx: RxConfig) -> Self {
        let inband = rx.dtmf_pt.is_none().then(|| InbandDetector::new(8000));
        MediaIo {
            socket,
            buf: vec![0u8; 2048],
            reads: 0,
            got: 0,
            empty_ticks: 0,
            remote,
            receiver: RtpReceiver::new(rx),
            learned: None,
            on_hold: false,
            inband,
            digits: DigitDeduper::new(DEFAULT_DEDUP_WINDOW),
        }
    }

    /// Reads the next datagram that has arrived and pushes it into the
    /// jitter buffer: `Some(true)` for media of the call (audio, DTMF,
    /// comfort noise), `Some(false)` for anything else, `None` when nothing
    /// more is waiting (or this tick's share was read). Drain after each.
    pub fn try_recv(&mut self, metrics: &Metrics) -> Option<bool> {
        while self.reads < MAX_READS_PER_TICK {
            self.reads += 1;
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    self.got += 1;
                    return Some(self.on_datagram(n, from, metrics));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP port unreachable and the like: keep going.
                    debug!("rtp recv error: {e}");
                }
            }
        }
        self.empty_ticks = if self.got == 0 {
            self.empty_ticks.saturating_add(1)
        } else {
            0
        };
        None
    }

    /// A new tick: nothing read yet.
    fn start_tick(&mut self) {
        self.reads = 0;
        self.got = 0;
    }

    /// Whether the call receives nothing lately and may read on the slow
    /// tick (see [`super::media_clock`]).
    fn quiet(&self) -> bool {
        self.empty_ticks >= 2
    }

    /// Handles the datagram of `n` bytes now in `buf`, from `from`. Returns
    /// true when it was media of the call (audio, DTMF or comfort noise).
    fn on_datagram(&mut self, n: usize, from: SocketAddr, metrics: &Metrics) -> bool {
        metrics.rtp_received.inc();
        let Some(packet) = self.buf.get(..n) else {
            return false;
        };
        match self.receiver.push(packet) {
            PushResult::Audio | PushResult::Dtmf | PushResult::ComfortNoise => {
                if self.learned.is_none() {
                    self.learned = Some(from);
                    if !self.on_hold {
                        self.set_remote(Some(from));
                    }
                }
                true
            }
            _ => {
                metrics.rtp_ignored.inc();
                false
            }
        }
    }

    /// Drains the audio the jitter buffer releases into `sink`; in-band
    /// digits are looked for in it when the call has no telephone-event.
    pub fn drain(&mut self, sink: &mut impl FnMut(&[i16])) {
        let inband = &mut self.inband;
        self.receiver.drain(&mut |pcm| {
            if let Some(d) = inband.as_mut() {
                d.feed(pcm);
            }
            sink(pcm);
        });
    }

    /// The digits that arrived (RFC 4733 and in-band), one per keypress.
    pub fn poll_digit(&mut self, now: Instant) -> Option<char> {
        while let Some(ev) = self.receiver.poll_dtmf() {
            if let Some(d) = self.digits.accept(now, DigitSource::Rfc4733, ev.digit) {
                debug!(digit = %d, "dtmf (rfc 4733)");
                return Some(d);
            }
        }
        while let Some(ev) = self.inband.as_mut().and_then(|d| d.poll_digit()) {
            if let Some(d) = self.digits.accept(now, DigitSource::Inband, ev.digit) {
                debug!(digit = %d, "dtmf (in-band)");
                return Some(d);
            }
        }
        None
    }

    /// A digit from SIP INFO; `None` if another source already gave it.
    pub fn info_digit(&mut self, now: Instant, digit: char) -> Option<char> {
        self.digits.accept(now, DigitSource::Info, digit)
    }

    /// A re-INVITE: new receive settings, the SDP's address, and whether
    /// vmail may send (false while the caller holds the call).
    pub fn apply(&mut self, rx: RxConfig, addr: Option<SocketAddr>, sends: bool) {
        if rx.dtmf_pt.is_none() && self.inband.is_none() {
            self.inband = Some(InbandDetector::new(8000));
        } else if rx.dtmf_pt.is_some() {
            self.inband = None;
        }
        self.receiver.set_config(rx);
        self.on_hold = !sends;
        let current = self.remote.lock().ok().and_then(|r| *r);
        let to = if self.on_hold {
            None
        } else {
            self.learned.or(addr).or(current)
        };
        self.set_remote(to);
    }

    fn set_remote(&self, to: Option<SocketAddr>) {
        if let Ok(mut r) = self.remote.lock() {
            *r = to;
        }
    }
}

/// What a call flow (deposit or menu) does with the inputs both share.
pub trait CallFlow {
    /// A digit from the caller.
    fn digit(&mut self, now: Instant, digit: char);
    /// The latest playlist was sent completely.
    fn playback_done(&mut self, now: Instant);
    /// Its deadline passed.
    fn timeout(&mut self, now: Instant);
}

/// What woke a call (see [`CallInputs::next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The media clock ticked: read the socket ([`MediaIo::try_recv`]).
    Media,
    /// The caller hung up (or vmail is shutting down): read what is left
    /// on the socket, then tell the flow.
    Hangup,
    /// Something the flow has already been told.
    Other,
}

/// The non-RTP inputs of a call: the media clock, the pacer's "playlist
/// done", the SIP side's commands; plus the playlist generation and
/// whether the caller hung up.
pub struct CallInputs {
    tick: MediaTick,
    pub done_rx: tokio::sync::mpsc::UnboundedReceiver<super::pacer::PlaybackDone>,
    pub commands: tokio::sync::mpsc::UnboundedReceiver<super::call_messages::CallCommand>,
    /// Generation of the latest playlist; older "done" reports are ignored.
    pub generation: u64,
    /// The caller hung up (or vmail is shutting down).
    pub hung_up: bool,
    /// One timer for the whole call, and the deadline it is armed for.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
    /// The wake-up whose datagrams are being read (see [`Self::read_on`]).
    reading: Option<Wake>,
}

impl CallInputs {
    /// The inputs of a call that has just started.
    pub fn new(
        tick: MediaTick,
        done_rx: tokio::sync::mpsc::UnboundedReceiver<super::pacer::PlaybackDone>,
        commands: tokio::sync::mpsc::UnboundedReceiver<super::call_messages::CallCommand>,
    ) -> Self {
        CallInputs {
            tick,
            done_rx,
            commands,
            generation: 0,
            hung_up: false,
            timer: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3600))),
            armed: None,
            reading: None,
        }
    }

    /// A datagram of `wake` was read: the next [`Self::next`] returns
    /// `wake` again at once, so the driver carries out the flow's actions
    /// between datagrams (a `#` stops a recording right there) and then
    /// reads on.
    pub fn read_on(&mut self, wake: Wake) {
        self.reading = Some(wake);
    }

    /// Waits for the next input of a call and hands the shared kinds to
    /// `flow`; says what woke it. On [`Wake::Media`] and [`Wake::Hangup`]
    /// the driver reads the socket one datagram at a time
    /// ([`MediaIo::try_recv`], then [`Self::read_on`]) until it is empty;
    /// on `Hangup` it then tells the flow, so the audio sent just before
    /// the BYE is in the recording.
    pub async fn next<F: CallFlow>(
        &mut self,
        flow: &mut F,
        media: &mut MediaIo,
        deadline: Option<Instant>,
    ) -> Wake {
        use super::call_messages::CallCommand;
        if let Some(w) = self.reading.take() {
            return w;
        }
        // The deadline (no media) moves later with every packet; re-arming
        // the timer each time would cost a timer-wheel removal and insertion
        // per packet. It is re-armed only when the deadline comes earlier
        // than the armed one, or after it fired (possibly early: the flows
        // ignore an early `timeout`).
        let deadline =
            deadline.unwrap_or_else(|| Instant::now() + std::time::Duration::from_secs(3600));
        if self.armed.is_none_or(|a| deadline < a) {
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            self.armed = Some(deadline);
        }
        let slow = media.quiet();
        tokio::select! {
            () = self.tick.tick(slow) => {
                media.start_tick();
                Wake::Media
            }
            done = self.done_rx.recv() => {
                if done.is_some_and(|d| d.generation == self.generation) {
                    flow.playback_done(Instant::now());
                }
                Wake::Other
            }
            cmd = self.commands.recv() => {
                let now = Instant::now();
                match cmd {
                    Some(CallCommand::Hangup) | None => {
                        self.hung_up = true;
                        media.start_tick();
                        return Wake::Hangup;
                    }
                    Some(CallCommand::Media(cfg, addr, sends)) => media.apply(cfg, addr, sends),
                    Some(CallCommand::Dtmf(d)) => {
                        if let Some(d) = media.info_digit(now, d) {
                            flow.digit(now, d);
                        }
                    }
                }
                Wake::Other
            }
            _ = &mut self.timer => {
                self.armed = None;
                flow.timeout(Instant::now());
                Wake::Other
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, RtpPacketizer};

    fn socket() -> (RtpSocket, SocketAddr) {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_nonblocking(true).expect("non-blocking");
        let addr = s.local_addr().expect("address");
        (Arc::new(s), addr)
    }

    /// Waits (bounded) until a datagram sent on loopback is readable.
    fn recv_within(media: &mut MediaIo, metrics: &Metrics) -> Option<bool> {
        for _ in 0..200 {
            media.start_tick();
            if let Some(r) = media.try_recv(metrics) {
                return Some(r);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        None
    }

    #[test]
    fn reads_what_arrived_and_goes_quiet_without_it() {
        let metrics = Metrics::default();
        let (sock, addr) = socket();
        let remote: RemoteAddr = Arc::default();
        let mut media = MediaIo::new(sock, remote.clone(), RxConfig::new(Codec::Pcmu, None));
        // Nothing arrived: two empty ticks make the call quiet.
        media.start_tick();
        assert_eq!(media.try_recv(&metrics), None);
        assert!(!media.quiet());
        media.start_tick();
        assert_eq!(media.try_recv(&metrics), None);
        assert!(media.quiet());

        // A caller's packet: read, pushed, learned as the remote, not quiet.
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut p = RtpPacketizer::new(0, Codec::Pcmu, 7, 1, 0);
        caller
            .send_to(p.packetize(&[0i16; 160], true), addr)
            .expect("send");
        assert_eq!(recv_within(&mut media, &metrics), Some(true));
        assert_eq!(media.try_recv(&metrics), None);
        assert!(!media.quiet());
        assert_eq!(
            *remote.lock().expect("lock"),
            Some(caller.local_addr().expect("address"))
        );
    }

    #[test]
    fn a_flood_is_read_a_tick_share_at_a_time() {
        let metrics = Metrics::default();
        let (sock, addr) = socket();
        let mut media = MediaIo::new(sock, Arc::default(), RxConfig::new(Codec::Pcmu, None));
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut p = RtpPacketizer::new(0, Codec::Pcmu, 7, 1, 0);
        let total = MAX_READS_PER_TICK + 10;
        for _ in 0..total {
            caller
                .send_to(p.packetize(&[0i16; 160], false), addr)
                .expect("send");
        }
        assert_eq!(recv_within(&mut media, &metrics), Some(true));
        let mut read = 1;
        while media.try_recv(&metrics).is_some() {
            read += 1;
        }
        assert_eq!(read, MAX_READS_PER_TICK);
        // The rest on the next tick.
        media.start_tick();
        while media.try_recv(&metrics).is_some() {
            read += 1;
        }
        assert_eq!(read, total);
    }
}
