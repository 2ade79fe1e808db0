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

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::json::keep_null;
use crate::app::{SendCommand, SenderAction, SenderActionCommand, WhenDeferred};
use crate::auth::Client;
use crate::domain::{
    validate_message_object, Category, Content, FieldError, OutboundMessage, PageId, Psid,
    Recipient, UtilityTemplate, Violations,
};
use crate::policy::{MessagingType, PolicySet, Reason, Tag};

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

/// Who a Send API request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendApiRecipient {
    /// `recipient.id`.
    Psid(Psid),
    /// `recipient.user_ref`: a checkbox plugin opt-in.
    UserRef(String),
    /// `recipient.notification_messages_token`: a Marketing Messages token.
    MarketingToken(String),
}

/// What a Send API request carries.
#[derive(Debug, Clone, PartialEq)]
pub enum SendApiPayload {
    /// `message`: a Messenger message object (text, attachment, or a utility `template`).
    Message(Value),
    /// `sender_action`.
    SenderAction(SenderAction),
}

/// A Send API request, its shape checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SendApiRequest {
    pub recipient: SendApiRecipient,
    /// `None` when the client sent none (pymessenger); Graph takes that as `RESPONSE`.
    pub messaging_type: Option<MessagingType>,
    pub tag: Option<Tag>,
    pub payload: SendApiPayload,
}

impl SendApiRequest {
    /// Checks the parameters, the credentials aside (the handler's).
    pub fn parse(params: &GraphSendRequest) -> Result<SendApiRequest, SendApiError> {
        if let Some(key) = params.unknown.keys().next() {
            let message = match key.as_str() {
                "filedata" => return Err(SendApiError::attachment_upload("filedata")),
                "persona_id" | "reply_to" => "is not supported by Herald",
                _ => "is not a Send API parameter Herald knows",
            };
            return Err(SendApiError::new(key.clone(), message));
        }
        let recipient = parse_recipient(params.recipient.as_ref())?;
        let messaging_type = match &params.messaging_type {
            None => None,
            Some(v) => Some(wire_enum::<MessagingType>(v).ok_or_else(|| {
                SendApiError::new(
                    "messaging_type",
                    "must be one of {RESPONSE, UPDATE, MESSAGE_TAG, UTILITY}",
                )
            })?),
        };
        let tag = match &params.tag {
            None => None,
            Some(v) => Some(wire_enum::<Tag>(v).ok_or_else(|| {
                SendApiError::new(
                    "tag",
                    "must be one of {HUMAN_AGENT, POST_PURCHASE_UPDATE, ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE}",
                )
            })?),
        };
        match (messaging_type, tag) {
            (Some(MessagingType::MessageTag), None) => {
                return Err(SendApiError::new(
                    "tag",
                    "is required when messaging_type is MESSAGE_TAG",
                ))
            }
            (Some(MessagingType::MessageTag), Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(SendApiError::new(
                    "tag",
                    "can only be used with messaging_type MESSAGE_TAG",
                ))
            }
        }
        let payload = match (&params.message, &params.sender_action) {
            (Some(_), Some(_)) => {
                return Err(SendApiError {
                    subcode: Some(2018014),
                    ..SendApiError::new("sender_action", "cannot be sent together with message")
                })
            }
            (None, None) => {
                return Err(SendApiError::new(
                    "message",
                    "is required (or sender_action)",
                ))
            }
            (Some(m), None) => SendApiPayload::Message(m.clone()),
            (None, Some(a)) => {
                let action = a
                    .as_str()
                    .ok_or_else(|| SendApiError::new("sender_action", "must be a string"))?
                    .parse::<SenderAction>()
                    .map_err(|e| SendApiError::new("sender_action", e))?;
                if tag.is_some() || messaging_type == Some(MessagingType::Utility) {
                    return Err(SendApiError::new(
                        "sender_action",
                        "cannot carry a message tag or a utility template",
                    ));
                }
                SendApiPayload::SenderAction(action)
            }
        };
        Ok(SendApiRequest {
            recipient,
            messaging_type,
            tag,
            payload,
        })
    }
}

/// A wire spelling (`"MESSAGE_TAG"`) into its enum.
fn wire_enum<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
    v.as_str()?;
    serde_json::from_value(v.clone()).ok()
}

fn parse_recipient(value: Option<&Value>) -> Result<SendApiRecipient, SendApiError> {
    let Some(Value::Object(r)) = value else {
        return Err(SendApiError::new(
            "recipient",
            "is required and must be an object",
        ));
    };
    let mut forms = r.iter();
    let (Some((form, value)), None) = (forms.next(), forms.next()) else {
        return Err(SendApiError::new(
            "recipient",
            "must have exactly one of id, user_ref, notification_messages_token",
        ));
    };
    let field = format!("recipient[{form}]");
    let text = match value {
        Value::String(s) if !s.trim().is_empty() => s.clone(),
        // Graph takes numeric ids too.
        Value::Number(n) if form == "id" => n.to_string(),
        _ => return Err(SendApiError::new(field, "must be a non-empty string")),
    };
    match form.as_str() {
        "id" => Psid::parse(&text)
            .map(SendApiRecipient::Psid)
            .map_err(|e| SendApiError::new(field, e)),
        "user_ref" => Ok(SendApiRecipient::UserRef(text)),
        "notification_messages_token" => Ok(SendApiRecipient::MarketingToken(text)),
        "comment_id" | "post_id" | "one_time_notif_token" | "phone_number" => Err(
            SendApiError::new(
                field,
                "is not supported by Herald; address people by id, user_ref or notification_messages_token",
            ),
        ),
        _ => Err(SendApiError::new(field, "is not a recipient field")),
    }
}

/// A Send API request with what the handler knows besides its body.
pub struct GraphSend<'a> {
    pub request: SendApiRequest,
    pub client: Client,
    /// The page of `/{page_id}/messages`; `None` for `/me/messages` (the default page).
    pub page_id: Option<PageId>,
    /// `X-Herald-Category`, when the client names the category itself.
    pub declared: Option<Category>,
    /// The PSID a `notification_messages_token` recipient belongs to, looked up beforehand;
    /// `None` when the token is unknown.
    pub token_owner: Option<Psid>,
    /// The policy in force: which category a utility template serves.
    pub policy: &'a PolicySet,
}

/// What a Send API request asks the core to do.
#[derive(Debug)]
pub enum GraphCommand {
    Send(Box<SendCommand>),
    SenderAction(SenderActionCommand),
}

impl TryFrom<GraphSend<'_>> for GraphCommand {
    type Error = SendApiError;

    fn try_from(g: GraphSend<'_>) -> Result<GraphCommand, SendApiError> {
        let recipient = match &g.request.recipient {
            SendApiRecipient::Psid(p) => Recipient::Psid(p.clone()),
            SendApiRecipient::UserRef(r) => Recipient::UserRef(r.clone()),
            SendApiRecipient::MarketingToken(_) => match &g.token_owner {
                Some(p) => Recipient::Psid(p.clone()),
                None => {
                    return Err(SendApiError::new(
                        "recipient[notification_messages_token]",
                        "is invalid or has expired",
                    ))
                }
            },
        };
        let message = match &g.request.payload {
            SendApiPayload::SenderAction(action) => {
                if matches!(g.request.recipient, SendApiRecipient::MarketingToken(_)) {
                    return Err(SendApiError::new(
                        "recipient",
                        "of a sender_action must be an id or user_ref",
                    ));
                }
                return Ok(GraphCommand::SenderAction(SenderActionCommand {
                    client: g.client,
                    page_id: g.page_id,
                    recipient,
                    action: *action,
                }));
            }
            SendApiPayload::Message(m) => m,
        };
        let utility_template = match g.request.messaging_type {
            Some(MessagingType::Utility) => Some(utility_template(message)?),
            _ => {
                check_message(message)?;
                None
            }
        };
        let content = Content::Message(message.clone());
        let category = category(&g, &content, utility_template.as_ref())?;
        Ok(GraphCommand::Send(Box::new(SendCommand {
            client: g.client,
            message: OutboundMessage {
                page_id: g.page_id,
                recipient,
                category,
                content,
                utility_template,
                send_at: None,
                expires_at: None,
                respect_quiet_hours: true,
            },
            idempotency: None,
            campaign: None,
            when_deferred: WhenDeferred::Refuse(REFUSED_DEFERRALS),
        })))
    }
}

/// Herald's checks of a Messenger message object, plus the uploads it refuses.
fn check_message(message: &Value) -> Result<(), SendApiError> {
    if message.pointer("/attachment/payload/is_reusable") == Some(&Value::Bool(true)) {
        return Err(SendApiError::attachment_upload(
            "message[attachment][payload][is_reusable]",
        ));
    }
    let mut v = Violations::default();
    validate_message_object(message, "message", &mut v);
    match v.into_inner() {
        errors if errors.is_empty() => Ok(()),
        errors => Err(SendApiError::from_fields(&errors)),
    }
}

/// `message.template` of a UTILITY request: `{name, language: {code}, components: [{type:
/// "body", parameters: [{type: "text", text}]}]}` (MESSENGER.md §1.4), with positional text
/// parameters, the form Herald sends.
fn utility_template(message: &Value) -> Result<UtilityTemplate, SendApiError> {
    let bad =
        |field: &str, what: &str| SendApiError::new(format!("message[template]{field}"), what);
    if let Some(other) = message
        .as_object()
        .and_then(|m| m.keys().find(|k| *k != "template"))
    {
        return Err(SendApiError::new(
            format!("message[{other}]"),
            "cannot be sent with a utility template",
        ));
    }
    let Some(template) = message.get("template").filter(|t| t.is_object()) else {
        return Err(SendApiError::new(
            "message[template]",
            "is required when messaging_type is UTILITY",
        ));
    };
    let name = template
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| bad("[name]", "is required"))?;
    let language = match template.get("language") {
        Some(Value::String(code)) => Some(code.as_str()),
        Some(l) => l.get("code").and_then(Value::as_str),
        None => None,
    }
    .ok_or_else(|| bad("[language][code]", "is required"))?;
    let mut parameters = Vec::new();
    let components = template.get("components").and_then(Value::as_array);
    for (i, c) in components.into_iter().flatten().enumerate() {
        if c.get("type").and_then(Value::as_str) != Some("body") {
            return Err(bad(
                &format!("[components][{i}][type]"),
                "must be body: Herald sends utility templates with positional text parameters only",
            ));
        }
        let params = c.get("parameters").and_then(Value::as_array);
        for (j, p) in params.into_iter().flatten().enumerate() {
            match (
                p.get("type").and_then(Value::as_str),
                p.get("text").and_then(Value::as_str),
            ) {
                (Some("text"), Some(text)) if p.get("parameter_name").is_none() => {
                    parameters.push(text.to_owned())
                }
                _ => {
                    return Err(bad(
                        &format!("[components][{i}][parameters][{j}]"),
                        "must be {\"type\": \"text\", \"text\": …} (positional)",
                    ))
                }
            }
        }
    }
    Ok(UtilityTemplate {
        name: name.to_owned(),
        language: language.to_owned(),
        parameters,
    })
}

/// The category a Send API request stands for (see the module documentation).
fn category(
    g: &GraphSend<'_>,
    content: &Content,
    template: Option<&UtilityTemplate>,
) -> Result<Category, SendApiError> {
    let declared_transactional = g.declared.filter(|c| c.is_transactional());
    if g.request.tag == Some(Tag::HumanAgent) {
        return Ok(Category::AgentReply);
    }
    if matches!(g.request.recipient, SendApiRecipient::MarketingToken(_)) {
        return Ok(Category::Marketing);
    }
    if content.is_receipt() {
        return Ok(Category::Receipt);
    }
    match (g.request.tag, g.request.messaging_type) {
        // Retired tags: the category the tag served, which the policy sends today as it sends
        // that category (outside the window: a utility template), never with the dead tag.
        (Some(Tag::PostPurchaseUpdate), _) => Ok(match declared_transactional {
            Some(c @ (Category::Receipt | Category::ShippingUpdate)) => c,
            _ => Category::ShippingUpdate,
        }),
        (Some(Tag::AccountUpdate), _) => Ok(Category::AccountUpdate),
        (Some(Tag::ConfirmedEventUpdate), _) => Ok(Category::EventUpdate),
        (_, Some(MessagingType::Utility)) => {
            let name = template.map_or("", |t| t.name.as_str());
            g.policy
                .category_of_template(name)
                .or(declared_transactional)
                .ok_or_else(|| {
                    SendApiError::new(
                        "message[template][name]",
                        format!("`{name}` is not a template the policy names; send X-Herald-Category with the transactional category it serves"),
                    )
                })
        }
        (_, Some(MessagingType::Update)) => Ok(g.declared.unwrap_or(Category::Marketing)),
        _ => Ok(Category::Response),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Role;

    fn policy() -> PolicySet {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        PolicySet::load_dir(&dir).expect("the default policy loads")
    }

    fn command(params: Value, declared: Option<Category>) -> Result<GraphCommand, SendApiError> {
        let Value::Object(params) = params else {
            panic!("params must be an object")
        };
        let request = SendApiRequest::parse(&GraphSendRequest::read(params)?)?;
        let policy = policy();
        GraphCommand::try_from(GraphSend {
            request,
            client: Client {
                name: "shop".into(),
                role: Role::Backend,
            },
            page_id: None,
            declared,
            token_owner: Psid::parse("42").ok(),
            policy: &policy,
        })
    }

    fn category_of(params: Value, declared: Option<Category>) -> Category {
        match command(params.clone(), declared) {
            Ok(GraphCommand::Send(cmd)) => cmd.message.category,
            other => panic!("{params}: {other:?}"),
        }
    }

    #[test]
    fn the_category_follows_from_the_request() {
        let text = json!({"text": "hi"});
        let receipt = json!({"attachment": {"type": "template", "payload": {
            "template_type": "receipt", "recipient_name": "Ada", "order_number": "A-1",
            "currency": "EUR", "payment_method": "Visa", "summary": {"total_cost": 1}}}});
        let utility =
            |name: &str| json!({"template": {"name": name, "language": {"code": "en_US"}}});
        let id = json!({"id": "123"});
        let cases = [
            (
                "HUMAN_AGENT",
                json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT", "message": text}),
                None,
                Category::AgentReply,
            ),
            (
                "token recipient",
                json!({"recipient": {"notification_messages_token": "T"}, "message": text}),
                None,
                Category::Marketing,
            ),
            (
                "receipt template",
                json!({"recipient": id, "messaging_type": "UPDATE", "message": receipt}),
                None,
                Category::Receipt,
            ),
            (
                "RESPONSE",
                json!({"recipient": id, "messaging_type": "RESPONSE", "message": text}),
                None,
                Category::Response,
            ),
            (
                "no messaging_type (pymessenger)",
                json!({"recipient": id, "message": text}),
                None,
                Category::Response,
            ),
            (
                "UPDATE",
                json!({"recipient": id, "messaging_type": "UPDATE", "message": text}),
                None,
                Category::Marketing,
            ),
            (
                "UPDATE declared",
                json!({"recipient": id, "messaging_type": "UPDATE", "message": text}),
                Some(Category::AccountUpdate),
                Category::AccountUpdate,
            ),
            (
                "UTILITY, the policy's receipt template",
                json!({"recipient": id, "messaging_type": "UTILITY", "message": utility("herald_order_receipt")}),
                None,
                Category::Receipt,
            ),
            (
                "UTILITY, the policy's shipping template",
                json!({"recipient": id, "messaging_type": "UTILITY", "message": utility("herald_shipping_update")}),
                None,
                Category::ShippingUpdate,
            ),
            (
                "UTILITY, a client template declared",
                json!({"recipient": id, "messaging_type": "UTILITY", "message": utility("password_reset")}),
                Some(Category::AccountUpdate),
                Category::AccountUpdate,
            ),
            (
                "POST_PURCHASE_UPDATE",
                json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE", "message": text}),
                None,
                Category::ShippingUpdate,
            ),
            (
                "POST_PURCHASE_UPDATE with a receipt",
                json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE", "message": receipt}),
                None,
                Category::Receipt,
            ),
            (
                "ACCOUNT_UPDATE",
                json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE", "message": text}),
                None,
                Category::AccountUpdate,
            ),
            (
                "CONFIRMED_EVENT_UPDATE",
                json!({"recipient": id, "messaging_type": "MESSAGE_TAG", "tag": "CONFIRMED_EVENT_UPDATE", "message": text}),
                None,
                Category::EventUpdate,
            ),
        ];
        for (what, params, declared, expected) in cases {
            assert_eq!(category_of(params, declared), expected, "{what}");
        }
    }

    #[test]
    fn bad_requests_name_the_parameter() {
        let cases = [
            (json!({"message": {"text": "hi"}}), "recipient"),
            (
                json!({"recipient": {"id": "1", "user_ref": "u"}, "message": {"text": "hi"}}),
                "recipient",
            ),
            (
                json!({"recipient": {"id": "1"}, "message": {"text": "x".repeat(2000)}}),
                "message[text]",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "SOMETIMES", "message": {"text": "hi"}}),
                "messaging_type",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG", "message": {"text": "hi"}}),
                "tag",
            ),
            (
                json!({"recipient": {"id": "1"}, "message": {"text": "hi"}, "sender_action": "typing_on"}),
                "sender_action",
            ),
            (
                json!({"recipient": {"id": "1"}, "message": {"attachment": {"type": "image", "payload": {"url": "https://x.example/a.png", "is_reusable": true}}}}),
                "message[attachment][payload][is_reusable]",
            ),
            (
                json!({"recipient": {"id": "1"}, "messaging_type": "UTILITY", "message": {"template": {"name": "nobody_knows", "language": {"code": "en_US"}}}}),
                "message[template][name]",
            ),
            (
                json!({"recipient": {"comment_id": "1"}, "message": {"text": "hi"}}),
                "recipient[comment_id]",
            ),
            (
                json!({"recipient": {"id": "1"}, "message": {"text": "hi"}, "persona_id": "9"}),
                "persona_id",
            ),
        ];
        for (params, field) in cases {
            match command(params.clone(), None) {
                Err(e) => assert_eq!(e.field, field, "{params}: {e}"),
                Ok(cmd) => panic!("{params} was taken: {cmd:?}"),
            }
        }
    }

    #[test]
    fn form_fields_holding_json_decode_as_json() {
        let body = b"recipient=%7B%27id%27%3A%27123%27%7D&message=%7B%22text%22%3A%22hi%22%7D&messaging_type=RESPONSE";
        let params = decode_params(
            "access_token=t&appsecret_proof=p",
            Some("application/x-www-form-urlencoded"),
            body,
        )
        .expect("decodes");
        assert_eq!(params.recipient, Some(json!({"id": "123"})));
        assert_eq!(params.message, Some(json!({"text": "hi"})));
        assert_eq!(params.access_token, Some(json!("t")));
        let request = SendApiRequest::parse(&params).expect("parses");
        assert_eq!(request.messaging_type, Some(MessagingType::Response));
    }

    #[test]
    fn graph_paths_use_brackets() {
        assert_eq!(graph_path("message.text"), "message[text]");
        assert_eq!(
            graph_path("message.quick_replies[0].title"),
            "message[quick_replies][0][title]"
        );
        assert_eq!(graph_path("message"), "message");
    }
}
