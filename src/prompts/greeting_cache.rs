//! Decoded personal greetings, kept in memory between calls.
//!
//! A deposit call plays the mailbox's own greeting; decoding the WAV and
//! making its 16 kHz copy for every call cost about 3 % of the CPU of a
//! phone-like call (docs/performance.md); the deposit calls load their
//! greetings through it (`runtime::plan`). The cache holds the decoded
//! [`Prompt`] (both rates) keyed by the file's path and checked against its
//! identity at every use: inode, size and modification time. A greeting
//! re-recorded or uploaded is a new file (written and renamed into place),
//! so it has another inode, size or time and is decoded again; the stale
//! entry is replaced. A file that is gone is forgotten.
//!
//! The cache is bounded in bytes of samples (`ext.greeting_cache_bytes`);
//! the least recently used greetings leave first. A greeting larger than
//! the whole bound is played but not kept. `0` turns the cache off.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::warn;

use super::Prompt;

/// What tells one version of a greeting file from another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: Option<SystemTime>,
}

impl Identity {
    fn of(meta: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

struct Entry {
    identity: Identity,
    prompt: Prompt,
    bytes: usize,
    /// Its place in the use order.
    used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<PathBuf, Entry>,
    /// Use order: the smallest number is the least recently used.
    order: BTreeMap<u64, PathBuf>,
    clock: u64,
    bytes: usize,
}

/// Counters of the cache (for tests and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Greetings served from memory.
    pub hits: u64,
    /// Greetings decoded from their file.
    pub decoded: u64,
    /// Greetings dropped to stay within the bound.
    pub evicted: u64,
}

/// The cache; shared by every call of the instance.
pub struct GreetingCache {
    limit: usize,
    inner: Mutex<Inner>,
    stats: Mutex<CacheStats>,
}

/// Bytes a prompt holds in memory (both rates).
fn prompt_bytes(p: &Prompt) -> usize {
    (p.samples_at(crate::prompts::SAMPLE_RATE).len()
        + p.samples_at(crate::prompts::WIDE_RATE).len())
        * std::mem::size_of::<i16>()
}

impl GreetingCache {
    /// A cache that holds at most `limit` bytes of samples (`0`: none).
    pub fn new(limit: u64) -> GreetingCache {
        GreetingCache {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            inner: Mutex::new(Inner::default()),
            stats: Mutex::new(CacheStats::default()),
        }
    }

    /// The greeting at `path`, decoded; `None` when the file is missing,
    /// cannot be read or holds no audio (logged). Blocking file I/O.
    pub fn load(&self, path: &Path) -> Option<Prompt> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(path = %path.display(), "cannot read greeting: {e}");
                }
                self.forget(path);
                return None;
            }
        };
        // The identity of the open file: what is read below is this very
        // version, whatever replaces the path meanwhile.
        let identity = match file.metadata() {
            Ok(m) => Identity::of(&m),
            Err(e) => {
                warn!(path = %path.display(), "cannot read greeting: {e}");
                return None;
            }
        };
        if let Some(p) = self.lookup(path, identity) {
            self.count(|s| s.hits += 1);
            return Some(p);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(identity.size).unwrap_or(0));
        if let Err(e) = (&file).read_to_end(&mut bytes) {
            warn!(path = %path.display(), "cannot read greeting: {e}");
            return None;
        }
        drop(file);
        let prompt = match super::decode_prompt(bytes, Some("wav")) {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => return None,
            Err(e) => {
                warn!(path = %path.display(), "cannot decode greeting: {e}");
                return None;
            }
        };
        self.count(|s| s.decoded += 1);
        self.insert(path, identity, prompt.clone());
        Some(prompt)
    }

    /// What the cache did so far.
    pub fn stats(&self) -> CacheStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of samples held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The cached prompt of `path` if it is of this `identity`; a stale
    /// entry is dropped.
    fn lookup(&self, path: &Path, identity: Identity) -> Option<Prompt> {
        let mut g = self.lock();
        let inner = &mut *g;
        let entry = inner.entries.get_mut(path)?;
        if entry.identity != identity {
            let old = entry.used;
            inner.order.remove(&old);
            if let Some(e) = inner.entries.remove(path) {
                inner.bytes -= e.bytes;
            }
            return None;
        }
        inner.clock += 1;
        inner.order.remove(&entry.used);
        entry.used = inner.clock;
        inner.order.insert(entry.used, path.to_path_buf());
        Some(entry.prompt.clone())
    }

    fn forget(&self, path: &Path) {
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some(e) = inner.entries.remove(path) {
            inner.order.remove(&e.used);
            inner.bytes -= e.bytes;
        }
    }

    fn insert(&self, path: &Path, identity: Identity, prompt: Prompt) {
        let bytes = prompt_bytes(&prompt);
        if bytes > self.limit {
            return;
        }
        let mut evicted = 0;
        {
            let mut g = self.lock();
            let inner = &mut *g;
            if let Some(e) = inner.entries.remove(path) {
                inner.order.remove(&e.used);
                inner.bytes -= e.bytes;
            }
            while inner.bytes + bytes > self.limit {
                let Some((_, oldest)) = inner.order.pop_first() else {
                    break;
                };
                if let Some(e) = inner.entries.remove(&oldest) {
                    inner.bytes -= e.bytes;
                    evicted += 1;
                }
            }
            inner.clock += 1;
            let used = inner.clock;
            inner.order.insert(used, path.to_path_buf());
            inner.entries.insert(
                path.to_path_buf(),
                Entry {
                    identity,
                    prompt,
                    bytes,
                    used,
                },
            );
            inner.bytes += bytes;
        }
        if evicted > 0 {
            self.count(|s| s.evicted += evicted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mono 16-bit WAV of `samples` at `rate`.
    fn wav(samples: &[i16], rate: u32) -> Vec<u8> {
        let data = (samples.len() * 2) as u32;
        let mut out = Vec::with_capacity(44 + samples.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data.to_le_bytes());
        for s in samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// `n` samples of a ramp starting at `start` (never all zero).
    fn ramp(n: usize, start: i16) -> Vec<i16> {
        (0..n)
            .map(|i| start.wrapping_add((i % 1000) as i16))
            .collect()
    }

    /// Writes `content` as a new file at `path` (a new inode, as the store
    /// writes greetings: a temporary file renamed into place).
    fn replace(path: &Path, content: &[u8]) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, content).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    #[test]
    fn a_greeting_is_decoded_once_and_then_served_from_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("unavail.wav");
        let pcm = ramp(8000, 100);
        replace(&path, &wav(&pcm, 8000));
        let cache = GreetingCache::new(1 << 20);
        let first = cache.load(&path).expect("decoded");
        assert_eq!(first.samples(), &pcm[..]);
        // Both rates are there: 16 kHz is twice as long.
        assert_eq!(first.samples_at(16000).len(), 2 * pcm.len());
        for _ in 0..5 {
            let again = cache.load(&path).expect("cached");
            assert!(again == first);
        }
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 5,
                decoded: 1,
                evicted: 0
            }
        );
        assert_eq!(cache.bytes(), 3 * pcm.len() * 2);
    }

    #[test]
    fn a_new_version_of_the_file_is_decoded_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("unavail.wav");
        let cache = GreetingCache::new(1 << 20);
        let old = ramp(4000, 1);
        replace(&path, &wav(&old, 8000));
        assert_eq!(cache.load(&path).expect("old").samples(), &old[..]);

        // Re-recorded: same length, another file.
        let new = ramp(4000, 2000);
        replace(&path, &wav(&new, 8000));
        assert_eq!(cache.load(&path).expect("new").samples(), &new[..]);
        assert_eq!(cache.stats().decoded, 2);

        // Rewritten in place with another length: seen by the size.
        let longer = ramp(6000, 3000);
        std::fs::write(&path, wav(&longer, 8000)).expect("write");
        assert_eq!(cache.load(&path).expect("longer").samples(), &longer[..]);
        assert_eq!(cache.stats().decoded, 3);
        // The stale entries are gone, not counted.
        assert_eq!(cache.bytes(), 3 * longer.len() * 2);

        // Deleted: nothing plays and the entry is dropped.
        std::fs::remove_file(&path).expect("remove");
        assert!(cache.load(&path).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn an_in_place_rewrite_of_the_same_size_is_seen_by_its_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("temp.wav");
        let cache = GreetingCache::new(1 << 20);
        let a = ramp(4000, 1);
        std::fs::write(&path, wav(&a, 8000)).expect("write");
        let f = File::options().write(true).open(&path).expect("open");
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .expect("mtime");
        assert_eq!(cache.load(&path).expect("a").samples(), &a[..]);
        let b = ramp(4000, 500);
        std::fs::write(&path, wav(&b, 8000)).expect("write");
        f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000))
            .expect("mtime");
        assert_eq!(cache.load(&path).expect("b").samples(), &b[..]);
    }

    #[test]
    fn the_least_recently_used_greetings_leave_to_stay_within_the_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Each greeting: 1000 samples at 8 kHz + 2000 at 16 kHz = 6000 bytes.
        let each = 6000;
        let cache = GreetingCache::new(3 * each as u64);
        let paths: Vec<PathBuf> = (0..4)
            .map(|i| {
                let p = dir.path().join(format!("g{i}.wav"));
                replace(&p, &wav(&ramp(1000, i * 100 + 1), 8000));
                p
            })
            .collect();
        for p in &paths[..3] {
            cache.load(p).expect("decoded");
        }
        assert_eq!(cache.bytes(), 3 * each);
        // g0 is used again: g1 is now the oldest.
        cache.load(&paths[0]).expect("hit");
        cache.load(&paths[3]).expect("decoded");
        assert_eq!(cache.bytes(), 3 * each);
        assert_eq!(cache.stats().evicted, 1);
        let before = cache.stats();
        cache.load(&paths[0]).expect("still cached");
        cache.load(&paths[2]).expect("still cached");
        cache.load(&paths[3]).expect("still cached");
        assert_eq!(cache.stats().hits, before.hits + 3);
        assert_eq!(cache.stats().decoded, before.decoded);
        // g1 was evicted: decoded again.
        cache.load(&paths[1]).expect("decoded again");
        assert_eq!(cache.stats().decoded, before.decoded + 1);
        assert!(cache.bytes() <= 3 * each);
    }

    #[test]
    fn a_greeting_larger_than_the_bound_plays_but_is_not_kept_and_zero_keeps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("long.wav");
        replace(&path, &wav(&ramp(8000, 7), 8000));
        let small = GreetingCache::new(1000);
        assert!(small.load(&path).is_some());
        assert_eq!(small.bytes(), 0);
        let off = GreetingCache::new(0);
        assert!(off.load(&path).is_some());
        assert!(off.load(&path).is_some());
        assert_eq!(off.stats().decoded, 2);
        assert_eq!(off.bytes(), 0);
    }

    #[test]
    fn garbage_is_no_greeting_and_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.wav");
        replace(&path, b"not a wav file at all");
        let cache = GreetingCache::new(1 << 20);
        assert!(cache.load(&path).is_none());
        assert_eq!(cache.bytes(), 0);
    }
}
