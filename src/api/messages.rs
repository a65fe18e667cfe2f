//! `/api/v1/domains/{domain}/mailboxes/{user}/messages...`: list by
//! folder, metadata, audio (with `Range`), heard/unheard, move, delete,
//! forward.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{Json, Path, Query};
use super::mailboxes::PageQuery;
use super::{ApiError, ApiState, MailboxPath};
use crate::mailbox_ops as ops;
use crate::sites::Home;
use crate::store::{validate_message_id, Folder, MessageMeta};

/// A folder as the API names it: Asterisk's folders under their directory
/// names (the phone menu's keys 0 to 9 in this order).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
pub enum FolderName {
    /// New messages.
    #[serde(rename = "INBOX")]
    Inbox,
    /// Heard messages.
    Old,
    /// Saved: work.
    Work,
    /// Saved: family.
    Family,
    /// Saved: friends.
    Friends,
    /// Saved: custom folder 1 (key 5).
    Cust1,
    /// Saved: custom folder 2 (key 6).
    Cust2,
    /// Saved: custom folder 3 (key 7).
    Cust3,
    /// Saved: custom folder 4 (key 8).
    Cust4,
    /// Saved: custom folder 5 (key 9).
    Cust5,
}

impl From<FolderName> for Folder {
    fn from(f: FolderName) -> Folder {
        match f {
            FolderName::Inbox => Folder::Inbox,
            FolderName::Old => Folder::Old,
            FolderName::Work => Folder::Work,
            FolderName::Family => Folder::Family,
            FolderName::Friends => Folder::Friends,
            FolderName::Cust1 => Folder::Cust1,
            FolderName::Cust2 => Folder::Cust2,
            FolderName::Cust3 => Folder::Cust3,
            FolderName::Cust4 => Folder::Cust4,
            FolderName::Cust5 => Folder::Cust5,
        }
    }
}

impl From<Folder> for FolderName {
    fn from(f: Folder) -> FolderName {
        match f {
            Folder::Inbox => FolderName::Inbox,
            Folder::Old => FolderName::Old,
            Folder::Work => FolderName::Work,
            Folder::Family => FolderName::Family,
            Folder::Friends => FolderName::Friends,
            Folder::Cust1 => FolderName::Cust1,
            Folder::Cust2 => FolderName::Cust2,
            Folder::Cust3 => FolderName::Cust3,
            Folder::Cust4 => FolderName::Cust4,
            Folder::Cust5 => FolderName::Cust5,
        }
    }
}

/// A message's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    /// Message id (sorts by time).
    pub id: String,
    pub folder: FolderName,
    /// Caller's URI.
    pub caller_uri: String,
    pub caller_name: Option<String>,
    /// The URI that was called.
    pub called_uri: String,
    /// `busy`, `unavailable` or `unknown`.
    pub cause: String,
    /// When the recording began, RFC 3339.
    pub received: String,
    pub duration_ms: u64,
    /// Codec the caller sent (`PCMU`, `PCMA`, `G722`, `G729`, `opus`).
    pub codec: String,
    pub heard: bool,
    pub urgent: bool,
    /// Completed by recovery after a crash.
    pub recovered: bool,
    /// Mailbox that forwarded it here.
    pub forwarded_by: Option<String>,
    /// Sample rate of the WAV: 8000, or 16000 for G.722 and Opus calls.
    pub sample_rate: u32,
    /// Instance that recorded it.
    pub instance: String,
    /// Site that keeps it (where the call came in).
    pub site: String,
}

impl From<MessageMeta> for MessageBody {
    fn from(m: MessageMeta) -> Self {
        MessageBody {
            id: m.id,
            folder: m.folder.into(),
            caller_uri: m.caller_uri,
            caller_name: m.caller_name,
            called_uri: m.called_uri,
            cause: m.cause,
            received: m.received,
            duration_ms: m.duration_ms,
            codec: m.codec,
            heard: m.heard,
            urgent: m.urgent,
            recovered: m.recovered,
            forwarded_by: m.forwarded_by,
            sample_rate: m.sample_rate,
            instance: m.instance,
            site: m.site,
        }
    }
}

/// Which messages to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// `INBOX` (default), `Old`, `Work`, `Family`, `Friends`, `Cust1` to
    /// `Cust5`.
    pub folder: Option<FolderName>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub items: Vec<MessageBody>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Some site serving the domain did not answer: its messages are
    /// missing from the listing (`unreachable` names it).
    pub partial: bool,
    /// The sites that did not answer.
    pub unreachable: Vec<String>,
}

/// Whether the request comes from a peer site (the site-to-site header):
/// such a request is answered from this site's store only.
fn from_site(headers: &HeaderMap) -> bool {
    headers.contains_key(crate::sites::SITE_HEADER)
}

/// The `{id}` of a message route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessageIdPath {
    /// Message id
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    id: String,
}

fn message_id(msg: &str) -> Result<(), ApiError> {
    validate_message_id(msg).map_err(ApiError::from)
}

/// Lists the messages of a folder, oldest first, a page at a time: those
/// of every site serving the domain, each once (`partial` when a site did
/// not answer).
#[utoipa::path(get, path = "/api/v1/domains/{domain}/mailboxes/{user}/messages", tag = "messages",
    params(MailboxPath, MessageQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessageList),
        (status = 400, description = "Invalid name or query", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    headers: HeaderMap,
    Query(q): Query<MessageQuery>,
) -> Result<Json<MessageList>, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    let limit = PageQuery {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let folder: Folder = q.folder.unwrap_or(FolderName::Inbox).into();
    if from_site(&headers) {
        let page = mailbox
            .run(move |store, id| ops::messages(store, id, folder, q.cursor.as_deref(), limit))
            .await?;
        return Ok(Json(MessageList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next,
            partial: false,
            unreachable: Vec::new(),
        }));
    }
    let here = mailbox.sites().site().to_owned();
    let merged = mailbox.list(Some(folder)).await?;
    let mut all = merged.messages;
    all.sort_by(|a, b| a.meta.id.cmp(&b.meta.id));
    let page = ops::page(all, |m| m.meta.id.clone(), q.cursor.as_deref(), limit);
    let items = page
        .items
        .into_iter()
        .map(|m| {
            let site = match m.home {
                Home::Local => here.clone(),
                Home::Remote(s) => s,
            };
            MessageBody {
                site,
                ..m.meta.into()
            }
        })
        .collect();
    Ok(Json(MessageList {
        items,
        next_cursor: page.next,
        partial: !merged.unreachable.is_empty(),
        unreachable: merged.unreachable,
    }))
}

/// A message's metadata.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/mailboxes/{user}/messages/{id}", tag = "messages",
    params(MailboxPath, MessageIdPath),
    responses(
        (status = 200, description = "The message", body = MessageBody),
        (status = 400, description = "Invalid name or id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or message", body = ErrorBody),
        (status = 502, description = "The site keeping the message refused the change (`site_refused`)", body = ErrorBody),
        (status = 503, description = "The site keeping the message cannot be reached (`site_unreachable`; nothing changed), or this instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn read(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Path(MessageIdPath { id: msg }): Path<MessageIdPath>,
    headers: HeaderMap,
) -> Result<Json<MessageBody>, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    message_id(&msg)?;
    let m = msg.clone();
    let local = mailbox
        .clone()
        .run(move |store, id| ops::message(store, id, &m))
        .await;
    if let Some((_, meta)) = mailbox.elsewhere(&local, &msg, from_site(&headers)).await? {
        return Ok(Json(meta.into()));
    }
    Ok(Json(local?.into()))
}

/// A change of a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageChange {
    /// Mark heard (`true`) or unheard (`false`).
    pub heard: Option<bool>,
    /// Move to this folder (any of them).
    pub folder: Option<FolderName>,
}

/// Marks a message heard or unheard and/or moves it between folders.
#[utoipa::path(patch, path = "/api/v1/domains/{domain}/mailboxes/{user}/messages/{id}", tag = "messages",
    params(MailboxPath, MessageIdPath),
    request_body = MessageChange,
    responses(
        (status = 200, description = "The message after the change", body = MessageBody),
        (status = 400, description = "Invalid name or id; bad JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or message", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 502, description = "The site keeping the message refused the change (`site_refused`)", body = ErrorBody),
        (status = 503, description = "The site keeping the message cannot be reached (`site_unreachable`; nothing changed), or this instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn update(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Path(MessageIdPath { id: msg }): Path<MessageIdPath>,
    headers: HeaderMap,
    Json(change): Json<MessageChange>,
) -> Result<Json<MessageBody>, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    message_id(&msg)?;
    let (heard, folder) = (change.heard, change.folder.map(Folder::from));
    let m = msg.clone();
    let local = mailbox
        .clone()
        .run(move |store, id| ops::update_message(store, id, &m, heard, folder))
        .await;
    if let Some((site, _)) = mailbox.elsewhere(&local, &msg, from_site(&headers)).await? {
        let meta = mailbox
            .sites()
            .update(&site, mailbox.id(), &msg, heard, folder)
            .await?;
        return Ok(Json(meta.into()));
    }
    Ok(Json(local?.into()))
}

/// Deletes a message. A call playing it finishes playing its copy.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/mailboxes/{user}/messages/{id}", tag = "messages",
    params(MailboxPath, MessageIdPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid name or id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or message", body = ErrorBody),
        (status = 502, description = "The site keeping the message refused the change (`site_refused`)", body = ErrorBody),
        (status = 503, description = "The site keeping the message cannot be reached (`site_unreachable`; nothing changed), or this instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn remove(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Path(MessageIdPath { id: msg }): Path<MessageIdPath>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    message_id(&msg)?;
    let m = msg.clone();
    let local = mailbox
        .clone()
        .run(move |store, id| ops::delete_message(store, id, &m))
        .await;
    if let Some((site, _)) = mailbox.elsewhere(&local, &msg, from_site(&headers)).await? {
        mailbox.sites().delete(&site, mailbox.id(), &msg).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    local?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where to forward a message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// The user part of a mailbox of the same domain.
    #[schema(pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$")]
    pub to: String,
}

/// Copies a message into another mailbox of the domain as a new, unheard
/// message.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/mailboxes/{user}/messages/{id}/forward", tag = "messages",
    params(MailboxPath, MessageIdPath),
    request_body = Forward,
    responses(
        (status = 201, description = "The new message in the other mailbox", body = MessageBody),
        (status = 400, description = "Invalid name or id; bad JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or message", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 502, description = "The site keeping the message refused the change (`site_refused`)", body = ErrorBody),
        (status = 503, description = "The site keeping the message cannot be reached (`site_unreachable`; nothing changed), or this instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn forward(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Path(MessageIdPath { id: msg }): Path<MessageIdPath>,
    headers: HeaderMap,
    Json(body): Json<Forward>,
) -> Result<Response, ApiError> {
    let from = state.mailbox(&domain, &user)?;
    let to = from.other(&domain, &body.to)?;
    message_id(&msg)?;
    let (m, dest) = (msg.clone(), to.clone());
    let local = from
        .clone()
        .run(move |store, from| ops::forward_message(store, from, &m, &dest))
        .await;
    if let Some((site, _)) = from.elsewhere(&local, &msg, from_site(&headers)).await? {
        let copy = from
            .sites()
            .forward_copy(&site, from.id(), &msg, &to)
            .await?;
        return Ok((StatusCode::CREATED, Json(MessageBody::from(copy))).into_response());
    }
    Ok((StatusCode::CREATED, Json(MessageBody::from(local?))).into_response())
}

/// A peer site's audio answer streamed on as it arrives: its status and
/// the headers that describe the bytes.
pub(crate) fn pass_through(resp: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = Response::builder().status(status);
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
    ] {
        if let Some(v) = resp.headers().get(name.as_str()) {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                out = out.header(name, v);
            }
        }
    }
    let body = futures_util::stream::unfold(Some(resp), |state| async move {
        let mut resp = state?;
        match resp.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(resp))),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("remote audio cut off: {e}");
                Some((Err(std::io::Error::other(e)), None))
            }
        }
    });
    out.body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Serves a WAV file byte-exact, with `Range` (206, 416). The file is
/// opened once; a delete after that does not cut the download.
pub(crate) async fn serve_wav(
    path: std::path::PathBuf,
    req: Request,
    missing: ApiError,
) -> Result<Response, ApiError> {
    let resp = ServeFile::new(path)
        .oneshot(req)
        .await
        .map_err(ApiError::internal)?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(missing);
    }
    let mut resp = resp.map(Body::new);
    if resp.status().is_success() {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    }
    Ok(resp)
}

/// The message's audio, exactly as stored (`audio/wav`); `Range` is honoured.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/mailboxes/{user}/messages/{id}/audio", tag = "messages",
    params(MailboxPath, MessageIdPath,
        ("Range" = Option<String>, Header, description = "A byte range (`bytes=0-99`)")),
    responses(
        (status = 200, description = "The WAV file", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "audio/wav", body = Vec<u8>),
        (status = 400, description = "Invalid name or id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or message", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
        (status = 502, description = "The site keeping the message refused the change (`site_refused`)", body = ErrorBody),
        (status = 503, description = "The site keeping the message cannot be reached (`site_unreachable`; nothing changed), or this instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn audio(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Path(MessageIdPath { id: msg }): Path<MessageIdPath>,
    req: Request,
) -> Result<Response, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    message_id(&msg)?;
    let m = msg.clone();
    let local = mailbox
        .clone()
        .run(move |store, id| {
            store
                .message_audio_path(id, &m)?
                .ok_or_else(|| ApiError::not_found("message_not_found", "message not found"))
        })
        .await;
    let site_request = from_site(req.headers());
    if let Some((site, _)) = mailbox.elsewhere(&local, &msg, site_request).await? {
        let range = req
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok());
        let resp = mailbox
            .sites()
            .audio_response(&site, mailbox.id(), &msg, range)
            .await?;
        return Ok(pass_through(resp));
    }
    let path = local?;
    serve_wav(
        path,
        req,
        ApiError::not_found("message_not_found", "message not found"),
    )
    .await
}
