//! The canonical 44-byte WAV header (PCM 16-bit mono) the store writes and
//! repairs. Files are read back with `hound` in the tests.

/// Length of the header.
pub const HEADER_LEN: u64 = 44;

/// Largest data chunk a 44-byte-header WAV can describe (even).
pub const MAX_DATA_LEN: u64 = (u32::MAX as u64 - 36) & !1;

/// Builds the header for `data_len` bytes of PCM 16-bit mono audio.
pub fn header(sample_rate: u32, data_len: u64) -> [u8; 44] {
    let data_len = u32::try_from(data_len.min(MAX_DATA_LEN)).unwrap_or(u32::MAX - 37);
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&sample_rate.saturating_mul(2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes()); // block align
    h[34..36].copy_from_slice(&16u16.to_le_bytes()); // bits per sample
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// The sample rate of a header this module wrote, if `bytes` is one
/// (PCM, mono, 16-bit, plausible rate); `None` for anything else.
pub fn parse_rate(bytes: &[u8]) -> Option<u32> {
    let h = bytes.get(..44)?;
    let u16_at = |i: usize| h.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        h.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if h.get(0..4)? != b"RIFF" || h.get(8..12)? != b"WAVE" || h.get(12..16)? != b"fmt " {
        return None;
    }
    if u16_at(20)? != 1 || u16_at(22)? != 1 || u16_at(34)? != 16 {
        return None;
    }
    let rate = u32_at(24)?;
    valid_rate(rate).then_some(rate)
}

/// Sample rates the store accepts.
pub fn valid_rate(rate: u32) -> bool {
    (4000..=96_000).contains(&rate)
}

/// Milliseconds of `samples` at `rate`.
pub fn duration_ms(samples: u64, rate: u32) -> u64 {
    if rate == 0 {
        return 0;
    }
    samples.saturating_mul(1000) / u64::from(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_readable_by_hound() {
        let mut bytes = header(8000, 8).to_vec();
        bytes.extend_from_slice(&[1, 0, 2, 0, 3, 0, 4, 0]);
        let r = hound::WavReader::new(std::io::Cursor::new(bytes.clone())).unwrap();
        assert_eq!(r.spec().sample_rate, 8000);
        assert_eq!(r.spec().channels, 1);
        assert_eq!(r.spec().bits_per_sample, 16);
        assert_eq!(r.len(), 4);
        assert_eq!(parse_rate(&bytes), Some(8000));
        assert_eq!(parse_rate(&bytes[..20]), None);
        assert_eq!(parse_rate(&[0u8; 44]), None);
        assert_eq!(duration_ms(12_000, 8000), 1500);
    }
}
