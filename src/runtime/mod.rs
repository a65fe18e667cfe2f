//! The tokio shell: sockets, timers and files around the sans-IO core.
//!
//! Start-up order (configuration is validated before anything binds):
//! open the store → join the group's lease (`cluster`) → load the prompts
//! → bind SIP UDP/TCP and HTTP → serve until SIGINT or SIGTERM → hang up
//! calls, finish their recordings and the HTTP requests in flight, give
//! the lease up, exit. Until the lease makes this instance the active one
//! of its group it is passive: the store's fence refuses writes, OPTIONS
//! get `503`, INVITEs and SUBSCRIBEs a `302` to the active instance. On
//! becoming active it creates the demo mailboxes, recovers interrupted
//! recordings of the group's domains in the background (the scan reads
//! every mailbox, seconds with 100,000 of them), restores the MWI
//! subscriptions and starts the retention passes (`ext.retention`).

mod call_messages;
mod changes;
pub(crate) mod cluster;
mod deposit_driver;
mod media_clock;
mod media_io;
mod menu_driver;
mod mwi;
mod pacer;
pub(crate) mod pin_login;
mod pin_pool;
mod plan;
mod retention;
mod sip_server;
mod stream_clip;
mod tcp;
pub(crate) mod tls;

pub use changes::{ChangeReceiver, Changes};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::admission::{MediaLag, RateLimit, SourceLimiter, Verdict};
use crate::config::{Config, SipTransport, VmailRole};
use crate::media::PortPool;
use crate::metrics::Metrics;
use crate::prompts::PromptSet;
use crate::routing::RoutingTable;
use crate::store::{FsStore, MailboxId, MailboxSettings, RecoverOptions};

use pacer::Pacer;
use sip_server::SipServer;
use tcp::TcpConns;

/// Why vmail could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The tokio runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Tokio(std::io::Error),
    /// The store could not be opened.
    #[error("cannot open the SiteShare store at {path}: {source}")]
    Store {
        path: String,
        source: crate::store::StoreError,
    },
    /// The prompts could not be loaded.
    #[error("cannot load the prompts from {path}: {source}")]
    Prompts {
        path: String,
        source: crate::prompts::PromptError,
    },
    /// A socket could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The routing table could not be built.
    #[error("routing: {0}")]
    Routing(#[from] crate::routing::RoutingError),
    /// The coordination backend could not be opened.
    #[error("coordination: {0}")]
    Coordination(String),
}

/// State shared by the SIP task and the call drivers.
pub(crate) struct Shared {
    pub config: Config,
    pub role: VmailRole,
    pub routing: RoutingTable,
    /// Instances of every group, by order (for redirects).
    pub groups: BTreeMap<u32, Vec<Instance>>,
    pub store: FsStore,
    pub prompts: PromptSet,
    pub metrics: Arc<Metrics>,
    pub pacer: Pacer,
    /// When the calls read their RTP sockets.
    pub media_clock: Arc<media_clock::MediaClock>,
    /// PIN logins: the bounded hashing pool.
    pub logins: Arc<menu_driver::Logins>,
    /// Calls to access numbers per source address.
    pub access_limiter: Arc<Mutex<SourceLimiter>>,
    /// The group's lease: active or passive, the store's fence.
    pub cluster: Arc<cluster::Cluster>,
    /// E-mail and webhook notifications.
    pub notifier: Arc<crate::notify::Notifier>,
    /// This site and its peer sites (merged listings, remote changes).
    pub sites: Arc<crate::sites::Sites>,
    /// How late the media threads run, and whether new calls wait for it.
    pub media_lag: Arc<MediaLag>,
    /// Decoded personal greetings (`ext.greeting_cache_bytes`).
    pub greetings: Arc<crate::prompts::GreetingCache>,
    ports: Arc<Mutex<PortPool>>,
}

impl Shared {
    /// Counts an access-number call from `ip` against its rate limit;
    /// `Err` holds the seconds until the next call from there is allowed.
    /// The first refusal of a streak per address is logged as a warning,
    /// the rest at debug.
    pub fn access_call(&self, ip: std::net::IpAddr) -> Result<(), u64> {
        let verdict = self
            .access_limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(ip, std::time::Instant::now());
        let Verdict::Refuse { retry_after, first } = verdict else {
            return Ok(());
        };
        let secs = retry_after.as_secs();
        let msg = "access-number call refused: rate limit of the source address";
        if first {
            warn!(source = %ip, retry_after = secs, "{msg}");
        } else {
            tracing::debug!(source = %ip, retry_after = secs, "{msg}");
        }
        Err(secs)
    }

    pub fn ports_allocate(&self) -> Option<u16> {
        self.ports.lock().ok()?.allocate()
    }

    pub fn ports_release(&self, port: u16) {
        if let Ok(mut p) = self.ports.lock() {
            p.release(port);
        }
    }
}

/// Where another instance takes SIP.
#[derive(Debug, Clone)]
pub(crate) struct Instance {
    pub addr: std::net::IpAddr,
    pub sip_port: u16,
}

impl Shared {
    /// The same instance under a new configuration (SIGHUP): routing,
    /// redirects and call limits change; what is bound or loaded at start
    /// (addresses, ports, transports, SiteShare, prompts) stays, with a
    /// warning when the file changed it.
    fn reconfigured(&self, config: Config, mut role: VmailRole) -> Result<Shared, RuntimeError> {
        let (routing, groups) = routing_of(&config)?;
        let old = &self.role.ext;
        let new = &mut role.ext;
        let mut kept = Vec::new();
        if role.addr != self.role.addr {
            kept.push("iface");
            role.addr = self.role.addr;
        }
        macro_rules! keep {
            ($($field:ident),*) => {$(
                if new.$field != old.$field {
                    kept.push(stringify!($field));
                    new.$field = old.$field.clone();
                }
            )*};
        }
        keep!(
            sip_port,
            sip_transports,
            rtp_port_min,
            rtp_port_max,
            http_port,
            siteshare,
            prompts,
            language,
            tcp_max_connections,
            tcp_max_connections_per_address,
            tcp_idle_seconds,
            tcp_message_seconds,
            pin_hash_workers,
            pin_hash_queue,
            greeting_cache_bytes,
            mwi_notify,
            retention,
            retention_interval_minutes
        );
        if !kept.is_empty() {
            warn!(
                ?kept,
                "these settings need a restart; keeping the running values"
            );
        }
        if let Ok(mut l) = self.access_limiter.lock() {
            l.set_limit(access_rate(&role.ext));
        }
        self.notifier.reconfigure(&role.ext);
        let sites = self.sites.reconfigured(&config, &role);
        let (limit, hold) = lag_limits(&role.ext);
        self.media_lag.set_limits(limit, hold);
        Ok(Shared {
            sites,
            config,
            role,
            routing,
            groups,
            store: self.store.clone(),
            prompts: self.prompts.clone(),
            metrics: self.metrics.clone(),
            pacer: self.pacer.clone(),
            media_clock: self.media_clock.clone(),
            logins: self.logins.clone(),
            access_limiter: self.access_limiter.clone(),
            cluster: self.cluster.clone(),
            notifier: self.notifier.clone(),
            media_lag: self.media_lag.clone(),
            greetings: self.greetings.clone(),
            ports: self.ports.clone(),
        })
    }
}

/// The per-source limit of access-number calls in `ext`.
fn access_rate(ext: &crate::config::Ext) -> RateLimit {
    RateLimit {
        burst: ext.access_rate_burst,
        per_minute: ext.access_rate_per_minute,
    }
}

/// The media-lag limit and hold time of `ext`.
fn lag_limits(ext: &crate::config::Ext) -> (Duration, Duration) {
    (
        Duration::from_millis(u64::from(ext.media_lag_limit_ms)),
        Duration::from_millis(u64::from(ext.media_lag_hold_ms)),
    )
}

/// The routing table and every group's instances.
fn routing_of(
    config: &Config,
) -> Result<(RoutingTable, BTreeMap<u32, Vec<Instance>>), RuntimeError> {
    let groups = config.groups();
    let routing = RoutingTable::new(
        groups
            .iter()
            .map(|(g, info)| (*g, info.include_domains.iter().map(String::as_str))),
    )?;
    let instances = groups
        .iter()
        .map(|(g, info)| {
            let list = info
                .instances
                .iter()
                .map(|r| Instance {
                    addr: r.addr,
                    sip_port: r.ext.sip_port,
                })
                .collect();
            (*g, list)
        })
        .collect();
    Ok((routing, instances))
}

/// Runs the instance `role` of `config` until SIGINT/SIGTERM; on SIGHUP
/// reloads `config_path` (when the configuration came from a file).
pub fn run(
    config: Config,
    role: VmailRole,
    config_path: Option<PathBuf>,
) -> Result<(), RuntimeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vmail")
        .build()
        .map_err(RuntimeError::Tokio)?;
    rt.block_on(serve(config, role, config_path))
}

async fn serve(
    config: Config,
    role: VmailRole,
    config_path: Option<PathBuf>,
) -> Result<(), RuntimeError> {
    let ext = role.ext.clone();
    info!(
        name = %role.name,
        group = role.group,
        order = role.order,
        domains = ?role.include_domains,
        addr = %role.addr,
        sip_port = ext.sip_port,
        "starting vmail"
    );
    let (routing, groups) = routing_of(&config)?;

    // The store: open, repair what a crash left in tmp/, demo mailboxes.
    let store = FsStore::open(&ext.siteshare).map_err(|source| RuntimeError::Store {
        path: ext.siteshare.display().to_string(),
        source,
    })?;
    let metrics = Arc::new(Metrics::default());
    // The group's lease: until it says this instance is active, the store
    // refuses every write (the fence) and SIP and the API send callers to
    // the active instance.
    let (cluster_tx, cluster_rx) = mpsc::unbounded_channel();
    let cluster = Arc::new(cluster::start(&config, &role, metrics.clone(), cluster_tx).await?);
    store.set_fence(cluster.fence.clone());

    let prompts = {
        let dir = ext.prompts.clone();
        let lang = ext.language.clone();
        tokio::task::spawn_blocking(move || PromptSet::load_all(&dir, &lang))
            .await
            .map_err(|e| RuntimeError::Tokio(std::io::Error::other(e)))?
            .map_err(|source| RuntimeError::Prompts {
                path: ext.prompts.display().to_string(),
                source,
            })?
    };

    // Sockets.
    let sip_addr = SocketAddr::new(role.addr, ext.sip_port);
    let udp = if ext.sip_transports.contains(&SipTransport::Udp) {
        Some(
            tokio::net::UdpSocket::bind(sip_addr)
                .await
                .map_err(|source| RuntimeError::Bind {
                    what: "SIP/UDP",
                    addr: sip_addr,
                    source,
                })?,
        )
    } else {
        None
    };
    let tcp_listener = if ext.sip_transports.contains(&SipTransport::Tcp) {
        Some(
            tokio::net::TcpListener::bind(sip_addr)
                .await
                .map_err(|source| RuntimeError::Bind {
                    what: "SIP/TCP",
                    addr: sip_addr,
                    source,
                })?,
        )
    } else {
        None
    };

    let tls_listener = match ext.sip_tls_port {
        Some(port) => {
            let addr = SocketAddr::new(role.addr, port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| RuntimeError::Bind {
                    what: "SIP/TLS",
                    addr,
                    source,
                })?;
            let certs = start_certificate(&ext, "SIP/TLS certificate", addr)?;
            Some((listener, tls::TlsCerts::new(certs)))
        }
        None => None,
    };

    let http_addr = SocketAddr::new(role.addr, ext.http_port);
    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .map_err(|source| RuntimeError::Bind {
            what: "HTTP",
            addr: http_addr,
            source,
        })?;
    let https_certs = if ext.http_tls {
        let config = start_certificate(&ext, "HTTPS certificate", http_addr)?;
        Some(tls::TlsCerts::new(https_config(&config)))
    } else {
        None
    };

    let ports =
        PortPool::new(ext.rtp_port_min, ext.rtp_port_max).map_err(|e| RuntimeError::Bind {
            what: "RTP port range",
            addr: sip_addr,
            source: std::io::Error::other(e),
        })?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    // The lag of each pacer shard and of the receive clock (the last one).
    let (limit, hold) = lag_limits(&ext);
    let media_lag = Arc::new(MediaLag::new(workers + 1, limit, hold));
    let pacer =
        Pacer::start(workers, metrics.clone(), media_lag.clone()).map_err(RuntimeError::Tokio)?;
    // Every change of the store's message counts is a change notice
    // (deposits, the phone menu, the API, recovery): MWI listens.
    // Peer sites hear of them too (their subscribers' counts include
    // this site's messages), and tell of theirs.
    let (changes, change_rx) = Changes::new();
    let (site_changes, site_change_rx) = Changes::new();
    let sites = crate::sites::Sites::new(&config, &role);
    sites.set_changes(changes.clone());
    sites.set_metrics(metrics.clone());
    store.set_observer(Arc::new(move |id: &MailboxId| {
        changes.notify(id);
        site_changes.notify(id);
    }));
    let notifier = Arc::new(crate::notify::Notifier::new(
        store.clone(),
        &ext,
        metrics.clone(),
    ));
    crate::notify::install(notifier.clone());
    let shared = Arc::new(Shared {
        sites,
        notifier,
        config,
        routing,
        groups,
        store,
        prompts,
        metrics,
        pacer,
        media_clock: media_clock::MediaClock::start(Some((media_lag.clone(), workers))),
        media_lag,
        logins: Arc::new(menu_driver::Logins::new(
            ext.pin_hash_workers as usize,
            ext.pin_hash_queue as usize,
        )),
        access_limiter: Arc::new(Mutex::new(SourceLimiter::new(access_rate(&ext)))),
        cluster,
        greetings: Arc::new(crate::prompts::GreetingCache::new(ext.greeting_cache_bytes)),
        ports: Arc::new(Mutex::new(ports)),
        role,
    });

    let (inbound_tx, inbound_rx) = mpsc::channel(4096);
    let conns = TcpConns::default();
    let stream_settings = tcp::TcpSettings::from_ext(&ext, 64 * 1024);
    let stream_limits = tcp::shared_limits(&stream_settings);
    if let Some(listener) = tcp_listener {
        tokio::spawn(tcp::accept_loop(
            listener,
            conns.clone(),
            inbound_tx.clone(),
            stream_settings,
            stream_limits.clone(),
        ));
    }
    let tls_certs = tls_listener.map(|(listener, certs)| {
        tokio::spawn(tls::accept_loop(
            listener,
            certs.clone(),
            conns.clone(),
            inbound_tx.clone(),
            stream_settings,
            stream_limits.clone(),
            shared.metrics.clone(),
        ));
        certs
    });
    // Without UDP the server still needs a socket value: bind an unused
    // ephemeral one that never receives anything.
    let udp = match udp {
        Some(u) => u,
        None => tokio::net::UdpSocket::bind(SocketAddr::new(shared.role.addr, 0))
            .await
            .map_err(|source| RuntimeError::Bind {
                what: "SIP/UDP",
                addr: sip_addr,
                source,
            })?,
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let mwi = mwi::Mwi::start(shared.clone(), change_rx);
    let server = SipServer::new(
        shared.clone(),
        Arc::new(udp),
        conns,
        inbound_rx,
        reload_rx,
        mwi,
        cluster_rx,
    );
    let server = tokio::spawn(server.serve(shutdown_rx, Duration::from_secs(10)));
    let sip_ready = Arc::new(AtomicBool::new(true));
    let (api_tx, api_rx) = watch::channel(shared.clone());
    let (api_reload_tx, mut api_reload_rx) = mpsc::unbounded_channel();
    tokio::spawn(announce_changes(site_change_rx, api_tx.subscribe()));
    let api = tokio::spawn(crate::api::serve(
        http_listener,
        api_rx,
        sip_ready.clone(),
        api_reload_tx,
        https_certs.clone().map(|certs| crate::api::HttpsTls {
            certs,
            handshakes: Arc::new(tls::Handshakes::new(
                tls::TlsListener::Https,
                shared.metrics.clone(),
            )),
        }),
        shutdown_tx.subscribe(),
    ));
    info!(%sip_addr, transports = ?ext.sip_transports, tls_port = ?ext.sip_tls_port, %http_addr, http_tls = ext.http_tls, "vmail ready");

    let mut current = shared;
    loop {
        let answer_to = tokio::select! {
            signal = wait_for_signal() => match signal {
                Signal::Stop => break,
                Signal::Reload => None,
            },
            Some(request) = api_reload_rx.recv() => Some(request),
        };
        let outcome = match config_path.as_deref() {
            None => {
                warn!("reload: running on the embedded configuration, nothing to reload");
                Err(
                    "vmail runs on the embedded configuration: there is no file to reload"
                        .to_string(),
                )
            }
            Some(path) => match reload(&current, path) {
                Ok(next) => {
                    info!(path = %path.display(), "configuration reloaded");
                    reload_certificates(tls_certs.as_ref(), https_certs.as_ref(), &next.role.ext);
                    next.cluster.reconfigure(&next.config, &next.role);
                    current = next.clone();
                    let _ = api_tx.send(next.clone());
                    let _ = reload_tx.send(next);
                    Ok(())
                }
                Err(e) => {
                    warn!(path = %path.display(), "configuration rejected, keeping the running one:\n{e}");
                    Err(e)
                }
            },
        };
        if let Some(answer) = answer_to {
            let _ = answer.send(outcome);
        }
    }
    info!("signal received: stopping");
    sip_ready.store(false, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    // The calls are over and their messages stored: give the role up.
    current.cluster.stop().await;
    // Requests in flight get the same grace as calls; a client still
    // downloading after that is cut off.
    if tokio::time::timeout(Duration::from_secs(10), api)
        .await
        .is_err()
    {
        warn!("HTTP requests still open after 10 s: closed");
    }
    drop(inbound_tx);
    info!("vmail stopped");
    Ok(())
}

/// New TLS connections (SIP over TLS and, with `ext.http_tls`, HTTPS) use
/// the certificate and key the reloaded configuration names (read again:
/// the files may have been renewed in place). One that does not load
/// keeps the one in use, with a warning. Whether the listeners use TLS at
/// all is decided at start.
fn reload_certificates(
    sip: Option<&tls::TlsCerts>,
    https: Option<&tls::TlsCerts>,
    ext: &crate::config::Ext,
) {
    if https.is_some() != ext.http_tls {
        warn!("reload: ext.http_tls changed: the HTTP port keeps its protocol until restart");
    }
    if sip.is_none() && https.is_none() {
        return;
    }
    let (Some(cert), Some(key)) = (&ext.tls_cert, &ext.tls_key) else {
        warn!("reload: TLS keeps its certificate (ext.tls_cert/tls_key removed; the listeners stay until restart)");
        return;
    };
    match crate::config::tls::load_server_config(cert, key) {
        Ok(config) => {
            if let Some(https) = https {
                https.replace(https_config(&config));
                info!(cert = %cert.display(), "HTTPS certificate reloaded");
            }
            if let Some(sip) = sip {
                sip.replace(config);
                info!(cert = %cert.display(), "SIP/TLS certificate reloaded");
            }
        }
        Err(e) => warn!("reload: TLS keeps the certificate in use: {e}"),
    }
}

/// The certificate and key of `ext` at start, for the listener `what` on
/// `addr`. Checked with the configuration; read again here (the files may
/// have changed since).
fn start_certificate(
    ext: &crate::config::Ext,
    what: &'static str,
    addr: SocketAddr,
) -> Result<Arc<rustls::ServerConfig>, RuntimeError> {
    let cert = ext.tls_cert.clone().unwrap_or_default();
    let key = ext.tls_key.clone().unwrap_or_default();
    crate::config::tls::load_server_config(&cert, &key).map_err(|e| RuntimeError::Bind {
        what,
        addr,
        source: std::io::Error::other(e),
    })
}

/// The HTTPS variant of a server configuration: ALPN offers HTTP/1.1, the
/// only protocol the HTTP port speaks.
fn https_config(config: &rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    let mut https = config.clone();
    https.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(https)
}

/// Reads, validates and applies the configuration file again.
fn reload(current: &Shared, path: &Path) -> Result<Arc<Shared>, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let role = config
        .select(Some(&current.role.name))
        .map_err(|e| e.to_string())?
        .clone();
    current
        .reconfigured(config, role)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// What a new active instance does before it counts as serving: creates
/// the demo mailboxes, then repairs what a crash left in `tmp/` of the
/// domains its group owns (not another group's recordings in progress on
/// a shared SiteShare), on a blocking thread while calls are served. The
/// instance was passive until now, so no recording in `tmp/` is its own.
/// Then retention runs while the instance stays active.
pub(crate) fn take_over(shared: &Arc<Shared>, epoch: u64) {
    create_demo_mailboxes(shared);
    recover_in_background(shared, epoch);
    retention::start(shared, epoch);
    // Only the active instance sends notifications.
    let cluster = shared.cluster.clone();
    shared.notifier.start(move || cluster.is_active());
}

fn create_demo_mailboxes(shared: &Shared) {
    let store = &shared.store;
    for demo in &shared.role.ext.demo_mailboxes {
        let Ok(id) = MailboxId::new(&demo.user, &demo.domain) else {
            warn!(user = %demo.user, domain = %demo.domain, "invalid demo mailbox");
            continue;
        };
        match store.mailbox(&id) {
            Ok(Some(_)) => {}
            Ok(None) => {
                match store.create_mailbox(&id, MailboxSettings::default(), Some(&demo.pin)) {
                    Ok(_) => info!(mailbox = %id, "demo mailbox created"),
                    Err(e) => warn!(mailbox = %id, "cannot create demo mailbox: {e}"),
                }
            }
            Err(e) => warn!(mailbox = %id, "store error: {e}"),
        }
    }
}

fn recover_in_background(shared: &Arc<Shared>, epoch: u64) {
    let started = std::time::Instant::now();
    let store = shared.store.clone();
    let metrics = shared.metrics.clone();
    let table = shared.routing.clone();
    let own_group = shared.role.group;
    let notifier = shared.notifier.clone();
    tokio::task::spawn_blocking(move || {
        let options = RecoverOptions {
            domain_filter: Some(Arc::new(move |domain: &str| {
                table.owner(domain).map(|o| o.group()) == Some(own_group)
            })),
            min_idle: Duration::ZERO,
        };
        match store.recover_with(&options) {
            Ok(recovered) => {
                for (mailbox, id) in &recovered {
                    warn!(%mailbox, id = %id, "recovered an interrupted recording");
                    if let Ok(Some(meta)) = store.message(mailbox, id) {
                        notifier.message_stored(mailbox, &meta);
                    }
                }
                metrics.messages_recovered.add(recovered.len() as u64);
                info!(
                    recovered = recovered.len(),
                    epoch,
                    took_ms = started.elapsed().as_millis() as u64,
                    "recovery of interrupted recordings done"
                );
            }
            Err(e) => warn!("recovery of interrupted recordings failed: {e}"),
        }
    });
}

/// Adds to `batch` what `next` has ready, each mailbox once, up to `max`.
fn fill_batch(batch: &mut Vec<MailboxId>, max: usize, mut next: impl FnMut() -> Option<MailboxId>) {
    while batch.len() < max {
        match next() {
            Some(m) if !batch.contains(&m) => batch.push(m),
            Some(_) => {}
            None => break,
        }
    }
}

/// The counts of every mailbox of `batch`, read on a blocking thread.
async fn counts_of(
    store: &crate::store::FsStore,
    batch: Vec<MailboxId>,
) -> Result<
    Vec<(
        MailboxId,
        Result<crate::store::Counts, crate::store::StoreError>,
    )>,
    tokio::task::JoinError,
> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        batch
            .into_iter()
            .map(|m| {
                let c = store.counts(&m);
                (m, c)
            })
            .collect()
    })
    .await
}

/// Tells the peer sites serving its domain of every change of a
/// mailbox here, with its new local counts (see `docs/sites.md`).
async fn announce_changes(mut rx: ChangeReceiver, current: watch::Receiver<Arc<Shared>>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        fill_batch(&mut batch, 256, || rx.try_recv());
        let shared = current.borrow().clone();
        batch.retain(|m| shared.sites.has_peers(m.domain()));
        if batch.is_empty() {
            continue;
        }
        let Ok(read) = counts_of(&shared.store, batch).await else {
            continue;
        };
        // one notice per mailbox at a time, in order: the next batch waits
        // for this one (changes meanwhile are folded into it)
        let mut notices = Vec::new();
        for (m, c) in read {
            match c {
                Ok(c) => notices.push((m, c)),
                // a removed mailbox: nothing left here
                Err(crate::store::StoreError::NotFound { .. }) => {
                    notices.push((m, crate::store::Counts::default()))
                }
                Err(e) => warn!(mailbox = %m, "counts for the peer sites not read: {e}"),
            }
        }
        let sites = &shared.sites;
        futures_util::future::join_all(notices.iter().map(|(m, c)| sites.announce(m, *c))).await;
    }
}

enum Signal {
    Stop,
    Reload,
}

async fn wait_for_signal() -> Signal {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(mut int), Ok(mut term), Ok(mut hup)) => {
            tokio::select! {
                _ = int.recv() => Signal::Stop,
                _ = term.recv() => Signal::Stop,
                _ = hup.recv() => Signal::Reload,
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
