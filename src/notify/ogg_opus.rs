//! Opus in Ogg (RFC 7845) for the audio of notification e-mails: a
//! message of a minute is about 120 KB instead of the WAV's 960 KB (8 kHz)
//! or 1.9 MB (16 kHz), and every current mail client and phone plays it.
//!
//! Encoded with the reference libopus (the `opus` crate, also the call
//! codec), muxed with the `ogg` crate: one stream, the identification and
//! comment headers on pages of their own, then one packet per 20 ms with a
//! page about every second. The pre-skip is the encoder's look-ahead and
//! the last page's granule position trims the padding, so a decoder gives
//! back exactly the stored samples (RFC 7845 §4).

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

/// Ogg stream serial number of the one stream ("vmai").
const SERIAL: u32 = 0x766d_6169;

/// Packets per page (one second of 20 ms packets).
const PACKETS_PER_PAGE: usize = 50;

/// Encodes mono 16-bit `pcm` at `rate` (8000, 12000, 16000, 24000 or
/// 48000 Hz) as an Ogg Opus file.
pub fn encode(pcm: &[i16], rate: u32) -> Result<Vec<u8>, String> {
    if ![8000, 12000, 16000, 24000, 48000].contains(&rate) {
        return Err(format!("Opus cannot take audio at {rate} Hz"));
    }
    let err = |what: &str, e: opus::Error| format!("Opus encoder: {what}: {e}");
    let mut enc = opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Voip)
        .map_err(|e| err("create", e))?;
    let bitrate = if rate <= 8000 { 16_000 } else { 24_000 };
    enc.set_bitrate(opus::Bitrate::Bits(bitrate))
        .map_err(|e| err("bitrate", e))?;
    let lookahead = usize::try_from(enc.get_lookahead().map_err(|e| err("look-ahead", e))?)
        .map_err(|_| "Opus encoder: negative look-ahead".to_string())?;
    let scale = u64::from(48_000 / rate);
    let pre_skip = u16::try_from(lookahead as u64 * scale)
        .map_err(|_| "Opus encoder: look-ahead too long".to_string())?;

    let mut out = Vec::with_capacity(pcm.len() / 4 + 1024);
    let mut w = PacketWriter::new(&mut out);
    let ogg_err = |e: std::io::Error| format!("Ogg: {e}");

    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&rate.to_le_bytes()); // the input's rate, for information
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family 0: mono or stereo
    w.write_packet(head, SERIAL, PacketWriteEndInfo::EndPage, 0)
        .map_err(ogg_err)?;

    let vendor = concat!("vmail ", env!("CARGO_PKG_VERSION"));
    let mut tags = Vec::with_capacity(16 + vendor.len());
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor.as_bytes());
    tags.extend_from_slice(&0u32.to_le_bytes()); // no user comments
    w.write_packet(tags, SERIAL, PacketWriteEndInfo::EndPage, 0)
        .map_err(ogg_err)?;

    // The look-ahead's worth of zeros after the audio pushes its last
    // samples out of the encoder; the final granule position cuts the rest.
    let frame = (rate / 50) as usize;
    let frames = (pcm.len() + lookahead).div_ceil(frame).max(1);
    let end_granule = u64::from(pre_skip) + pcm.len() as u64 * scale;
    let mut chunk = vec![0i16; frame];
    let mut packet = [0u8; 1500];
    let mut granule = 0u64;
    for i in 0..frames {
        chunk.fill(0);
        let start = i * frame;
        if start < pcm.len() {
            let end = (start + frame).min(pcm.len());
            chunk[..end - start].copy_from_slice(&pcm[start..end]);
        }
        let n = enc
            .encode(&chunk, &mut packet)
            .map_err(|e| err("encode", e))?;
        granule += frame as u64 * scale;
        let last = i + 1 == frames;
        let (info, pos) = if last {
            (PacketWriteEndInfo::EndStream, end_granule)
        } else if (i + 1) % PACKETS_PER_PAGE == 0 {
            (PacketWriteEndInfo::EndPage, granule)
        } else {
            (PacketWriteEndInfo::NormalPacket, granule)
        };
        w.write_packet(packet[..n].to_vec(), SERIAL, info, pos)
            .map_err(ogg_err)?;
    }
    drop(w);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes an Ogg Opus file back to 48 kHz mono, honouring the
    /// pre-skip and the final granule position.
    fn decode(file: &[u8]) -> Vec<i16> {
        let mut r = ogg::reading::PacketReader::new(std::io::Cursor::new(file));
        let head = r.read_packet_expected().unwrap();
        assert_eq!(&head.data[..8], b"OpusHead");
        let pre_skip = u16::from_le_bytes([head.data[10], head.data[11]]) as usize;
        let tags = r.read_packet_expected().unwrap();
        assert_eq!(&tags.data[..8], b"OpusTags");
        let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0i16; 5760];
        let mut last_granule = 0;
        while let Some(p) = r.read_packet().unwrap() {
            let n = dec.decode(&p.data, &mut buf, false).unwrap();
            out.extend_from_slice(&buf[..n]);
            if p.last_in_stream() {
                last_granule = p.absgp_page() as usize;
            }
        }
        out.truncate(last_granule);
        out.drain(..pre_skip.min(out.len()));
        out
    }

    fn power_at(x: &[i16], rate: f32, hz: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * hz / rate;
        let (mut re, mut im) = (0.0f32, 0.0f32);
        for (n, s) in x.iter().enumerate() {
            re += *s as f32 * (w * n as f32).cos();
            im += *s as f32 * (w * n as f32).sin();
        }
        (re * re + im * im).sqrt() / x.len() as f32
    }

    #[test]
    fn a_tone_comes_back_with_its_length_at_each_rate() {
        for rate in [8000u32, 16000] {
            // 1.234 s: not a whole number of frames.
            let pcm = crate::media::tone(1000.0, 1234, 8000, rate);
            let file = encode(&pcm, rate).unwrap();
            assert_eq!(&file[..4], b"OggS");
            assert!(file.len() < pcm.len(), "{rate}: {} bytes", file.len());
            let back = decode(&file);
            assert_eq!(back.len(), pcm.len() * (48_000 / rate) as usize, "{rate}");
            let mid = &back[back.len() / 4..back.len() * 3 / 4];
            let on = power_at(mid, 48_000.0, 1000.0);
            let off = power_at(mid, 48_000.0, 2500.0);
            assert!(
                on > 20.0 * off.max(1.0),
                "{rate}: 1 kHz {on}, 2.5 kHz {off}"
            );
        }
    }

    #[test]
    fn empty_audio_and_odd_rates() {
        let file = encode(&[], 8000).unwrap();
        assert!(decode(&file).is_empty());
        assert!(encode(&[0; 100], 44_100).is_err());
    }
}
