use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use crate::app::Readiness;
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
struct Health {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(tag = "operations", security(()), responses((status = 200, body = Health)))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The store answers, a policy is loaded and every background task runs; 503 when the store
/// does not answer or a task is down (it panicked and waits for its restart).
#[utoipa::path(
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "the store answers and a policy is loaded", body = Readiness),
        (status = 503, description = "a background task is down (the readiness body says which), or the store does not answer (a problem)",
            content((Readiness = "application/json"), (crate::error::Problem = "application/problem+json")))
    )
)]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let readiness = state.herald.readiness().await?;
    Ok(if readiness.is_ready() {
        HttpResponse::Ok().json(readiness)
    } else {
        HttpResponse::ServiceUnavailable().json(readiness)
    })
}
