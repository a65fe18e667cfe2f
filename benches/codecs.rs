//! Criterion benchmarks of the codecs (docs/performance.md,
//! docs/decisions.md): `cargo bench --bench codecs`.
//!
//! Decode and encode cost of one 20 ms frame for each codec vmail uses
//! (`media::AudioDecoder` / `AudioEncoder`), beside G.711, and of the
//! candidates not taken: ezk-g722's G.722 and audio-codec's pure-Rust Opus
//! (opus-rs). Opus loss concealment (one lost 20 ms frame) too.

use std::hint::black_box;

use audio_codec::Decoder as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

use vmail::media::{AudioDecoder, AudioEncoder, Codec, OpusParams};

/// One second of speech-like audio at `rate`: a few harmonics with a
/// moving pitch, so the codecs have something to work on.
fn voice(rate: u32) -> Vec<i16> {
    (0..rate as usize)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let f0 = 140.0 + 40.0 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            let v: f64 = (1..6)
                .map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64)
                .sum();
            (v * 6000.0) as i16
        })
        .collect()
}

/// 50 frames of 20 ms encoded with vmail's encoder.
fn packets(codec: Codec) -> Vec<Vec<u8>> {
    let rate = codec.sample_rate();
    let frame = (rate / 50) as usize;
    let mut enc = AudioEncoder::new(codec, &OpusParams::default());
    voice(rate)
        .chunks(frame)
        .map(|f| {
            let mut p = Vec::new();
            enc.encode(f, &mut p);
            p
        })
        .collect()
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_20ms");
    for (name, codec) in [
        ("pcma", Codec::Pcma),
        ("pcmu", Codec::Pcmu),
        ("g722", Codec::G722),
        ("g729", Codec::G729),
        ("opus_libopus", Codec::Opus),
    ] {
        let stream = packets(codec);
        let mut dec = AudioDecoder::new(codec, true);
        let mut out = Vec::with_capacity(1920);
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                dec.decode(black_box(&stream[i % stream.len()]), &mut out);
                i += 1;
                out.len()
            })
        });
    }
    // The G.722 not taken: ezk-g722 (same packets).
    let stream = packets(Codec::G722);
    let mut ezk = ezk_g722::libg722::decoder::Decoder::new(
        ezk_g722::libg722::Bitrate::Mode1_64000,
        false,
        false,
    );
    let mut i = 0;
    g.bench_function("g722_ezk", |b| {
        b.iter(|| {
            let out = ezk.decode(black_box(&stream[i % stream.len()]));
            i += 1;
            out.len()
        })
    });
    // The Opus not taken: audio-codec's opus-rs, at 16 kHz mono as vmail
    // decodes (the same libopus packets).
    let stream = packets(Codec::Opus);
    let mut pure = audio_codec::opus::OpusDecoder::new(16000, 1);
    let mut out = vec![0i16; 1920];
    let mut i = 0;
    g.bench_function("opus_opus_rs", |b| {
        b.iter(|| {
            let n = pure
                .decode_into(black_box(&stream[i % stream.len()]), &mut out)
                .unwrap_or(0);
            i += 1;
            n
        })
    });
    // Loss: one 20 ms frame concealed (FEC of the next packet, else PLC).
    let mut dec = AudioDecoder::new(Codec::Opus, true);
    let mut out = Vec::with_capacity(1920);
    let mut i = 0;
    g.bench_function("opus_conceal", |b| {
        b.iter_batched_ref(
            || {
                let p = stream[i % stream.len()].clone();
                i += 1;
                p
            },
            |next| {
                out.clear();
                dec.conceal(960, Some(next), &mut out);
                dec.decode(next, &mut out);
                out.len()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_20ms");
    for (name, codec) in [
        ("pcma", Codec::Pcma),
        ("g722", Codec::G722),
        ("g729", Codec::G729),
        ("opus_libopus", Codec::Opus),
    ] {
        let rate = codec.sample_rate();
        let audio = voice(rate);
        let frame = (rate / 50) as usize;
        let mut enc = AudioEncoder::new(codec, &OpusParams::default());
        let mut out = Vec::with_capacity(400);
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                let at = (i % 50) * frame;
                out.clear();
                enc.encode(black_box(&audio[at..at + frame]), &mut out);
                i += 1;
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
