#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/
from material the project already has: SIP messages after RFC 4475
(torture.py), the sipp scenarios' messages (tests/sipp), the captured
INVITEs (tests/data/sip), the RTP captures (media/, src/media/testdata/),
the shipped site files (config/, tests/data/config/) and WAV headers.

Run from anywhere: python3 fuzz/seeds/make_corpus.py (rewrites the corpus).
"""

import json
import pathlib
import re
import shutil
import struct

import torture

FUZZ = pathlib.Path(__file__).resolve().parent.parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"


_written = {}


def write(target, name, data):
    """Writes one seed; a seed with the content of an earlier one is skipped."""
    data = data if isinstance(data, bytes) else data.encode()
    seen = _written.setdefault(target, set())
    if data in seen:
        return
    seen.add(data)
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


# ---------------------------------------------------------------- SIP

SIPP_KEYS = {
    "service": "1001", "domain": "test.example", "to_user": "1001",
    "caller": "2002", "local_ip": "127.0.0.1", "local_port": "5070",
    "remote_ip": "127.0.0.1", "remote_port": "5060", "transport": "UDP",
    "local_ip_type": "4", "media_ip_type": "4", "media_ip": "127.0.0.1",
    "media_port": "6000", "payloads": "8 0 101",
    "rtpmaps": "\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000"
               "\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16",
    "extra_headers": "", "pid": "4242", "call_number": "1",
    "call_id": "1-4242@127.0.0.1", "branch": "z9hG4bK-4242-1-0",
    "next_url": "sip:vmail@127.0.0.1:5060",
    "last_To:": "To: <sip:1001@test.example>;tag=vm1",
    "last_Via:": "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-vm-1",
    "last_From:": "From: <sip:vmail@test.example>;tag=vm1",
    "last_Call-ID:": "Call-ID: 1-4242@127.0.0.1",
    "last_CSeq:": "CSeq: 1 BYE",
    "resp_headers": "", "rtp_port": "6002",
    "status_line": "SIP/2.0 486 Busy Here",
    "cseq": "2", "digit": "5", "status": "486", "reason": "Busy Here",
}


def sipp_messages():
    """Messages of every <send> of the sipp scenarios, keywords filled in."""
    for xml in sorted((ROOT / "tests/sipp").glob("*.xml")):
        text = xml.read_text(encoding="latin-1")
        sends = re.findall(r"<send[^>]*>\s*<!\[CDATA\[(.*?)\]\]>", text, re.S)
        for i, raw in enumerate(sends):
            lines = [l.strip() for l in raw.strip("\n").split("\n")]
            while lines and not lines[0]:
                lines.pop(0)
            while lines and not lines[-1]:
                lines.pop()
            if not lines:
                continue
            if "" in lines:
                k = lines.index("")
                head, body = lines[:k], lines[k + 1:]
            else:
                head, body = lines, []
            body_text = "".join(l + "\r\n" for l in body)
            msg = "\r\n".join(head) + "\r\n\r\n" + body_text

            def fill(m):
                key = m.group(1)
                if key == "len":
                    return str(len(fill_keys(body_text).encode()))
                return SIPP_KEYS.get(key, m.group(0))

            def fill_keys(s):
                return re.sub(r"\[([A-Za-z_:\-]+)(?: [^\]]*)?\]",
                              lambda m: SIPP_KEYS.get(m.group(1), "x"), s)

            msg = re.sub(r"\[([A-Za-z_:\-]+)(?: [^\]]*)?\]", fill, msg)
            yield f"sipp-{xml.stem}-{i}", msg.encode("latin-1", "replace")


def captured_invites():
    for f in sorted((ROOT / "tests/data/sip").glob("*.sip")):
        data = f.read_bytes()
        if b"\r\n" not in data:
            data = data.replace(b"\n", b"\r\n")
        yield f"capture-{f.stem}", data


def sip():
    msgs = list(torture.messages()) + list(sipp_messages()) + list(captured_invites())
    for name, data in msgs:
        write("sip_message", name, data)
    # Streams: a few messages back to back, keep-alives between them.
    by = dict(msgs)
    streams = {
        "deposit-call": ["sipp-deposit-0", "sipp-deposit-1", "sipp-deposit-2"],
        "reinvite-call": [n for n in by if n.startswith("sipp-reinvite-")],
        "cancel": [n for n in by if n.startswith("sipp-cancel-")],
        "torture-valid": ["wsinv", "esc01", "lwsdisp", "transports"],
        "torture-invalid": ["clerr", "ncl", "multi01"],
        "compact-tcp": ["capture-invite_rfc4458_compact_tcp"],
        "dblreq": ["dblreq"],
        "options-dtmf": ["sipp-options-0", "sipp-deposit_dtmf-0"],
    }
    for name, parts in streams.items():
        data = b"\r\n\r\n".join(by[p] for p in parts if p in by)
        if data:
            write("sip_stream", name, data)
    write("sip_stream", "keepalives", b"\r\n\r\n\r\n\r\n\r\n")
    write("sip_stream", "pipelined-options", b"".join(
        by["lwsdisp"] for _ in range(3)))


# ---------------------------------------------------------------- SDP

SDP_EXTRA = {
    "plain-pcmu-dtmf": "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                       "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                       "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n",
    "g722-first": "v=0\r\no=- 2 2 IN IP4 192.0.2.2\r\ns=-\r\nc=IN IP4 192.0.2.2\r\nt=0 0\r\n"
                  "m=audio 4002 RTP/AVP 9 8 0 96\r\na=rtpmap:9 G722/8000\r\n"
                  "a=rtpmap:96 telephone-event/8000\r\na=ptime:30\r\na=maxptime:40\r\n",
    "hold-sendonly": "v=0\r\no=- 3 4 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
                     "m=audio 4004 RTP/AVP 8\r\na=sendonly\r\n",
    "srtp": "v=0\r\no=- 5 5 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
            "m=audio 4006 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
            "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n",
    "ipv6-media-level-c": "v=0\r\no=- 6 6 IN IP6 2001:db8::6\r\ns=-\r\nt=0 0\r\n"
                          "m=audio 4008 RTP/AVP 0\r\nc=IN IP6 2001:db8::7\r\na=inactive\r\n",
    "video-first-audio-port0": "v=0\r\no=- 7 7 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
                               "m=video 5000 RTP/AVP 31\r\nm=audio 0 RTP/AVP 0\r\nm=audio 4010 RTP/AVP 8 0\r\n"
                               "a=rtpmap:8 pcma/8000/1\r\na=rtcp-mux\r\n",
    "lf-only-unknown-lines": "v=0\no=- 8 8 IN IP4 192.0.2.8\ns=\xff\xfe\ni=info\nc=IN IP4 192.0.2.8\n"
                             "t=0 0\nb=AS:64\nz=0 0\nk=clear:x\nm=audio 4012 RTP/AVP 0 8 18\n"
                             "a=rtpmap:18 G729/8000\na=fmtp:18 annexb=no\na=x-unknown\n",
    "multicast": "v=0\r\no=- 9 9 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 224.2.1.1/127/3\r\nt=0 0\r\n"
                 "m=audio 4014/2 RTP/AVP 0\r\n",
    "broadcast": "v=0\r\no=- 10 10 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 255.255.255.255\r\nt=0 0\r\n"
                 "m=audio 4016 RTP/AVP 0\r\n",
    "dynamic-pcma": "v=0\r\no=- 11 11 IN IP4 192.0.2.11\r\ns=-\r\nc=IN IP4 192.0.2.11\r\nt=0 0\r\n"
                    "m=audio 4018 RTP/AVP 97 98\r\na=rtpmap:97 PCMA/8000\r\na=rtpmap:98 telephone-event/8000\r\n"
                    "a=fmtp:98 0-15\r\na=ptime:30\r\na=recvonly\r\n",
}


def sdp_bodies():
    """Bodies of the SIP seeds that have one."""
    for d in ("sip_message",):
        for f in sorted((CORPUS / d).iterdir()):
            data = f.read_bytes()
            k = data.find(b"\r\n\r\n")
            if k >= 0 and b"v=0" in data[k:]:
                body = data[k + 4:]
                yield f.name, body[body.find(b"v=0"):]


def sdp():
    seen = set()
    for name, body in sdp_bodies():
        if body not in seen:
            seen.add(body)
            write("sdp", name, body)
    for name, text in SDP_EXTRA.items():
        write("sdp", name, text.encode("latin-1"))


# ---------------------------------------------------------------- RTP


def pcap_udp_payloads(path):
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            ip, ethertype = 14, struct.unpack(">H", frame[12:14])[0]
            if ethertype == 0x8100:
                ip, ethertype = 18, struct.unpack(">H", frame[16:18])[0]
            if ethertype != 0x0800:
                continue
        elif linktype == 113:
            ip = 16
        elif linktype in (101, 228):
            ip = 0
        else:
            continue
        if len(frame) < ip + 20 or frame[ip] >> 4 != 4 or frame[ip + 9] != 17:
            continue
        udp = ip + (frame[ip] & 15) * 4
        out.append(frame[udp + 8:])
    return out


def rtp_input(cfg, packets, ctl=0):
    """The rtp_receiver input format: config byte, then per packet a control
    byte and a big-endian 2-byte length."""
    out = bytes([cfg])
    for p in packets:
        c = ctl(p) if callable(ctl) else ctl
        out += bytes([c]) + struct.pack(">H", len(p)) + p
    return out


def rtp():
    pcmu_dtmf101 = 0b0010  # PCMU, telephone-event 101
    pcma_dtmf101 = 0b0011  # PCMA, telephone-event 101
    caps = {}
    for d in ("media", "src/media/testdata"):
        for f in sorted((ROOT / d).glob("*.pcap")):
            caps.setdefault(f.stem, pcap_udp_payloads(f))
    for stem, pkts in caps.items():
        rtp_pkts = [p for p in pkts if len(p) >= 12 and p[0] >> 6 == 2]
        if not rtp_pkts:
            continue
        cfg = pcma_dtmf101 if ("pcma" in stem or "g711a" in stem) else pcmu_dtmf101
        write("rtp_receiver", f"{stem}-first20", rtp_input(cfg, rtp_pkts[:20]))
        if len(rtp_pkts) > 8:
            # Reordered, duplicated and lost packets, no drain between some.
            mixed = rtp_pkts[:8]
            mixed = [mixed[1], mixed[0], mixed[2], mixed[2], mixed[5], mixed[3], mixed[7]]
            write("rtp_receiver", f"{stem}-reordered", rtp_input(cfg, mixed, ctl=lambda p: len(p) & 1))
            write("rtp_receiver", f"{stem}-wrong-codec", rtp_input(cfg ^ 1, rtp_pkts[:6]))
            write("rtp_receiver", f"{stem}-reinvite", rtp_input(cfg, rtp_pkts[:6], ctl=2 | (cfg ^ 1) << 2))
        if "dtmf" in stem:
            write("rtp_receiver", f"{stem}-all", rtp_input(cfg, rtp_pkts))
            write("rtp_receiver", f"{stem}-depth0", rtp_input(cfg | 0b01000, rtp_pkts))
    # A sender restart (sequence jump), an SSRC change, and a timestamp jump.
    def pkt(seq, ts, ssrc, pt=0, payload=b"\xff" * 160, marker=0):
        return struct.pack(">BBHII", 0x80, (marker << 7) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload
    seq_jump = [pkt(100 + i, 160 * i, 1) for i in range(3)] + [pkt(40000 + i, 480 + 160 * i, 1) for i in range(3)]
    write("rtp_receiver", "seq-jump", rtp_input(pcmu_dtmf101, seq_jump))
    ssrc = [pkt(10 + i, 160 * i, 7) for i in range(3)] + [pkt(900 + i, 99999 + 160 * i, 8) for i in range(3)]
    write("rtp_receiver", "ssrc-change", rtp_input(pcmu_dtmf101, ssrc))
    tsjump = [pkt(1, 0, 3), pkt(2, 160, 3), pkt(3, 8000 * 60, 3), pkt(4, 8000 * 60 + 160, 3), pkt(5, 10, 3)]
    write("rtp_receiver", "ts-jump", rtp_input(pcmu_dtmf101, tsjump))
    wrap = [pkt(65534 + i, 0xFFFFFF00 + 160 * i, 5) for i in range(4)]
    write("rtp_receiver", "seq-ts-wrap", rtp_input(pcmu_dtmf101, wrap))
    cn = [pkt(1, 0, 9), pkt(2, 160, 9, pt=13, payload=b"\x40"), pkt(3, 8000, 9)]
    write("rtp_receiver", "comfort-noise", rtp_input(pcmu_dtmf101, cn))
    ev = lambda seq, ts, d, end, dur: pkt(seq, ts, 4, pt=101, payload=bytes([d, (0x80 if end else 0) | 10]) + struct.pack(">H", dur))
    dtmf = [pkt(1, 0, 4)] + [ev(2 + i, 160, 11, i >= 3, 160 * (i + 1)) for i in range(6)] + [pkt(8, 1120, 4)]
    write("rtp_receiver", "dtmf-pound-end-x3", rtp_input(pcmu_dtmf101, dtmf))
    padded = struct.pack(">BBHII", 0xA0, 0, 1, 0, 2) + b"\xd5" * 160 + b"\x00\x00\x00\x04"
    ext = struct.pack(">BBHII", 0x90, 0, 2, 160, 2) + struct.pack(">HH", 0xBEDE, 1) + b"\x10\x01\x00\x00" + b"\xd5" * 160
    write("rtp_receiver", "padding-extension", rtp_input(pcmu_dtmf101, [padded, ext]))


# ---------------------------------------------------------------- config


def srtp():
    """srtp_unprotect: the receiver's key is 30 bytes of the config byte.
    Bit 1 set: each datagram is protected with that key before use (so
    captured RTP becomes valid SRTP); clear: the datagrams are taken as
    they are (RTP in clear, truncated and random packets)."""
    pkts = [p for p in pcap_udp_payloads(ROOT / "media/g711a.pcap") if len(p) >= 12][:30]
    for suite in (0, 1):
        write("srtp_unprotect", f"protected-{suite}", rtp_input(0b10 | suite, pkts))
        write("srtp_unprotect", f"flipped-{suite}", rtp_input(0b10 | suite, pkts[:8], ctl=0))
        write("srtp_unprotect", f"clear-{suite}", rtp_input(suite, pkts[:8], ctl=1))
    write("srtp_unprotect", "short", rtp_input(0, [b"\x80", b"\x80" * 12, b"\x80" * 21, b""], ctl=1))
    write("srtp_unprotect", "replayed", rtp_input(0b10, pkts[:3] * 3, ctl=1))


def config():
    files = [ROOT / "config/vmail.json", *sorted((ROOT / "config/examples").glob("*.json")),
             *sorted((ROOT / "tests/data/config").glob("*.json"))]
    for f in files:
        write("config", f"{f.parent.name}-{f.stem}", f.read_bytes())


# ---------------------------------------------------------------- WAV


def wav_header(rate, data_len, fmt=1, channels=1, bits=16, riff=None):
    riff = 36 + data_len if riff is None else riff
    return (b"RIFF" + struct.pack("<I", riff & 0xFFFFFFFF) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, fmt, channels, rate,
            rate * channels * bits // 8, channels * bits // 8, bits) + b"data" + struct.pack("<I", data_len & 0xFFFFFFFF))


def recover_input(wav, sidecar=b""):
    return struct.pack("<H", len(sidecar)) + sidecar + wav


def wav():
    samples = struct.pack("<8h", 0, 1000, 2000, 1000, 0, -1000, -2000, -1000)
    sidecar = json.dumps({
        "id": "20270115T080000.000Z-vmail1-abc123", "received": "2027-01-15T08:00:00.000Z",
        "urgent": True, "info": {"caller_uri": "sip:2002@test.example", "caller_name": "Bob",
        "called_uri": "sip:1001@test.example", "cause": "busy", "codec": "PCMA", "site": "site1",
        "instance": "vmail1", "epoch": 7, "sample_rate": 16000}}).encode()
    seeds = {
        "complete-8k": recover_input(wav_header(8000, len(samples)) + samples),
        "header-zero-len-killed": recover_input(wav_header(8000, 0) + samples * 4),
        "header-says-more": recover_input(wav_header(8000, 1 << 20) + samples),
        "odd-length": recover_input(wav_header(8000, 0) + samples + b"\x01"),
        "header-only": recover_input(wav_header(8000, 0)),
        "one-sample": recover_input(wav_header(8000, 2) + b"\x01\x00"),
        "truncated-header": recover_input(wav_header(8000, 0)[:20]),
        "empty": recover_input(b""),
        "rate-16k": recover_input(wav_header(16000, len(samples)) + samples),
        "rate-absurd": recover_input(wav_header(1, len(samples)) + samples),
        "stereo-float": recover_input(wav_header(8000, len(samples), fmt=3, channels=2, bits=32) + samples),
        "not-riff": recover_input(b"OggS" + b"\x00" * 60),
        "with-sidecar": recover_input(wav_header(8000, 0) + samples, sidecar),
        "sidecar-bad-rate": recover_input(wav_header(8000, 0) + samples, sidecar.replace(b"16000", b"3")),
        "sidecar-garbage": recover_input(wav_header(8000, 0) + samples, b"{\"id\": 5, \"info\": [}"),
        "sidecar-only": recover_input(b"", sidecar),
        "tones-head": recover_input((ROOT / "media/tones.wav").read_bytes()[:300]),
    }
    for name, data in seeds.items():
        write("wav_recover", name, data)


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    sip()
    sdp()
    rtp()
    srtp()
    config()
    wav()
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} files")


if __name__ == "__main__":
    main()
