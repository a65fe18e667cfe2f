//! Receiver scenarios: jitter buffer, timeline, RFC 4733, captures, properties.

use super::*;
use proptest::prelude::*;

const SSRC: u32 = 0x1234_5678;

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A PCMU frame whose samples all decode to a value unique to `i`.
fn frame_byte(i: u32) -> u8 {
    0x10 + (i % 0x60) as u8
}

fn audio(seq: u16, ts: u32, i: u32) -> Vec<u8> {
    rtp(0, seq, ts, SSRC, false, &[frame_byte(i); 160])
}

fn event(seq: u16, ts: u32, code: u8, end: bool, duration: u16) -> Vec<u8> {
    let d = duration.to_be_bytes();
    rtp(
        101,
        seq,
        ts,
        SSRC,
        false,
        &[code, if end { 0x8a } else { 0x0a }, d[0], d[1]],
    )
}

fn expected_frame(i: u32) -> Vec<i16> {
    vec![Codec::Pcmu.decode_sample(frame_byte(i)); 160]
}

fn receiver() -> RtpReceiver {
    RtpReceiver::new(RxConfig::new(Codec::Pcmu, Some(101)))
}

/// Pushes each packet and drains after each, then flushes; returns all PCM.
fn run(rx: &mut RtpReceiver, packets: &[Vec<u8>]) -> Vec<i16> {
    let mut out = Vec::new();
    for p in packets {
        rx.push(p);
        rx.drain(&mut |s: &[i16]| out.extend_from_slice(s));
    }
    rx.flush(&mut |s: &[i16]| out.extend_from_slice(s));
    assert_eq!(out.len() as u64, rx.media_samples());
    out
}

fn digits(rx: &mut RtpReceiver) -> String {
    std::iter::from_fn(|| rx.poll_dtmf())
        .map(|e| e.digit)
        .collect()
}

fn stream(n: u32, seq0: u16, ts0: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| audio(seq0.wrapping_add(i as u16), ts0.wrapping_add(i * 160), i))
        .collect()
}

fn expected(n: u32, missing: &[u32]) -> Vec<i16> {
    (0..n)
        .flat_map(|i| {
            if missing.contains(&i) {
                vec![0; 160]
            } else {
                expected_frame(i)
            }
        })
        .collect()
}

#[test]
fn in_order_stream_exact() {
    let mut rx = receiver();
    let out = run(&mut rx, &stream(50, 1000, 5000));
    assert_eq!(out, expected(50, &[]));
    let st = rx.stats();
    assert_eq!((st.received, st.audio, st.lost, st.late), (50, 50, 0, 0));
}

#[test]
fn drain_holds_back_jitter_depth() {
    let mut rx = receiver();
    let mut n = 0usize;
    for p in stream(10, 0, 0) {
        rx.push(&p);
        rx.drain(&mut |s: &[i16]| n += s.len());
    }
    // 60 ms = 3 frames of 20 ms stay buffered until more arrive or flush.
    assert_eq!(n, 7 * 160);
    rx.flush(&mut |s: &[i16]| n += s.len());
    assert_eq!(n, 10 * 160);
}

#[test]
fn reordering_within_depth() {
    let mut pk = stream(30, 100, 0);
    for i in (0..28).step_by(3) {
        pk.swap(i, i + 2); // displaced by two packets
    }
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(30, &[]));
    assert_eq!((rx.stats().lost, rx.stats().late), (0, 0));
}

#[test]
fn reordered_first_packets_are_not_lost() {
    let mut pk = stream(10, 100, 0);
    pk.swap(0, 1);
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(10, &[]));
}

#[test]
fn loss_becomes_silence_of_exact_length() {
    let pk: Vec<_> = stream(40, 7, 123)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| ![5, 6, 20].contains(i))
        .map(|(_, p)| p)
        .collect();
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(40, &[5, 6, 20]));
    assert_eq!(rx.stats().lost, 3);
}

#[test]
fn late_packet_dropped_and_counted() {
    let all = stream(20, 0, 0);
    let mut pk: Vec<_> = all.clone();
    let p3 = pk.remove(3);
    pk.insert(10, p3); // arrives 7 packets late, after its slot was released
    let mut rx = receiver();
    let out = run(&mut rx, &pk);
    assert_eq!(out, expected(20, &[3]));
    let st = rx.stats();
    assert_eq!((st.late, st.lost, st.duplicate), (1, 1, 0));
}

#[test]
fn duplicates_dropped() {
    let mut pk = Vec::new();
    for p in stream(20, 0, 0) {
        pk.push(p.clone());
        pk.push(p);
    }
    pk.push(audio(2, 320, 2)); // long after release: still known as received
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(20, &[]));
    assert_eq!(rx.stats().duplicate, 21);
    assert_eq!(rx.stats().late, 0);
}

#[test]
fn sequence_wrap() {
    let mut pk = stream(30, 65530, 0);
    pk.swap(5, 6); // reorder across the wrap
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(30, &[]));
    assert_eq!(rx.stats().lost, 0);
}

#[test]
fn timestamp_wrap() {
    let pk: Vec<_> = stream(30, 1, u32::MAX - 1000)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 7)
        .map(|(_, p)| p)
        .collect();
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(30, &[7]));
    assert_eq!(rx.stats().resyncs, 0);
}

#[test]
fn ssrc_change_continues_without_gap() {
    let mut pk = stream(10, 500, 8000);
    for i in 10..20u32 {
        let seq = 40000 + i as u16;
        let ts = 9_000_000 + i * 160;
        pk.push(rtp(0, seq, ts, 0xabcd, false, &[frame_byte(i); 160]));
    }
    // Stragglers of the old SSRC after the change are dropped, even one
    // that was never received before.
    pk.insert(12, audio(509, 8000 + 9 * 160, 9));
    pk.insert(13, audio(510, 8000 + 10 * 160, 10));
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(20, &[]));
    let st = rx.stats();
    assert_eq!(st.ssrc_changes, 1);
    assert_eq!(st.late, 2);
    assert_eq!(rx.ssrc(), Some(0xabcd));
}

#[test]
fn silence_suppression_gap_is_filled() {
    let mut pk = stream(10, 0, 0);
    // Talkspurt after 2 s of suppressed silence: seq continues, ts jumps.
    for i in 10..20u32 {
        pk.push(audio(i as u16, i * 160 + 16000, i));
    }
    let mut rx = receiver();
    let out = run(&mut rx, &pk);
    let mut want = expected(10, &[]);
    want.extend(std::iter::repeat_n(0, 16000));
    want.extend((10..20).flat_map(expected_frame));
    assert_eq!(out, want);
    assert_eq!(rx.stats().lost, 0);
}

#[test]
fn comfort_noise_pause_is_silence_as_it_arrives() {
    let mut rx = receiver();
    let mut out = Vec::new();
    let mut seq = 0u16;
    for p in stream(10, 0, 0) {
        rx.push(&p);
        seq += 1;
    }
    rx.drain(&mut |s: &[i16]| out.extend_from_slice(s));
    // 8 s pause signalled by comfort noise every 200 ms (longer than the jump clamp).
    let mut last = rx.media_samples();
    for k in 0..40u32 {
        let r = rx.push(&rtp(13, seq, 1600 + k * 1600, SSRC, k == 0, &[60]));
        assert_eq!(r, PushResult::ComfortNoise);
        seq += 1;
        rx.drain(&mut |s: &[i16]| out.extend_from_slice(s));
        if k > 3 {
            assert!(rx.media_samples() > last, "silence flows during the pause");
        }
        last = rx.media_samples();
    }
    for i in 10..15u32 {
        rx.push(&audio(seq, 1600 + 64000 + (i - 10) * 160, i));
        seq += 1;
    }
    rx.flush(&mut |s: &[i16]| out.extend_from_slice(s));
    let mut want = expected(10, &[]);
    want.extend(std::iter::repeat_n(0, 64000));
    want.extend((10..15).flat_map(expected_frame));
    assert_eq!(out, want);
    let st = rx.stats();
    assert_eq!((st.comfort_noise, st.lost, st.resyncs), (40, 0, 0));
}

#[test]
fn absurd_timestamp_jumps_resync() {
    let mut pk = stream(10, 0, 0);
    // 1 hour forward with the next sequence number, then 10 s backwards.
    for i in 10..20u32 {
        pk.push(audio(i as u16, i * 160 + 8000 * 3600, i));
    }
    for i in 20..30u32 {
        pk.push(audio(i as u16, i * 160 + 8000 * 3590, i));
    }
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(30, &[]));
    assert_eq!(rx.stats().resyncs, 2);
}

#[test]
fn long_burst_loss_keeps_media_time() {
    // 7 s of lost packets: longer than the jump clamp, but explained by the
    // sequence numbers, and longer than the ring (parked discontinuity).
    let pk: Vec<_> = stream(400, 60000, 0)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !(20..370).contains(i))
        .map(|(_, p)| p)
        .collect();
    let missing: Vec<u32> = (20..370).collect();
    let mut rx = receiver();
    assert_eq!(run(&mut rx, &pk), expected(400, &missing));
    assert_eq!(rx.stats().lost, 350);
    assert_eq!(rx.stats().resyncs, 0);
}

#[test]
fn sequence_restart_needs_confirmation() {
    let mut pk = stream(10, 100, 0);
    // Sender restarts its sequence (same SSRC) at 30000, timestamps continue.
    for i in 10..20u32 {
        pk.push(audio(30000 + i as u16, i * 160, i));
    }
    let mut rx = receiver();
    let out = run(&mut rx, &pk);
    // The first packet of the new sequence is probation (dropped): silence.
    assert_eq!(out, expected(20, &[10]));
    assert_eq!(rx.stats().discarded, 1);
    assert_eq!(rx.stats().resyncs, 1);
}

#[test]
fn single_digit_three_end_packets() {
    let mut pk = stream(10, 0, 0);
    let ts = 1600;
    for (k, dur) in [160u16, 320, 480, 640].iter().enumerate() {
        pk.push(event(10 + k as u16, ts, 1, false, *dur));
    }
    for k in 0..3u16 {
        pk.push(event(14 + k, ts, 1, true, 800));
    }
    for i in 10..20u32 {
        pk.push(audio(7 + i as u16, ts + 800 + (i - 10) * 160, i));
    }
    let mut rx = receiver();
    let out = run(&mut rx, &pk);
    let ev: Vec<DtmfEvent> = std::iter::from_fn(|| rx.poll_dtmf()).collect();
    assert_eq!(
        ev,
        vec![DtmfEvent {
            digit: '1',
            duration_ms: 100,
            rtp_ts: 1600
        }]
    );
    // Audio around the key press; the key press itself is silence.
    let mut want = expected(10, &[]);
    want.extend(std::iter::repeat_n(0, 800));
    want.extend((10..20).flat_map(expected_frame));
    assert_eq!(out, want);
    let st = rx.stats();
    assert_eq!((st.dtmf, st.audio, st.lost), (7, 20, 0));
}

#[test]
fn digit_with_lost_end_then_another() {
    let pk = vec![
        event(1, 0, 1, false, 160),
        event(2, 0, 1, false, 320),
        // end packets of '1' lost
        event(6, 2000, 2, false, 160),
        event(7, 2000, 2, true, 480),
        event(8, 2000, 2, true, 480),
        event(9, 2000, 2, true, 480),
    ];
    let mut rx = receiver();
    let out = run(&mut rx, &pk);
    assert_eq!(digits(&mut rx), "12");
    // Only events: their time (0..2480) is silence.
    assert_eq!(out.len(), 2480);
    assert!(out.iter().all(|&s| s == 0));
}

#[test]
fn same_digit_twice() {
    let mut pk = Vec::new();
    let mut seq = 0u16;
    for ts in [0u32, 4000] {
        for (end, dur) in [
            (false, 160u16),
            (false, 320),
            (true, 480),
            (true, 480),
            (true, 480),
        ] {
            pk.push(event(seq, ts, 1, end, dur));
            seq += 1;
        }
    }
    let mut rx = receiver();
    run(&mut rx, &pk);
    assert_eq!(digits(&mut rx), "11");
}

#[test]
fn sipp_style_end_packets_with_one_sequence_number() {
    // sipp's captures repeat the end packet with the same sequence number.
    let pk = vec![
        event(10, 800, 9, false, 320),
        event(11, 800, 9, true, 640),
        event(11, 800, 9, true, 640),
        event(11, 800, 9, true, 640),
    ];
    let mut rx = receiver();
    run(&mut rx, &pk);
    assert_eq!(digits(&mut rx), "9");
    assert_eq!(rx.stats().duplicate, 2);
}

#[test]
fn events_mixed_with_audio_keep_media_time() {
    // Audio, a key press while audio stops, audio again, key press at the end.
    let mut pk = stream(5, 0, 0);
    pk.push(event(5, 800, 5, false, 400));
    pk.push(event(6, 800, 5, true, 1200));
    pk.push(event(7, 800, 5, true, 1200));
    pk.push(audio(8, 2000, 5));
    pk.push(audio(9, 2160, 6));
    pk.push(event(10, 2320, 11, false, 400));
    pk.push(event(11, 2320, 11, false, 800));
    let mut rx = receiver();
    let out = run(&mut rx, &pk);
    assert_eq!(out.len(), 2320 + 800);
    assert_eq!(
        digits(&mut rx),
        "5#",
        "an open key press ends with the call"
    );
}

#[test]
fn garbage_and_wrong_payload_types_counted() {
    let mut rx = receiver();
    let mut sink = |_: &[i16]| {};
    assert_eq!(rx.push(&[]), PushResult::Ignored(IgnoreReason::Malformed));
    assert_eq!(
        rx.push(&[0x80, 0, 1]),
        PushResult::Ignored(IgnoreReason::Malformed)
    );
    let mut v1 = audio(1, 0, 0);
    v1[0] = 0x40; // version 1
    assert_eq!(rx.push(&v1), PushResult::Ignored(IgnoreReason::Malformed));
    let mut cc = audio(1, 0, 0);
    cc[0] = 0x8f; // 15 CSRCs announced, 160 bytes present: fine, but 13 bytes not
    assert_eq!(
        rx.push(&cc[..13]),
        PushResult::Ignored(IgnoreReason::Malformed)
    );
    let mut pad = audio(1, 0, 0);
    pad[0] |= 0x20;
    *pad.last_mut().unwrap() = 200; // padding longer than the payload
    assert_eq!(rx.push(&pad), PushResult::Ignored(IgnoreReason::Malformed));
    assert_eq!(
        rx.push(&rtp(0, 1, 0, SSRC, false, &[])),
        PushResult::Ignored(IgnoreReason::Malformed)
    );
    assert_eq!(
        rx.push(&rtp(101, 1, 0, SSRC, false, &[1, 2])),
        PushResult::Ignored(IgnoreReason::Malformed)
    );
    assert_eq!(
        rx.push(&rtp(0, 1, 0, SSRC, false, &[0; 2000])),
        PushResult::Ignored(IgnoreReason::Malformed)
    );
    // Unknown payload type before any stream: ignored, starts nothing.
    assert_eq!(
        rx.push(&rtp(96, 1, 0, 99, false, &[40])),
        PushResult::Ignored(IgnoreReason::WrongPayloadType)
    );
    assert_eq!(rx.ssrc(), None);
    assert_eq!(rx.push(&audio(1, 0, 0)), PushResult::Audio);
    // Unknown payload type inside the stream: not audio, but its sequence number is no loss.
    assert_eq!(
        rx.push(&rtp(96, 2, 160, SSRC, false, &[40])),
        PushResult::Ignored(IgnoreReason::WrongPayloadType)
    );
    assert_eq!(rx.push(&audio(3, 1600, 2)), PushResult::Audio);
    rx.flush(&mut sink);
    let st = rx.stats();
    assert_eq!((st.malformed, st.wrong_pt, st.lost), (8, 2, 0));
    assert_eq!(st.received, 12);
    assert_eq!(rx.media_samples(), 1760);
}

#[test]
fn codec_change_by_reinvite() {
    let mut rx = receiver();
    let mut out = Vec::new();
    let mut sink = |s: &[i16]| out.extend_from_slice(s);
    for i in 0..5u32 {
        rx.push(&audio(i as u16, i * 160, i));
    }
    rx.drain(&mut sink);
    let mut cfg = RxConfig::new(Codec::Pcma, Some(101));
    cfg.audio_pt = 8;
    rx.set_config(cfg);
    for i in 5..10u32 {
        rx.push(&rtp(8, i as u16, i * 160, SSRC, false, &[0x55; 160]));
    }
    rx.flush(&mut sink);
    let mut want = expected(5, &[]);
    want.extend(std::iter::repeat_n(Codec::Pcma.decode_sample(0x55), 800));
    assert_eq!(out, want);
}

#[test]
fn packetizer_feeds_receiver() {
    let mut tx = RtpPacketizer::new(8, Codec::Pcma, 7, 65500, u32::MAX - 500);
    let mut cfg = RxConfig::new(Codec::Pcma, None);
    cfg.jitter_depth_ms = 40;
    let mut rx = RtpReceiver::new(cfg);
    let pcm = tone(440.0, 1000, 8000, 8000);
    let mut out = Vec::new();
    for (k, chunk) in pcm.chunks(160).enumerate() {
        if k == 20 {
            tx.skip(800); // a 100 ms pause
        }
        let pkt = tx.packetize(chunk, false).to_vec();
        assert_eq!(rx.push(&pkt), PushResult::Audio);
        rx.drain(&mut |s: &[i16]| out.extend_from_slice(s));
    }
    rx.flush(&mut |s: &[i16]| out.extend_from_slice(s));
    assert_eq!(out.len(), 8000 + 800);
    let mut round = vec![0i16; 160];
    let mut enc = vec![0u8; 160];
    encode(Codec::Pcma, &pcm[..160], &mut enc);
    decode(Codec::Pcma, &enc, &mut round);
    assert_eq!(&out[..160], &round[..]);
    assert!(out[20 * 160..21 * 160 + 640].iter().all(|&s| s == 0));
}

// ---------------------------------------------------------------- captures

/// UDP payloads of a classic libpcap file (Ethernet / IPv4 / UDP), in order.
pub(super) fn pcap_udp_payloads(bytes: &[u8]) -> Vec<&[u8]> {
    let u32le = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    assert_eq!(
        u32le(bytes, 0),
        0xa1b2_c3d4,
        "little-endian microsecond pcap"
    );
    assert_eq!(u32le(bytes, 20), 1, "Ethernet link type");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32le(bytes, at + 8) as usize;
        let frame = &bytes[at + 16..at + 16 + incl];
        at += 16 + incl;
        if frame[12..14] != [0x08, 0x00] {
            continue; // not IPv4
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 {
            continue; // not UDP
        }
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let udp = &ip[ihl..total];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        out.push(&udp[8..udp_len]);
    }
    out
}

#[test]
fn sipp_capture_rfc4733_digit_one() {
    let bytes = include_bytes!("testdata/dtmf_2833_1.pcap");
    let packets = pcap_udp_payloads(bytes);
    assert_eq!(packets.len(), 10);
    let mut rx = receiver();
    let mut n = 0;
    for p in &packets {
        assert!(matches!(
            rx.push(p),
            PushResult::Dtmf | PushResult::Ignored(IgnoreReason::Duplicate)
        ));
        rx.drain(&mut |s: &[i16]| n += s.len());
    }
    let ev = rx.poll_dtmf().unwrap();
    assert_eq!(ev.digit, '1');
    assert_eq!(ev.rtp_ts, 13280);
    assert_eq!(ev.duration_ms, 280); // 2240 samples
    assert!(rx.poll_dtmf().is_none());
    rx.flush(&mut |s: &[i16]| n += s.len());
    assert_eq!(n, 2240, "the key press is silence of its duration");
    assert!(rx.poll_dtmf().is_none());
}

#[test]
fn sipp_capture_g711a_duration() {
    let bytes = include_bytes!("testdata/g711a.pcap");
    let packets = pcap_udp_payloads(bytes);
    assert_eq!(packets.len(), 236);
    let mut rx = RtpReceiver::new(RxConfig::new(Codec::Pcma, Some(101)));
    let out = run(
        &mut rx,
        &packets.iter().map(|p| p.to_vec()).collect::<Vec<_>>(),
    );
    // 236 packets of 30 ms (240 samples), timestamps 240..=56640 contiguous.
    assert_eq!(out.len(), 236 * 240);
    let st = rx.stats();
    assert_eq!(
        (st.audio, st.lost, st.malformed, st.resyncs),
        (236, 0, 0, 0)
    );
    // The first second is digital silence then line noise (about -48 dBFS):
    // silence. Speech follows, up to the end of the capture.
    let mut sd = SilenceDetector::new(8000);
    sd.feed(&out[..8000]);
    assert_eq!(sd.silent_ms(), 1000);
    sd.feed(&out[8000..]);
    assert_eq!(sd.silent_ms(), 0);
}

// ---------------------------------------------------------------- properties

#[derive(Debug, Clone)]
enum Op {
    Packet {
        seq_step: i16,
        ts_step: i32,
        pt: u8,
        ssrc: u32,
        len: usize,
        end: bool,
    },
    Garbage(Vec<u8>),
    Drain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            prop_oneof![8 => Just(1i16), 2 => -3i16..4, 1 => any::<i16>()],
            prop_oneof![8 => Just(160i32), 2 => -500i32..50_000, 1 => any::<i32>()],
            prop_oneof![6 => Just(0u8), 2 => Just(101u8), 1 => Just(13u8), 1 => Just(96u8)],
            prop_oneof![20 => Just(1u32), 1 => Just(2u32)],
            prop_oneof![6 => Just(160usize), 1 => 0usize..1200],
            any::<bool>(),
        )
            .prop_map(|(seq_step, ts_step, pt, ssrc, len, end)| Op::Packet {
                seq_step,
                ts_step,
                pt,
                ssrc,
                len,
                end
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Garbage),
        2 => Just(Op::Drain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_packets_never_panic_and_output_is_monotonic(ops in proptest::collection::vec(op(), 0..300)) {
        let mut rx = receiver();
        let mut written = 0u64;
        let mut seq = 0u16;
        let mut ts = 0u32;
        for op in ops {
            let before = rx.media_samples();
            match op {
                Op::Packet { seq_step, ts_step, pt, ssrc, len, end } => {
                    seq = seq.wrapping_add(seq_step as u16);
                    ts = ts.wrapping_add(ts_step as u32);
                    let payload = if pt == 101 {
                        vec![(len % 20) as u8, if end { 0x80 } else { 0 }, 0, (len % 256) as u8]
                    } else {
                        vec![0x33; len]
                    };
                    rx.push(&rtp(pt, seq, ts, ssrc, false, &payload));
                }
                Op::Garbage(g) => { rx.push(&g); }
                Op::Drain => rx.drain(&mut |s: &[i16]| written += s.len() as u64),
            }
            prop_assert!(rx.media_samples() >= before);
            prop_assert_eq!(rx.media_samples(), written);
        }
        rx.flush(&mut |s: &[i16]| written += s.len() as u64);
        prop_assert_eq!(rx.media_samples(), written);
        let st = rx.stats();
        prop_assert!(st.audio + st.dtmf + st.comfort_noise + st.late + st.duplicate + st.wrong_pt + st.malformed + st.discarded <= st.received);
    }

    /// Reordering by adjacent swaps plus random loss: the output is exactly the
    /// sent audio with silence in place of the lost frames.
    #[test]
    fn reorder_and_loss_match_model(
        n in 2u32..120,
        seq0 in any::<u16>(),
        ts0 in any::<u32>(),
        lost in proptest::collection::vec(any::<bool>(), 120),
        swaps in proptest::collection::vec(any::<bool>(), 120),
    ) {
        let mut sent: Vec<(u32, Vec<u8>)> = (0..n)
            .filter(|&i| !lost[i as usize] || i == 0 || i == n - 1)
            .map(|i| (i, audio(seq0.wrapping_add(i as u16), ts0.wrapping_add(i * 160), i)))
            .collect();
        let mut k = 0;
        while k + 1 < sent.len() {
            if swaps[k] {
                sent.swap(k, k + 1);
                k += 2;
            } else {
                k += 1;
            }
        }
        let received: Vec<u32> = sent.iter().map(|(i, _)| *i).collect();
        let packets: Vec<Vec<u8>> = sent.into_iter().map(|(_, p)| p).collect();
        let mut rx = receiver();
        let out = run(&mut rx, &packets);
        let missing: Vec<u32> = (0..n).filter(|i| !received.contains(i)).collect();
        prop_assert_eq!(out, expected(n, &missing));
        prop_assert_eq!(rx.stats().lost, missing.len() as u64);
        prop_assert_eq!(rx.stats().late, 0);
    }
}

/// 20 ms frames of a 440 Hz tone at the codec's rate, encoded.
fn encoded_frames(codec: Codec, n: usize) -> Vec<Vec<u8>> {
    let rate = codec.sample_rate();
    let frame = (rate / 50) as usize;
    let mut enc = AudioEncoder::new(
        codec,
        &OpusParams {
            peer_uses_fec: true,
            ..OpusParams::default()
        },
    );
    (0..n)
        .map(|k| {
            let pcm: Vec<i16> = (0..frame)
                .map(|i| {
                    let t = (k * frame + i) as f64 / f64::from(rate);
                    (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
                })
                .collect();
            let mut p = Vec::new();
            enc.encode(&pcm, &mut p);
            p
        })
        .collect()
}

/// Wideband and G.729 streams with lost packets: the output runs at the
/// codec's audio rate and is exactly as long as the media time.
#[test]
fn every_codec_keeps_media_time_through_loss() {
    for codec in [Codec::G722, Codec::Opus, Codec::G729, Codec::Pcma] {
        let frames = encoded_frames(codec, 50);
        let ticks = codec.ticks(codec.sample_rate() / 50);
        let mut rx = RtpReceiver::new(RxConfig::new(codec, None));
        assert_eq!(rx.sample_rate(), codec.sample_rate());
        let packets: Vec<Vec<u8>> = frames
            .iter()
            .enumerate()
            .filter(|(i, _)| ![7, 20, 21, 33].contains(i))
            .map(|(i, p)| {
                rtp(
                    codec.static_payload_type(),
                    i as u16,
                    1000 + ticks * i as u32,
                    SSRC,
                    false,
                    p,
                )
            })
            .collect();
        let out = run(&mut rx, &packets);
        assert_eq!(
            out.len(),
            50 * codec.sample_rate() as usize / 50,
            "{codec:?}"
        );
        assert_eq!(rx.stats().lost, 4, "{codec:?}");
        let hole = &out[20 * out.len() / 50..22 * out.len() / 50];
        let silent = hole.iter().all(|&s| s == 0);
        // Opus conceals; the others fill with silence.
        assert_eq!(silent, codec != Codec::Opus, "{codec:?}");
    }
}

/// A payload that cannot be a frame of the codec is malformed, not audio.
#[test]
fn payloads_the_codec_refuses_are_malformed() {
    let mut rx = RtpReceiver::new(RxConfig {
        annexb: false,
        ..RxConfig::new(Codec::G729, None)
    });
    assert_eq!(
        rx.push(&rtp(18, 1, 0, SSRC, false, &[1, 2])),
        PushResult::Ignored(IgnoreReason::Malformed)
    );
    assert_eq!(
        rx.push(&rtp(18, 2, 80, SSRC, false, &[1; 20])),
        PushResult::Audio
    );
    let mut rx = RtpReceiver::new(RxConfig::new(Codec::Opus, None));
    assert_eq!(
        rx.push(&rtp(111, 1, 0, SSRC, false, &[])),
        PushResult::Ignored(IgnoreReason::Malformed)
    );
}
