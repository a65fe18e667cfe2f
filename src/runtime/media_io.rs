//! A call's RTP socket as both call drivers use it: take only the caller's
//! stream into the jitter buffer ([`SourceLatch`]: the rest is dropped
//! after a header check), send only where the caller has shown it is
//! (symmetric RTP), follow re-INVITEs (codec, address, hold), and collect
//! digits from every source (RFC 4733, SIP INFO, in-band tones when no
//! telephone-event was agreed), one digit per keypress.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, trace};

use crate::media::{
    DigitDeduper, DigitSource, InbandDetector, PushResult, RtpReceiver, RxConfig, SourceLatch,
    SrtpDrop, SrtpRx, Verdict, DEFAULT_DEDUP_WINDOW,
};
use crate::metrics::{CallCounts, Metrics, FOLD_INTERVAL};

use super::media_clock::MediaTick;
use super::pacer::RemoteAddr;

/// The call's RTP socket: non-blocking, read on the media clock (see
/// [`super::media_clock`]), sent to by the pacer.
pub type RtpSocket = Arc<std::net::UdpSocket>;

/// Datagrams of the caller's stream read per tick at most; the rest wait
/// for the next tick, so a flood on one port cannot hold a worker.
const MAX_READS_PER_TICK: usize = 64;
/// Other datagrams read (and dropped after a header check) per tick at
/// most. Far more than the caller's share, so a flood is drained cheaply
/// and the caller's packets behind it are read, not dropped by the kernel
/// when the socket's buffer fills.
const MAX_FOREIGN_PER_TICK: usize = 2048;
/// Static payload type of comfort noise (RFC 3389).
const CN_PT: u8 = 13;

/// The receive side of a call's media.
pub struct MediaIo {
    socket: RtpSocket,
    buf: Vec<u8>,
    /// Reads tried in the current tick.
    reads: usize,
    /// Datagrams read in the current tick.
    got: usize,
    /// Datagrams dropped by the latch in the current tick.
    foreign: usize,
    /// Ticks in a row that found nothing to read.
    empty_ticks: u32,
    remote: RemoteAddr,
    pub receiver: RtpReceiver,
    latch: SourceLatch,
    on_hold: bool,
    inband: Option<InbandDetector>,
    digits: DigitDeduper,
    /// What the call counted, and what of it is folded into the metrics.
    counts: CallCounts,
    folded: CallCounts,
    fold_at: Instant,
    /// SRTP: every datagram is authenticated and decrypted here, at the
    /// socket, before anything else looks at it (see [`Self::with_srtp`]).
    srtp: Option<SrtpRx>,
}

impl MediaIo {
    /// Media for a call answered with `rx` whose INVITE came from
    /// `signalling`. `remote` holds the SDP offer's address on entry; it is
    /// cleared until the caller has shown an address is its own (see
    /// [`SourceLatch`]), so nothing is sent anywhere before.
    pub fn new(socket: RtpSocket, remote: RemoteAddr, rx: RxConfig, signalling: IpAddr) -> Self {
        let inband = rx
            .dtmf_pt
            .is_none()
            .then(|| InbandDetector::new(rx.codec.sample_rate()));
        let sdp = remote.lock().ok().and_then(|r| *r);
        let media = MediaIo {
            socket,
            buf: vec![0u8; 2048],
            reads: 0,
            got: 0,
            foreign: 0,
            empty_ticks: 0,
            remote,
            receiver: RtpReceiver::new(rx),
            latch: SourceLatch::new(sdp, signalling),
            on_hold: false,
            inband,
            digits: DigitDeduper::new(DEFAULT_DEDUP_WINDOW),
            counts: CallCounts::default(),
            folded: CallCounts::default(),
            fold_at: Instant::now() + FOLD_INTERVAL,
            srtp: None,
        };
        media.set_remote(None);
        media
    }

    /// The call's media is SRTP: datagrams that do not authenticate with
    /// the caller's key, or are replayed, are dropped and counted; they
    /// never reach the latch, the jitter buffer or the recording.
    pub fn with_srtp(mut self, srtp: Option<SrtpRx>) -> Self {
        self.srtp = srtp;
        self
    }

    /// A re-INVITE gave the caller's stream a new key.
    pub fn set_srtp(&mut self, srtp: SrtpRx) {
        self.srtp = Some(srtp);
    }

    /// With SRTP: replaces the SRTP datagram of `n` bytes in `buf` by the
    /// RTP packet inside it and returns its length; `None` (counted) when
    /// it is refused.
    fn unprotect(&mut self, n: usize) -> Option<usize> {
        let Some(srtp) = self.srtp.as_mut() else {
            return Some(n);
        };
        match srtp.unprotect(self.buf.get(..n)?) {
            Ok(plain) => {
                let dst = self.buf.get_mut(..plain.len())?;
                dst.copy_from_slice(&plain);
                Some(plain.len())
            }
            Err(why) => {
                match why {
                    SrtpDrop::Auth => self.counts.srtp_auth_failed += 1,
                    SrtpDrop::Replay => self.counts.srtp_replayed += 1,
                    SrtpDrop::Malformed => {}
                }
                trace!(?why, "srtp packet dropped");
                None
            }
        }
    }

    /// Reads the next datagram of the caller's stream that has arrived and
    /// pushes it into the jitter buffer: `Some(true)` for media of the call
    /// (audio, DTMF, comfort noise), `Some(false)` for anything else the
    /// receiver refused, `None` when nothing more is waiting (or this
    /// tick's share was read). Datagrams of other sources are read and
    /// dropped on the way, counted apart. Drain after each.
    pub fn try_recv(&mut self, metrics: &Metrics) -> Option<bool> {
        while self.reads < MAX_READS_PER_TICK && self.foreign < MAX_FOREIGN_PER_TICK {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    self.got += 1;
                    self.counts.rtp_received += 1;
                    let Some(n) = self.unprotect(n) else {
                        self.foreign += 1;
                        self.counts.rtp_ignored += 1;
                        continue;
                    };
                    if !self.accept(n, from) {
                        self.foreign += 1;
                        self.counts.rtp_ignored += 1;
                        continue;
                    }
                    self.reads += 1;
                    return Some(self.on_datagram(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ICMP port unreachable and the like: keep going.
                    self.reads += 1;
                    debug!("rtp recv error: {e}");
                }
            }
        }
        self.empty_ticks = if self.got == 0 {
            self.empty_ticks.saturating_add(1)
        } else {
            0
        };
        if Instant::now() >= self.fold_at {
            self.fold_metrics(metrics);
        }
        None
    }

    /// Folds what the call counted since the last fold into `metrics`:
    /// every [`FOLD_INTERVAL`] while the call lasts, and at its end.
    pub fn fold_metrics(&mut self, metrics: &Metrics) {
        let stats = self.receiver.stats();
        self.counts.rtp_lost = stats.lost;
        self.counts.rtp_late = stats.late;
        metrics.fold(&self.counts.since(&self.folded));
        self.folded = self.counts;
        self.fold_at = Instant::now() + FOLD_INTERVAL;
    }

    /// A new tick: nothing read yet.
    fn start_tick(&mut self) {
        self.reads = 0;
        self.got = 0;
        self.foreign = 0;
    }

    /// Whether the call receives nothing lately and may read on the slow
    /// tick (see [`super::media_clock`]).
    fn quiet(&self) -> bool {
        self.empty_ticks >= 2
    }

    /// Whether the datagram of `n` bytes now in `buf`, from `from`, is of
    /// the caller's stream (the latch decides on its RTP header).
    fn accept(&mut self, n: usize, from: SocketAddr) -> bool {
        let header = self.buf.get(..n).and_then(rtp_header);
        let (media, ssrc, seq) = match header {
            Some((pt, ssrc, seq)) => {
                let rx = self.receiver.config();
                let media = pt == rx.audio_pt || Some(pt) == rx.dtmf_pt || pt == CN_PT;
                (media, ssrc, seq)
            }
            None => (false, 0, 0),
        };
        let before = self.latch.latched();
        let verdict = self.latch.on_packet(Instant::now(), from, ssrc, seq, media);
        if let Verdict::Drop(reason) = verdict {
            trace!(%from, ?reason, "rtp dropped");
            return false;
        }
        let after = self.latch.latched();
        if after != before {
            info!(from = ?after, "rtp source latched");
            self.update_remote();
        }
        true
    }

    /// Handles the caller's datagram of `n` bytes now in `buf`. Returns
    /// true when it was media of the call (audio, DTMF or comfort noise).
    fn on_datagram(&mut self, n: usize) -> bool {
        let Some(packet) = self.buf.get(..n) else {
            return false;
        };
        match self.receiver.push(packet) {
            PushResult::Audio | PushResult::Dtmf | PushResult::ComfortNoise => true,
            _ => {
                self.counts.rtp_ignored += 1;
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
                self.counts.digit(DigitSource::Rfc4733);
                debug!(digit = %d, "dtmf (rfc 4733)");
                return Some(d);
            }
        }
        while let Some(ev) = self.inband.as_mut().and_then(|d| d.poll_digit()) {
            if let Some(d) = self.digits.accept(now, DigitSource::Inband, ev.digit) {
                self.counts.digit(DigitSource::Inband);
                debug!(digit = %d, "dtmf (in-band)");
                return Some(d);
            }
        }
        None
    }

    /// A digit from SIP INFO; `None` if another source already gave it.
    pub fn info_digit(&mut self, now: Instant, digit: char) -> Option<char> {
        let d = self.digits.accept(now, DigitSource::Info, digit);
        if d.is_some() {
            self.counts.digit(DigitSource::Info);
        }
        d
    }

    /// A re-INVITE: new receive settings, the SDP's address, and whether
    /// vmail may send (false while the caller holds the call). A new
    /// address moves the media there (see [`SourceLatch::on_offer`]).
    pub fn apply(&mut self, rx: RxConfig, addr: Option<SocketAddr>, sends: bool) {
        if rx.dtmf_pt.is_none() && self.inband.is_none() {
            self.inband = Some(InbandDetector::new(self.receiver.sample_rate()));
        } else if rx.dtmf_pt.is_some() {
            self.inband = None;
        }
        self.receiver.set_config(rx);
        self.on_hold = !sends;
        self.latch.on_offer(addr);
        self.update_remote();
    }

    /// The ACK of the 200 arrived from where the INVITE came from.
    pub fn on_ack(&mut self) {
        self.latch.on_ack();
        self.update_remote();
    }

    /// Where vmail sends now, if anywhere.
    pub fn send_to(&self) -> Option<SocketAddr> {
        if self.on_hold {
            None
        } else {
            self.latch.send_to()
        }
    }

    fn update_remote(&self) {
        self.set_remote(self.send_to());
    }

    fn set_remote(&self, to: Option<SocketAddr>) {
        if let Ok(mut r) = self.remote.lock() {
            *r = to;
        }
    }
}

/// Payload type, SSRC and sequence number of an RTP version 2 header.
fn rtp_header(packet: &[u8]) -> Option<(u8, u32, u16)> {
    let h = packet.get(..12)?;
    if h[0] >> 6 != 2 {
        return None;
    }
    let seq = u16::from_be_bytes([h[2], h[3]]);
    let ssrc = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    Some((h[1] & 0x7f, ssrc, seq))
}

/// What a call flow (deposit or menu) does with the inputs both share.
pub trait CallFlow {
    /// A digit from the caller.
    fn digit(&mut self, now: Instant, digit: char);
    /// The latest playlist was sent completely.
    fn playback_done(&mut self, now: Instant);
    /// Its deadline passed.
    fn timeout(&mut self, now: Instant);
    /// A transfer the flow asked for ended (`true`: the caller is with
    /// the transfer target). Flows that never transfer ignore it.
    fn transfer_ended(&mut self, _now: Instant, _succeeded: bool) {}
}

/// How long a call waits to know where to send before its first prompt
/// plays anyway (its frames are dropped until an address is known).
pub const SEND_ADDRESS_WAIT: Duration = Duration::from_secs(2);

/// Collects the digits pressed while a call waits to start.
struct Waiting(Vec<char>);

impl CallFlow for Waiting {
    fn digit(&mut self, _now: Instant, digit: char) {
        self.0.push(digit);
    }
    fn playback_done(&mut self, _now: Instant) {}
    fn timeout(&mut self, _now: Instant) {}
}

/// Before a call's first prompt: waits until vmail may send somewhere
/// (the caller's first accepted packet, or the ACK when the SDP address is
/// the signalling source's), at most `max`, or until the caller hangs up
/// (`inputs.hung_up`). Audio read meanwhile is dropped (nothing records
/// yet); the digits pressed are returned, for the flow once it started.
pub async fn wait_for_send_address(
    inputs: &mut CallInputs,
    media: &mut MediaIo,
    metrics: &Metrics,
    max: Duration,
) -> Vec<char> {
    let deadline = Instant::now() + max;
    let mut waiting = Waiting(Vec::new());
    while media.send_to().is_none() && !inputs.hung_up && Instant::now() < deadline {
        if inputs.next(&mut waiting, media, Some(deadline)).await == Wake::Other {
            continue;
        }
        while media.try_recv(metrics).is_some() {
            media.drain(&mut |_| {});
            while let Some(d) = media.poll_digit(Instant::now()) {
                waiting.0.push(d);
            }
        }
    }
    if media.send_to().is_none() && !inputs.hung_up {
        info!("no address to send to yet: the greeting starts anyway");
    }
    waiting.0
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
                    Some(CallCommand::Ack) => media.on_ack(),
                    Some(CallCommand::SrtpKey(rx)) => media.set_srtp(*rx),
                    Some(CallCommand::TransferEnded(ok)) => flow.transfer_ended(now, ok),
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

    /// Media whose SDP offer named `sdp`, signalled from 127.0.0.1.
    fn media_for(sock: RtpSocket, sdp: Option<SocketAddr>) -> (MediaIo, RemoteAddr) {
        let remote: RemoteAddr = Arc::new(std::sync::Mutex::new(sdp));
        let media = MediaIo::new(
            sock,
            remote.clone(),
            RxConfig::new(Codec::Pcmu, None),
            std::net::Ipv4Addr::LOCALHOST.into(),
        );
        (media, remote)
    }

    fn remote_of(remote: &RemoteAddr) -> Option<SocketAddr> {
        *remote.lock().expect("lock")
    }

    #[test]
    fn reads_what_arrived_and_goes_quiet_without_it() {
        let metrics = Metrics::default();
        let (sock, addr) = socket();
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let caller_addr = caller.local_addr().expect("address");
        let (mut media, remote) = media_for(sock, Some(caller_addr));
        // Nothing is sent before the caller showed the address is its own.
        assert_eq!(remote_of(&remote), None);
        // Nothing arrived: two empty ticks make the call quiet.
        media.start_tick();
        assert_eq!(media.try_recv(&metrics), None);
        assert!(!media.quiet());
        media.start_tick();
        assert_eq!(media.try_recv(&metrics), None);
        assert!(media.quiet());

        // A packet from the SDP address: read, pushed, latched, not quiet.
        let mut p = RtpPacketizer::new(0, Codec::Pcmu, 7, 1, 0);
        caller
            .send_to(p.packetize(&[0i16; 160], true), addr)
            .expect("send");
        assert_eq!(recv_within(&mut media, &metrics), Some(true));
        assert_eq!(media.try_recv(&metrics), None);
        assert!(!media.quiet());
        assert_eq!(remote_of(&remote), Some(caller_addr));
    }

    #[test]
    fn the_ack_lets_vmail_send_to_the_sdp_address_of_the_signalling_ip() {
        let (sock, _) = socket();
        let sdp: SocketAddr = "127.0.0.1:40000".parse().expect("address");
        let (mut media, remote) = media_for(sock, Some(sdp));
        assert_eq!(remote_of(&remote), None);
        media.on_ack();
        assert_eq!(remote_of(&remote), Some(sdp));
        // Hold, resume, and a move to a new address.
        media.apply(RxConfig::new(Codec::Pcmu, None), None, false);
        assert_eq!(remote_of(&remote), None);
        media.apply(RxConfig::new(Codec::Pcmu, None), Some(sdp), true);
        assert_eq!(remote_of(&remote), Some(sdp));
        let moved: SocketAddr = "127.0.0.1:40010".parse().expect("address");
        media.apply(RxConfig::new(Codec::Pcmu, None), Some(moved), true);
        assert_eq!(remote_of(&remote), Some(moved));

        // A third party named in the SDP gets nothing, ACK or not.
        let (sock, _) = socket();
        let third: SocketAddr = "192.0.2.7:4000".parse().expect("address");
        let (mut media, remote) = media_for(sock, Some(third));
        media.on_ack();
        assert_eq!(remote_of(&remote), None);
    }

    #[test]
    fn a_foreign_flood_is_drained_and_never_reaches_the_jitter_buffer() {
        let metrics = Metrics::default();
        let (sock, addr) = socket();
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let attacker = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (mut media, remote) = media_for(sock, Some(caller.local_addr().expect("address")));
        let mut p = RtpPacketizer::new(0, Codec::Pcmu, 7, 1, 0);
        let mut a = RtpPacketizer::new(0, Codec::Pcmu, 9, 1, 0);
        caller
            .send_to(p.packetize(&[0i16; 160], true), addr)
            .expect("send");
        assert_eq!(recv_within(&mut media, &metrics), Some(true));
        // Far more than a tick's share of the caller's packets, then one
        // of the caller's: read in the same tick.
        let flood = MAX_READS_PER_TICK * 2;
        for _ in 0..flood {
            attacker
                .send_to(a.packetize(&[1000i16; 160], false), addr)
                .expect("send");
        }
        caller
            .send_to(p.packetize(&[0i16; 160], false), addr)
            .expect("send");
        std::thread::sleep(std::time::Duration::from_millis(50));
        media.start_tick();
        assert_eq!(media.try_recv(&metrics), Some(true));
        assert_eq!(media.try_recv(&metrics), None);
        assert_eq!(media.receiver.stats().received, 2);
        // Counted by the call, folded into the metrics at its end.
        assert_eq!(metrics.rtp_ignored.get(), 0);
        media.fold_metrics(&metrics);
        assert_eq!(metrics.rtp_ignored.get(), flood as u64);
        assert_eq!(metrics.rtp_received.get(), flood as u64 + 2);
        assert_eq!(
            remote_of(&remote),
            Some(caller.local_addr().expect("address"))
        );
    }

    #[test]
    fn a_flood_is_read_a_tick_share_at_a_time() {
        let metrics = Metrics::default();
        let (sock, addr) = socket();
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (mut media, _) = media_for(sock, Some(caller.local_addr().expect("address")));
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

    #[test]
    fn folding_adds_exactly_what_the_call_counted_once() {
        let metrics = Metrics::default();
        let (sock, addr) = socket();
        let caller = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (mut media, _) = media_for(sock, Some(caller.local_addr().expect("address")));
        let mut p = RtpPacketizer::new(0, Codec::Pcmu, 7, 1, 0);
        for _ in 0..5 {
            caller
                .send_to(p.packetize(&[0i16; 160], false), addr)
                .expect("send");
        }
        assert_eq!(recv_within(&mut media, &metrics), Some(true));
        let mut read = 1;
        for _ in 0..200 {
            if read == 5 {
                break;
            }
            media.start_tick();
            while media.try_recv(&metrics).is_some() {
                read += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(read, 5);
        let now = Instant::now();
        assert_eq!(media.info_digit(now, '5'), Some('5'));
        assert_eq!(metrics.rtp_received.get(), 0);
        media.fold_metrics(&metrics);
        assert_eq!(metrics.rtp_received.get(), 5);
        assert_eq!(metrics.rtp_ignored.get(), 0);
        let text = metrics.render();
        assert!(
            text.contains("vmail_dtmf_digits_total{source=\"info\"} 1\n"),
            "{text}"
        );
        // A second fold (the call's end after a periodic one) adds nothing
        // already folded.
        media.fold_metrics(&metrics);
        assert_eq!(metrics.rtp_received.get(), 5);
        assert!(metrics
            .render()
            .contains("vmail_dtmf_digits_total{source=\"info\"} 1\n"));
    }
}
