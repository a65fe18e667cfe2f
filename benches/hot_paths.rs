//! Criterion micro-benchmarks of vmail's per-message and per-packet paths
//! (docs/performance.md): `cargo bench --bench hot_paths`.
//!
//! - `sip/parse_invite`: rsipstack's parser on a typical diverted INVITE;
//! - `sip/endpoint_invite`: the same bytes through `sip::Endpoint::handle_input`
//!   (parse, transaction lookup and creation, `100 Trying`, the event);
//! - `media/rx_push_drain`: one 20 ms PCMA packet through `media::RtpReceiver`
//!   (RTP parse, jitter buffer, G.711 decode, release);
//! - `media/packetize`: one 20 ms frame of a prompt into an RTP packet;
//! - `srtp/unprotect_80`, `srtp/unprotect_32`, `srtp/protect_80`: the same
//!   PCMA packet through `media::SrtpRx::unprotect` (authentication, replay
//!   window, decryption) and `media::SrtpTx::protect`;
//! - `store/append_20ms`: `store::RecordingWriter::append` of 160 samples;
//! - `routing/owner_100k`: `routing::RoutingTable::owner` among 100,000 domains;
//! - `greeting/decode_5s`: a 5 s personal greeting (8 kHz WAV) read and
//!   decoded as every deposit call did before the cache (8 and 16 kHz);
//!   `greeting/cached_5s`: the same greeting through
//!   `prompts::GreetingCache::load` once it is cached (open, fstat, lookup).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use vmail::media::{encode, tone, Codec, RtpPacketizer, RtpReceiver, RxConfig};
use vmail::routing::RoutingTable;
use vmail::sip::{Endpoint, EndpointConfig, Event, Peer};
use vmail::store::{FsStore, MailboxId, MailboxSettings, PinCost, RecordingInfo};

/// An INVITE as a PBX diverts it to voicemail: two Vias, Record-Route,
/// Diversion, the usual capability headers and an SDP offer.
fn typical_invite(n: u64) -> Vec<u8> {
    let sdp = "v=0\r\n\
o=- 3859126514 3859126514 IN IP4 10.0.0.20\r\n\
s=pbx\r\n\
c=IN IP4 10.0.0.20\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";
    format!(
        "INVITE sip:1001@test.rootdomain.ru SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-proxy-{n};rport\r\n\
Via: SIP/2.0/UDP 10.0.0.20:5060;branch=z9hG4bK-pbx-{n};received=10.0.0.20\r\n\
Record-Route: <sip:10.0.0.5;lr>\r\n\
Max-Forwards: 69\r\n\
From: \"Alice Caller\" <sip:5551234@test.rootdomain.ru>;tag=a73kszlfl-{n}\r\n\
To: <sip:1001@test.rootdomain.ru>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn-{n}@10.0.0.20\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:5551234@10.0.0.20:5060>\r\n\
Diversion: <sip:1001@test.rootdomain.ru>;reason=no-answer;counter=1\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY\r\n\
Supported: replaces, timer\r\n\
User-Agent: PBX/1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

fn sip(c: &mut Criterion) {
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));
    let bytes = typical_invite(1);
    g.bench_function("parse_invite", |b| {
        b.iter(|| rsipstack::sip::parser::parse_message(black_box(&bytes)).is_ok())
    });
    let local: SocketAddr = "127.0.0.1:5060".parse().expect("address");
    let peer = Peer::udp("10.0.0.5:5060".parse().expect("address"));
    let now = Instant::now();
    // A fresh endpoint per INVITE: the transaction is new each time, as for
    // a new call (the endpoint's set-up is outside the measured time).
    g.bench_function("endpoint_invite", |b| {
        b.iter_batched(
            || Endpoint::new(EndpointConfig::new(local)),
            |mut ep| {
                ep.handle_input(now, peer, black_box(&bytes));
                let request = matches!(ep.poll_event(), Some(Event::Request { .. }));
                (request, ep)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A PCMA RTP packet (pt 8, 160 samples) whose sequence number and
/// timestamp are rewritten for each push.
struct PacketSource {
    packet: Vec<u8>,
    seq: u16,
    ts: u32,
}

impl PacketSource {
    fn new() -> Self {
        let pcm = tone(1020.0, 20, 10_000, 8000);
        let mut payload = vec![0u8; pcm.len()];
        encode(Codec::Pcma, &pcm, &mut payload);
        let mut packet = vec![0x80, 8, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        packet.extend_from_slice(&payload);
        PacketSource {
            packet,
            seq: 1000,
            ts: 160_000,
        }
    }

    fn next(&mut self) -> &[u8] {
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        self.packet[2..4].copy_from_slice(&self.seq.to_be_bytes());
        self.packet[4..8].copy_from_slice(&self.ts.to_be_bytes());
        &self.packet
    }
}

fn media(c: &mut Criterion) {
    let mut g = c.benchmark_group("media");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rx_push_drain", |b| {
        let mut rx = RtpReceiver::new(RxConfig::new(Codec::Pcma, Some(101)));
        let mut src = PacketSource::new();
        let mut sum = 0i64;
        b.iter(|| {
            rx.push(src.next());
            rx.drain(&mut |pcm| sum += i64::from(pcm[0]));
        });
        black_box(sum);
    });
    g.bench_function("packetize", |b| {
        let mut p = RtpPacketizer::new(8, Codec::Pcma, 0x1234_5678, 1, 0);
        let frame = tone(400.0, 20, 8000, 8000);
        b.iter(|| black_box(p.packetize(black_box(&frame), false).len()));
    });
    g.finish();
}

fn srtp(c: &mut Criterion) {
    use vmail::media::{SrtpRx, SrtpTx};
    use vmail::sdp::{SrtpKey, SrtpSuite};
    let key = SrtpKey([7; 30]);
    let mut g = c.benchmark_group("srtp");
    g.throughput(Throughput::Elements(1));
    for (name, suite) in [
        ("unprotect_80", SrtpSuite::AesCm128HmacSha1_80),
        ("unprotect_32", SrtpSuite::AesCm128HmacSha1_32),
    ] {
        g.bench_function(name, |b| {
            let mut tx = SrtpTx::new(suite, &key);
            let mut rx = SrtpRx::new(suite, &key);
            let mut src = PacketSource::new();
            b.iter_batched(
                || tx.protect(src.next()).expect("protect"),
                |p| black_box(rx.unprotect(&p).map(|r| r.len())),
                BatchSize::SmallInput,
            );
        });
    }
    g.bench_function("protect_80", |b| {
        let mut tx = SrtpTx::new(SrtpSuite::AesCm128HmacSha1_80, &key);
        let mut src = PacketSource::new();
        b.iter(|| black_box(tx.protect(src.next()).map(|p| p.len())));
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FsStore::open_with_pin_cost(dir.path(), PinCost::TestOnly).expect("store");
    let id = MailboxId::new("1001", "test.rootdomain.ru").expect("mailbox id");
    store
        .create_mailbox(&id, MailboxSettings::default(), None)
        .expect("mailbox");
    let info = RecordingInfo {
        caller_uri: "sip:5551234@test.rootdomain.ru".into(),
        caller_name: None,
        called_uri: "sip:1001@test.rootdomain.ru".into(),
        cause: "unavailable".into(),
        codec: "PCMA".into(),
        site: "site1".into(),
        instance: "vmail1".into(),
        epoch: 0,
        sample_rate: 8000,
    };
    let frame = tone(1020.0, 20, 10_000, 8000);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    g.bench_function("append_20ms", |b| {
        // A new recording every 30,000 frames (10 minutes of audio), so the
        // file never grows past ~10 MB; opening and discarding it is not timed.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(30_000);
                let mut w = store
                    .begin_recording(&id, info.clone(), SystemTime::now())
                    .expect("recording");
                let t = Instant::now();
                for _ in 0..n {
                    w.append(black_box(&frame)).expect("append");
                }
                total += t.elapsed();
                w.discard().expect("discard");
                left -= n;
            }
            total
        })
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    // 100,000 domains in 1,000 groups, e.g. `c42.region7.example.ru`.
    let groups: Vec<(u32, Vec<String>)> = (0..1000u32)
        .map(|g| {
            let domains = (0..100u32)
                .map(|i| format!("c{}.region{}.example.ru", g * 100 + i, g % 50))
                .collect();
            (g + 1, domains)
        })
        .collect();
    let table = RoutingTable::new(
        groups
            .iter()
            .map(|(g, d)| (*g, d.iter().map(String::as_str))),
    )
    .expect("routing table");
    assert_eq!(table.len(), 100_000);
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(1));
    // A host under a listed domain: found on the second probe.
    g.bench_function("owner_100k_hit", |b| {
        b.iter(|| table.owner(black_box("pbx.c54321.region43.example.ru")))
    });
    // A domain nobody lists: every suffix probed.
    g.bench_function("owner_100k_miss", |b| {
        b.iter(|| table.owner(black_box("mail.branch.unknown.example.org")))
    });
    g.finish();
}

fn greeting(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("temp.wav");
    let pcm = tone(400.0, 5000, 8000, 8000);
    // A 16-bit mono 8 kHz WAV, as the store writes greetings.
    let data = (pcm.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + pcm.len() * 2);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // block align
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data.to_le_bytes());
    for s in &pcm {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(&path, &wav).expect("greeting");
    let mut g = c.benchmark_group("greeting");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_5s", |b| {
        b.iter(|| {
            let bytes = std::fs::read(black_box(&path)).expect("read");
            vmail::prompts::decode_prompt(bytes, Some("wav")).expect("decode")
        })
    });
    let cache = vmail::prompts::GreetingCache::new(64 << 20);
    cache.load(&path).expect("decoded");
    g.bench_function("cached_5s", |b| {
        b.iter(|| cache.load(black_box(&path)).expect("cached"))
    });
    g.finish();
}

criterion_group!(benches, sip, media, srtp, store, routing, greeting);
criterion_main!(benches);
