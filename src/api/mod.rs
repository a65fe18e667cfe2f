//! The HTTP management API (axum) on the instance's `iface:http_port`:
//! `/api/v1/...` (Bearer token, JSON), `/healthz`, `/readyz`, `/metrics`
//! (open), and the OpenAPI description at `/api/v1/openapi.json`; the
//! subscribers' web inbox ([`crate::web`]) is merged into the same router.
//!
//! Handlers validate names first (`MailboxId`, message ids, greeting
//! kinds) and run store work on blocking threads through
//! [`crate::mailbox_ops`], the same code as `vmail mailbox`.

mod auth;
mod error;
mod extract;
mod greetings;
mod health;
mod mailboxes;
pub(crate) mod messages;
mod notifications;
mod peer;
mod server;
pub(crate) use server::{HttpsTls, OverTls};
mod site;

pub use auth::token_accepted;
pub use error::{ApiError, ErrorBody};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::mailbox_ops::MAX_GREETING_BYTES;
use crate::runtime::Shared;
use crate::store::{Folder, FsStore, MailboxId};

/// What the handlers share: the running instance (replaced on SIGHUP) and
/// the readiness latch.
#[derive(Clone)]
pub(crate) struct ApiState {
    shared: watch::Receiver<Arc<Shared>>,
    /// SIP is bound and the instance is not stopping.
    sip_ready: Arc<AtomicBool>,
    started: SystemTime,
    openapi: Arc<OnceLock<String>>,
    /// Asks the main task to reload the configuration file; the answer
    /// comes back on the oneshot.
    reload: mpsc::UnboundedSender<ReloadRequest>,
}

/// A reload of the configuration file asked through the API: the answer
/// is `Ok` or every error of the rejected file.
pub(crate) type ReloadRequest = tokio::sync::oneshot::Sender<Result<(), String>>;

impl ApiState {
    /// The running instance's state (the newest configuration).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.borrow().clone()
    }
}

/// Runs store work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// The `{domain}` of a route (the OpenAPI parameter and its extraction).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct DomainPath {
    /// Domain
    #[param(
        max_length = 253,
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
    )]
    pub domain: String,
}

/// The `{domain}` and `{user}` of a mailbox route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MailboxPath {
    /// Domain
    #[param(
        max_length = 253,
        pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
    )]
    pub domain: String,
    /// User part
    #[param(pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$")]
    pub user: String,
}

/// A valid mailbox of a domain this instance's group serves, with the
/// running instance it was checked against.
#[derive(Clone)]
pub(crate) struct Mailbox {
    shared: Arc<Shared>,
    id: MailboxId,
}

impl ApiState {
    /// The mailbox `user` of `domain` ([`mailbox_id`]).
    pub fn mailbox(&self, domain: &str, user: &str) -> Result<Mailbox, ApiError> {
        let shared = self.shared();
        let id = mailbox_id(&shared, domain, user)?;
        Ok(Mailbox { shared, id })
    }
}

impl Mailbox {
    /// Another mailbox `user` of `domain`, checked against the same instance.
    pub fn other(&self, domain: &str, user: &str) -> Result<MailboxId, ApiError> {
        mailbox_id(&self.shared, domain, user)
    }

    /// The mailbox.
    pub fn id(&self) -> &MailboxId {
        &self.id
    }

    /// The peer sites.
    pub fn sites(&self) -> &crate::sites::Sites {
        &self.shared.sites
    }

    /// Where `msg` is kept when `local` (this site's answer) says it is
    /// not here: `Ok(None)` to keep `local`'s answer (found here, another
    /// error, a site-to-site request, no peer site for the domain), else
    /// the peer site holding it and its metadata.
    pub async fn elsewhere<T>(
        &self,
        local: &Result<T, ApiError>,
        msg: &str,
        site_request: bool,
    ) -> Result<Option<(String, crate::store::MessageMeta)>, ApiError> {
        let missing = matches!(local, Err(e) if e.code == "message_not_found");
        if !missing || site_request || !self.shared.sites.has_peers(self.id.domain()) {
            return Ok(None);
        }
        Ok(Some(self.shared.sites.locate(&self.id, msg).await?))
    }

    /// The mailbox's messages of `folder` (every folder with `None`) over
    /// every site serving its domain.
    pub async fn list(&self, folder: Option<Folder>) -> Result<crate::sites::Merged, ApiError> {
        let shared = &self.shared;
        Ok(shared.sites.list(&shared.store, &self.id, folder).await?)
    }

    /// Runs `f` on a blocking thread with the store and the mailbox. The
    /// store tells message-waiting of what changes (its observer).
    pub async fn run<T, E>(
        self,
        f: impl FnOnce(&FsStore, &MailboxId) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError>,
    {
        let store = self.shared.store.clone();
        let id = self.id;
        blocking(move || f(&store, &id).map_err(Into::into)).await
    }
}

/// The mailbox `user` of `domain`, if valid and of a domain this
/// instance's group serves (404 otherwise).
pub(crate) fn mailbox_id(shared: &Shared, domain: &str, user: &str) -> Result<MailboxId, ApiError> {
    let id = MailboxId::new(user, domain)?;
    served(shared, id.domain())?;
    Ok(id)
}

/// 404 unless the group of this instance serves `domain` (normalised);
/// 503 while this instance is not the active one of its group (the answer
/// names the active instance when it is known).
pub(crate) fn served(shared: &Shared, domain: &str) -> Result<(), ApiError> {
    match shared.routing.owner(domain) {
        Some(o) if o.group() == shared.role.group => match not_active(shared) {
            Some(e) => Err(e),
            None => Ok(()),
        },
        other => {
            let e = ApiError::not_found(
                "domain_not_served",
                format!("domain {domain} is not served by this instance's group"),
            );
            // another group of this site serves it: its first instance's
            // API (a passive one names its active in turn)
            let owner = other.and_then(|o| {
                let groups = shared.config.groups();
                let first = groups.get(&o.group())?.instances.first()?;
                Some(format!(
                    "http://{}",
                    std::net::SocketAddr::new(first.addr, first.ext.http_port)
                ))
            });
            Err(match owner {
                Some(url) => e.location(url),
                None => e,
            })
        }
    }
}

/// `https` when the HTTP port serves TLS (`ext.http_tls`; the instances of
/// a group are expected to agree), else `http`.
pub(crate) fn http_scheme(shared: &Shared) -> &'static str {
    if shared.role.ext.http_tls {
        "https"
    } else {
        "http"
    }
}

/// `None` while this instance is the active one of its group; else the
/// 503 answer, naming the active instance when it is known.
pub(crate) fn not_active(shared: &Shared) -> Option<ApiError> {
    if shared.cluster.is_active() {
        return None;
    }
    let active = shared.cluster.standing().active;
    let detail = match &active {
        Some(a) => format!(
            "this instance is passive; the active instance of group {} is {} at {}://{}",
            shared.role.group,
            a.name,
            http_scheme(shared),
            a.http
        ),
        None => format!(
            "this instance is passive and group {} has no active instance right now",
            shared.role.group
        ),
    };
    let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_active", detail)
        .retry_after(shared.cluster.retry_after());
    if let Some(a) = active {
        e = e.location(format!("http://{}", a.http));
    }
    Some(e)
}

/// The OpenAPI description's frame: title, version, the Bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vmail HTTP API",
        description = "Manage mailboxes, messages and greetings of a vmail instance; read its configuration and status."
    ),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    components(schemas(ErrorBody, greetings::Kind, messages::FolderName))
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The router and its OpenAPI description.
pub(crate) fn router(
    shared: watch::Receiver<Arc<Shared>>,
    sip_ready: Arc<AtomicBool>,
    reload: mpsc::UnboundedSender<ReloadRequest>,
) -> (Router, utoipa::openapi::OpenApi) {
    let state = ApiState {
        shared,
        sip_ready,
        started: SystemTime::now(),
        openapi: Arc::new(OnceLock::new()),
        reload,
    };
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(mailboxes::list, mailboxes::create))
        .routes(routes!(
            mailboxes::read,
            mailboxes::update,
            mailboxes::remove
        ))
        .routes(routes!(mailboxes::set_pin))
        .routes(routes!(mailboxes::unlock))
        .routes(routes!(messages::list))
        .routes(routes!(messages::read, messages::update, messages::remove))
        .routes(routes!(messages::audio))
        .routes(routes!(messages::forward))
        .routes(routes!(peer::messages))
        .routes(routes!(peer::counts))
        .routes(routes!(peer::changed))
        .routes(routes!(
            greetings::download,
            greetings::upload,
            greetings::remove
        ))
        .routes(routes!(site::config))
        .routes(routes!(site::reload))
        .routes(routes!(site::validate))
        .routes(routes!(site::route))
        .routes(routes!(site::status))
        .routes(routes!(notifications::list))
        .routes(routes!(site::openapi))
        .split_for_parts();
    let api = api.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    let (open, open_doc) = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .split_for_parts();
    doc.merge(open_doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let _ = state
        .openapi
        .set(doc.to_json().unwrap_or_else(|_| "{}".to_owned()));
    let app = api
        .merge(open)
        .fallback(no_route)
        .route_layer(middleware::from_fn(remember_route))
        .layer(middleware::from_fn(json_errors))
        // The web inbox answers HTML, so it joins after the JSON errors.
        .merge(crate::web::router(state.clone()).route_layer(middleware::from_fn(remember_route)))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .layer(DefaultBodyLimit::max(MAX_GREETING_BYTES))
        .with_state(state);
    (app, doc)
}

/// No route matched: 404, but under `/api/` only with an accepted token
/// (401 otherwise), so unknown API paths tell nothing without one.
async fn no_route(State(state): State<ApiState>, req: Request) -> ApiError {
    if req.uri().path().starts_with("/api/") {
        if let Err(e) = auth::check(&state, &req) {
            return e;
        }
    }
    ApiError::not_found("not_found", "no such route")
}

/// The route pattern a request matched, carried on the response.
#[derive(Clone)]
struct RoutePattern(Arc<str>);

async fn remember_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| Arc::<str>::from(m.as_str()));
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(RoutePattern(r));
    }
    resp
}

/// Counts every request by route pattern and status (`unmatched` for
/// requests that matched no route, so the label set stays bounded).
async fn count_request(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RoutePattern>()
        .map_or("unmatched", |r| &r.0);
    state
        .shared()
        .metrics
        .api_request(route, resp.status().as_u16());
    resp
}

/// Gives every error answer the JSON shape, including those made outside
/// the handlers (wrong method, body over the limit, range not satisfiable).
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    let detail = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than 10 MiB".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("method not allowed on this route (allowed: {allow})")
        }
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let fresh = ApiError::new(status, error::code_of(status), detail).into_response();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        parts
            .headers
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    drop(fresh_parts);
    Response::from_parts(parts, body)
}

/// Serves the API on `addr` until `shutdown` turns true; in-flight
/// requests are finished first.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: watch::Receiver<Arc<Shared>>,
    sip_ready: Arc<AtomicBool>,
    reload: mpsc::UnboundedSender<ReloadRequest>,
    tls: Option<HttpsTls>,
    shutdown: watch::Receiver<bool>,
) {
    let addr = listener
        .local_addr()
        .map_or_else(|e| e.to_string(), |a: SocketAddr| a.to_string());
    if shared.borrow().role.ext.api_tokens.is_empty() {
        tracing::warn!("ext.api_tokens is empty: every /api/ request is answered 401");
    }
    let (app, _) = router(shared, sip_ready.clone(), reload);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "HTTP API listening");
    let ready = sip_ready.clone();
    let mut stopping = shutdown.clone();
    tokio::spawn(async move {
        let _ = stopping.wait_for(|s| *s).await;
        ready.store(false, Ordering::Relaxed);
    });
    server::run(listener, app, tls, shutdown).await;
}
