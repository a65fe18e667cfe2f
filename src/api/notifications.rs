//! The notification queues: what waits, and what was given up.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::Json;
use super::{blocking, ApiError, ApiState};

/// One queued or given-up notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationBody {
    /// `email` or `webhook`.
    pub channel: String,
    /// `pending`, `sending` (an SMTP transaction was started and did not
    /// finish) or `failed` (given up after `ext.notify_give_up_hours`).
    pub state: String,
    /// The job's file name in the queue.
    pub job: String,
    /// The event id.
    pub id: String,
    /// `message.created`, `message.heard`, `message.deleted` or `mailbox.locked`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `user@domain`.
    pub mailbox: String,
    /// The message id, for message events.
    pub message: Option<String>,
    /// The webhook endpoint.
    pub url: Option<String>,
    /// When the event happened, RFC 3339.
    pub created: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The next try, RFC 3339 (none once given up).
    pub next_try: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
}

/// The notification queues.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    /// Pending and given-up notifications, e-mail first, oldest first.
    pub items: Vec<NotificationBody>,
}

/// Lists the e-mails and webhooks waiting for delivery or retry, and those
/// given up (kept in the queue's `failed/` folder).
#[utoipa::path(get, path = "/api/v1/notifications", tag = "site",
    responses(
        (status = 200, description = "The queued and failed notifications", body = NotificationList),
        (status = 401, description = "No or wrong token", body = ErrorBody)
    ))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<NotificationList>, ApiError> {
    let notifier = state.shared().notifier.clone();
    let listed = blocking(move || notifier.queue().list().map_err(ApiError::internal)).await?;
    let items = listed
        .into_iter()
        .map(|l| NotificationBody {
            channel: l.channel.as_str().to_string(),
            state: if l.failed {
                "failed".to_string()
            } else {
                match l.job.state {
                    crate::notify::JobState::Pending => "pending".to_string(),
                    crate::notify::JobState::Sending => "sending".to_string(),
                }
            },
            job: l.name,
            id: l.job.id,
            kind: l.job.kind,
            mailbox: l.job.mailbox,
            message: l.job.message,
            url: l.job.url,
            created: l.job.created,
            attempts: l.job.attempts,
            next_try: (!l.failed).then_some(l.job.next_try),
            last_error: l.job.last_error,
        })
        .collect();
    Ok(Json(NotificationList { items }))
}
