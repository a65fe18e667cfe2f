//! SIP over TCP (and the connection handling SIP over TLS shares, see
//! [`super::tls`]): accepts connections within the limits of `ext` (per source
//! address and overall), frames the byte stream into messages (by
//! Content-Length) for the SIP task, and writes responses and requests back
//! on the same connection.
//!
//! A connection is closed when it stays idle (no complete message or
//! keep-alive) for `tcp_idle_seconds`, when a message is not whole within
//! `tcp_message_seconds` of its first byte, and after a message too large
//! to frame, which is answered `413`/`513` first when its head is readable.
//! An idle connection holds no buffer: bytes are read into a stack buffer
//! and only an unfinished message is kept (see [`StreamFramer`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::Ext;
use crate::sip::{ConnClock, ConnId, ConnLimits, Expiry, Frame, Peer, StreamFramer};

use super::sip_server::Inbound;

/// Queued outgoing messages per connection before new ones are dropped.
pub(super) const QUEUE: usize = 256;
/// Bytes read from a socket at a time (into a buffer on the stack).
pub(super) const READ_CHUNK: usize = 8192;
/// How long a closing connection may take to send what is queued.
pub(super) const FLUSH: Duration = Duration::from_secs(2);
/// After refusing a message, how long and how much of the rest of it is
/// read and discarded before closing, so that the refusal is not lost to a
/// reset (a close with unread data sends RST).
pub(super) const LINGER: Duration = Duration::from_secs(2);
pub(super) const LINGER_BYTES: usize = 1024 * 1024;
/// Refused connections are logged at most this often (with a count).
pub(super) const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The TCP limits of `ext`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSettings {
    /// Largest message (headers plus body), bytes.
    pub max_message: usize,
    /// Connections open at once, overall.
    pub max_connections: u32,
    /// Connections open at once from one source address.
    pub max_connections_per_address: u32,
    /// Between messages: no complete message or keep-alive for this long.
    pub idle: Duration,
    /// From the first byte of a message to its last.
    pub message: Duration,
}

impl TcpSettings {
    /// The settings of an instance (`max_message` is the SIP size limit).
    pub fn from_ext(ext: &Ext, max_message: usize) -> Self {
        TcpSettings {
            max_message,
            max_connections: ext.tcp_max_connections,
            max_connections_per_address: ext.tcp_max_connections_per_address,
            idle: Duration::from_secs(u64::from(ext.tcp_idle_seconds)),
            message: Duration::from_secs(u64::from(ext.tcp_message_seconds)),
        }
    }
}

/// The writers of all open connections; cheap to clone.
#[derive(Clone, Default)]
pub struct TcpConns {
    pub(super) writers: Arc<DashMap<u64, mpsc::Sender<Vec<u8>>>>,
    pub(super) next: Arc<AtomicU64>,
}

impl TcpConns {
    /// Queues `bytes` on the TCP or TLS connection of `to` (dropped if it is gone: the
    /// transaction layer's timers decide what happens next).
    pub fn send(&self, to: &Peer, bytes: Vec<u8>) {
        let Some(ConnId(id)) = to.conn else {
            debug!(to = %to.addr, "tcp send without a connection: dropped");
            return;
        };
        // Clone the sender out of the map: no guard is held while sending.
        let writer = self.writers.get(&id).map(|w| w.clone());
        match writer {
            Some(w) => {
                if w.try_send(bytes).is_err() {
                    debug!(to = %to.addr, "tcp connection queue full or closed: dropped");
                }
            }
            None => debug!(to = %to.addr, "tcp connection gone: dropped"),
        }
    }
}

/// One admitted connection's place in the limits, given back on drop.
pub(super) struct Admission {
    pub(super) limits: Arc<Mutex<ConnLimits>>,
    pub(super) ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.ip);
    }
}

impl Admission {
    /// Admits a `what` (`SIP/TCP`, `SIP/TLS`) connection from `addr`
    /// within `limits`, or refuses it: the caller closes it; refusals are
    /// logged through `refused`.
    pub(super) fn take(
        limits: &Arc<Mutex<ConnLimits>>,
        addr: SocketAddr,
        refused: &mut Throttle,
        what: &str,
    ) -> Option<Admission> {
        let admitted = limits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(addr.ip());
        match admitted {
            Ok(()) => Some(Admission {
                limits: limits.clone(),
                ip: addr.ip(),
            }),
            Err(why) => {
                match refused.tick() {
                    Some(n) => warn!(%addr, refused = n, "{what} connection refused: {why}"),
                    None => debug!(%addr, "{what} connection refused: {why}"),
                }
                None
            }
        }
    }
}

/// Logs a kind of event at most every [`REFUSAL_LOG_EVERY`] at `info` or
/// `warn` (with how many happened since), the rest at `debug`.
#[derive(Default)]
pub(super) struct Throttle {
    last: Option<Instant>,
    since: u64,
}

impl Throttle {
    /// Counts one; returns the count to log when it is time to.
    pub(super) fn tick(&mut self) -> Option<u64> {
        self.since += 1;
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
        {
            self.last = Some(now);
            Some(std::mem::take(&mut self.since))
        } else {
            None
        }
    }
}

/// The connection limits of `settings`, one budget for the TCP and the
/// TLS listener together.
pub fn shared_limits(settings: &TcpSettings) -> Arc<Mutex<ConnLimits>> {
    Arc::new(Mutex::new(ConnLimits::new(
        settings.max_connections,
        settings.max_connections_per_address,
    )))
}

/// Accepts connections until the listener fails.
pub async fn accept_loop(
    listener: TcpListener,
    conns: TcpConns,
    inbound: mpsc::Sender<Inbound>,
    settings: TcpSettings,
    limits: Arc<Mutex<ConnLimits>>,
) {
    let mut refused = Throttle::default();
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let Some(admission) = Admission::take(&limits, addr, &mut refused, "SIP/TCP")
                else {
                    drop(stream);
                    continue;
                };
                let id = conns.next.fetch_add(1, Ordering::Relaxed) + 1;
                let (tx, rx) = mpsc::channel(QUEUE);
                conns.writers.insert(id, tx.clone());
                let conns = conns.clone();
                let inbound = inbound.clone();
                tokio::spawn(async move {
                    let conn = Connection {
                        id,
                        peer: Peer::tcp(addr, ConnId(id)),
                        settings,
                        inbound,
                    };
                    conn.run(stream, tx, rx, &conns).await;
                    drop(admission);
                });
            }
            Err(e) => {
                info!("tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a connection ends (TCP and TLS alike).
pub(super) enum Close {
    /// The peer closed it.
    Eof,
    /// Reading failed.
    Failed(io::Error),
    /// Its time ran out.
    Expired(Expiry),
    /// A message could not be framed: refused (maybe answered) and closed.
    Refused,
    /// The SIP task is gone (shutting down).
    Shutdown,
}

impl Close {
    /// Logs why the `transport` (`tcp`, `tls`) connection from `addr`
    /// ends; `buffered` bytes of an unfinished message were held. A
    /// refusal was logged when it happened.
    pub(super) fn log(
        &self,
        transport: &str,
        addr: SocketAddr,
        buffered: usize,
        message: Duration,
    ) {
        match self {
            Close::Eof | Close::Shutdown => debug!(%addr, "{transport} connection closed"),
            Close::Failed(e) => debug!(%addr, "{transport} read: {e}"),
            Close::Expired(Expiry::Idle) => debug!(%addr, "closing idle {transport} connection"),
            Close::Expired(Expiry::UnfinishedMessage) => info!(
                %addr,
                buffered,
                "closing {transport} connection: message not complete within {} s of its first byte",
                message.as_secs()
            ),
            Close::Refused => {}
        }
    }
}

struct Connection {
    id: u64,
    peer: Peer,
    settings: TcpSettings,
    inbound: mpsc::Sender<Inbound>,
}

impl Connection {
    async fn run(
        self,
        stream: TcpStream,
        tx: mpsc::Sender<Vec<u8>>,
        rx: mpsc::Receiver<Vec<u8>>,
        conns: &TcpConns,
    ) {
        let addr = self.peer.addr;
        let local = stream.local_addr().ok();
        let _ = stream.set_nodelay(true);
        let (mut rd, wr) = stream.into_split();
        let mut writer = tokio::spawn(write_loop(wr, rx));
        let mut framer = StreamFramer::new(self.settings.max_message);
        let close = self.read_loop(&rd, &mut framer).await;
        close.log("tcp", addr, framer.buffered(), self.settings.message);
        let refusal = matches!(close, Close::Refused)
            .then(|| local.and_then(|l| framer.refusal(&self.peer, l)))
            .flatten();
        drop(framer);
        // Let what is queued (and the refusal) go out, then close our side.
        if let Some(resp) = refusal {
            let _ = tx.try_send(resp);
        }
        conns.writers.remove(&self.id);
        drop(tx);
        finish(&mut writer, FLUSH).await;
        if matches!(close, Close::Refused) {
            linger(&mut rd).await;
        }
    }

    async fn read_loop(&self, rd: &OwnedReadHalf, framer: &mut StreamFramer) -> Close {
        let mut clock = ConnClock::new(Instant::now(), self.settings.idle, self.settings.message);
        loop {
            let deadline = tokio::time::Instant::from_std(clock.deadline());
            match tokio::time::timeout_at(deadline, rd.readable()).await {
                Err(_) => match clock.expired(Instant::now()) {
                    Some(why) => return Close::Expired(why),
                    None => continue,
                },
                Ok(Err(e)) => return Close::Failed(e),
                Ok(Ok(())) => {}
            }
            match read_chunk(rd, framer) {
                Ok(0) => return Close::Eof,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Close::Failed(e),
            }
            let mut completed = false;
            loop {
                match framer.next_frame() {
                    Ok(Some(Frame::Message(bytes))) => {
                        completed = true;
                        let msg = Inbound::Message {
                            peer: self.peer,
                            bytes,
                        };
                        if self.inbound.send(msg).await.is_err() {
                            return Close::Shutdown;
                        }
                    }
                    Ok(Some(Frame::Ping)) => completed = true,
                    Ok(None) => break,
                    Err(e) => {
                        info!(addr = %self.peer.addr, "closing tcp connection: {e}");
                        return Close::Refused;
                    }
                }
            }
            clock.on_read(Instant::now(), completed, framer.buffered() > 0);
        }
    }
}

/// One read of what the socket has, into a buffer on the stack (an idle
/// connection keeps no read buffer), handed to the framer.
fn read_chunk(rd: &OwnedReadHalf, framer: &mut StreamFramer) -> io::Result<usize> {
    let mut buf = [0u8; READ_CHUNK];
    let n = rd.try_read(&mut buf)?;
    framer.push(buf.get(..n).unwrap_or_default());
    Ok(n)
}

/// Writes queued messages until the queue closes, then closes the write
/// side (FIN).
async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Waits up to `limit` for the writer to drain its queue, else stops it.
pub(super) async fn finish(writer: &mut JoinHandle<()>, limit: Duration) {
    if tokio::time::timeout(limit, &mut *writer).await.is_err() {
        writer.abort();
    }
}

/// Reads and discards what the peer still sends, until it closes, a bound
/// of bytes or time, so that closing does not reset the connection before
/// the peer has read our answer.
async fn linger(rd: &mut OwnedReadHalf) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut discarded = 0usize;
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, rd.readable()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        let mut buf = [0u8; READ_CHUNK];
        match rd.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_logs_the_first_then_counts() {
        let mut t = Throttle::default();
        assert_eq!(t.tick(), Some(1));
        assert_eq!(t.tick(), None);
        assert_eq!(t.tick(), None);
        t.last = Some(Instant::now() - REFUSAL_LOG_EVERY);
        assert_eq!(t.tick(), Some(3));
    }

    #[test]
    fn settings_follow_ext() {
        let ext = Ext::default();
        let s = TcpSettings::from_ext(&ext, 65536);
        assert_eq!(s.max_message, 65536);
        assert_eq!(
            (s.max_connections, s.max_connections_per_address),
            (8192, 64)
        );
        assert_eq!(
            (s.idle, s.message),
            (Duration::from_secs(300), Duration::from_secs(10))
        );
    }
}
