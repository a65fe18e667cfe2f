//! The store's error type.

use std::io;
use std::path::PathBuf;

use crate::cluster::FenceError;

/// Everything that can go wrong in the mailbox store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A user, domain, mailbox address or message id failed validation
    /// (checked before any path is built).
    #[error("invalid {kind}: {reason}")]
    InvalidName {
        /// Which name: "user", "domain", "mailbox", "message id".
        kind: &'static str,
        /// The rule it broke.
        reason: &'static str,
    },
    /// A value (PIN, setting, audio) broke a rule.
    #[error("invalid {what}: {reason}")]
    InvalidValue {
        /// Which value: "pin", "display_name", "greeting audio", ...
        what: &'static str,
        /// The rule it broke.
        reason: &'static str,
    },
    /// The mailbox, message or greeting does not exist.
    #[error("{what} not found")]
    NotFound {
        /// "mailbox", "message" or "greeting".
        what: &'static str,
    },
    /// The mailbox already exists.
    #[error("{what} already exists")]
    AlreadyExists {
        /// "mailbox".
        what: &'static str,
    },
    /// A file-system operation failed (full disk, permissions, ...).
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What the store was doing ("create", "write", "rename", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A stored file does not parse (bad JSON, bad PIN hash).
    #[error("corrupt file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Hashing a PIN failed (argon2 parameters rejected).
    #[error("cannot hash PIN: {reason}")]
    PinHash {
        /// The hasher's message.
        reason: String,
    },
    /// The store refused to write: this instance is not (or no longer)
    /// the active one of its group (Active-Passive fencing, see
    /// [`FsStore::set_fence`](super::FsStore::set_fence)). Nothing was
    /// written.
    #[error("write refused, not the active instance of the group: {0}")]
    Fenced(FenceError),
}

impl StoreError {
    /// Builds an [`StoreError::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for "no space left on device" (and quota exceeded).
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => {
                source.kind() == io::ErrorKind::StorageFull
                    || source.kind() == io::ErrorKind::QuotaExceeded
            }
            _ => false,
        }
    }

    /// True when the fence refused the write ([`StoreError::Fenced`]).
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced(_))
    }

    /// A write error of a file the store writes through a fenced writer:
    /// the fence's refusal comes back as itself, anything else as `Io`.
    pub(crate) fn io_or_fenced(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: io::Error,
    ) -> Self {
        match source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<FenceError>())
        {
            Some(f) => StoreError::Fenced(f.clone()),
            None => StoreError::io(op, path, source),
        }
    }

    /// True for the "does not exist" errors.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}
