//! G.711 (PCMU / PCMA) sample conversion, bit-exact through the
//! `audio-codec-algorithms` crate.

use audio_codec_algorithms::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};

/// Audio codecs vmail decodes and encodes on the RTP path (G.711, 8 kHz).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law (static payload type 0).
    Pcmu,
    /// G.711 A-law (static payload type 8).
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551): 0 for PCMU, 8 for PCMA.
    pub const fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec of a static payload type, if it is one of ours.
    pub const fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The SDP `a=rtpmap` encoding name.
    pub const fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec for an SDP encoding name (case-insensitive).
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// RTP clock rate (samples per second).
    pub const fn clock_rate(self) -> u32 {
        8000
    }

    /// Encodes one linear sample.
    #[inline]
    pub fn encode_sample(self, s: i16) -> u8 {
        match self {
            Codec::Pcmu => encode_ulaw(s),
            Codec::Pcma => encode_alaw(s),
        }
    }

    /// Decodes one G.711 byte.
    #[inline]
    pub fn decode_sample(self, b: u8) -> i16 {
        match self {
            Codec::Pcmu => decode_ulaw(b),
            Codec::Pcma => decode_alaw(b),
        }
    }
}

/// Encodes `pcm` into `out`; returns the number of bytes written
/// (`min(pcm.len(), out.len())`, one byte per sample).
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
    }
    n
}

/// Decodes `payload` into `out`; returns the number of samples written
/// (`min(payload.len(), out.len())`).
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
        assert_eq!(Codec::from_encoding_name("G722"), None);
        assert_eq!(Codec::from_static_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::Pcmu.static_payload_type(), 0);
        assert_eq!(Codec::Pcma.encoding_name(), "PCMA");
    }
}
