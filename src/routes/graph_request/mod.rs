//! The Graph Send API request as Messenger client libraries send it, read into Herald's
//! commands: how existing Messenger code adopts Herald by changing a base URL.
//!
//! ```text
//!   query + body (JSON, or form fields holding JSON) ──decode_params──▶ GraphSendRequest
//!   GraphSendRequest ──SendApiRequest::parse──▶ SendApiRequest ──TryFrom<GraphSend>──▶ GraphCommand
//!                                                                         (Send | SenderAction)
//! ```
//!
//! This reader is Herald's own. The embedded sandbox has another one for the same wire format
//! (`sandbox/validate.rs`): the sandbox is the independent oracle that tests Herald's sends, so
//! the two must not share code.
//!
//! A Send API request names no category; it is read from the request (docs/api.md §7):
//! `HUMAN_AGENT` → agent_reply; a Marketing Messages token recipient → marketing; a receipt
//! template → receipt; a retired tag → the category that tag served, sent the way Herald sends
//! it today; `UTILITY` → the category whose policy names the template; `RESPONSE` (or none, as
//! pymessenger sends) → response; `UPDATE` → marketing unless `X-Herald-Category` names a
//! transactional category.
//!
//! This file decodes the parameters and answers Graph's errors; `parse.rs` checks them into a
//! [`SendApiRequest`], `command.rs` turns that into a [`GraphCommand`].

mod command;
mod parse;

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::policy::Reason;
use crate::routes::json::keep_null;

pub use self::command::{GraphCommand, GraphSend};
pub use self::parse::{SendApiPayload, SendApiRecipient, SendApiRequest};

/// The Graph Send API request, as Messenger client libraries send it (JSON, or form fields
/// holding JSON). `access_token` is the client's Herald JWT.
// Each parameter is kept as it came (see `domain::requests`) for `SendApiRequest::parse` to
// check, Graph's way: the first problem is the answer. Where Graph refuses a `null`, it is kept
// as a value. Any other parameter lands in `unknown` and is refused by name.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct GraphSendRequest {
    /// `{"id"}`, `{"user_ref"}`, `{"notification_messages_token"}`, …
    #[schema(value_type = Object)]
    pub recipient: Option<Value>,
    /// `RESPONSE`, `UPDATE`, `MESSAGE_TAG`, `UTILITY`.
    #[serde(default, deserialize_with = "keep_null")]
    #[schema(value_type = Option<String>)]
    pub messaging_type: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    #[schema(value_type = Option<String>)]
    pub tag: Option<Value>,
    #[serde(default, deserialize_with = "keep_null")]
    #[schema(value_type = Option<Object>)]
    pub message: Option<Value>,
    /// `typing_on`, `typing_off`, `mark_seen`.
    #[serde(default, deserialize_with = "keep_null")]
    #[schema(value_type = Option<String>)]
    pub sender_action: Option<Value>,
    // Accepted and passed over: Herald sends every message with Messenger's default
    // (`REGULAR`).
    #[serde(rename = "notification_type")]
    #[schema(value_type = Option<String>)]
    _notification_type: Option<Value>,
    // Read by the handler, never part of the request.
    #[schema(value_type = Option<String>)]
    pub access_token: Option<Value>,
    // Accepted and not checked: the JWT is the credential, and the app secret is the client's
    // to keep, not Herald's.
    #[serde(rename = "appsecret_proof")]
    #[schema(value_type = Option<String>)]
    _appsecret_proof: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Map<String, Value>,
}

impl GraphSendRequest {
    /// Decoded parameters, read into the request.
    pub fn read(params: Map<String, Value>) -> Result<GraphSendRequest, SendApiError> {
        // Each field is raw JSON and `unknown` takes any other key: parameters always read.
        serde_json::from_value(Value::Object(params))
            .map_err(|e| SendApiError::new("body", e.to_string()))
    }
}

/// Deferrals a Send API client gets as Messenger's own error rather than a queued message:
/// Messenger refuses a token send inside its cooldown (4/2018354) and the client's library
/// resends later by itself.
const REFUSED_DEFERRALS: &[Reason] = &[Reason::MarketingTokenCooldown];

/// What Herald supports in place of attachment uploads, for the error that refuses them.
pub const ATTACHMENTS_SUPPORTED: &str = "Herald does not upload or store files: send attachments by `payload.url` (without is_reusable) or by an `attachment_id` uploaded to Messenger directly";

/// A Send API request Herald cannot take: code 100 with the parameter named, as Graph does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Param {field} {message}")]
pub struct SendApiError {
    /// The parameter, in Graph's spelling: `message[text]`, `recipient[id]`.
    pub field: String,
    pub message: String,
    /// Graph's subcode where Messenger has one for the problem.
    pub subcode: Option<u32>,
}

impl SendApiError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> SendApiError {
        SendApiError {
            field: field.into(),
            message: message.into(),
            subcode: None,
        }
    }

    /// An attachment upload, which Herald refuses (naming what it supports).
    pub fn attachment_upload(field: impl Into<String>) -> SendApiError {
        SendApiError::new(field, format!("is not supported. {ATTACHMENTS_SUPPORTED}"))
    }

    /// Field errors of Herald's own validation, in Graph's spelling.
    pub fn from_fields(errors: &[FieldError]) -> SendApiError {
        let field = errors
            .first()
            .map_or_else(|| "message".to_owned(), |e| graph_path(&e.field));
        let message = errors
            .iter()
            .enumerate()
            .map(|(i, e)| match i {
                0 => e.message.clone(),
                _ => format!("{} {}", graph_path(&e.field), e.message),
            })
            .collect::<Vec<_>>()
            .join("; ");
        SendApiError::new(field, message)
    }
}

/// `message.quick_replies[0].title` → `message[quick_replies][0][title]`.
fn graph_path(path: &str) -> String {
    let mut parts = path.split('.');
    let mut out = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        // `quick_replies[0]`: the name in brackets, the index as it is.
        let (name, index) = part.split_at(part.find('[').unwrap_or(part.len()));
        out.push('[');
        out.push_str(name);
        out.push(']');
        out.push_str(index);
    }
    out
}

/// The request's parameters: the query string, then the body (JSON, or form fields whose values
/// hold JSON, as the official curl examples and pymessenger's form mode send them), the body
/// winning. A multipart body is an attachment upload, which Herald refuses.
pub fn decode_params(
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<GraphSendRequest, SendApiError> {
    let mut params = form_fields(query.as_bytes());
    let content_type = content_type
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/") {
        return Err(SendApiError::attachment_upload("filedata"));
    }
    let from_body = if content_type.starts_with("application/x-www-form-urlencoded") {
        form_fields(body)
    } else if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(SendApiError::new(
                    "body",
                    "must be a JSON object or form fields",
                ))
            }
        }
    };
    params.extend(from_body);
    // As every JSON route refuses it (`routes::json`), whichever way the parameters came.
    if let Some(path) = crate::routes::json::nul_in(&params) {
        return Err(SendApiError::new(
            graph_path(&path),
            crate::routes::json::NUL_REFUSED,
        ));
    }
    GraphSendRequest::read(params)
}

/// Form (or query) fields; a value that reads as a JSON object or array is that JSON. Graph is
/// lenient about single quotes there (`recipient={'id':'123'}` in Meta's own curl example).
fn form_fields(bytes: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, raw) in url::form_urlencoded::parse(bytes) {
        let start = raw.trim_start().chars().next();
        let value = match start {
            Some('{' | '[') => serde_json::from_str::<Value>(&raw)
                .ok()
                .or_else(|| serde_json::from_str::<Value>(&raw.replace('\'', "\"")).ok())
                .unwrap_or_else(|| Value::String(raw.clone().into_owned())),
            _ => Value::String(raw.into_owned()),
        };
        out.insert(key.into_owned(), value);
    }
    out
}

#[cfg(test)]
mod tests;
