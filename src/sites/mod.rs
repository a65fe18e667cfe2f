//! Sites (SPEC §10): the same domain served in several data centres, each
//! keeping the messages that arrived there. A mailbox's listing, counts
//! and audio cover every site serving its domain; a change to a message
//! is applied at the site that holds it. Peer sites are reached through
//! their HTTP API (see `docs/sites.md`).

use std::sync::Arc;

use crate::config::{Config, VmailRole};
use crate::store::{Folder, FsStore, MailboxId, MessageMeta, StoreError};

/// Where a listed message is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// This site's store.
    Local,
    /// The peer site of that name.
    Remote(String),
}

/// A message of a merged listing and where it is kept.
#[derive(Debug, Clone)]
pub struct SiteMessage {
    /// Its metadata, as the site holding it has it.
    pub meta: MessageMeta,
    /// The site holding it.
    pub home: Home,
}

/// A mailbox's messages over every site serving its domain.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    /// Every folder's messages, this site's and every answering peer site's,
    /// each id once, ordered as the store orders one folder (urgent first,
    /// then by `received`), folder by folder in `Folder::ALL` order.
    pub messages: Vec<SiteMessage>,
    /// Peer sites serving the domain that did not answer in time.
    pub unreachable: Vec<String>,
}

impl Merged {
    /// Whether some peer site did not answer.
    pub fn partial(&self) -> bool {
        !self.unreachable.is_empty()
    }
}

/// Why a change or read at another site failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The site (none of its instances) answered in time.
    #[error("site {0} cannot be reached")]
    Unreachable(String),
    /// The site has no such message (or mailbox).
    #[error("no such message")]
    NotFound,
    /// The site refused the request; its reason.
    #[error("{0}")]
    Refused(String),
}

/// Audio of a remote message as it arrives: sample rate from the WAV
/// header, then PCM chunks (mono i16) in order; the channel closes at the
/// end (or early on an error, logged).
pub struct RemoteAudio {
    /// Sample rate of the WAV.
    pub sample_rate: u32,
    /// The samples, chunk by chunk.
    pub chunks: tokio::sync::mpsc::Receiver<Vec<i16>>,
}

/// This site and its peers.
pub struct Sites {
    site: String,
}

impl Sites {
    /// The sites of `config` as the instance `role` sees them.
    pub fn new(config: &Config, _role: &VmailRole) -> Arc<Sites> {
        Arc::new(Sites {
            site: config.site.clone(),
        })
    }

    /// This site's name.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// Local messages (from `store`) merged with the peer sites' that serve
    /// the mailbox's domain; `folder: None` = every folder. Store errors of
    /// the local listing are errors; peer failures only mark `unreachable`.
    pub async fn list(
        &self,
        store: &FsStore,
        mailbox: &MailboxId,
        folder: Option<Folder>,
    ) -> Result<Merged, StoreError> {
        let local = local_listing(store, mailbox, folder).await?;
        Ok(Merged {
            messages: merge(local, Vec::new()),
            unreachable: Vec::new(),
        })
    }

    /// Starts streaming a remote message's audio (returns once the WAV
    /// header has arrived).
    pub async fn audio(
        &self,
        site: &str,
        _mailbox: &MailboxId,
        _msg: &str,
    ) -> Result<RemoteAudio, RemoteError> {
        Err(RemoteError::Unreachable(site.to_owned()))
    }

    /// Marks a remote message heard or unheard, at the site holding it.
    pub async fn set_heard(
        &self,
        site: &str,
        _mailbox: &MailboxId,
        _msg: &str,
        _heard: bool,
    ) -> Result<(), RemoteError> {
        Err(RemoteError::Unreachable(site.to_owned()))
    }

    /// Moves a remote message to `folder`, at the site holding it.
    pub async fn move_to(
        &self,
        site: &str,
        _mailbox: &MailboxId,
        _msg: &str,
        _folder: Folder,
    ) -> Result<(), RemoteError> {
        Err(RemoteError::Unreachable(site.to_owned()))
    }

    /// Deletes a remote message, at the site holding it.
    pub async fn delete(
        &self,
        site: &str,
        _mailbox: &MailboxId,
        _msg: &str,
    ) -> Result<(), RemoteError> {
        Err(RemoteError::Unreachable(site.to_owned()))
    }

    /// Forward a remote message to `to` (a mailbox of the same domain): the
    /// copy is made at the site that holds the original.
    pub async fn forward(
        &self,
        site: &str,
        _mailbox: &MailboxId,
        _msg: &str,
        _to: &MailboxId,
    ) -> Result<(), RemoteError> {
        Err(RemoteError::Unreachable(site.to_owned()))
    }
}

/// The local messages of `folder` (every folder with `None`), read on a
/// blocking thread.
async fn local_listing(
    store: &FsStore,
    mailbox: &MailboxId,
    folder: Option<Folder>,
) -> Result<Vec<MessageMeta>, StoreError> {
    let store_root = store.root().to_path_buf();
    let store = store.clone();
    let mailbox = mailbox.clone();
    tokio::task::spawn_blocking(move || {
        let folders: Vec<Folder> = match folder {
            Some(f) => vec![f],
            None => Folder::ALL.to_vec(),
        };
        let mut out = Vec::new();
        for f in folders {
            out.extend(store.list_messages(&mailbox, f)?);
        }
        Ok(out)
    })
    .await
    .map_err(|e| StoreError::io("list messages", store_root, std::io::Error::other(e)))?
}

/// Local and remote messages as one listing: each id once (the local copy
/// first, then the first site's), folder by folder in [`Folder::ALL`]
/// order, urgent first, then by `received` (then by id).
pub(crate) fn merge(
    local: Vec<MessageMeta>,
    remote: Vec<(String, Vec<MessageMeta>)>,
) -> Vec<SiteMessage> {
    let mut seen = std::collections::HashSet::new();
    let mut all: Vec<SiteMessage> = Vec::new();
    let tagged = local
        .into_iter()
        .map(|m| (Home::Local, m))
        .chain(remote.into_iter().flat_map(|(site, list)| {
            list.into_iter()
                .map(move |m| (Home::Remote(site.clone()), m))
        }));
    for (home, meta) in tagged {
        if seen.insert(meta.id.clone()) {
            all.push(SiteMessage { meta, home });
        }
    }
    let folder_index = |f: Folder| {
        Folder::ALL
            .iter()
            .position(|x| *x == f)
            .unwrap_or(usize::MAX)
    };
    all.sort_by(|a, b| {
        (
            folder_index(a.meta.folder),
            !a.meta.urgent,
            &a.meta.received,
            &a.meta.id,
        )
            .cmp(&(
                folder_index(b.meta.folder),
                !b.meta.urgent,
                &b.meta.received,
                &b.meta.id,
            ))
    });
    all
}
