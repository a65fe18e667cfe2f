//! Source latching: which of the datagrams that reach a call's RTP port are
//! the caller's media, and where vmail may send its own.
//!
//! Sans-IO: the shell reports each datagram's source, SSRC, sequence number
//! and whether its payload type is one the call negotiated
//! ([`SourceLatch::on_packet`]), the ACK of the 200 ([`SourceLatch::on_ack`])
//! and re-INVITEs ([`SourceLatch::on_offer`]); time comes in as an argument.
//!
//! # Rules (after Asterisk's `strictrtp` and FreeSWITCH's auto-adjust)
//! - The SDP address is *trusted* when it is usable (not unspecified,
//!   multicast or broadcast, port not 0) and does not look like NAT: a
//!   private, loopback or link-local address while the signalling came from
//!   another kind of address. A packet exactly from a trusted SDP address
//!   latches at once.
//! - Any other stream latches only after it showed continuity: one SSRC and
//!   sequence numbers that go on (small gaps allowed), for [`PROBATION`]
//!   packets when the SDP address is not trusted, and for [`SUSTAIN`] as well
//!   when it is and nothing came from it for [`SILENT`]. When the trusted SDP
//!   address is also the signalling source's IP, only streams from that IP
//!   qualify (another port: a NAT that kept the address, not the port).
//! - Once latched, datagrams from other addresses and other SSRCs are dropped.
//!   A new SSRC from the latched address is followed after [`PROBATION`]
//!   packets in sequence (a phone restarting its stream). Another address
//!   takes over only as a sustained stream after the latched one fell silent
//!   for [`SILENT`], or at once when it is the trusted SDP address.
//! - A re-INVITE naming a new address starts over; the old stream is still
//!   taken until the new one latches.
//!
//! # Where vmail sends
//! Only to an address the caller has shown it owns: the latched source, or
//! the SDP address once the ACK of the 200 came from the signalling source
//! and the SDP address is the signalling source's IP. Otherwise nowhere yet
//! (the shell drops the frames), so a forged INVITE cannot aim vmail's audio
//! at a third party.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Packets in sequence a new stream needs before it is taken.
pub const PROBATION: u16 = 3;
/// How long a stream from another address than the trusted SDP one must
/// last before it is taken.
pub const SUSTAIN: Duration = Duration::from_secs(1);
/// How long the latched stream (or the trusted SDP address) must have been
/// silent before another stream may take over.
pub const SILENT: Duration = Duration::from_secs(2);
/// Streams under probation tracked at once.
const MAX_CANDIDATES: usize = 8;
/// Largest forward sequence step still taken as continuity (lost packets).
const MAX_GAP: u16 = 10;

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The caller's media: into the jitter buffer.
    Accept,
    /// Not the caller's: dropped before the jitter buffer.
    Drop(DropReason),
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Not RTP, or a payload type the call did not negotiate.
    NotMedia,
    /// A stream that has not shown continuity yet (nothing is latched).
    Probation,
    /// Another address than the latched one.
    ForeignSource,
    /// The latched address with an SSRC not (yet) followed.
    ForeignSsrc,
}

/// One stream seen: an address and an SSRC with its sequence run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stream {
    addr: SocketAddr,
    ssrc: u32,
    /// Highest sequence number seen.
    seq: u16,
    /// Packets in sequence so far.
    run: u16,
    /// When the run started.
    since: Instant,
    /// The latest packet.
    last: Instant,
}

impl Stream {
    fn new(now: Instant, addr: SocketAddr, ssrc: u32, seq: u16) -> Self {
        Stream {
            addr,
            ssrc,
            seq,
            run: 1,
            since: now,
            last: now,
        }
    }

    /// Takes a packet of this address: continues the run or restarts it.
    fn observe(&mut self, now: Instant, ssrc: u32, seq: u16) {
        let step = seq.wrapping_sub(self.seq);
        if ssrc != self.ssrc {
            *self = Stream::new(now, self.addr, ssrc, seq);
            return;
        }
        if (1..=MAX_GAP).contains(&step) {
            self.run = self.run.saturating_add(1);
            self.seq = seq;
        } else if step == 0 || step > u16::MAX - MAX_GAP {
            // A duplicate or a reordered packet: neither proves nor breaks.
        } else {
            self.run = 1;
            self.since = now;
            self.seq = seq;
        }
        self.last = now;
    }

    fn proven(&self) -> bool {
        self.run >= PROBATION
    }

    fn sustained(&self, now: Instant) -> bool {
        self.proven() && now.saturating_duration_since(self.since) >= SUSTAIN
    }

    fn silent(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) >= SILENT
    }
}

/// The source latch of one call.
#[derive(Debug, Clone)]
pub struct SourceLatch {
    /// IP address the INVITE came from.
    signalling: IpAddr,
    /// The SDP's media address (`None`: none usable).
    sdp: Option<SocketAddr>,
    /// Whether a packet exactly from `sdp` latches at once.
    trusted: bool,
    /// The latest packet from the trusted SDP address.
    sdp_heard: Option<Instant>,
    /// The ACK of the 200 came from the signalling source.
    acked: bool,
    latched: Option<Stream>,
    /// The stream latched before a re-INVITE moved the media.
    previous: Option<Stream>,
    candidates: Vec<Stream>,
}

impl SourceLatch {
    /// The latch of a call whose offer named `sdp` (`None` when it named no
    /// usable address) and whose INVITE came from `signalling`.
    pub fn new(sdp: Option<SocketAddr>, signalling: IpAddr) -> Self {
        let sdp = sdp.filter(|a| usable(*a));
        // A dual-stack SIP socket reports an IPv4 caller as `::ffff:a.b.c.d`;
        // the SDP names it as IPv4.
        let signalling = signalling.to_canonical();
        SourceLatch {
            signalling,
            sdp,
            trusted: sdp.is_some_and(|a| !looks_like_nat(a.ip(), signalling)),
            sdp_heard: None,
            acked: false,
            latched: None,
            previous: None,
            candidates: Vec::with_capacity(MAX_CANDIDATES),
        }
    }

    /// The ACK of the 200 arrived from the signalling source.
    pub fn on_ack(&mut self) {
        self.acked = true;
    }

    /// A re-INVITE's offer named `sdp` (`None`: no address, as on hold with
    /// `c=0.0.0.0`, which changes nothing). A new address starts latching
    /// over; the stream latched so far is still taken until then.
    pub fn on_offer(&mut self, sdp: Option<SocketAddr>) {
        let Some(addr) = sdp.filter(|a| usable(*a)) else {
            return;
        };
        if self.sdp == Some(addr) {
            return;
        }
        self.sdp = Some(addr);
        self.trusted = !looks_like_nat(addr.ip(), self.signalling);
        self.sdp_heard = None;
        if let Some(l) = self.latched.take() {
            self.previous = Some(l);
        }
        self.candidates.clear();
    }

    /// A datagram from `from` with `ssrc` and `seq`; `media` says whether it
    /// is RTP with a payload type of the call.
    pub fn on_packet(
        &mut self,
        now: Instant,
        from: SocketAddr,
        ssrc: u32,
        seq: u16,
        media: bool,
    ) -> Verdict {
        if !media {
            return Verdict::Drop(DropReason::NotMedia);
        }
        let from_sdp = self.trusted && self.sdp == Some(from);
        if from_sdp {
            self.sdp_heard = Some(now);
        }
        if let Some(l) = self.latched.as_mut() {
            if l.addr == from {
                if l.ssrc == ssrc {
                    l.observe(now, ssrc, seq);
                    return Verdict::Accept;
                }
                // Another SSRC from the latched address: followed once it
                // shows continuity.
                let c = self.candidate(now, from, ssrc, seq);
                if c.is_some_and(|c| c.proven()) {
                    self.latch(c);
                    return Verdict::Accept;
                }
                return Verdict::Drop(DropReason::ForeignSsrc);
            }
            if from_sdp {
                self.latch(Some(Stream::new(now, from, ssrc, seq)));
                return Verdict::Accept;
            }
            let latched_silent = l.silent(now);
            let c = self.candidate(now, from, ssrc, seq);
            if latched_silent
                && self.sdp_silent(now)
                && self.may_take(from)
                && c.is_some_and(|c| c.sustained(now))
            {
                self.latch(c);
                return Verdict::Accept;
            }
            return Verdict::Drop(DropReason::ForeignSource);
        }
        if from_sdp {
            self.latch(Some(Stream::new(now, from, ssrc, seq)));
            return Verdict::Accept;
        }
        let c = self.candidate(now, from, ssrc, seq);
        let takes = c.is_some_and(|c| {
            if self.trusted {
                c.sustained(now) && self.sdp_silent(now) && self.may_take(from)
            } else {
                c.proven()
            }
        });
        if takes {
            self.latch(c);
            return Verdict::Accept;
        }
        match self.previous.as_mut() {
            Some(p) if p.addr == from && p.ssrc == ssrc => {
                p.observe(now, ssrc, seq);
                Verdict::Accept
            }
            _ => Verdict::Drop(DropReason::Probation),
        }
    }

    /// Where vmail may send now (see the module docs).
    pub fn send_to(&self) -> Option<SocketAddr> {
        if let Some(l) = &self.latched {
            return Some(l.addr);
        }
        if let Some(sdp) = self.sdp.filter(|a| self.acked && a.ip() == self.signalling) {
            return Some(sdp);
        }
        self.previous.map(|p| p.addr)
    }

    /// The latched source, if any.
    pub fn latched(&self) -> Option<SocketAddr> {
        self.latched.map(|l| l.addr)
    }

    /// Whether a stream from `from` (not the SDP address) may be latched:
    /// when the SDP address is trusted and is the signalling source's IP,
    /// only from that IP.
    fn may_take(&self, from: SocketAddr) -> bool {
        match self.sdp {
            Some(sdp) if self.trusted && sdp.ip() == self.signalling => from.ip() == sdp.ip(),
            _ => true,
        }
    }

    /// Whether nothing came from the trusted SDP address lately.
    fn sdp_silent(&self, now: Instant) -> bool {
        !self.trusted
            || self
                .sdp_heard
                .is_none_or(|t| now.saturating_duration_since(t) >= SILENT)
    }

    fn latch(&mut self, stream: Option<Stream>) {
        let Some(s) = stream else {
            return;
        };
        self.candidates.retain(|c| c.addr != s.addr);
        self.latched = Some(s);
        self.previous = None;
    }

    /// Tracks the packet's stream among the candidates; `None` when the
    /// table is full of streams that are all proven and alive (a spoofing
    /// flood from many addresses cannot push the caller's out).
    fn candidate(&mut self, now: Instant, from: SocketAddr, ssrc: u32, seq: u16) -> Option<Stream> {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.addr == from) {
            c.observe(now, ssrc, seq);
            return Some(*c);
        }
        let fresh = Stream::new(now, from, ssrc, seq);
        if self.candidates.len() < MAX_CANDIDATES {
            self.candidates.push(fresh);
            return Some(fresh);
        }
        // Replace the stalest unproven (or silent) stream.
        let victim = self
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.proven() || c.silent(now))
            .min_by_key(|(_, c)| c.last)
            .map(|(i, _)| i)?;
        let slot = self.candidates.get_mut(victim)?;
        *slot = fresh;
        Some(fresh)
    }
}

/// Whether media can be sent to `addr` at all.
pub fn usable(addr: SocketAddr) -> bool {
    addr.port() != 0 && usable_ip(addr.ip())
}

/// Whether `ip` is a unicast address media can go to: not unspecified,
/// multicast, broadcast or reserved.
pub fn usable_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || o[0] == 0
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// Private, loopback, link-local, shared (CGNAT) or unique-local.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// An internal media address while the signalling came from outside: the
/// caller is behind NAT and its packets will come from another address.
fn looks_like_nat(media: IpAddr, signalling: IpAddr) -> bool {
    is_internal(media) && !is_internal(signalling)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    struct Sim {
        latch: SourceLatch,
        t0: Instant,
        now: Instant,
    }

    impl Sim {
        fn new(sdp: Option<&str>, signalling: &str) -> Sim {
            let t0 = Instant::now();
            Sim {
                latch: SourceLatch::new(
                    sdp.map(addr),
                    signalling.parse().expect("signalling address"),
                ),
                t0,
                now: t0,
            }
        }

        fn at(&mut self, ms: u64) -> &mut Self {
            self.now = self.t0 + MS * u32::try_from(ms).expect("ms");
            self
        }

        fn packet(&mut self, from: &str, ssrc: u32, seq: u16) -> Verdict {
            self.latch.on_packet(self.now, addr(from), ssrc, seq, true)
        }

        /// A 20 ms stream from `from` for `ms_from..ms_to`; the verdicts.
        fn stream(
            &mut self,
            from: &str,
            ssrc: u32,
            seq0: u16,
            ms_from: u64,
            ms_to: u64,
        ) -> Vec<Verdict> {
            (ms_from..ms_to)
                .step_by(20)
                .enumerate()
                .map(|(i, t)| {
                    self.at(t);
                    let seq = seq0.wrapping_add(u16::try_from(i).expect("seq"));
                    self.packet(from, ssrc, seq)
                })
                .collect()
        }
    }

    const CALLER: &str = "203.0.113.5:4000";
    const ATTACKER: &str = "198.51.100.9:5000";
    const ACCEPT: Verdict = Verdict::Accept;

    #[test]
    fn the_trusted_sdp_address_latches_at_once() {
        let mut s = Sim::new(Some(CALLER), "203.0.113.5");
        assert_eq!(
            s.latch.send_to(),
            None,
            "nothing before the ACK or a packet"
        );
        assert_eq!(s.at(0).packet(CALLER, 1, 100), ACCEPT);
        assert_eq!(s.latch.latched(), Some(addr(CALLER)));
        assert_eq!(s.latch.send_to(), Some(addr(CALLER)));
    }

    #[test]
    fn the_ack_shows_ownership_only_when_the_sdp_ip_is_the_signalling_ip() {
        let mut own = Sim::new(Some(CALLER), "203.0.113.5");
        own.latch.on_ack();
        assert_eq!(own.latch.send_to(), Some(addr(CALLER)));

        let mut third = Sim::new(Some("192.0.2.77:9"), "203.0.113.5");
        third.latch.on_ack();
        assert_eq!(
            third.latch.send_to(),
            None,
            "a third party named in the SDP"
        );
        // The caller's own packets from elsewhere: after probation (the SDP
        // address is trusted, so as a sustained stream).
        let v = third.stream(CALLER, 7, 1, 0, 1200);
        assert!(v[..50].iter().all(|v| *v != ACCEPT), "{v:?}");
        assert_eq!(v.last(), Some(&ACCEPT));
        assert_eq!(third.latch.send_to(), Some(addr(CALLER)));
    }

    #[test]
    fn a_few_packets_from_elsewhere_do_not_take_a_trusted_call() {
        let mut s = Sim::new(Some(CALLER), "203.0.113.5");
        let v = s.stream(ATTACKER, 9, 1, 0, 100);
        assert!(v.iter().all(|v| *v == Verdict::Drop(DropReason::Probation)));
        assert_eq!(s.latch.send_to(), None);
        assert_eq!(s.at(120).packet(CALLER, 1, 500), ACCEPT);
        // The attacker goes on in sequence while the caller talks: dropped.
        for t in (140..5000).step_by(20) {
            let i = u16::try_from(t / 20).expect("seq");
            assert_eq!(s.at(t).packet(CALLER, 1, 500 + i), ACCEPT);
            assert_eq!(
                s.packet(ATTACKER, 9, i),
                Verdict::Drop(DropReason::ForeignSource)
            );
        }
        assert_eq!(s.latch.send_to(), Some(addr(CALLER)));
    }

    #[test]
    fn the_sdp_address_wins_over_a_stream_latched_before_it_spoke() {
        // The SDP address is trusted but signalled from elsewhere (a media
        // gateway apart from the proxy).
        let mut s = Sim::new(Some(CALLER), "192.0.2.200");
        let v = s.stream(ATTACKER, 9, 1, 0, 1500);
        assert_eq!(v.last(), Some(&ACCEPT), "a sustained stream, SDP silent");
        assert_eq!(s.latch.latched(), Some(addr(ATTACKER)));
        assert_eq!(s.at(1500).packet(CALLER, 1, 1), ACCEPT);
        assert_eq!(s.latch.latched(), Some(addr(CALLER)));
        assert_eq!(
            s.at(1510).packet(ATTACKER, 9, 80),
            Verdict::Drop(DropReason::ForeignSource)
        );
    }

    #[test]
    fn an_owned_sdp_address_is_never_left_for_another_ip() {
        // SDP address on the signalling IP: a stream from another IP never
        // latches, however long; one from the same IP (NAT that changed
        // the port) does once the SDP address stays silent.
        let mut s = Sim::new(Some(CALLER), "203.0.113.5");
        let v = s.stream(ATTACKER, 9, 1, 0, 10_000);
        assert!(v.iter().all(|v| *v != ACCEPT));
        let v = s.stream("203.0.113.5:4444", 9, 1, 10_000, 12_000);
        assert_eq!(v.last(), Some(&ACCEPT));
        assert_eq!(s.latch.send_to(), Some(addr("203.0.113.5:4444")));
    }

    #[test]
    fn behind_nat_a_stream_in_sequence_latches_after_probation() {
        // Private SDP address, signalling from a public one.
        let mut s = Sim::new(Some("192.168.1.20:4000"), "203.0.113.5");
        assert_eq!(
            s.at(0).packet(CALLER, 3, 10),
            Verdict::Drop(DropReason::Probation)
        );
        assert_eq!(
            s.at(20).packet(CALLER, 3, 11),
            Verdict::Drop(DropReason::Probation)
        );
        assert_eq!(s.at(40).packet(CALLER, 3, 12), ACCEPT);
        assert_eq!(s.latch.send_to(), Some(addr(CALLER)));
        // A reordered or duplicate packet of the latched stream is still its.
        assert_eq!(s.at(60).packet(CALLER, 3, 11), ACCEPT);
    }

    #[test]
    fn random_ssrcs_and_sequence_numbers_never_latch() {
        let mut s = Sim::new(Some("192.168.1.20:4000"), "203.0.113.5");
        let mut x: u32 = 0x1234_5678;
        for i in 0..600u64 {
            // xorshift: a new SSRC and a random sequence number each time.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let seq = (x >> 16) as u16;
            assert_ne!(s.at(i).packet(ATTACKER, x, seq), ACCEPT, "packet {i}");
        }
        assert_eq!(s.latch.latched(), None);
    }

    #[test]
    fn once_latched_other_sources_and_ssrcs_are_dropped() {
        let mut s = Sim::new(Some(CALLER), "203.0.113.5");
        assert!(s.stream(CALLER, 1, 1, 0, 200).iter().all(|v| *v == ACCEPT));
        let mut x: u32 = 99;
        for i in 0..600u16 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let v = s.at(200).packet(CALLER, x, i.wrapping_mul(7919));
            assert_eq!(v, Verdict::Drop(DropReason::ForeignSsrc));
            assert_eq!(
                s.packet("203.0.113.5:4002", 1, 11 + i),
                Verdict::Drop(DropReason::ForeignSource),
                "same IP, another port"
            );
        }
        // The caller's stream is untouched.
        assert_eq!(s.at(220).packet(CALLER, 1, 11), ACCEPT);
    }

    #[test]
    fn a_new_ssrc_from_the_latched_address_is_followed_in_sequence() {
        let mut s = Sim::new(Some(CALLER), "203.0.113.5");
        assert_eq!(s.at(0).packet(CALLER, 1, 1), ACCEPT);
        assert_eq!(
            s.at(20).packet(CALLER, 2, 700),
            Verdict::Drop(DropReason::ForeignSsrc)
        );
        assert_eq!(
            s.at(40).packet(CALLER, 2, 701),
            Verdict::Drop(DropReason::ForeignSsrc)
        );
        assert_eq!(s.at(60).packet(CALLER, 2, 702), ACCEPT);
        assert_eq!(
            s.at(80).packet(CALLER, 1, 2),
            Verdict::Drop(DropReason::ForeignSsrc)
        );
        assert_eq!(s.at(80).packet(CALLER, 2, 703), ACCEPT);
    }

    #[test]
    fn another_stream_takes_over_only_after_the_latched_one_fell_silent() {
        let mut s = Sim::new(Some("10.0.0.8:4000"), "203.0.113.5");
        assert_eq!(s.stream(CALLER, 1, 1, 0, 100).last(), Some(&ACCEPT));
        // Both talk: the other never takes over.
        for t in (100..3000).step_by(20) {
            let i = u16::try_from(t / 20).expect("seq");
            assert_eq!(s.at(t).packet(CALLER, 1, i), ACCEPT);
            assert_ne!(s.packet(ATTACKER, 5, i), ACCEPT);
        }
        // The caller falls silent (it moved, NAT rebinding): the sustained
        // stream takes over once the old one has been silent long enough.
        let v = s.stream("203.0.113.5:4100", 1, 200, 3000, 6000);
        let first = v.iter().position(|v| *v == ACCEPT).expect("taken over");
        let at = 3000 + first as u64 * 20;
        assert!(at >= 2980 + 2000, "taken over at {at} ms");
        assert_eq!(s.latch.latched(), Some(addr("203.0.113.5:4100")));
    }

    #[test]
    fn a_reinvite_to_a_new_address_moves_sending_and_relatches() {
        let new = "203.0.113.5:4200";
        let mut s = Sim::new(Some(CALLER), "203.0.113.5");
        s.latch.on_ack();
        assert_eq!(s.at(0).packet(CALLER, 1, 1), ACCEPT);
        s.latch.on_offer(Some(addr(new)));
        assert_eq!(s.latch.send_to(), Some(addr(new)), "owned: same IP, acked");
        // The old stream is still taken until the new one arrives.
        assert_eq!(s.at(20).packet(CALLER, 1, 2), ACCEPT);
        assert_eq!(s.at(40).packet(new, 8, 1), ACCEPT);
        assert_eq!(s.latch.latched(), Some(addr(new)));
        assert_eq!(
            s.at(60).packet(CALLER, 1, 3),
            Verdict::Drop(DropReason::ForeignSource)
        );
        // Hold (no address) and resume to the same address change nothing.
        s.latch.on_offer(None);
        s.latch.on_offer(Some(addr(new)));
        assert_eq!(s.latch.latched(), Some(addr(new)));
    }

    #[test]
    fn a_reinvite_naming_another_ip_sends_on_to_the_old_stream_until_relatched() {
        let mut s = Sim::new(Some(CALLER), "203.0.113.5");
        s.latch.on_ack();
        assert_eq!(s.at(0).packet(CALLER, 1, 1), ACCEPT);
        s.latch.on_offer(Some(addr("192.0.2.1:7000")));
        assert_eq!(s.latch.send_to(), Some(addr(CALLER)));
        assert_eq!(s.at(20).packet("192.0.2.1:7000", 4, 1), ACCEPT);
        assert_eq!(s.latch.send_to(), Some(addr("192.0.2.1:7000")));
    }

    #[test]
    fn packets_of_other_payload_types_never_count() {
        let mut s = Sim::new(Some("10.0.0.8:4000"), "203.0.113.5");
        for i in 0..10u16 {
            let v = s.latch.on_packet(s.now, addr(CALLER), 1, i, false);
            assert_eq!(v, Verdict::Drop(DropReason::NotMedia));
        }
        assert_eq!(s.latch.latched(), None);
    }

    #[test]
    fn a_flood_from_many_addresses_does_not_push_the_caller_out_of_probation() {
        let mut s = Sim::new(None, "203.0.113.5");
        assert_ne!(s.at(0).packet(CALLER, 1, 1), ACCEPT);
        assert_ne!(s.at(20).packet(CALLER, 1, 2), ACCEPT);
        for p in 0..100u16 {
            let a = format!("198.51.100.{}:{}", p % 250, 6000 + p);
            assert_ne!(s.at(30).packet(&a, u32::from(p), p), ACCEPT);
        }
        // The caller's candidate (two in sequence) may have been replaced by
        // then, being unproven; it starts again and passes.
        let v = s.stream(CALLER, 1, 3, 40, 200);
        assert!(v.contains(&ACCEPT));
        assert_eq!(s.latch.latched(), Some(addr(CALLER)));
    }

    #[test]
    fn unusable_addresses() {
        for bad in [
            "0.0.0.0:4000",
            "224.0.0.1:4000",
            "239.1.2.3:4000",
            "255.255.255.255:4000",
            "240.0.0.1:4000",
            "[ff02::1]:4000",
            "[::]:4000",
            "203.0.113.5:0",
        ] {
            assert!(!usable(addr(bad)), "{bad}");
            let s = SourceLatch::new(Some(addr(bad)), "203.0.113.5".parse().expect("ip"));
            assert!(!s.trusted);
        }
        assert!(usable(addr("127.0.0.1:4000")));
        assert!(usable(addr("[2001:db8::1]:4000")));
    }

    #[test]
    fn nat_detection() {
        let public: IpAddr = "203.0.113.5".parse().expect("ip");
        let private: IpAddr = "10.1.1.1".parse().expect("ip");
        assert!(looks_like_nat("192.168.0.2".parse().expect("ip"), public));
        assert!(looks_like_nat("100.64.3.3".parse().expect("ip"), public));
        assert!(looks_like_nat("127.0.0.1".parse().expect("ip"), public));
        assert!(!looks_like_nat("192.168.0.2".parse().expect("ip"), private));
        assert!(!looks_like_nat(
            "127.0.0.1".parse().expect("ip"),
            "127.0.0.1".parse().expect("ip")
        ));
        assert!(!looks_like_nat("198.51.100.1".parse().expect("ip"), public));
    }

    #[test]
    fn an_ipv4_mapped_signalling_address_is_the_sdp_ipv4_address() {
        let sdp: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let mut l = SourceLatch::new(Some(sdp), "::ffff:192.0.2.7".parse().unwrap());
        l.on_ack();
        assert_eq!(l.send_to(), Some(sdp));
    }
}
