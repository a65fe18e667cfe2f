//! RTP reception for one call: parse, reorder (jitter buffer), decode the
//! call's codec, fill gaps (silence; Opus: FEC and loss concealment),
//! decode RFC 4733 digits.
//!
//! Sans-IO: the shell pushes each datagram with [`RtpReceiver::push`] and then
//! calls [`RtpReceiver::drain`]; PCM comes out in media order through a sink.
//!
//! # Jitter buffer
//! Packets are slotted by extended (wrap-corrected) sequence number into a ring
//! allocated once. The frame at the head is released once the newest packet is
//! `jitter_depth_ms` of media time ahead of it, or when the buffer window is
//! full. A packet whose slot was already released is *late* and dropped.
//!
//! # Output timeline
//! Output follows RTP timestamps: a released frame whose timestamp is ahead of
//! the output position gets silence inserted first (loss, silence suppression,
//! the time covered by DTMF events), so the total number of samples equals the
//! media time of the call. Positions are kept in RTP timestamp units and
//! written at the codec's audio rate ([`RtpReceiver::sample_rate`]: twice the
//! RTP clock for G.722, a third of it for Opus). For Opus, lost packets
//! that explain a gap are concealed instead: in-band FEC from the packet
//! after the loss, the decoder's concealment before it. Telephone-event and comfort-noise (PT 13) packets
//! produce that silence as soon as they are released, so the silence detector
//! keeps counting through a key press or a comfort-noise pause (a sender that
//! sends nothing at all while silent is for the shell's clock to notice).
//! Absurd timestamp jumps (backwards, or forward by more than 5 s and not
//! explained by lost packets) resynchronise the timeline instead: the frame
//! is written at the current position. A new SSRC continues at the current
//! position (no gap, no overlap).
//!
//! # Sequence discontinuities
//! Following RFC 3550 A.1, a jump of more than 3000 ahead or 100 behind is
//! taken as a sender restart only when the next packet confirms it. A packet
//! that is too far ahead for the ring, a confirmed restart and an SSRC change
//! are *parked* until the next `drain`, which first releases everything
//! buffered. Call `drain` after every `push`: a second discontinuity before it
//! is discarded (counted).

use std::mem;

use rtp_rs::RtpReader;

use super::codec::Codec;
use super::coder::AudioDecoder;
use super::dtmf::{DtmfDecoder, DtmfEvent, EventPayload};

/// Reception parameters negotiated by SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxConfig {
    /// Payload type of the audio codec.
    pub audio_pt: u8,
    /// The audio codec.
    pub codec: Codec,
    /// Payload type of telephone-event, if negotiated.
    pub dtmf_pt: Option<u8>,
    /// RTP clock rate (8000; 48000 for Opus).
    pub clock_rate: u32,
    /// G.729 annex B: SID frames are expected (`annexb=no` turns it off).
    pub annexb: bool,
    /// Jitter buffer depth in milliseconds of media time.
    pub jitter_depth_ms: u32,
}

impl RxConfig {
    /// Static payload type of `codec`, telephone-event as `dtmf_pt`, the
    /// codec's clock, 60 ms depth.
    pub fn new(codec: Codec, dtmf_pt: Option<u8>) -> Self {
        RxConfig {
            audio_pt: codec.static_payload_type(),
            codec,
            dtmf_pt,
            clock_rate: codec.clock_rate(),
            annexb: true,
            jitter_depth_ms: 60,
        }
    }
}

/// Why a datagram did not enter the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// Not RTP v2, truncated, bad padding, empty/oversize audio or short event payload.
    Malformed,
    /// A payload type that is neither the audio codec nor telephone-event.
    WrongPayloadType,
    /// Its slot was already released.
    Late,
    /// Already received.
    Duplicate,
    /// A straggler from the SSRC that was replaced.
    StaleSsrc,
    /// A sequence jump waiting for confirmation by the next packet (RFC 3550 A.1).
    SeqJump,
    /// A second discontinuity arrived before `drain` handled the first.
    Overflow,
}

/// What [`RtpReceiver::push`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushResult {
    /// An audio frame was buffered.
    Audio,
    /// A telephone-event packet was taken (check [`RtpReceiver::poll_dtmf`]).
    Dtmf,
    /// A comfort-noise packet was taken (its time becomes silence).
    ComfortNoise,
    /// The datagram was counted and dropped.
    Ignored(IgnoreReason),
}

/// Reception counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RxStats {
    /// Datagrams pushed.
    pub received: u64,
    /// Audio packets buffered.
    pub audio: u64,
    /// Telephone-event packets buffered.
    pub dtmf: u64,
    /// Comfort-noise (payload type 13) packets buffered.
    pub comfort_noise: u64,
    /// Sequence numbers released as missing (filled with silence).
    pub lost: u64,
    /// Packets that arrived after their slot was released.
    pub late: u64,
    /// Packets received twice.
    pub duplicate: u64,
    /// Packets with an unexpected payload type.
    pub wrong_pt: u64,
    /// Datagrams that are not valid RTP for us (see [`IgnoreReason::Malformed`]).
    pub malformed: u64,
    /// Changes of the sender's SSRC.
    pub ssrc_changes: u64,
    /// Timeline or sequence resynchronisations (absurd jumps, restarts).
    pub resyncs: u64,
    /// Packets dropped for sequence probation or overflow.
    pub discarded: u64,
}

/// RFC 3550 A.1 limits.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// Static payload type of comfort noise (RFC 3389).
const CN_PT: u8 = 13;
/// Largest audio payload accepted (120 ms of G.711; an Opus packet is at
/// most 1275 bytes).
const MAX_AUDIO_PAYLOAD: usize = 1500;
/// Forward timestamp jumps up to this are silence, beyond it a resync.
const MAX_JUMP_MS: u32 = 5000;
/// Extended sequence numbers start here so that "behind" never underflows.
const EXT_BASE: u64 = 1 << 32;
/// Zero samples for gap filling, emitted in chunks.
static ZEROS: [i16; 320] = [0; 320];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotKind {
    Empty,
    Audio(Codec),
    /// Telephone-event: covers `ts..end` of media time with silence.
    Event,
    /// Comfort noise (RFC 3389): silence at least up to its timestamp.
    ComfortNoise,
    /// Another payload type: holds its sequence number only.
    Other,
}

#[derive(Debug)]
struct Slot {
    ext: u64,
    kind: SlotKind,
    ts: u32,
    /// Media time this packet reaches (ts + samples, or ts + event duration).
    end: u32,
    payload: Vec<u8>,
}

impl Slot {
    fn empty() -> Self {
        Slot {
            ext: 0,
            kind: SlotKind::Empty,
            ts: 0,
            end: 0,
            payload: Vec::with_capacity(160),
        }
    }

    fn holds(&self, ext: u64) -> bool {
        self.kind != SlotKind::Empty && self.ext == ext
    }
}

/// The previous SSRC, remembered to drop its stragglers.
#[derive(Debug, Clone, Copy)]
struct Previous {
    ssrc: u32,
    highest_seq: u16,
}

/// Packets of the new stream during which the old SSRC slightly ahead of its
/// last sequence number is still taken for stragglers, not a switch back.
const STRAGGLER_PACKETS: u64 = 50;
const STRAGGLER_AHEAD: i16 = 16;

/// The stream currently received.
#[derive(Debug)]
struct Active {
    ssrc: u32,
    /// Extended sequence number the stream started with.
    first: u64,
    /// Next extended sequence number to release.
    head: u64,
    /// Highest extended sequence number buffered.
    highest: u64,
    /// `end` of the packet at `highest`.
    newest_end: u32,
    /// Bit i set: `head - 1 - i` was received (for late vs duplicate).
    history: u64,
    /// Something was released already (before that, `head` may move back).
    started: bool,
    /// RFC 3550 probation: the sequence number that would confirm a restart.
    bad_seq: Option<u16>,
    previous: Option<Previous>,
}

impl Active {
    fn new(ssrc: u32, seq: u16, previous: Option<Previous>) -> Self {
        let ext = EXT_BASE + u64::from(seq);
        Active {
            ssrc,
            first: ext,
            head: ext,
            highest: ext,
            newest_end: 0,
            history: 0,
            started: false,
            bad_seq: None,
            previous,
        }
    }
}

#[derive(Debug)]
enum Stream {
    Idle,
    Active(Active),
}

#[derive(Debug, Clone, Copy)]
enum Transition {
    /// Same stream, too far ahead for the ring (burst loss).
    Jump { ext: u64 },
    /// Same SSRC, sequence restarted (confirmed).
    Restart,
    /// Another SSRC.
    NewSsrc,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    transition: Transition,
    ssrc: u32,
    seq: u16,
    kind: SlotKind,
    ts: u32,
    end: u32,
}

#[derive(Debug)]
enum Parked {
    Empty,
    Held(Held),
}

#[derive(Debug, Clone, Copy)]
struct Synced {
    /// RTP timestamp that maps to the current output position.
    next_ts: u32,
    /// Extended seq and length of the last audio frame written.
    last_audio: Option<(u64, u32)>,
}

#[derive(Debug, Clone, Copy)]
enum Timeline {
    Unsynced,
    Synced(Synced),
}

/// Writes PCM and silence to the sink and keeps the timestamp mapping.
#[derive(Debug)]
struct Output {
    timeline: Timeline,
    /// Samples written (at `rate`).
    samples: u64,
    max_jump: u32,
    scratch: Vec<i16>,
    decoder: AudioDecoder,
    /// The decoder of the codec before a re-INVITE, for frames still buffered.
    previous: Option<AudioDecoder>,
    /// Rate of the samples written, fixed for the call.
    rate: u32,
}

impl Output {
    /// Writes silence for `ticks` RTP timestamp units.
    fn silence(&mut self, ticks: u32, sink: &mut impl FnMut(&[i16])) {
        let mut n = self.out_samples(ticks);
        self.samples += n as u64;
        while n > 0 {
            let chunk = n.min(ZEROS.len());
            sink(&ZEROS[..chunk]);
            n -= chunk;
        }
    }

    /// Output samples of `ticks` RTP timestamp units.
    fn out_samples(&self, ticks: u32) -> usize {
        let n = self.decoder.samples_for(ticks);
        match (self.decoder.sample_rate(), self.rate) {
            (a, b) if a == b => n,
            (a, b) => n * b as usize / a.max(1) as usize,
        }
    }

    /// Writes `scratch` (at the decoder's rate) in the call's rate: a
    /// re-INVITE to a codec of another rate repeats or drops samples.
    fn emit(&mut self, from_rate: u32, sink: &mut impl FnMut(&[i16])) {
        if from_rate == self.rate {
            self.samples += self.scratch.len() as u64;
            sink(&self.scratch);
            return;
        }
        let converted: Vec<i16> = if from_rate < self.rate {
            let k = (self.rate / from_rate.max(1)) as usize;
            self.scratch
                .iter()
                .flat_map(|&v| std::iter::repeat_n(v, k))
                .collect()
        } else {
            let k = (from_rate / self.rate.max(1)) as usize;
            self.scratch.iter().step_by(k.max(1)).copied().collect()
        };
        self.samples += converted.len() as u64;
        sink(&converted);
    }

    fn sync(&mut self, ts: u32) -> Synced {
        match self.timeline {
            Timeline::Synced(s) => s,
            Timeline::Unsynced => Synced {
                next_ts: ts,
                last_audio: None,
            },
        }
    }

    fn audio(
        &mut self,
        ext: u64,
        codec: Codec,
        ts: u32,
        payload: &[u8],
        stats: &mut RxStats,
        sink: &mut impl FnMut(&[i16]),
    ) {
        let mut s = self.sync(ts);
        let delta = ts.wrapping_sub(s.next_ts) as i32;
        self.scratch.clear();
        let current = self.decoder.codec() == codec;
        if delta > 0 {
            let gap = delta.unsigned_abs();
            // A gap that lost packets explain is real media time, even if long.
            let explained = match s.last_audio {
                Some((last_ext, frame)) if ext > last_ext + 1 => {
                    u64::from(gap) <= (ext - last_ext).saturating_mul(u64::from(frame))
                }
                _ => false,
            };
            if explained && current {
                // Lost packets: the codec conceals what it can (Opus).
                self.decoder.conceal(gap, Some(payload), &mut self.scratch);
                let rate = self.decoder.sample_rate();
                self.emit(rate, sink);
                self.scratch.clear();
            } else if gap <= self.max_jump || explained {
                self.silence(gap, sink);
            } else {
                tracing::debug!(gap, "RTP timestamp jump: timeline resync");
                stats.resyncs += 1;
            }
        } else if delta < 0 {
            tracing::debug!(delta, "RTP timestamp went back: timeline resync");
            stats.resyncs += 1;
        }
        let decoder = match &mut self.previous {
            Some(p) if !current && p.codec() == codec => p,
            _ => &mut self.decoder,
        };
        let frame = if decoder.codec() == codec {
            let frame = decoder.ticks(payload).unwrap_or(0);
            decoder.decode(payload, &mut self.scratch);
            let rate = decoder.sample_rate();
            self.emit(rate, sink);
            frame
        } else {
            // A frame of a codec whose state is gone: its time is silence.
            let frame = AudioDecoder::new(codec, true).ticks(payload).unwrap_or(0);
            self.silence(frame, sink);
            frame
        };
        s.next_ts = ts.wrapping_add(frame);
        s.last_audio = Some((ext, frame));
        self.timeline = Timeline::Synced(s);
    }

    /// A telephone-event or comfort-noise packet: the sender's media time
    /// reached `to` with nothing to play, so the output is silence up to there
    /// (unless that is a jump backwards or an absurd one: then audio decides).
    fn silent_until(&mut self, ts: u32, to: u32, sink: &mut impl FnMut(&[i16])) {
        let mut s = self.sync(ts);
        let d = to.wrapping_sub(s.next_ts) as i32;
        if d > 0 && d.unsigned_abs() <= self.max_jump {
            self.silence(d.unsigned_abs(), sink);
            s.next_ts = to;
        }
        self.timeline = Timeline::Synced(s);
    }

    fn other(&mut self, ts: u32) {
        let s = self.sync(ts);
        self.timeline = Timeline::Synced(s);
    }
}

/// The fixed ring of slots.
#[derive(Debug)]
struct Ring {
    slots: Box<[Slot]>,
    mask: u64,
    /// Span of sequence numbers kept before the head is forced out.
    window: u64,
}

impl Ring {
    fn new(depth_ms: u32) -> Self {
        // Enough for the depth at 10 ms packets plus reordering room.
        let packets = (depth_ms / 10).saturating_add(4).clamp(8, 512);
        let window = u64::from(packets.next_power_of_two());
        let len = (window * 2) as usize;
        let slots: Vec<Slot> = (0..len).map(|_| Slot::empty()).collect();
        Ring {
            slots: slots.into_boxed_slice(),
            mask: window * 2 - 1,
            window,
        }
    }

    fn len(&self) -> u64 {
        self.mask + 1
    }

    fn slot(&self, ext: u64) -> &Slot {
        // `mask` < slots.len(), so the index is in bounds.
        &self.slots[(ext & self.mask) as usize]
    }

    fn slot_mut(&mut self, ext: u64) -> &mut Slot {
        &mut self.slots[(ext & self.mask) as usize]
    }
}

/// RTP receiver of one call: jitter buffer, decoding, RFC 4733 digits.
#[derive(Debug)]
pub struct RtpReceiver {
    cfg: RxConfig,
    depth: u32,
    ring: Ring,
    stream: Stream,
    parked: Parked,
    parked_payload: Vec<u8>,
    out: Output,
    dtmf: DtmfDecoder,
    stats: RxStats,
}

/// What a packet carries, by payload type.
#[derive(Clone, Copy)]
enum Incoming {
    Audio(Codec),
    Event(EventPayload),
    ComfortNoise,
    Other,
}

fn depth_samples(cfg: &RxConfig) -> u32 {
    u32::try_from(u64::from(cfg.jitter_depth_ms) * u64::from(cfg.clock_rate) / 1000)
        .unwrap_or(u32::MAX / 4)
        .min(u32::MAX / 4)
}

fn sane(mut cfg: RxConfig) -> RxConfig {
    if cfg.clock_rate == 0 {
        cfg.clock_rate = 8000;
    }
    cfg
}

impl RtpReceiver {
    /// A receiver with its buffers allocated for `cfg.jitter_depth_ms`.
    pub fn new(cfg: RxConfig) -> Self {
        let cfg = sane(cfg);
        RtpReceiver {
            cfg,
            depth: depth_samples(&cfg),
            ring: Ring::new(cfg.jitter_depth_ms),
            stream: Stream::Idle,
            parked: Parked::Empty,
            parked_payload: Vec::with_capacity(160),
            out: Output {
                timeline: Timeline::Unsynced,
                samples: 0,
                max_jump: MAX_JUMP_MS.saturating_mul(cfg.clock_rate / 1000),
                scratch: Vec::with_capacity(1920),
                decoder: AudioDecoder::new(cfg.codec, cfg.annexb),
                previous: None,
                rate: cfg.codec.sample_rate(),
            },
            dtmf: DtmfDecoder::new(cfg.clock_rate),
            stats: RxStats::default(),
        }
    }

    /// New payload types / codec after a re-INVITE. Buffered frames keep the codec
    /// they arrived with; the ring keeps the size chosen at construction, and
    /// the output its [`RtpReceiver::sample_rate`].
    pub fn set_config(&mut self, cfg: RxConfig) {
        let cfg = sane(cfg);
        if cfg.codec != self.out.decoder.codec() || cfg.annexb != self.cfg.annexb {
            let old = mem::replace(
                &mut self.out.decoder,
                AudioDecoder::new(cfg.codec, cfg.annexb),
            );
            self.out.previous = Some(old);
        }
        self.cfg = cfg;
        self.depth = depth_samples(&cfg);
        self.out.max_jump = MAX_JUMP_MS.saturating_mul(cfg.clock_rate / 1000);
        self.dtmf.set_clock_rate(cfg.clock_rate);
    }

    /// The current configuration.
    pub fn config(&self) -> &RxConfig {
        &self.cfg
    }

    /// Takes one datagram. Never panics on any input; no allocation once the
    /// slots have grown to the sender's frame size.
    pub fn push(&mut self, packet: &[u8]) -> PushResult {
        self.stats.received += 1;
        let rtp = match RtpReader::new(packet) {
            Ok(r) => r,
            Err(e) => {
                tracing::trace!(error = ?e, len = packet.len(), "malformed RTP");
                return self.malformed();
            }
        };
        let pt = rtp.payload_type();
        let seq = u16::from(rtp.sequence_number());
        let ts = rtp.timestamp();
        let ssrc = rtp.ssrc();
        let payload = rtp.payload();

        let mut audio_ticks = 0;
        let incoming = if pt == self.cfg.audio_pt {
            if payload.len() > MAX_AUDIO_PAYLOAD {
                return self.malformed();
            }
            match self.out.decoder.ticks(payload) {
                Some(t) => audio_ticks = t,
                None => return self.malformed(),
            }
            Incoming::Audio(self.cfg.codec)
        } else if Some(pt) == self.cfg.dtmf_pt {
            match EventPayload::parse(payload) {
                Some(ev) => Incoming::Event(ev),
                None => return self.malformed(),
            }
        } else if pt == CN_PT {
            Incoming::ComfortNoise
        } else {
            Incoming::Other
        };
        let (kind, end) = match incoming {
            Incoming::Audio(codec) => (SlotKind::Audio(codec), ts.wrapping_add(audio_ticks)),
            Incoming::Event(ev) => (SlotKind::Event, ts.wrapping_add(u32::from(ev.duration))),
            Incoming::ComfortNoise => (SlotKind::ComfortNoise, ts),
            Incoming::Other => (SlotKind::Other, ts),
        };

        if let Stream::Idle = self.stream {
            if kind == SlotKind::Other {
                return self.wrong_pt();
            }
            self.stream = Stream::Active(Active::new(ssrc, seq, None));
        }
        let Stream::Active(active) = &mut self.stream else {
            return PushResult::Ignored(IgnoreReason::Overflow);
        };

        if active.ssrc != ssrc {
            if kind == SlotKind::Other {
                return self.wrong_pt();
            }
            if let Some(prev) = active.previous {
                let d = seq.wrapping_sub(prev.highest_seq) as i16;
                let young = active.highest - active.first < STRAGGLER_PACKETS;
                let behind = (-(MAX_DROPOUT as i16)..=0).contains(&d);
                if prev.ssrc == ssrc && (behind || (young && d <= STRAGGLER_AHEAD && d > 0)) {
                    self.stats.late += 1;
                    return PushResult::Ignored(IgnoreReason::StaleSsrc);
                }
            }
            if let Parked::Held(h) = self.parked {
                if h.ssrc == ssrc {
                    if let Incoming::Event(ev) = incoming {
                        self.dtmf.feed(ts, ev);
                    }
                }
                self.stats.discarded += 1;
                return PushResult::Ignored(IgnoreReason::Overflow);
            }
            tracing::debug!(old = active.ssrc, new = ssrc, "RTP SSRC change");
            self.stats.ssrc_changes += 1;
            self.dtmf.reset_stream();
            return self.park(
                Transition::NewSsrc,
                ssrc,
                seq,
                kind,
                ts,
                end,
                payload,
                incoming,
            );
        }

        // Extended sequence number relative to the highest seen (RFC 3550 A.1).
        let udelta = seq.wrapping_sub(active.highest as u16);
        let ext = if udelta < MAX_DROPOUT {
            active.highest + u64::from(udelta)
        } else if udelta > u16::MAX - MAX_MISORDER {
            active.highest - u64::from(u16::MAX - udelta) - 1
        } else if active.bad_seq == Some(seq) {
            active.bad_seq = None;
            if kind == SlotKind::Other {
                return self.wrong_pt();
            }
            if let Parked::Held(_) = self.parked {
                self.stats.discarded += 1;
                return PushResult::Ignored(IgnoreReason::Overflow);
            }
            tracing::debug!(seq, "RTP sequence restart");
            self.stats.resyncs += 1;
            self.dtmf.reset_stream();
            return self.park(
                Transition::Restart,
                ssrc,
                seq,
                kind,
                ts,
                end,
                payload,
                incoming,
            );
        } else {
            active.bad_seq = Some(seq.wrapping_add(1));
            self.stats.discarded += 1;
            return PushResult::Ignored(IgnoreReason::SeqJump);
        };
        active.bad_seq = None;

        if let Incoming::Event(ev) = incoming {
            self.dtmf.feed(ts, ev);
        }

        if ext < active.head {
            if !active.started && active.highest - ext < self.ring.window {
                // Reordered before anything was released: the stream starts earlier.
                active.head = ext;
            } else {
                let d = active.head - 1 - ext;
                let seen = d < 64 && (active.history >> d) & 1 == 1;
                return if kind == SlotKind::Other {
                    self.wrong_pt()
                } else if seen {
                    self.stats.duplicate += 1;
                    PushResult::Ignored(IgnoreReason::Duplicate)
                } else {
                    self.stats.late += 1;
                    PushResult::Ignored(IgnoreReason::Late)
                };
            }
        }
        if ext >= active.head + self.ring.len() {
            if kind == SlotKind::Other {
                return self.wrong_pt();
            }
            return self.park(
                Transition::Jump { ext },
                ssrc,
                seq,
                kind,
                ts,
                end,
                payload,
                incoming,
            );
        }
        let slot = self.ring.slot_mut(ext);
        if slot.holds(ext) {
            if kind == SlotKind::Other {
                return self.wrong_pt();
            }
            self.stats.duplicate += 1;
            return PushResult::Ignored(IgnoreReason::Duplicate);
        }
        slot.ext = ext;
        slot.kind = kind;
        slot.ts = ts;
        slot.end = end;
        slot.payload.clear();
        if let SlotKind::Audio(_) = kind {
            slot.payload.extend_from_slice(payload);
        }
        if ext >= active.highest {
            active.highest = ext;
            active.newest_end = end;
        }
        self.accepted(&incoming)
    }

    /// Releases the PCM that is ready (in order, gaps as silence) into `sink`.
    pub fn drain(&mut self, sink: &mut impl FnMut(&[i16])) {
        self.release(false, sink);
        if let Parked::Held(_) = self.parked {
            self.apply_parked(sink);
            self.release(false, sink);
        }
    }

    /// End of call: releases everything still buffered (same gap rules), and
    /// a key press whose end was never seen becomes a digit.
    pub fn flush(&mut self, sink: &mut impl FnMut(&[i16])) {
        self.release(true, sink);
        if let Parked::Held(_) = self.parked {
            self.apply_parked(sink);
            self.release(true, sink);
        }
        self.dtmf.finish();
    }

    /// The next RFC 4733 digit, in the order received.
    pub fn poll_dtmf(&mut self) -> Option<DtmfEvent> {
        self.dtmf.poll()
    }

    /// Reception counters.
    pub fn stats(&self) -> RxStats {
        self.stats
    }

    /// Samples released so far (the media time written).
    pub fn media_samples(&self) -> u64 {
        self.out.samples
    }

    /// Rate of the PCM released (the first codec's audio rate: 8000, or
    /// 16000 for G.722 and Opus).
    pub fn sample_rate(&self) -> u32 {
        self.out.rate
    }

    /// SSRC of the stream being received, once a packet has been accepted.
    pub fn ssrc(&self) -> Option<u32> {
        match &self.stream {
            Stream::Idle => None,
            Stream::Active(a) => Some(a.ssrc),
        }
    }

    fn malformed(&mut self) -> PushResult {
        self.stats.malformed += 1;
        PushResult::Ignored(IgnoreReason::Malformed)
    }

    fn wrong_pt(&mut self) -> PushResult {
        self.stats.wrong_pt += 1;
        PushResult::Ignored(IgnoreReason::WrongPayloadType)
    }

    fn accepted(&mut self, incoming: &Incoming) -> PushResult {
        match incoming {
            Incoming::Audio(_) => {
                self.stats.audio += 1;
                PushResult::Audio
            }
            Incoming::Event(_) => {
                self.stats.dtmf += 1;
                PushResult::Dtmf
            }
            Incoming::ComfortNoise => {
                self.stats.comfort_noise += 1;
                PushResult::ComfortNoise
            }
            Incoming::Other => self.wrong_pt(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn park(
        &mut self,
        transition: Transition,
        ssrc: u32,
        seq: u16,
        kind: SlotKind,
        ts: u32,
        end: u32,
        payload: &[u8],
        incoming: Incoming,
    ) -> PushResult {
        if let Parked::Held(_) = self.parked {
            self.stats.discarded += 1;
            return PushResult::Ignored(IgnoreReason::Overflow);
        }
        if let Incoming::Event(ev) = incoming {
            // Digits are decoded on arrival, whatever the buffer does.
            if !matches!(transition, Transition::Jump { .. }) {
                self.dtmf.feed(ts, ev);
            }
        }
        self.parked_payload.clear();
        if let SlotKind::Audio(_) = kind {
            self.parked_payload.extend_from_slice(payload);
        }
        self.parked = Parked::Held(Held {
            transition,
            ssrc,
            seq,
            kind,
            ts,
            end,
        });
        self.accepted(&incoming)
    }

    /// Releases head frames that are old enough (or all of them with `all`).
    fn release(&mut self, all: bool, sink: &mut impl FnMut(&[i16])) {
        let Stream::Active(a) = &mut self.stream else {
            return;
        };
        while a.head <= a.highest {
            // Only when the ring is about to run out of slots: a missing
            // frame otherwise waits until a later frame is due (time-based),
            // so a burst loss followed by reordering loses nothing more.
            let force = all || a.highest - a.head >= self.ring.len() - 2;
            let ready = |end: u32| {
                let age = a.newest_end.wrapping_sub(end) as i32;
                age < 0 || age.unsigned_abs() >= self.depth
            };
            let head = a.head;
            let present = self.ring.slot(head).holds(head);
            if present {
                if !force && !ready(self.ring.slot(head).end) {
                    break;
                }
            } else if !force {
                // A missing frame is given up once the next present one is due.
                let next = (head + 1..=a.highest).find(|&e| self.ring.slot(e).holds(e));
                match next {
                    Some(e) if ready(self.ring.slot(e).end) => {}
                    _ => break,
                }
            }
            a.head += 1;
            a.started = true;
            a.history = (a.history << 1) | u64::from(present);
            if !present {
                self.stats.lost += 1;
                continue;
            }
            let slot = self.ring.slot_mut(head);
            let kind = mem::replace(&mut slot.kind, SlotKind::Empty);
            match kind {
                SlotKind::Audio(codec) => {
                    self.out
                        .audio(head, codec, slot.ts, &slot.payload, &mut self.stats, sink)
                }
                SlotKind::Event => self.out.silent_until(slot.ts, slot.end, sink),
                SlotKind::ComfortNoise => self.out.silent_until(slot.ts, slot.ts, sink),
                SlotKind::Other => self.out.other(slot.ts),
                SlotKind::Empty => {}
            }
        }
    }

    /// Handles a parked discontinuity: everything buffered goes out first.
    fn apply_parked(&mut self, sink: &mut impl FnMut(&[i16])) {
        let Parked::Held(h) = mem::replace(&mut self.parked, Parked::Empty) else {
            return;
        };
        self.release(true, sink);
        let Stream::Active(a) = &mut self.stream else {
            return;
        };
        let ext = match h.transition {
            Transition::Jump { ext } => {
                let skipped = ext.saturating_sub(a.head);
                self.stats.lost += skipped;
                a.history = if skipped >= 64 {
                    0
                } else {
                    a.history << skipped
                };
                a.head = ext;
                a.highest = ext;
                ext
            }
            Transition::Restart => {
                if let Timeline::Synced(s) = &mut self.out.timeline {
                    s.last_audio = None;
                }
                *a = Active::new(h.ssrc, h.seq, None);
                a.head
            }
            Transition::NewSsrc => {
                self.out.timeline = Timeline::Unsynced;
                let previous = Previous {
                    ssrc: a.ssrc,
                    highest_seq: a.highest as u16,
                };
                *a = Active::new(h.ssrc, h.seq, Some(previous));
                a.head
            }
        };
        a.newest_end = h.end;
        let slot = self.ring.slot_mut(ext);
        slot.ext = ext;
        slot.kind = h.kind;
        slot.ts = h.ts;
        slot.end = h.end;
        mem::swap(&mut slot.payload, &mut self.parked_payload);
    }
}
