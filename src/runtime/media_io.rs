//! A call's RTP socket as both call drivers use it: receive into the jitter
//! buffer, learn where the caller sends from (symmetric RTP), follow
//! re-INVITEs (codec, address, hold), and collect digits from every source
//! (RFC 4733, SIP INFO, in-band tones when no telephone-event was agreed),
//! one digit per keypress.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tracing::debug;

use crate::media::{
    DigitDeduper, DigitSource, InbandDetector, PushResult, RtpReceiver, RxConfig,
    DEFAULT_DEDUP_WINDOW,
};
use crate::metrics::Metrics;

use super::pacer::RemoteAddr;

/// The receive side of a call's media.
pub struct MediaIo {
    pub socket: Arc<UdpSocket>,
    pub buf: Vec<u8>,
    remote: RemoteAddr,
    pub receiver: RtpReceiver,
    learned: Option<SocketAddr>,
    on_hold: bool,
    inband: Option<InbandDetector>,
    digits: DigitDeduper,
}

impl MediaIo {
    /// Media for a call answered with `rx`.
    pub fn new(socket: Arc<UdpSocket>, remote: RemoteAddr, rx: RxConfig) -> Self {
        let inband = rx.dtmf_pt.is_none().then(|| InbandDetector::new(8000));
        MediaIo {
            socket,
            buf: vec![0u8; 2048],
            remote,
            receiver: RtpReceiver::new(rx),
            learned: None,
            on_hold: false,
            inband,
            digits: DigitDeduper::new(DEFAULT_DEDUP_WINDOW),
        }
    }

    /// Handles the datagram of `n` bytes now in `buf`, from `from`. Returns
    /// true when it was media of the call (audio, DTMF or comfort noise).
    pub fn on_datagram(&mut self, n: usize, from: SocketAddr, metrics: &Metrics) -> bool {
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
    /// The caller hung up (or vmail is shutting down).
    fn hangup(&mut self, now: Instant);
    /// Its deadline passed.
    fn timeout(&mut self, now: Instant);
}

/// The non-RTP inputs of a call: the pacer's "playlist done", the SIP
/// side's commands; plus the playlist generation and whether the caller
/// hung up.
pub struct CallInputs {
    pub done_rx: tokio::sync::mpsc::UnboundedReceiver<super::pacer::PlaybackDone>,
    pub commands: tokio::sync::mpsc::UnboundedReceiver<super::call_messages::CallCommand>,
    /// Generation of the latest playlist; older "done" reports are ignored.
    pub generation: u64,
    /// The caller hung up (or vmail is shutting down).
    pub hung_up: bool,
    /// One timer for the whole call, and the deadline it is armed for.
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl CallInputs {
    /// The inputs of a call that has just started.
    pub fn new(
        done_rx: tokio::sync::mpsc::UnboundedReceiver<super::pacer::PlaybackDone>,
        commands: tokio::sync::mpsc::UnboundedReceiver<super::call_messages::CallCommand>,
    ) -> Self {
        CallInputs {
            done_rx,
            commands,
            generation: 0,
            hung_up: false,
            timer: Box::pin(tokio::time::sleep(std::time::Duration::from_secs(3600))),
            armed: None,
        }
    }

    /// Waits for the next input of a call and hands the shared kinds to
    /// `flow`. After an RTP datagram (taken by the media layer) it returns
    /// `Some(is_media)` so the flow can drain the audio.
    pub async fn next<F: CallFlow>(
        &mut self,
        flow: &mut F,
        media: &mut MediaIo,
        deadline: Option<Instant>,
        metrics: &Metrics,
    ) -> Option<bool> {
        use super::call_messages::CallCommand;
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
        tokio::select! {
            r = media.socket.recv_from(&mut media.buf) => match r {
                Ok((n, from)) => Some(media.on_datagram(n, from, metrics)),
                Err(e) => {
                    // ICMP port unreachable and the like: keep going.
                    debug!("rtp recv error: {e}");
                    None
                }
            },
            done = self.done_rx.recv() => {
                if done.is_some_and(|d| d.generation == self.generation) {
                    flow.playback_done(Instant::now());
                }
                None
            }
            cmd = self.commands.recv() => {
                let now = Instant::now();
                match cmd {
                    Some(CallCommand::Hangup) | None => {
                        self.hung_up = true;
                        flow.hangup(now);
                    }
                    Some(CallCommand::Media(cfg, addr, sends)) => media.apply(cfg, addr, sends),
                    Some(CallCommand::Dtmf(d)) => {
                        if let Some(d) = media.info_digit(now, d) {
                            flow.digit(now, d);
                        }
                    }
                }
                None
            }
            _ = &mut self.timer => {
                self.armed = None;
                flow.timeout(Instant::now());
                None
            }
        }
    }
}
