//! Site-to-site routes (`/api/v1/sites/...`), asked by the peer sites
//! (`docs/sites.md`): a mailbox's messages and counts kept at this site,
//! and a peer's notice that a mailbox changed there. They answer with this
//! site's own messages only and never ask another site.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{Json, Path};
use super::messages::MessageBody;
use super::{ApiError, ApiState, MailboxPath};
use crate::sites::wire::{Notice, WireCounts};
use crate::sites::RemoteError;
use crate::store::Folder;

/// A mailbox's messages kept at this site.
#[derive(Debug, Serialize, ToSchema)]
pub struct SiteMessages {
    /// This site's name.
    pub site: String,
    /// Its messages of every folder, folder by folder, oldest first.
    pub messages: Vec<MessageBody>,
}

/// The mailbox's messages kept at this site, every folder (for a peer
/// site's merged listing). An empty list when the mailbox is not here.
#[utoipa::path(get, path = "/api/v1/sites/{domain}/{user}/messages", tag = "sites",
    params(MailboxPath),
    responses(
        (status = 200, description = "This site's messages of the mailbox", body = SiteMessages),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox here, or domain not served", body = ErrorBody),
        (status = 503, description = "Not the active instance (`Location` names the active one)", body = ErrorBody)
    ))]
pub async fn messages(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
) -> Result<Json<SiteMessages>, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    let site = state.shared().sites.site().to_owned();
    let list = mailbox
        .run(move |store, id| {
            let mut all = Vec::new();
            for f in Folder::ALL {
                all.extend(store.list_messages(id, f)?);
            }
            Ok::<_, crate::store::StoreError>(all)
        })
        .await?;
    Ok(Json(SiteMessages {
        site,
        messages: list.into_iter().map(Into::into).collect(),
    }))
}

/// The mailbox's message counts at this site.
#[utoipa::path(get, path = "/api/v1/sites/{domain}/{user}/counts", tag = "sites",
    params(MailboxPath),
    responses(
        (status = 200, description = "This site's counts of the mailbox", body = WireCounts),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox here, or domain not served", body = ErrorBody),
        (status = 503, description = "Not the active instance (`Location` names the active one)", body = ErrorBody)
    ))]
pub async fn counts(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
) -> Result<Json<WireCounts>, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    let c = mailbox.run(|store, id| store.counts(id)).await?;
    Ok(Json(c.into()))
}

/// A peer site's notice that a mailbox changed there, with its counts
/// there: this site's message-waiting subscribers get the new totals.
#[utoipa::path(post, path = "/api/v1/sites/changed", tag = "sites",
    request_body = Notice,
    responses(
        (status = 204, description = "Taken"),
        (status = 400, description = "Bad JSON or name", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not a peer site serving that domain here", body = ErrorBody),
        (status = 404, description = "Domain not served", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 503, description = "Not the active instance (`Location` names the active one)", body = ErrorBody)
    ))]
pub async fn changed(
    State(state): State<ApiState>,
    Json(notice): Json<Notice>,
) -> Result<StatusCode, ApiError> {
    let mailbox = state.mailbox(&notice.domain, &notice.user)?;
    let shared = state.shared();
    match shared
        .sites
        .notice(&notice.site, mailbox.id(), notice.counts.into())
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => {
            tracing::warn!(site = %notice.site, "change notice refused: {e}");
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "unknown_site",
                e.to_string(),
            ))
        }
    }
}

impl From<RemoteError> for ApiError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::NotFound => ApiError::not_found("message_not_found", "message not found"),
            RemoteError::Unreachable(site) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "site_unreachable",
                format!("site {site} cannot be reached right now; the message is kept there, nothing was changed: try again later"),
            )
            .retry_after(10),
            RemoteError::Refused(why) => ApiError::new(StatusCode::BAD_GATEWAY, "site_refused", why),
        }
    }
}
