//! Small durable file operations: atomic writes, directory fsync, JSON.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StoreError;

/// Suffix of temporary files of atomic writes; `recover` removes leftovers.
pub const TMP_SUFFIX: &str = ".tmp";

/// Six random hex digits.
pub fn rand_hex6() -> String {
    format!("{:06x}", rand::random::<u32>() & 0x00ff_ffff)
}

/// A hidden temporary sibling of `path`: `.<name>.<hex>.tmp`.
pub fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}{TMP_SUFFIX}", rand_hex6()))
}

/// fsync a directory so that renames and creations in it are durable.
/// File systems that cannot fsync a directory are tolerated.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let f = File::open(dir).map_err(|e| StoreError::io("open directory", dir, e))?;
    match f.sync_all() {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(StoreError::io("sync directory", dir, e)),
    }
}

/// Opens (creating if needed) `path` and takes an exclusive `flock` on it,
/// waiting for other holders in this or any process (and on other hosts of
/// a file system that honours `flock` between clients). Released when the
/// returned file is dropped. The file is never removed: a lock on a file
/// that is replaced by renames would not exclude anything.
pub fn lock_file(path: &Path) -> Result<File, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io("open", path, e))?;
    f.lock().map_err(|e| StoreError::io("lock", path, e))?;
    Ok(f)
}

/// Parent directory of a store path (always present: store paths are
/// built below the store root).
pub fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Writes `bytes` to `path` atomically: temporary sibling, fsync, rename,
/// fsync of the directory. Readers see the old or the new content, never
/// a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = tmp_sibling(path);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io("sync", &tmp, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| StoreError::io("rename", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(parent(path))
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Io {
        op: "serialize",
        path: path.to_owned(),
        source: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Largest JSON file the store reads (protects against a garbage file).
const MAX_JSON: u64 = 1 << 20;

/// Reads and parses a JSON file; `Ok(None)` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::metadata(path) {
        Ok(m) if m.len() > MAX_JSON => {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                reason: "file too large".into(),
            })
        }
        Ok(_) => match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("read", path, e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("stat", path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// Removes a file; a missing file is fine.
pub fn remove_if_exists(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// True if `path` exists (errors other than "not found" count as present,
/// so that the store never overwrites what it cannot see).
pub fn exists(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    }
}

/// Creates a directory and its parents.
pub fn create_dir_all(path: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(path).map_err(|e| StoreError::io("create directory", path, e))
}

/// Names of the entries of a directory; a missing directory is empty.
pub fn dir_names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io("list", dir, e))?;
        // Names that are not UTF-8 can never be valid store names.
        if let Ok(name) = entry.file_name().into_string() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(dir_names(dir.path()).unwrap(), vec!["a.json".to_string()]);
        assert!(read_json::<u32>(&dir.path().join("missing"))
            .unwrap()
            .is_none());
        assert!(matches!(
            read_json::<u32>(&p),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
