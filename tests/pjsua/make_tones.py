#!/usr/bin/env python3
"""Generate vmail's tone test media (standard library only).

Writes, by default into media/:
- tones.wav: 8 kHz, 16-bit, mono. 200 ms silence, then five tones
  (400, 600, 800, 1000, 1200 Hz), 300 ms each with 200 ms of silence between,
  then 200 ms silence: 2.7 s in all. Tone onsets: 200, 700, 1200, 1700,
  2200 ms. Amplitude 0.3 of full scale, 5 ms raised-cosine ramps.
- tones_pcma.pcap: the same audio as an RTP stream (PCMA, payload type 8,
  20 ms packets), Ethernet/IPv4/UDP 127.0.0.1:5000 -> 127.0.0.1:6000, for
  sipp's play_pcap_audio (sipp rewrites addresses and ports when it plays).
- tones_pcmu.pcap: the same with PCMU (payload type 0).

The committed files were made with `python3 tests/pjsua/make_tones.py`;
the Rust helper tests/common/mod.rs (`tone_sequence`) finds the tones again.
"""

import argparse
import math
import os
import struct
import wave

RATE = 8000
FREQS = [400, 600, 800, 1000, 1200]
TONE_MS = 300
GAP_MS = 200
LEAD_MS = 200
AMPLITUDE = 0.3
RAMP_MS = 5


def tone_samples():
    out = [0] * (LEAD_MS * RATE // 1000)
    ramp = RAMP_MS * RATE // 1000
    n = TONE_MS * RATE // 1000
    for i, f in enumerate(FREQS):
        for k in range(n):
            env = 1.0
            if k < ramp:
                env = 0.5 - 0.5 * math.cos(math.pi * k / ramp)
            elif k >= n - ramp:
                env = 0.5 - 0.5 * math.cos(math.pi * (n - 1 - k) / ramp)
            v = AMPLITUDE * env * math.sin(2 * math.pi * f * k / RATE)
            out.append(int(round(v * 32767)))
        if i + 1 < len(FREQS):
            out.extend([0] * (GAP_MS * RATE // 1000))
    out.extend([0] * (LEAD_MS * RATE // 1000))
    return out


def alaw(sample):
    """G.711 A-law encoding of one 16-bit sample."""
    s = sample >> 3  # 13-bit magnitude domain
    if s >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        s = -s - 1
    seg_end = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]
    seg = 0
    while seg < 8 and s > seg_end[seg]:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    if seg < 2:
        aval |= (s >> 1) & 0x0F
    else:
        aval |= (s >> seg) & 0x0F
    return aval ^ mask


def ulaw(sample):
    """G.711 mu-law encoding of one 16-bit sample (the ITU reference way)."""
    v = sample >> 2  # 14-bit domain
    if v < 0:
        v = -v
        mask = 0x7F
    else:
        mask = 0xFF
    v = min(v, 8159) + 0x21
    seg_end = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]
    seg = 0
    while seg < 8 and v > seg_end[seg]:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask


def write_wav(path, samples):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))


def ip_checksum(header):
    total = 0
    for i in range(0, len(header), 2):
        total += (header[i] << 8) | header[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcap(path, samples, pt, encode):
    frame = RATE * 20 // 1000  # 160 samples, 20 ms
    ssrc = 0x766D6169 + pt  # "vmai"
    seq0, ts0 = 1000, 16000
    src = bytes([127, 0, 0, 1])
    dst = bytes([127, 0, 0, 1])
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    t0 = 1_700_000_000.0
    nframes = (len(samples) + frame - 1) // frame
    for i in range(nframes):
        chunk = samples[i * frame : (i + 1) * frame]
        chunk += [0] * (frame - len(chunk))
        payload = bytes(encode(s) for s in chunk)
        marker = 0x80 if i == 0 else 0
        rtp = struct.pack("!BBHII", 0x80, marker | pt, (seq0 + i) & 0xFFFF, ts0 + i * frame, ssrc) + payload
        udp = struct.pack("!HHHH", 5000, 6000, 8 + len(rtp), 0) + rtp
        iph = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src, dst))
        struct.pack_into("!H", iph, 10, ip_checksum(bytes(iph)))
        eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
        pkt = eth + bytes(iph) + udp
        t = t0 + i * 0.020
        sec = int(t)
        usec = int(round((t - sec) * 1_000_000))
        out.append(struct.pack("<IIII", sec, usec, len(pkt), len(pkt)) + pkt)
    with open(path, "wb") as f:
        f.write(b"".join(out))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "media"))
    p = argparse.ArgumentParser(description="generate vmail's tone test media")
    p.add_argument("--out-dir", default=default_out)
    args = p.parse_args()
    samples = tone_samples()
    write_wav(os.path.join(args.out_dir, "tones.wav"), samples)
    write_pcap(os.path.join(args.out_dir, "tones_pcma.pcap"), samples, 8, alaw)
    write_pcap(os.path.join(args.out_dir, "tones_pcmu.pcap"), samples, 0, ulaw)
    print("wrote tones.wav, tones_pcma.pcap, tones_pcmu.pcap into %s" % args.out_dir)


if __name__ == "__main__":
    main()
