use actix_web::{get, web, HttpResponse};
use serde_json::json;

use utoipa_actix_web::service_config::ServiceConfig;

use super::schemas::Health;
use super::AppState;
use crate::app::Readiness;
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// The process is up.
#[utoipa::path(tag = "operations", security(()), responses((status = 200, body = Health)))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The store answers and a policy is loaded; 503 when the store does not answer.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "the store answers and a policy is loaded", body = Readiness),
        (status = 503, description = "the store does not answer", body = super::schemas::Problem, content_type = "application/problem+json")
    )
)]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.herald.readiness().await?))
}
