//! Sending, reading and cancelling messages. Which role may send which category is the
//! policy's to say (`[roles]`): a refusal comes back as a decision, `role_forbidden`.

use actix_web::{get, post, web, HttpRequest, HttpResponse};

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::{CommandProblems, SendProblems};
use super::{json_body, AppState};
use crate::app::MessageView;
use crate::app::{IdempotencyKey, SendCommand, WhenDeferred};
use crate::auth::Client;
use crate::domain::{
    Acceptance, OutboundMessage, ReceiptRequest, SendKind, SendMessageRequest,
    ShippingUpdateRequest,
};
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(post_message)
        .service(post_receipt)
        .service(post_shipping_update)
        .service(get_message)
        .service(cancel_message);
}

/// Send a message; `202` once it is durable. Marketing needs the marketer role.
#[utoipa::path(
    tag = "sending",
    request_body = SendMessageRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key and body answer as the first time")),
    responses((status = 202, description = "accepted: queued, or deferred to `not_before`", body = Acceptance), SendProblems)
)]
#[post("/messages")]
async fn post_message(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    send(&state, client, &req, &body, SendKind::Message).await
}

/// Send an order receipt, rendered as Messenger's receipt template.
#[utoipa::path(
    tag = "sending",
    request_body = ReceiptRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key and body answer as the first time")),
    responses((status = 202, description = "accepted", body = Acceptance), SendProblems)
)]
#[post("/receipts")]
async fn post_receipt(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    send(&state, client, &req, &body, SendKind::Receipt).await
}

/// Send a shipping update, with a tracking button when a URL is given.
#[utoipa::path(
    tag = "sending",
    request_body = ShippingUpdateRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key and body answer as the first time")),
    responses((status = 202, description = "accepted", body = Acceptance), SendProblems)
)]
#[post("/shipping-updates")]
async fn post_shipping_update(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    send(&state, client, &req, &body, SendKind::ShippingUpdate).await
}

/// Parse → accept → 202 with the acceptance; a refusal is the core's error, answered by
/// `ApiError`. The parser reads the body into the request its endpoint documents
/// (`SendMessageRequest`, `ReceiptRequest`, `ShippingUpdateRequest`) and checks each field.
async fn send(
    state: &AppState,
    client: Client,
    req: &HttpRequest,
    body: &[u8],
    kind: SendKind,
) -> Result<HttpResponse, ApiError> {
    state.check_quota(&client.name)?;
    let body = json_body(req, body)?;
    let idempotency = match idempotency_key(req)? {
        // Bound to the endpoint and the body's canonical JSON (object keys sorted).
        Some(key) => {
            let canonical = serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.into()))?;
            Some(IdempotencyKey::new(
                key.to_owned(),
                kind.as_str(),
                &canonical,
            ))
        }
        None => None,
    };
    let now = state.herald.clock.now();
    let message = OutboundMessage::parse_at(&body, kind, now).map_err(ApiError::Invalid)?;
    // The request's span (telemetry::around_request) names the recipient by pseudonym only.
    let span = tracing::Span::current();
    span.record(
        "recipient",
        state.herald.pseudonym(&message.recipient).as_str(),
    );
    if let Some(page) = &message.page_id {
        span.record("page", page.as_str());
    }
    let acceptance = state
        .herald
        .accept(SendCommand {
            client,
            message,
            idempotency,
            campaign: None,
            when_deferred: WhenDeferred::Queue,
        })
        .await?;
    span.record("message_id", acceptance.id.as_str());
    Ok(HttpResponse::Accepted().json(acceptance))
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

/// A message: status, decision, attempts and history. Senders see their own messages only.
#[utoipa::path(
    tag = "sending",
    params(("id" = String, Path, description = "msg_…")),
    responses((status = 200, body = MessageView), CommandProblems)
)]
#[get("/messages/{id}")]
async fn get_message(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.herald.message(&client, &id).await?))
}

/// A queued or deferred message becomes `cancelled` and is never sent; any other is a 409.
#[utoipa::path(
    tag = "sending",
    params(("id" = String, Path, description = "msg_…")),
    responses((status = 200, body = MessageView), CommandProblems)
)]
#[post("/messages/{id}/cancel")]
async fn cancel_message(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.herald.cancel(&client, &id).await?))
}
