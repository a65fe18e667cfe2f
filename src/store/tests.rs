//! Tests of the file-system store as a whole.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn store() -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStore::open_for_tests(dir.path()).unwrap();
    (dir, s)
}

fn mb(s: &str) -> MailboxId {
    MailboxId::parse(s).unwrap()
}

fn with_mailbox(name: &str) -> (tempfile::TempDir, FsStore, MailboxId) {
    let (d, s) = store();
    let id = mb(name);
    s.create_mailbox(&id, MailboxSettings::default(), Some("1234"))
        .unwrap();
    (d, s, id)
}

fn info(rate: u32) -> RecordingInfo {
    RecordingInfo {
        caller_uri: "sip:2002@test.example".into(),
        caller_name: Some("Bob".into()),
        called_uri: "sip:1001@test.example".into(),
        cause: cause::BUSY.into(),
        codec: "PCMA".into(),
        site: "site1".into(),
        instance: "vmail1".into(),
        epoch: 7,
        sample_rate: rate,
    }
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)
}

/// `n` samples of a ramp, in 20 ms packets of `rate`.
fn record(w: &mut RecordingWriter, seconds_x10: u64, rate: u32) {
    let per_packet = (rate / 50) as usize;
    let packets = seconds_x10 * 5;
    let mut pkt = vec![0i16; per_packet];
    for p in 0..packets {
        for (i, s) in pkt.iter_mut().enumerate() {
            *s = ((p as usize * per_packet + i) % 2000) as i16 - 1000;
        }
        w.append(&pkt).unwrap();
    }
}

fn hound_len(path: &Path) -> (u32, u32) {
    let r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    assert_eq!(spec.channels, 1);
    assert_eq!(spec.bits_per_sample, 16);
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    let n = r.len();
    let samples: Vec<i16> = r.into_samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(samples.len() as u32, n);
    (spec.sample_rate, n)
}

fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(p: &Path, root: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                walk(&path, root, out);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn open_creates_layout() {
    let (d, s) = store();
    assert!(d.path().join("vmail/domains").is_dir());
    assert_eq!(s.root(), d.path().join("vmail"));
    // No probe file is left behind.
    assert_eq!(tree(d.path()), vec!["vmail", "vmail/domains"]);
    // Reopening is fine.
    FsStore::open(d.path()).unwrap();
}

#[test]
fn hostile_input_touches_nothing_outside() {
    let outer = tempfile::tempdir().unwrap();
    let share = outer.path().join("share");
    fs::create_dir(&share).unwrap();
    fs::write(outer.path().join("victim"), b"keep").unwrap();
    let s = FsStore::open_for_tests(&share).unwrap();
    let id = mb("1001@test.example");
    s.create_mailbox(&id, MailboxSettings::default(), None)
        .unwrap();
    let before = tree(outer.path());

    let hostile = [
        "../victim",
        "..",
        ".",
        "%2e%2e",
        "a/../../victim",
        "..\\victim",
        "x\0y",
        "/etc/passwd",
        "",
        ".hidden",
    ];
    let long = "a".repeat(5000);
    for h in hostile.iter().copied().chain([long.as_str()]) {
        assert!(MailboxId::new(h, "test.example").is_err(), "{h:?}");
        assert!(MailboxId::new("u", h).is_err(), "{h:?}");
        assert!(MailboxId::parse(&format!("{h}@test.example")).is_err());
        assert!(MailboxId::parse(&format!("u@{h}")).is_err());
        let e = s.message(&id, h).unwrap_err();
        assert!(matches!(e, StoreError::InvalidName { .. }), "{h:?}: {e}");
        assert!(s.message_audio_path(&id, h).is_err());
        assert!(s.move_message(&id, h, Folder::Old).is_err());
        assert!(s.set_heard(&id, h, true).is_err());
        assert!(s.delete_message(&id, h).is_err());
        assert!(s.copy_message(&id, h, &id, "x").is_err());
        assert!(s.list_mailboxes(Some(h)).is_err());
    }
    assert_eq!(tree(outer.path()), before);
    assert_eq!(fs::read(outer.path().join("victim")).unwrap(), b"keep");
}

#[test]
fn mailbox_lifecycle() {
    let (_d, s) = store();
    let a = mb("1001@Test.Example");
    let b = mb("1002@test.example");
    let c = mb("alice@other.example");
    assert!(s.mailbox(&a).unwrap().is_none());
    let settings = MailboxSettings {
        display_name: Some("Alice Örtegren".into()),
        language: Some("ru".into()),
        timezone: Some("Europe/Moscow".into()),
        email: Some("a@example.org".into()),
        max_messages: Some(50),
        retention_old_days: Some(30),
        ..Default::default()
    };
    let m = s.create_mailbox(&a, settings.clone(), None).unwrap();
    assert_eq!(m.settings, settings);
    assert!(!m.has_pin);
    assert!(parse_rfc3339(&m.created).is_some());
    assert!(matches!(
        s.create_mailbox(&a, MailboxSettings::default(), None),
        Err(StoreError::AlreadyExists { .. })
    ));
    s.create_mailbox(&b, MailboxSettings::default(), Some("0000"))
        .unwrap();
    s.create_mailbox(&c, MailboxSettings::default(), None)
        .unwrap();
    assert_eq!(s.mailbox(&a).unwrap().unwrap(), m);
    assert!(s.mailbox(&b).unwrap().unwrap().has_pin);
    assert_eq!(
        s.list_mailboxes(Some("TEST.example.")).unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(s.list_mailboxes(None).unwrap().len(), 3);
    assert!(s.list_mailboxes(Some("none.example")).unwrap().is_empty());

    let new_settings = MailboxSettings {
        display_name: Some("A".into()),
        ..Default::default()
    };
    let m2 = s.update_settings(&a, new_settings.clone()).unwrap();
    assert_eq!(m2.settings, new_settings);
    assert_eq!(m2.created, m.created);
    assert_eq!(s.mailbox(&a).unwrap().unwrap().settings, new_settings);

    for bad in [
        MailboxSettings {
            language: Some("../en".into()),
            ..Default::default()
        },
        MailboxSettings {
            timezone: Some("/etc/passwd".into()),
            ..Default::default()
        },
        MailboxSettings {
            display_name: Some("x".repeat(300)),
            ..Default::default()
        },
        MailboxSettings {
            display_name: Some("a\nb".into()),
            ..Default::default()
        },
        MailboxSettings {
            max_messages: Some(0),
            ..Default::default()
        },
        MailboxSettings {
            retention_old_days: Some(36_501),
            ..Default::default()
        },
        MailboxSettings {
            operator: Some("tel:+100".into()),
            ..Default::default()
        },
        MailboxSettings {
            operator: Some("sip:".into()),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            s.update_settings(&a, bad),
            Err(StoreError::InvalidValue { .. })
        ));
    }

    s.remove_mailbox(&a).unwrap();
    assert!(s.mailbox(&a).unwrap().is_none());
    assert!(matches!(
        s.remove_mailbox(&a),
        Err(StoreError::NotFound { what: "mailbox" })
    ));
    assert!(matches!(
        s.update_settings(&a, MailboxSettings::default()),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.list_mailboxes(Some("test.example")).unwrap(), vec![b]);
    // Nothing hidden is left in the domain directory.
    let ddir = s.root().join("domains/test.example");
    assert_eq!(fs::read_dir(ddir).unwrap().count(), 1);
    // Re-creating works.
    s.create_mailbox(&a, MailboxSettings::default(), None)
        .unwrap();
}

#[test]
fn pin_is_hashed_and_verified() {
    let (_d, s) = store();
    let id = mb("1001@test.example");
    s.create_mailbox(&id, MailboxSettings::default(), Some("73915"))
        .unwrap();
    let raw = fs::read_to_string(s.root().join("domains/test.example/1001/mailbox.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let hash = v["pin_hash"].as_str().unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!raw.contains("\"73915\""));
    assert!(s.verify_pin(&id, "73915").unwrap());
    assert!(!s.verify_pin(&id, "73916").unwrap());
    assert!(!s.verify_pin(&id, "").unwrap());
    assert!(!s.verify_pin(&id, "abc").unwrap());
    s.set_pin(&id, "4444").unwrap();
    assert!(s.verify_pin(&id, "4444").unwrap());
    assert!(!s.verify_pin(&id, "73915").unwrap());
    for bad in ["123", "12ab", &"1".repeat(21)] {
        assert!(matches!(
            s.set_pin(&id, bad),
            Err(StoreError::InvalidValue { what: "pin", .. })
        ));
    }
    assert!(matches!(
        s.create_mailbox(
            &mb("x@test.example"),
            MailboxSettings::default(),
            Some("12")
        ),
        Err(StoreError::InvalidValue { .. })
    ));
    let nopin = mb("1002@test.example");
    s.create_mailbox(&nopin, MailboxSettings::default(), None)
        .unwrap();
    assert!(!s.verify_pin(&nopin, "1234").unwrap());
    assert!(s.verify_pin(&mb("404@test.example"), "1234").is_err());
}

#[test]
fn recording_finish_produces_readable_message() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let mut w = s.begin_recording(&id, info(8000), t0()).unwrap();
    let msg_id = w.id().to_owned();
    assert!(
        msg_id.starts_with("20231114T221320.250Z-vmail1-"),
        "{msg_id}"
    );
    // A reader sees nothing while recording.
    assert!(s.list_messages(&id, Folder::Inbox).unwrap().is_empty());
    record(&mut w, 31, 8000); // 3.1 s
    assert_eq!(w.samples(), 24_800);
    assert_eq!(w.duration_ms(), 3100);
    // Mid-recording the tmp file is already a readable WAV of >= 3 s.
    let tmp = s
        .root()
        .join(format!("domains/test.example/1001/tmp/{msg_id}.wav"));
    let (_, n) = hound_len(&tmp);
    assert!(n >= 24_000, "{n}");
    w.set_urgent(true).unwrap();
    let meta = w.finish().unwrap();
    assert_eq!(meta.id, msg_id);
    assert_eq!(meta.folder, Folder::Inbox);
    assert_eq!(meta.duration_ms, 3100);
    assert_eq!(meta.caller_uri, "sip:2002@test.example");
    assert_eq!(meta.caller_name.as_deref(), Some("Bob"));
    assert_eq!(meta.called_uri, "sip:1001@test.example");
    assert_eq!(meta.cause, "busy");
    assert_eq!(meta.codec, "PCMA");
    assert_eq!(
        (meta.site.as_str(), meta.instance.as_str(), meta.epoch),
        ("site1", "vmail1", 7)
    );
    assert_eq!(meta.received, "2023-11-14T22:13:20.25Z");
    assert!(meta.urgent && !meta.heard && !meta.recovered);
    assert_eq!(meta.forwarded_by, None);
    assert_eq!(meta.sample_rate, 8000);

    let path = s.message_audio_path(&id, &msg_id).unwrap().unwrap();
    assert!(path.ends_with(format!("INBOX/{msg_id}.wav")));
    assert_eq!(hound_len(&path), (8000, 24_800));
    let samples: Vec<i16> = hound::WavReader::open(&path)
        .unwrap()
        .into_samples::<i16>()
        .take(3)
        .map(|s| s.unwrap())
        .collect();
    assert_eq!(samples, vec![-1000, -999, -998]);
    assert_eq!(s.message(&id, &msg_id).unwrap().unwrap(), meta);
    assert_eq!(s.list_messages(&id, Folder::Inbox).unwrap(), vec![meta]);
    assert_eq!(
        s.counts(&id).unwrap(),
        Counts {
            new: 1,
            old: 0,
            urgent_new: 1,
            urgent_old: 0
        }
    );
    // tmp/ is empty again.
    assert!(tree(&s.root().join("domains/test.example/1001/tmp")).is_empty());
}

#[test]
fn recording_16k_and_discard_and_empty() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let mut w = s.begin_recording(&id, info(16000), t0()).unwrap();
    record(&mut w, 12, 16000);
    let m = w.finish().unwrap();
    assert_eq!(m.duration_ms, 1200);
    let p = s.message_audio_path(&id, &m.id).unwrap().unwrap();
    assert_eq!(hound_len(&p), (16000, 19_200));

    let mut w = s.begin_recording(&id, info(8000), t0()).unwrap();
    record(&mut w, 5, 8000);
    w.discard().unwrap();
    let w = s.begin_recording(&id, info(8000), t0()).unwrap();
    assert!(matches!(
        w.finish(),
        Err(StoreError::InvalidValue {
            reason: "no audio",
            ..
        })
    ));
    assert_eq!(s.counts(&id).unwrap().new, 1);
    assert!(tree(&s.root().join("domains/test.example/1001/tmp")).is_empty());
    assert!(matches!(
        s.begin_recording(&id, info(0), t0()),
        Err(StoreError::InvalidValue { .. })
    ));
    assert!(matches!(
        s.begin_recording(&mb("404@test.example"), info(8000), t0()),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn killed_recording_is_recovered() {
    let (d, s, id) = with_mailbox("1001@test.example");
    let mut w = s.begin_recording(&id, info(8000), t0()).unwrap();
    let msg_id = w.id().to_owned();
    record(&mut w, 25, 8000); // 2.5 s, header updated at 1 s and 2 s
    w.simulate_kill();
    let tmp = s
        .root()
        .join(format!("domains/test.example/1001/tmp/{msg_id}.wav"));
    // The killed file is already a valid WAV of at least 2 s.
    let (_, n) = hound_len(&tmp);
    assert!(n >= 16_000, "{n}");
    assert!(s.list_messages(&id, Folder::Inbox).unwrap().is_empty());

    // A restarted instance recovers it.
    let s2 = FsStore::open_for_tests(d.path()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    s2.set_observer(Arc::new(move |m: &MailboxId| {
        seen2.lock().unwrap().push(m.clone())
    }));
    let rec = s2.recover().unwrap();
    assert_eq!(rec, vec![(id.clone(), msg_id.clone())]);
    assert_eq!(*seen.lock().unwrap(), vec![id.clone()]);
    let list = s2.list_messages(&id, Folder::Inbox).unwrap();
    assert_eq!(list.len(), 1);
    let m = &list[0];
    assert_eq!(m.id, msg_id);
    assert!(m.recovered);
    assert!(m.duration_ms >= 2000, "{}", m.duration_ms);
    assert_eq!(m.caller_uri, "sip:2002@test.example");
    assert_eq!(m.epoch, 7);
    let p = s2.message_audio_path(&id, &msg_id).unwrap().unwrap();
    let (rate, n) = hound_len(&p);
    assert_eq!(rate, 8000);
    assert_eq!(u64::from(n) * 1000 / 8000, m.duration_ms);
    assert!(tree(&s.root().join("domains/test.example/1001/tmp")).is_empty());
    // A second pass finds nothing.
    assert!(s2.recover().unwrap().is_empty());
}

#[test]
fn recover_leaves_live_recordings_alone() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let mut w = s.begin_recording(&id, info(8000), t0()).unwrap();
    record(&mut w, 15, 8000);
    assert!(s.recover().unwrap().is_empty());
    let m = w.finish().unwrap();
    assert!(!m.recovered);
    assert_eq!(m.duration_ms, 1500);
}

fn tmp_dir(s: &FsStore) -> std::path::PathBuf {
    s.root().join("domains/test.example/1001/tmp")
}

#[test]
fn recover_header_claiming_zero_bytes() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let stem = "20240101T100000.000Z-vmail2-abcdef";
    let mut bytes = wav::header(8000, 0).to_vec();
    bytes.extend(std::iter::repeat_n(0x11u8, 8000 * 2 * 3 + 1)); // 3 s + odd byte
    fs::write(tmp_dir(&s).join(format!("{stem}.wav")), &bytes).unwrap();
    let rec = s.recover().unwrap();
    assert_eq!(rec, vec![(id.clone(), stem.to_owned())]);
    let m = s.message(&id, stem).unwrap().unwrap();
    assert!(m.recovered);
    assert_eq!(m.duration_ms, 3000);
    // No sidecar: minimal metadata, time from the id.
    assert_eq!(m.received, "2024-01-01T10:00:00Z");
    assert_eq!(m.called_uri, "sip:1001@test.example");
    assert_eq!(m.cause, "unknown");
    assert_eq!(m.caller_uri, "");
    let p = s.message_audio_path(&id, stem).unwrap().unwrap();
    assert_eq!(hound_len(&p), (8000, 24_000));
    assert_eq!(fs::metadata(&p).unwrap().len(), 44 + 48_000);
}

#[test]
fn recover_truncated_or_garbage_headers() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let t = tmp_dir(&s);
    // Truncated header, no audio: removed with its sidecar.
    fs::write(
        t.join("20240101T100000.000Z-a-000001.wav"),
        &wav::header(8000, 0)[..20],
    )
    .unwrap();
    fs::write(t.join("20240101T100000.000Z-a-000001.json"), b"{}").unwrap();
    // Header only: removed.
    fs::write(
        t.join("20240101T100000.000Z-a-000002.wav"),
        wav::header(8000, 1000),
    )
    .unwrap();
    // Empty file: removed.
    fs::write(t.join("20240101T100000.000Z-a-000003.wav"), b"").unwrap();
    // Garbage header with audio after it: recovered at 8 kHz.
    let mut g = vec![0xFFu8; 44];
    g.extend(vec![0u8; 1600]);
    fs::write(t.join("20240101T100000.000Z-a-000004.wav"), &g).unwrap();
    // A valid header at 16 kHz without sidecar keeps its rate.
    let mut h = wav::header(16000, 0).to_vec();
    h.extend(vec![0u8; 3200]);
    fs::write(t.join("20240101T100000.000Z-a-000005.wav"), &h).unwrap();
    // Corrupt sidecar: minimal metadata.
    let mut c = wav::header(8000, 0).to_vec();
    c.extend(vec![0u8; 800]);
    fs::write(t.join("20240101T100000.000Z-a-000006.wav"), &c).unwrap();
    fs::write(t.join("20240101T100000.000Z-a-000006.json"), b"{not json").unwrap();
    // A stem that is not a valid id gets a fresh one.
    fs::write(t.join(".weird.wav"), &c).unwrap();
    // Orphan sidecar and leftover temporary file.
    fs::write(t.join("20240101T100000.000Z-a-000007.json"), b"{}").unwrap();
    fs::write(t.join(".x.json.123456.tmp"), b"partial").unwrap();
    let inbox = s.root().join("domains/test.example/1001/INBOX");
    fs::write(inbox.join(".y.json.123456.tmp"), b"partial").unwrap();

    let rec = s.recover().unwrap();
    let ids: Vec<&str> = rec.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(rec.len(), 4, "{ids:?}");
    assert!(ids.contains(&"20240101T100000.000Z-a-000004"));
    assert!(ids.contains(&"20240101T100000.000Z-a-000005"));
    assert!(ids.contains(&"20240101T100000.000Z-a-000006"));
    assert!(tree(&t).is_empty(), "{:?}", tree(&t));
    let m4 = s
        .message(&id, "20240101T100000.000Z-a-000004")
        .unwrap()
        .unwrap();
    assert_eq!((m4.sample_rate, m4.duration_ms), (8000, 100));
    let m5 = s
        .message(&id, "20240101T100000.000Z-a-000005")
        .unwrap()
        .unwrap();
    assert_eq!((m5.sample_rate, m5.duration_ms), (16000, 100));
    for (_, mid) in &rec {
        let p = s.message_audio_path(&id, mid).unwrap().unwrap();
        hound_len(&p);
    }
    assert_eq!(s.list_messages(&id, Folder::Inbox).unwrap().len(), 4);
    assert!(!tree(&inbox).iter().any(|n| n.ends_with(".tmp")));
}

#[test]
fn recover_describes_bare_wav_and_cleans_removed_mailboxes() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let old = s.root().join("domains/test.example/1001/Old");
    let stem = "20240102T030405.006Z-x-00000a";
    let mut h = wav::header(8000, 1600).to_vec();
    h.extend(vec![0u8; 1600]);
    fs::write(old.join(format!("{stem}.wav")), &h).unwrap();
    let gone = s.root().join("domains/test.example/.removed-1002-abcdef");
    fs::create_dir_all(gone.join("INBOX")).unwrap();
    assert!(s.list_messages(&id, Folder::Old).unwrap().is_empty());
    let rec = s.recover().unwrap();
    assert_eq!(rec, vec![(id.clone(), stem.to_owned())]);
    let m = s.message(&id, stem).unwrap().unwrap();
    assert_eq!(m.folder, Folder::Old);
    assert_eq!(m.duration_ms, 100);
    assert!(m.recovered);
    assert!(!gone.exists());
}

#[test]
fn recover_with_filters() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let other = mb("2001@other.example");
    s.create_mailbox(&other, MailboxSettings::default(), None)
        .unwrap();
    let mut c = wav::header(8000, 0).to_vec();
    c.extend(vec![0u8; 800]);
    let stem = "20240101T100000.000Z-a-000001";
    fs::write(tmp_dir(&s).join(format!("{stem}.wav")), &c).unwrap();
    fs::write(
        s.root()
            .join(format!("domains/other.example/2001/tmp/{stem}.wav")),
        &c,
    )
    .unwrap();
    // Files just written are not idle for a minute.
    let opts = RecoverOptions {
        domain_filter: None,
        min_idle: Duration::from_secs(60),
    };
    assert!(s.recover_with(&opts).unwrap().is_empty());
    let opts = RecoverOptions {
        domain_filter: Some(Arc::new(|d: &str| d == "test.example")),
        min_idle: Duration::ZERO,
    };
    assert_eq!(s.recover_with(&opts).unwrap(), vec![(id, stem.to_owned())]);
    assert!(s.list_messages(&other, Folder::Inbox).unwrap().is_empty());
    assert_eq!(s.recover().unwrap(), vec![(other, stem.to_owned())]);
}

fn make_message(s: &FsStore, id: &MailboxId, at: SystemTime) -> MessageMeta {
    let mut w = s.begin_recording(id, info(8000), at).unwrap();
    record(&mut w, 2, 8000);
    w.finish().unwrap()
}

#[test]
fn move_heard_delete_copy() {
    let (_d, s, a) = with_mailbox("1001@test.example");
    let b = mb("1002@test.example");
    s.create_mailbox(&b, MailboxSettings::default(), None)
        .unwrap();
    let m1 = make_message(&s, &a, t0());
    let m2 = make_message(&s, &a, t0() + Duration::from_secs(5));
    let list = s.list_messages(&a, Folder::Inbox).unwrap();
    assert_eq!(
        list.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec![m1.id.as_str(), m2.id.as_str()]
    );

    s.set_heard(&a, &m1.id, true).unwrap();
    assert!(s.message(&a, &m1.id).unwrap().unwrap().heard);
    s.move_message(&a, &m1.id, Folder::Old).unwrap();
    s.move_message(&a, &m1.id, Folder::Old).unwrap(); // no-op
    let moved = s.message(&a, &m1.id).unwrap().unwrap();
    assert_eq!(moved.folder, Folder::Old);
    assert!(moved.heard);
    assert_eq!(
        s.list_messages(&a, Folder::Old).unwrap(),
        vec![moved.clone()]
    );
    assert_eq!(s.counts(&a).unwrap().new, 1);
    assert_eq!(s.counts(&a).unwrap().old, 1);
    let inbox = s.root().join("domains/test.example/1001/INBOX");
    assert!(!inbox.join(format!("{}.json", m1.id)).exists());
    let p = s.message_audio_path(&a, &m1.id).unwrap().unwrap();
    assert!(p.ends_with(format!("Old/{}.wav", m1.id)));

    let new_id = s.copy_message(&a, &m1.id, &b, "1001@test.example").unwrap();
    assert_ne!(new_id, m1.id);
    let c = s.message(&b, &new_id).unwrap().unwrap();
    assert_eq!(c.folder, Folder::Inbox);
    assert!(!c.heard);
    assert_eq!(c.forwarded_by.as_deref(), Some("1001@test.example"));
    assert_eq!(c.caller_uri, moved.caller_uri);
    assert_eq!(c.received, moved.received);
    let cp = s.message_audio_path(&b, &new_id).unwrap().unwrap();
    assert_eq!(fs::read(&cp).unwrap(), fs::read(&p).unwrap());
    assert!(!tree(&s.root().join("domains/test.example/1002/INBOX"))
        .iter()
        .any(|n| n.ends_with(".tmp")));
    assert!(matches!(
        s.copy_message(&a, &m1.id, &mb("404@test.example"), "x"),
        Err(StoreError::NotFound { what: "mailbox" })
    ));
    assert!(matches!(
        s.copy_message(&a, "20000101T000000.000Z-x-000000", &b, "x"),
        Err(StoreError::NotFound { what: "message" })
    ));

    s.move_message(&a, &m1.id, Folder::Inbox).unwrap();
    assert_eq!(s.counts(&a).unwrap().new, 2);
    s.delete_message(&a, &m1.id).unwrap();
    assert!(s.message(&a, &m1.id).unwrap().is_none());
    assert!(matches!(
        s.delete_message(&a, &m1.id),
        Err(StoreError::NotFound { what: "message" })
    ));
    assert!(matches!(
        s.set_heard(&a, &m1.id, true),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        s.move_message(&a, &m1.id, Folder::Old),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        s.counts(&a).unwrap(),
        Counts {
            new: 1,
            ..Default::default()
        }
    );
    // The copy is independent of the source.
    assert!(s.message(&b, &new_id).unwrap().is_some());
}

#[test]
fn corrupt_metadata_is_skipped_in_listings() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let m = make_message(&s, &id, t0());
    let bad = "20240101T000000.000Z-x-bad000";
    let inbox = s.root().join("domains/test.example/1001/INBOX");
    fs::copy(
        inbox.join(format!("{}.wav", m.id)),
        inbox.join(format!("{bad}.wav")),
    )
    .unwrap();
    fs::write(inbox.join(format!("{bad}.json")), b"{ broken").unwrap();
    // A WAV without JSON is not a message.
    fs::copy(
        inbox.join(format!("{}.wav", m.id)),
        inbox.join("20240101T000000.000Z-x-nojson.wav"),
    )
    .unwrap();
    assert_eq!(s.list_messages(&id, Folder::Inbox).unwrap(), vec![m]);
    assert!(matches!(
        s.message(&id, bad),
        Err(StoreError::Corrupt { .. })
    ));
    // A corrupt mailbox.json is an error for that mailbox only.
    let other = mb("1002@test.example");
    s.create_mailbox(&other, MailboxSettings::default(), None)
        .unwrap();
    fs::write(
        s.root().join("domains/test.example/1002/mailbox.json"),
        b"[",
    )
    .unwrap();
    assert!(matches!(s.mailbox(&other), Err(StoreError::Corrupt { .. })));
    assert_eq!(s.list_mailboxes(Some("test.example")).unwrap().len(), 2);
    assert!(s.mailbox(&id).unwrap().is_some());
}

#[test]
fn greetings() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    for k in GreetingKind::ALL {
        assert_eq!(s.greeting_path(&id, k).unwrap(), None);
    }
    let pcm: Vec<i16> = (0..4000).map(|i| (i % 100) as i16).collect();
    s.store_greeting(&id, GreetingKind::Busy, &pcm, 8000)
        .unwrap();
    let p = s.greeting_path(&id, GreetingKind::Busy).unwrap().unwrap();
    assert!(p.ends_with("greetings/busy.wav"));
    assert_eq!(hound_len(&p), (8000, 4000));
    // Replace with a 16 kHz one.
    s.store_greeting(&id, GreetingKind::Busy, &pcm[..1600], 16000)
        .unwrap();
    assert_eq!(hound_len(&p), (16000, 1600));
    s.store_greeting(&id, GreetingKind::Temporary, &pcm, 8000)
        .unwrap();
    let g = s.root().join("domains/test.example/1001/greetings");
    let mut names = tree(&g);
    names.sort();
    assert_eq!(names, vec!["busy.wav", "temp.wav"]);
    s.delete_greeting(&id, GreetingKind::Busy).unwrap();
    assert_eq!(s.greeting_path(&id, GreetingKind::Busy).unwrap(), None);
    assert!(matches!(
        s.delete_greeting(&id, GreetingKind::Busy),
        Err(StoreError::NotFound { what: "greeting" })
    ));
    assert!(matches!(
        s.store_greeting(&id, GreetingKind::Name, &[], 8000),
        Err(StoreError::InvalidValue { .. })
    ));
    assert!(matches!(
        s.store_greeting(&id, GreetingKind::Name, &pcm, 1),
        Err(StoreError::InvalidValue { .. })
    ));
    assert!(matches!(
        s.greeting_path(&mb("404@test.example"), GreetingKind::Name),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn observer_sees_every_count_change() {
    let (_d, s, a) = with_mailbox("1001@test.example");
    let b = mb("1002@test.example");
    s.create_mailbox(&b, MailboxSettings::default(), None)
        .unwrap();
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let c2 = calls.clone();
    s.set_observer(Arc::new(move |m: &MailboxId| {
        *c2.lock().unwrap().entry(m.to_string()).or_default() += 1;
    }));
    let count = |k: &str| calls.lock().unwrap().get(k).copied().unwrap_or(0);
    let m = make_message(&s, &a, t0());
    assert_eq!(count("1001@test.example"), 1);
    s.set_heard(&a, &m.id, true).unwrap();
    assert_eq!(
        count("1001@test.example"),
        1,
        "heard does not change counts"
    );
    s.move_message(&a, &m.id, Folder::Old).unwrap();
    assert_eq!(count("1001@test.example"), 2);
    let c = s.copy_message(&a, &m.id, &b, "1001@test.example").unwrap();
    assert_eq!(count("1002@test.example"), 1);
    s.delete_message(&b, &c).unwrap();
    assert_eq!(count("1002@test.example"), 2);
    let w = s.begin_recording(&a, info(8000), t0()).unwrap();
    w.discard().unwrap();
    assert_eq!(count("1001@test.example"), 2, "discard changes nothing");
    s.remove_mailbox(&a).unwrap();
    assert_eq!(count("1001@test.example"), 3);
}

#[test]
fn lockout_state_persists() {
    let (d, s, id) = with_mailbox("1001@test.example");
    let now = t0();
    assert_eq!(s.login_state(&id).unwrap(), LoginState::default());
    for i in 1..=4 {
        let a = s.reserve_login_attempt(&id, now, 5, 300).unwrap();
        assert_eq!(a, LoginAttempt::Granted);
        let st = s.login_state(&id).unwrap();
        assert_eq!(st.failures, i);
        assert!(!st.is_locked(now));
    }
    drop(s);
    let s = FsStore::open_for_tests(d.path()).unwrap();
    assert_eq!(s.login_state(&id).unwrap().failures, 4);
    // The fifth reservation is granted and writes the lock.
    let a = s.reserve_login_attempt(&id, now, 5, 300).unwrap();
    assert_eq!(a, LoginAttempt::Last);
    let s = FsStore::open_for_tests(d.path()).unwrap();
    let st = s.login_state(&id).unwrap();
    assert_eq!(st.locked_until, Some(now + Duration::from_secs(300)));
    assert_eq!(st.failures, 0);
    let until = now + Duration::from_secs(300);
    assert_eq!(
        s.reserve_login_attempt(&id, now + Duration::from_secs(299), 5, 300)
            .unwrap(),
        LoginAttempt::Locked { until }
    );
    assert_eq!(
        s.login_state(&id).unwrap().failures,
        0,
        "a refusal counts nothing"
    );
    // After the lock has run out, failures count from zero again.
    let later = now + Duration::from_secs(400);
    let a = s.reserve_login_attempt(&id, later, 5, 300).unwrap();
    assert_eq!(a, LoginAttempt::Granted);
    let st = s.login_state(&id).unwrap();
    assert_eq!((st.failures, st.locked_until), (1, None));
    s.record_login_success(&id).unwrap();
    assert_eq!(s.login_state(&id).unwrap(), LoginState::default());
    assert!(s.login_state(&mb("404@test.example")).is_err());
    assert!(s
        .reserve_login_attempt(&mb("404@test.example"), now, 5, 300)
        .is_err());
}

#[test]
fn parallel_reservations_across_store_instances_grant_the_limit() {
    // Separate `FsStore`s on one SiteShare share no in-process lock, like
    // the instances of a group: only the file lock orders them.
    let (d, _s, id) = with_mailbox("1001@test.example");
    let granted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|sc| {
        for _ in 0..8 {
            let s = FsStore::open_for_tests(d.path()).unwrap();
            let id = id.clone();
            let granted = &granted;
            sc.spawn(move || {
                for _ in 0..25 {
                    if s.reserve_login_attempt(&id, t0(), 50, 300)
                        .unwrap()
                        .is_granted()
                    {
                        granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(granted.into_inner(), 50, "200 attempts, limit 50");
    assert!(_s.login_state(&id).unwrap().is_locked(t0()));
}

#[test]
fn unknown_numbers_lock_like_real_mailboxes_across_instances() {
    let (d, real_store, real) = with_mailbox("1001@test.example");
    let ghost = mb("9999@test.example");
    // Two instances on one SiteShare, alternating.
    let other = FsStore::open_for_tests(d.path()).unwrap();
    let stores = [&real_store, &other];
    for i in 0..5 {
        let s = stores[i % 2];
        let expected = if i == 4 {
            LoginAttempt::Last
        } else {
            LoginAttempt::Granted
        };
        assert_eq!(
            s.reserve_login_attempt(&real, t0(), 5, 300).unwrap(),
            expected
        );
        assert_eq!(
            s.reserve_unknown_login_attempt(&ghost, t0(), 5, 300)
                .unwrap(),
            expected
        );
    }
    let until = t0() + Duration::from_secs(300);
    for s in stores {
        assert_eq!(
            s.reserve_login_attempt(&real, t0(), 5, 300).unwrap(),
            LoginAttempt::Locked { until }
        );
        assert_eq!(
            s.reserve_unknown_login_attempt(&ghost, t0(), 5, 300)
                .unwrap(),
            LoginAttempt::Locked { until }
        );
    }
    // Survives a restart; no mailbox folder was made for the number.
    let s = FsStore::open_for_tests(d.path()).unwrap();
    assert!(s.unknown_login_state(&ghost).unwrap().is_locked(t0()));
    assert!(s.mailbox(&ghost).unwrap().is_none());
    assert!(!d.path().join("vmail/domains/test.example/9999").exists());
    assert!(
        s.unknown_login_state(&mb("8888@test.example"))
            .unwrap()
            .failures
            == 0
    );
}

#[test]
fn parallel_reservations_of_an_unknown_number_grant_the_limit() {
    let (d, _s, _id) = with_mailbox("1001@test.example");
    let ghost = mb("9999@test.example");
    let granted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|sc| {
        for _ in 0..8 {
            let s = FsStore::open_for_tests(d.path()).unwrap();
            let ghost = ghost.clone();
            let granted = &granted;
            sc.spawn(move || {
                for _ in 0..10 {
                    if s.reserve_unknown_login_attempt(&ghost, t0(), 20, 300)
                        .unwrap()
                        .is_granted()
                    {
                        granted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(granted.into_inner(), 20, "80 attempts, limit 20");
}

#[test]
fn concurrent_updates_lose_nothing() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let m = make_message(&s, &id, t0());
    std::thread::scope(|sc| {
        for t in 0..4 {
            let s = s.clone();
            let id = id.clone();
            let mid = m.id.clone();
            sc.spawn(move || {
                for i in 0..10 {
                    s.reserve_login_attempt(&id, t0(), 0, 0).unwrap();
                    s.set_heard(&id, &mid, (i + t) % 2 == 0).unwrap();
                    s.update_settings(
                        &id,
                        MailboxSettings {
                            display_name: Some(format!("t{t}")),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                    assert!(!s.list_messages(&id, Folder::Inbox).unwrap().is_empty());
                }
            });
        }
        // Messages recorded meanwhile all arrive.
        for i in 0..5 {
            let _ = make_message(&s, &id, t0() + Duration::from_secs(i));
        }
    });
    assert_eq!(s.login_state(&id).unwrap().failures, 40);
    assert_eq!(s.counts(&id).unwrap().new, 6);
    assert!(
        s.verify_pin(&id, "1234").unwrap(),
        "PIN survived settings updates"
    );
}

#[test]
fn trait_object_works() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let store: Arc<dyn MailboxStore> = Arc::new(s);
    let mut r = store.begin_recording(&id, info(8000), t0()).unwrap();
    r.append(&[1, 2, 3, 4]).unwrap();
    assert_eq!(r.samples(), 4);
    let m = r.finish().unwrap();
    assert_eq!(store.counts(&id).unwrap().new, 1);
    assert!(store.message(&id, &m.id).unwrap().is_some());
}

#[test]
fn siteshare_that_cannot_be_used_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be: fails even for root.
    let f = dir.path().join("file");
    fs::write(&f, b"x").unwrap();
    match FsStore::open(&f) {
        Err(e @ StoreError::Io { .. }) => assert!(e.to_string().contains("file")),
        other => panic!("expected Io error, got {other:?}"),
    }
    // A read-only directory (ineffective for root: then skipped).
    use std::os::unix::fs::PermissionsExt;
    let ro = dir.path().join("ro");
    fs::create_dir(&ro).unwrap();
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
    let chmod_works = fs::write(ro.join("probe"), b"x").is_err();
    if chmod_works {
        assert!(matches!(FsStore::open(&ro), Err(StoreError::Io { .. })));
        // Also read-only after opening: operations fail cleanly.
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
        let s = FsStore::open(&ro).unwrap();
        let dom = ro.join("vmail/domains");
        fs::set_permissions(&dom, fs::Permissions::from_mode(0o555)).unwrap();
        assert!(matches!(
            s.create_mailbox(&mb("a@b.c"), MailboxSettings::default(), None),
            Err(StoreError::Io { .. })
        ));
        fs::set_permissions(&dom, fs::Permissions::from_mode(0o755)).unwrap();
    } else {
        eprintln!("running as root: read-only directory check skipped");
        let _ = fs::remove_file(ro.join("probe"));
    }
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn storage_full_is_recognisable() {
    let e = StoreError::io(
        "write",
        "/x",
        std::io::Error::from(std::io::ErrorKind::StorageFull),
    );
    assert!(e.is_storage_full());
    assert!(e.to_string().starts_with("cannot write /x"));
    // /dev/full, where present, reports ENOSPC on write.
    if Path::new("/dev/full").exists() {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        use std::io::Write;
        let err = f.write_all(&[0u8; 10]).and_then(|_| f.flush()).unwrap_err();
        assert!(StoreError::io("write", "/dev/full", err).is_storage_full());
    }
}

#[test]
fn store_and_writer_are_thread_safe() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync::<FsStore>();
    send::<RecordingWriter>();
}

#[test]
fn named_folders_hold_move_and_count_as_old() {
    let (_d, s, id) = with_mailbox("1001@test.example");
    let mut u = make_message(&s, &id, t0());
    let m = make_message(&s, &id, t0() + Duration::from_secs(1));
    u.urgent = true;
    // Urgent through the metadata: rewrite it in place.
    let json = s
        .root()
        .join("domains/test.example/1001/INBOX")
        .join(format!("{}.json", u.id));
    fs::write(&json, serde_json::to_vec(&u).unwrap()).unwrap();
    for f in Folder::ALL {
        if f != Folder::Inbox {
            assert!(s.list_messages(&id, f).unwrap().is_empty(), "{f}");
        }
    }
    s.move_message(&id, &u.id, Folder::Work).unwrap();
    s.move_message(&id, &m.id, Folder::Cust5).unwrap();
    let dir = s.root().join("domains/test.example/1001");
    assert!(dir.join("Work").join(format!("{}.wav", u.id)).is_file());
    assert!(dir.join("Cust5").join(format!("{}.json", m.id)).is_file());
    let w = s.message(&id, &u.id).unwrap().unwrap();
    assert_eq!(w.folder, Folder::Work);
    assert!(w.urgent);
    assert_eq!(s.list_messages(&id, Folder::Work).unwrap(), vec![w.clone()]);
    assert!(s
        .message_audio_path(&id, &m.id)
        .unwrap()
        .unwrap()
        .ends_with(format!("Cust5/{}.wav", m.id)));
    // Everything outside INBOX is old; the urgent one too.
    assert_eq!(
        s.counts(&id).unwrap(),
        Counts {
            new: 0,
            old: 2,
            urgent_new: 0,
            urgent_old: 1,
        }
    );
    let per: Vec<(Folder, usize)> = s
        .folder_counts(&id)
        .unwrap()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(per, vec![(Folder::Work, 1), (Folder::Cust5, 1)]);
    // Between named folders, and back to INBOX.
    s.move_message(&id, &u.id, Folder::Family).unwrap();
    assert!(!dir.join("Work").join(format!("{}.wav", u.id)).exists());
    s.move_message(&id, &u.id, Folder::Inbox).unwrap();
    assert_eq!(s.counts(&id).unwrap().urgent_new, 1);
    // A recovery pass removes leftovers of atomic writes in a named folder
    // and describes a WAV put there by hand.
    let stray = dir
        .join("Cust5")
        .join(format!("{}.wav", "20240101T000000.000Z-x-abcdef"));
    fs::copy(dir.join("Cust5").join(format!("{}.wav", m.id)), &stray).unwrap();
    let recovered = s
        .recover_with(&RecoverOptions {
            domain_filter: None,
            min_idle: Duration::ZERO,
        })
        .unwrap();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(s.list_messages(&id, Folder::Cust5).unwrap().len(), 2);
    s.delete_message(&id, &m.id).unwrap();
    assert_eq!(s.list_messages(&id, Folder::Cust5).unwrap().len(), 1);
}

#[test]
fn a_mailbox_operator_overrides_or_turns_off_the_domains() {
    let own = MailboxSettings {
        operator: Some("sip:desk@pbx.example.com".into()),
        ..Default::default()
    };
    assert!(own.validate().is_ok());
    assert_eq!(
        own.operator_uri(Some("sip:op@d.ru")),
        Some("sip:desk@pbx.example.com")
    );
    let none = MailboxSettings {
        operator: Some(crate::store::OPERATOR_NONE.into()),
        ..Default::default()
    };
    assert!(none.validate().is_ok());
    assert_eq!(none.operator_uri(Some("sip:op@d.ru")), None);
    let inherit = MailboxSettings::default();
    assert_eq!(
        inherit.operator_uri(Some("sip:op@d.ru")),
        Some("sip:op@d.ru")
    );
    assert_eq!(inherit.operator_uri(None), None);
}
