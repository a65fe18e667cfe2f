//! `/api/v1/domains/{domain}/mailboxes...`: list, create, read, update,
//! delete, set the PIN, clear a PIN lockout.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::extract::{Json, Path, Query};
use super::{blocking, served, ApiError, ApiState, DomainPath, MailboxPath};
use crate::mailbox_ops::{self as ops, MailboxView, PinRule};
use crate::store::{Attach, MailboxSettings};

/// Most items in one page.
pub const MAX_PAGE: u32 = 1000;
/// Items in a page when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;

/// Paging of a listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.unwrap_or(DEFAULT_PAGE) {
            n @ 1..=MAX_PAGE => Ok(n as usize),
            _ => Err(ApiError::bad_request(
                "invalid_query",
                "limit must be from 1 to 1000",
            )),
        }
    }
}

/// Message counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsBody {
    /// Messages in INBOX.
    pub new: usize,
    /// Messages in every other folder (Old, Work, Family, ...: heard or
    /// saved).
    pub old: usize,
    pub urgent_new: usize,
    pub urgent_old: usize,
}

/// A mailbox with its settings, counts and lockout state.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailboxBody {
    pub user: String,
    pub domain: String,
    /// `user@domain`.
    pub address: String,
    pub display_name: Option<String>,
    /// Prompt language (`en`, `ru`, ...).
    pub language: Option<String>,
    /// IANA time zone (`Europe/Moscow`).
    pub timezone: Option<String>,
    /// Where new messages are e-mailed: one address or a comma-separated list.
    pub email: Option<String>,
    /// What the e-mail carries: `wav` (the message's audio) or `none`.
    pub attach: AttachName,
    /// The message is deleted once e-mailed.
    pub delete_after_send: bool,
    /// Most messages kept; `null`: the instance's `max_messages`.
    pub max_messages: Option<u32>,
    /// Days a message stays in Old before retention removes it (0: for
    /// ever); `null`: the domain's or instance's `ext.retention`.
    pub retention_old_days: Option<u32>,
    /// Where `0` during the greeting or recording transfers the caller:
    /// a `sip:`/`sips:` URI, `none` (no transfer), or `null` for the
    /// domain's `ext.operator_uri`.
    pub operator: Option<String>,
    pub has_pin: bool,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Every site's messages (a peer site that does not answer with its
    /// last known counts).
    pub counts: CountsBody,
    /// PIN logins refused until `locked_until`.
    pub locked: bool,
    /// RFC 3339, when locked.
    pub locked_until: Option<String>,
    /// PIN failures in a row.
    pub login_failures: u32,
}

impl From<MailboxView> for MailboxBody {
    fn from(v: MailboxView) -> Self {
        let s = v.mailbox.settings;
        let locked_until = ops::locked_until(&v.login, SystemTime::now());
        MailboxBody {
            user: v.mailbox.id.user().to_owned(),
            domain: v.mailbox.id.domain().to_owned(),
            address: v.mailbox.id.to_string(),
            display_name: s.display_name,
            language: s.language,
            timezone: s.timezone,
            email: s.email,
            attach: s.attach.unwrap_or(Attach::Wav).into(),
            delete_after_send: s.delete_after_send,
            max_messages: s.max_messages,
            retention_old_days: s.retention_old_days,
            operator: s.operator,
            has_pin: v.mailbox.has_pin,
            created: v.mailbox.created,
            counts: CountsBody {
                new: v.counts.new,
                old: v.counts.old,
                urgent_new: v.counts.urgent_new,
                urgent_old: v.counts.urgent_old,
            },
            locked: locked_until.is_some(),
            locked_until,
            login_failures: v.login.failures,
        }
    }
}

/// What a notification e-mail carries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttachName {
    /// Text only.
    None,
    /// The message's audio (WAV).
    Wav,
    /// The message's audio as Opus in Ogg (`audio/ogg`, `.opus`).
    Opus,
}

impl From<Attach> for AttachName {
    fn from(a: Attach) -> Self {
        match a {
            Attach::None => AttachName::None,
            Attach::Wav => AttachName::Wav,
            Attach::Opus => AttachName::Opus,
        }
    }
}

impl From<AttachName> for Attach {
    fn from(a: AttachName) -> Self {
        match a {
            AttachName::None => Attach::None,
            AttachName::Wav => Attach::Wav,
            AttachName::Opus => Attach::Opus,
        }
    }
}

/// One page of mailboxes.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailboxList {
    pub items: Vec<MailboxBody>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Lists the mailboxes of a domain, by user, a page at a time.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/mailboxes", tag = "mailboxes",
    params(DomainPath, PageQuery),
    responses(
        (status = 200, description = "A page of mailboxes", body = MailboxList),
        (status = 400, description = "Bad domain or paging", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "Domain not served here", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Path(DomainPath { domain }): Path<DomainPath>,
    Query(q): Query<PageQuery>,
) -> Result<Json<MailboxList>, ApiError> {
    let shared = state.shared();
    let domain = crate::config::normalize_domain(&domain)
        .map_err(|e| ApiError::bad_request("invalid_name", format!("invalid domain: {e}")))?;
    served(&shared, &domain)?;
    let limit = q.limit()?;
    let store = shared.store.clone();
    let list = blocking(move || {
        let page = ops::list_page(&store, &domain, q.cursor.as_deref(), limit)?;
        let mut items = Vec::with_capacity(page.items.len());
        for id in &page.items {
            match ops::view(&store, id) {
                Ok(v) => items.push(v.into()),
                // removed meanwhile
                Err(ops::OpError::Store(e)) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(MailboxList {
            items,
            next_cursor: page.next,
        })
    })
    .await?;
    Ok(Json(list))
}

/// A new mailbox.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMailbox {
    /// The user part (`A-Z a-z 0-9 . _ + -`, 1 to 64, not starting with `.`).
    #[schema(pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,63}$")]
    pub user: String,
    /// Initial PIN (phone menu rules: 4 to 16 digits, not all the same, not a run).
    #[schema(pattern = r"^[0-9]{4,16}$")]
    pub pin: Option<String>,
    #[schema(max_length = 256, pattern = r"^[^\x00-\x1f\x7f]*$")]
    pub display_name: Option<String>,
    /// A language tag such as `en` or `pt-BR` (a prompt directory).
    #[schema(pattern = r"^[A-Za-z][A-Za-z0-9_-]{0,15}$")]
    pub language: Option<String>,
    /// An IANA zone name such as `Europe/Moscow`, `UTC`, or an offset such as `+03:00`.
    #[schema(pattern = r"^([A-Za-z][A-Za-z0-9/_+-]{0,63}|[+-][0-9]{2}:[0-9]{2})$")]
    pub timezone: Option<String>,
    /// Where new messages are e-mailed: one address or a comma-separated list.
    #[schema(max_length = 254, pattern = r"^[^\x00-\x1f\x7f]*$")]
    pub email: Option<String>,
    /// What the e-mail carries (default `wav`).
    pub attach: Option<AttachName>,
    /// Delete the message once e-mailed.
    #[serde(default)]
    pub delete_after_send: bool,
    #[serde(default, deserialize_with = "count")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_messages: Option<u32>,
    /// Days a message stays in Old (0: for ever); absent: `ext.retention`.
    #[serde(default, deserialize_with = "days")]
    #[schema(minimum = 0, maximum = 36500)]
    pub retention_old_days: Option<u32>,
    /// The mailbox's operator: a `sip:`/`sips:` URI or `none`; absent: the
    /// domain's `ext.operator_uri`.
    #[schema(max_length = 512)]
    pub operator: Option<String>,
}

/// Creates a mailbox.
#[utoipa::path(post, path = "/api/v1/domains/{domain}/mailboxes", tag = "mailboxes",
    params(DomainPath),
    request_body = NewMailbox,
    responses(
        (status = 201, description = "Created", body = MailboxBody),
        (status = 400, description = "Invalid name, value or PIN; bad JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "Domain not served here", body = ErrorBody),
        (status = 409, description = "The mailbox exists", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn create(
    State(state): State<ApiState>,
    Path(DomainPath { domain }): Path<DomainPath>,
    Json(body): Json<NewMailbox>,
) -> Result<Response, ApiError> {
    let mailbox = state.mailbox(&domain, &body.user)?;
    let settings = MailboxSettings {
        display_name: body.display_name,
        language: body.language,
        timezone: body.timezone,
        email: body.email,
        attach: body.attach.map(Attach::from),
        delete_after_send: body.delete_after_send,
        max_messages: body.max_messages,
        retention_old_days: body.retention_old_days,
        operator: body.operator,
    };
    let view = mailbox
        .run(move |store, id| {
            ops::create(store, id, settings, body.pin.as_deref(), PinRule::Phone)?;
            ops::view(store, id)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(MailboxBody::from(view))).into_response())
}

/// Reads a mailbox.
#[utoipa::path(get, path = "/api/v1/domains/{domain}/mailboxes/{user}", tag = "mailboxes",
    params(MailboxPath),
    responses(
        (status = 200, description = "The mailbox", body = MailboxBody),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn read(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    headers: axum::http::HeaderMap,
) -> Result<Json<MailboxBody>, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    let sites = state.shared().sites.clone();
    let id = mailbox.id().clone();
    let mut view = mailbox.run(ops::view).await?;
    if sites.has_peers(id.domain()) && !headers.contains_key(crate::sites::SITE_HEADER) {
        // every site's messages: asked now; a site that does not answer
        // counts with its last known counts
        sites.refresh(std::slice::from_ref(&id)).await;
        let r = sites.known_counts(&id);
        view.counts.new += r.new;
        view.counts.old += r.old;
        view.counts.urgent_new += r.urgent_new;
        view.counts.urgent_old += r.urgent_old;
    }
    Ok(Json(view.into()))
}

/// A whole number from 1 to 1000000 written as JSON `5` or `5.0`.
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    let Some(n) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&n) {
        return Err(D::Error::custom(format!(
            "expected a whole number from 1 to 1000000, got {n}"
        )));
    }
    Ok(Some(n as u32))
}

/// A whole number of days from 0 to 36500 written as JSON `5` or `5.0`.
fn days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    let Some(n) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if n.fract() != 0.0 || !(0.0..=f64::from(crate::store::MAX_RETENTION_DAYS)).contains(&n) {
        return Err(D::Error::custom(format!(
            "expected a whole number of days from 0 to 36500, got {n}"
        )));
    }
    Ok(Some(n as u32))
}

/// [`days`] for a field where `null` clears (`Some(None)`).
fn present_days<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    days(d).map(Some)
}

/// [`count`] for a field where `null` clears (`Some(None)`).
fn present_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    count(d).map(Some)
}

/// `Some(value)` for any present field, `null` included (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Settings to change: a field left out stays as it is, `null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MailboxChange {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, max_length = 256, pattern = r"^[^\x00-\x1f\x7f]*$")]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, pattern = r"^[A-Za-z][A-Za-z0-9_-]{0,15}$")]
    pub language: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, pattern = r"^([A-Za-z][A-Za-z0-9/_+-]{0,63}|[+-][0-9]{2}:[0-9]{2})$")]
    pub timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, max_length = 254, pattern = r"^[^\x00-\x1f\x7f]*$")]
    pub email: Option<Option<String>>,
    /// What the e-mail carries; `null`: the default (`wav`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AttachName>, nullable)]
    pub attach: Option<Option<AttachName>>,
    /// Delete the message once e-mailed.
    pub delete_after_send: Option<bool>,
    #[serde(default, deserialize_with = "present_count")]
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 1000000)]
    pub max_messages: Option<Option<u32>>,
    /// Days a message stays in Old (0: for ever); `null`: back to
    /// `ext.retention`.
    #[serde(default, deserialize_with = "present_days")]
    #[schema(value_type = Option<u32>, nullable, minimum = 0, maximum = 36500)]
    pub retention_old_days: Option<Option<u32>>,
    /// The mailbox's operator: a `sip:`/`sips:` URI or `none`; `null`:
    /// back to the domain's `ext.operator_uri`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable, max_length = 512)]
    pub operator: Option<Option<String>>,
}

/// Changes settings (language, time zone, max messages, retention, e-mail,
/// display name).
#[utoipa::path(patch, path = "/api/v1/domains/{domain}/mailboxes/{user}", tag = "mailboxes",
    params(MailboxPath),
    request_body = MailboxChange,
    responses(
        (status = 200, description = "The mailbox after the change", body = MailboxBody),
        (status = 400, description = "Invalid name or value; bad JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn update(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Json(change): Json<MailboxChange>,
) -> Result<Json<MailboxBody>, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    let view = mailbox
        .run(move |store, id| {
            let change = ops::SettingsChange {
                display_name: change.display_name,
                language: change.language,
                timezone: change.timezone,
                email: change.email,
                attach: change.attach.map(|a| a.map(Attach::from)),
                delete_after_send: change.delete_after_send,
                max_messages: change.max_messages,
                retention_old_days: change.retention_old_days,
                operator: change.operator,
            };
            ops::update(store, id, |s| change.apply(s))?;
            ops::view(store, id)
        })
        .await?;
    Ok(Json(view.into()))
}

/// Deletes a mailbox with its messages and greetings.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/mailboxes/{user}", tag = "mailboxes",
    params(MailboxPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn remove(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
) -> Result<StatusCode, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    mailbox.run(ops::remove).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new PIN.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPin {
    /// 4 to 16 digits, not all the same digit, not a run such as 1234 or 4321.
    #[schema(pattern = r"^[0-9]{4,16}$")]
    pub pin: String,
}

/// Sets the PIN (the phone menu's rules).
#[utoipa::path(put, path = "/api/v1/domains/{domain}/mailboxes/{user}/pin", tag = "mailboxes",
    params(MailboxPath),
    request_body = NewPin,
    responses(
        (status = 204, description = "PIN set"),
        (status = 400, description = "PIN not allowed; invalid name; bad JSON", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn set_pin(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
    Json(body): Json<NewPin>,
) -> Result<StatusCode, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    mailbox
        .run(move |store, id| ops::set_pin(store, id, &body.pin, PinRule::Phone))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clears the PIN failures and lock of a locked-out mailbox.
#[utoipa::path(delete, path = "/api/v1/domains/{domain}/mailboxes/{user}/lockout", tag = "mailboxes",
    params(MailboxPath),
    responses(
        (status = 204, description = "Unlocked (or was not locked)"),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No such mailbox", body = ErrorBody),
        (status = 503, description = "This instance is not the active one of its group (`not_active`, naming the active instance when known)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the group may have an active instance")))
    ))]
pub async fn unlock(
    State(state): State<ApiState>,
    Path(MailboxPath { domain, user }): Path<MailboxPath>,
) -> Result<StatusCode, ApiError> {
    let mailbox = state.mailbox(&domain, &user)?;
    mailbox.run(ops::unlock).await?;
    Ok(StatusCode::NO_CONTENT)
}
