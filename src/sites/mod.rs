//! Sites (SPEC §10): the same domain served in several data centres, each
//! keeping the messages that arrived there. A mailbox's listing, counts
//! and audio cover every site serving its domain; a change to a message
//! is applied at the site that holds it. Peer sites are reached through
//! their HTTP API (see `docs/sites.md`).

mod client;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::Method;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::config::{Config, VmailRole};
use crate::runtime::Changes;
use crate::store::{Counts, Folder, FsStore, MailboxId, MessageMeta, StoreError};

pub use wire::SITE_HEADER;

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

/// This site and its peers: the configuration of one run (replaced on a
/// reload by [`Sites::reconfigured`], which keeps what was learned).
pub struct Sites {
    site: String,
    peers: Vec<client::Peer>,
    timeout: Duration,
    refresh: Duration,
    limit: Arc<Semaphore>,
    state: Arc<State>,
}

/// What outlives a reload: the peer sites' last known counts, which of a
/// site's URLs answered as its active instance, the change notices' way
/// to message-waiting.
#[derive(Default)]
struct State {
    /// Mailbox → site → counts, from the last answer of that site.
    counts: Mutex<HashMap<MailboxId, BTreeMap<String, Counts>>>,
    /// Site → when it last failed to answer a counts request (it is not
    /// asked for unknown counts again within the refresh interval).
    failed: Mutex<HashMap<String, Instant>>,
    /// Site → the base URL of its instance that answered last.
    preferred: Mutex<HashMap<String, String>>,
    /// Message-waiting's change notices.
    changes: OnceLock<Changes>,
    /// Where requests to peers are counted.
    metrics: OnceLock<Arc<crate::metrics::Metrics>>,
    /// The sites whose last request found no instance answering (logged
    /// once when a site stops answering and once when it is back).
    silent: Mutex<std::collections::HashSet<String>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sites {
    /// The sites of `config` as the instance `role` sees them.
    pub fn new(config: &Config, role: &VmailRole) -> Arc<Sites> {
        Self::build(config, role, Arc::new(State::default()))
    }

    /// The same state under a new configuration (a reload): the peers'
    /// known counts and active instances are kept.
    pub fn reconfigured(&self, config: &Config, role: &VmailRole) -> Arc<Sites> {
        Self::build(config, role, self.state.clone())
    }

    fn build(config: &Config, role: &VmailRole, state: Arc<State>) -> Arc<Sites> {
        let timeout = Duration::from_millis(u64::from(role.ext.sites_timeout_ms));
        let peers = config
            .sites
            .iter()
            .map(|(name, conf)| client::Peer::new(name, conf, role.addr, timeout))
            .collect();
        Arc::new(Sites {
            site: config.site.clone(),
            peers,
            timeout,
            refresh: Duration::from_secs(u64::from(role.ext.sites_refresh_seconds)),
            limit: Arc::new(Semaphore::new(role.ext.sites_max_requests as usize)),
            state,
        })
    }

    /// This site's name.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// Whether some peer site serves `domain`.
    pub fn has_peers(&self, domain: &str) -> bool {
        self.peers.iter().any(|p| p.serves(domain))
    }

    /// Whether any peer site is configured.
    pub fn has_any_peers(&self) -> bool {
        !self.peers.is_empty()
    }

    /// Whether a peer site of this name is configured.
    pub fn is_peer(&self, site: &str) -> bool {
        self.peers.iter().any(|p| p.name == site)
    }

    /// How often message-waiting refreshes the peers' counts.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// Where message-waiting hears of counts that changed at a peer site
    /// (set once, at start).
    pub fn set_changes(&self, changes: Changes) {
        let _ = self.state.changes.set(changes);
    }

    /// Where requests to peer sites are counted (set once, at start).
    pub fn set_metrics(&self, metrics: Arc<crate::metrics::Metrics>) {
        let _ = self.state.metrics.set(metrics);
    }

    fn count(&self, site: &str, outcome: &'static str) {
        if let Some(m) = self.state.metrics.get() {
            m.site_request(site, outcome);
        }
    }

    fn peers_for<'a>(&'a self, domain: &'a str) -> impl Iterator<Item = &'a client::Peer> + 'a {
        self.peers.iter().filter(move |p| p.serves(domain))
    }

    fn peer(&self, site: &str) -> Result<&client::Peer, RemoteError> {
        self.peers
            .iter()
            .find(|p| p.name == site)
            .ok_or_else(|| RemoteError::Refused(format!("{site} is not a configured peer site")))
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
        let peers: Vec<&client::Peer> = self.peers_for(mailbox.domain()).collect();
        let local = local_listing(store, mailbox, folder);
        if peers.is_empty() {
            return Ok(Merged {
                messages: merge(local.await?, Vec::new()),
                unreachable: Vec::new(),
            });
        }
        let remote = join_all(peers.iter().map(|p| self.remote_listing(p, mailbox)));
        let (local, remote) = tokio::join!(local, remote);
        let local = local?;
        let mut answered = Vec::new();
        let mut unreachable = Vec::new();
        for (peer, answer) in peers.iter().zip(remote) {
            match answer {
                Ok(list) => {
                    self.remember_counts(&peer.name, mailbox, counts_of(&list));
                    let list = list
                        .into_iter()
                        .filter(|m| folder.is_none_or(|f| m.folder == f))
                        .collect();
                    answered.push((peer.name.clone(), list));
                }
                Err(e) => {
                    debug!(site = %peer.name, %mailbox, "peer site left out of the listing: {e}");
                    unreachable.push(peer.name.clone());
                }
            }
        }
        Ok(Merged {
            messages: merge(local, answered),
            unreachable,
        })
    }

    async fn remote_listing(
        &self,
        peer: &client::Peer,
        mailbox: &MailboxId,
    ) -> Result<Vec<MessageMeta>, RemoteError> {
        let path = format!(
            "/api/v1/sites/{}/{}/messages",
            mailbox.domain(),
            mailbox.user()
        );
        match self
            .json::<wire::Messages>(peer, Method::GET, &path, None)
            .await
        {
            Ok(m) => Ok(m.messages),
            // no mailbox there: nothing arrived there for it
            Err(RemoteError::NotFound) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The message `msg` of `mailbox` at whichever peer site holds it:
    /// that site and the message. `Unreachable` names the sites that did
    /// not answer when none of the others has it.
    pub async fn locate(
        &self,
        mailbox: &MailboxId,
        msg: &str,
    ) -> Result<(String, MessageMeta), RemoteError> {
        let peers: Vec<&client::Peer> = self.peers_for(mailbox.domain()).collect();
        let answers = join_all(peers.iter().map(|p| self.remote_message(p, mailbox, msg))).await;
        let mut down = Vec::new();
        for (peer, answer) in peers.iter().zip(answers) {
            match answer {
                Ok(meta) => return Ok((peer.name.clone(), meta)),
                Err(RemoteError::NotFound) => {}
                Err(RemoteError::Unreachable(s)) => down.push(s),
                Err(e) => warn!(site = %peer.name, %mailbox, msg, "looking for a message: {e}"),
            }
        }
        if down.is_empty() {
            Err(RemoteError::NotFound)
        } else {
            Err(RemoteError::Unreachable(down.join(", ")))
        }
    }

    /// A remote message's metadata, at `site`.
    pub async fn message(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
    ) -> Result<MessageMeta, RemoteError> {
        self.remote_message(self.peer(site)?, mailbox, msg).await
    }

    async fn remote_message(
        &self,
        peer: &client::Peer,
        mailbox: &MailboxId,
        msg: &str,
    ) -> Result<MessageMeta, RemoteError> {
        let path = message_path(mailbox, msg, "");
        let mut m: MessageMeta = self.json(peer, Method::GET, &path, None).await?;
        m.site = peer.name.clone();
        Ok(m)
    }

    /// Starts streaming a remote message's audio (returns once the WAV
    /// header has arrived).
    pub async fn audio(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
    ) -> Result<RemoteAudio, RemoteError> {
        let peer = self.peer(site)?;
        let resp = self.audio_response(site, mailbox, msg, None).await?;
        client::pcm_stream(resp, &peer.name, self.timeout).await
    }

    /// The HTTP answer of a remote message's audio (`range`: the caller's
    /// `Range` header, passed on), for the API to stream through.
    pub(crate) async fn audio_response(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
        range: Option<&str>,
    ) -> Result<reqwest::Response, RemoteError> {
        let peer = self.peer(site)?;
        let path = message_path(mailbox, msg, "/audio");
        let req = client::Req {
            method: Method::GET,
            path: &path,
            body: None,
            range,
        };
        self.send(peer, req).await
    }

    /// Marks a remote message heard or unheard, at the site holding it.
    pub async fn set_heard(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
        heard: bool,
    ) -> Result<(), RemoteError> {
        self.update(site, mailbox, msg, Some(heard), None)
            .await
            .map(drop)
    }

    /// Moves a remote message to `folder`, at the site holding it.
    pub async fn move_to(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
        folder: Folder,
    ) -> Result<(), RemoteError> {
        self.update(site, mailbox, msg, None, Some(folder))
            .await
            .map(drop)
    }

    /// Changes the heard flag and/or the folder of a remote message in one
    /// request to the site holding it; the message after the change.
    pub async fn update(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
        heard: Option<bool>,
        folder: Option<Folder>,
    ) -> Result<MessageMeta, RemoteError> {
        let peer = self.peer(site)?;
        let mut body = serde_json::Map::new();
        if let Some(h) = heard {
            body.insert("heard".into(), h.into());
        }
        if let Some(f) = folder {
            body.insert("folder".into(), serde_json::to_value(f).unwrap_or_default());
        }
        let path = message_path(mailbox, msg, "");
        let mut m: MessageMeta = self
            .json(peer, Method::PATCH, &path, Some(body.into()))
            .await?;
        m.site = peer.name.clone();
        self.recount(peer, &[mailbox]).await;
        Ok(m)
    }

    /// Deletes a remote message, at the site holding it.
    pub async fn delete(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
    ) -> Result<(), RemoteError> {
        let peer = self.peer(site)?;
        let path = message_path(mailbox, msg, "");
        let req = client::Req {
            method: Method::DELETE,
            path: &path,
            body: None,
            range: None,
        };
        self.send(peer, req).await?;
        self.recount(peer, &[mailbox]).await;
        Ok(())
    }

    /// Forward a remote message to `to` (a mailbox of the same domain): the
    /// copy is made at the site that holds the original.
    pub async fn forward(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
        to: &MailboxId,
    ) -> Result<(), RemoteError> {
        self.forward_copy(site, mailbox, msg, to).await.map(drop)
    }

    /// [`Sites::forward`], answering with the new message.
    pub async fn forward_copy(
        &self,
        site: &str,
        mailbox: &MailboxId,
        msg: &str,
        to: &MailboxId,
    ) -> Result<MessageMeta, RemoteError> {
        let peer = self.peer(site)?;
        let path = message_path(mailbox, msg, "/forward");
        let body = serde_json::json!({ "to": to.user() });
        let mut m: MessageMeta = self.json(peer, Method::POST, &path, Some(body)).await?;
        m.site = peer.name.clone();
        self.recount(peer, &[mailbox, to]).await;
        Ok(m)
    }

    // ----- counts (message-waiting) -----

    /// The peer sites' counts of `mailbox`, summed: each site's last
    /// known answer (a site that does not answer keeps its last counts, so
    /// the sum never drops because of it). A site not asked yet about the
    /// mailbox is asked now, unless it failed to answer within the refresh
    /// interval (so a silent site costs one timeout per interval, not one
    /// per mailbox).
    pub async fn remote_counts(&self, mailbox: &MailboxId) -> Counts {
        let missing: Vec<&client::Peer> = {
            let known = locked(&self.state.counts);
            let failed = locked(&self.state.failed);
            self.peers_for(mailbox.domain())
                .filter(|p| !known.get(mailbox).is_some_and(|m| m.contains_key(&p.name)))
                .filter(|p| {
                    failed
                        .get(&p.name)
                        .is_none_or(|t| t.elapsed() >= self.refresh)
                })
                .collect()
        };
        join_all(missing.iter().map(|p| self.fetch_counts(p, mailbox))).await;
        self.known_counts(mailbox)
    }

    /// The sum of the peer sites' last known counts of `mailbox`, without
    /// asking them.
    pub fn known_counts(&self, mailbox: &MailboxId) -> Counts {
        let known = locked(&self.state.counts);
        let mut sum = Counts::default();
        if let Some(sites) = known.get(mailbox) {
            for (site, c) in sites {
                if self
                    .peers
                    .iter()
                    .any(|p| &p.name == site && p.serves(mailbox.domain()))
                {
                    add(&mut sum, c);
                }
            }
        }
        sum
    }

    /// Asks every peer site serving their domains for the counts of
    /// `mailboxes` (at most `ext.sites_max_requests` at once); the
    /// mailboxes whose known remote counts changed.
    pub async fn refresh(&self, mailboxes: &[MailboxId]) -> Vec<MailboxId> {
        let jobs = mailboxes.iter().flat_map(|m| {
            self.peers_for(m.domain())
                .map(move |p| async move { (m, self.fetch_counts(p, m).await) })
        });
        let mut changed: Vec<MailboxId> = Vec::new();
        for (m, c) in join_all(jobs).await {
            if c && !changed.contains(m) {
                changed.push(m.clone());
            }
        }
        changed
    }

    /// Asks `peer` for the counts of `mailbox` and remembers them;
    /// whether they differ from the ones known before.
    async fn fetch_counts(&self, peer: &client::Peer, mailbox: &MailboxId) -> bool {
        let path = format!(
            "/api/v1/sites/{}/{}/counts",
            mailbox.domain(),
            mailbox.user()
        );
        let key = peer.name.clone();
        match self
            .json::<wire::WireCounts>(peer, Method::GET, &path, None)
            .await
        {
            Ok(c) => {
                locked(&self.state.failed).remove(&key);
                self.remember_counts(&peer.name, mailbox, c.into())
            }
            Err(RemoteError::NotFound) => {
                locked(&self.state.failed).remove(&key);
                self.remember_counts(&peer.name, mailbox, Counts::default())
            }
            Err(e) => {
                debug!(site = %peer.name, %mailbox, "counts not refreshed: {e}");
                locked(&self.state.failed).insert(key, Instant::now());
                false
            }
        }
    }

    /// Keeps `counts` as `site`'s for `mailbox`; whether they changed.
    fn remember_counts(&self, site: &str, mailbox: &MailboxId, counts: Counts) -> bool {
        let mut known = locked(&self.state.counts);
        let sites = known.entry(mailbox.clone()).or_default();
        sites.insert(site.to_owned(), counts) != Some(counts)
    }

    /// After a change made here to messages of `peer`: its new counts of
    /// `mailboxes`, and a notice to message-waiting.
    async fn recount(&self, peer: &client::Peer, mailboxes: &[&MailboxId]) {
        for m in mailboxes {
            self.fetch_counts(peer, m).await;
            self.changed(m);
        }
    }

    fn changed(&self, mailbox: &MailboxId) {
        if let Some(c) = self.state.changes.get() {
            c.notify(mailbox);
        }
    }

    /// A peer site's notice that `mailbox` changed there, with its new
    /// counts (`POST /api/v1/sites/changed`): remembered, and
    /// message-waiting reads the counts again.
    pub fn notice(
        &self,
        site: &str,
        mailbox: &MailboxId,
        counts: Counts,
    ) -> Result<(), RemoteError> {
        let Some(peer) = self.peers.iter().find(|p| p.name == site) else {
            return Err(RemoteError::Refused(format!(
                "{site} is not a peer site of {}",
                self.site
            )));
        };
        if !peer.serves(mailbox.domain()) {
            return Err(RemoteError::Refused(format!(
                "site {site} does not serve {} here",
                mailbox.domain()
            )));
        }
        self.remember_counts(site, mailbox, counts);
        debug!(%site, %mailbox, ?counts, "peer site changed a mailbox");
        self.changed(mailbox);
        Ok(())
    }

    /// Tells every peer site serving its domain that `mailbox` changed
    /// here, with its local counts `counts`.
    pub async fn announce(&self, mailbox: &MailboxId, counts: Counts) {
        let body = serde_json::to_value(wire::Notice {
            site: self.site.clone(),
            domain: mailbox.domain().to_owned(),
            user: mailbox.user().to_owned(),
            counts: counts.into(),
        })
        .unwrap_or_default();
        let peers: Vec<&client::Peer> = self.peers_for(mailbox.domain()).collect();
        let sends = peers.iter().map(|p| {
            let req = client::Req {
                method: Method::POST,
                path: "/api/v1/sites/changed",
                body: Some(body.clone()),
                range: None,
            };
            async move { (p, self.send(p, req).await) }
        });
        for (p, r) in join_all(sends).await {
            if let Err(e) = r {
                // its periodic refresh catches up
                debug!(site = %p.name, %mailbox, "change notice not delivered: {e}");
            }
        }
    }

    // ----- requests -----

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        peer: &client::Peer,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, RemoteError> {
        let req = client::Req {
            method,
            path,
            body,
            range: None,
        };
        let resp = self.send(peer, req).await?;
        let bytes = tokio::time::timeout(self.timeout, resp.bytes())
            .await
            .map_err(|_| RemoteError::Unreachable(peer.name.clone()))?
            .map_err(|e| {
                debug!(site = %peer.name, "reading an answer: {e}");
                RemoteError::Unreachable(peer.name.clone())
            })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            warn!(site = %peer.name, path, "peer site answered what vmail cannot read: {e}");
            RemoteError::Refused(format!(
                "site {} answered what vmail cannot read",
                peer.name
            ))
        })
    }

    /// One request to `peer`'s active instance, at most
    /// `ext.sites_max_requests` at once, within `ext.sites_timeout_ms`.
    async fn send(
        &self,
        peer: &client::Peer,
        req: client::Req<'_>,
    ) -> Result<reqwest::Response, RemoteError> {
        let unreachable = || RemoteError::Unreachable(peer.name.clone());
        let _permit = tokio::time::timeout(self.timeout, self.limit.acquire())
            .await
            .map_err(|_| {
                warn!(site = %peer.name, "too many requests to peer sites in flight");
                self.count(&peer.name, "unreachable");
                unreachable()
            })?
            .map_err(|_| unreachable())?;
        let preferred = locked(&self.state.preferred).get(&peer.name).cloned();
        let sent = tokio::time::timeout(
            self.timeout,
            peer.send(&self.site, &req, preferred.as_deref()),
        )
        .await
        .unwrap_or_else(|_| {
            debug!(site = %peer.name, path = req.path, "no answer in time");
            Err(unreachable())
        });
        self.count(
            &peer.name,
            match &sent {
                Ok(_) | Err(RemoteError::NotFound) => "answered",
                Err(RemoteError::Refused(_)) => "refused",
                Err(RemoteError::Unreachable(_)) => "unreachable",
            },
        );
        match &sent {
            Err(RemoteError::Unreachable(_)) => {
                if locked(&self.state.silent).insert(peer.name.clone()) {
                    warn!(site = %peer.name, "peer site does not answer: its messages are left out of listings, changes to them refused, its last counts kept");
                }
            }
            // an answer, even a refusal: the site is there
            _ => {
                if locked(&self.state.silent).remove(&peer.name) {
                    info!(site = %peer.name, "peer site answers again");
                }
            }
        }
        let (resp, base) = sent?;
        locked(&self.state.preferred).insert(peer.name.clone(), base);
        Ok(resp)
    }
}

fn add(sum: &mut Counts, c: &Counts) {
    sum.new += c.new;
    sum.old += c.old;
    sum.urgent_new += c.urgent_new;
    sum.urgent_old += c.urgent_old;
}

/// Counts of a listing, as [`FsStore::counts`] makes them.
pub(crate) fn counts_of(list: &[MessageMeta]) -> Counts {
    let mut c = Counts::default();
    for m in list {
        match (m.folder.is_new(), m.urgent) {
            (true, u) => {
                c.new += 1;
                c.urgent_new += usize::from(u);
            }
            (false, u) => {
                c.old += 1;
                c.urgent_old += usize::from(u);
            }
        }
    }
    c
}

fn message_path(mailbox: &MailboxId, msg: &str, tail: &str) -> String {
    format!(
        "/api/v1/domains/{}/mailboxes/{}/messages/{msg}{tail}",
        mailbox.domain(),
        mailbox.user()
    )
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

#[cfg(test)]
mod tests;
