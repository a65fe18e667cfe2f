//! Per-call codec state: [`AudioDecoder`] for what the caller sends,
//! [`AudioEncoder`] for what vmail plays.

use std::fmt;

use audio_codec::g722::{G722Decoder, G722Encoder};
use audio_codec::{Decoder as _, Encoder as _};

use super::codec::{decode, encode, Codec};

/// G.729: samples (8 kHz) and bytes of one 10 ms frame, bytes of an
/// annex B SID frame.
const G729_FRAME: usize = 80;
const G729_BYTES: usize = 10;
const G729_SID_BYTES: usize = 2;

/// Opus: the decoder and encoder run at 16 kHz mono; 2.5 ms (the smallest
/// Opus frame) and 120 ms (the largest packet) at that rate.
const OPUS_RATE: u32 = 16000;
const OPUS_MIN_FRAME: usize = 40;
const OPUS_MAX_PACKET_SAMPLES: usize = 1920;
/// The Opus encoder's complexity (0-10).
const OPUS_COMPLEXITY: i32 = 3;
/// Gaps longer than this are silence, not concealment (DTX, long loss).
const OPUS_MAX_CONCEAL: usize = 3200;

/// What the peer's Opus `a=fmtp` asks of the stream vmail sends (RFC 7587
/// §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusParams {
    /// `maxplaybackrate`: the highest rate the peer renders (Hz).
    pub max_playback_rate: u32,
    /// `useinbandfec=1`: the peer decodes in-band FEC, so vmail adds it.
    pub peer_uses_fec: bool,
    /// `stereo=1`: the peer prefers stereo; vmail sends mono, which every
    /// Opus decoder renders (RFC 7587 §7.1).
    pub stereo: bool,
}

impl Default for OpusParams {
    fn default() -> Self {
        OpusParams {
            max_playback_rate: 48000,
            peer_uses_fec: false,
            stereo: false,
        }
    }
}

enum Dec {
    G711,
    G722(Box<G722Decoder>),
    G729(Box<g729_sys::Decoder>),
    Opus(Box<opus::Decoder>),
    /// The codec's state could not be made (logged): output is silence.
    Unavailable,
}

/// Decodes one call's received payloads to PCM at the codec's
/// [`Codec::sample_rate`].
pub struct AudioDecoder {
    codec: Codec,
    dec: Dec,
    /// G.729: annex B SID frames are taken (comfort noise).
    annexb: bool,
    buf: Vec<i16>,
}

impl fmt::Debug for AudioDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioDecoder")
            .field("codec", &self.codec)
            .field("annexb", &self.annexb)
            .finish()
    }
}

impl AudioDecoder {
    /// A decoder for `codec`; `annexb` says whether G.729 SID frames are
    /// expected (`annexb=yes`, the default of RFC 4856).
    pub fn new(codec: Codec, annexb: bool) -> Self {
        let dec = match codec {
            Codec::Pcmu | Codec::Pcma => Dec::G711,
            Codec::G722 => Dec::G722(Box::new(G722Decoder::new())),
            Codec::G729 => Dec::G729(Box::new(g729_sys::Decoder::new())),
            Codec::Opus => match opus::Decoder::new(OPUS_RATE, opus::Channels::Mono) {
                Ok(d) => Dec::Opus(Box::new(d)),
                Err(e) => {
                    tracing::error!("cannot create an Opus decoder: {e}");
                    Dec::Unavailable
                }
            },
        };
        AudioDecoder {
            codec,
            dec,
            annexb,
            buf: vec![0; OPUS_MAX_PACKET_SAMPLES],
        }
    }

    /// The codec decoded.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Rate of the PCM written (8000 or 16000).
    pub fn sample_rate(&self) -> u32 {
        self.codec.sample_rate()
    }

    /// RTP timestamp units a payload covers; `None` when it cannot be one
    /// of this codec (empty, a G.729 length that is no frame sequence, a
    /// SID frame under `annexb=no`, an invalid Opus packet).
    pub fn ticks(&self, payload: &[u8]) -> Option<u32> {
        if payload.is_empty() {
            return None;
        }
        match self.codec {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => u32::try_from(payload.len()).ok(),
            Codec::G729 => {
                let frames = payload.len() / G729_BYTES;
                let sid = match payload.len() % G729_BYTES {
                    0 => 0,
                    G729_SID_BYTES if self.annexb => 1,
                    _ => return None,
                };
                u32::try_from((frames + sid) * G729_FRAME).ok()
            }
            Codec::Opus => opus::packet::get_nb_samples(payload, 48000)
                .ok()
                .filter(|&n| n > 0 && n <= 5760)
                .and_then(|n| u32::try_from(n).ok()),
        }
    }

    /// Decodes `payload` (already checked with [`AudioDecoder::ticks`]),
    /// appending its PCM to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        let want = self.ticks(payload).map_or(0, |t| self.samples_for(t));
        let start = out.len();
        match &mut self.dec {
            Dec::G711 => {
                out.resize(start + payload.len(), 0);
                decode(self.codec, payload, &mut out[start..]);
            }
            Dec::G722(d) => {
                out.resize(start + payload.len() * 2, 0);
                let n = d.decode_into(payload, &mut out[start..]).unwrap_or(0);
                out.truncate(start + n);
            }
            Dec::G729(d) => {
                let mut rest = payload;
                while !rest.is_empty() {
                    let (frame, sid) = if rest.len() >= G729_BYTES {
                        (&rest[..G729_BYTES], false)
                    } else {
                        (rest, true)
                    };
                    out.extend_from_slice(&d.decode(frame, false, sid, false));
                    rest = &rest[frame.len()..];
                }
            }
            Dec::Opus(d) => match d.decode(payload, &mut self.buf, false) {
                Ok(n) => out.extend_from_slice(&self.buf[..n.min(self.buf.len())]),
                Err(e) => tracing::debug!("undecodable Opus packet: {e}"),
            },
            Dec::Unavailable => {}
        }
        // Whatever happened, the payload's media time is written.
        out.resize(start + want, 0);
    }

    /// Fills `ticks` of lost media before `next` (the first packet after
    /// the loss, when one is there), appending PCM to `out`. Opus uses the
    /// in-band FEC `next` carries for its last frame and the decoder's
    /// loss concealment for the rest; the other codecs, and gaps too long
    /// to conceal, write silence.
    pub fn conceal(&mut self, ticks: u32, next: Option<&[u8]>, out: &mut Vec<i16>) {
        let total = self.samples_for(ticks);
        let start = out.len();
        if let Dec::Opus(d) = &mut self.dec {
            if total <= OPUS_MAX_CONCEAL {
                // The FEC of `next` covers the frame just before it.
                let fec = next
                    .and_then(|p| opus::packet::get_nb_samples(p, OPUS_RATE).ok())
                    .map_or(0, |n| n.min(total) / OPUS_MIN_FRAME * OPUS_MIN_FRAME);
                let mut plc = (total - fec) / OPUS_MIN_FRAME * OPUS_MIN_FRAME;
                while plc > 0 {
                    let n = plc.min(OPUS_MAX_PACKET_SAMPLES);
                    match d.decode(&[], &mut self.buf[..n], false) {
                        Ok(got) => out.extend_from_slice(&self.buf[..got.min(n)]),
                        Err(_) => break,
                    }
                    plc -= n;
                }
                // Rounding leftovers (and anything the decoder did not
                // give) are silence, before the FEC frame.
                out.resize(start + total - fec, 0);
                if let (Some(p), true) = (next, fec > 0) {
                    match d.decode(p, &mut self.buf[..fec], true) {
                        Ok(got) => out.extend_from_slice(&self.buf[..got.min(fec)]),
                        Err(e) => tracing::debug!("Opus FEC decode failed: {e}"),
                    }
                }
            }
        }
        out.resize(start + total, 0);
    }

    /// Output samples for `ticks` RTP timestamp units.
    pub fn samples_for(&self, ticks: u32) -> usize {
        let t = ticks as usize;
        match self.codec {
            Codec::G722 => t * 2,
            Codec::Opus => t / 3,
            _ => t,
        }
    }
}

enum Enc {
    G711,
    G722(Box<G722Encoder>),
    G729(Box<g729_sys::Encoder>),
    Opus(Box<opus::Encoder>),
    Unavailable,
}

/// Encodes the PCM vmail plays (at the codec's [`Codec::sample_rate`]).
pub struct AudioEncoder {
    codec: Codec,
    enc: Enc,
}

impl fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioEncoder")
            .field("codec", &self.codec)
            .finish()
    }
}

impl AudioEncoder {
    /// An encoder for `codec`; `opus` is what the peer's fmtp asked for.
    /// G.729 is sent without annex B: every frame is a voice frame, which
    /// any G.729 decoder takes whatever `annexb` says.
    pub fn new(codec: Codec, opus: &OpusParams) -> Self {
        let enc = match codec {
            Codec::Pcmu | Codec::Pcma => Enc::G711,
            Codec::G722 => Enc::G722(Box::new(G722Encoder::new())),
            Codec::G729 => Enc::G729(Box::new(g729_sys::Encoder::new(false))),
            Codec::Opus => match opus_encoder(opus) {
                Ok(e) => Enc::Opus(Box::new(e)),
                Err(e) => {
                    tracing::error!("cannot create an Opus encoder: {e}");
                    Enc::Unavailable
                }
            },
        };
        AudioEncoder { codec, enc }
    }

    /// The codec encoded.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Rate of the PCM to hand to [`AudioEncoder::encode`].
    pub fn sample_rate(&self) -> u32 {
        self.codec.sample_rate()
    }

    /// Encodes one frame of `pcm` (a whole packet's worth: 10 ms multiples
    /// for G.729, an Opus frame size for Opus), appending the payload to
    /// `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let start = out.len();
        match &mut self.enc {
            Enc::G711 => {
                out.resize(start + pcm.len(), 0);
                encode(self.codec, pcm, &mut out[start..]);
            }
            Enc::G722(e) => {
                out.resize(start + pcm.len() / 2 + 1, 0);
                let n = e.encode_into(pcm, &mut out[start..]).unwrap_or(0);
                out.truncate(start + n);
            }
            Enc::G729(e) => {
                let mut frame = [0i16; G729_FRAME];
                let mut bytes = [0u8; G729_BYTES];
                for chunk in pcm.chunks(G729_FRAME) {
                    frame.fill(0);
                    frame[..chunk.len()].copy_from_slice(chunk);
                    let n = usize::from(e.encode_into(&frame, &mut bytes));
                    out.extend_from_slice(&bytes[..n.min(G729_BYTES)]);
                }
            }
            Enc::Opus(e) => {
                out.resize(start + 1500, 0);
                match e.encode(pcm, &mut out[start..]) {
                    Ok(n) => out.truncate(start + n),
                    Err(err) => {
                        tracing::debug!("Opus encode failed: {err}");
                        out.truncate(start);
                    }
                }
            }
            Enc::Unavailable => {}
        }
    }
}

fn opus_encoder(p: &OpusParams) -> Result<opus::Encoder, opus::Error> {
    let mut e = opus::Encoder::new(OPUS_RATE, opus::Channels::Mono, opus::Application::Voip)?;
    // Prompts are speech: 24 kbit/s is transparent wideband speech.
    e.set_bitrate(opus::Bitrate::Bits(24000))?;
    // Complexity 10 (the default) costs about 280 µs per 20 ms frame, 3
    // under a third of that, for speech prompts (docs/performance.md).
    e.set_complexity(OPUS_COMPLEXITY)?;
    if p.peer_uses_fec {
        e.set_inband_fec(true)?;
        e.set_packet_loss_perc(5)?;
    }
    if p.max_playback_rate <= 8000 {
        e.set_max_bandwidth(opus::Bandwidth::Narrowband)?;
    } else if p.max_playback_rate <= 12000 {
        e.set_max_bandwidth(opus::Bandwidth::Mediumband)?;
    }
    Ok(e)
}

/// The `a=fmtp` parameters of vmail's Opus answer: what it receives
/// (wideband mono, FEC welcome) and what it sends (16 kHz mono).
pub fn opus_answer_fmtp(p: &OpusParams) -> String {
    let cap = p.max_playback_rate.clamp(8000, OPUS_RATE);
    format!(
        "maxplaybackrate=16000;sprop-maxcapturerate={cap};stereo=0;sprop-stereo=0;useinbandfec=1"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_at(freq: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect()
    }

    /// Relative power of `freq` in `x` (Goertzel), 0..1.
    fn power(x: &[i16], freq: f64, rate: u32) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        let mut energy = 0.0;
        for &v in x {
            let v = f64::from(v);
            energy += v * v;
            let s0 = v + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let p = s1 * s1 + s2 * s2 - c * s1 * s2;
        p / (energy * x.len() as f64 / 2.0).max(1.0)
    }

    fn round_trip(codec: Codec, freq: f64, frame: usize, frames: usize) -> Vec<i16> {
        let rate = codec.sample_rate();
        let pcm = tone_at(freq, rate, frame * frames);
        let mut enc = AudioEncoder::new(codec, &OpusParams::default());
        let mut dec = AudioDecoder::new(codec, true);
        let mut out = Vec::new();
        for f in pcm.chunks(frame) {
            let mut payload = Vec::new();
            enc.encode(f, &mut payload);
            let ticks = dec.ticks(&payload).expect("a valid payload");
            assert_eq!(ticks, codec.ticks(frame as u32), "{codec:?}");
            dec.decode(&payload, &mut out);
        }
        assert_eq!(out.len(), pcm.len(), "{codec:?}");
        out
    }

    #[test]
    fn every_codec_round_trips_a_tone() {
        for (codec, freq, frame) in [
            (Codec::Pcmu, 1000.0, 160),
            (Codec::Pcma, 1000.0, 160),
            (Codec::G722, 1000.0, 320),
            (Codec::G722, 6000.0, 320),
            (Codec::G729, 700.0, 160),
            (Codec::Opus, 1000.0, 320),
            (Codec::Opus, 6000.0, 320),
        ] {
            let out = round_trip(codec, freq, frame, 50);
            let tail = &out[out.len() / 2..];
            let p = power(tail, freq, codec.sample_rate());
            assert!(p > 0.5, "{codec:?} {freq} Hz: power {p}");
        }
    }

    #[test]
    fn wideband_codecs_carry_what_narrowband_cannot() {
        // A 6 kHz tone is above the 4 kHz Nyquist limit of 8 kHz audio.
        let out = round_trip(Codec::G722, 6000.0, 320, 25);
        assert!(power(&out[2000..], 6000.0, 16000) > 0.5);
        assert!(power(&out[2000..], 2000.0, 16000) < 0.05);
    }

    #[test]
    fn g729_sid_frames_follow_annexb() {
        let on = AudioDecoder::new(Codec::G729, true);
        let off = AudioDecoder::new(Codec::G729, false);
        assert_eq!(on.ticks(&[0x12, 0x34]), Some(80));
        assert_eq!(off.ticks(&[0x12, 0x34]), None);
        assert_eq!(on.ticks(&[0; 22]), Some(240));
        assert_eq!(on.ticks(&[0; 7]), None);
        let mut on = on;
        let mut out = Vec::new();
        on.decode(&[0x12, 0x34], &mut out);
        assert_eq!(out.len(), 80);
    }

    #[test]
    fn opus_loss_is_concealed_with_fec_and_plc() {
        let rate = 16000;
        let pcm = tone_at(440.0, rate, 320 * 40);
        let mut enc = AudioEncoder::new(
            Codec::Opus,
            &OpusParams {
                peer_uses_fec: true,
                ..OpusParams::default()
            },
        );
        let packets: Vec<Vec<u8>> = pcm
            .chunks(320)
            .map(|f| {
                let mut p = Vec::new();
                enc.encode(f, &mut p);
                p
            })
            .collect();
        let mut dec = AudioDecoder::new(Codec::Opus, true);
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if i == 20 || i == 30 || i == 31 {
                continue;
            }
            if i == 21 {
                dec.conceal(960, Some(p), &mut out);
            }
            if i == 32 {
                dec.conceal(1920, Some(p), &mut out);
            }
            dec.decode(p, &mut out);
        }
        assert_eq!(out.len(), pcm.len());
        // The concealed frames are no silence: the tone goes on (FEC for
        // frame 20, concealment for 30; 31 comes from FEC after it).
        let rms = |lost: usize| {
            let f = &out[lost * 320..(lost + 1) * 320];
            (f.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 320.0).sqrt()
        };
        assert!(rms(20) > 1000.0, "frame 20: rms {}", rms(20));
        assert!(rms(30) > 1000.0, "frame 30: rms {}", rms(30));
        assert!(rms(31) > 0.0, "frame 31 is not silence");
        // Other codecs keep the silence fill.
        let mut g722 = AudioDecoder::new(Codec::G722, true);
        let mut out = Vec::new();
        g722.conceal(160, Some(&[0x55; 160]), &mut out);
        assert_eq!(out, vec![0; 320]);
    }

    #[test]
    fn bad_payloads_are_refused_not_panicked_on() {
        for codec in [Codec::Opus, Codec::G729, Codec::G722, Codec::Pcmu] {
            let mut d = AudioDecoder::new(codec, true);
            assert_eq!(d.ticks(&[]), None);
            let mut out = Vec::new();
            for junk in [&[0xff_u8, 0xff, 0xff][..], &[0x03], &[0x7f; 99]] {
                d.decode(junk, &mut out);
                d.conceal(960, Some(junk), &mut out);
            }
        }
    }

    #[test]
    fn opus_answer_says_what_vmail_does() {
        let f = opus_answer_fmtp(&OpusParams::default());
        assert!(f.contains("useinbandfec=1"));
        assert!(f.contains("stereo=0"));
        assert!(f.contains("maxplaybackrate=16000"));
        let nb = opus_answer_fmtp(&OpusParams {
            max_playback_rate: 8000,
            ..OpusParams::default()
        });
        assert!(nb.contains("sprop-maxcapturerate=8000"));
    }
}
