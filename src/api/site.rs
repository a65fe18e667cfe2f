//! The site configuration, its validation, domain routing, the instance's
//! status and the OpenAPI description.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::{Json, Path};
use super::{ApiError, ApiState};
use crate::config::{Config, Entry};
use crate::routing::{Owner, RoutingTable};

/// The site configuration the instance runs with, as JSON, with secrets
/// (API tokens, demo PINs) masked.
#[utoipa::path(get, path = "/api/v1/config", tag = "site",
    responses(
        (status = 200, description = "The site configuration", body = Object),
        (status = 401, description = "No or wrong token", body = ErrorBody)
    ))]
pub async fn config(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(state.shared().config.raw_redacted())
}

/// The outcome of a reload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// `reloaded`.
    pub status: String,
}

/// Reloads the configuration file, like SIGHUP: routing and group
/// membership change at once, calls in progress go on; a file with errors
/// is rejected whole (every error in the answer and the log) and the
/// running configuration stays.
#[utoipa::path(post, path = "/api/v1/config/reload", tag = "site",
    responses(
        (status = 200, description = "The new configuration runs", body = Reloaded),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 422, description = "The file was rejected; the old configuration runs", body = ErrorBody),
        (status = 503, description = "The instance is stopping", body = ErrorBody)
    ))]
pub async fn reload(State(state): State<ApiState>) -> Result<Json<Reloaded>, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stopping = || {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "stopping",
            "the instance is stopping",
        )
    };
    state.reload.send(tx).map_err(|_| stopping())?;
    match rx.await.map_err(|_| stopping())? {
        Ok(()) => Ok(Json(Reloaded {
            status: "reloaded".into(),
        })),
        Err(errors) => Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "config_rejected",
            errors,
        )),
    }
}

/// One broken rule of a configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigProblem {
    /// `file` or `roles[<index>]` (with the entry's name when it has one).
    pub entry: String,
    /// The field path inside the entry, if the rule is about one field.
    pub field: Option<String>,
    /// The rule broken.
    pub rule: String,
    /// The whole line as `vmail config check` prints it.
    pub message: String,
}

/// The verdict on a configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    /// True when the configuration is valid.
    pub valid: bool,
    /// Every broken rule, in the order found (empty when valid).
    pub errors: Vec<ConfigProblem>,
}

fn entry_name(e: &Entry) -> String {
    match e {
        Entry::File => "file".to_owned(),
        Entry::Role {
            index,
            name: Some(n),
        } => format!("roles[{index}] ({n})"),
        Entry::Role { index, name: None } => format!("roles[{index}]"),
    }
}

/// Validates a site configuration (the request body, as a file would hold
/// it) with the rules of `vmail config check`; nothing is applied.
#[utoipa::path(post, path = "/api/v1/config/validate", tag = "site",
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "A site configuration document (any JSON; the verdict says what is wrong)"),
    responses(
        (status = 200, description = "The verdict (valid or the list of errors)", body = Validation),
        (status = 400, description = "No body, or not UTF-8 text", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 413, description = "Body over 10 MiB", body = ErrorBody)
    ))]
pub async fn validate(body: Bytes) -> Result<Json<Validation>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "missing_body",
            "send the configuration document as the request body",
        ));
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("invalid_utf8", "the body is not UTF-8 text"))?;
    let verdict = tokio::task::spawn_blocking(move || match Config::parse(&text) {
        Ok(config) => {
            let groups = config.groups();
            let table = RoutingTable::new(
                groups
                    .iter()
                    .map(|(g, info)| (*g, info.include_domains.iter().map(String::as_str))),
            );
            match table {
                Ok(_) => Validation {
                    valid: true,
                    errors: Vec::new(),
                },
                Err(e) => Validation {
                    valid: false,
                    errors: vec![ConfigProblem {
                        entry: "file".into(),
                        field: Some("include_domains".into()),
                        rule: e.to_string(),
                        message: e.to_string(),
                    }],
                },
            }
        }
        Err(errors) => Validation {
            valid: false,
            errors: errors
                .iter()
                .map(|e| ConfigProblem {
                    entry: entry_name(&e.entry),
                    field: e.field.clone(),
                    rule: e.rule.to_string(),
                    message: e.to_string(),
                })
                .collect(),
        },
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(verdict))
}

/// An instance of a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceInfo {
    pub name: String,
    pub order: u32,
    pub addr: String,
    pub sip_port: u16,
    pub http_port: u16,
}

/// Who serves a domain.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteInfo {
    /// The domain, normalised.
    pub domain: String,
    /// The owning group.
    pub group: u32,
    /// `listed` (the group lists it or a parent) or `default` (the default group).
    pub how: String,
    /// The group's instances, by order.
    pub instances: Vec<InstanceInfo>,
}

/// The group that serves `domain` and its instances.
#[utoipa::path(get, path = "/api/v1/route/{domain}", tag = "site",
    params(("domain" = String, Path, description = "A domain name", max_length = 253, pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")),
    responses(
        (status = 200, description = "The owner group", body = RouteInfo),
        (status = 400, description = "Not a domain name", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "No group serves it", body = ErrorBody)
    ))]
pub async fn route(
    State(state): State<ApiState>,
    Path(domain): Path<String>,
) -> Result<Json<RouteInfo>, ApiError> {
    let shared = state.shared();
    let domain = crate::config::normalize_domain(&domain)
        .map_err(|e| ApiError::bad_request("invalid_domain", format!("not a domain name: {e}")))?;
    let Some(owner) = shared.routing.owner(&domain) else {
        return Err(ApiError::not_found(
            "domain_not_served",
            format!("no group serves {domain}"),
        ));
    };
    let instances = shared
        .config
        .groups()
        .get(&owner.group())
        .map(|info| {
            info.instances
                .iter()
                .map(|r| InstanceInfo {
                    name: r.name.clone(),
                    order: r.order,
                    addr: r.addr.to_string(),
                    sip_port: r.ext.sip_port,
                    http_port: r.ext.http_port,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(RouteInfo {
        domain,
        group: owner.group(),
        how: match owner {
            Owner::Listed { .. } => "listed",
            Owner::Default { .. } => "default",
        }
        .into(),
        instances,
    }))
}

/// Calls in progress by kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallsInProgress {
    /// Callers leaving a message.
    pub deposit: u64,
    /// Subscribers in the mailbox menu.
    pub retrieval: u64,
}

/// The instance at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    pub name: String,
    pub site: String,
    pub group: u32,
    pub order: u32,
    /// The domains its group lists (empty for the default group).
    pub domains: Vec<String>,
    pub calls_in_progress: CallsInProgress,
    /// vmail's version.
    pub version: String,
    /// Seconds since the HTTP API started (with the process).
    pub uptime_seconds: u64,
    /// When it started, RFC 3339.
    pub started: String,
    /// Its standing in the group.
    pub cluster: ClusterStatus,
}

/// An instance's standing in its Active-Passive group.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterStatus {
    /// `starting`, `passive`, `active` or `stopped`.
    pub role: String,
    /// The group epoch it holds (active) or last saw.
    pub epoch: u64,
    /// The coordination backend: `siteshare` or `etcd`.
    pub backend: String,
    /// The group's active instance, when known.
    pub active: Option<ActiveInstance>,
}

/// The active instance of a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveInstance {
    pub name: String,
    pub order: u32,
    /// SIP address, `ip:port`.
    pub sip: String,
    /// HTTP API address, `ip:port`.
    pub http: String,
    pub epoch: u64,
}

/// Name, group, order, calls in progress by kind, version, uptime, and
/// its standing in the group (active or passive, epoch, the active one).
#[utoipa::path(get, path = "/api/v1/status", tag = "site",
    responses(
        (status = 200, description = "The instance's status", body = Status),
        (status = 401, description = "No or wrong token", body = ErrorBody)
    ))]
pub async fn status(State(state): State<ApiState>) -> Json<Status> {
    let shared = state.shared();
    // Gauges never go below zero; the cast keeps the schema's unsigned type.
    let in_progress = |kind| shared.metrics.calls_in_progress(kind).max(0) as u64;
    let deposit = in_progress(crate::metrics::CallKind::Deposit);
    let retrieval = in_progress(crate::metrics::CallKind::Retrieval);
    Json(Status {
        name: shared.role.name.clone(),
        site: shared.config.site.clone(),
        group: shared.role.group,
        order: shared.role.order,
        domains: shared.role.include_domains.clone(),
        calls_in_progress: CallsInProgress { deposit, retrieval },
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: state.started.elapsed().map_or(0, |d| d.as_secs()),
        started: crate::store::rfc3339(state.started),
        cluster: {
            let standing = shared.cluster.standing();
            ClusterStatus {
                role: standing.role.as_str().to_owned(),
                epoch: standing.epoch,
                backend: shared.cluster.backend.to_owned(),
                active: standing.active.map(|a| ActiveInstance {
                    name: a.name,
                    order: a.order,
                    sip: a.sip.to_string(),
                    http: a.http.to_string(),
                    epoch: a.epoch,
                }),
            }
        },
    })
}

/// This description (OpenAPI 3).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "site",
    responses(
        (status = 200, description = "The OpenAPI description", body = Object),
        (status = 401, description = "No or wrong token", body = ErrorBody)
    ))]
pub async fn openapi(State(state): State<ApiState>) -> Response {
    let text = state.openapi.get().cloned().unwrap_or_else(|| "{}".into());
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}
