use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use serde_json::{json, Value};

use super::{json_body, AppState};
use crate::auth::Client;
use crate::domain::{parse_time, Role, SendKind, Violations};
use crate::error::ApiError;
use crate::policy::{evaluate, PolicySet};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(evaluate_route)
        .service(get_policy)
        .service(reload);
}

/// The decision a send would get, with its trace; changes nothing, writes nothing.
#[post("/policy/evaluate")]
async fn evaluate_route(
    state: web::Data<AppState>,
    client: Client,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_body(&body)?;
    let asked_role = body.as_object_mut().and_then(|o| o.remove("role"));
    let at = match body.as_object_mut().and_then(|o| o.remove("at")) {
        Some(at) => {
            let mut v = Violations::default();
            let parsed = parse_time(&at, "at", &mut v);
            parsed.ok_or_else(|| ApiError::Invalid(v.into_inner()))?
        }
        None => Utc::now(),
    };
    let (message, page) = state.herald.parse_send(&body, SendKind::Message)?;
    let policy = state.herald.policy();
    // The role asked about: the caller's, unless compliance or admin asks on a sender's behalf.
    let role = match asked_role.as_ref().and_then(Value::as_str) {
        Some(r) if matches!(client.role, Role::Compliance | Role::Admin) => {
            r.parse().map_err(ApiError::BadRequest)?
        }
        _ => client.role,
    };
    let facts = state.herald.facts(
        &policy,
        &message.recipient,
        page.region.as_deref(),
        role,
        at,
    )?;
    Ok(HttpResponse::Ok().json(evaluate(&policy, &message, &facts)))
}

#[get("/policy")]
async fn get_policy(state: web::Data<AppState>, _client: Client) -> HttpResponse {
    HttpResponse::Ok().json(state.herald.policy().summary())
}

/// Loads the policy files anew; a bad file keeps the old policy.
#[post("/policy/reload")]
async fn reload(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(&[])?;
    let policy = PolicySet::load_dir(&state.herald.policy_dir)
        .map_err(|errors| ApiError::BadRequest(format!("the policy was not reloaded: {errors}")))?;
    let version = policy.version().to_owned();
    state.herald.reload_policy(policy, &client.name).await?;
    Ok(HttpResponse::Ok().json(json!({"policy_version": version})))
}
