//! `GET /metrics`: Prometheus text exposition, unauthenticated like `/healthz` (serve it on a
//! network only the scraper reaches). It carries counts and route patterns, never a PSID, a
//! message id or a token.

use actix_web::{get, web, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(metrics);
}

/// Requests, decisions, deliveries, retries, pacing waits, webhook events, store latencies,
/// outbox depth and campaign progress.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "the store does not answer", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let herald = &state.herald;
    let stored = herald.stored_state().await?;
    let text = herald
        .metrics
        .render(&stored)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}
