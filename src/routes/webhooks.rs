use actix_web::{get, post, web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{json, AppState};
use crate::app::WebhookPost;
use crate::error::ApiError;
use crate::messenger::verify_signature;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(handshake).service(receive);
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// The subscription handshake: echo the challenge when the verify token matches.
#[utoipa::path(
    tag = "webhooks",
    security(()),
    params(Handshake),
    responses(
        (status = 200, description = "the challenge, as plain text", body = String, content_type = "text/plain"),
        (status = 403, description = "wrong mode or verify token")
    )
)]
#[get("/webhooks/messenger")]
async fn handshake(state: web::Data<AppState>, query: web::Query<Handshake>) -> HttpResponse {
    let expected = state.verify_token.expose_secret().as_bytes();
    let given = query.verify_token.as_deref().unwrap_or_default().as_bytes();
    let token_ok = bool::from(expected.ct_eq(given));
    match (&query.mode, &query.challenge) {
        (Some(mode), Some(challenge)) if mode == "subscribe" && token_ok => HttpResponse::Ok()
            .content_type("text/plain")
            .body(challenge.clone()),
        _ => HttpResponse::Forbidden().finish(),
    }
}

/// Event notifications: verified against the raw body, applied, answered 200.
#[utoipa::path(
    tag = "webhooks",
    security(()),
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<HMAC of the raw body with the app secret>")),
    request_body(content = Object, description = "Messenger's webhook payload (`object: page`, `entry[].messaging[]`)"),
    responses(
        (status = 200, description = "EVENT_RECEIVED", body = String, content_type = "text/plain"),
        (status = 400, description = "not JSON, or not a Messenger payload", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "missing or wrong signature", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 413, description = "the body is larger than `[server] max_body_bytes`"),
        (status = 503, description = "the store is unavailable", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
#[post("/webhooks/messenger")]
async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let signature = req
        .headers()
        .get("X-Hub-Signature-256")
        .and_then(|v| v.to_str().ok());
    let secret = state.app_secret.expose_secret().as_bytes();
    if !verify_signature(secret, &body, signature) {
        tracing::warn!("webhook refused: missing or wrong X-Hub-Signature-256");
        return Err(ApiError::Forbidden(
            "missing or wrong X-Hub-Signature-256".into(),
        ));
    }
    // Messenger's own body, signed: read whatever content type it came with, but strictly.
    let payload = json::parse_messengers(&body)?;
    let post = WebhookPost {
        body: &body,
        signature,
    };
    let outcome = state.herald.apply_webhook(&payload, Some(post)).await?;
    tracing::debug!(?outcome, "webhook applied");
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body("EVENT_RECEIVED"))
}
