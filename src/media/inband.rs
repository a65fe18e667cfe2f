//! In-band DTMF detection (SPEC §7): key presses sent as audio tones, for
//! callers that negotiated no telephone-event.
//!
//! The shell feeds the decoded caller PCM (what it drains from the
//! `RtpReceiver`) and polls digits; there is no clock, time is the sample
//! count.
//!
//! # Blocks
//! The PCM is cut into blocks of 102 samples at 8 kHz (12.75 ms), each
//! analysed with Goertzel filters at the eight DTMF frequencies (rows 697,
//! 770, 852, 941 Hz; columns 1209, 1336, 1477, 1633 Hz). 102 rather than the
//! classic 205 because the duration rules need time resolution: with 25.6 ms
//! blocks a 40 ms tone may fully cover only one block, so "two blocks in a
//! row" would miss it and "one block" would accept 20 ms bursts. The
//! frequency resolution of 102 samples is still enough: neighbouring rows are
//! 73 Hz apart, where a 102-sample filter is 22 dB down.
//!
//! # One block: is it a key?
//! A block holds the key at (row, column) when all of these hold:
//! - **Peaks**: the strongest row filter beats every other row by 8 dB, and
//!   likewise for the columns.
//! - **Energy**: the two tones carry at least 90 % of the block's AC energy
//!   (80 % to keep a key that is already sounding). The tones are fitted by
//!   least squares (a sine and a cosine at each frequency; the 4×4 Gram
//!   matrix has a closed form), so the share is exact where plain Goertzel
//!   powers of 102 samples leak into each other by up to ±10 %. Each tone is
//!   fitted at its nominal frequency or at ±1.2 %, whichever correlates
//!   best, so senders off by ±1.5 % (the Q.24 operate range) keep about 99 %
//!   of their energy while ±3.5 % (must not operate) fails. Speech, music and
//!   noise spread their energy over many frequencies and fail here: the
//!   committed prompts stay under 60 % and 48 minutes of espeak-ng speech
//!   (13 voices, low to high pitch) under 85 % in two blocks in a row. White
//!   noise 12 dB below the tones still passes. A tone covering less than
//!   about 85 % of a block fails too, which bounds the durations below.
//! - **Level**: each fitted tone is at least −30 dBm0 (Q.24 operates from
//!   −25 dBm0 up; 0 dBm0 is a sine of peak 22 700, 3.17 dB below full scale).
//! - **Twist**: the column (high) tone is at most 4 dB above and at most 8 dB
//!   below the row (low) tone.
//!
//! There is no second-harmonic check: the energy test already leaves any
//! harmonic at most 10 % of the block, and the row harmonics (1394, 1540,
//! 1704 Hz) lie within 60–70 Hz of column tones, which a 13 ms block cannot
//! tell apart.
//!
//! # Duration rules
//! - A key is confirmed by 2 hit blocks in a row: tones of 38 ms and more are
//!   always confirmed, 20 ms bursts never.
//! - It ends after 3 blocks in a row that are not hits of that key: a break
//!   of 15 ms never splits a key, a pause of 40 ms always ends it. A new
//!   key, even the same one, needs such a pause (3 blocks without any hit)
//!   before it: a tone that changes straight into another key is reported
//!   once.
//! - The digit is reported once, when the key ends (as RFC 4733 digits are),
//!   with its onset and duration at block precision. A long press is one
//!   digit. [`InbandDetector::flush`] reports a key still sounding when the
//!   stream ends.

use std::collections::VecDeque;
use std::f64::consts::TAU;

/// Row (low group) frequencies in Hz.
const ROW_HZ: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies in Hz.
const COL_HZ: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad, `[row][column]`.
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Block length at 8 kHz (12.75 ms); scaled for other rates.
const BLOCK_AT_8K: u32 = 102;
/// Hit blocks in a row that confirm a key.
const HITS_TO_START: u32 = 2;
/// Non-hit blocks in a row that end a key (and make a pause).
const MISSES_TO_END: u32 = 3;
/// Share of the block's AC energy the two fitted tones must carry to start
/// a key.
const START_FRACTION: f64 = 0.90;
/// Share that keeps a sounding key going.
const HOLD_FRACTION: f64 = 0.80;
/// Relative frequency offset of the extra fits on each side of nominal.
const FREQ_STEP: f64 = 0.012;
/// Strongest row (column) over any other row (column), power ratio (8 dB).
const RELATIVE_PEAK: f64 = 6.31;
/// Column power may exceed row power by this ratio (4 dB).
const MAX_COL_OVER_ROW: f64 = 2.512;
/// Row power may exceed column power by this ratio (8 dB).
const MAX_ROW_OVER_COL: f64 = 6.31;
/// Peak of a 0 dBm0 sine, as a fraction of full scale (−3.17 dBFS).
const DBM0_PEAK: f64 = 22_700.0 / 32_768.0;
/// Minimum level of each tone in dBm0.
const MIN_LEVEL_DBM0: f64 = -30.0;
/// Digits kept for [`InbandDetector::poll_digit`]; older ones are dropped.
const QUEUE_CAP: usize = 16;

/// One key press detected in the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InbandDigit {
    /// `'0'..='9'`, `'*'`, `'#'`, `'A'..='D'`.
    pub digit: char,
    /// Onset, in samples since the first fed sample: the start of the first
    /// block the tone covered (almost) fully, so up to one block (12.75 ms)
    /// late.
    pub at_sample: u64,
    /// How long the tone lasted, counted in whole blocks: up to two blocks
    /// short.
    pub duration_ms: u32,
}

/// The two tones fitted to a block.
#[derive(Debug, Clone, Copy)]
struct Fit {
    row: usize,
    col: usize,
    /// Share of the block's AC energy the two tones carry.
    fraction: f64,
    /// Squared amplitudes, full scale = 1.
    row_amp2: f64,
    col_amp2: f64,
}

/// Where the detector is in a key press, in blocks.
#[derive(Debug, Clone, Copy)]
enum Track {
    /// No key. `quiet` blocks without a hit in a row; `armed` once a pause
    /// allows a new key.
    Idle { armed: bool, quiet: u32 },
    /// `hits` hit blocks of `digit` in a row from sample `onset`, not yet
    /// confirmed.
    Candidate { digit: char, onset: u64, hits: u32 },
    /// A confirmed key, last heard up to sample `end`: `misses` non-hit
    /// blocks in a row since, of which the last `quiet` held no key at all.
    Active {
        digit: char,
        onset: u64,
        end: u64,
        misses: u32,
        quiet: u32,
    },
}

/// In-band DTMF detector over mono PCM (see the module docs for the rules).
#[derive(Debug, Clone)]
pub struct InbandDetector {
    rate: u32,
    block_len: usize,
    /// The block being accumulated, full scale = 1 (capacity `block_len`).
    block: Vec<f64>,
    /// Nominal angular frequencies per sample: rows, then columns.
    omega: [f64; 8],
    /// Minimum fitted tone amplitude², full scale = 1.
    min_amp2: f64,
    /// Samples fed before the current block.
    block_start: u64,
    track: Track,
    queue: VecDeque<InbandDigit>,
}

impl InbandDetector {
    /// A detector for PCM at `rate` Hz (8000 on the G.711 path; taken as
    /// 1..=384000).
    pub fn new(rate: u32) -> Self {
        // Anything beyond the rates audio comes in is a mistake; keep the
        // block buffer bounded.
        let rate = rate.clamp(1, 384_000);
        let block_len = (u64::from(rate) * u64::from(BLOCK_AT_8K) / 8000).max(1) as usize;
        let min_amp = DBM0_PEAK * 10f64.powf(MIN_LEVEL_DBM0 / 20.0);
        let mut omega = [0.0; 8];
        for (w, hz) in omega.iter_mut().zip(ROW_HZ.iter().chain(COL_HZ.iter())) {
            *w = TAU * hz / f64::from(rate);
        }
        InbandDetector {
            rate,
            block_len,
            block: Vec::with_capacity(block_len),
            omega,
            min_amp2: min_amp * min_amp,
            block_start: 0,
            track: Track::Idle {
                armed: true,
                quiet: 0,
            },
            queue: VecDeque::with_capacity(QUEUE_CAP),
        }
    }

    /// Feeds decoded PCM, any slice length. Does not allocate.
    pub fn feed(&mut self, pcm: &[i16]) {
        let mut rest = pcm;
        while !rest.is_empty() {
            let room = self.block_len - self.block.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.block
                .extend(now.iter().map(|&s| f64::from(s) * (1.0 / 32768.0)));
            rest = later;
            if self.block.len() == self.block_len {
                let hit = self.classify();
                self.block.clear();
                self.advance(hit);
                self.block_start += self.block_len as u64;
            }
        }
    }

    /// The next detected key press, oldest first.
    pub fn poll_digit(&mut self) -> Option<InbandDigit> {
        self.queue.pop_front()
    }

    /// End of stream: reports a confirmed key that is still sounding. The
    /// unfinished block is dropped; a tone that goes on afterwards needs a
    /// pause before it counts again.
    pub fn flush(&mut self) {
        if let Track::Active {
            digit, onset, end, ..
        } = self.track
        {
            self.emit(digit, onset, end);
        }
        self.track = Track::Idle {
            armed: false,
            quiet: 0,
        };
        self.block_start += self.block.len() as u64;
        self.block.clear();
    }

    /// The key the current (full) block holds, if any. A key that is
    /// already sounding holds with a lower energy share than a new one needs.
    fn classify(&self) -> Option<char> {
        let energy = ac_energy(&self.block);
        // Cheapest test first: two tones at the minimum level carry at
        // least N·amp² of energy (N·amp²/2 each).
        if energy < self.block.len() as f64 * self.min_amp2 {
            return None;
        }
        let fit = self.fit(energy)?;
        let key = KEYS.get(fit.row)?.get(fit.col).copied()?;
        let holding = matches!(self.track, Track::Active { digit, .. } if digit == key);
        let min_fraction = if holding {
            HOLD_FRACTION
        } else {
            START_FRACTION
        };
        if fit.fraction < min_fraction
            || fit.row_amp2 < self.min_amp2
            || fit.col_amp2 < self.min_amp2
            || fit.col_amp2 > MAX_COL_OVER_ROW * fit.row_amp2
            || fit.row_amp2 > MAX_ROW_OVER_COL * fit.col_amp2
        {
            return None;
        }
        Some(key)
    }

    /// The dominant row and column of the current block and the two tones
    /// fitted there; `None` if no row or no column stands out.
    fn fit(&self, energy: f64) -> Option<Fit> {
        let corr = self.omega.map(|w| goertzel(&self.block, w));
        let power = corr.map(power);
        let (rows, cols) = power.split_at(4);
        let row = dominant(rows)?;
        let col = dominant(cols)?;
        let (wr, vr) = self.best_offset(row, *corr.get(row)?)?;
        let (wc, vc) = self.best_offset(4 + col, *corr.get(4 + col)?)?;
        let g = gram_inverse(wr, wc, self.block.len())?;
        let v = [vr[0], vr[1], vc[0], vc[1]];
        let a = g.map(|line| dot(&line, &v));
        Some(Fit {
            row,
            col,
            fraction: if energy > 0.0 {
                dot(&a, &v) / energy
            } else {
                0.0
            },
            row_amp2: a[0] * a[0] + a[1] * a[1],
            col_amp2: a[2] * a[2] + a[3] * a[3],
        })
    }

    /// Filter `i` at its nominal frequency (output `nominal`) or ±[`FREQ_STEP`],
    /// whichever has the most power: its ω and output.
    fn best_offset(&self, i: usize, nominal: [f64; 2]) -> Option<(f64, [f64; 2])> {
        let w = *self.omega.get(i)?;
        let mut best = (w, nominal);
        for k in [1.0 - FREQ_STEP, 1.0 + FREQ_STEP] {
            let v = goertzel(&self.block, w * k);
            if power(v) > power(best.1) {
                best = (w * k, v);
            }
        }
        Some(best)
    }

    /// Moves the key tracking on by one block.
    fn advance(&mut self, hit: Option<char>) {
        let now = self.block_start;
        let now_end = now + self.block_len as u64;
        self.track = match (self.track, hit) {
            (Track::Idle { armed, quiet }, None) => {
                let quiet = quiet.saturating_add(1);
                Track::Idle {
                    armed: armed || quiet >= MISSES_TO_END,
                    quiet,
                }
            }
            (Track::Idle { armed: true, .. }, Some(digit)) => Track::Candidate {
                digit,
                onset: now,
                hits: 1,
            },
            (Track::Idle { armed: false, .. }, Some(_)) => Track::Idle {
                armed: false,
                quiet: 0,
            },
            (Track::Candidate { digit, onset, hits }, Some(d)) if d == digit => {
                if hits + 1 >= HITS_TO_START {
                    tracing::trace!(digit = %d, at_sample = onset, "in-band key confirmed");
                    Track::Active {
                        digit,
                        onset,
                        end: now_end,
                        misses: 0,
                        quiet: 0,
                    }
                } else {
                    Track::Candidate {
                        digit,
                        onset,
                        hits: hits + 1,
                    }
                }
            }
            (Track::Candidate { .. }, Some(other)) => Track::Candidate {
                digit: other,
                onset: now,
                hits: 1,
            },
            (Track::Candidate { .. }, None) => Track::Idle {
                armed: true,
                quiet: 1,
            },
            (Track::Active { digit, onset, .. }, Some(d)) if d == digit => Track::Active {
                digit,
                onset,
                end: now_end,
                misses: 0,
                quiet: 0,
            },
            (
                Track::Active {
                    digit,
                    onset,
                    end,
                    misses,
                    quiet,
                },
                other,
            ) => {
                let misses = misses + 1;
                let quiet = if other.is_none() { quiet + 1 } else { 0 };
                if misses >= MISSES_TO_END {
                    self.emit(digit, onset, end);
                    Track::Idle {
                        armed: quiet >= MISSES_TO_END,
                        quiet,
                    }
                } else {
                    Track::Active {
                        digit,
                        onset,
                        end,
                        misses,
                        quiet,
                    }
                }
            }
        };
    }

    /// Queues the key that sounded from sample `onset` to sample `end`.
    fn emit(&mut self, digit: char, onset: u64, end: u64) {
        let samples = end.saturating_sub(onset);
        let duration_ms =
            u32::try_from(samples.saturating_mul(1000) / u64::from(self.rate)).unwrap_or(u32::MAX);
        let d = InbandDigit {
            digit,
            at_sample: onset,
            duration_ms,
        };
        tracing::debug!(digit = %digit, at_sample = d.at_sample, duration_ms, "in-band DTMF digit");
        if self.queue.len() == QUEUE_CAP {
            self.queue.pop_front();
            tracing::debug!("in-band digit queue full, oldest dropped");
        }
        self.queue.push_back(d);
    }
}

/// AC energy (mean removed) of a block.
fn ac_energy(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let (sum, sum_sq) = x.iter().fold((0.0, 0.0), |(s, q), &v| (s + v, q + v * v));
    (sum_sq - sum * sum / x.len() as f64).max(0.0)
}

/// Goertzel filter at `w` radians per sample: the correlations of `x` with
/// `cos(w·t)` and `sin(w·t)`, `t = N−1−m` for sample `m`.
fn goertzel(x: &[f64], w: f64) -> [f64; 2] {
    let (cos, sin) = (w.cos(), w.sin());
    let coeff = 2.0 * cos;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    [s1 - cos * s2, sin * s2]
}

fn power([c, s]: [f64; 2]) -> f64 {
    c * c + s * s
}

/// Index of the strongest entry if it beats every other by [`RELATIVE_PEAK`].
fn dominant(power: &[f64]) -> Option<usize> {
    let (best, &p) = power.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    let clear = power
        .iter()
        .enumerate()
        .all(|(i, &q)| i == best || q * RELATIVE_PEAK <= p);
    (clear && p > 0.0).then_some(best)
}

fn dot(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Σ cos(θt)` and `Σ sin(θt)` for `t = 0..n` (Dirichlet kernel).
fn sum_cis(theta: f64, n: usize) -> (f64, f64) {
    let half = (theta / 2.0).sin();
    let nf = n as f64;
    if half.abs() < 1e-9 {
        // θ ≡ 0 (mod 2π): every term is (nearly) 1, or alternates for 2π odd.
        let terms = (0..n).map(|t| (theta * t as f64).cos());
        return (terms.sum(), 0.0);
    }
    let mag = (nf * theta / 2.0).sin() / half;
    let phase = theta * (nf - 1.0) / 2.0;
    (mag * phase.cos(), mag * phase.sin())
}

/// Inverse Gram matrix of `cos(a·t), sin(a·t), cos(b·t), sin(b·t)` over
/// `t = 0..n`, or `None` if (nearly) singular.
fn gram_inverse(a: f64, b: f64, n: usize) -> Option<[[f64; 4]; 4]> {
    let w = [a, b];
    let mut g = [[0.0f64; 4]; 4];
    for (i, &wi) in w.iter().enumerate() {
        for (j, &wj) in w.iter().enumerate() {
            let (cm, sm) = sum_cis(wi - wj, n);
            let (cp, sp) = sum_cis(wi + wj, n);
            // cos·cos, cos·sin, sin·cos, sin·sin by product-to-sum.
            let block = [[cm + cp, sp - sm], [sp + sm, cm - cp]];
            for (r, line) in block.iter().enumerate() {
                for (c, &v) in line.iter().enumerate() {
                    if let Some(cell) = g.get_mut(2 * i + r).and_then(|l| l.get_mut(2 * j + c)) {
                        *cell = v / 2.0;
                    }
                }
            }
        }
    }
    invert4(g)
}

/// Gauss–Jordan inverse with partial pivoting; `None` if (nearly) singular.
fn invert4(mut m: [[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let mut inv = [[0.0f64; 4]; 4];
    for (i, line) in inv.iter_mut().enumerate() {
        line[i] = 1.0;
    }
    let scale = m.iter().flatten().fold(0.0f64, |a, &x| a.max(x.abs()));
    for col in 0..4 {
        let pivot = (col..4).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
        if m[pivot][col].abs() <= scale * 1e-9 {
            return None;
        }
        m.swap(col, pivot);
        inv.swap(col, pivot);
        let p = m[col][col];
        for j in 0..4 {
            m[col][j] /= p;
            inv[col][j] /= p;
        }
        for r in 0..4 {
            if r != col {
                let f = m[r][col];
                for j in 0..4 {
                    m[r][j] -= f * m[col][j];
                    inv[r][j] -= f * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{decode, dtmf_frequencies, dtmf_tone, encode, tone, Codec};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::path::{Path, PathBuf};

    const ALL: &str = "0123456789*#ABCD";

    /// Peak amplitude of a sine at `dbm0`.
    fn amp(dbm0: f64) -> i16 {
        (22_700.0 * 10f64.powf(dbm0 / 20.0)).round() as i16
    }

    fn mix(a: &[i16], b: &[i16]) -> Vec<i16> {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| x.saturating_add(y))
            .collect()
    }

    /// A DTMF pair with each tone at its own level, frequencies scaled by `1 + dev`.
    fn key_dev(digit: char, ms: u32, row_dbm0: f64, col_dbm0: f64, dev: f32) -> Vec<i16> {
        let (lo, hi) = dtmf_frequencies(digit).unwrap();
        mix(
            &tone(lo * (1.0 + dev), ms, amp(row_dbm0), 8000),
            &tone(hi * (1.0 + dev), ms, amp(col_dbm0), 8000),
        )
    }

    fn key(digit: char, ms: u32, row_dbm0: f64, col_dbm0: f64) -> Vec<i16> {
        key_dev(digit, ms, row_dbm0, col_dbm0, 0.0)
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![0; ms as usize * 8]
    }

    /// Adds white Gaussian noise `snr_db` below the mean power of `pcm`.
    fn add_noise(pcm: &mut [i16], snr_db: f64, rng: &mut StdRng) {
        let power = pcm.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / pcm.len() as f64;
        noise_at(pcm, (power / 10f64.powf(snr_db / 10.0)).sqrt(), rng);
    }

    /// Adds white Gaussian noise of RMS `rms` (Box–Muller).
    fn noise_at(pcm: &mut [i16], rms: f64, rng: &mut StdRng) {
        for x in pcm.iter_mut() {
            let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
            let u2: f64 = rng.gen();
            let g = (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos();
            *x = (f64::from(*x) + rms * g).clamp(-32768.0, 32767.0) as i16;
        }
    }

    /// Feeds `pcm` in uneven chunks plus 100 ms of silence; the digits.
    fn detect(pcm: &[i16]) -> Vec<InbandDigit> {
        let mut d = InbandDetector::new(8000);
        for chunk in pcm.chunks(97) {
            d.feed(chunk);
        }
        d.feed(&silence(100));
        std::iter::from_fn(|| d.poll_digit()).collect()
    }

    fn digits(pcm: &[i16]) -> String {
        detect(pcm).iter().map(|d| d.digit).collect()
    }

    /// `digits` in sequence, `on` ms tones and `off` ms gaps, after `lead` samples of silence.
    fn sequence(keys: &str, on: u32, off: u32, lead: usize) -> Vec<i16> {
        let mut pcm = vec![0; lead];
        for c in keys.chars() {
            pcm.extend(dtmf_tone(c, on).unwrap());
            pcm.extend(silence(off));
        }
        pcm
    }

    #[test]
    fn every_digit_from_dtmf_tone() {
        for c in ALL.chars() {
            let mut pcm = silence(30);
            pcm.extend(dtmf_tone(c, 80).unwrap());
            let got = detect(&pcm);
            assert_eq!(got.len(), 1, "{c}: {got:?}");
            assert_eq!(got[0].digit, c);
            // Onset and duration at block precision.
            assert!(
                (240 - 15..=240 + 102).contains(&got[0].at_sample),
                "{got:?}"
            );
            assert!((80 - 26..=82).contains(&got[0].duration_ms), "{got:?}");
        }
    }

    #[test]
    fn every_digit_at_q24_levels() {
        for c in ALL.chars() {
            for level in [-25.0, -20.0, -10.0, -3.0] {
                let mut pcm = silence(20);
                pcm.extend(key(c, 50, level, level));
                assert_eq!(digits(&pcm), c.to_string(), "{c} at {level} dBm0");
            }
        }
    }

    #[test]
    fn too_quiet_is_ignored() {
        for c in ALL.chars() {
            assert_eq!(digits(&key(c, 200, -35.0, -35.0)), "", "{c}");
        }
    }

    #[test]
    fn white_noise_at_15_and_20_db_snr() {
        let mut rng = StdRng::seed_from_u64(4733);
        for c in ALL.chars() {
            for level in [-25.0, -10.0, -3.0] {
                for snr in [15.0, 20.0] {
                    let mut pcm = silence(40);
                    pcm.extend(key(c, 60, level, level));
                    pcm.extend(silence(40));
                    // Noise at `snr` below the tone, over the pauses too.
                    let tone_power = f64::from(amp(level)).powi(2); // two tones of A²/2
                    let rms = (tone_power / 10f64.powf(snr / 10.0)).sqrt();
                    noise_at(&mut pcm, rms, &mut rng);
                    assert_eq!(digits(&pcm), c.to_string(), "{c} {level} dBm0 {snr} dB");
                }
            }
        }
    }

    #[test]
    fn through_g711() {
        let mut rng = StdRng::seed_from_u64(711);
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut pcm = sequence(ALL, 60, 60, 0);
            add_noise(&mut pcm, 20.0, &mut rng);
            let mut bytes = vec![0u8; pcm.len()];
            encode(codec, &pcm, &mut bytes);
            let mut out = vec![0i16; pcm.len()];
            decode(codec, &bytes, &mut out);
            assert_eq!(digits(&out), ALL, "{codec:?}");
            // Quiet keys suffer most from companding.
            let mut quiet = Vec::new();
            for c in ALL.chars() {
                quiet.extend(key(c, 60, -25.0, -25.0));
                quiet.extend(silence(60));
            }
            let mut bytes = vec![0u8; quiet.len()];
            encode(codec, &quiet, &mut bytes);
            decode(codec, &bytes, &mut quiet);
            assert_eq!(digits(&quiet), ALL, "{codec:?} at -25 dBm0");
        }
    }

    #[test]
    fn sequence_60ms_on_60ms_off_at_every_alignment() {
        for lead in (0..102).step_by(7) {
            let got = detect(&sequence(ALL, 60, 60, lead));
            let s: String = got.iter().map(|d| d.digit).collect();
            assert_eq!(s, ALL, "lead {lead}");
            // Onsets 120 ms apart, within a block.
            for (i, d) in got.iter().enumerate() {
                let start = lead as u64 + i as u64 * 960;
                assert!((start.saturating_sub(15)..=start + 102).contains(&d.at_sample));
            }
        }
    }

    #[test]
    fn sequence_with_noise() {
        let mut rng = StdRng::seed_from_u64(15);
        for seed_run in 0..4 {
            let mut pcm = sequence(ALL, 60, 60, seed_run * 31);
            add_noise(&mut pcm, 15.0, &mut rng);
            assert_eq!(digits(&pcm), ALL);
        }
    }

    #[test]
    fn long_press_is_one_digit() {
        let mut rng = StdRng::seed_from_u64(500);
        let mut pcm = silence(50);
        pcm.extend(dtmf_tone('7', 500).unwrap());
        add_noise(&mut pcm, 18.0, &mut rng);
        let got = detect(&pcm);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].digit, '7');
        assert!((474..=502).contains(&got[0].duration_ms), "{got:?}");
    }

    #[test]
    fn same_digit_twice_with_short_pause() {
        for lead in (0..102).step_by(5) {
            for gap in [40, 50] {
                let mut pcm = vec![0; lead];
                pcm.extend(dtmf_tone('1', 60).unwrap());
                pcm.extend(silence(gap));
                pcm.extend(dtmf_tone('1', 60).unwrap());
                assert_eq!(digits(&pcm), "11", "lead {lead}, gap {gap} ms");
            }
        }
    }

    #[test]
    fn short_break_does_not_split_a_key() {
        for lead in (0..102).step_by(5) {
            let mut pcm = vec![0; lead];
            pcm.extend(dtmf_tone('9', 80).unwrap());
            pcm.extend(silence(15));
            pcm.extend(dtmf_tone('9', 80).unwrap());
            assert_eq!(digits(&pcm), "9", "lead {lead}");
        }
    }

    #[test]
    fn q24_durations_40ms_operates_20ms_does_not() {
        for lead in 0..102 {
            for c in ['1', '5', '#', 'D'] {
                let mut pcm = vec![0; lead];
                pcm.extend(dtmf_tone(c, 40).unwrap());
                assert_eq!(digits(&pcm), c.to_string(), "40 ms {c} lead {lead}");
                let mut pcm = vec![0; lead];
                pcm.extend(dtmf_tone(c, 20).unwrap());
                assert_eq!(digits(&pcm), "", "20 ms {c} lead {lead}");
            }
        }
    }

    #[test]
    fn bursts_of_20ms_give_nothing() {
        let mut rng = StdRng::seed_from_u64(20);
        let mut pcm = Vec::new();
        for c in ALL.chars().cycle().take(64) {
            pcm.extend(dtmf_tone(c, 20).unwrap());
            pcm.extend(silence(60 + rng.gen_range(0..13)));
        }
        assert_eq!(digits(&pcm), "");
        add_noise(&mut pcm, 20.0, &mut rng);
        assert_eq!(digits(&pcm), "");
    }

    #[test]
    fn twist_limits() {
        for c in ALL.chars() {
            // High tone 7 dB below, or 3 dB above, the low tone: accepted.
            assert_eq!(digits(&key(c, 80, -6.0, -13.0)), c.to_string(), "{c}");
            assert_eq!(digits(&key(c, 80, -10.0, -7.0)), c.to_string(), "{c}");
            // 10 dB below or 6 dB above: rejected.
            assert_eq!(digits(&key(c, 80, -5.0, -15.0)), "", "{c}");
            assert_eq!(digits(&key(c, 80, -12.0, -6.0)), "", "{c}");
        }
    }

    #[test]
    fn frequency_deviation() {
        for c in ALL.chars() {
            for dev in [-0.015, -0.01, 0.01, 0.015] {
                let pcm = key_dev(c, 60, -10.0, -10.0, dev);
                assert_eq!(digits(&pcm), c.to_string(), "{c} {dev}");
            }
            for dev in [-0.035, 0.035, -0.05, 0.05] {
                let pcm = key_dev(c, 200, -10.0, -10.0, dev);
                assert_eq!(digits(&pcm), "", "{c} {dev}");
            }
        }
    }

    #[test]
    fn change_without_pause_reports_the_first_key() {
        let mut pcm = dtmf_tone('4', 100).unwrap();
        pcm.extend(dtmf_tone('8', 100).unwrap());
        pcm.extend(silence(60));
        pcm.extend(dtmf_tone('8', 100).unwrap());
        assert_eq!(digits(&pcm), "48");
    }

    #[test]
    fn flush_reports_a_sounding_key() {
        let mut d = InbandDetector::new(8000);
        d.feed(&dtmf_tone('#', 200).unwrap());
        assert_eq!(d.poll_digit(), None);
        d.flush();
        let got = d.poll_digit().unwrap();
        assert_eq!((got.digit, got.at_sample), ('#', 0));
        assert!((188..=200).contains(&got.duration_ms), "{got:?}");
        // Still the same tone: not a new key.
        d.feed(&dtmf_tone('#', 200).unwrap());
        d.feed(&silence(100));
        assert_eq!(d.poll_digit(), None);
        // After a pause, keys count again; positions go on from the fed samples.
        d.feed(&dtmf_tone('2', 100).unwrap());
        d.feed(&silence(100));
        let got = d.poll_digit().unwrap();
        assert_eq!(got.digit, '2');
        assert!((4000..=4102).contains(&got.at_sample), "{got:?}");
    }

    #[test]
    fn chunking_does_not_matter() {
        let pcm = sequence("159#", 70, 50, 33);
        let whole = detect(&pcm);
        let mut d = InbandDetector::new(8000);
        for &s in &pcm {
            d.feed(&[s]);
        }
        d.feed(&[]);
        d.feed(&silence(100));
        let single: Vec<_> = std::iter::from_fn(|| d.poll_digit()).collect();
        assert_eq!(whole, single);
        assert_eq!(whole.len(), 4);
    }

    #[test]
    fn other_rates() {
        let mut d = InbandDetector::new(16000);
        let (lo, hi) = dtmf_frequencies('6').unwrap();
        d.feed(&mix(
            &tone(lo, 80, amp(-10.0), 16000),
            &tone(hi, 80, amp(-10.0), 16000),
        ));
        d.feed(&vec![0; 3200]);
        assert_eq!(d.poll_digit().map(|d| d.digit), Some('6'));
        // Degenerate rates do not panic.
        for rate in [0, 1, 1000, u32::MAX] {
            let mut d = InbandDetector::new(rate);
            d.feed(&dtmf_tone('1', 100).unwrap());
            d.flush();
        }
    }

    // ------------------------------------------------------------ talk-off

    /// A vowel-like sound: harmonics of a gliding fundamental (1/k source
    /// slope) through a cascade of formant resonances `(Hz, bandwidth Hz)`.
    fn vowel(f0: (f64, f64), ms: u32, formants: &[(f64, f64)], peak: f64) -> Vec<i16> {
        let n = ms as usize * 8;
        let mut phase = vec![0.0f64; 40];
        let mut out = vec![0.0f64; n];
        for (i, o) in out.iter_mut().enumerate() {
            let f = f0.0 + (f0.1 - f0.0) * i as f64 / n as f64;
            for (k, ph) in phase.iter_mut().enumerate() {
                let hk = f * (k + 1) as f64;
                if hk > 3800.0 {
                    break;
                }
                let gain: f64 = formants
                    .iter()
                    .map(|&(fc, bw)| {
                        let r = hk / fc;
                        1.0 / ((1.0 - r * r).powi(2) + (hk * bw / (fc * fc)).powi(2)).sqrt()
                    })
                    .product();
                *ph += TAU * hk / 8000.0;
                *o += gain / (k + 1) as f64 * ph.sin();
            }
        }
        let max = out.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        out.iter().map(|x| (x / max * peak) as i16).collect()
    }

    /// A plucked note with `harmonics` overtones (amplitude 1/k), decaying.
    fn note(freq: f64, ms: u32, harmonics: usize, amp: f64) -> Vec<i16> {
        let n = ms as usize * 8;
        (0..n)
            .map(|i| {
                let t = i as f64 / 8000.0;
                let v: f64 = (1..=harmonics)
                    .map(|k| (TAU * freq * k as f64 * t).sin() / k as f64)
                    .sum();
                (amp * v * (-t * 2.0).exp()) as i16
            })
            .collect()
    }

    fn chord(freqs: &[f64], ms: u32, harmonics: usize) -> Vec<i16> {
        freqs.iter().fold(vec![0; ms as usize * 8], |acc, &f| {
            mix(&acc, &note(f, ms, harmonics, 4000.0))
        })
    }

    #[test]
    fn speech_like_vowels_give_nothing() {
        // (F1, F2, F3) of /a/, /i/, /u/, /ae/, /o/, /er/, and formants placed
        // on DTMF frequencies on purpose.
        let vowels: [[(f64, f64); 3]; 8] = [
            [(730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0)],
            [(270.0, 60.0), (2290.0, 100.0), (3010.0, 180.0)],
            [(300.0, 60.0), (870.0, 90.0), (2240.0, 150.0)],
            [(660.0, 80.0), (1720.0, 110.0), (2410.0, 160.0)],
            [(570.0, 80.0), (840.0, 90.0), (2410.0, 160.0)],
            [(490.0, 70.0), (1350.0, 110.0), (1690.0, 130.0)],
            [(770.0, 90.0), (1336.0, 110.0), (2500.0, 170.0)],
            [(697.0, 90.0), (1209.0, 110.0), (2500.0, 170.0)],
        ];
        let glides = [
            (100.0, 140.0),
            (120.0, 120.0),
            (140.0, 100.0),
            (180.0, 260.0),
            (220.0, 220.0),
            (260.0, 180.0),
        ];
        for v in &vowels {
            for &g in &glides {
                for peak in [3000.0, 12000.0, 30000.0] {
                    let pcm = vowel(g, 600, v, peak);
                    assert_eq!(digits(&pcm), "", "{v:?} {g:?} {peak}");
                }
            }
        }
    }

    #[test]
    fn tones_and_music_give_nothing() {
        let a = amp(-5.0);
        // Test tone, beep, call progress tones.
        assert_eq!(digits(&tone(1000.0, 1000, a, 8000)), "");
        for f in ROW_HZ.iter().chain(COL_HZ.iter()) {
            assert_eq!(digits(&tone(*f as f32, 300, a, 8000)), "", "{f}");
        }
        for (f1, f2) in [
            (350.0, 440.0),
            (440.0, 480.0),
            (480.0, 620.0),
            (425.0, 425.0),
        ] {
            let pcm = mix(&tone(f1, 1000, a, 8000), &tone(f2, 1000, a, 8000));
            assert_eq!(digits(&pcm), "", "{f1}+{f2}");
        }
        // Chords: C major, A minor, and notes next to DTMF pairs (G5+E6 is
        // 784+1319 Hz, near key 5; F5+D6 is 698+1175 Hz, near key 1).
        let chords: [&[f64]; 5] = [
            &[261.6, 329.6, 392.0],
            &[220.0, 261.6, 329.6, 440.0],
            &[784.0, 1318.5],
            &[698.5, 1174.7],
            &[523.3, 784.0, 1318.5],
        ];
        for c in chords {
            for harmonics in [3, 6] {
                assert_eq!(digits(&chord(c, 800, harmonics)), "", "{c:?} {harmonics}");
            }
        }
        // Loud noise alone.
        let mut rng = StdRng::seed_from_u64(9);
        let mut pcm = vec![0i16; 16000];
        noise_at(&mut pcm, 8000.0, &mut rng);
        assert_eq!(digits(&pcm), "");
    }

    fn wavs(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                wavs(&p, out);
            } else if p.extension().is_some_and(|x| x == "wav") {
                out.push(p);
            }
        }
    }

    #[test]
    fn spoken_prompts_give_nothing() {
        let mut files = Vec::new();
        wavs(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts"),
            &mut files,
        );
        assert!(files.len() > 100, "{}", files.len());
        let mut all = Vec::new();
        for p in &files {
            let mut r = hound::WavReader::open(p).unwrap();
            assert_eq!(r.spec().sample_rate, 8000, "{}", p.display());
            let pcm: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
            // Each prompt alone, as played and 12 dB quieter.
            assert_eq!(digits(&pcm), "", "{}", p.display());
            let quiet: Vec<i16> = pcm.iter().map(|&s| s / 4).collect();
            assert_eq!(digits(&quiet), "", "{} -12 dB", p.display());
            all.extend(pcm);
        }
        // All of them back to back, with line noise.
        let mut rng = StdRng::seed_from_u64(3);
        noise_at(&mut all, 30.0, &mut rng);
        assert_eq!(digits(&all), "");
    }

    use crate::media::tests::pcap_udp_payloads;

    #[test]
    fn sipp_speech_capture_gives_nothing() {
        // sipp's g711a.pcap: 7 s of A-law speech (RTP header 12 bytes).
        let packets = pcap_udp_payloads(include_bytes!("testdata/g711a.pcap"));
        let mut pcm = Vec::new();
        for p in packets {
            let mut out = vec![0i16; p.len() - 12];
            decode(Codec::Pcma, &p[12..], &mut out);
            pcm.extend(out);
        }
        assert_eq!(pcm.len(), 236 * 240);
        assert_eq!(digits(&pcm), "");
        // The same speech with keys pressed over it at a normal level.
        let mut mixed = pcm.clone();
        for (i, c) in "2580".chars().enumerate() {
            let at = 8000 + i * 8000;
            let k = dtmf_tone(c, 100).unwrap();
            for (m, t) in mixed[at..at + k.len()].iter_mut().zip(&k) {
                *m = m.saturating_add(*t);
            }
        }
        assert_eq!(digits(&mixed), "2580");
    }

    #[test]
    fn feeding_is_cheap() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut pcm = sequence(ALL, 100, 100, 0);
        add_noise(&mut pcm, 20.0, &mut rng);
        let mut speech = vowel(
            (110.0, 160.0),
            2000,
            &[(730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0)],
            12000.0,
        );
        pcm.append(&mut speech);
        let mut d = InbandDetector::new(8000);
        let cap = d.block.capacity();
        let start = std::time::Instant::now();
        for chunk in pcm.chunks(160) {
            d.feed(chunk);
        }
        let ns = start.elapsed().as_nanos() as f64 / pcm.len() as f64;
        eprintln!("in-band detector: {ns:.0} ns per sample");
        // Generous for a shared machine in a debug build; typical is far lower.
        assert!(ns < 2000.0, "{ns} ns per sample");
        // No buffer grew.
        assert_eq!(d.block.capacity(), cap);
        assert_eq!(
            d.queue.capacity(),
            VecDeque::<InbandDigit>::with_capacity(QUEUE_CAP).capacity()
        );
    }

    /// Talk-off check over any folder of 8 kHz mono 16-bit WAVs (recursive):
    /// `VMAIL_TALKOFF_DIR=/path cargo test --lib talkoff_folder -- --ignored --nocapture`.
    /// Prints every digit found and the two blocks in a row closest to a key.
    #[test]
    #[ignore]
    fn talkoff_folder() {
        let Ok(dir) = std::env::var("VMAIL_TALKOFF_DIR") else {
            return;
        };
        let mut files = Vec::new();
        wavs(Path::new(&dir), &mut files);
        let (mut seconds, mut hits) = (0.0, 0);
        let mut closest = (0.0f64, String::new());
        let mut hist = [0usize; 20];
        for p in &files {
            let mut r = hound::WavReader::open(p).unwrap();
            assert_eq!(r.spec().sample_rate, 8000, "{}", p.display());
            let pcm: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
            seconds += pcm.len() as f64 / 8000.0;
            for d in detect(&pcm) {
                hits += 1;
                eprintln!("{}: {d:?}", p.display());
            }
            let mut probe = InbandDetector::new(8000);
            let mut prev: Option<Fit> = None;
            for (i, b) in pcm.chunks_exact(probe.block_len).enumerate() {
                probe.block.clear();
                probe
                    .block
                    .extend(b.iter().map(|&x| f64::from(x) / 32768.0));
                let e = ac_energy(&probe.block);
                let fit = probe.fit(e);
                if let Some(f) = fit {
                    hist[((f.fraction * 20.0) as usize).min(19)] += 1;
                }
                // Two blocks in a row on the same key: the weaker one counts.
                if let (Some(a), Some(b)) = (prev, fit) {
                    let pair = a.fraction.min(b.fraction);
                    if (a.row, a.col) == (b.row, b.col) && pair > closest.0 {
                        closest = (
                            pair,
                            format!("{} blocks {}-{i}: {a:?} {b:?}", p.display(), i - 1),
                        );
                    }
                }
                prev = fit;
            }
        }
        eprintln!("fraction histogram (5 % steps): {hist:?}");
        eprintln!(
            "{} files, {seconds:.0} s, {hits} digits; closest pair {closest:?}",
            files.len()
        );
    }
}
