//! Probes, metrics and the docs redirect.

use actix_web::{HttpResponse, http::header, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    error::{ApiError, RetryLaterResponse},
    state::AppState,
};

/// Probe answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process answers. Never checks Redis.
#[utoipa::path(
    get, path = "/health", operation_id = "health", tag = "operations",
    responses((status = 200, description = "Alive", body = Status))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// Readiness: the store answers and shutdown has not begun.
///
/// Errors: 503 shutting down (from the moment SIGTERM arrives, for the drain window
/// before the listener closes) or the store does not answer.
#[utoipa::path(
    get, path = "/ready", operation_id = "ready", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::NotReady("the server is shutting down".into()));
    }
    if let Err(e) = state.repos.health.ready().await {
        tracing::warn!(error = %e, "readiness check failed");
        return Err(ApiError::NotReady("the data store does not answer".into()));
    }
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}

/// Prometheus metrics: HTTP requests and latency, lock wait/hold/timeouts, purchases by
/// outcome, stock per product.
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// `/docs` → `/docs/` (Swagger UI lives under the trailing slash).
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}
