//! The subscribers' web inbox, served on the HTTP port next to the API:
//! log in with mailbox address and PIN, list, play, download, mark,
//! move, delete and forward messages (50 a page), manage greetings, change
//! the PIN and the mailbox's own settings.
//!
//! Pages are rendered on the server ([`pages`], maud: every value is
//! escaped); `static/app.js` adds playing-marks-heard, delete with undo
//! and recording in the browser, `static/app.css` the looks. Both are
//! compiled into the binary. Every operation is one of
//! [`crate::mailbox_ops`], the same code as the API's; PIN logins are the
//! phone's ([`crate::runtime::pin_login`]): the same lockout state, the
//! same hashing pool, the same per-source limit as access-number calls.
//!
//! Security: sessions are random 256-bit ids in this process's memory
//! ([`session`]), in an HttpOnly SameSite=Strict cookie; every POST
//! carries a CSRF token (the session's, or before login a token signed by
//! this process and also set in a cookie) compared in constant time; every
//! answer carries a Content-Security-Policy without inline script or style,
//! `nosniff`, `no-referrer` and `no-store`. A message or greeting is only
//! ever looked up in the logged-in mailbox: another mailbox's id is 404.

pub mod i18n;
mod pages;
pub mod session;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use maud::Markup;
use rand::RngCore;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::api::{self, ApiError, ApiState};
use crate::mailbox_ops::{self as ops, OpError, PinRule, MAX_GREETING_BYTES};
use crate::runtime::pin_login::{self, PinLogin, PoolLogin};
use crate::runtime::Shared;
use crate::store::{
    validate_message_id, Attach, Folder, GreetingKind, MailboxId, MessageMeta, StoreError,
};
use i18n::Lang;
use pages::{Paging, PinNote, Row, SettingsChoices, SettingsNote, SettingsValues, Who};
use session::{Session, Sessions, MAX_SESSIONS};

/// The session cookie.
pub const SESSION_COOKIE: &str = "vmail_session";
/// The pre-session CSRF cookie of the login form.
pub const CSRF_COOKIE: &str = "vmail_csrf";
/// The header scripts send the CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";
/// A failed login is answered no sooner than this after it arrived, so
/// that a wrong PIN, an unknown mailbox, a locked one and a malformed
/// address take the same time (the hash of a PIN takes less).
pub const LOGIN_FAILURE_TIME: Duration = Duration::from_millis(1000);
/// Seconds a login refused because the hashing queue is full should wait.
const BUSY_RETRY_SECONDS: u64 = 5;
/// Messages on one page of a folder (newest first).
pub const PAGE_SIZE: usize = 50;
/// The highest page number read from a request (more is the last page).
const MAX_PAGE: usize = 1_000_000;
/// The longest PIN hashed; a longer one is checked as an empty PIN (a
/// failure counted like any other).
const MAX_PIN_LEN: usize = 64;

/// The Content-Security-Policy of every answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
media-src 'self' blob:; img-src 'self' data:; frame-ancestors 'none'; \
form-action 'self'; base-uri 'none'";

const APP_JS: &str = include_str!("static/app.js");
const APP_CSS: &str = include_str!("static/app.css");

/// What the web handlers share.
#[derive(Clone)]
struct Web {
    api: ApiState,
    sessions: Arc<Sessions>,
    /// Signs the pre-session CSRF tokens (random per process).
    key: Arc<[u8; 32]>,
}

/// The web inbox's routes, to merge into the API's router.
pub(crate) fn router(api: ApiState) -> Router<ApiState> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let web = Web {
        api,
        sessions: Arc::new(Sessions::new(MAX_SESSIONS)),
        key: Arc::new(key),
    };
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/inbox", get(inbox))
        .route("/messages/{id}/audio", get(message_audio))
        .route("/messages/{id}/heard", post(heard))
        .route("/messages/{id}/move", post(move_message))
        .route("/messages/{id}/delete", post(delete_message))
        .route("/messages/{id}/forward", post(forward_message))
        .route("/greetings", get(greetings))
        .route(
            "/greetings/{kind}",
            // The file plus the form's other fields.
            post(upload_greeting).layer(DefaultBodyLimit::max(MAX_GREETING_BYTES + 64 * 1024)),
        )
        .route("/greetings/{kind}/audio", get(greeting_audio))
        .route("/greetings/{kind}/delete", post(delete_greeting))
        .route("/settings", get(settings).post(save_settings))
        .route("/pin", post(set_pin))
        .route("/static/app.js", get(app_js))
        .route("/static/app.css", get(app_css))
        .layer(middleware::from_fn(security_headers))
        .with_state(web)
}

/// The security headers of every answer of the web inbox.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let cache = if is_static { "no-cache" } else { "no-store" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

// ----- answers -----

fn html(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn retry_after(mut resp: Response, secs: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// A cookie of this site: HttpOnly, SameSite=Strict, Path=/, `Secure`
/// when the HTTP port serves TLS (`ext.http_tls`).
fn cookie(name: &str, value: &str, tls: bool, clear: bool) -> String {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if tls {
        c.push_str("; Secure");
    }
    if clear {
        c.push_str("; Max-Age=0");
    }
    c
}

/// Whether the request came over TLS on this port (marked by the
/// listener).
fn over_tls(extensions: &axum::http::Extensions) -> bool {
    extensions.get::<api::OverTls>().is_some()
}

/// The value of the cookie `name`.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The language of the pages before login: `ext.language`.
fn site_lang(shared: &Shared) -> Lang {
    Lang::of(&shared.role.ext.language)
}

/// 503 on a passive instance: a page naming the active instance.
fn passive_page(shared: &Shared) -> Option<Response> {
    let e = api::not_active(shared)?;
    let lang = site_lang(shared);
    let t = lang.t();
    let link = shared
        .cluster
        .standing()
        .active
        .map(|a| format!("{}://{}/", api::http_scheme(shared), a.http));
    let page = pages::message(
        lang,
        "passive",
        t.passive,
        Some(&e.detail),
        match &link {
            Some(l) => (l.as_str(), l.as_str()),
            None => ("/", t.to_login),
        },
    );
    let secs = e.retry_after.unwrap_or(1);
    Some(retry_after(
        html(StatusCode::SERVICE_UNAVAILABLE, page),
        secs,
    ))
}

fn csrf_refused(lang: Lang) -> Response {
    let t = lang.t();
    tracing::info!("web request refused: no valid CSRF token");
    html(
        StatusCode::FORBIDDEN,
        pages::message(
            lang,
            "csrf-error",
            t.csrf_error,
            None,
            ("/login", t.to_login),
        ),
    )
}

fn not_found(lang: Lang) -> Response {
    let t = lang.t();
    html(
        StatusCode::NOT_FOUND,
        pages::message(lang, "not-found", t.not_found, None, ("/inbox", t.back)),
    )
}

/// An operation's failure as a page.
fn failure(lang: Lang, e: ApiError) -> Response {
    let t = lang.t();
    match e.status {
        StatusCode::NOT_FOUND => not_found(lang),
        StatusCode::SERVICE_UNAVAILABLE if e.code == "site_unreachable" => {
            let page = pages::message(
                lang,
                "site-unreachable",
                t.site_unreachable,
                None,
                ("/inbox", t.back),
            );
            retry_after(
                html(StatusCode::SERVICE_UNAVAILABLE, page),
                e.retry_after.unwrap_or(10),
            )
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            let secs = e.retry_after.unwrap_or(1);
            let page = pages::message(
                lang,
                "passive",
                t.passive,
                Some(&e.detail),
                ("/", t.to_login),
            );
            retry_after(html(StatusCode::SERVICE_UNAVAILABLE, page), secs)
        }
        s => {
            if s.is_server_error() {
                tracing::warn!(status = s.as_u16(), detail = %e.detail, "web request failed");
            }
            html(
                s,
                pages::message(lang, "failed", t.failed, None, ("/inbox", t.back)),
            )
        }
    }
}

// ----- the logged-in context -----

/// A request of a logged-in browser.
struct Ctx {
    shared: Arc<Shared>,
    session: Session,
    sid: String,
    lang: Lang,
    zone: crate::config::TimeZone,
}

impl Ctx {
    fn who(&self) -> (String, &str) {
        (self.session.mailbox.to_string(), self.session.csrf.as_str())
    }

    fn mailbox(&self) -> MailboxId {
        self.session.mailbox.clone()
    }

    /// Runs `f` on a blocking thread with the store and the mailbox.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&crate::store::FsStore, &MailboxId) -> Result<T, OpError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.shared.store.clone();
        let id = self.mailbox();
        api::blocking(move || f(&store, &id).map_err(ApiError::from)).await
    }
}

/// Why there is no logged-in context.
enum NoCtx {
    /// No (live) session: log in.
    Login(Lang),
    /// Answer this.
    Answer(Response),
}

impl NoCtx {
    /// For a page: the login page.
    fn page(self) -> Response {
        match self {
            NoCtx::Login(_) => see_other("/login"),
            NoCtx::Answer(r) => r,
        }
    }

    /// For a change: a POST without a session has no valid token.
    fn change(self) -> Response {
        match self {
            NoCtx::Login(lang) => csrf_refused(lang),
            NoCtx::Answer(r) => r,
        }
    }
}

impl Web {
    fn idle(shared: &Shared) -> Duration {
        Duration::from_secs(u64::from(shared.role.ext.web_session_seconds))
    }

    /// The logged-in browser's context: the instance must be active and
    /// the session alive; the mailbox's language and time zone are read.
    async fn ctx(&self, headers: &HeaderMap) -> Result<Ctx, NoCtx> {
        let shared = self.api.shared();
        if let Some(r) = passive_page(&shared) {
            return Err(NoCtx::Answer(r));
        }
        let lang = site_lang(&shared);
        let Some(sid) = cookie_value(headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(NoCtx::Login(lang));
        };
        let Some(session) = self
            .sessions
            .touch(&sid, Instant::now(), Self::idle(&shared))
        else {
            return Err(NoCtx::Login(lang));
        };
        let store = shared.store.clone();
        let id = session.mailbox.clone();
        let settings = api::blocking(move || store.mailbox(&id).map_err(ApiError::from)).await;
        let settings = match settings {
            Ok(Some(m)) => m.settings,
            Ok(None) => {
                // The mailbox was removed: the session ends with it.
                self.sessions.remove(&sid);
                return Err(NoCtx::Login(lang));
            }
            Err(e) => return Err(NoCtx::Answer(failure(lang, e))),
        };
        let lang = settings.language.as_deref().map_or(lang, Lang::of);
        let zone = settings
            .timezone
            .as_deref()
            .and_then(crate::config::parse_timezone)
            .unwrap_or_else(|| shared.role.ext.time_zone());
        Ok(Ctx {
            shared,
            session,
            sid,
            lang,
            zone,
        })
    }

    /// [`Web::ctx`] for a change: the CSRF token (form field or header)
    /// must be the session's.
    async fn change_ctx(&self, headers: &HeaderMap, field: Option<&str>) -> Result<Ctx, Response> {
        let ctx = self.ctx(headers).await.map_err(NoCtx::change)?;
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(field)
            .unwrap_or("");
        if same(sent, &ctx.session.csrf) {
            Ok(ctx)
        } else {
            Err(csrf_refused(ctx.lang))
        }
    }

    /// [`Web::change_ctx`] for a form that carries its CSRF token: the
    /// context and the form (`None` when it could not be read).
    async fn form_ctx<F: CsrfField>(
        &self,
        headers: &HeaderMap,
        form: Result<Form<F>, FormRejection>,
    ) -> Result<(Ctx, Option<F>), Response> {
        let form = form.ok().map(|Form(f)| f);
        let ctx = self
            .change_ctx(headers, form.as_ref().and_then(CsrfField::csrf))
            .await?;
        Ok((ctx, form))
    }

    /// A pre-session CSRF token: a random nonce and its MAC.
    fn login_token(&self) -> String {
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let nonce = session::hex(&nonce);
        let mac = self.mac(&nonce);
        format!("{nonce}.{mac}")
    }

    fn mac(&self, nonce: &str) -> String {
        match <Blake2bMac<U32> as KeyInit>::new_from_slice(&self.key[..]) {
            Ok(mut m) => {
                m.update(nonce.as_bytes());
                session::hex(&m.finalize().into_bytes())
            }
            // A 32-byte key always fits; never a usable MAC otherwise.
            Err(_) => String::new(),
        }
    }

    /// Whether `token` is one this process signed.
    fn login_token_valid(&self, token: &str) -> bool {
        let Some((nonce, mac)) = token.split_once('.') else {
            return false;
        };
        let want = self.mac(nonce);
        nonce.len() == 32 && !want.is_empty() && same(mac, &want)
    }
}

/// A request that changes something from a script (not a form): answered
/// 204 instead of a redirect.
fn from_script(headers: &HeaderMap) -> bool {
    headers.contains_key(CSRF_HEADER)
}

// ----- login -----

async fn root(State(web): State<Web>, headers: HeaderMap) -> Response {
    match web.ctx(&headers).await {
        Ok(_) => see_other("/inbox"),
        Err(n) => n.page(),
    }
}

/// The login form, with a fresh pre-session token unless the browser holds
/// a valid one.
fn login_form(
    web: &Web,
    headers: &HeaderMap,
    tls: bool,
    lang: Lang,
    status: StatusCode,
    mailbox: &str,
    error: bool,
) -> Response {
    let (token, fresh) = match cookie_value(headers, CSRF_COOKIE) {
        Some(t) if web.login_token_valid(t) => (t.to_owned(), false),
        _ => (web.login_token(), true),
    };
    let resp = html(status, pages::login(lang, &token, mailbox, error));
    if fresh {
        with_cookie(resp, &cookie(CSRF_COOKIE, &token, tls, false))
    } else {
        resp
    }
}

async fn login_page(State(web): State<Web>, req: Request) -> Response {
    let headers = req.headers();
    match web.ctx(headers).await {
        Ok(_) => see_other("/inbox"),
        Err(NoCtx::Answer(r)) => r,
        Err(NoCtx::Login(lang)) => {
            let tls = over_tls(req.extensions());
            login_form(&web, headers, tls, lang, StatusCode::OK, "", false)
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    mailbox: String,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(web): State<Web>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    tls: Option<Extension<api::OverTls>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let start = tokio::time::Instant::now();
    let shared = web.api.shared();
    if let Some(r) = passive_page(&shared) {
        return r;
    }
    let lang = site_lang(&shared);
    let tls = tls.is_some();
    let ip = peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(a))| a.ip(),
    );
    let Ok(Form(form)) = form else {
        return csrf_refused(lang);
    };
    // The pre-session token: signed here, the same in cookie and form.
    let cookie_token = cookie_value(&headers, CSRF_COOKIE).unwrap_or("");
    if !(web.login_token_valid(cookie_token) && same(cookie_token, &form.csrf)) {
        return csrf_refused(lang);
    }
    let address = form.mailbox.trim().to_owned();
    let refuse = |status: StatusCode| login_form(&web, &headers, tls, lang, status, &address, true);
    if let Err(secs) = shared.access_call(ip) {
        return retry_after(refuse(StatusCode::TOO_MANY_REQUESTS), secs.max(1));
    }
    let mut pin = form.pin;
    if pin.len() > MAX_PIN_LEN {
        pin.clear();
    }
    // `user@domain` of a domain this group serves; anything else fails
    // like a wrong PIN, after the same time.
    let target = address
        .rsplit_once('@')
        .filter(|(u, d)| !u.is_empty() && api::served(&shared, d).is_ok())
        .map(|(u, d)| (u.to_owned(), d.to_owned()));
    let outcome = match target {
        Some((user, domain)) => {
            pin_login::pooled_login(&shared, domain, user, pin, ip.to_string()).await
        }
        None => {
            tracing::warn!(peer = %ip, "web PIN login failed: not a mailbox address of this group");
            PoolLogin::Done(PinLogin::NoSuchMailbox)
        }
    };
    match outcome {
        PoolLogin::Done(PinLogin::Ok(li)) => {
            let sid = web
                .sessions
                .create(li.mailbox, Instant::now(), Web::idle(&shared));
            with_cookie(
                see_other("/inbox"),
                &cookie(SESSION_COOKIE, &sid, tls, false),
            )
        }
        PoolLogin::Busy => {
            tokio::time::sleep_until(start + LOGIN_FAILURE_TIME).await;
            retry_after(refuse(StatusCode::SERVICE_UNAVAILABLE), BUSY_RETRY_SECONDS)
        }
        PoolLogin::Done(_) => {
            tokio::time::sleep_until(start + LOGIN_FAILURE_TIME).await;
            refuse(StatusCode::UNAUTHORIZED)
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// A form with a CSRF token field.
trait CsrfField {
    fn csrf(&self) -> Option<&str>;
}

macro_rules! csrf_field {
    ($($form:ty),*) => {$(
        impl CsrfField for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        }
    )*};
}
csrf_field!(CsrfForm, MessageForm, SettingsForm, PinForm);

async fn logout(
    State(web): State<Web>,
    tls: Option<Extension<api::OverTls>>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let (ctx, _) = match web.form_ctx(&headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    web.sessions.remove(&ctx.sid);
    tracing::info!(mailbox = %ctx.session.mailbox, "web logout");
    with_cookie(
        see_other("/login"),
        &cookie(SESSION_COOKIE, "", tls.is_some(), true),
    )
}

// ----- messages -----

#[derive(Deserialize)]
struct InboxQuery {
    folder: Option<String>,
    page: Option<String>,
    note: Option<String>,
}

/// A page number as sent (`1`, `2`, ...); anything else is the first.
fn page_of(page: Option<&str>) -> usize {
    page.and_then(|p| p.trim().parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .map_or(1, |n| n.min(MAX_PAGE))
}

/// The page `asked` of `total` items, `per_page` each: the page shown
/// (the last one when `asked` is beyond it) and the range of its items.
fn paging(total: usize, asked: usize, per_page: usize) -> (Paging, std::ops::Range<usize>) {
    let pages = total.div_ceil(per_page).max(1);
    let page = asked.clamp(1, pages);
    let start = (page - 1) * per_page;
    let end = (start + per_page).min(total);
    (Paging { page, pages }, start.min(total)..end)
}

/// A folder by its exact directory name (`INBOX`, `Old`, `Work`, ...).
fn folder_of(name: Option<&str>) -> Option<Folder> {
    let name = name?;
    Folder::ALL.into_iter().find(|f| f.dir_name() == name)
}

/// Where a form goes back to: the folder (and page) it came from.
fn back_to(from: Option<&str>, page: Option<&str>, note: &str) -> String {
    let folder = folder_of(from).unwrap_or(Folder::Inbox).dir_name();
    match page_of(page) {
        1 => format!("/inbox?folder={folder}&note={note}"),
        n => format!("/inbox?folder={folder}&page={n}&note={note}"),
    }
}

/// The caller as shown: the display name and the URI's user part.
fn caller(m: &MessageMeta, unknown: &str) -> String {
    let uri = m.caller_uri.trim();
    let bare = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    let user = bare.split(['@', ';']).next().unwrap_or("").trim();
    let name = m.caller_name.as_deref().map(str::trim).unwrap_or("");
    match (name.is_empty(), user.is_empty()) {
        (true, true) => unknown.to_owned(),
        (true, false) => user.to_owned(),
        (false, true) => name.to_owned(),
        (false, false) if name == user => user.to_owned(),
        (false, false) => format!("{name} <{user}>"),
    }
}

/// RFC 3339 UTC as `YYYY-MM-DD HH:MM` in `zone`, with the offset in force
/// then (unparsable: as is).
fn local_time(rfc3339: &str, zone: &crate::config::TimeZone) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| zone.local(t).format(&fmt).ok())
        .unwrap_or_else(|| rfc3339.to_owned())
}

async fn inbox(
    State(web): State<Web>,
    headers: HeaderMap,
    q: Result<Query<InboxQuery>, QueryRejection>,
) -> Response {
    let ctx = match web.ctx(&headers).await {
        Ok(c) => c,
        Err(n) => return n.page(),
    };
    let (folder, asked, note) = match q.ok() {
        Some(Query(q)) => (
            folder_of(q.folder.as_deref()).unwrap_or(Folder::Inbox),
            page_of(q.page.as_deref()),
            q.note,
        ),
        None => (Folder::Inbox, 1, None),
    };
    // every site's messages, each once
    let listed = ctx
        .shared
        .sites
        .list(&ctx.shared.store, &ctx.mailbox(), None)
        .await
        .map_err(ApiError::from);
    let merged = match listed {
        Ok(x) => x,
        Err(e) => return failure(ctx.lang, e),
    };
    let counts: Vec<(Folder, usize)> = Folder::ALL
        .into_iter()
        .map(|f| {
            (
                f,
                merged
                    .messages
                    .iter()
                    .filter(|m| m.meta.folder == f)
                    .count(),
            )
        })
        .collect();
    let mut items: Vec<MessageMeta> = merged
        .messages
        .into_iter()
        .filter(|m| m.meta.folder == folder)
        .map(|m| m.meta)
        .collect();
    // newest first
    items.sort_by(|a, b| b.id.cmp(&a.id));
    let partial = !merged.unreachable.is_empty();
    let (paging, range) = paging(items.len(), asked, PAGE_SIZE);
    let t = ctx.lang.t();
    let rows: Vec<Row> = items[range]
        .iter()
        .map(|m| Row {
            id: m.id.clone(),
            caller: caller(m, t.unknown_caller),
            urgent: m.urgent,
            heard: m.heard,
            received_utc: m.received.clone(),
            received_local: local_time(&m.received, &ctx.zone),
            duration_ms: m.duration_ms,
        })
        .collect();
    let (mailbox, csrf) = ctx.who();
    let who = Who {
        mailbox: &mailbox,
        csrf,
    };
    html(
        StatusCode::OK,
        pages::inbox(
            ctx.lang,
            &who,
            folder,
            &counts,
            &rows,
            paging,
            note.as_deref(),
            partial,
        ),
    )
}

#[derive(Deserialize)]
struct AudioQuery {
    download: Option<String>,
}

async fn message_audio(
    State(web): State<Web>,
    Path(msg): Path<String>,
    q: Result<Query<AudioQuery>, QueryRejection>,
    req: Request,
) -> Response {
    let ctx = match web.ctx(req.headers()).await {
        Ok(c) => c,
        Err(n) => return n.page(),
    };
    if validate_message_id(&msg).is_err() {
        return not_found(ctx.lang);
    }
    let m = msg.clone();
    let path = ctx
        .run(move |store, id| {
            Ok(store
                .message_audio_path(id, &m)?
                .ok_or(crate::store::StoreError::NotFound { what: "message" })?)
        })
        .await;
    let served = match path {
        Ok(path) => {
            let missing = ApiError::not_found("message_not_found", "message not found");
            api::messages::serve_wav(path, req, missing).await
        }
        // not here: streamed from the site that keeps it
        Err(e) if e.code == "message_not_found" => {
            let range = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            remote_audio(&ctx, &msg, range.as_deref())
                .await
                .unwrap_or(Err(e))
        }
        Err(e) => Err(e),
    };
    let mut resp = match served {
        Ok(r) => r,
        Err(e) => return failure(ctx.lang, e),
    };
    let download = q
        .ok()
        .is_some_and(|Query(q)| q.download.as_deref() == Some("1"));
    if download && resp.status().is_success() {
        // The id is letters, digits, `.`, `_` and `-` only.
        let v = format!("attachment; filename=\"voicemail-{msg}.wav\"");
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    resp
}

/// A message kept at a peer site, streamed through; `None` when no peer
/// site serves the domain.
async fn remote_audio(
    ctx: &Ctx,
    msg: &str,
    range: Option<&str>,
) -> Option<Result<Response, ApiError>> {
    let sites = ctx.shared.sites.clone();
    let id = ctx.mailbox();
    if !sites.has_peers(id.domain()) {
        return None;
    }
    let r = async {
        let (site, _) = sites.locate(&id, msg).await?;
        let resp = sites.audio_response(&site, &id, msg, range).await?;
        Ok::<_, crate::sites::RemoteError>(api::messages::pass_through(resp))
    };
    Some(r.await.map_err(ApiError::from))
}

#[derive(Deserialize)]
struct MessageForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    heard: Option<String>,
    #[serde(default)]
    folder: Option<String>,
    #[serde(default)]
    to: Option<String>,
}

/// What a message form asks.
enum MessageChange {
    Heard,
    Move,
    Delete,
    Forward,
}

async fn heard(
    web: State<Web>,
    msg: Path<String>,
    headers: HeaderMap,
    form: Result<Form<MessageForm>, FormRejection>,
) -> Response {
    change_message(web, msg, headers, form, MessageChange::Heard).await
}

async fn move_message(
    web: State<Web>,
    msg: Path<String>,
    headers: HeaderMap,
    form: Result<Form<MessageForm>, FormRejection>,
) -> Response {
    change_message(web, msg, headers, form, MessageChange::Move).await
}

async fn delete_message(
    web: State<Web>,
    msg: Path<String>,
    headers: HeaderMap,
    form: Result<Form<MessageForm>, FormRejection>,
) -> Response {
    change_message(web, msg, headers, form, MessageChange::Delete).await
}

async fn forward_message(
    web: State<Web>,
    msg: Path<String>,
    headers: HeaderMap,
    form: Result<Form<MessageForm>, FormRejection>,
) -> Response {
    change_message(web, msg, headers, form, MessageChange::Forward).await
}

async fn change_message(
    State(web): State<Web>,
    Path(msg): Path<String>,
    headers: HeaderMap,
    form: Result<Form<MessageForm>, FormRejection>,
    change: MessageChange,
) -> Response {
    let (ctx, form) = match web.form_ctx(&headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if validate_message_id(&msg).is_err() {
        return not_found(ctx.lang);
    }
    let from = form.as_ref().and_then(|f| f.from.clone());
    let from_page = form.as_ref().and_then(|f| f.page.clone());
    let script = from_script(&headers);
    let done = |note: &str| {
        if script {
            StatusCode::NO_CONTENT.into_response()
        } else {
            see_other(&back_to(from.as_deref(), from_page.as_deref(), note))
        }
    };
    let m = msg.clone();
    let intent;
    let result = match change {
        MessageChange::Heard => {
            // Heard goes from INBOX to Old, like the phone (a message saved
            // in another folder stays there); unheard back to INBOX.
            let heard = form.as_ref().and_then(|f| f.heard.as_deref()) != Some("false");
            intent = Intent::Heard(heard);
            ctx.run(move |s, id| {
                let now_in = ops::message(s, id, &m)?.folder;
                let folder = match (heard, now_in) {
                    (true, Folder::Inbox) => Some(Folder::Old),
                    (true, _) => None,
                    (false, _) => Some(Folder::Inbox),
                };
                ops::update_message(s, id, &m, Some(heard), folder).map(drop)
            })
            .await
            .map(|()| "heard")
        }
        MessageChange::Move => {
            let Some(folder) = folder_of(form.as_ref().and_then(|f| f.folder.as_deref())) else {
                return failure(
                    ctx.lang,
                    ApiError::bad_request(
                        "invalid_folder",
                        "folder must be INBOX, Old, Work, Family, Friends or Cust1 to Cust5",
                    ),
                );
            };
            intent = Intent::Move(folder);
            ctx.run(move |s, id| ops::update_message(s, id, &m, None, Some(folder)).map(drop))
                .await
                .map(|()| "moved")
        }
        MessageChange::Delete => {
            intent = Intent::Delete;
            ctx.run(move |s, id| ops::delete_message(s, id, &m))
                .await
                .map(|()| "deleted")
        }
        MessageChange::Forward => {
            let to = form
                .as_ref()
                .and_then(|f| f.to.as_deref())
                .map(str::trim)
                .unwrap_or("");
            // A user of the same domain; an address with `@` names that
            // domain's user too, nothing else.
            let user = match to.rsplit_once('@') {
                Some((u, d))
                    if MailboxId::new(u, d).ok().as_ref().map(MailboxId::domain)
                        == Some(ctx.session.mailbox.domain()) =>
                {
                    u
                }
                Some(_) => "",
                None => to,
            };
            let Ok(target) = MailboxId::new(user, ctx.session.mailbox.domain()) else {
                return if script {
                    StatusCode::BAD_REQUEST.into_response()
                } else {
                    see_other(&back_to(
                        from.as_deref(),
                        from_page.as_deref(),
                        "forward-failed",
                    ))
                };
            };
            intent = Intent::Forward(target.clone());
            let r = ctx
                .run(move |s, id| {
                    // The message first: another mailbox's id is 404.
                    ops::message(s, id, &m)?;
                    ops::forward_message(s, id, &m, &target).map(drop)
                })
                .await;
            match r {
                Ok(()) => Ok("forwarded"),
                // The message is there (checked first): the target is not.
                Err(e) if e.code == "mailbox_not_found" => Ok("forward-failed"),
                Err(e) => Err(e),
            }
        }
    };
    // not here: the site that keeps it applies the change
    let result = match result {
        Err(e) if e.code == "message_not_found" => {
            remote_change(&ctx, &msg, intent).await.unwrap_or(Err(e))
        }
        other => other,
    };
    match result {
        Ok(note) => {
            tracing::info!(mailbox = %ctx.session.mailbox, message = %msg, note, "web change");
            done(note)
        }
        Err(e) => failure(ctx.lang, e),
    }
}

/// A change asked through a message form.
enum Intent {
    Heard(bool),
    Move(Folder),
    Delete,
    Forward(MailboxId),
}

/// `intent` applied to the message `msg` at the peer site that keeps it;
/// `None` when no peer site serves the domain.
async fn remote_change(
    ctx: &Ctx,
    msg: &str,
    intent: Intent,
) -> Option<Result<&'static str, ApiError>> {
    let sites = ctx.shared.sites.clone();
    let id = ctx.mailbox();
    if !sites.has_peers(id.domain()) {
        return None;
    }
    let r = async {
        let (site, meta) = sites.locate(&id, msg).await?;
        Ok(match intent {
            Intent::Heard(heard) => {
                let folder = match (heard, meta.folder) {
                    (true, Folder::Inbox) => Some(Folder::Old),
                    (true, _) => None,
                    (false, _) => Some(Folder::Inbox),
                };
                sites.update(&site, &id, msg, Some(heard), folder).await?;
                "heard"
            }
            Intent::Move(folder) => {
                sites.move_to(&site, &id, msg, folder).await?;
                "moved"
            }
            Intent::Delete => {
                sites.delete(&site, &id, msg).await?;
                "deleted"
            }
            // the message was found: a 404 now is the target's
            Intent::Forward(to) => match sites.forward(&site, &id, msg, &to).await {
                Ok(()) => "forwarded",
                Err(crate::sites::RemoteError::NotFound) => "forward-failed",
                Err(e) => return Err(e),
            },
        })
    };
    Some(r.await.map_err(ApiError::from))
}

// ----- greetings -----

/// A greeting kind as the pages and routes name it.
pub(crate) fn kind_name(k: GreetingKind) -> &'static str {
    match k {
        GreetingKind::Unavailable => "unavail",
        GreetingKind::Busy => "busy",
        GreetingKind::Temporary => "temp",
        GreetingKind::Name => "name",
    }
}

fn kind_of(name: &str) -> Option<GreetingKind> {
    GreetingKind::ALL
        .into_iter()
        .find(|k| kind_name(*k) == name)
}

#[derive(Deserialize)]
struct NoteQuery {
    note: Option<String>,
}

async fn greetings(
    State(web): State<Web>,
    headers: HeaderMap,
    q: Result<Query<NoteQuery>, QueryRejection>,
) -> Response {
    let ctx = match web.ctx(&headers).await {
        Ok(c) => c,
        Err(n) => return n.page(),
    };
    let set = ctx
        .run(|store, id| {
            GreetingKind::ALL
                .into_iter()
                .map(|k| Ok((k, store.greeting_path(id, k)?.is_some())))
                .collect::<Result<Vec<_>, OpError>>()
        })
        .await;
    let set = match set {
        Ok(s) => s,
        Err(e) => return failure(ctx.lang, e),
    };
    let note = q.ok().and_then(|Query(q)| q.note);
    let (mailbox, csrf) = ctx.who();
    let who = Who {
        mailbox: &mailbox,
        csrf,
    };
    html(
        StatusCode::OK,
        pages::greetings(ctx.lang, &who, &set, note.as_deref()),
    )
}

async fn greeting_audio(
    State(web): State<Web>,
    Path(kind): Path<String>,
    req: Request,
) -> Response {
    let ctx = match web.ctx(req.headers()).await {
        Ok(c) => c,
        Err(n) => return n.page(),
    };
    let Some(kind) = kind_of(&kind) else {
        return not_found(ctx.lang);
    };
    let path = ctx
        .run(move |store, id| {
            Ok(store
                .greeting_path(id, kind)?
                .ok_or(crate::store::StoreError::NotFound { what: "greeting" })?)
        })
        .await;
    let path = match path {
        Ok(p) => p,
        Err(e) => return failure(ctx.lang, e),
    };
    let missing = ApiError::not_found("greeting_not_found", "greeting not found");
    match api::messages::serve_wav(path, req, missing).await {
        Ok(r) => r,
        Err(e) => failure(ctx.lang, e),
    }
}

async fn upload_greeting(
    State(web): State<Web>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    // The session first: nothing is read for a browser without one.
    let ctx = match web.ctx(&headers).await {
        Ok(c) => c,
        Err(n) => return n.change(),
    };
    let script = from_script(&headers);
    let mut csrf: Option<String> = None;
    let mut file: Option<Vec<u8>> = None;
    let mut bad_body = false;
    match multipart {
        Ok(mut mp) => loop {
            match mp.next_field().await {
                Ok(Some(field)) => match field.name() {
                    Some("csrf") => csrf = field.text().await.ok(),
                    Some("file") => match field.bytes().await {
                        Ok(b) => file = Some(b.to_vec()),
                        Err(_) => {
                            bad_body = true;
                            break;
                        }
                    },
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => {
                    bad_body = true;
                    break;
                }
            }
        },
        Err(_) => bad_body = true,
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(csrf.as_deref())
        .unwrap_or("");
    if !same(sent, &ctx.session.csrf) {
        return csrf_refused(ctx.lang);
    }
    let Some(kind) = kind_of(&kind) else {
        return not_found(ctx.lang);
    };
    let failed = |status: StatusCode| {
        if script {
            status.into_response()
        } else {
            see_other("/greetings?note=greeting-failed")
        }
    };
    let Some(bytes) = file.filter(|_| !bad_body) else {
        tracing::info!(mailbox = %ctx.session.mailbox, "web greeting upload refused: no readable file");
        return failed(StatusCode::BAD_REQUEST);
    };
    let r = ctx
        .run(move |s, id| ops::store_greeting(s, id, kind, bytes))
        .await;
    match r {
        Ok(()) => {
            tracing::info!(mailbox = %ctx.session.mailbox, kind = kind_name(kind), "web greeting stored");
            if script {
                StatusCode::NO_CONTENT.into_response()
            } else {
                see_other("/greetings?note=greeting-saved")
            }
        }
        Err(e) if matches!(e.code, "not_audio" | "payload_too_large" | "invalid_value") => {
            tracing::info!(mailbox = %ctx.session.mailbox, detail = %e.detail, "web greeting upload refused");
            failed(e.status)
        }
        Err(e) => failure(ctx.lang, e),
    }
}

async fn delete_greeting(
    State(web): State<Web>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let (ctx, _) = match web.form_ctx(&headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(kind) = kind_of(&kind) else {
        return not_found(ctx.lang);
    };
    let r = ctx
        .run(move |s, id| match ops::delete_greeting(s, id, kind) {
            // Already gone: what was asked is true.
            Err(OpError::Store(e)) if e.is_not_found() && s.mailbox(id)?.is_some() => Ok(()),
            other => other,
        })
        .await;
    match r {
        Ok(()) => see_other("/greetings?note=greeting-deleted"),
        Err(e) => failure(ctx.lang, e),
    }
}

// ----- settings -----

/// What the settings form shows for stored settings.
fn values_of(s: &crate::store::MailboxSettings) -> SettingsValues {
    SettingsValues {
        display_name: s.display_name.clone().unwrap_or_default(),
        language: s.language.clone().unwrap_or_default(),
        timezone: s.timezone.clone().unwrap_or_default(),
        email: s.email.clone().unwrap_or_default(),
        attach: attach_name(s.attach.unwrap_or(Attach::Wav)).to_owned(),
        delete_after_send: s.delete_after_send,
    }
}

fn attach_name(a: Attach) -> &'static str {
    match a {
        Attach::None => "none",
        Attach::Wav => "wav",
        Attach::Opus => "opus",
    }
}

/// The mailbox's settings as stored (`NotFound` if it is gone).
fn stored_settings(
    store: &crate::store::FsStore,
    id: &MailboxId,
) -> Result<crate::store::MailboxSettings, OpError> {
    Ok(store
        .mailbox(id)?
        .ok_or(StoreError::NotFound { what: "mailbox" })?
        .settings)
}

/// The languages a subscriber may choose: the prompt set's, and the
/// mailbox's own when it is another (set through the API).
fn languages(shared: &Shared, own: Option<&str>) -> Vec<String> {
    let mut all = shared.prompts.languages();
    if let Some(l) = own.filter(|l| !l.is_empty() && !all.iter().any(|a| a == l)) {
        all.push(l.to_owned());
    }
    all
}

/// The settings page: the stored values unless `shown` (a refused form,
/// shown again as sent).
async fn settings_page(
    ctx: &Ctx,
    status: StatusCode,
    shown: Option<SettingsValues>,
    note: SettingsNote,
    pin_note: PinNote,
) -> Response {
    let stored = ctx.run(stored_settings).await;
    let stored = match stored {
        Ok(s) => s,
        Err(e) => return failure(ctx.lang, e),
    };
    let languages = languages(&ctx.shared, stored.language.as_deref());
    let values = shown.unwrap_or_else(|| values_of(&stored));
    let ext = &ctx.shared.role.ext;
    let choices = SettingsChoices {
        languages: &languages,
        default_language: &ext.language,
        default_timezone: &ext.timezone,
    };
    let (mailbox, csrf) = ctx.who();
    let who = Who {
        mailbox: &mailbox,
        csrf,
    };
    html(
        status,
        pages::settings(ctx.lang, &who, &values, &choices, note, pin_note),
    )
}

async fn settings(
    State(web): State<Web>,
    headers: HeaderMap,
    q: Result<Query<NoteQuery>, QueryRejection>,
) -> Response {
    let ctx = match web.ctx(&headers).await {
        Ok(c) => c,
        Err(n) => return n.page(),
    };
    let (note, pin_note) = match q.ok().and_then(|Query(q)| q.note).as_deref() {
        Some("pin-changed") => (SettingsNote::None, PinNote::Changed),
        Some("settings-saved") => (SettingsNote::Saved, PinNote::None),
        _ => (SettingsNote::None, PinNote::None),
    };
    settings_page(&ctx, StatusCode::OK, None, note, pin_note).await
}

/// The settings form. A text field not sent is left as it is, an empty
/// one clears the setting (the default applies); the check box is off
/// when not sent, as browsers send it.
#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    attach: Option<String>,
    #[serde(default)]
    delete_after_send: Option<String>,
}

/// Why the settings form was refused.
#[derive(Debug)]
enum Refusal {
    /// Not a zone vmail knows (as sent).
    Timezone(String),
    /// A language the prompts do not have.
    Language,
    /// Not one of the attachment kinds.
    Attach,
    /// The store's rule for this setting.
    Invalid(&'static str),
}

impl Refusal {
    fn text(&self, t: &i18n::Texts) -> String {
        match self {
            Refusal::Timezone(z) => format!("{} {z}", t.bad_timezone),
            Refusal::Language => t.bad_language.to_owned(),
            Refusal::Attach => t.bad_attach.to_owned(),
            Refusal::Invalid("email") => t.bad_email.to_owned(),
            Refusal::Invalid("display_name") => t.bad_display_name.to_owned(),
            Refusal::Invalid("language") => t.bad_language.to_owned(),
            Refusal::Invalid(_) => t.failed.to_owned(),
        }
    }
}

/// A form value: trimmed, `None` when empty.
fn setting(v: &str) -> Option<String> {
    Some(v.trim()).filter(|v| !v.is_empty()).map(str::to_owned)
}

async fn save_settings(
    State(web): State<Web>,
    headers: HeaderMap,
    form: Result<Form<SettingsForm>, FormRejection>,
) -> Response {
    let (ctx, form) = match web.form_ctx(&headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(form) = form else {
        return failure(ctx.lang, ApiError::bad_request("invalid_form", "bad form"));
    };
    let attach = match form.attach.as_deref().map(str::trim) {
        None => None,
        Some(a) => match Attach::parse(a) {
            Some(a) => Some(a),
            None => {
                let shown = shown_values(&form);
                return refuse_settings(&ctx, shown, Refusal::Attach).await;
            }
        },
    };
    let prompt_languages = ctx.shared.prompts.languages();
    let change = form_change(&form, attach);
    let zone_sent = form.timezone.as_deref().unwrap_or("").trim().to_owned();
    let r = ctx
        .run(move |store, id| {
            let current = stored_settings(store, id)?;
            if let Some(Some(l)) = &change.language {
                if !prompt_languages.contains(l) && current.language.as_ref() != Some(l) {
                    return Ok(Err(Refusal::Language));
                }
            }
            let updated = ops::update(store, id, |s| change.apply(s));
            match updated {
                Ok(m) => Ok(Ok(m)),
                Err(OpError::UnknownTimezone(z)) => Ok(Err(Refusal::Timezone(z))),
                Err(OpError::Store(StoreError::InvalidValue {
                    what: "timezone", ..
                })) => Ok(Err(Refusal::Timezone(zone_sent))),
                Err(OpError::Store(StoreError::InvalidValue { what, .. })) => {
                    Ok(Err(Refusal::Invalid(what)))
                }
                Err(e) => Err(e),
            }
        })
        .await;
    match r {
        Ok(Ok(m)) => {
            let s = &m.settings;
            tracing::info!(
                mailbox = %ctx.session.mailbox,
                language = s.language.as_deref().unwrap_or(""),
                timezone = s.timezone.as_deref().unwrap_or(""),
                email = s.email.is_some(),
                attach = attach_name(s.attach.unwrap_or(Attach::Wav)),
                delete_after_send = s.delete_after_send,
                "mailbox settings changed on the web"
            );
            see_other("/settings?note=settings-saved")
        }
        Ok(Err(refusal)) => refuse_settings(&ctx, shown_values(&form), refusal).await,
        Err(e) => failure(ctx.lang, e),
    }
}

/// The settings a form asks for: `None` leaves one as it is.
fn form_change(f: &SettingsForm, attach: Option<Attach>) -> ops::SettingsChange {
    let text = |v: &Option<String>| v.as_deref().map(setting);
    ops::SettingsChange {
        display_name: text(&f.display_name),
        language: text(&f.language),
        timezone: text(&f.timezone),
        email: text(&f.email),
        attach: attach.map(Some),
        delete_after_send: Some(f.delete_after_send.is_some()),
        ..ops::SettingsChange::default()
    }
}

/// The form as sent, to show it again after a refusal.
fn shown_values(f: &SettingsForm) -> SettingsValues {
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or("").to_owned();
    SettingsValues {
        display_name: text(&f.display_name),
        language: text(&f.language),
        timezone: text(&f.timezone),
        email: text(&f.email),
        attach: text(&f.attach),
        delete_after_send: f.delete_after_send.is_some(),
    }
}

/// 400: the settings page with the form as sent and why it was refused;
/// nothing changed.
async fn refuse_settings(ctx: &Ctx, shown: SettingsValues, refusal: Refusal) -> Response {
    tracing::info!(mailbox = %ctx.session.mailbox, ?refusal, "web settings change refused");
    let text = refusal.text(ctx.lang.t());
    settings_page(
        ctx,
        StatusCode::BAD_REQUEST,
        Some(shown),
        SettingsNote::Refused(text),
        PinNote::None,
    )
    .await
}

#[derive(Deserialize)]
struct PinForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    pin: String,
    #[serde(default)]
    pin2: String,
}

async fn set_pin(
    State(web): State<Web>,
    headers: HeaderMap,
    form: Result<Form<PinForm>, FormRejection>,
) -> Response {
    let (ctx, form) = match web.form_ctx(&headers, form).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (pin, pin2) = form.map(|f| (f.pin, f.pin2)).unwrap_or_default();
    let refused = |note: PinNote| {
        settings_page(
            &ctx,
            StatusCode::BAD_REQUEST,
            None,
            SettingsNote::None,
            note,
        )
    };
    if pin != pin2 {
        return refused(PinNote::Mismatch).await;
    }
    if pin.len() > MAX_PIN_LEN {
        return refused(PinNote::NotAllowed).await;
    }
    // The hash runs in the PIN pool, like the phone's PIN change.
    let store = ctx.shared.store.clone();
    let id = ctx.mailbox();
    let r = pin_login::pooled(&ctx.shared, move || {
        ops::set_pin(&store, &id, &pin, PinRule::Phone)
    })
    .await;
    match r {
        Some(Ok(())) => {
            tracing::info!(mailbox = %ctx.session.mailbox, "PIN changed on the web");
            see_other("/settings?note=pin-changed")
        }
        Some(Err(OpError::PinNotAllowed)) => refused(PinNote::NotAllowed).await,
        Some(Err(e)) => failure(ctx.lang, e.into()),
        None => failure(ctx.lang, ApiError::internal("PIN change task failed")),
    }
}

/// The body of a response, for the unit tests.
#[cfg(test)]
async fn body_text(resp: Response) -> String {
    let b = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    String::from_utf8_lossy(&b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uri: &str, name: Option<&str>) -> MessageMeta {
        let mut m: MessageMeta = serde_json::from_str("{}").expect("defaults");
        m.caller_uri = uri.into();
        m.caller_name = name.map(Into::into);
        m
    }

    #[test]
    fn callers_show_name_and_number() {
        assert_eq!(caller(&meta("sip:1002@x.ru", None), "?"), "1002");
        assert_eq!(
            caller(&meta("sip:1002@x.ru", Some("Ann")), "?"),
            "Ann <1002>"
        );
        assert_eq!(caller(&meta("", None), "?"), "?");
        assert_eq!(caller(&meta("tel:+7495;x=1", Some("+7495")), "?"), "+7495");
    }

    #[test]
    fn times_follow_the_zone() {
        let msk = crate::config::TimeZone::parse("+03:00").expect("offset");
        assert_eq!(local_time("2026-12-07T21:30:00Z", &msk), "2026-12-08 00:30");
        assert_eq!(local_time("garbage", &msk), "garbage");
        // Daylight saving time: the offset of each message's own instant
        // (CET in winter, CEST in summer).
        let paris = crate::config::TimeZone::parse("Europe/Paris").expect("Europe/Paris");
        let both = ["2026-07-01T10:00:00Z", "2026-12-01T10:00:00Z"].map(|t| local_time(t, &paris));
        assert_eq!(both, ["2026-07-01 12:00", "2026-12-01 11:00"]);
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; vmail_session=abc ; b=2"),
        );
        assert_eq!(cookie_value(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, CSRF_COOKIE), None);
        let c = cookie(SESSION_COOKIE, "abc", false, false);
        assert_eq!(c, "vmail_session=abc; HttpOnly; SameSite=Strict; Path=/");
        assert!(cookie(SESSION_COOKIE, "", true, true).ends_with("; Secure; Max-Age=0"));
    }

    #[test]
    fn back_links_name_only_known_folders() {
        assert_eq!(
            back_to(Some("Old"), None, "moved"),
            "/inbox?folder=Old&note=moved"
        );
        assert_eq!(
            back_to(Some("/evil"), Some("x&y"), "moved"),
            "/inbox?folder=INBOX&note=moved"
        );
        assert_eq!(
            back_to(Some("Work"), Some("3"), "deleted"),
            "/inbox?folder=Work&page=3&note=deleted"
        );
    }

    #[test]
    fn pages_hold_fifty_newest_first_and_clamp() {
        assert_eq!(page_of(None), 1);
        assert_eq!(page_of(Some("0")), 1);
        assert_eq!(page_of(Some("-2")), 1);
        assert_eq!(page_of(Some("2")), 2);
        assert_eq!(page_of(Some("99999999999999999999999")), 1);
        let (p, r) = paging(60, 1, 50);
        assert_eq!((p, r), (Paging { page: 1, pages: 2 }, 0..50));
        let (p, r) = paging(60, 2, 50);
        assert_eq!((p, r), (Paging { page: 2, pages: 2 }, 50..60));
        // Beyond the end: the last page.
        let (p, r) = paging(60, 7, 50);
        assert_eq!((p, r), (Paging { page: 2, pages: 2 }, 50..60));
        let (p, r) = paging(0, 3, 50);
        assert_eq!((p, r), (Paging::ONE, 0..0));
        let (p, r) = paging(100, 2, 50);
        assert_eq!((p, r), (Paging { page: 2, pages: 2 }, 50..100));
    }

    #[tokio::test]
    async fn static_files_are_compiled_in() {
        let js = body_text(app_js().await).await;
        assert!(js.contains("ended"));
        let css = body_text(app_css().await).await;
        assert!(!css.is_empty());
    }
}
