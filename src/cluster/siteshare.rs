//! The SiteShare backend: leases and epochs as files on the shared store.
//!
//! Layout under `<siteshare>/vmail/cluster/group-<g>/`:
//! - `instance-<name>.json`: the instance's [`Record`], replaced atomically
//!   (write a temporary file, fsync, rename);
//! - `epoch-<n>`: created exclusively (`O_CREAT|O_EXCL`) by the instance
//!   that claims epoch `n`; the group's epoch is the highest `n` present.

use std::path::{Path, PathBuf};

use super::{Backend, BackendError, BoxFuture, Claim, GroupView, Record};

/// Leases on the SiteShare filesystem.
#[derive(Debug, Clone)]
pub struct SiteShareBackend {
    root: PathBuf,
}

impl SiteShareBackend {
    /// The backend for the store at `siteshare` (the `ext.siteshare`
    /// directory; files go under `vmail/cluster/`).
    pub fn new(siteshare: &Path) -> SiteShareBackend {
        SiteShareBackend {
            root: siteshare.join("vmail").join("cluster"),
        }
    }

    /// The folder of `group`.
    pub fn group_dir(&self, group: u32) -> PathBuf {
        self.root.join(format!("group-{group}"))
    }
}

impl Backend for SiteShareBackend {
    fn publish<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), BackendError>> {
        let _ = record;
        todo!("siteshare backend")
    }

    fn observe(&self, group: u32) -> BoxFuture<'_, Result<GroupView, BackendError>> {
        let _ = group;
        todo!("siteshare backend")
    }

    fn claim<'a>(
        &'a self,
        group: u32,
        seen: u64,
        claimant: &'a Record,
    ) -> BoxFuture<'a, Result<Claim, BackendError>> {
        let _ = (group, seen, claimant);
        todo!("siteshare backend")
    }

    fn withdraw<'a>(&'a self, record: &'a Record) -> BoxFuture<'a, Result<(), BackendError>> {
        let _ = record;
        todo!("siteshare backend")
    }

    fn kind(&self) -> &'static str {
        "siteshare"
    }
}
