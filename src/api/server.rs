//! The HTTP/1.1 accept loop: a bound on open connections and on the time a
//! client may take to send its request headers (a slow client cannot hold
//! sockets or tasks open without end), and a graceful stop. With
//! `ext.http_tls` every connection starts with a TLS handshake (same
//! certificate as SIP over TLS, replaced on reload for new connections),
//! which must end within [`HEADER_TIMEOUT`]; responses then carry HSTS.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::runtime::tls::{handshake, Handshakes, TlsCerts};

/// Most HTTP connections open at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request's headers (and, over TLS, to
/// finish the handshake).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `Strict-Transport-Security` of every HTTPS response (RFC 6797): one
/// year.
const HSTS: &str = "max-age=31536000";

/// Marks a request that came over TLS on this port (a request extension):
/// the web inbox's cookies are then `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// The HTTP port's TLS: the certificate in use and the handshake counters.
#[derive(Clone)]
pub struct HttpsTls {
    pub certs: TlsCerts,
    pub handshakes: Arc<Handshakes>,
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until
/// `shutdown` turns true, then lets the requests in flight finish (idle
/// connections are closed).
pub async fn run(
    listener: TcpListener,
    app: Router,
    tls: Option<HttpsTls>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection closed: {MAX_CONNECTIONS} already open");
            continue;
        };
        let over_tls = tls.is_some();
        // The client's address, for the handlers that limit per source.
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    if over_tls {
                        req.extensions_mut().insert(OverTls);
                    }
                    req
                })
                .map_response(move |mut resp: axum::response::Response| {
                    if over_tls {
                        resp.headers_mut().insert(
                            header::STRICT_TRANSPORT_SECURITY,
                            HeaderValue::from_static(HSTS),
                        );
                    }
                    resp
                }),
        );
        let stop = shutdown.clone();
        let tls = tls
            .as_ref()
            .map(|t| (t.certs.acceptor(), t.handshakes.clone()));
        conns.spawn(async move {
            let _slot = slot;
            match tls {
                None => serve_connection(stream, peer, service, stop).await,
                Some((acceptor, handshakes)) => {
                    let handshake = handshake(&acceptor, stream, peer, HEADER_TIMEOUT, &handshakes);
                    if let Some(stream) = handshake.await {
                        serve_connection(stream, peer, service, stop).await;
                    }
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
    while conns.join_next().await.is_some() {}
}

/// Serves the requests of one connection; on `stop`, the one in flight is
/// finished and the connection closed.
async fn serve_connection<S, Svc>(
    stream: S,
    peer: std::net::SocketAddr,
    service: Svc,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::HttpService<hyper::body::Incoming>,
    Svc::ResBody: 'static,
    <Svc::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "HTTP connection ended: {e}");
    }
}

/// Returns once `rx` says stop (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
