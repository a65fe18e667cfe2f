//! The audio codecs of the RTP path: G.711 (PCMU / PCMA, bit-exact through
//! `audio-codec-algorithms`), G.722 (`audio-codec`), G.729 with annex B
//! (`g729-sys`) and Opus (libopus through `opus`).
//!
//! G.711 is stateless ([`encode`] / [`decode`]); every codec, G.711
//! included, has a per-call state in [`AudioDecoder`] and [`AudioEncoder`],
//! which also know the RTP duration of a payload and, for Opus, conceal
//! lost frames (in-band FEC, else the decoder's loss concealment).

use audio_codec_algorithms::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};

/// Audio codecs vmail decodes and encodes on the RTP path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (static payload type 0).
    Pcmu,
    /// G.711 A-law (static payload type 8).
    Pcma,
    /// G.722 (static payload type 9; 16 kHz audio on an 8000 Hz RTP clock).
    G722,
    /// G.729 (static payload type 18; 10 ms frames of 10 bytes, annex B
    /// SID frames of 2 bytes).
    G729,
    /// Opus (RFC 7587: dynamic payload type, 48000 Hz RTP clock); vmail
    /// decodes and encodes it as 16 kHz mono.
    Opus,
}

/// Every codec, in vmail's default order of preference.
pub const ALL_CODECS: [Codec; 5] = [
    Codec::Opus,
    Codec::G722,
    Codec::Pcma,
    Codec::Pcmu,
    Codec::G729,
];

/// Opus payload type used when none was negotiated (tests, benchmarks).
pub const DEFAULT_OPUS_PT: u8 = 111;

impl Codec {
    /// The static RTP payload type (RFC 3551); Opus, which has none, gets
    /// [`DEFAULT_OPUS_PT`].
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
            Codec::G729 => 18,
            Codec::Opus => DEFAULT_OPUS_PT,
        }
    }

    /// The codec of a static payload type, if it is one of ours.
    pub const fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            9 => Some(Codec::G722),
            18 => Some(Codec::G729),
            _ => None,
        }
    }

    /// The SDP `a=rtpmap` encoding name (also the name `ext.codecs` uses).
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::G729 => "G729",
            Codec::Opus => "opus",
        }
    }

    /// The codec for an SDP encoding name (case-insensitive).
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        ALL_CODECS
            .into_iter()
            .find(|c| name.eq_ignore_ascii_case(c.encoding_name()))
    }

    /// RTP clock rate (timestamp units per second): 8000, 48000 for Opus.
    pub const fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48000,
            _ => 8000,
        }
    }

    /// Rate of the audio vmail decodes to and encodes from: 16000 for
    /// G.722 and Opus (wideband), 8000 for the others.
    pub const fn sample_rate(self) -> u32 {
        match self {
            Codec::G722 | Codec::Opus => 16000,
            _ => 8000,
        }
    }

    /// RTP timestamp units for `samples` samples at [`Codec::sample_rate`].
    pub const fn ticks(self, samples: u32) -> u32 {
        match self {
            Codec::G722 => samples / 2,
            Codec::Opus => samples.saturating_mul(3),
            _ => samples,
        }
    }

    /// Encodes one linear sample (G.711; other codecs give 0).
    #[inline]
    pub fn encode_sample(self, s: i16) -> u8 {
        match self {
            Codec::Pcmu => encode_ulaw(s),
            Codec::Pcma => encode_alaw(s),
            _ => 0,
        }
    }

    /// Decodes one G.711 byte (other codecs give 0).
    #[inline]
    pub fn decode_sample(self, b: u8) -> i16 {
        match self {
            Codec::Pcmu => decode_ulaw(b),
            Codec::Pcma => decode_alaw(b),
            _ => 0,
        }
    }
}

/// G.711: encodes `pcm` into `out`; returns the number of bytes written
/// (`min(pcm.len(), out.len())`, one byte per sample). Other codecs keep
/// state: use [`AudioEncoder`] (this writes nothing for them).
pub fn encode(codec: Codec, pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    match codec {
        Codec::Pcmu => {
            for (o, &s) in out.iter_mut().zip(pcm) {
                *o = encode_ulaw(s);
            }
        }
        Codec::Pcma => {
            for (o, &s) in out.iter_mut().zip(pcm) {
                *o = encode_alaw(s);
            }
        }
        _ => return 0,
    }
    n
}

/// G.711: decodes `payload` into `out`; returns the number of samples
/// written (`min(payload.len(), out.len())`). Other codecs keep state: use
/// [`AudioDecoder`] (this writes nothing for them).
pub fn decode(codec: Codec, payload: &[u8], out: &mut [i16]) -> usize {
    let n = payload.len().min(out.len());
    match codec {
        Codec::Pcmu => {
            for (o, &b) in out.iter_mut().zip(payload) {
                *o = decode_ulaw(b);
            }
        }
        Codec::Pcma => {
            for (o, &b) in out.iter_mut().zip(payload) {
                *o = decode_alaw(b);
            }
        }
        _ => return 0,
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_idempotent_on_codewords() {
        // decode(encode(decode(b))) == decode(b) for every code word.
        for codec in [Codec::Pcmu, Codec::Pcma] {
            for b in 0..=255u8 {
                let s = codec.decode_sample(b);
                let s2 = codec.decode_sample(codec.encode_sample(s));
                assert_eq!(s, s2, "{codec:?} byte {b:#x}");
            }
        }
    }

    #[test]
    fn round_trip_error_is_small() {
        let pcm: Vec<i16> = (-32768..=32767).step_by(97).map(|v| v as i16).collect();
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut enc = vec![0u8; pcm.len()];
            let mut dec = vec![0i16; pcm.len()];
            assert_eq!(encode(codec, &pcm, &mut enc), pcm.len());
            assert_eq!(decode(codec, &enc, &mut dec), pcm.len());
            for (&a, &b) in pcm.iter().zip(&dec) {
                let err = (i32::from(a) - i32::from(b)).abs();
                // G.711 quantisation step is at most 1/16 of the magnitude (+ small floor).
                assert!(err <= i32::from(a).abs() / 16 + 64, "{codec:?} {a} -> {b}");
            }
        }
    }

    #[test]
    fn known_code_words() {
        // µ-law 0xFF and A-law 0xD5 are the (near) zero code words.
        assert_eq!(Codec::Pcmu.decode_sample(0xFF), 0);
        assert_eq!(Codec::Pcmu.encode_sample(0), 0xFF);
        assert_eq!(Codec::Pcma.encode_sample(0), 0xD5);
        assert!(Codec::Pcma.decode_sample(0xD5).abs() <= 8);
    }

    #[test]
    fn short_output_buffers_are_respected() {
        let mut out = [0u8; 3];
        assert_eq!(encode(Codec::Pcmu, &[1, 2, 3, 4, 5], &mut out), 3);
        let mut pcm = [0i16; 2];
        assert_eq!(decode(Codec::Pcma, &[0xD5; 5], &mut pcm), 2);
    }

    #[test]
    fn names_and_payload_types() {
        assert_eq!(Codec::from_encoding_name("pcmu"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_encoding_name("PCMA"), Some(Codec::Pcma));
        assert_eq!(Codec::from_encoding_name("g722"), Some(Codec::G722));
        assert_eq!(Codec::from_encoding_name("OPUS"), Some(Codec::Opus));
        assert_eq!(Codec::from_encoding_name("iLBC"), None);
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::Pcmu.static_payload_type(), 0);
        assert_eq!(Codec::Pcma.encoding_name(), "PCMA");
    }
}
