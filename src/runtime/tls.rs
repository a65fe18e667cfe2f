//! SIP over TLS (RFC 3261 §26.2, RFC 5630): a TLS listener on
//! `ext.sip_tls_port` whose connections carry SIP exactly like the TCP
//! ones (same framer, limits, idle and message timeouts, same writers map,
//! so responses and in-dialog requests go back on the caller's
//! connection). The `tcp_max_connections*` limits count TCP and TLS
//! connections together.
//!
//! The handshake must end within `tcp_message_seconds`; a failed one
//! (plaintext on the port, garbage, a client that does not agree to a
//! protocol or cipher, a timeout) closes the connection, is counted in
//! `vmail_tls_handshakes_failed{reason}` and logged (at most every 10 s
//! at `info`, with a count, the others at `debug`). The certificate is
//! reloaded on SIGHUP: connections made after it use the new one.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::metrics::Metrics;
use crate::sip::{ConnClock, ConnId, ConnLimits, Frame, Peer, StreamFramer};

use super::sip_server::Inbound;
use super::tcp::{
    finish, Admission, Close, TcpConns, TcpSettings, Throttle, FLUSH, LINGER, LINGER_BYTES, QUEUE,
    READ_CHUNK,
};

/// The server certificate in use; replaced on reload. Cheap to clone.
#[derive(Clone)]
pub struct TlsCerts(Arc<RwLock<Arc<rustls::ServerConfig>>>);

impl TlsCerts {
    /// Starts with `config`.
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        TlsCerts(Arc::new(RwLock::new(config)))
    }

    /// Connections accepted from now on use `config`.
    pub fn replace(&self, config: Arc<rustls::ServerConfig>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    /// An acceptor with the certificate in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Accepts TLS connections until the listener fails.
pub async fn accept_loop(
    listener: TcpListener,
    certs: TlsCerts,
    conns: TcpConns,
    inbound: mpsc::Sender<Inbound>,
    settings: TcpSettings,
    limits: Arc<Mutex<ConnLimits>>,
    metrics: Arc<Metrics>,
) {
    let mut refused = Throttle::default();
    let failures = Arc::new(Handshakes::new(TlsListener::Sip, metrics));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                info!("tls accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(admission) = Admission::take(&limits, addr, &mut refused, "SIP/TLS") else {
            drop(stream);
            continue;
        };
        let acceptor = certs.acceptor();
        let conns = conns.clone();
        let inbound = inbound.clone();
        let failures = failures.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let Some(tls) = handshake(&acceptor, stream, addr, settings.message, &failures).await
            else {
                return;
            };
            let id = conns.next.fetch_add(1, Ordering::Relaxed) + 1;
            let (tx, rx) = mpsc::channel(QUEUE);
            conns.writers.insert(id, tx.clone());
            let peer = Peer::tls(addr, ConnId(id));
            run(tls, peer, local, settings, inbound, tx, rx).await;
            conns.writers.remove(&id);
            drop(admission);
        });
    }
}

/// Which listener a TLS handshake happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsListener {
    /// `ext.sip_tls_port`.
    Sip,
    /// The HTTP port with `ext.http_tls`.
    Https,
}

impl TlsListener {
    fn name(self) -> &'static str {
        match self {
            TlsListener::Sip => "SIP/TLS",
            TlsListener::Https => "HTTPS",
        }
    }
}

/// Counts the handshakes of one listener and logs the failed ones (at
/// most every [`super::tcp::REFUSAL_LOG_EVERY`] at `info`, with a count).
pub struct Handshakes {
    listener: TlsListener,
    metrics: Arc<Metrics>,
    failures: Mutex<Throttle>,
}

impl Handshakes {
    pub fn new(listener: TlsListener, metrics: Arc<Metrics>) -> Self {
        Handshakes {
            listener,
            metrics,
            failures: Mutex::new(Throttle::default()),
        }
    }

    fn succeeded(&self) {
        match self.listener {
            TlsListener::Sip => self.metrics.tls_handshakes.inc(),
            TlsListener::Https => self.metrics.https_handshakes.inc(),
        };
    }

    fn failed(&self, addr: SocketAddr, reason: &'static str, why: &str) {
        match self.listener {
            TlsListener::Sip => self.metrics.tls_handshake_failed(reason),
            TlsListener::Https => self.metrics.https_handshake_failed(reason),
        }
        let log = self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tick();
        let what = self.listener.name();
        match log {
            Some(n) => info!(%addr, failed = n, reason, "{what} handshake failed: {why}"),
            None => debug!(%addr, reason, "{what} handshake failed: {why}"),
        }
    }
}

/// The server side of a TLS handshake on `stream`, which must end within
/// `timeout`. A failed one (plaintext, garbage, no common version or
/// cipher, a timeout) is counted and logged; the connection is dropped.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    addr: SocketAddr,
    timeout: Duration,
    handshakes: &Handshakes,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            handshakes.succeeded();
            Some(tls)
        }
        Ok(Err(e)) => {
            let reason = if e.kind() == io::ErrorKind::InvalidData {
                "protocol"
            } else {
                "io"
            };
            handshakes.failed(addr, reason, &e.to_string());
            None
        }
        Err(_) => {
            let why = format!("not complete within {} s", timeout.as_secs_f32());
            handshakes.failed(addr, "timeout", &why);
            None
        }
    }
}

/// Serves one established TLS connection until it closes.
#[allow(clippy::too_many_arguments)]
async fn run<S>(
    stream: S,
    peer: Peer,
    local: Option<std::net::SocketAddr>,
    settings: TcpSettings,
    inbound: mpsc::Sender<Inbound>,
    tx: mpsc::Sender<Vec<u8>>,
    rx: mpsc::Receiver<Vec<u8>>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let addr = peer.addr;
    let (mut rd, wr) = tokio::io::split(stream);
    let mut writer = tokio::spawn(write_loop(wr, rx));
    let mut framer = StreamFramer::new(settings.max_message);
    let close = read_loop(&mut rd, &mut framer, peer, settings, &inbound).await;
    close.log("tls", addr, framer.buffered(), settings.message);
    let refusal = matches!(close, Close::Refused)
        .then(|| local.and_then(|l| framer.refusal(&peer, l)))
        .flatten();
    drop(framer);
    if let Some(resp) = refusal {
        let _ = tx.try_send(resp);
    }
    drop(tx);
    finish(&mut writer, FLUSH).await;
    if matches!(close, Close::Refused) {
        linger(&mut rd).await;
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    framer: &mut StreamFramer,
    peer: Peer,
    settings: TcpSettings,
    inbound: &mpsc::Sender<Inbound>,
) -> Close {
    let mut clock = ConnClock::new(Instant::now(), settings.idle, settings.message);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let deadline = tokio::time::Instant::from_std(clock.deadline());
        let n = match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Err(_) => match clock.expired(Instant::now()) {
                Some(why) => return Close::Expired(why),
                None => continue,
            },
            Ok(Err(e)) => return Close::Failed(e),
            Ok(Ok(0)) => return Close::Eof,
            Ok(Ok(n)) => n,
        };
        framer.push(buf.get(..n).unwrap_or_default());
        let mut completed = false;
        loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(bytes))) => {
                    completed = true;
                    if inbound
                        .send(Inbound::Message { peer, bytes })
                        .await
                        .is_err()
                    {
                        return Close::Shutdown;
                    }
                }
                Ok(Some(Frame::Ping)) => completed = true,
                Ok(None) => break,
                Err(e) => {
                    info!(addr = %peer.addr, "closing tls connection: {e}");
                    return Close::Refused;
                }
            }
        }
        clock.on_read(Instant::now(), completed, framer.buffered() > 0);
    }
}

/// Writes queued messages (each flushed: TLS buffers records) until the
/// queue closes, then closes the TLS session and the write side.
async fn write_loop<W: AsyncWrite>(mut wr: WriteHalf<W>, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if wr.write_all(&bytes).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Reads and discards what the peer still sends after a refusal (bounded
/// in bytes and time), so that the close does not reset the connection
/// before the peer read our answer.
async fn linger<R: AsyncRead>(rd: &mut ReadHalf<R>) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut discarded = 0usize;
    let mut buf = vec![0u8; READ_CHUNK];
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => discarded += n,
        }
    }
}
