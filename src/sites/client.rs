//! Requests to one peer site: its instances' URLs in turn (the one that
//! answered last first), following a passive instance's `503 not_active`
//! to the active it names and redirects; a remote message's audio as PCM.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, StatusCode};
use tracing::{debug, warn};

use super::wire::SITE_HEADER;
use super::{RemoteAudio, RemoteError};
use crate::config::PeerSite;

/// Redirects and `not_active` answers followed for one request.
const MAX_HOPS: usize = 3;

/// A peer site as configured, with its HTTP client.
pub(super) struct Peer {
    pub name: String,
    conf: PeerSite,
    /// `None` when the client could not be built (logged): unreachable.
    http: Option<reqwest::Client>,
}

/// One request.
pub(super) struct Req<'a> {
    pub method: Method,
    /// From `/api/v1/...`.
    pub path: &'a str,
    pub body: Option<serde_json::Value>,
    /// `Range`, passed on.
    pub range: Option<&'a str>,
}

impl Peer {
    pub fn new(name: &str, conf: &PeerSite, local: IpAddr, timeout: Duration) -> Peer {
        let mut builder = reqwest::Client::builder()
            .local_address(local)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vmail/", env!("CARGO_PKG_VERSION"), " (site)"));
        if let Some(pem) = &conf.ca_pem {
            match reqwest::Certificate::from_pem_bundle(pem) {
                Ok(certs) => {
                    for c in certs {
                        builder = builder.add_root_certificate(c);
                    }
                }
                Err(e) => warn!(site = name, "CA file of the peer site does not load: {e}"),
            }
        }
        let http = match builder.build() {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(site = name, "no HTTP client for the peer site: {e}");
                None
            }
        };
        Peer {
            name: name.to_owned(),
            conf: conf.clone(),
            http,
        }
    }

    pub fn serves(&self, domain: &str) -> bool {
        self.conf.serves(domain)
    }

    /// Sends `req` to the site's active instance: `preferred` first, then
    /// every configured URL; the answer (a success, or an error that is
    /// the site's word: `NotFound`, `Refused`) and the base URL that gave
    /// it. `Unreachable` when no instance answered as the active one.
    pub async fn send(
        &self,
        own_site: &str,
        req: &Req<'_>,
        preferred: Option<&str>,
    ) -> Result<(reqwest::Response, String), RemoteError> {
        let unreachable = || RemoteError::Unreachable(self.name.clone());
        let http = self.http.as_ref().ok_or_else(unreachable)?;
        let mut bases: Vec<String> = Vec::new();
        for b in preferred
            .into_iter()
            .chain(self.conf.api.iter().map(String::as_str))
        {
            if !bases.iter().any(|x| x == b) {
                bases.push(b.to_owned());
            }
        }
        let auth = HeaderValue::from_str(&format!("Bearer {}", self.conf.token)).map_err(|_| {
            RemoteError::Refused(format!(
                "the token for site {} is not a header value",
                self.name
            ))
        })?;
        for first in bases {
            let mut base = first;
            let mut url = format!("{base}{}", req.path);
            for _ in 0..MAX_HOPS {
                let mut r = http
                    .request(req.method.clone(), &url)
                    .header(AUTHORIZATION, auth.clone())
                    .header(SITE_HEADER, own_site);
                if let Some(range) = req.range {
                    r = r.header(RANGE, range);
                }
                if let Some(body) = &req.body {
                    r = r
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.to_string());
                }
                let resp = match r.send().await {
                    Ok(resp) => resp,
                    // not sent: another instance may take it
                    Err(e) if e.is_connect() => {
                        debug!(site = %self.name, %url, "no connection: {e}");
                        break;
                    }
                    // sent, the answer lost: the outcome is unknown, and a
                    // change is not sent twice
                    Err(e) => {
                        debug!(site = %self.name, %url, "no answer: {e}");
                        return Err(unreachable());
                    }
                };
                let status = resp.status();
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if status.is_redirection() {
                    let Some(next) = location.and_then(|l| join(&url, &l)) else {
                        break;
                    };
                    debug!(site = %self.name, from = %url, to = %next, "redirected");
                    url = next;
                    continue;
                }
                if status.is_success() {
                    return Ok((resp, base));
                }
                let error = read_error(resp).await;
                match (status, error.0.as_str()) {
                    (StatusCode::SERVICE_UNAVAILABLE, "not_active") => {
                        // a passive instance: ask the active it names
                        let Some(active) = location.filter(|l| l.starts_with("http")) else {
                            break;
                        };
                        debug!(site = %self.name, passive = %base, active = %active, "following to the active instance");
                        base = active.trim_end_matches('/').to_owned();
                        url = format!("{base}{}", req.path);
                        continue;
                    }
                    // an instance of another group: the group serving the
                    // domain, when it names it, else the next URL
                    (StatusCode::NOT_FOUND, "domain_not_served") => {
                        let Some(owner) = location.filter(|l| l.starts_with("http")) else {
                            break;
                        };
                        debug!(site = %self.name, other = %base, owner = %owner, "following to the group serving the domain");
                        base = owner.trim_end_matches('/').to_owned();
                        url = format!("{base}{}", req.path);
                        continue;
                    }
                    // no such route there (not a vmail, or an older one)
                    (StatusCode::NOT_FOUND, "not_found") => break,
                    // a read may be asked elsewhere; a change that failed
                    // there is not sent again
                    (s, _) if s.is_server_error() && req.method == Method::GET => {
                        debug!(site = %self.name, %url, status = s.as_u16(), detail = %error.1, "peer instance failed");
                        break;
                    }
                    (StatusCode::SERVICE_UNAVAILABLE, _) => return Err(unreachable()),
                    (StatusCode::NOT_FOUND, _) => return Err(RemoteError::NotFound),
                    (StatusCode::UNAUTHORIZED, _) => {
                        warn!(site = %self.name, "peer site refused the token of sites.{}", self.name);
                        return Err(RemoteError::Refused(format!(
                            "site {} refused this site's token",
                            self.name
                        )));
                    }
                    (s, _) => {
                        return Err(RemoteError::Refused(format!(
                            "site {} refused ({}): {}",
                            self.name,
                            s.as_u16(),
                            error.1
                        )))
                    }
                }
            }
        }
        Err(unreachable())
    }
}

/// `location` relative to `url`.
fn join(url: &str, location: &str) -> Option<String> {
    let next = reqwest::Url::parse(url).ok()?.join(location).ok()?;
    matches!(next.scheme(), "http" | "https").then(|| next.to_string())
}

/// The `error` and `detail` of an error answer (empty when it is not the
/// API's JSON).
async fn read_error(resp: reqwest::Response) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
        #[serde(default)]
        detail: String,
    }
    let bytes = tokio::time::timeout(Duration::from_secs(2), resp.bytes()).await;
    match bytes {
        Ok(Ok(b)) => serde_json::from_slice::<Body>(&b)
            .map(|b| (b.error, b.detail))
            .unwrap_or_default(),
        _ => Default::default(),
    }
}

/// A remote WAV's samples as they arrive: waits for the 44-byte header,
/// then a task turns the body into PCM chunks (a chunk that does not
/// arrive within 10 × `timeout` ends the stream, logged).
pub(super) async fn pcm_stream(
    mut resp: reqwest::Response,
    site: &str,
    timeout: Duration,
) -> Result<RemoteAudio, RemoteError> {
    let unreachable = || RemoteError::Unreachable(site.to_owned());
    let mut head: Vec<u8> = Vec::with_capacity(64);
    while head.len() < 44 {
        match tokio::time::timeout(timeout, resp.chunk()).await {
            Ok(Ok(Some(b))) => head.extend_from_slice(&b),
            Ok(Ok(None)) => {
                return Err(RemoteError::Refused(format!(
                    "site {site} sent an audio file shorter than its header"
                )))
            }
            _ => return Err(unreachable()),
        }
    }
    let sample_rate = crate::store::wav::parse_rate(&head).ok_or_else(|| {
        RemoteError::Refused(format!("site {site} sent audio that is not vmail's WAV"))
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let site = site.to_owned();
    let mut rest = head.split_off(44);
    tokio::spawn(async move {
        let stall = timeout.saturating_mul(10);
        loop {
            let whole = rest.len() & !1;
            if whole > 0 {
                let pcm: Vec<i16> = rest[..whole]
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect();
                rest.drain(..whole);
                if tx.send(pcm).await.is_err() {
                    return; // the listener hung up
                }
            }
            match tokio::time::timeout(stall, resp.chunk()).await {
                Ok(Ok(Some(b))) => rest.extend_from_slice(&b),
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    warn!(%site, "remote audio cut off: {e}");
                    return;
                }
                Err(_) => {
                    warn!(%site, "remote audio stalled: cut off");
                    return;
                }
            }
        }
    });
    Ok(RemoteAudio {
        sample_rate,
        chunks: rx,
    })
}
