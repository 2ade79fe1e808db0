//! The policy: evaluate a send without making it, read the rules in force, reload them.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::json::keep_null;
use super::openapi::{AuthProblems, CommandProblems};
use super::{json_body, AppState};
use crate::auth::Client;
use crate::domain::{
    bounds, parse_time, Body, Category, OutboundMessage, RecipientRef, Role, SendMessageRequest,
    UtilityTemplate, Violations,
};
use crate::error::ApiError;
use crate::policy::Decision;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(evaluate).service(get_policy).service(reload);
}

/// `POST /v1/policy/evaluate`: the body of `POST /v1/messages`, plus `at` and (for compliance
/// and admin) `role`.
// The fields of `SendMessageRequest`, spelled out: a flattened schema becomes an `allOf`, from
// which schema-driven fuzzers (schemathesis) cannot generate bodies. Read as that body is (see
// `domain::requests`); `at` and `role` are this route's.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EvaluateRequest {
    #[schema(value_type = Option<String>)]
    page_id: Option<Value>,
    #[schema(value_type = RecipientRef)]
    recipient: Option<Value>,
    #[schema(value_type = Category)]
    category: Option<Value>,
    /// A Messenger message object, as for `POST /v1/messages`.
    #[schema(value_type = Object)]
    message: Option<Value>,
    #[schema(value_type = Option<UtilityTemplate>)]
    utility_template: Option<Value>,
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    send_at: Option<Value>,
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    expires_at: Option<Value>,
    /// Evaluate under the rules in force at this moment (default now): from 2011-01-01 to 365
    /// days ahead.
    // A `null` is a value here, refused as not a timestamp, as it always has been.
    #[serde(default, deserialize_with = "keep_null")]
    #[schema(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    at: Option<Value>,
    /// Evaluate on behalf of a sender with this role (compliance and admin only).
    #[schema(value_type = Option<Role>)]
    role: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

impl From<EvaluateRequest> for SendMessageRequest {
    /// The message asked about: everything but `at` and `role`.
    fn from(body: EvaluateRequest) -> SendMessageRequest {
        SendMessageRequest {
            page_id: body.page_id,
            recipient: body.recipient,
            category: body.category,
            message: body.message,
            utility_template: body.utility_template,
            send_at: body.send_at,
            expires_at: body.expires_at,
            unknown: body.unknown,
        }
    }
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
    let mut body = Body::<EvaluateRequest>::read(&json_body(&req, &body)?);
    let asked_role = body.fields.role.take();
    let now = state.herald.clock.now();
    let at = match body.fields.at.take() {
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
    let message = OutboundMessage::from_message(body.map(SendMessageRequest::from), Some(now))
        .map_err(ApiError::Invalid)?;
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

/// `POST /v1/policy/reload`.
#[derive(Serialize, ToSchema)]
struct PolicyReloaded {
    policy_version: String,
}

/// Loads the policy files anew (admin only); a bad file keeps the old policy.
#[utoipa::path(
    tag = "policy",
    responses((status = 200, body = PolicyReloaded), CommandProblems)
)]
#[post("/policy/reload")]
async fn reload(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(&[])?;
    let policy_version = state.herald.reload_policy(&client).await?;
    Ok(HttpResponse::Ok().json(PolicyReloaded { policy_version }))
}
