//! The JSON error every API answer uses: `{ "error": <machine code>,
//! "detail": <human text> }`, and the mapping of store and extractor
//! failures onto it.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::mailbox_ops::OpError;
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code (`invalid_json`, `mailbox_not_found`, ...).
    pub error: String,
    /// What went wrong, for a human.
    pub detail: String,
}

/// An error answer: status, code, text.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// `Retry-After` seconds, for a `503`.
    pub retry_after: Option<u64>,
    /// `Location`: where to ask instead (the active instance, for a
    /// passive's `503 not_active`).
    pub location: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            location: None,
        }
    }

    /// The same error with a `Location` header.
    pub fn location(mut self, url: String) -> Self {
        self.location = Some(url);
        self
    }

    /// The same error with a `Retry-After` header.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// Our own failure: logged, answered 500 without internals.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!("API request failed: {what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; see the vmail log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, detail = %self.detail, "API error");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = self.code, detail = %self.detail, "API request refused");
        }
        let retry_after = self.retry_after;
        let location = self.location.clone();
        let mut resp = (
            self.status,
            axum::Json(ErrorBody {
                error: self.code.to_owned(),
                detail: self.detail,
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::InvalidName { .. } => Self::bad_request("invalid_name", e.to_string()),
            StoreError::InvalidValue { .. } => Self::bad_request("invalid_value", e.to_string()),
            StoreError::NotFound { what } => Self::not_found(
                match *what {
                    "mailbox" => "mailbox_not_found",
                    "message" => "message_not_found",
                    "greeting" => "greeting_not_found",
                    _ => "not_found",
                },
                e.to_string(),
            ),
            StoreError::AlreadyExists { .. } => {
                Self::new(StatusCode::CONFLICT, "already_exists", e.to_string())
            }
            // The instance lost the active role while the request ran.
            StoreError::Fenced(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_active",
                format!("refused: {e}"),
            )
            .retry_after(3),
            _ if e.is_storage_full() => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the store has no space left",
            ),
            _ => Self::internal(e),
        }
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Store(s) => s.into(),
            OpError::PinNotAllowed => Self::bad_request("pin_not_allowed", e.to_string()),
            OpError::UnknownTimezone(_) => Self::bad_request("invalid_value", e.to_string()),
            OpError::NotAudio(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not_audio",
                e.to_string(),
            ),
            OpError::TooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match &r {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_json",
        };
        let status = if code == "invalid_json" {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        Self::new(status, code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request("invalid_path", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

/// The code for a bare status (answers made outside the handlers: no
/// route, wrong method, a body over the limit).
pub fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
        s if s.is_server_error() => "internal_error",
        _ => "error",
    }
}
