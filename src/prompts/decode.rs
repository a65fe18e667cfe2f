//! Decoding any supported audio file to 8 kHz mono i16, and resampling.

use std::io::Cursor;

use rubato::{
    FftFixedIn, Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::error::PromptError;

/// The rate vmail plays and records narrowband audio at.
pub const SAMPLE_RATE: u32 = 8000;

/// Longest audio `decode_to_8k` accepts, so that a small compressed file
/// cannot expand into gigabytes of samples.
pub const MAX_DECODED_SECONDS: u32 = 3600;

/// Sample rates accepted from files (telephony to studio).
const MIN_RATE: u32 = 4000;
const MAX_RATE: u32 = 384_000;

/// Frames per resampler call.
const CHUNK: usize = 1024;

/// Above this many input frames per FFT block (rates whose ratio does not
/// reduce well, e.g. 44101 Hz) the sinc resampler is used instead.
const MAX_FFT_BLOCK: usize = 4096;

/// Decode any audio file that symphonia recognises (WAV, FLAC, MP3,
/// Ogg/Vorbis, ...) to 8 kHz mono 16-bit samples: channels are averaged,
/// other rates are resampled. `hint_ext` (a file extension such as `"wav"`)
/// helps the probe; the content decides. Garbage input is an error.
pub fn decode_to_8k(bytes: Vec<u8>, hint_ext: Option<&str>) -> Result<Vec<i16>, PromptError> {
    let (mono, rate) = decode_mono(bytes, hint_ext)?;
    let samples = if rate == SAMPLE_RATE {
        mono
    } else {
        resample_to(&mono, rate, SAMPLE_RATE)?
    };
    Ok(samples.iter().map(|&s| to_i16(s)).collect())
}

/// Decode an audio file (as [`decode_to_8k`]) into a [`super::Prompt`]
/// for calls of any rate: a file above 8 kHz keeps its wideband content
/// (16 kHz copy made from the source, not from the 8 kHz one).
pub fn decode_prompt(bytes: Vec<u8>, hint_ext: Option<&str>) -> Result<super::Prompt, PromptError> {
    let (mono, rate) = decode_mono(bytes, hint_ext)?;
    let target = if rate > SAMPLE_RATE {
        16000
    } else {
        SAMPLE_RATE
    };
    let samples = if rate == target {
        mono
    } else {
        resample_to(&mono, rate, target)?
    };
    let pcm: Vec<i16> = samples.iter().map(|&s| to_i16(s)).collect();
    Ok(super::Prompt::at_rate(pcm, target))
}

/// Convert a float sample (full scale ±1.0) to i16, clamping.
fn to_i16(s: f32) -> i16 {
    // i16 -> f32 -> i16 through this is lossless (symphonia scales by 1/32768).
    (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Decode to mono f32 at the stream's own rate.
fn decode_mono(bytes: Vec<u8>, hint_ext: Option<&str>) -> Result<(Vec<f32>, u32), PromptError> {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = hint_ext {
        hint.with_extension(ext);
    }
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|source| PromptError::Format { source })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or(PromptError::NoAudioTrack)?;
    let track_id = track.id;
    let mut rate = track.codec_params.sample_rate;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|source| PromptError::Format { source })?;

    let mut mono: Vec<f32> = Vec::new();
    let mut interleaved: Option<SampleBuffer<f32>> = None;
    let mut bad_packets = 0usize;
    let mut good_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // A chained stream would need a new decoder; prompts are one stream.
            Err(SymError::ResetRequired) => break,
            Err(source) => {
                if good_packets > 0 {
                    // Truncated or damaged tail: keep what was decoded.
                    tracing::warn!(error = %source, "audio stream ends with damaged data");
                    break;
                }
                return Err(PromptError::Decode { source });
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(msg)) => {
                // A damaged packet is skipped, as players do.
                bad_packets += 1;
                tracing::debug!(msg, "skipping undecodable audio packet");
                continue;
            }
            Err(source) => return Err(PromptError::Decode { source }),
        };
        good_packets += 1;
        let spec = *decoded.spec();
        let channels = spec.channels.count();
        if channels == 0 {
            return Err(PromptError::BadParameters("zero channels".into()));
        }
        match rate {
            None => rate = Some(spec.rate),
            Some(r) if r != spec.rate => {
                return Err(PromptError::BadParameters(format!(
                    "sample rate changes from {r} Hz to {} Hz",
                    spec.rate
                )))
            }
            Some(_) => {}
        }
        let needed = decoded.capacity() as u64;
        let buf = match &mut interleaved {
            Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
            _ => interleaved.insert(SampleBuffer::new(needed, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let scale = 1.0 / channels as f32;
        mono.extend(
            buf.samples()
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
        let limit = u64::from(MAX_DECODED_SECONDS) * u64::from(spec.rate);
        if mono.len() as u64 > limit {
            return Err(PromptError::TooLong {
                max_seconds: MAX_DECODED_SECONDS,
            });
        }
    }
    if bad_packets > 0 {
        tracing::warn!(bad_packets, good_packets, "audio had undecodable packets");
    }
    let rate = match rate {
        Some(r) if (MIN_RATE..=MAX_RATE).contains(&r) => r,
        Some(r) => return Err(PromptError::BadParameters(format!("sample rate {r} Hz"))),
        None => return Err(PromptError::Empty),
    };
    if mono.is_empty() {
        return Err(PromptError::Empty);
    }
    Ok((mono, rate))
}

/// Resample mono audio from `from_rate` to `to_rate` with rubato (an FFT
/// resampler for ratios that reduce well, a windowed-sinc one otherwise).
/// The output has `round(len * to / from)` samples: the duration is kept
/// and the resampler's delay is removed. Both rates must lie within
/// 4 kHz..=384 kHz.
pub fn resample_to(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>, PromptError> {
    let err = |reason: String| PromptError::Resample {
        from: from_rate,
        to: to_rate,
        reason,
    };
    let range = MIN_RATE..=MAX_RATE;
    if !range.contains(&from_rate) || !range.contains(&to_rate) {
        return Err(err(format!(
            "rates must be within {MIN_RATE}..={MAX_RATE} Hz"
        )));
    }
    if from_rate == to_rate || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let expected = ((samples.len() as u64 * u64::from(to_rate) + u64::from(from_rate) / 2)
        / u64::from(from_rate)) as usize;
    let (from, to) = (from_rate as usize, to_rate as usize);
    let block = from / gcd(from, to);
    if block <= MAX_FFT_BLOCK {
        let r = FftFixedIn::<f32>::new(from, to, CHUNK.max(block), 1, 1)
            .map_err(|e| err(e.to_string()))?;
        run(r, samples, expected).map_err(err)
    } else {
        let params = SincInterpolationParameters {
            sinc_len: 256,
            f_cutoff: 0.95,
            oversampling_factor: 128,
            interpolation: SincInterpolationType::Cubic,
            window: WindowFunction::BlackmanHarris2,
        };
        let r = SincFixedIn::<f32>::new(to as f64 / from as f64, 1.0, params, CHUNK, 1)
            .map_err(|e| err(e.to_string()))?;
        run(r, samples, expected).map_err(err)
    }
}

/// Push all of `input` through `r`, flush it, and cut the delay off.
fn run<R: Resampler<f32>>(mut r: R, input: &[f32], expected: usize) -> Result<Vec<f32>, String> {
    let delay = r.output_delay();
    let mut out: Vec<f32> = Vec::with_capacity(expected + delay + r.output_frames_max());
    let mut rest = input;
    while !rest.is_empty() {
        let need = r.input_frames_next();
        let chunk = if rest.len() >= need {
            let (head, tail) = rest.split_at(need);
            rest = tail;
            r.process(&[head], None)
        } else {
            let head = rest;
            rest = &[];
            r.process_partial(Some(&[head]), None)
        }
        .map_err(|e| e.to_string())?;
        out.extend(chunk.into_iter().next().unwrap_or_default());
    }
    // Flush the filter tail; a bounded number of rounds guards against a
    // resampler that stops producing.
    let mut rounds = 0;
    while out.len() < delay + expected && rounds < 64 {
        let chunk = r
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| e.to_string())?;
        out.extend(chunk.into_iter().next().unwrap_or_default());
        rounds += 1;
    }
    out.drain(..delay.min(out.len()));
    out.resize(expected, 0.0);
    Ok(out)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    fn tone(freq: f32, rate: u32, seconds: f32, amp: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds).round() as usize;
        (0..n)
            .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Relative power of `freq` in `x` (Goertzel), normalised by signal energy.
    fn goertzel_ratio(x: &[f32], freq: f32, rate: u32) -> f32 {
        let w = 2.0 * PI * freq / rate as f32;
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &v in x {
            let s = v + coeff * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        let energy: f32 = x.iter().map(|v| v * v).sum();
        power / (energy * x.len() as f32 / 2.0)
    }

    fn wav_bytes(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut cur = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        cur.into_inner()
    }

    fn check_tone(out: &[i16], freq: f32) {
        let f: Vec<f32> = out.iter().map(|&s| s as f32 / 32768.0).collect();
        // Skip the edges, where the filter rings.
        let mid = &f[200..f.len() - 200];
        assert!(goertzel_ratio(mid, freq, 8000) > 0.9, "tone {freq} Hz lost");
        assert!(goertzel_ratio(mid, freq * 1.25, 8000) < 0.05);
        let peak = mid.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((0.4..0.6).contains(&peak), "peak {peak}");
    }

    #[test]
    fn resample_keeps_duration_and_frequency() {
        for &(from, n) in &[
            (16000u32, 16000usize),
            (44100, 44100),
            (48000, 12345),
            (11025, 999),
            (44101, 44101),
            (8001, 500),
        ] {
            let x = tone(1000.0, from, n as f32 / from as f32, 0.5);
            let y = resample_to(&x, from, 8000).unwrap();
            let expected = (n as f64 * 8000.0 / from as f64).round() as usize;
            assert_eq!(y.len(), expected, "{from} Hz");
            if y.len() > 1000 {
                let i: Vec<i16> = y.iter().map(|&s| to_i16(s)).collect();
                check_tone(&i, 1000.0);
            }
        }
    }

    #[test]
    fn resample_identity_and_errors() {
        let x = vec![0.1f32, 0.2, 0.3];
        assert_eq!(resample_to(&x, 8000, 8000).unwrap(), x);
        assert!(resample_to(&[], 16000, 8000).unwrap().is_empty());
        assert!(matches!(
            resample_to(&x, 0, 8000),
            Err(PromptError::Resample { .. })
        ));
        assert!(resample_to(&x, 16000, 0).is_err());
        assert!(resample_to(&x, 8000, u32::MAX).is_err());
        assert!(resample_to(&x, 1, 8000).is_err());
        // Upsampling works too.
        let y = resample_to(&tone(440.0, 8000, 0.5, 0.5), 8000, 16000).unwrap();
        assert_eq!(y.len(), 8000);
    }

    #[test]
    fn wav_8k_is_lossless() {
        let x: Vec<i16> = (0..4000)
            .map(|i| ((i * 37) % 65536 - 32768) as i16)
            .collect();
        assert_eq!(
            decode_to_8k(wav_bytes(&x, 8000, 1), Some("wav")).unwrap(),
            x
        );
    }

    #[test]
    fn wav_16k_stereo_is_mixed_and_resampled() {
        let t = tone(1000.0, 16000, 0.5, 0.5);
        // Left carries the tone, right its copy: the mix keeps it.
        let stereo: Vec<i16> = t.iter().flat_map(|&s| [to_i16(s), to_i16(s)]).collect();
        let out = decode_to_8k(wav_bytes(&stereo, 16000, 2), None).unwrap();
        assert!((out.len() as i64 - 4000).abs() <= 1, "{}", out.len());
        check_tone(&out, 1000.0);
        // Opposite channels cancel in the mix.
        let anti: Vec<i16> = t.iter().flat_map(|&s| [to_i16(s), -to_i16(s)]).collect();
        let out = decode_to_8k(wav_bytes(&anti, 16000, 2), None).unwrap();
        assert!(out.iter().all(|s| s.abs() <= 2));
    }

    #[test]
    fn compressed_fixtures_decode() {
        // Made with sox: 0.5 s of 1 kHz at 44.1 kHz (FLAC, stereo), 48 kHz
        // (Ogg/Vorbis) and 22.05 kHz (MP3).
        for (name, bytes) in [
            (
                "flac",
                &include_bytes!("testdata/tone-1k-44k1-stereo.flac")[..],
            ),
            ("ogg", &include_bytes!("testdata/tone-1k-48k.ogg")[..]),
            ("mp3", &include_bytes!("testdata/tone-1k-22k05.mp3")[..]),
        ] {
            let out = decode_to_8k(bytes.to_vec(), Some(name)).unwrap();
            // Lossy codecs carry encoder padding that is not always trimmed.
            let slack = match name {
                "mp3" => 800,
                "ogg" => 100,
                _ => 2,
            };
            assert!(
                (out.len() as i64 - 4000).abs() <= slack,
                "{name}: {} samples",
                out.len()
            );
            check_tone(&out, 1000.0);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_to_8k(Vec::new(), None).is_err());
        assert!(decode_to_8k(b"definitely not audio at all".to_vec(), Some("wav")).is_err());
        let mut rng = 0x1234_5678u32;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 17;
                rng ^= rng << 5;
                rng as u8
            })
            .collect();
        assert!(decode_to_8k(noise, Some("mp3")).is_err());
        // A WAV header with its data cut off holds no samples.
        let wav = wav_bytes(&[1, 2, 3], 8000, 1);
        assert!(decode_to_8k(wav[..44].to_vec(), None).is_err());
        // A truncated WAV keeps what is there.
        let wav = wav_bytes(&[7; 1000], 8000, 1);
        let out = decode_to_8k(wav[..1044].to_vec(), None).unwrap();
        assert_eq!(out.len(), 500);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let _ = decode_to_8k(bytes, None);
        }

        #[test]
        fn damaged_wav_never_panics(pos in 0usize..200, val: u8) {
            let mut wav = wav_bytes(&[100; 100], 16000, 1);
            if pos < wav.len() {
                wav[pos] = val;
            }
            let _ = decode_to_8k(wav, Some("wav"));
        }
    }
}
