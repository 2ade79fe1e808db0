//! The stand-in Graph Send API: `POST /{version}/me/messages` and
//! `POST /{version}/{page_id}/messages` (MESSENGER.md §1, §5, §10).
//!
//! A send goes: decode → page token (190) → `appsecret_proof` → pacing (613) → shape (100)
//! → latency (`POST /sandbox/latency`) → injected fault → the recipient's rules (2018001, 551,
//! window, tags, tokens) → 200.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::error::GraphError;
use super::state::{Accepted, Injected, SendOutcome};
use super::validate::{self, CREDENTIAL_PARAMS};
use super::{SandboxPage, Shared};

/// Registers the Send API routes.
pub(crate) fn configure(config: &mut web::ServiceConfig) {
    config.route("/{version}/{node}/messages", web::post().to(send));
}

async fn send(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (version, node) = path.into_inner();
    if !is_graph_version(&version) {
        return unknown_path(request.path());
    }
    let mut params = match request_params(&request, &body) {
        Ok(params) => params,
        Err(error) => return shared.reject(&error, None, None),
    };
    let psid = params
        .get("recipient")
        .and_then(|recipient| recipient.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let psid = psid.as_deref();
    let page = match authenticate(&shared, &node, &request, &params) {
        Ok(page) => page,
        Err(error) => return shared.reject(&error, None, psid),
    };
    if shared.limiter.check_key(&page.id).is_err() {
        return shared.reject(&GraphError::rate_limited(), Some(&page.id), psid);
    }
    let send = match validate::parse_send_request(&params) {
        Ok(send) => send,
        Err(error) => return shared.reject(&error, Some(&page.id), psid),
    };
    for credential in CREDENTIAL_PARAMS {
        params.remove(credential);
    }
    latency(&shared).await;
    let outcome = shared
        .state()
        .process_send(page, &send, Value::Object(params), shared.now());
    match outcome {
        SendOutcome::Accepted(accepted) => answer(&shared, page, accepted),
        SendOutcome::Refused(error) => error.to_response(Some(&page.id)),
        SendOutcome::Fault(fault) => injected(fault, page).await,
    }
}

/// The network and Messenger's servers (`POST /sandbox/latency`): sends made side by side
/// land in any order.
async fn latency(shared: &Shared) {
    let latency = shared.state().latency_ms();
    if latency > 0 {
        let wait = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=latency);
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
}

/// An injected fault: answered late, cut off, or as its error.
async fn injected(fault: Injected, page: &SandboxPage) -> HttpResponse {
    if let Some(delay) = fault.delay {
        tokio::time::sleep(delay).await;
    }
    if fault.drop_connection {
        // A body that fails at once: the server cuts the connection mid-answer.
        let cut = futures_util::stream::once(async {
            Err::<web::Bytes, _>(std::io::Error::other("connection dropped (injected)"))
        });
        return HttpResponse::Ok()
            .content_type("application/json")
            .streaming(cut);
    }
    fault.error.to_response(Some(&page.id))
}

/// Messenger's answer to a send it took, and its delivery and read receipts to come.
fn answer(shared: &web::Data<Shared>, page: &SandboxPage, accepted: Accepted) -> HttpResponse {
    let mut answer = Map::new();
    if let Some(recipient_id) = &accepted.recipient_id {
        answer.insert("recipient_id".to_owned(), json!(recipient_id));
    }
    if let Some(message_id) = &accepted.message_id {
        answer.insert("message_id".to_owned(), json!(message_id));
    }
    // Sender actions have no message id and checkbox (`user_ref`) sends no recipient id;
    // Messenger reports deliveries for neither (§3.2).
    if let (Some(psid), Some(mid)) = (accepted.recipient_id, accepted.message_id) {
        if shared.config.auto_receipts {
            let page_id = page.id.clone();
            shared
                .clone()
                .into_inner()
                .spawn_receipts(psid, page_id, mid);
        }
    }
    HttpResponse::Ok().json(answer)
}

/// `v` + major + `.` + minor, as in `v21.0`.
fn is_graph_version(version: &str) -> bool {
    version.strip_prefix('v').is_some_and(|rest| {
        rest.split_once('.').is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
        })
    })
}

/// What Graph answers for a path it does not know.
pub(crate) fn unknown_path(path: &str) -> HttpResponse {
    let mut error = GraphError::new(2500, None, "");
    error.message = format!("Unknown path components: {path}");
    error.to_response(None)
}

/// The call's parameters: the query string, overlaid with the body (JSON or form).
fn request_params(request: &HttpRequest, body: &[u8]) -> Result<Map<String, Value>, GraphError> {
    let query = url::form_urlencoded::parse(request.query_string().as_bytes()).into_owned();
    let mut params = validate::form_params(query);
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json");
    params.extend(validate::decode_params(content_type, body)?);
    Ok(params)
}

/// The page whose token the call carries (`access_token` parameter or `Authorization:
/// Bearer`); for `/{page_id}/messages` it must be that page's token.
fn authenticate<'a>(
    shared: &'a Shared,
    node: &str,
    request: &HttpRequest,
    params: &Map<String, Value>,
) -> Result<&'a SandboxPage, GraphError> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let token = params
        .get("access_token")
        .and_then(Value::as_str)
        .or(bearer)
        .ok_or_else(GraphError::invalid_token)?;
    let pages = &shared.config.pages;
    let page = if node == "me" {
        pages.iter().find(|page| page.access_token == token)
    } else {
        pages
            .iter()
            .find(|page| page.id == node && page.access_token == token)
    };
    let page = page.ok_or_else(GraphError::invalid_token)?;
    if let Some(proof) = params.get("appsecret_proof") {
        check_appsecret_proof(&shared.config.app_secret, token, proof)?;
    }
    Ok(page)
}

/// `appsecret_proof` is optional, but when sent it must be the hex HMAC-SHA256 of the token
/// keyed with the app secret (§1.1).
fn check_appsecret_proof(app_secret: &str, token: &str, proof: &Value) -> Result<(), GraphError> {
    let invalid =
        || GraphError::invalid_parameter("Invalid appsecret_proof provided in the API argument");
    let proof = proof
        .as_str()
        .and_then(|proof| hex::decode(proof).ok())
        .ok_or_else(invalid)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).map_err(|_| invalid())?;
    mac.update(token.as_bytes());
    mac.verify_slice(&proof).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_versions_look_like_v_major_dot_minor() {
        for good in ["v21.0", "v2.6", "v25.0"] {
            assert!(is_graph_version(good), "{good}");
        }
        for bad in ["21.0", "v21", "v.0", "vx.0", "v21.", "sandbox"] {
            assert!(!is_graph_version(bad), "{bad}");
        }
    }

    #[test]
    fn appsecret_proof_is_the_hmac_of_the_token() {
        let proof = crate::messenger::sign(b"secret", b"token");
        let hex = proof.trim_start_matches("sha256=");
        assert!(check_appsecret_proof("secret", "token", &json!(hex)).is_ok());
        assert!(check_appsecret_proof("other", "token", &json!(hex)).is_err());
        assert!(check_appsecret_proof("secret", "token", &json!("zz")).is_err());
    }
}
