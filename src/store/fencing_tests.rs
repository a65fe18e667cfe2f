//! Tests of the store's fencing: with a fence set, no write passes unless
//! this instance is the active one of its group, and what is written
//! carries the fence's epoch.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::*;
use crate::cluster::siteshare::SiteShareBackend;
use crate::cluster::{Backend, Claim, Fence, FenceError, Record, RecordState};

fn mb(s: &str) -> MailboxId {
    MailboxId::parse(s).unwrap()
}

fn info() -> RecordingInfo {
    RecordingInfo {
        caller_uri: "sip:2002@test.example".into(),
        caller_name: None,
        called_uri: "sip:1001@test.example".into(),
        cause: cause::BUSY.into(),
        codec: "PCMU".into(),
        site: "site1".into(),
        instance: "vmail1".into(),
        epoch: 7,
        sample_rate: 8000,
    }
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sub {
    call_id: String,
}

/// A fence open for `epoch` for a minute.
fn open_fence(epoch: u64) -> Arc<Fence> {
    let f = Arc::new(Fence::new(1, None));
    f.grant(epoch, Instant::now() + Duration::from_secs(60));
    f
}

/// Every file under `root` with its content (directories as empty).
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                todo.push(p);
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn fenced<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) -> FenceError {
    match r {
        Err(StoreError::Fenced(e)) => e,
        other => panic!("{what}: expected Fenced, got {other:?}"),
    }
}

/// A store with two mailboxes, a message, a greeting, subscriptions, login
/// state and a recording cut short in `tmp/`, all written unfenced.
fn populated() -> (tempfile::TempDir, FsStore, MailboxId, MailboxId, String) {
    let d = tempfile::tempdir().unwrap();
    let s = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    let a = mb("1001@test.example");
    let b = mb("1002@test.example");
    s.create_mailbox(&a, MailboxSettings::default(), Some("1234"))
        .unwrap();
    s.create_mailbox(&b, MailboxSettings::default(), None)
        .unwrap();
    let mut w = s.begin_recording(&a, info(), t0()).unwrap();
    w.append(&[100i16; 8000]).unwrap();
    let msg = w.finish().unwrap().id;
    s.store_greeting(&a, GreetingKind::Busy, &[5i16; 800], 8000)
        .unwrap();
    s.save_subscriptions(
        &a,
        &[Sub {
            call_id: "c1".into(),
        }],
    )
    .unwrap();
    s.reserve_login_attempt(&a, t0(), 5, 60).unwrap();
    s.reserve_unknown_login_attempt(&mb("9999@test.example"), t0(), 5, 60)
        .unwrap();
    let mut cut = s.begin_recording(&b, info(), t0()).unwrap();
    cut.append(&[100i16; 16000]).unwrap();
    cut.simulate_kill();
    (d, s, a, b, msg)
}

/// Tries every kind of write; each must be refused.
fn every_write_is_refused(s: &FsStore, a: &MailboxId, b: &MailboxId, msg: &str) {
    let c = mb("1003@test.example");
    let new = mb("1@new.example");
    fenced(
        s.create_mailbox(&c, MailboxSettings::default(), None),
        "create mailbox",
    );
    fenced(
        s.update_settings(a, MailboxSettings::default()),
        "update settings",
    );
    fenced(s.set_pin(a, "4321"), "set pin");
    fenced(s.remove_mailbox(b), "remove mailbox");
    fenced(s.reserve_login_attempt(a, t0(), 5, 60), "login attempt");
    fenced(s.record_login_success(a), "login success");
    fenced(
        s.reserve_unknown_login_attempt(&mb("9999@test.example"), t0(), 5, 60),
        "unknown login attempt",
    );
    fenced(
        s.reserve_unknown_login_attempt(&mb("8888@test.example"), t0(), 5, 60),
        "unknown login attempt",
    );
    fenced(s.move_message(a, msg, Folder::Old), "move");
    fenced(s.set_heard(a, msg, true), "heard");
    fenced(s.delete_message(a, msg), "delete");
    fenced(s.copy_message(a, msg, b, "1001@test.example"), "copy");
    fenced(
        s.store_greeting(a, GreetingKind::Name, &[1i16; 800], 8000),
        "store greeting",
    );
    fenced(s.delete_greeting(a, GreetingKind::Busy), "delete greeting");
    fenced(
        s.save_subscriptions(
            a,
            &[Sub {
                call_id: "c2".into(),
            }],
        ),
        "save subscriptions",
    );
    fenced(s.save_subscriptions::<Sub>(a, &[]), "clear subscriptions");
    fenced(s.begin_recording(a, info(), t0()), "begin recording");
    fenced(
        s.begin_recording_creating(&new, MailboxSettings::default(), info(), t0()),
        "begin recording creating",
    );
    fenced(s.recover(), "recover");
    fenced(
        s.recover_with(&RecoverOptions::default()),
        "recover with options",
    );
    // Through the trait too.
    let t: &dyn MailboxStore = s;
    fenced(t.delete_message(a, msg), "trait delete");
}

#[test]
fn a_closed_fence_refuses_every_write_and_changes_nothing() {
    let (d, s, a, b, msg) = populated();
    let before = snapshot(d.path());
    s.set_fence(Arc::new(Fence::new(1, None)));
    every_write_is_refused(&s, &a, &b, &msg);
    assert_eq!(snapshot(d.path()), before, "nothing written");
    // Reads are never fenced.
    assert_eq!(s.counts(&a).unwrap().new, 1);
    assert!(s.message(&a, &msg).unwrap().is_some());
    assert!(s.verify_pin(&a, "1234").unwrap());
    assert_eq!(s.login_state(&a).unwrap().failures, 1);
    assert_eq!(s.subscriptions::<Sub>(&a).unwrap().len(), 1);
    assert!(s.greeting_path(&a, GreetingKind::Busy).unwrap().is_some());
    assert_eq!(s.list_mailboxes(None).unwrap().len(), 2);
    s.check_writable().unwrap();
    assert_eq!(
        fenced(s.set_heard(&a, &msg, true), "heard"),
        FenceError::NotActive
    );
}

#[test]
fn an_expired_fence_refuses_and_a_granted_one_writes() {
    let (d, s, a, b, msg) = populated();
    let before = snapshot(d.path());
    let fence = Arc::new(Fence::new(1, None));
    fence.grant(3, Instant::now() - Duration::from_millis(1));
    s.set_fence(fence.clone());
    every_write_is_refused(&s, &a, &b, &msg);
    assert_eq!(snapshot(d.path()), before, "nothing written");
    assert_eq!(
        fenced(s.delete_message(&a, &msg), "delete"),
        FenceError::Expired(3)
    );
    // Renewed: the writes pass again.
    fence.grant(3, Instant::now() + Duration::from_secs(60));
    s.set_heard(&a, &msg, true).unwrap();
    assert_eq!(
        s.recover().unwrap(),
        vec![(b.clone(), recovered_id(&s, &b))]
    );
    s.delete_message(&a, &msg).unwrap();
    s.remove_mailbox(&b).unwrap();
}

/// The id of the one message of `id`.
fn recovered_id(s: &FsStore, id: &MailboxId) -> String {
    let list = s.list_messages(id, Folder::Inbox).unwrap();
    assert_eq!(list.len(), 1);
    list[0].id.clone()
}

#[test]
fn epochs_land_in_metadata_login_and_subscriptions() {
    let d = tempfile::tempdir().unwrap();
    let s = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    let a = mb("1001@test.example");
    let b = mb("1002@test.example");
    s.set_fence(open_fence(5));
    s.create_mailbox(&a, MailboxSettings::default(), None)
        .unwrap();
    let dir = s.root().join("domains/test.example/1001");
    assert_eq!(json(&dir.join("mailbox.json"))["epoch"], 5);

    // A recording: the caller's epoch (7) is replaced by the fence's.
    let mut w = s.begin_recording(&a, info(), t0()).unwrap();
    w.append(&[100i16; 8000]).unwrap();
    let sidecar = dir.join(format!("tmp/{}.json", w.id()));
    assert_eq!(json(&sidecar)["info"]["epoch"], 5);
    let m = w.finish().unwrap();
    assert_eq!(m.epoch, 5);
    assert_eq!(json(&dir.join(format!("INBOX/{}.json", m.id)))["epoch"], 5);

    // A first message that creates its mailbox.
    let mut w = s
        .begin_recording_creating(&b, MailboxSettings::default(), info(), t0())
        .unwrap();
    w.append(&[100i16; 800]).unwrap();
    assert_eq!(w.finish().unwrap().epoch, 5);

    // Later writes carry the epoch of their writer.
    s.set_fence(open_fence(6));
    s.set_heard(&a, &m.id, true).unwrap();
    assert_eq!(s.message(&a, &m.id).unwrap().unwrap().epoch, 6);
    s.set_fence(open_fence(8));
    s.move_message(&a, &m.id, Folder::Old).unwrap();
    assert_eq!(json(&dir.join(format!("Old/{}.json", m.id)))["epoch"], 8);
    let copy = s.copy_message(&a, &m.id, &b, "1001@test.example").unwrap();
    assert_eq!(s.message(&b, &copy).unwrap().unwrap().epoch, 8);
    s.update_settings(&a, MailboxSettings::default()).unwrap();
    assert_eq!(json(&dir.join("mailbox.json"))["epoch"], 8);
    s.set_pin(&a, "1234").unwrap();
    assert_eq!(json(&dir.join("mailbox.json"))["epoch"], 8);

    s.reserve_login_attempt(&a, t0(), 5, 60).unwrap();
    let login = json(&dir.join("login.json"));
    assert_eq!(
        (login["epoch"].as_u64(), login["failures"].as_u64()),
        (Some(8), Some(1))
    );
    let unknown = mb("9999@test.example");
    s.reserve_unknown_login_attempt(&unknown, t0(), 5, 60)
        .unwrap();
    let buckets: Vec<_> = fs::read_dir(s.root().join("login-unknown"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(buckets.len(), 1);
    assert_eq!(
        json(&buckets[0])["numbers"]["9999@test.example"]["epoch"],
        8
    );
    assert_eq!(s.unknown_login_state(&unknown).unwrap().failures, 1);

    let subs = [
        Sub {
            call_id: "c1".into(),
        },
        Sub {
            call_id: "c2".into(),
        },
    ];
    s.save_subscriptions(&a, &subs).unwrap();
    let saved = json(&dir.join("subscriptions.json"));
    assert_eq!(saved[0]["epoch"], 8);
    assert_eq!(saved[1]["epoch"], 8);
    assert_eq!(saved[1]["call_id"], "c2");
    assert_eq!(s.subscriptions::<Sub>(&a).unwrap(), subs.to_vec());
    assert_eq!(
        s.subscriptions_with_epochs::<Sub>(&a).unwrap()[0],
        (8, subs[0].clone())
    );
}

#[test]
fn an_unfenced_store_keeps_the_callers_epoch() {
    let d = tempfile::tempdir().unwrap();
    let s = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    let a = mb("1001@test.example");
    s.create_mailbox(&a, MailboxSettings::default(), None)
        .unwrap();
    let mut w = s.begin_recording(&a, info(), t0()).unwrap();
    w.append(&[100i16; 800]).unwrap();
    assert_eq!(w.finish().unwrap().epoch, 7);
    s.reserve_login_attempt(&a, t0(), 5, 60).unwrap();
    let login = json(&s.root().join("domains/test.example/1001/login.json"));
    assert_eq!(login["epoch"], 0);
}

#[test]
fn a_recording_whose_lease_runs_out_stops_writing_and_is_recovered_by_the_next_active() {
    let d = tempfile::tempdir().unwrap();
    let s = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    let a = mb("1001@test.example");
    s.create_mailbox(&a, MailboxSettings::default(), None)
        .unwrap();
    let fence = open_fence(4);
    s.set_fence(fence.clone());
    let tmp = s.root().join("domains/test.example/1001/tmp");

    let mut w = s.begin_recording(&a, info(), t0()).unwrap();
    // 1.5 s: the first second reaches the file (header kept current), the
    // rest is in the write buffer.
    w.append(&[100i16; 8000]).unwrap();
    w.append(&[100i16; 4000]).unwrap();
    w.set_urgent(true).unwrap();
    let wav = tmp.join(format!("{}.wav", w.id()));
    let before = snapshot(&tmp);
    assert_eq!(fs::metadata(&wav).unwrap().len(), 44 + 16000);

    // The lease runs out (the process was paused, the store unreachable).
    fence.grant(4, Instant::now() - Duration::from_millis(1));
    assert_eq!(
        fenced(w.append(&[100i16; 8000]), "append"),
        FenceError::Expired(4)
    );
    fenced(w.set_urgent(false), "urgent");
    // Renewed meanwhile or not: a refused recording stays refused.
    fence.grant(4, Instant::now() + Duration::from_secs(60));
    fenced(w.append(&[100i16; 160]), "append after refusal");
    fenced(w.finish(), "finish");
    assert_eq!(snapshot(&tmp), before, "the tail was dropped, not written");
    assert!(s.list_messages(&a, Folder::Inbox).unwrap().is_empty());

    // A writer dropped without finish after its lease ran out writes
    // nothing either (its buffer is not flushed).
    let mut w2 = s.begin_recording(&a, info(), t0()).unwrap();
    w2.append(&[100i16; 4000]).unwrap();
    let wav2 = tmp.join(format!("{}.wav", w2.id()));
    fence.revoke();
    drop(w2);
    assert_eq!(fs::metadata(&wav2).unwrap().len(), 0, "all was buffered");
    fenced(s.recover(), "a passive instance does not recover");

    // The next active instance (another process, epoch 5) recovers both.
    let next = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    next.set_fence(open_fence(5));
    let recovered = next.recover().unwrap();
    assert_eq!(recovered.len(), 1, "the one with audio; the empty one goes");
    let m = next.list_messages(&a, Folder::Inbox).unwrap();
    assert_eq!(m.len(), 1);
    assert!(m[0].recovered && m[0].urgent);
    assert_eq!(m[0].epoch, 5, "the recoverer's epoch");
    assert_eq!(m[0].duration_ms, 1000);
    assert!(!wav.exists() && !wav2.exists());
}

#[test]
fn discard_is_fenced_and_leaves_the_files_for_recovery() {
    let d = tempfile::tempdir().unwrap();
    let s = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    let a = mb("1001@test.example");
    s.create_mailbox(&a, MailboxSettings::default(), None)
        .unwrap();
    let fence = open_fence(2);
    s.set_fence(fence.clone());
    let mut w = s.begin_recording(&a, info(), t0()).unwrap();
    w.append(&[100i16; 8000]).unwrap();
    let tmp = s.root().join("domains/test.example/1001/tmp");
    let before = snapshot(&tmp);
    fence.revoke();
    fenced(w.discard(), "discard");
    assert_eq!(snapshot(&tmp), before);
}

#[test]
fn a_recording_begun_under_another_epoch_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    let a = mb("1001@test.example");
    s.create_mailbox(&a, MailboxSettings::default(), None)
        .unwrap();
    let fence = open_fence(2);
    s.set_fence(fence.clone());
    let mut w = s.begin_recording(&a, info(), t0()).unwrap();
    w.append(&[100i16; 800]).unwrap();
    // The instance lost the role and won it again: its recording of the
    // old epoch may have been recovered by someone else meanwhile.
    fence.grant(3, Instant::now() + Duration::from_secs(60));
    assert_eq!(
        fenced(w.append(&[100i16; 800]), "append"),
        FenceError::Superseded { ours: 2 }
    );
    fenced(w.finish(), "finish");
}

fn claimant(name: &str) -> Record {
    Record {
        name: name.into(),
        group: 1,
        order: 1,
        sip: "127.0.0.1:5060".parse().unwrap(),
        http: "127.0.0.1:8080".parse().unwrap(),
        state: RecordState::Candidate,
        epoch: 0,
        incarnation: 1,
        seq: 1,
        renewed_unix_ms: 0,
    }
}

fn claim(b: &SiteShareBackend, seen: u64, name: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(b.claim(1, seen, &claimant(name))).unwrap() {
        Claim::Won { epoch } => epoch,
        Claim::Lost => panic!("claim after {seen} lost"),
    }
}

#[test]
fn a_commit_after_the_group_moved_on_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let backend = Arc::new(SiteShareBackend::new(d.path()));
    let s = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    let a = mb("1001@test.example");
    let b = mb("1002@test.example");
    s.create_mailbox(&a, MailboxSettings::default(), None)
        .unwrap();
    s.create_mailbox(&b, MailboxSettings::default(), None)
        .unwrap();

    let epoch = claim(&backend, 0, "vmail1");
    let fence = Arc::new(Fence::new(1, Some(backend.clone() as Arc<dyn Backend>)));
    fence.grant(epoch, Instant::now() + Duration::from_secs(60));
    s.set_fence(fence.clone());
    let mut w = s.begin_recording(&a, info(), t0()).unwrap();
    w.append(&[100i16; 8000]).unwrap();
    let kept = s.begin_recording(&a, info(), t0()).unwrap();
    let first = {
        let mut w = s.begin_recording(&a, info(), t0()).unwrap();
        w.append(&[100i16; 800]).unwrap();
        w.finish().unwrap()
    };
    assert_eq!(first.epoch, epoch);

    // Another instance takes the group over; this one's lease has not run
    // out by its own clock, but the store knows better.
    let newer = claim(&backend, epoch, "vmail2");
    let tmp = s.root().join("domains/test.example/1001/tmp");
    let before = snapshot(&tmp);
    assert_eq!(
        fenced(w.finish(), "commit"),
        FenceError::Superseded { ours: epoch }
    );
    assert_eq!(
        fence.check(),
        Err(FenceError::NotActive),
        "confirm closed the fence"
    );
    drop(kept);
    assert_eq!(snapshot(&tmp), before, "the old epoch wrote nothing");
    fenced(s.copy_message(&a, &first.id, &b, "x"), "copy");
    assert_eq!(s.list_messages(&a, Folder::Inbox).unwrap(), vec![first]);

    // The new active recovers the cut recording with its epoch.
    let next = FsStore::open_with_pin_cost(d.path(), PinCost::TestOnly).unwrap();
    let f2 = Arc::new(Fence::new(1, Some(backend as Arc<dyn Backend>)));
    f2.grant(newer, Instant::now() + Duration::from_secs(60));
    next.set_fence(f2);
    assert_eq!(next.recover().unwrap().len(), 1);
    let list = next.list_messages(&a, Folder::Inbox).unwrap();
    assert_eq!(list.len(), 2);
    let recovered: Vec<_> = list.iter().filter(|m| m.recovered).collect();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].epoch, newer);
    assert_eq!(recovered[0].duration_ms, 1000);
}
