//! Tone generation for beeps, test signals and DTMF.

use std::f32::consts::TAU;

use super::dtmf::digit_to_event;
use super::error::MediaError;

/// A sine tone of `ms` milliseconds at `rate` Hz, peak `amplitude`.
pub fn tone(freq_hz: f32, ms: u32, amplitude: i16, rate: u32) -> Vec<i16> {
    let n = u64::from(ms) * u64::from(rate) / 1000;
    let step = TAU * freq_hz / rate.max(1) as f32;
    let amp = f32::from(amplitude);
    (0..n)
        .map(|i| {
            // Reduce the phase in f64 so long tones stay accurate.
            let phase = (i as f64 * f64::from(step)) % std::f64::consts::TAU;
            (amp * (phase as f32).sin()) as i16
        })
        .collect()
}

/// Low and high frequencies (Hz) of a DTMF digit.
pub fn dtmf_frequencies(digit: char) -> Option<(f32, f32)> {
    const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    // (row, column) of the keypad, by RFC 4733 event code.
    const POS: [(usize, usize); 16] = [
        (3, 1), // 0
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 0),
        (2, 1),
        (2, 2),
        (3, 0), // *
        (3, 2), // #
        (0, 3), // A
        (1, 3),
        (2, 3),
        (3, 3), // D
    ];
    let (row, col) = *POS.get(usize::from(digit_to_event(digit)?))?;
    Some((*LOW.get(row)?, *HIGH.get(col)?))
}

/// An in-band DTMF tone pair for `digit`, 8 kHz, each component at −10 dBFS peak.
pub fn dtmf_tone(digit: char, ms: u32) -> Result<Vec<i16>, MediaError> {
    let (lo, hi) = dtmf_frequencies(digit).ok_or(MediaError::InvalidDigit(digit))?;
    let a = tone(lo, ms, 10362, 8000);
    let b = tone(hi, ms, 10362, 8000);
    Ok(a.iter()
        .zip(&b)
        .map(|(&x, &y)| x.saturating_add(y))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goertzel power of `freq` in `pcm` (test helper).
    fn power(pcm: &[i16], freq: f32) -> f64 {
        let k = 2.0 * (f64::from(TAU * freq / 8000.0)).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in pcm {
            let s = f64::from(x) + k * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - k * s1 * s2
    }

    #[test]
    fn tone_length_and_peak() {
        let t = tone(1000.0, 250, 8000, 8000);
        assert_eq!(t.len(), 2000);
        let peak = t.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((7900..=8000).contains(&peak), "{peak}");
        assert!(tone(1000.0, 10, 100, 0).is_empty());
    }

    #[test]
    fn dtmf_pairs() {
        assert_eq!(dtmf_frequencies('1'), Some((697.0, 1209.0)));
        assert_eq!(dtmf_frequencies('0'), Some((941.0, 1336.0)));
        assert_eq!(dtmf_frequencies('#'), Some((941.0, 1477.0)));
        assert_eq!(dtmf_frequencies('D'), Some((941.0, 1633.0)));
        assert!(matches!(
            dtmf_tone('x', 10),
            Err(MediaError::InvalidDigit('x'))
        ));
        let t = dtmf_tone('5', 100).unwrap();
        assert_eq!(t.len(), 800);
        let on = power(&t, 770.0).min(power(&t, 1336.0));
        let off = power(&t, 697.0).max(power(&t, 1209.0));
        assert!(on > 50.0 * off);
    }
}
