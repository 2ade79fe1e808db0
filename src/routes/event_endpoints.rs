//! Event endpoints (role admin): the business's systems Herald tells of what happened. Create,
//! list, read, change, delete, rotate the secret, test, replay, attempts.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::{json_body, AppState};
use crate::app::{EndpointPatch, EndpointView, NewEndpoint, Replay};
use crate::auth::Client;
use crate::domain::endpoint::{AttemptStatus, DeliveryAttempt, EndpointFormat};
use crate::domain::{FieldError, Role};
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(read)
        .service(change)
        .service(remove)
        .service(rotate_secret)
        .service(test)
        .service(replay)
        .service(attempts);
}

/// Only administrators touch endpoints (`Client::require` lets admin through).
const ENDPOINT_ROLES: &[Role] = &[];

/// `POST /v1/event-endpoints`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// Where events are POSTed: http or https, not on an internal address unless
    /// `[events] allow_private_networks`.
    url: String,
    /// Event types (`message.sent`), families (`message.*`) or `["*"]`.
    events: Vec<String>,
    /// `herald` (default): Herald's events, Standard Webhooks; `messenger`: inbound events as
    /// Messenger posted them.
    #[schema(value_type = Option<String>)]
    format: Option<EndpointFormat>,
    description: Option<String>,
}

/// `PATCH /v1/event-endpoints/{id}`: each field given replaces the endpoint's.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChangeRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
    #[schema(value_type = Option<String>)]
    format: Option<EndpointFormat>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    /// `false` re-enables a disabled endpoint.
    disabled: Option<bool>,
}

/// `POST /v1/event-endpoints/{id}/replay`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// RFC 3339: every matching event at or after this moment is delivered again.
    since: DateTime<Utc>,
    /// Only these types (the endpoint's own filter applies too).
    types: Option<Vec<String>>,
}

/// The endpoints, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    endpoints: Vec<EndpointView>,
}

/// A page of attempts, newest first.
#[derive(Serialize, ToSchema)]
pub struct AttemptList {
    /// `{ id, event_id, event_type, at, status: succeeded|retrying|failed, http_status?,
    /// error?, duration_ms, attempt, next_attempt_at? }`
    #[schema(value_type = Vec<Object>)]
    attempts: Vec<DeliveryAttempt>,
    /// Pass as `cursor` for the next page; `null` at the end.
    next_cursor: Option<String>,
}

/// `{ "events": n }`: how many deliveries a replay queued.
#[derive(Serialize, ToSchema)]
pub struct ReplayAnswer {
    events: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AttemptsQuery {
    /// `failed` (every failed attempt, retried or not) or `succeeded`.
    status: Option<String>,
    /// 1 to 200 (default 50).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn parse<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(json_body(req, body)?)
        .map_err(|e| ApiError::BadRequest(format!("the body is not {what}: {e}")))
}

/// Create an endpoint. The answer holds its signing secret, shown this once.
#[utoipa::path(
    tag = "events",
    request_body = EndpointRequest,
    responses((status = 201, description = "created, with its `secret`", body = EndpointView), CommandProblems)
)]
#[post("/event-endpoints")]
async fn create(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    let body: EndpointRequest = parse(&req, &body, "an event endpoint")?;
    let new = NewEndpoint {
        url: body.url,
        events: body.events,
        format: body.format.unwrap_or_default(),
        description: body.description,
    };
    let view = state.herald.create_endpoint(&client, new).await?;
    Ok(HttpResponse::Created().json(view))
}

/// Every endpoint (never a secret).
#[utoipa::path(tag = "events", responses((status = 200, body = EndpointList), CommandProblems))]
#[get("/event-endpoints")]
async fn list(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    let endpoints = state.herald.list_endpoints().await?;
    Ok(HttpResponse::Ok().json(EndpointList { endpoints }))
}

/// One endpoint (never its secret).
#[utoipa::path(tag = "events", params(("id" = String, Path, description = "ep_…")), responses((status = 200, body = EndpointView), CommandProblems))]
#[get("/event-endpoints/{id}")]
async fn read(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.endpoint_view(&id).await?))
}

/// Change an endpoint; `"disabled": false` re-enables it.
#[utoipa::path(tag = "events", params(("id" = String, Path, description = "ep_…")), request_body = EndpointChangeRequest, responses((status = 200, body = EndpointView), CommandProblems))]
#[patch("/event-endpoints/{id}")]
async fn change(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    let body: EndpointChangeRequest = parse(&req, &body, "a change to an event endpoint")?;
    let patch = EndpointPatch {
        url: body.url,
        events: body.events,
        format: body.format,
        description: body.description,
        disabled: body.disabled,
    };
    Ok(HttpResponse::Ok().json(state.herald.change_endpoint(&client, &id, patch).await?))
}

/// Delete an endpoint with its pending deliveries and attempts.
#[utoipa::path(tag = "events", params(("id" = String, Path, description = "ep_…")), responses((status = 204, description = "deleted"), CommandProblems))]
#[delete("/event-endpoints/{id}")]
async fn remove(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    state.herald.delete_endpoint(&client, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new signing secret, shown this once; the old one keeps signing beside it for 24 hours.
#[utoipa::path(tag = "events", params(("id" = String, Path, description = "ep_…")), responses((status = 200, description = "the endpoint with its new `secret`", body = EndpointView), CommandProblems))]
#[post("/event-endpoints/{id}/rotate-secret")]
async fn rotate_secret(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.rotate_endpoint_secret(&client, &id).await?))
}

/// Send the endpoint an `endpoint.test` event now, signed as every event is; the answer is the
/// attempt.
#[utoipa::path(tag = "events", params(("id" = String, Path, description = "ep_…")), responses((status = 200, description = "the attempt", body = Object), CommandProblems))]
#[post("/event-endpoints/{id}/test")]
async fn test(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.test_endpoint(&id).await?))
}

/// Deliver every matching event since a moment again (same ids).
#[utoipa::path(tag = "events", params(("id" = String, Path, description = "ep_…")), request_body = ReplayRequest, responses((status = 202, description = "queued", body = ReplayAnswer), CommandProblems))]
#[post("/event-endpoints/{id}/replay")]
async fn replay(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    let body: ReplayRequest = parse(&req, &body, "a replay")?;
    let replay = Replay {
        since: body.since,
        types: body.types,
    };
    let events = state.herald.replay_events(&id, replay).await?;
    Ok(HttpResponse::Accepted().json(ReplayAnswer { events }))
}

/// The endpoint's delivery attempts, newest first.
#[utoipa::path(tag = "events", params(("id" = String, Path, description = "ep_…"), AttemptsQuery), responses((status = 200, body = AttemptList), CommandProblems))]
#[get("/event-endpoints/{id}/attempts")]
async fn attempts(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
    query: web::Query<AttemptsQuery>,
) -> Result<HttpResponse, ApiError> {
    client.require(ENDPOINT_ROLES)?;
    let status = match query.status.as_deref() {
        None => None,
        Some("failed") => Some(AttemptStatus::Failed),
        Some("succeeded") => Some(AttemptStatus::Succeeded),
        Some(_) => {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "status",
                "must be failed or succeeded",
            )]))
        }
    };
    let (attempts, next_cursor) = state
        .herald
        .endpoint_attempts(
            &id,
            status,
            query.limit.unwrap_or(50),
            query.cursor.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(AttemptList {
        attempts,
        next_cursor,
    }))
}
