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
