//! RTP packet writing for prompts and beeps (any of vmail's codecs, RFC
//! 3550 header).

use super::codec::Codec;
use super::coder::{AudioEncoder, OpusParams};

/// RTP fixed header length (no CSRC, no extension).
pub const RTP_HEADER_LEN: usize = 12;

/// Builds the outgoing RTP stream of one call into an internal buffer.
///
/// The marker bit is set on the first packet after [`RtpPacketizer::new`] and
/// after [`RtpPacketizer::skip`] (start of a talkspurt), and whenever the
/// caller asks for it.
#[derive(Debug)]
pub struct RtpPacketizer {
    pt: u8,
    encoder: AudioEncoder,
    opus: OpusParams,
    ssrc: u32,
    seq: u16,
    ts: u32,
    talkspurt_start: bool,
    buf: Vec<u8>,
}

impl RtpPacketizer {
    /// A stream starting at the given (caller-randomised) SSRC, sequence number and timestamp.
    pub fn new(pt: u8, codec: Codec, ssrc: u32, seq: u16, ts: u32) -> Self {
        RtpPacketizer {
            pt: pt & 0x7f,
            encoder: AudioEncoder::new(codec, &OpusParams::default()),
            opus: OpusParams::default(),
            ssrc,
            seq,
            ts,
            talkspurt_start: true,
            // 20 ms of G.711 after the header; grows once for longer payloads.
            buf: Vec::with_capacity(RTP_HEADER_LEN + 160),
        }
    }

    /// Same with random SSRC, sequence number and timestamp (RFC 3550 §5.1).
    pub fn new_random(pt: u8, codec: Codec) -> Self {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        Self::new(pt, codec, rng.gen(), rng.gen(), rng.gen())
    }

    /// Encodes Opus as the peer's fmtp asked (`maxplaybackrate`,
    /// `useinbandfec`).
    pub fn with_opus(mut self, opus: OpusParams) -> Self {
        self.opus = opus;
        self.encoder = AudioEncoder::new(self.encoder.codec(), &opus);
        self
    }

    /// Writes one packet carrying `pcm` (at the codec's
    /// [`Codec::sample_rate`]) and returns it. Sequence number advances by
    /// one, timestamp by the RTP time of `pcm`.
    pub fn packetize(&mut self, pcm: &[i16], marker: bool) -> &[u8] {
        let marker = marker || self.talkspurt_start;
        self.talkspurt_start = false;
        self.buf.clear();
        self.buf.push(0x80); // V=2, no padding, no extension, no CSRC
        self.buf.push(self.pt | if marker { 0x80 } else { 0 });
        self.buf.extend_from_slice(&self.seq.to_be_bytes());
        self.buf.extend_from_slice(&self.ts.to_be_bytes());
        self.buf.extend_from_slice(&self.ssrc.to_be_bytes());
        self.encoder.encode(pcm, &mut self.buf);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.codec().ticks(pcm.len() as u32));
        &self.buf
    }

    /// Advances the timestamp by the RTP time of `samples` samples (at the
    /// codec's rate) without sending (a pause); the next packet starts a
    /// talkspurt and carries the marker bit.
    pub fn skip(&mut self, samples: u32) {
        self.ts = self.ts.wrapping_add(self.codec().ticks(samples));
        self.talkspurt_start = true;
    }

    /// Switches payload type and codec (re-INVITE); the stream continues.
    pub fn set_codec(&mut self, pt: u8, codec: Codec) {
        self.pt = pt & 0x7f;
        if codec != self.codec() {
            self.encoder = AudioEncoder::new(codec, &self.opus);
        }
    }

    /// SSRC of this stream.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number of the next packet.
    pub fn seq(&self) -> u16 {
        self.seq
    }

    /// Timestamp of the next packet.
    pub fn timestamp(&self) -> u32 {
        self.ts
    }

    /// The codec being sent.
    pub fn codec(&self) -> Codec {
        self.encoder.codec()
    }

    /// Rate of the PCM [`RtpPacketizer::packetize`] takes.
    pub fn sample_rate(&self) -> u32 {
        self.encoder.codec().sample_rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    #[test]
    fn header_fields_advance() {
        let mut p = RtpPacketizer::new(8, Codec::Pcma, 0xdead_beef, 65535, u32::MAX - 100);
        let pcm = [0i16; 160];
        let pkt = p.packetize(&pcm, false).to_vec();
        let r = RtpReader::new(&pkt).unwrap();
        assert_eq!(r.version(), 2);
        assert_eq!(r.payload_type(), 8);
        assert!(r.mark(), "first packet starts a talkspurt");
        assert_eq!(u16::from(r.sequence_number()), 65535);
        assert_eq!(r.timestamp(), u32::MAX - 100);
        assert_eq!(r.ssrc(), 0xdead_beef);
        assert_eq!(r.payload(), &[0xD5u8; 160][..]);

        let pkt = p.packetize(&pcm, false).to_vec();
        let r = RtpReader::new(&pkt).unwrap();
        assert!(!r.mark());
        assert_eq!(u16::from(r.sequence_number()), 0);
        assert_eq!(r.timestamp(), 59);

        p.skip(800);
        let pkt = p.packetize(&pcm[..80], false).to_vec();
        let r = RtpReader::new(&pkt).unwrap();
        assert!(r.mark(), "after a pause");
        assert_eq!(u16::from(r.sequence_number()), 1);
        assert_eq!(r.timestamp(), 59 + 160 + 800);
        assert_eq!(pkt.len(), RTP_HEADER_LEN + 80);
        assert_eq!(p.timestamp(), 59 + 160 + 800 + 80);

        let pkt = p.packetize(&pcm, true).to_vec();
        assert!(RtpReader::new(&pkt).unwrap().mark(), "caller asked");
    }

    #[test]
    fn random_start_values_differ() {
        let a = RtpPacketizer::new_random(0, Codec::Pcmu);
        let b = RtpPacketizer::new_random(0, Codec::Pcmu);
        assert!(a.ssrc() != b.ssrc() || a.seq() != b.seq() || a.timestamp() != b.timestamp());
    }
}
