//! `/healthz`, `/readyz` and `/metrics`: open (no token), for load
//! balancers and monitoring.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ErrorBody;
use super::extract::Json;
use super::{blocking, ApiError, ApiState};

/// `{"status": "ok"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Ready to take calls: SIP bound (and not stopping), the active instance
/// of its group (a passive one answers 503, so that a load balancer sends
/// it nothing), the store writable (a probe file is written and removed in
/// the SiteShare).
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready, with the reason", body = ErrorBody)
    ))]
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    if !state.sip_ready.load(Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sip_not_ready",
            "SIP is not bound or the instance is stopping",
        ));
    }
    let shared = state.shared();
    if !shared.cluster.is_active() {
        let standing = shared.cluster.standing();
        let detail = match &standing.active {
            Some(a) => format!(
                "{} (the active instance of group {} is {})",
                standing.role.as_str(),
                shared.role.group,
                a.name
            ),
            None => format!(
                "{} (group {} has no active instance right now)",
                standing.role.as_str(),
                shared.role.group
            ),
        };
        return Err(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_active", detail)
                .retry_after(shared.cluster.retry_after()),
        );
    }
    let store = shared.store.clone();
    blocking(move || {
        store.check_writable().map_err(|e| {
            tracing::warn!("store not writable: {e}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_not_writable",
                format!("the store is not writable: {e}"),
            )
        })
    })
    .await?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// Counters and gauges in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4",
        content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    let text = state.shared().metrics.render();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response()
}
