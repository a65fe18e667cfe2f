//! `/api/v1/domains/{domain}/mailboxes/{user}/greetings/{kind}`: upload
//! (any format symphonia decodes, stored as the store's 8 kHz WAV),
//! download, delete.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::Path;
use super::messages::serve_wav;
use super::{ApiError, ApiState, MailboxPath};
use crate::mailbox_ops as ops;
use crate::store::GreetingKind;

/// Which greeting.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Played when the call was not answered.
    Unavail,
    /// Played when the subscriber was busy.
    Busy,
    /// Temporary greeting: overrides the others while present.
    Temp,
    /// The subscriber's recorded name.
    Name,
}

impl From<Kind> for GreetingKind {
    fn from(k: Kind) -> GreetingKind {
        match k {
            Kind::Unavail => GreetingKind::Unavailable,
            Kind::Busy => GreetingKind::Busy,
            Kind::Temp => GreetingKind::Temporary,
            Kind::Name => GreetingKind::Name,
        }
    }
}

/// The `{kind}` of a greeting route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KindPath {
    /// unavail, busy, temp or name
    kind: Kind,
}

fn missing() -> ApiError {
    ApiError::not_found("greeting_not_found", "greeting not found")
}

/// The greeting as stored (`audio/wav`); `Range` is honoured.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/mailboxes/{user}/greetings/{kind}", tag = "greetings",
    params(MailboxPath, KindPath,
        ("Range" = Option<String>, Header, description = "A byte range (`bytes=0-99`)")),
    responses(
        (status = 200, description = "The WAV file", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "audio/wav", body = Vec<u8>),
        (status = 400, description = "Invalid name or kind", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or greeting", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn download(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Path(KindPath { kind }): Path<KindPath>,
    req: Request,
) -> Result<Response, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    let path = mailbox
        .run(move |store, id| store.greeting_path(id, kind.into())?.ok_or_else(missing))
        .await?;
    serve_wav(path, req, missing()).await
}

/// Stores a greeting from an audio file in any format vmail decodes (WAV,
/// FLAC, MP3, Ogg Vorbis, ...), converted to 8 kHz mono WAV; replaces the
/// old one.
#[utoipa::path(put, path = "/api/v1/domains/{domain}/mailboxes/{user}/greetings/{kind}", tag = "greetings",
    params(MailboxPath, KindPath),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "An audio file, at most 10 MiB"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Invalid name or kind; audio too long", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox", body = ErrorBody),
        (status = 413, description = "More than 10 MiB", body = ErrorBody),
        (status = 415, description = "Not audio vmail can decode", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn upload(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Path(KindPath { kind }): Path<KindPath>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    mailbox
        .run(move |store, id| ops::store_greeting(store, id, kind.into(), body.to_vec()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a greeting.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/mailboxes/{user}/greetings/{kind}", tag = "greetings",
    params(MailboxPath, KindPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid name or kind", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or greeting", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn remove(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Path(KindPath { kind }): Path<KindPath>,
) -> Result<StatusCode, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    mailbox
        .run(move |store, id| ops::delete_greeting(store, id, kind.into()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
