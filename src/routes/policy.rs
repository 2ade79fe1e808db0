//! The policy: evaluate a send without making it, read the rules in force, reload them.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::{AuthProblems, CommandProblems};
use super::schemas::{EvaluateRequest, PolicyReloaded};
use super::{json_body, AppState};
use crate::auth::Client;
use crate::domain::{bounds, parse_time, OutboundMessage, Role, SendKind, Violations};
use crate::error::ApiError;
use crate::policy::Decision;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(evaluate).service(get_policy).service(reload);
}

/// The decision a send would get, with its trace; changes nothing, writes nothing. The body is
/// that of `POST /v1/messages`, plus `at` (evaluate under the rules in force then) and, for
/// compliance and admin, `role` (evaluate on a sender's behalf).
#[utoipa::path(
    tag = "policy",
    request_body = EvaluateRequest,
    responses((status = 200, description = "the decision with its trace", body = Decision), CommandProblems)
)]
#[post("/policy/evaluate")]
async fn evaluate(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let mut body = json_body(&req, &body)?;
    let asked_role = body.as_object_mut().and_then(|o| o.remove("role"));
    let now = state.herald.clock.now();
    let at = match body.as_object_mut().and_then(|o| o.remove("at")) {
        Some(at) => {
            let mut v = Violations::default();
            let parsed = parse_time(&at, "at", &mut v);
            if let Some(Err(e)) = parsed.map(|at| bounds::check_moment(at, now)) {
                v.push("at", e);
            }
            match parsed {
                Some(at) if v.is_empty() => Some(at),
                _ => return Err(ApiError::Invalid(v.into_inner())),
            }
        }
        None => None,
    };
    let message =
        OutboundMessage::parse_at(&body, SendKind::Message, now).map_err(ApiError::Invalid)?;
    let role = match asked_role.as_ref().and_then(Value::as_str) {
        Some(r) if matches!(client.role, Role::Compliance | Role::Admin) => {
            r.parse().map_err(ApiError::BadRequest)?
        }
        _ => client.role,
    };
    let decision = state.herald.evaluate(&message, role, at).await?;
    Ok(HttpResponse::Ok().json(decision))
}

/// The policy in force: its version and a summary of the rules.
#[utoipa::path(
    tag = "policy",
    responses((status = 200, description = "version and rules", body = Object), AuthProblems)
)]
#[get("/policy")]
async fn get_policy(state: web::Data<AppState>, _client: Client) -> HttpResponse {
    HttpResponse::Ok().json(state.herald.policy().summary())
}

/// Loads the policy files anew (admin only); a bad file keeps the old policy.
#[utoipa::path(
    tag = "policy",
    responses((status = 200, body = PolicyReloaded), CommandProblems)
)]
#[post("/policy/reload")]
async fn reload(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(&[])?;
    let version = state.herald.reload_policy(&client).await?;
    Ok(HttpResponse::Ok().json(json!({"policy_version": version})))
}
