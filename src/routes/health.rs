use actix_web::{get, web, HttpResponse};
use serde_json::json;

use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// The process is up.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The store answers and a policy is loaded.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let policy = state.herald.policy();
    let head = state.herald.store.audit_head();
    HttpResponse::Ok().json(json!({
        "status": "ready",
        "policy_version": policy.version(),
        "audit_entries": head.seq,
        "outbox": state.herald.store.outbox_len(),
    }))
}
