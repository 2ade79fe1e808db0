use actix_web::http::header::ContentType;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{json_body, AppState};
use crate::auth::Client;
use crate::domain::{MessageId, Role, SendKind};
use crate::error::ApiError;
use crate::service::{Accepted, SendRequest};
use crate::store::MessageStatus;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(post_message)
        .service(post_receipt)
        .service(post_shipping_update)
        .service(get_message);
}

#[post("/messages")]
async fn post_message(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Backend, Role::Marketer])?;
    send(&state, &client, &req, &body, SendKind::Message).await
}

#[post("/receipts")]
async fn post_receipt(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Backend])?;
    send(&state, &client, &req, &body, SendKind::Receipt).await
}

#[post("/shipping-updates")]
async fn post_shipping_update(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Backend])?;
    send(&state, &client, &req, &body, SendKind::ShippingUpdate).await
}

async fn send(
    state: &AppState,
    client: &Client,
    req: &HttpRequest,
    body: &[u8],
    kind: SendKind,
) -> Result<HttpResponse, ApiError> {
    state.check_quota(&client.name)?;
    let key = idempotency_key(req)?;
    let body = json_body(body)?;
    let answer = state
        .herald
        .send(SendRequest {
            client,
            kind,
            body: &body,
            idempotency_key: key,
        })
        .await?;
    Ok(respond(answer))
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(k) if !k.trim().is_empty() && k.len() <= 255 => Ok(Some(k)),
        _ => Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        )),
    }
}

fn respond(answer: Accepted) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(answer.status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if status.is_client_error() {
        response.insert_header(("content-type", "application/problem+json"));
    } else {
        response.insert_header(ContentType::json());
    }
    // Straight to bytes: `Value`'s `Display` goes through a formatter a character at a time.
    response.body(serde_json::to_vec(&answer.body).unwrap_or_default())
}

#[get("/messages/{id}")]
async fn get_message(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(&[Role::Backend, Role::Marketer, Role::Compliance])?;
    let not_found = || ApiError::NotFound(format!("no message {id}"));
    let id = MessageId::parse(&id).ok_or_else(not_found)?;
    let record = state.herald.store.message(&id)?.ok_or_else(not_found)?;
    // Senders see their own messages; compliance and admin see all.
    let own = record.client == client.name;
    if !own && !matches!(client.role, Role::Compliance | Role::Admin) {
        return Err(not_found());
    }
    let trace = state.herald.store.trace(&record)?;
    let mut decision = record.decision;
    decision.trace = trace;
    let mut status = record.status;
    if status == MessageStatus::Queued && state.worker.is_in_flight(&id) {
        status = MessageStatus::Sending;
    }
    Ok(HttpResponse::Ok().json(json!({
        "id": record.id,
        "status": status,
        "category": record.category,
        "page_id": record.page_id,
        "recipient": record.recipient,
        "created_at": record.created_at,
        "not_before": record.not_before.filter(|_| record.status.is_pending()),
        "decision": decision,
        "attempts": record.attempts,
        "graph_message_id": record.graph_message_id,
        "history": record.history,
    })))
}
