use actix_web::{get, post, web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{json_body, AppState};
use crate::error::ApiError;
use crate::messenger::verify_signature;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(handshake).service(receive);
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// The subscription handshake: echo the challenge when the verify token matches.
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
    let payload = json_body(&body)?;
    let outcome = state.herald.apply_webhook(&payload).await?;
    tracing::debug!(?outcome, "webhook applied");
    Ok(HttpResponse::Ok()
        .content_type("text/plain")
        .body("EVENT_RECEIVED"))
}
