//! SIP over TCP: accepts connections, frames the byte stream into messages
//! (by Content-Length) for the SIP task, and writes responses and requests
//! back on the same connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::sip::{ConnId, Peer, StreamFramer, Transport};

use super::sip_server::Inbound;

/// Idle connections are closed after this long without a byte.
const IDLE: Duration = Duration::from_secs(300);
/// Queued outgoing messages per connection before new ones are dropped.
const QUEUE: usize = 256;
/// Open connections beyond which new ones are closed at once.
const MAX_CONNECTIONS: usize = 8192;

/// The writers of all open connections; cheap to clone.
#[derive(Clone, Default)]
pub struct TcpConns {
    writers: Arc<DashMap<u64, mpsc::Sender<Vec<u8>>>>,
    next: Arc<AtomicU64>,
}

impl TcpConns {
    /// Queues `bytes` on the connection of `to` (dropped if it is gone: the
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

/// Accepts connections until the listener fails.
pub async fn accept_loop(
    listener: TcpListener,
    conns: TcpConns,
    inbound: mpsc::Sender<Inbound>,
    max_message: usize,
) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if conns.writers.len() >= MAX_CONNECTIONS {
                    info!(%addr, "too many SIP/TCP connections: refused");
                    drop(stream);
                    continue;
                }
                let id = conns.next.fetch_add(1, Ordering::Relaxed) + 1;
                let (tx, rx) = mpsc::channel(QUEUE);
                conns.writers.insert(id, tx);
                let conns = conns.clone();
                let inbound = inbound.clone();
                tokio::spawn(async move {
                    connection(stream, addr, ConnId(id), rx, inbound, max_message).await;
                    conns.writers.remove(&id);
                });
            }
            Err(e) => {
                info!("tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    id: ConnId,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
    max_message: usize,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(bytes) = outgoing.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    let mut framer = StreamFramer::new(max_message);
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match tokio::time::timeout(IDLE, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                debug!(%addr, "tcp read: {e}");
                break;
            }
        };
        let Some(chunk) = buf.get(..n) else { break };
        framer.push(chunk);
        loop {
            match framer.next_message() {
                Ok(Some(bytes)) => {
                    let peer = Peer {
                        transport: Transport::Tcp,
                        addr,
                        conn: Some(id),
                    };
                    if inbound
                        .send(Inbound::Message { peer, bytes })
                        .await
                        .is_err()
                    {
                        writer.abort();
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    info!(%addr, "closing tcp connection: {e}");
                    writer.abort();
                    return;
                }
            }
        }
    }
    writer.abort();
}
