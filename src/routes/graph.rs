//! The drop-in endpoint: `POST /graph/{version}/me/messages` and
//! `POST /graph/{version}/{page_id}/messages` take the Send API request exactly as Messenger
//! client libraries send it and answer as the Graph API does, so existing Messenger code adopts
//! Herald by changing its base URL (docs/api.md §7).
//!
//! The flow is that of `POST /v1/messages`: authenticate → parse into a command → the core →
//! answer; only the wire format differs (`messenger::send_api`) and errors are Graph's
//! (`GraphApiError`).

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::graph_error::{GraphApiError, GraphError};
use super::graph_request::{
    decode_params, GraphCommand, GraphSend, GraphSendRequest, SendApiError, SendApiRecipient,
    SendApiRequest,
};
use super::AppState;
use crate::auth::{bearer, Client, JwtKeys};
use crate::domain::{Category, FieldError, PageId, Recipient};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        utoipa_actix_web::scope("/graph")
            .service(send)
            .service(attachment_upload)
            // Any other path answers as the Graph API does for an unknown path (not a route).
            .default_service(web::to(unknown_path)),
    );
}

/// The Send API as Messenger SDKs call it, with a Herald JWT as `access_token` (query or form)
/// or `Authorization: Bearer`. `node` is `me` or a page id.
#[utoipa::path(
    tag = "graph",
    params(
        ("version" = String, Path, description = "a Graph version such as v21.0"),
        ("node" = String, Path, description = "`me` or a page id"),
        ("access_token" = Option<String>, Query, description = "the client's Herald JWT")
    ),
    request_body(
        description = "JSON, or form fields holding JSON, as Meta's examples send it",
        content(
            (GraphSendRequest = "application/json"),
            (GraphSendRequest = "application/x-www-form-urlencoded")
        )
    ),
    responses(
        (status = 200, description = "accepted", body = GraphSendAnswer),
        (status = "4XX", description = "a Graph-shaped error with Messenger's codes (10/2018278 outside the window, 190 bad token, 613 over quota, …)", body = GraphError),
        (status = "5XX", description = "a Graph-shaped error (the store is unavailable)", body = GraphError)
    )
)]
#[post("/{version}/{node}/messages")]
async fn send(
    state: web::Data<AppState>,
    keys: web::Data<Arc<JwtKeys>>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, GraphApiError> {
    let (version, node) = path.into_inner();
    if !is_graph_version(&version) {
        return Err(GraphApiError::unknown_path(req.path()));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // A JSON body that names a key twice is refused here, as on every JSON route; form bodies
    // are Graph's own format and read as they always were.
    if let Some(path) = super::json::duplicate_key(&body) {
        return Err(SendApiError::from_fields(&[FieldError::new(
            path,
            "appears more than once in its object",
        )])
        .into());
    }
    let params = decode_params(req.query_string(), content_type, &body)?;
    let client = client(&keys, &req, &params)?;
    if let Some(wait) = state.quota_wait(&client.name) {
        return Err(GraphApiError::over_quota(wait));
    }
    let request = SendApiRequest::parse(&params)?;
    let token_owner = match &request.recipient {
        SendApiRecipient::MarketingToken(t) => state.herald.marketing_token_owner(t).await?,
        _ => None,
    };
    let policy = state.herald.policy();
    let command = GraphCommand::try_from(GraphSend {
        request,
        client,
        page_id: page(&node)?,
        declared: declared_category(&req)?,
        token_owner,
        policy: &policy,
    })?;
    match command {
        GraphCommand::Send(cmd) => {
            let (recipient, category) = (cmd.message.recipient.clone(), cmd.message.category);
            let acceptance = state
                .herald
                .accept(*cmd)
                .await
                .map_err(|e| GraphApiError::send(e, category))?;
            Ok(answer(&recipient, Some(acceptance.id.as_str())))
        }
        GraphCommand::SenderAction(cmd) => {
            let recipient = cmd.recipient.clone();
            state.herald.sender_action(cmd).await?;
            Ok(answer(&recipient, None))
        }
    }
}

/// What the Graph API answers a send.
#[derive(Serialize, ToSchema)]
struct GraphSendAnswer {
    /// Absent for a `user_ref`.
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_id: Option<String>,
    /// Herald's message id (`GET /v1/messages/{id}` follows it); absent for a sender action.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
}

/// `{"recipient_id", "message_id"}`: no `recipient_id` for a `user_ref` (Messenger leaves it
/// out), no `message_id` for a sender action. The message id is Herald's: `GET
/// /v1/messages/{id}` follows it.
fn answer(recipient: &Recipient, message_id: Option<&str>) -> HttpResponse {
    let recipient_id = match recipient {
        Recipient::Psid(p) => Some(p.as_str().to_owned()),
        Recipient::UserRef(_) => None,
    };
    HttpResponse::Ok().json(GraphSendAnswer {
        recipient_id,
        message_id: message_id.map(str::to_owned),
    })
}

/// The client's Herald JWT: the `access_token` parameter (query or form), else `Authorization:
/// Bearer`. `appsecret_proof` is accepted and not checked: the JWT is the credential, and the
/// app secret is the client's to keep, not Herald's.
fn client(
    keys: &JwtKeys,
    req: &HttpRequest,
    params: &GraphSendRequest,
) -> Result<Client, GraphApiError> {
    let token = params
        .access_token
        .as_ref()
        .and_then(Value::as_str)
        .or_else(|| bearer(req));
    Client::from_token(keys, token).map_err(|e| GraphApiError::invalid_token(&e.to_string()))
}

/// `me` is the default page; anything else must be a page id.
fn page(node: &str) -> Result<Option<PageId>, SendApiError> {
    if node == "me" {
        return Ok(None);
    }
    PageId::parse(node)
        .map(Some)
        .map_err(|e| SendApiError::from_fields(&[FieldError::new("page_id", e)]))
}

/// `X-Herald-Category`: the client names the category where the request cannot say it.
fn declared_category(req: &HttpRequest) -> Result<Option<Category>, SendApiError> {
    let Some(value) = req.headers().get("X-Herald-Category") else {
        return Ok(None);
    };
    value
        .to_str()
        .map_err(|e| e.to_string())
        .and_then(str::parse::<Category>)
        .map(Some)
        .map_err(|e| SendApiError::from_fields(&[FieldError::new("X-Herald-Category", e)]))
}

/// `v` + major + `.` + minor, as in `v21.0`; libraries hard-code anything from v2.6 on.
fn is_graph_version(version: &str) -> bool {
    let Some((major, minor)) = version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
    else {
        return false;
    };
    [major, minor]
        .iter()
        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// The Attachment Upload API: refused, naming what is supported.
#[utoipa::path(
    tag = "graph",
    params(("version" = String, Path), ("node" = String, Path)),
    responses((status = 400, description = "not supported: send attachments by URL", body = GraphError))
)]
#[post("/{version}/{node}/message_attachments")]
async fn attachment_upload() -> Result<HttpResponse, GraphApiError> {
    Err(SendApiError::attachment_upload("filedata").into())
}

async fn unknown_path(req: HttpRequest) -> Result<HttpResponse, GraphApiError> {
    Err(GraphApiError::unknown_path(req.path()))
}
