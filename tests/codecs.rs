//! Wideband and low-rate codecs against real peers: PJSIP depositing in
//! G.722 (stored at 16 kHz with a 6 kHz tone only wideband can carry, then
//! heard over PCMU), baresip depositing in Opus (with 5 % loss injected by
//! a relay in the test: the tones keep their timing), and sipp playing a
//! G.729 capture made with vmail's own encoder.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use vmail::media::{AudioEncoder, Codec, OpusParams};
use vmail::store::{Folder, FsStore, GreetingKind, MailboxId, MessageMeta, PinCost};

/// An instance with mailbox 1001 (PIN 1234) whose short temporary
/// greeting (100 ms, then the 400 ms beep) starts recording about half a
/// second after the answer.
fn vmail_with(tweak: impl FnOnce(&mut Value) + 'static) -> Vmail {
    let v = Vmail::builder()
        .env("RUST_LOG", "info,vmail=debug")
        .ext(move |ext| {
            ext["demo_mailboxes"] = json!([{"user": "1001", "domain": DOMAIN, "pin": "1234"}]);
            tweak(ext);
        })
        .start();
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    store(&v)
        .store_greeting(&id, GreetingKind::Temporary, &[0i16; 800], 8000)
        .unwrap();
    v
}

fn store(v: &Vmail) -> FsStore {
    FsStore::open_with_pin_cost(v.siteshare.path(), PinCost::TestOnly).expect("open store")
}

/// The one message of mailbox 1001, once stored, and its WAV.
fn only_message(v: &Vmail) -> (MessageMeta, PathBuf) {
    let id = MailboxId::new("1001", DOMAIN).unwrap();
    let s = store(v);
    let deadline = Instant::now() + Duration::from_secs(15);
    let meta = loop {
        if let Some(m) = s
            .list_messages(&id, Folder::Inbox)
            .ok()
            .and_then(|m| m.into_iter().next())
        {
            break m;
        }
        assert!(Instant::now() < deadline, "no message stored\n{}", v.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    let path = s
        .message_audio_path(&id, &meta.id)
        .unwrap()
        .expect("the message's audio");
    (meta, path)
}

/// The largest share of a 20 ms frame's energy that `freq` holds, over
/// the frames louder than -45 dBFS (a pure tone gives about 1).
fn tone_fraction(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let n = rate as usize / 50;
    let min_energy = n as f64 * (32768.0 * 10f64.powf(-45.0 / 20.0)).powi(2);
    samples
        .chunks_exact(n)
        .filter_map(|f| {
            let energy: f64 = f.iter().map(|&x| f64::from(x).powi(2)).sum();
            (energy >= min_energy)
                .then(|| 2.0 * goertzel_power(f, rate, freq) / (n as f64 * energy))
        })
        .fold(0.0, f64::max)
}

fn sine(freq: f64, ms: u32, rate: u32) -> Vec<i16> {
    let n = (ms * rate / 1000) as usize;
    (0..n)
        .map(|i| {
            (9000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as i16
        })
        .collect()
}

/// PJSIP offering G.722 only: the message is stored at 16 kHz with the
/// 6 kHz tone it played (impossible at 8 kHz), named G722 in the metadata;
/// the same phone then logs in over PCMU and hears the message.
#[test]
fn pjsua_g722_deposit_is_wideband_and_heard_over_pcmu() {
    if pjsua_python().is_none() {
        skip_or_fail("pjsua2 (VMAIL_PYTHON)");
        return;
    }
    let v = vmail_with(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("wideband.wav");
    let mut audio = vec![0i16; 16000];
    audio.extend(sine(6000.0, 1000, 16000));
    audio.extend(vec![0i16; 4800]);
    audio.extend(sine(1000.0, 1000, 16000));
    audio.extend(vec![0i16; 4800]);
    write_wav(&wav, 16000, &audio);
    let seconds = audio.len() as f64 / 16000.0 + 0.5;
    let run = pjsua(
        "deposit.py",
        &[
            "--target",
            &format!("sip:1001@{DOMAIN}"),
            "--proxy",
            &v.sip_addr().to_string(),
            "--caller",
            &format!("sip:5557777@{DOMAIN}"),
            "--wav",
            &wav.display().to_string(),
            "--hangup-after-seconds",
            &format!("{seconds:.1}"),
            "--codecs",
            "G722",
            "--clock-rate",
            "16000",
            "--timeout",
            "30",
        ],
    )
    .expect("python present");
    run.assert_success("G.722 deposit");
    let (meta, path) = only_message(&v);
    assert_eq!(
        (meta.codec.as_str(), meta.sample_rate),
        ("G722", 16000),
        "{meta:?}"
    );
    let (spec, samples) = read_wav(&path);
    assert_eq!(spec.sample_rate, 16000);
    let high = tone_fraction(&samples, 16000, 6000.0);
    let low = tone_fraction(&samples, 16000, 1000.0);
    assert!(
        high > 0.6,
        "no 6 kHz tone in the message ({high:.2})\n{}",
        v.log()
    );
    assert!(low > 0.6, "no 1 kHz tone in the message ({low:.2})");
    // Duration in the metadata is the WAV's.
    let wav_ms = samples.len() as u64 * 1000 / 16000;
    assert!(
        meta.duration_ms.abs_diff(wav_ms) <= 20,
        "{meta:?} vs {wav_ms} ms"
    );

    // The same phone, over PCMU: caller-ID login (PIN), 1 plays the message.
    let heard = dir.path().join("heard.wav");
    let run = pjsua(
        "deposit.py",
        &[
            "--target",
            &format!("sip:*98@{DOMAIN}"),
            "--proxy",
            &v.sip_addr().to_string(),
            "--caller",
            &format!("sip:1001@{DOMAIN}"),
            "--record",
            &heard.display().to_string(),
            "--codecs",
            "PCMU",
            "--dtmf",
            "1.0:1234#",
            "--dtmf",
            "4.0:1",
            "--hangup-after-seconds",
            "12",
            "--timeout",
            "40",
        ],
    )
    .expect("python present");
    run.assert_success("retrieval over PCMU");
    let (spec, heard) = read_wav(&heard);
    let rate = spec.sample_rate;
    let found = tone_sequence(&heard, rate);
    assert!(
        found
            .iter()
            .any(|t| t.freq.abs_diff(1000) <= 25 && t.duration_ms >= 500),
        "the message's 1 kHz tone was not heard: {found:?}\n{}",
        v.log()
    );
}

// ---------------------------------------------------------------------------
// baresip with Opus

const BARESIP: &str = "/usr/bin/baresip";
const BARESIP_MODULES: &str = "/usr/lib/baresip/modules";

fn baresip_present() -> bool {
    Path::new(BARESIP).exists() && Path::new(BARESIP_MODULES).join("opus.so").exists()
}

/// baresip calls `user` through `proxy` offering Opus only, plays `wav`
/// (48 kHz mono) from when the call is up, and quits after `seconds`.
fn baresip_deposit(
    proxy: SocketAddr,
    user: &str,
    wav: &Path,
    seconds: u32,
) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let config = format!(
        "poll_method\t\tpoll\n\
         sip_listen\t\t127.0.0.1:{port}\n\
         audio_player\t\taufile,{heard}\n\
         audio_source\t\taufile,{wav}\n\
         audio_alert\t\taufile,{heard}\n\
         ausrc_srate\t\t48000\n\
         ausrc_channels\t\t1\n\
         module_path\t\t{BARESIP_MODULES}\n\
         module\t\t\taufile.so\n\
         module\t\t\topus.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tmenu.so\n\
         opus_bitrate\t\t32000\n\
         opus_stereo\t\tno\n\
         opus_sprop_stereo\tno\n\
         opus_inbandfec\t\tyes\n\
         opus_application\tvoip\n",
        heard = dir.path().join("heard.wav").display(),
        wav = wav.display(),
    );
    std::fs::write(dir.path().join("config"), config).unwrap();
    std::fs::write(
        dir.path().join("accounts"),
        format!(
            "<sip:5558888@{DOMAIN}>;regint=0;outbound=\"sip:{proxy}\";audio_codecs=opus/48000/2\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BARESIP);
    // `-n 127.0.0.1`: the SDP names the loopback address.
    cmd.arg("-4")
        .arg("-n")
        .arg("127.0.0.1")
        .arg("-f")
        .arg(dir.path())
        .arg("-e")
        .arg(format!("/dial sip:{user}@{DOMAIN}"))
        .arg("-t")
        .arg(seconds.to_string());
    run_bounded(cmd, PROCESS_LIMIT).expect("run baresip")
}

/// A path between the caller and vmail that drops a share of the caller's
/// RTP (seeded): SIP goes through it with the SDP ports rewritten, so both
/// sides send their RTP to it.
struct LossyPath {
    sip: SocketAddr,
    stop: Arc<AtomicBool>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

/// `m=audio <port>` of an SDP body replaced by `new`, Content-Length fixed.
fn rewrite_sdp_port(msg: &str, new: u16) -> Option<(String, u16)> {
    let (head, body) = msg.split_once("\r\n\r\n")?;
    let at = body.find("m=audio ")? + "m=audio ".len();
    let end = at + body[at..].find(' ')?;
    let old: u16 = body[at..end].parse().ok()?;
    let body = format!("{}{new}{}", &body[..at], &body[end..]);
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| {
            let lower = l.to_ascii_lowercase();
            if lower.starts_with("content-length:") || lower.starts_with("l:") {
                format!("Content-Length: {}", body.len())
            } else {
                l.to_owned()
            }
        })
        .collect();
    Some((format!("{}\r\n\r\n{body}", head.join("\r\n")), old))
}

impl LossyPath {
    fn start(vmail: SocketAddr, loss: f64, seed: u64) -> LossyPath {
        let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap(); // faces the caller
        let b = UdpSocket::bind("127.0.0.1:0").unwrap(); // faces vmail
        for s in [&sip, &a, &b] {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        }
        let (a, b) = (Arc::new(a), Arc::new(b));
        let caller_rtp: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let vmail_rtp: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let sip_addr = sip.local_addr().unwrap();
        let mut threads = Vec::new();
        {
            let (a_port, b_port) = (
                a.local_addr().unwrap().port(),
                b.local_addr().unwrap().port(),
            );
            let (caller_rtp, vmail_rtp, stop) =
                (caller_rtp.clone(), vmail_rtp.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut caller: Option<SocketAddr> = None;
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = sip.recv_from(&mut buf) else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if from == vmail {
                        let out = match rewrite_sdp_port(&text, a_port) {
                            Some((t, old)) => {
                                *vmail_rtp.lock().unwrap() =
                                    Some(SocketAddr::from(([127, 0, 0, 1], old)));
                                t
                            }
                            None => text,
                        };
                        if let Some(c) = caller {
                            let _ = sip.send_to(out.as_bytes(), c);
                        }
                    } else {
                        caller = Some(from);
                        let out = match rewrite_sdp_port(&text, b_port) {
                            Some((t, old)) => {
                                *caller_rtp.lock().unwrap() =
                                    Some(SocketAddr::from(([127, 0, 0, 1], old)));
                                t
                            }
                            None => text,
                        };
                        let _ = sip.send_to(out.as_bytes(), vmail);
                    }
                }
            }));
        }
        {
            // Caller -> vmail, lossy.
            let (a, b, vmail_rtp, stop) = (a.clone(), b.clone(), vmail_rtp.clone(), stop.clone());
            let (forwarded, dropped) = (forwarded.clone(), dropped.clone());
            threads.push(std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = a.recv_from(&mut buf) else {
                        continue;
                    };
                    if rng.gen_bool(loss) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if let Some(to) = *vmail_rtp.lock().unwrap() {
                        forwarded.fetch_add(1, Ordering::Relaxed);
                        let _ = b.send_to(&buf[..n], to);
                    }
                }
            }));
        }
        {
            // vmail -> caller.
            let (a, b, caller_rtp, stop) = (a.clone(), b.clone(), caller_rtp.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = b.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(to) = *caller_rtp.lock().unwrap() {
                        let _ = a.send_to(&buf[..n], to);
                    }
                }
            }));
        }
        LossyPath {
            sip: sip_addr,
            stop,
            forwarded,
            dropped,
            threads,
        }
    }

    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (
            self.forwarded.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// The caller's audio for the Opus calls: the test tones at 48 kHz after
/// the greeting, then silence.
fn opus_caller_wav(dir: &Path) -> PathBuf {
    let (_, tones) = read_wav(&media("tones.wav"));
    let mut audio = vec![0i16; 8000];
    audio.extend_from_slice(&tones);
    audio.extend(vec![0i16; 8000]);
    let wide = vmail::prompts::resample_i16(&audio, 8000, 48000);
    let path = dir.join("tones48k.wav");
    write_wav(&path, 48000, &wide);
    path
}

/// One Opus deposit from baresip through `path` (or straight to vmail);
/// returns the stored message and its samples.
fn opus_deposit(v: &Vmail, via: SocketAddr) -> (MessageMeta, Vec<i16>) {
    let dir = tempfile::tempdir().unwrap();
    let wav = opus_caller_wav(dir.path());
    let out = baresip_deposit(via, "1001", &wav, 7);
    let (meta, path) = only_message(v);
    let (spec, samples) = read_wav(&path);
    assert_eq!(spec.sample_rate, 16000, "{meta:?}");
    assert_eq!(
        (meta.codec.as_str(), meta.sample_rate),
        ("opus", 16000),
        "{meta:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (meta, samples)
}

/// baresip (libopus) offering Opus only: the message is stored at 16 kHz
/// and holds the tones played, in their timing.
#[test]
fn baresip_opus_deposit_holds_the_tones() {
    if !baresip_present() {
        skip_or_fail("baresip with its opus module (Debian baresip-core)");
        return;
    }
    let v = vmail_with(|_| {});
    let (_, samples) = opus_deposit(&v, v.sip_addr());
    let found = tone_sequence(&samples, 16000);
    assert_test_tones(&found, 25);
}

/// The same through a path losing 5 % of the caller's packets: Opus FEC
/// and concealment fill the holes, and nothing shifts: the tones keep
/// their onsets and the WAV is as long as the media time.
#[test]
fn baresip_opus_deposit_with_five_percent_loss_keeps_its_length() {
    if !baresip_present() {
        skip_or_fail("baresip with its opus module (Debian baresip-core)");
        return;
    }
    let clean = vmail_with(|_| {});
    let (clean_meta, _) = opus_deposit(&clean, clean.sip_addr());
    let v = vmail_with(|_| {});
    let path = LossyPath::start(v.sip_addr(), 0.05, 14);
    let started = Instant::now();
    let (meta, samples) = opus_deposit(&v, path.sip);
    let (forwarded, dropped) = path.finish();
    assert!(
        dropped > 0 && forwarded > 100,
        "{forwarded} forwarded, {dropped} dropped in {:?}",
        started.elapsed()
    );
    // A lost 20 ms frame left out would move every later tone earlier.
    let found = tone_sequence(&samples, 16000);
    assert_test_tones(&found, 25);
    // No hole inside a tone: lost frames were concealed, not silenced.
    for t in found.iter().filter(|t| TEST_TONES_HZ.contains(&t.freq)) {
        let from = (t.onset_ms as usize + 20) * 16;
        let to = (t.onset_ms + t.duration_ms).saturating_sub(20) as usize * 16;
        let quietest = samples[from..to]
            .chunks(160)
            .map(|w| (w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / w.len() as f64).sqrt())
            .fold(f64::MAX, f64::min);
        assert!(
            quietest > 300.0,
            "a hole in the {} Hz tone (rms {quietest:.0})",
            t.freq
        );
    }
    eprintln!("{forwarded} packets forwarded, {dropped} dropped; tones {found:?}");
    let wav_ms = samples.len() as u64 * 1000 / 16000;
    assert!(
        meta.duration_ms.abs_diff(wav_ms) <= 20,
        "{meta:?} vs {wav_ms} ms"
    );
    // The same call without loss lasts as long (both end when baresip quits).
    assert!(
        meta.duration_ms.abs_diff(clean_meta.duration_ms) <= 300,
        "with loss {} ms, without {} ms",
        meta.duration_ms,
        clean_meta.duration_ms
    );
}

// ---------------------------------------------------------------------------
// G.729 and G.722 captures for sipp

/// An RTP capture (pcap, Ethernet/IPv4/UDP) of `pcm` (at the codec's rate)
/// encoded with vmail's encoder in 20 ms packets of payload type `pt`.
fn codec_pcap(codec: Codec, pt: u8, pcm: &[i16]) -> Vec<u8> {
    let frame = (codec.sample_rate() / 50) as usize;
    let mut enc = AudioEncoder::new(codec, &OpusParams::default());
    let mut out = Vec::new();
    for v in [
        0xa1b2_c3d4u32.to_le_bytes().as_slice(),
        &2u16.to_le_bytes(),
        &4u16.to_le_bytes(),
        &0i32.to_le_bytes(),
        &0u32.to_le_bytes(),
        &65535u32.to_le_bytes(),
        &1u32.to_le_bytes(),
    ] {
        out.extend_from_slice(v);
    }
    let (ssrc, seq0, ts0) = (0x0bad_cafe_u32, 1000u16, 16000u32);
    for (i, chunk) in pcm.chunks(frame).enumerate() {
        let mut samples = chunk.to_vec();
        samples.resize(frame, 0);
        let mut payload = Vec::new();
        enc.encode(&samples, &mut payload);
        let mut rtp = vec![0x80, pt | if i == 0 { 0x80 } else { 0 }];
        rtp.extend_from_slice(&seq0.wrapping_add(i as u16).to_be_bytes());
        rtp.extend_from_slice(
            &ts0.wrapping_add(codec.ticks((frame * i) as u32))
                .to_be_bytes(),
        );
        rtp.extend_from_slice(&ssrc.to_be_bytes());
        rtp.extend_from_slice(&payload);
        let udp_len = 8 + rtp.len();
        let ip_len = 20 + udp_len;
        let mut pkt = vec![0u8, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0x08, 0x00];
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        pkt.extend_from_slice(&ip);
        pkt.extend_from_slice(&5000u16.to_be_bytes());
        pkt.extend_from_slice(&6000u16.to_be_bytes());
        pkt.extend_from_slice(&(udp_len as u16).to_be_bytes());
        pkt.extend_from_slice(&[0, 0]);
        pkt.extend_from_slice(&rtp);
        let usec = i as u32 * 20_000;
        for v in [
            1_700_000_000 + usec / 1_000_000,
            usec % 1_000_000,
            pkt.len() as u32,
            pkt.len() as u32,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&pkt);
    }
    out
}

/// The committed captures `media/tones_g729.pcap` and `media/tones_g722.pcap`
/// (a second of silence then `media/tones.wav`, encoded by vmail's encoders) are what the encoders
/// make today; `VMAIL_WRITE_CAPTURES=1` writes them anew.
#[test]
fn committed_codec_captures_are_current() {
    // One second of silence first: recording starts after the greeting.
    let (_, tones) = read_wav(&media("tones.wav"));
    let mut tones_after = vec![0i16; 8000];
    tones_after.extend_from_slice(&tones);
    let tones = tones_after;
    // The same tones made at 16 kHz (integer-exact on any machine, unlike
    // a floating-point resampler's output).
    let mut wide = vec![0i16; 2 * tones.len()];
    for (hz, at) in TEST_TONES_HZ.iter().zip(TEST_TONES_ONSET_MS) {
        let start = (1000 + at as usize) * 16;
        let t = vmail::media::tone(*hz as f32, 300, 8000, 16000);
        wide[start..start + t.len()].copy_from_slice(&t);
    }
    for (name, bytes) in [
        ("tones_g729.pcap", codec_pcap(Codec::G729, 18, &tones)),
        ("tones_g722.pcap", codec_pcap(Codec::G722, 9, &wide)),
    ] {
        let path = media(name);
        if std::env::var_os("VMAIL_WRITE_CAPTURES").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{} is stale: run with VMAIL_WRITE_CAPTURES=1",
            path.display()
        );
    }
}

/// sipp offers G.729 with `annexb=no` and plays a G.729 capture: the tones
/// are stored, in order and timing, at 8 kHz.
#[test]
fn sipp_g729_capture_deposit_holds_the_tones() {
    let v = vmail_with(|_| {});
    let Some(run) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox("1001")
        .offer("18", &["a=rtpmap:18 G729/8000", "a=fmtp:18 annexb=no"])
        .key(
            "audio_pcap",
            &media("tones_g729.pcap").display().to_string(),
        )
        .hold_ms(4500)
        .run()
    else {
        return;
    };
    run.assert_success("G.729 deposit");
    let answer = run.received("SIP/2.0 200").join("\n");
    assert!(answer.contains("a=rtpmap:18 G729/8000"), "{answer}");
    assert!(answer.contains("a=fmtp:18 annexb=no"), "{answer}");
    let (meta, path) = only_message(&v);
    assert_eq!(
        (meta.codec.as_str(), meta.sample_rate),
        ("G729", 8000),
        "{meta:?}"
    );
    let (_, samples) = read_wav(&path);
    assert_test_tones(&tone_sequence(&samples, 8000), 25);
}

/// sipp plays the G.722 capture (the load harness's G.722 step uses it):
/// the tones are stored at 16 kHz.
#[test]
fn sipp_g722_capture_deposit_holds_the_tones() {
    let v = vmail_with(|_| {});
    let Some(run) = Sipp::uac("deposit.xml", v.sip_addr())
        .mailbox("1001")
        .offer("9", &["a=rtpmap:9 G722/8000"])
        .key(
            "audio_pcap",
            &media("tones_g722.pcap").display().to_string(),
        )
        .hold_ms(4500)
        .run()
    else {
        return;
    };
    run.assert_success("G.722 deposit");
    let (meta, path) = only_message(&v);
    assert_eq!(
        (meta.codec.as_str(), meta.sample_rate),
        ("G722", 16000),
        "{meta:?}"
    );
    let (_, samples) = read_wav(&path);
    assert_test_tones(&tone_sequence(&samples, 16000), 25);
}

/// `ext.codecs` restricts: a G.722-only offer to an instance that allows
/// only G.711 gets 488; its order decides over the offer's.
#[test]
fn ext_codecs_restricts_and_orders_the_answer() {
    let v = vmail_with(|ext| ext["codecs"] = json!(["PCMA", "PCMU"]));
    let Some(run) = Sipp::uac("expect_status.xml", v.sip_addr())
        .mailbox("1001")
        .set("expected", "488")
        .offer("9", &["a=rtpmap:9 G722/8000"])
        .run()
    else {
        return;
    };
    run.assert_success("G.722 offer to a G.711-only instance");
    let v = vmail_with(|ext| ext["codecs"] = json!(["G722", "PCMU"]));
    let peer = RtpPeer::listen();
    let run = Sipp::uac("deposit_rtp_peer.xml", v.sip_addr())
        .mailbox("1001")
        .offer("0 9", &["a=rtpmap:9 G722/8000"])
        .key("rtp_port", &peer.port().to_string())
        .hold_ms(1500)
        .run()
        .expect("sipp present");
    run.assert_success("offer PCMU then G.722");
    let answer = run.received("SIP/2.0 200").join("\n");
    assert!(
        answer.contains("m=audio") && answer.contains("RTP/AVP 9"),
        "{answer}"
    );
    let capture = peer.finish();
    assert!(
        capture.of_type(9).count() > 0,
        "vmail plays G.722 to the caller"
    );
}

// ---------------------------------------------------------------------------
// Against other implementations

/// Signal-to-noise ratio of `got` against `want` in dB, after aligning by
/// the delay (0..max_delay samples) that fits best.
fn snr_db(want: &[i16], got: &[i16], max_delay: usize) -> f64 {
    (0..=max_delay)
        .map(|d| {
            let n = want.len().min(got.len().saturating_sub(d));
            let (mut sig, mut err) = (0.0f64, 0.0f64);
            for i in 0..n {
                let w = f64::from(want[i]);
                sig += w * w;
                err += (w - f64::from(got[i + d])).powi(2);
            }
            10.0 * (sig / err.max(1.0)).log10()
        })
        .fold(f64::MIN, f64::max)
}

fn speech_like(rate: u32, ms: u32) -> Vec<i16> {
    let n = (rate * ms / 1000) as usize;
    (0..n)
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

/// vmail's G.722 (audio-codec) and ezk-g722 decode each other's streams
/// identically, and the round trip keeps the signal; libopus's packets
/// decode in the pure-Rust opus-rs as in libopus (docs/decisions.md).
#[test]
fn codec_implementations_agree() {
    use audio_codec::Decoder as _;
    use vmail::media::AudioDecoder;
    let pcm = speech_like(16000, 1000);
    // G.722: encode with vmail, decode with both.
    let mut enc = AudioEncoder::new(Codec::G722, &OpusParams::default());
    let mut ours = AudioDecoder::new(Codec::G722, true);
    let mut ezk = ezk_g722::libg722::decoder::Decoder::new(
        ezk_g722::libg722::Bitrate::Mode1_64000,
        false,
        false,
    );
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for f in pcm.chunks(320) {
        let mut p = Vec::new();
        enc.encode(f, &mut p);
        ours.decode(&p, &mut a);
        b.extend(ezk.decode(&p));
    }
    assert!(a == b, "the two G.722 decoders differ");
    let g722 = snr_db(&pcm, &a, 64);
    assert!(g722 > 15.0, "G.722 round trip SNR {g722:.1} dB");
    // ezk's encoder, our decoder.
    let mut ezk_enc = ezk_g722::libg722::encoder::Encoder::new(
        ezk_g722::libg722::Bitrate::Mode1_64000,
        false,
        false,
    );
    let mut ours = AudioDecoder::new(Codec::G722, true);
    let mut c = Vec::new();
    for f in pcm.chunks(320) {
        ours.decode(&ezk_enc.encode(f), &mut c);
    }
    let ezk_snr = snr_db(&pcm, &c, 64);
    eprintln!("G.722: ezk-g722's encoder, vmail's decoder: {ezk_snr:.1} dB");
    // Opus: libopus packets through libopus and through opus-rs.
    let mut enc = AudioEncoder::new(Codec::Opus, &OpusParams::default());
    let mut lib = AudioDecoder::new(Codec::Opus, true);
    let mut pure = audio_codec::opus::OpusDecoder::new(16000, 1);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut buf = vec![0i16; 1920];
    for f in pcm.chunks(320) {
        let mut p = Vec::new();
        enc.encode(f, &mut p);
        lib.decode(&p, &mut a);
        let n = pure.decode_into(&p, &mut buf).unwrap_or(0);
        b.extend_from_slice(&buf[..n]);
    }
    let lib_snr = snr_db(&pcm, &a, 400);
    let pure_snr = snr_db(&a, &b, 0);
    eprintln!("G.722 round trip {g722:.1} dB; Opus libopus round trip {lib_snr:.1} dB, opus-rs vs libopus {pure_snr:.1} dB");
    // Two independent decoders of one stream: the same audio.
    assert!(
        pure_snr > 40.0,
        "opus-rs and libopus disagree ({pure_snr:.1} dB)"
    );
    // G.729 round trip (8 kHz).
    let pcm8 = speech_like(8000, 1000);
    let mut enc = AudioEncoder::new(Codec::G729, &OpusParams::default());
    let mut dec = AudioDecoder::new(Codec::G729, false);
    let mut out = Vec::new();
    for f in pcm8.chunks(160) {
        let mut p = Vec::new();
        enc.encode(f, &mut p);
        assert_eq!(p.len(), 20);
        dec.decode(&p, &mut out);
    }
    assert_eq!(out.len(), pcm8.len());
    // CELP keeps the spectrum, not the waveform: the 140-700 Hz voice
    // harmonics dominate the decoded signal as they did the input.
    let low: f64 = [140.0, 280.0, 420.0]
        .iter()
        .map(|&f| goertzel_power(&out[2000..6000], 8000, f))
        .sum();
    let high = goertzel_power(&out[2000..6000], 8000, 3000.0);
    assert!(
        low > 10.0 * high,
        "G.729 round trip lost the voice ({low:e} vs {high:e})"
    );
}
