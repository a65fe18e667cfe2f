//! `/api/v1/domains/{domain}/mailboxes/{user}/greetings/{kind}`: upload
//! (any format symphonia decodes, stored as the store's 8 kHz WAV),
//! download, delete.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::Path;
use super::messages::serve_wav;
use super::{blocking, mailbox_id, ApiError, ApiState};
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

fn missing() -> ApiError {
    ApiError::not_found("greeting_not_found", "greeting not found")
}

/// The greeting as stored (`audio/wav`); `Range` is honoured.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/mailboxes/{user}/greetings/{kind}", tag = "greetings",
    params(("domain" = String, Path, description = "Domain", max_length = 253, pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"), ("user" = String, Path, description = "User part", pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$"),
        ("kind" = Kind, Path, description = "unavail, busy, temp or name"),
        ("Range" = Option<String>, Header, description = "A byte range (`bytes=0-99`)")),
    responses(
        (status = 200, description = "The WAV file", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "audio/wav", body = Vec<u8>),
        (status = 400, description = "Invalid name or kind", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or greeting", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody)
    ))]
pub async fn download(
    State(state): State<ApiState>,
    Path((domain, user, kind)): Path<(String, String, Kind)>,
    req: Request,
) -> Result<Response, ApiError> {
    let shared = state.shared();
    let id = mailbox_id(&shared, &domain, &user)?;
    let store = shared.store.clone();
    let path = blocking(move || store.greeting_path(&id, kind.into())?.ok_or_else(missing)).await?;
    serve_wav(path, req, missing()).await
}

/// Stores a greeting from an audio file in any format vmail decodes (WAV,
/// FLAC, MP3, Ogg Vorbis, ...), converted to 8 kHz mono WAV; replaces the
/// old one.
#[utoipa::path(put, path = "/api/v1/domains/{domain}/mailboxes/{user}/greetings/{kind}", tag = "greetings",
    params(("domain" = String, Path, description = "Domain", max_length = 253, pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"), ("user" = String, Path, description = "User part", pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$"),
        ("kind" = Kind, Path, description = "unavail, busy, temp or name")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "An audio file, at most 10 MiB"),
    responses(
        (status = 204, description = "Stored"),
        (status = 400, description = "Invalid name or kind; audio too long", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox", body = ErrorBody),
        (status = 413, description = "More than 10 MiB", body = ErrorBody),
        (status = 415, description = "Not audio vmail can decode", body = ErrorBody)
    ))]
pub async fn upload(
    State(state): State<ApiState>,
    Path((domain, user, kind)): Path<(String, String, Kind)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let shared = state.shared();
    let id = mailbox_id(&shared, &domain, &user)?;
    let store = shared.store.clone();
    blocking(move || {
        Ok(ops::store_greeting(
            &store,
            &id,
            kind.into(),
            body.to_vec(),
        )?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a greeting.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/mailboxes/{user}/greetings/{kind}", tag = "greetings",
    params(("domain" = String, Path, description = "Domain", max_length = 253, pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"), ("user" = String, Path, description = "User part", pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$"),
        ("kind" = Kind, Path, description = "unavail, busy, temp or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid name or kind", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox or greeting", body = ErrorBody)
    ))]
pub async fn remove(
    State(state): State<ApiState>,
    Path((domain, user, kind)): Path<(String, String, Kind)>,
) -> Result<StatusCode, ApiError> {
    let shared = state.shared();
    let id = mailbox_id(&shared, &domain, &user)?;
    let store = shared.store.clone();
    blocking(move || Ok(ops::delete_greeting(&store, &id, kind.into())?)).await?;
    Ok(StatusCode::NO_CONTENT)
}
