//! The SiteShare backend: leases and epochs as files on the shared store.
//!
//! Layout under `<siteshare>/vmail/cluster/group-<g>/`:
//! - `instance-<name>.json`: the instance's [`Record`], replaced atomically
//!   (written to a hidden temporary file in the same directory, fsync,
//!   rename over the old one, fsync of the directory); a reader sees the
//!   old or the new record, never a mix. A clean stop removes it; a record
//!   left behind by a `kill -9` stays and observers judge it dead when its
//!   `seq` stops moving.
//! - `epoch-<n>`: created exclusively (`O_CREAT|O_EXCL`) by the instance
//!   that claims epoch `n`, holding the claimant's record as JSON (for
//!   people reading the directory). The group's epoch is the highest `n`
//!   present. The winner of a claim removes all but the newest
//!   [`KEEP_EPOCHS`] epoch files, so the directory stays small.
//!
//! # What the filesystem must guarantee
//!
//! Every instance of a group mounts the same SiteShare, and that
//! filesystem must offer, between all its clients:
//! - **atomic rename within a directory** (a reader opens the old file or
//!   the new one);
//! - **exclusive create**: of two clients creating the same name with
//!   `O_CREAT|O_EXCL`, exactly one succeeds. Local filesystems, NFSv3 and
//!   later (the server performs the exclusive create), CephFS and GlusterFS
//!   do; NFSv2 does not;
//! - **close-to-open consistency**: a file closed by one client is read
//!   whole by a client that opens it afterwards (NFS does this);
//! - **fresh names**: the client's attribute and lookup caches must not hide
//!   a new or changed file for longer than a small fraction of `lease_ms`.
//!   On NFS mount with `lookupcache=positive` (a cached "no such file" would
//!   hide a new `epoch-<n>` from [`SiteShareBackend::still_current`]) and
//!   `actimeo` well under `lease_ms`/6 (for example `actimeo=0` or `1` with
//!   the default `lease_ms` of 3000), or `noac`.
//!
//! Epoch files must never be removed by hand while the group runs: the
//! group's epoch would go back and a claim could hand out an epoch again.
//!
//! All filesystem work runs on tokio's blocking pool (an NFS server that
//! stops answering blocks the calling thread); the lease shell puts its own
//! timeout around each operation.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::collections::HashSet;

use super::{Backend, BackendError, BoxFuture, Claim, GroupView, Record};
use crate::store::fsutil;

/// Epoch files the winner of a claim keeps (the newest ones).
pub const KEEP_EPOCHS: usize = 8;

/// Longest instance name the backend accepts (the file name must stay well
/// under the usual 255-byte limit, with the temporary-file decoration).
const MAX_NAME_LEN: usize = 128;

const INSTANCE_PREFIX: &str = "instance-";
const INSTANCE_SUFFIX: &str = ".json";
const EPOCH_PREFIX: &str = "epoch-";

/// Leases on the SiteShare filesystem.
#[derive(Debug, Clone)]
pub struct SiteShareBackend {
    root: PathBuf,
    /// Groups and names whose leftover temporary files this backend has
    /// removed already (once per process: they come from a crash).
    swept: Arc<Mutex<HashSet<(u32, String)>>>,
}

impl SiteShareBackend {
    /// The backend for the store at `siteshare` (the `ext.siteshare`
    /// directory; files go under `vmail/cluster/`).
    pub fn new(siteshare: &Path) -> SiteShareBackend {
        SiteShareBackend {
            root: siteshare.join("vmail").join("cluster"),
            swept: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// The folder of `group`.
    pub fn group_dir(&self, group: u32) -> PathBuf {
        self.root.join(format!("group-{group}"))
    }

    /// The file of an instance's record (the name must be valid).
    fn instance_file(&self, group: u32, name: &str) -> PathBuf {
        self.group_dir(group)
            .join(format!("{INSTANCE_PREFIX}{name}{INSTANCE_SUFFIX}"))
    }

    /// The file of epoch `n`.
    fn epoch_file(&self, group: u32, n: u64) -> PathBuf {
        self.group_dir(group).join(format!("{EPOCH_PREFIX}{n}"))
    }

    // ----- blocking bodies (run on the blocking pool) -----

    fn publish_blocking(&self, record: &Record) -> Result<(), BackendError> {
        check_name(&record.name)?;
        let dir = self.group_dir(record.group);
        fsutil::create_dir_all(&dir).map_err(unavailable)?;
        self.sweep_leftovers(record.group, &record.name, &dir);
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| BackendError::Corrupt(format!("cannot serialise the record: {e}")))?;
        fsutil::write_atomic(&self.instance_file(record.group, &record.name), &bytes)
            .map_err(unavailable)
    }

    /// Removes the temporary files of `name` a crash left in `dir` (only
    /// this instance writes them), once per process.
    fn sweep_leftovers(&self, group: u32, name: &str, dir: &Path) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            if !swept.insert((group, name.to_owned())) {
                return;
            }
        }
        let prefix = format!(".{INSTANCE_PREFIX}{name}{INSTANCE_SUFFIX}.");
        let Ok(names) = fsutil::dir_names(dir) else {
            return;
        };
        for n in names
            .iter()
            .filter(|n| n.starts_with(&prefix) && n.ends_with(fsutil::TMP_SUFFIX))
        {
            let p = dir.join(n);
            if let Err(e) = fs::remove_file(&p) {
                tracing::debug!(path = %p.display(), error = %e, "cannot remove a leftover lease file");
            }
        }
    }

    fn observe_blocking(&self, group: u32) -> Result<GroupView, BackendError> {
        let dir = self.group_dir(group);
        // A missing directory is a group nobody has joined yet.
        let names = fsutil::dir_names(&dir).map_err(unavailable)?;
        let mut view = GroupView::default();
        for name in &names {
            if let Some(n) = parse_epoch_name(name) {
                view.epoch = view.epoch.max(n);
                continue;
            }
            let Some(instance) = parse_instance_name(name) else {
                if !name.starts_with('.') {
                    tracing::debug!(group, file = %name, "ignoring a file in the cluster directory");
                }
                continue;
            };
            let path = dir.join(name);
            match fsutil::read_json::<Record>(&path) {
                Ok(Some(r)) if r.name == instance && r.group == group => view.records.push(r),
                Ok(Some(r)) => {
                    tracing::warn!(path = %path.display(), name = %r.name, group = r.group, "skipping a lease record filed under another name or group");
                }
                // Removed between the listing and the read: a clean stop.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping an unreadable lease record");
                }
            }
        }
        Ok(view)
    }

    /// The epochs present in the group's directory, sorted.
    fn epochs(&self, group: u32) -> Result<Vec<u64>, BackendError> {
        let mut out: Vec<u64> = fsutil::dir_names(&self.group_dir(group))
            .map_err(unavailable)?
            .iter()
            .filter_map(|n| parse_epoch_name(n))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn claim_blocking(
        &self,
        group: u32,
        seen: u64,
        claimant: &Record,
    ) -> Result<Claim, BackendError> {
        check_name(&claimant.name)?;
        let want = seen
            .checked_add(1)
            .ok_or_else(|| BackendError::Corrupt(format!("epoch {seen} cannot grow")))?;
        let dir = self.group_dir(group);
        fsutil::create_dir_all(&dir).map_err(unavailable)?;
        // Someone moved on already: the claim is stale (and epoch `want`
        // may have been pruned, so its absence proves nothing).
        let before = self.epochs(group)?;
        let newest = before.last().copied().unwrap_or(0);
        if newest > seen {
            return Ok(Claim::Lost);
        }
        if newest < seen {
            tracing::warn!(
                group,
                seen,
                newest,
                "the group's epoch files went back (removed by hand?)"
            );
        }
        let path = self.epoch_file(group, want);
        let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Claim::Lost),
            Err(e) => return Err(io_unavailable("create", &path, &e)),
        };
        // The exclusive create is the claim; what follows only describes it.
        let described = serde_json::to_vec_pretty(claimant)
            .map_err(io::Error::other)
            .and_then(|bytes| file.write_all(&bytes))
            .and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = described {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the claimant into the epoch file");
        }
        if let Err(e) = fsutil::sync_dir(&dir) {
            tracing::warn!(error = %e, "cannot sync the cluster directory");
        }
        // A claimant that listed the directory long before it created the
        // file could have raced past a history that was pruned meanwhile.
        let after = self.epochs(group)?;
        if after.last().copied().unwrap_or(0) > want {
            let _ = fs::remove_file(&path);
            return Ok(Claim::Lost);
        }
        self.prune(group, &after);
        Ok(Claim::Won { epoch: want })
    }

    /// Removes all but the newest [`KEEP_EPOCHS`] epoch files, oldest
    /// first (so a missing epoch always means its predecessors are gone
    /// too; see [`SiteShareBackend::still_current`]).
    fn prune(&self, group: u32, epochs: &[u64]) {
        let old = epochs.len().saturating_sub(KEEP_EPOCHS);
        for n in epochs.iter().take(old) {
            let p = self.epoch_file(group, *n);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "cannot remove an old epoch file");
                    return;
                }
            }
        }
    }

    /// A clean stop writes the record it is given (state `Stopped`), which
    /// observers take as dead at once; a removed file would count as dead
    /// only after a whole lease of absence.
    fn withdraw_blocking(&self, record: &Record) -> Result<(), BackendError> {
        self.publish_blocking(record)
    }

    /// Runs `f` on a clone of the backend on the blocking pool.
    fn blocking<T, F>(&self, f: F) -> BoxFuture<'static, Result<T, BackendError>>
    where
        T: Send + 'static,
        F: FnOnce(&SiteShareBackend) -> Result<T, BackendError> + Send + 'static,
    {
        let me = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&me))
                .await
                .unwrap_or_else(|e| {
                    Err(BackendError::Unavailable(format!(
                        "the filesystem task failed: {e}"
                    )))
                })
        })
    }
}

impl Backend for SiteShareBackend {
    fn publish<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), BackendError>> {
        let record = record.clone();
        self.blocking(move |b| b.publish_blocking(&record))
    }

    fn observe(&self, group: u32) -> BoxFuture<'_, Result<GroupView, BackendError>> {
        self.blocking(move |b| b.observe_blocking(group))
    }

    fn claim<'a>(
        &'a self,
        group: u32,
        seen: u64,
        claimant: &'a Record,
    ) -> BoxFuture<'a, Result<Claim, BackendError>> {
        let claimant = claimant.clone();
        self.blocking(move |b| b.claim_blocking(group, seen, &claimant))
    }

    fn withdraw<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), BackendError>> {
        let record = record.clone();
        self.blocking(move |b| b.withdraw_blocking(&record))
    }

    /// One `stat` of `epoch-<epoch+1>`, and of `epoch-<epoch>` when that
    /// is missing. Claims are sequential: a claim creates `seen + 1` only
    /// when no epoch above `seen` exists, so the first epoch anyone claims
    /// after `epoch` is `epoch + 1`, and while `epoch-<epoch+1>` is absent
    /// nothing higher exists either. Pruning removes files oldest first, so
    /// an `epoch + 1` that was pruned took `epoch` with it: the second stat
    /// tells the two cases apart. Blocking (it runs in the store's write
    /// path, which is on a blocking thread already).
    fn still_current(&self, group: u32, epoch: u64) -> Result<bool, BackendError> {
        if epoch == 0 {
            return Ok(false);
        }
        let Some(next) = epoch.checked_add(1) else {
            return Ok(false);
        };
        if present(&self.epoch_file(group, next))? {
            return Ok(false);
        }
        present(&self.epoch_file(group, epoch))
    }

    fn kind(&self) -> &'static str {
        "siteshare"
    }
}

/// Whether `path` exists (one `stat`).
fn present(path: &Path) -> Result<bool, BackendError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_unavailable("stat", path, &e)),
    }
}

/// An instance name usable in a file name: 1 to 128 ASCII letters and
/// digits (the configuration enforces it already; this is the last line).
fn check_name(name: &str) -> Result<(), BackendError> {
    if valid_name(name) {
        Ok(())
    } else {
        tracing::error!(name = %name.escape_debug(), "refusing a lease record: the instance name must be letters and digits");
        Err(BackendError::Unavailable(format!(
            "refused instance name {:?}: only ASCII letters and digits (1 to {MAX_NAME_LEN})",
            name.escape_debug().to_string()
        )))
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `epoch-<n>` with `n` a decimal number ≥ 1 without leading zeros.
fn parse_epoch_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(EPOCH_PREFIX)?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The instance name of `instance-<name>.json`.
fn parse_instance_name(name: &str) -> Option<&str> {
    let inner = name
        .strip_prefix(INSTANCE_PREFIX)?
        .strip_suffix(INSTANCE_SUFFIX)?;
    valid_name(inner).then_some(inner)
}

fn unavailable(e: crate::store::StoreError) -> BackendError {
    BackendError::Unavailable(e.to_string())
}

fn io_unavailable(op: &str, path: &Path, e: &io::Error) -> BackendError {
    BackendError::Unavailable(format!("cannot {op} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::RecordState;
    use std::sync::Barrier;

    fn record(name: &str, group: u32, seq: u64) -> Record {
        Record {
            name: name.into(),
            group,
            order: 1,
            sip: "127.0.0.1:5060".parse().unwrap(),
            http: "127.0.0.1:8080".parse().unwrap(),
            state: RecordState::Passive,
            epoch: 0,
            incarnation: 42,
            seq,
            renewed_unix_ms: 1_700_000_000_000 + seq,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        fsutil::dir_names(dir).unwrap()
    }

    #[test]
    fn publish_and_observe_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let b = SiteShareBackend::new(d.path());
        rt().block_on(async {
            let a = record("vmail1", 1, 1);
            let mut c = record("vmail2", 1, 5);
            c.state = RecordState::Active;
            b.publish(&a).await.unwrap();
            b.publish(&c).await.unwrap();
            b.publish(&record("other", 2, 1)).await.unwrap();
            let mut v = b.observe(1).await.unwrap();
            v.records.sort_by(|x, y| x.name.cmp(&y.name));
            assert_eq!(v.records, vec![a.clone(), c.clone()]);
            assert_eq!(v.epoch, 0);
            // A renewal replaces the record.
            let a2 = record("vmail1", 1, 2);
            b.publish(&a2).await.unwrap();
            let v = b.observe(1).await.unwrap();
            assert!(v.records.contains(&a2) && !v.records.contains(&a));
            assert_eq!(v.records.len(), 2);
        });
        let dir = b.group_dir(1);
        assert_eq!(
            names(&dir),
            vec!["instance-vmail1.json", "instance-vmail2.json"],
            "no temporary file left"
        );
        assert!(dir.starts_with(d.path().join("vmail/cluster")));
    }

    #[test]
    fn a_reader_never_sees_a_partial_record() {
        let d = tempfile::tempdir().unwrap();
        let b = SiteShareBackend::new(d.path());
        let mut first = record("vmail1", 1, 0);
        // Big enough that a plain rewrite would be seen half done.
        first.name = "a".repeat(MAX_NAME_LEN);
        b.publish_blocking(&first).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let b = b.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seq = 1;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && seq < 2000 {
                    let mut r = record("vmail1", 1, seq);
                    r.name = "a".repeat(MAX_NAME_LEN);
                    b.publish_blocking(&r).unwrap();
                    seq += 1;
                }
                seq
            })
        };
        let mut reads = 0;
        let mut last = 0;
        while !writer.is_finished() && reads < 5000 {
            let v = b.observe_blocking(1).unwrap();
            assert_eq!(v.records.len(), 1, "the record is always there, whole");
            assert!(v.records[0].seq >= last, "never goes back");
            last = v.records[0].seq;
            reads += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().unwrap();
        assert!(reads > 0 && written > 1);
    }

    /// `threads` claimants per backend on `backends` backends sharing one
    /// directory, all claiming after `seen`: the number of winners.
    fn race(backends: &[SiteShareBackend], threads: usize, seen: u64) -> Vec<u64> {
        let barrier = Arc::new(Barrier::new(backends.len() * threads));
        let mut handles = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            for t in 0..threads {
                let b = b.clone();
                let barrier = barrier.clone();
                handles.push(std::thread::spawn(move || {
                    let me = record(&format!("b{i}t{t}"), 1, 0);
                    barrier.wait();
                    b.claim_blocking(1, seen, &me).unwrap()
                }));
            }
        }
        handles
            .into_iter()
            .filter_map(|h| match h.join().unwrap() {
                Claim::Won { epoch } => Some(epoch),
                Claim::Lost => None,
            })
            .collect()
    }

    #[test]
    fn racing_claims_have_exactly_one_winner_per_epoch() {
        let d = tempfile::tempdir().unwrap();
        let backends = [
            SiteShareBackend::new(d.path()),
            SiteShareBackend::new(d.path()),
        ];
        for k in 0..12u64 {
            let won = race(&backends, 8, k);
            assert_eq!(won, vec![k + 1], "claims after {k}");
            let v = backends[1].observe_blocking(1).unwrap();
            assert_eq!(v.epoch, k + 1, "the epoch grows");
        }
        // Stale claims lose, whether the file is there or pruned away.
        let me = record("late", 1, 0);
        assert_eq!(backends[0].claim_blocking(1, 11, &me).unwrap(), Claim::Lost);
        assert_eq!(backends[0].claim_blocking(1, 1, &me).unwrap(), Claim::Lost);
        assert_eq!(backends[0].observe_blocking(1).unwrap().epoch, 12);
        // The newest epochs are kept, the older ones pruned.
        let epochs = backends[0].epochs(1).unwrap();
        assert_eq!(epochs, (5..=12).collect::<Vec<_>>());
        // The winner is described in its epoch file.
        let text = fs::read_to_string(backends[0].epoch_file(1, 12)).unwrap();
        let r: Record = serde_json::from_str(&text).unwrap();
        assert!(r.name.starts_with('b'));
    }

    #[test]
    fn claims_through_the_trait_and_still_current() {
        let d = tempfile::tempdir().unwrap();
        let b = SiteShareBackend::new(d.path());
        let me = record("vmail1", 3, 0);
        rt().block_on(async {
            assert_eq!(b.claim(3, 0, &me).await.unwrap(), Claim::Won { epoch: 1 });
            assert_eq!(b.claim(3, 0, &me).await.unwrap(), Claim::Lost);
            assert_eq!(b.observe(3).await.unwrap().epoch, 1);
        });
        assert!(b.still_current(3, 1).unwrap());
        assert!(!b.still_current(3, 0).unwrap(), "epoch 0 is nobody's");
        assert!(!b.still_current(3, 7).unwrap(), "never claimed");
        rt().block_on(async {
            assert_eq!(b.claim(3, 1, &me).await.unwrap(), Claim::Won { epoch: 2 });
        });
        assert!(!b.still_current(3, 1).unwrap(), "superseded");
        assert!(b.still_current(3, 2).unwrap());
        // Superseded long ago: its successor was pruned, and so was it.
        for seen in 2..20 {
            b.claim_blocking(3, seen, &me).unwrap();
        }
        assert!(!b.still_current(3, 2).unwrap());
        assert!(b.still_current(3, 20).unwrap());
        // Another group is another directory.
        assert!(!b.still_current(4, 1).unwrap());
    }

    #[test]
    fn withdraw_leaves_the_stopped_record() {
        let d = tempfile::tempdir().unwrap();
        let b = SiteShareBackend::new(d.path());
        rt().block_on(async {
            let a = record("vmail1", 1, 1);
            let c = record("vmail2", 1, 1);
            b.publish(&a).await.unwrap();
            b.publish(&c).await.unwrap();
            let stopped = Record {
                state: crate::cluster::RecordState::Stopped,
                ..a.clone()
            };
            b.withdraw(&stopped).await.unwrap();
            let mut seen = b.observe(1).await.unwrap().records;
            seen.sort_by(|x, y| x.name.cmp(&y.name));
            assert_eq!(seen, vec![stopped.clone(), c.clone()]);
            // Withdrawing twice is fine.
            b.withdraw(&stopped).await.unwrap();
        });
    }

    #[test]
    fn corrupt_and_junk_files_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let b = SiteShareBackend::new(d.path());
        let good = record("vmail1", 1, 1);
        b.publish_blocking(&good).unwrap();
        let dir = b.group_dir(1);
        fs::write(
            dir.join("instance-vmail2.json"),
            b"{\"name\": \"vmail2\", \"gro",
        )
        .unwrap();
        fs::write(dir.join("instance-vmail3.json"), b"").unwrap();
        // A record filed under another name, or another group's.
        let mut moved = record("vmail9", 1, 1);
        fs::write(
            dir.join("instance-vmail4.json"),
            serde_json::to_vec(&moved).unwrap(),
        )
        .unwrap();
        moved.name = "vmail5".into();
        moved.group = 2;
        fs::write(
            dir.join("instance-vmail5.json"),
            serde_json::to_vec(&moved).unwrap(),
        )
        .unwrap();
        fs::create_dir(dir.join("instance-vmail6.json")).unwrap();
        for junk in [
            "epoch-",
            "epoch-07",
            "epoch-x",
            "epoch-1x",
            "epoch--3",
            "epoch-0",
            "instance-.json",
            "instance-a.b.json",
            "notes.txt",
            "epoch-99999999999999999999999",
        ] {
            fs::write(dir.join(junk), b"junk").unwrap();
        }
        fs::write(dir.join("epoch-3"), b"").unwrap();
        let v = b.observe_blocking(1).unwrap();
        assert_eq!(v.records, vec![good]);
        assert_eq!(v.epoch, 3);
    }

    #[test]
    fn a_missing_directory_is_an_empty_group() {
        let d = tempfile::tempdir().unwrap();
        let b = SiteShareBackend::new(&d.path().join("not-yet"));
        let v = rt().block_on(b.observe(1)).unwrap();
        assert_eq!(v, GroupView::default());
        assert!(b.still_current(1, 1).is_ok_and(|c| !c));
    }

    #[test]
    fn an_unusable_directory_is_unavailable() {
        let d = tempfile::tempdir().unwrap();
        // A file where the cluster directory should be.
        fs::create_dir_all(d.path().join("vmail")).unwrap();
        fs::write(d.path().join("vmail/cluster"), b"in the way").unwrap();
        let b = SiteShareBackend::new(d.path());
        let err = b.publish_blocking(&record("vmail1", 1, 1)).unwrap_err();
        match err {
            BackendError::Unavailable(m) => assert!(m.contains("cluster"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            b.observe_blocking(1),
            Err(BackendError::Unavailable(_))
        ));
        assert!(matches!(
            b.claim_blocking(1, 0, &record("vmail1", 1, 1)),
            Err(BackendError::Unavailable(_))
        ));
    }

    #[test]
    fn hostile_names_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let b = SiteShareBackend::new(d.path());
        for bad in [
            "",
            "../x",
            "a/b",
            "a.b",
            "a-b",
            "ä",
            "a\0b",
            &"a".repeat(200),
        ] {
            let r = record(bad, 1, 1);
            assert!(b.publish_blocking(&r).is_err(), "{bad:?}");
            assert!(b.withdraw_blocking(&r).is_err(), "{bad:?}");
            assert!(b.claim_blocking(1, 0, &r).is_err(), "{bad:?}");
        }
        assert!(fsutil::dir_names(&d.path().join("vmail/cluster/group-1"))
            .unwrap()
            .is_empty());
        assert!(!d.path().join("vmail/x").exists());
    }

    #[test]
    fn leftovers_of_a_crash_are_swept_once() {
        let d = tempfile::tempdir().unwrap();
        let b = SiteShareBackend::new(d.path());
        let dir = b.group_dir(1);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".instance-vmail1.json.abc123.tmp"), b"{").unwrap();
        fs::write(dir.join(".instance-vmail2.json.abc123.tmp"), b"{").unwrap();
        b.publish_blocking(&record("vmail1", 1, 1)).unwrap();
        assert_eq!(
            names(&dir),
            vec![".instance-vmail2.json.abc123.tmp", "instance-vmail1.json"],
            "only its own leftovers"
        );
        assert_eq!(b.observe_blocking(1).unwrap().records.len(), 1);
    }
}
