//! Silence detection on decoded PCM, for "end the recording after N seconds
//! of silence".
//!
//! The PCM is cut into 20 ms blocks; a block is *silent* when its RMS energy
//! (DC offset removed) is below the threshold, by default −42 dBFS (RMS
//! ≈ 260 of 32768, the level of the classic "256 average magnitude" PBX
//! silence thresholds). Line noise and comfort noise of real phones sit around
//! −50 to −70 dBFS and count as silence; speech sits at −35 to −15 dBFS.
//! A loud burst shorter than 60 ms (a click, a pop) does not count as speech:
//! only three loud blocks in a row reset the silence counter.

/// Default silence threshold in dBFS (RMS per 20 ms block).
pub const DEFAULT_SILENCE_DBFS: f32 = -42.0;

/// Loud blocks in a row needed to count as speech.
const SPEECH_BLOCKS: u32 = 3;

/// Measures how long the recorded audio has been silent.
#[derive(Debug, Clone)]
pub struct SilenceDetector {
    block_len: u32,
    block_ms: u64,
    /// Threshold on `N·Σx² − (Σx)²` (N² times the AC power) for one block.
    threshold: u128,
    // Block being accumulated.
    n: u32,
    sum: i64,
    sum_sq: u64,
    /// Blocks since the last speech (including unconfirmed loud blocks).
    silent_blocks: u64,
    loud_run: u32,
}

impl SilenceDetector {
    /// A detector for PCM at `rate` Hz with the default threshold.
    pub fn new(rate: u32) -> Self {
        Self::with_threshold(rate, DEFAULT_SILENCE_DBFS)
    }

    /// A detector with a threshold in dBFS (RMS of a 20 ms block).
    pub fn with_threshold(rate: u32, threshold_dbfs: f32) -> Self {
        let block_len = (rate / 50).max(1);
        let rms = 32768.0f64 * 10f64.powf(f64::from(threshold_dbfs.min(0.0)) / 20.0);
        let n = f64::from(block_len);
        // N·Σx² − (Σx)² = N²·var; compare against N²·rms².
        let threshold = (n * n * rms * rms) as u128;
        SilenceDetector {
            block_len,
            block_ms: 20,
            threshold,
            n: 0,
            sum: 0,
            sum_sq: 0,
            silent_blocks: 0,
            loud_run: 0,
        }
    }

    /// Feeds decoded PCM (any slice length).
    pub fn feed(&mut self, pcm: &[i16]) {
        for &s in pcm {
            let v = i64::from(s);
            self.sum += v;
            self.sum_sq += (v * v) as u64;
            self.n += 1;
            if self.n == self.block_len {
                self.end_block();
            }
        }
    }

    fn end_block(&mut self) {
        let n = u128::from(self.n);
        let sum = self.sum.unsigned_abs() as u128;
        let energy = (n * u128::from(self.sum_sq)).saturating_sub(sum * sum);
        self.n = 0;
        self.sum = 0;
        self.sum_sq = 0;
        self.silent_blocks += 1;
        if energy < self.threshold {
            self.loud_run = 0;
        } else {
            self.loud_run += 1;
            if self.loud_run >= SPEECH_BLOCKS {
                self.silent_blocks = 0;
            }
        }
    }

    /// Milliseconds of silence up to the end of the audio fed (whole blocks).
    pub fn silent_ms(&self) -> u64 {
        self.silent_blocks * self.block_ms
    }

    /// Forgets everything (e.g. when recording starts after the beep).
    pub fn reset(&mut self) {
        self.n = 0;
        self.sum = 0;
        self.sum_sq = 0;
        self.silent_blocks = 0;
        self.loud_run = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tone::tone;
    use super::*;
    use rand::{Rng, SeedableRng};

    fn noise(ms: u32, amplitude: i16, seed: u64) -> Vec<i16> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..ms * 8)
            .map(|_| rng.gen_range(-amplitude..=amplitude))
            .collect()
    }

    #[test]
    fn digital_silence_and_line_noise_are_silent() {
        let mut d = SilenceDetector::new(8000);
        d.feed(&vec![0; 8000]);
        assert_eq!(d.silent_ms(), 1000);
        // Uniform noise of ±200 has RMS ≈ 115 ≈ −49 dBFS: a noisy line.
        d.feed(&noise(1000, 200, 1));
        assert_eq!(d.silent_ms(), 2000);
        // A DC offset is not energy.
        d.feed(&vec![3000; 800]);
        assert_eq!(d.silent_ms(), 2100);
    }

    #[test]
    fn speech_level_resets() {
        let mut d = SilenceDetector::new(8000);
        d.feed(&vec![0; 8000]);
        // A 400 Hz tone at −30 dBFS peak is quiet speech level.
        d.feed(&tone(400.0, 200, 1036, 8000));
        assert_eq!(d.silent_ms(), 0);
        d.feed(&vec![0; 1600]);
        assert_eq!(d.silent_ms(), 200);
    }

    #[test]
    fn clicks_do_not_reset() {
        let mut d = SilenceDetector::new(8000);
        d.feed(&vec![0; 8000]);
        d.feed(&tone(1000.0, 40, 20000, 8000));
        d.feed(&vec![0; 800]);
        assert_eq!(d.silent_ms(), 1140);
        d.reset();
        assert_eq!(d.silent_ms(), 0);
    }

    #[test]
    fn partial_blocks_carry_over() {
        let mut d = SilenceDetector::new(8000);
        for _ in 0..100 {
            d.feed(&[0; 7]);
        }
        assert_eq!(d.silent_ms(), 80); // 700 samples = 4 whole blocks
    }
}
