//! Login lockouts of mailbox numbers that do not exist, kept in the
//! SiteShare like the real ones (`login.json`), so that a number locks
//! after the same count of tries, on every instance of the group and across
//! restarts, and the lock tells nobody which mailboxes exist.
//!
//! Layout: `<siteshare>/vmail/login-unknown/`: `key` (a random secret made
//! once), and per bucket `<nnn>.json` (a map mailbox → state) with its
//! `<nnn>.lock`. The bucket of a number is a keyed BLAKE2 hash of it, so
//! nobody outside can aim many numbers at one bucket. Disk use is bounded:
//! [`BUCKETS`] files of at most [`PER_BUCKET`] numbers; past that the
//! state that matters least is forgotten (a lock that ran out, then the
//! fewest failures, then the lock that ends first).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use blake2::{Blake2b512, Digest};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::fs::FsStore;
use super::fsutil::{create_dir_all, lock_file, read_json, tmp_sibling, write_json_atomic};
use super::names::MailboxId;
use super::types::{LoginAttempt, LoginRecord, LoginState};

const DIR: &str = "login-unknown";
const KEY_FILE: &str = "key";
/// Bucket files.
pub const BUCKETS: u64 = 1024;
/// Numbers a bucket keeps at most.
pub const PER_BUCKET: usize = 64;

/// `<nnn>.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Bucket {
    #[serde(default)]
    numbers: BTreeMap<String, LoginRecord>,
}

impl FsStore {
    /// [`reserve_login_attempt`](Self::reserve_login_attempt) for a mailbox
    /// that does not exist: the same decision, atomic in the same way (an
    /// exclusive `flock`, read, atomic write), on a bounded table in the
    /// SiteShare.
    pub fn reserve_unknown_login_attempt(
        &self,
        id: &MailboxId,
        now: SystemTime,
        lockout_failures: u32,
        lockout_seconds: u64,
    ) -> Result<LoginAttempt, StoreError> {
        // The table, its key and the lock files are made on first use:
        // every step writes.
        self.fence_check("record login attempt", Some(id))?;
        let dir = self.root().join(DIR);
        create_dir_all(&dir)?;
        let key = secret(&dir)?;
        let name = id.to_string();
        let n = bucket_of(&key, &name);
        let _lock = lock_file(&dir.join(format!("{n:03x}.lock")))?;
        let path = dir.join(format!("{n:03x}.json"));
        let mut bucket = match read_json::<Bucket>(&path) {
            Ok(b) => b.unwrap_or_default(),
            Err(StoreError::Corrupt { path, reason }) => {
                tracing::warn!(path = %path.display(), %reason, "corrupt login state reset");
                Bucket::default()
            }
            Err(e) => return Err(e),
        };
        let mut state: LoginState = bucket
            .numbers
            .get(&name)
            .copied()
            .map(Into::into)
            .unwrap_or_default();
        let attempt = state.reserve(now, lockout_failures, lockout_seconds);
        if attempt.is_granted() {
            // Again: the flock may have waited for another instance.
            let epoch = self.fence_check("record login attempt", Some(id))?;
            let mut record = LoginRecord::from(state);
            record.epoch = epoch.unwrap_or(0);
            bucket.numbers.insert(name.clone(), record);
            forget_least(&mut bucket.numbers, &name, now);
            write_json_atomic(&path, &bucket)?;
        }
        Ok(attempt)
    }

    /// The state of an unknown number (tests and tools).
    pub fn unknown_login_state(&self, id: &MailboxId) -> Result<LoginState, StoreError> {
        let dir = self.root().join(DIR);
        let key = match fs::read(dir.join(KEY_FILE)) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LoginState::default()),
            Err(e) => return Err(StoreError::io("read", dir.join(KEY_FILE), e)),
        };
        let name = id.to_string();
        let path = dir.join(format!("{:03x}.json", bucket_of(&key, &name)));
        Ok(read_json::<Bucket>(&path)?
            .and_then(|b| b.numbers.get(&name).copied())
            .map(Into::into)
            .unwrap_or_default())
    }
}

/// The table's secret: made once by whichever instance comes first (a
/// hard link publishes it whole, and never over another one).
fn secret(dir: &Path) -> Result<Vec<u8>, StoreError> {
    let path = dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(k) if !k.is_empty() => return Ok(k),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("read", &path, e)),
    }
    let tmp: PathBuf = tmp_sibling(&path);
    let fresh: [u8; 32] = rand::random();
    let written = fs::File::create(&tmp).and_then(|mut f| {
        std::io::Write::write_all(&mut f, &fresh)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io("write", &tmp, e));
    }
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(fresh.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            fs::read(&path).map_err(|e| StoreError::io("read", &path, e))
        }
        Err(e) => Err(StoreError::io("link", &path, e)),
    }
}

fn bucket_of(key: &[u8], name: &str) -> u64 {
    let digest = Blake2b512::new()
        .chain_update(key)
        .chain_update(name.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) % BUCKETS
}

/// Keeps at most [`PER_BUCKET`] numbers, never dropping `keep`.
fn forget_least(numbers: &mut BTreeMap<String, LoginRecord>, keep: &str, now: SystemTime) {
    let now_ms = u64::try_from(
        now.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX);
    while numbers.len() > PER_BUCKET {
        // Rank: unlocked (or run out) before locked; then fewest failures,
        // or the lock that ends first.
        let victim = numbers
            .iter()
            .filter(|(k, _)| k.as_str() != keep)
            .min_by_key(|(_, r)| match r.locked_until_ms {
                Some(until) if until > now_ms => (1, until),
                Some(_) => (0, 0),
                None => (0, u64::from(r.failures)),
            })
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                numbers.remove(&k);
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn rec(failures: u32, locked_until_ms: Option<u64>) -> LoginRecord {
        LoginRecord {
            failures,
            locked_until_ms,
            epoch: 0,
        }
    }

    #[test]
    fn a_full_bucket_forgets_what_matters_least() {
        let now_ms = 1_700_000_000_000;
        let mut m = BTreeMap::new();
        for i in 0..PER_BUCKET {
            m.insert(format!("{i}"), rec(3, Some(now_ms + 1000 + i as u64)));
        }
        m.insert("ran-out".into(), rec(0, Some(now_ms - 1)));
        m.insert("new".into(), rec(1, None));
        forget_least(&mut m, "new", t0());
        assert_eq!(m.len(), PER_BUCKET);
        assert!(!m.contains_key("ran-out") && !m.contains_key("0"));
        assert!(m.contains_key("new"));
        m.insert("few".into(), rec(1, None));
        m.insert("many".into(), rec(4, None));
        forget_least(&mut m, "many", t0());
        assert_eq!(m.len(), PER_BUCKET);
        assert!(m.contains_key("many"));
        assert!(!m.contains_key("few") && !m.contains_key("new"));
    }

    #[test]
    fn buckets_spread_and_depend_on_the_key() {
        let a: std::collections::HashSet<u64> = (0..2000)
            .map(|i| bucket_of(b"one", &format!("{i}@d")))
            .collect();
        assert!(a.len() > 800, "{} buckets used", a.len());
        let moved = (0..100)
            .filter(|i| {
                let n = format!("{i}@d");
                bucket_of(b"one", &n) != bucket_of(b"two", &n)
            })
            .count();
        assert!(moved > 90);
    }
}
