//! The Send API request: decoding (JSON, or form fields holding JSON) and the shape rules
//! of MESSENGER.md §1 and §10.2, answered with code 100 like Messenger does.
//!
//! Everything here is pure: it reads the request parameters and says what the send asks for,
//! or which parameter is wrong. Who the recipient is and whether the window allows the send
//! is decided later, against the sandbox's state.

use serde_json::{Map, Value};

use super::error::GraphError;
use super::rules::{Purpose, Tag};

/// Longest `message.text`, in characters: Messenger wants it under 2000.
pub const MAX_TEXT_CHARS: usize = 1999;
/// Longest `message.metadata`, in characters: Messenger wants it under 1000.
pub const MAX_METADATA_CHARS: usize = 999;
/// Most `message.quick_replies`.
pub const MAX_QUICK_REPLIES: usize = 13;
/// Most elements in a receipt template.
pub const MAX_RECEIPT_ELEMENTS: usize = 100;

/// Parameters that authenticate the call and are not part of the message.
pub const CREDENTIAL_PARAMS: [&str; 2] = ["access_token", "appsecret_proof"];

/// The recipient forms of §1.2, in the order error messages list them.
const RECIPIENT_FORMS: [&str; 7] = [
    "id",
    "user_ref",
    "notification_messages_token",
    "one_time_notif_token",
    "comment_id",
    "post_id",
    "phone_number",
];

/// Decodes a Send API body into its top-level parameters.
///
/// JSON bodies must be an object. Form bodies (`application/x-www-form-urlencoded`) carry
/// each parameter as a JSON string (`recipient={"id":"…"}`), or as a plain string for scalar
/// parameters (`messaging_type=RESPONSE`). The official curl example quotes with `'`, which
/// Graph tolerates, so a value that only parses after swapping quotes is accepted too.
pub fn decode_params(content_type: &str, body: &[u8]) -> Result<Map<String, Value>, GraphError> {
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs = url::form_urlencoded::parse(body).into_owned();
        return Ok(form_params(pairs));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(params)) => Ok(params),
        _ => Err(GraphError::invalid_parameter(
            "The request body must be a JSON object",
        )),
    }
}

/// Turns form or query pairs into parameters, decoding values that hold JSON.
pub fn form_params(pairs: impl IntoIterator<Item = (String, String)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(key, raw)| (key, form_value(&raw)))
        .collect()
}

fn form_value(raw: &str) -> Value {
    let trimmed = raw.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return Value::String(raw.to_owned());
    }
    serde_json::from_str(raw)
        .or_else(|_| serde_json::from_str(&raw.replace('\'', "\"")))
        .unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Who a send is addressed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// `recipient.id`: a page-scoped id.
    Psid(String),
    /// `recipient.user_ref`: a checkbox plugin opt-in.
    UserRef(String),
    /// `recipient.notification_messages_token`: a Marketing Messages token.
    MarketingToken(String),
    /// A form Messenger has but the sandbox does not model (OTN, private replies, phone).
    Unmodelled {
        /// The recipient field used.
        form: &'static str,
        /// Its value.
        value: String,
    },
}

/// What the send carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// A `message` (text, attachment or utility template).
    Message,
    /// A `sender_action` such as `typing_on`.
    SenderAction,
}

/// A Send API request whose shape Messenger would accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The one recipient form used.
    pub recipient: Recipient,
    /// What the send asks of the messaging window.
    pub purpose: Purpose,
    /// Message or sender action.
    pub content: Content,
}

/// Checks the shape of a Send API request (§10.2) and says what it asks for.
pub fn parse_send_request(params: &Map<String, Value>) -> Result<SendRequest, GraphError> {
    let recipient = parse_recipient(params.get("recipient"))?;
    let purpose = parse_purpose(params)?;
    if let Some(kind) = params.get("notification_type") {
        let kinds = ["REGULAR", "SILENT_PUSH", "NO_PUSH"];
        if !kind.as_str().is_some_and(|kind| kinds.contains(&kind)) {
            return Err(GraphError::invalid_parameter(
                "Param notification_type must be one of {REGULAR, SILENT_PUSH, NO_PUSH}",
            ));
        }
    }
    let content = match (params.get("message"), params.get("sender_action")) {
        (Some(_), Some(_)) => {
            return Err(GraphError::new(
                100,
                Some(2018014),
                "Cannot send message and sender action together",
            ))
        }
        (None, None) => {
            return Err(GraphError::invalid_parameter(
                "Must send either message or sender_action",
            ))
        }
        (Some(message), None) => {
            check_message(message, purpose)?;
            Content::Message
        }
        (None, Some(action)) => {
            let actions = ["typing_on", "typing_off", "mark_seen"];
            if !action.as_str().is_some_and(|a| actions.contains(&a)) {
                return Err(GraphError::invalid_parameter(
                    "Param sender_action must be one of {typing_on, typing_off, mark_seen}",
                ));
            }
            if purpose != Purpose::Standard {
                return Err(GraphError::invalid_parameter(
                    "A sender_action cannot carry a message tag or a utility template",
                ));
            }
            Content::SenderAction
        }
    };
    Ok(SendRequest {
        recipient,
        purpose,
        content,
    })
}

fn parse_recipient(recipient: Option<&Value>) -> Result<Recipient, GraphError> {
    let Some(Value::Object(recipient)) = recipient else {
        return Err(GraphError::invalid_parameter(
            "The parameter recipient is required and must be an object",
        ));
    };
    let present: Vec<&'static str> = RECIPIENT_FORMS
        .into_iter()
        .filter(|form| recipient.contains_key(*form))
        .collect();
    let [form] = present.as_slice() else {
        return Err(GraphError::invalid_parameter(&format!(
            "Param recipient must contain exactly one of {{{}}}",
            RECIPIENT_FORMS.join(", ")
        )));
    };
    if let Some(other) = recipient
        .keys()
        .find(|key| !RECIPIENT_FORMS.contains(&key.as_str()))
    {
        return Err(GraphError::invalid_parameter(&format!(
            "Param recipient[{other}] is not a recipient field"
        )));
    }
    // Graph accepts ids as numbers too; everything else must be a non-empty string.
    let value = match recipient.get(*form) {
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        Some(Value::Number(number)) if *form == "id" => number.to_string(),
        _ => {
            return Err(GraphError::invalid_parameter(&format!(
                "Param recipient[{form}] must be a non-empty string"
            )))
        }
    };
    Ok(match *form {
        "id" => Recipient::Psid(value),
        "user_ref" => Recipient::UserRef(value),
        "notification_messages_token" => Recipient::MarketingToken(value),
        form => Recipient::Unmodelled { form, value },
    })
}

fn parse_purpose(params: &Map<String, Value>) -> Result<Purpose, GraphError> {
    let messaging_type = match params.get("messaging_type") {
        None => None,
        Some(Value::String(kind)) => Some(kind.as_str()),
        Some(_) => return Err(invalid_messaging_type()),
    };
    let tag = match params.get("tag") {
        None => None,
        Some(Value::String(name)) => Some(Tag::parse(name).ok_or_else(|| {
            GraphError::invalid_parameter(&format!("Param tag must be one of {{{}}}", Tag::NAMES))
        })?),
        Some(_) => return Err(GraphError::invalid_parameter("Param tag must be a string")),
    };
    match (messaging_type, tag) {
        (Some("MESSAGE_TAG"), Some(tag)) => Ok(Purpose::Tagged(tag)),
        (Some("MESSAGE_TAG"), None) => Err(GraphError::invalid_parameter(
            "Param tag is required when messaging_type is MESSAGE_TAG",
        )),
        (_, Some(_)) => Err(GraphError::invalid_parameter(
            "Param tag can only be used with messaging_type MESSAGE_TAG",
        )),
        // Older clients (pymessenger, the RN token examples) send no messaging_type; Graph
        // treats such a send like RESPONSE.
        (None | Some("RESPONSE" | "UPDATE"), None) => Ok(Purpose::Standard),
        (Some("UTILITY"), None) => Ok(Purpose::Utility),
        (Some(_), None) => Err(invalid_messaging_type()),
    }
}

fn invalid_messaging_type() -> GraphError {
    GraphError::invalid_parameter(
        "Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG, UTILITY}",
    )
}

fn check_message(message: &Value, purpose: Purpose) -> Result<(), GraphError> {
    let Value::Object(message) = message else {
        return Err(GraphError::invalid_parameter(
            "Param message must be an object",
        ));
    };
    let text = message.get("text");
    let attachment = message.get("attachment");
    let template = message.get("template");
    match (text, attachment, template) {
        (None, None, None) => {
            return Err(GraphError::new(
                100,
                Some(2018034),
                "Message cannot be empty, must provide valid attachment or text",
            ))
        }
        (Some(text), None, None) => check_text(text)?,
        (None, Some(attachment), None) => check_attachment(attachment)?,
        (None, None, Some(template)) => {
            if purpose != Purpose::Utility {
                return Err(GraphError::invalid_parameter(
                    "Param message[template] can only be used with messaging_type UTILITY",
                ));
            }
            check_utility_template(template)?;
        }
        _ => {
            return Err(GraphError::invalid_parameter(
                "Param message must contain exactly one of text, attachment or template",
            ))
        }
    }
    if purpose == Purpose::Utility && template.is_none() {
        return Err(GraphError::invalid_parameter(
            "Param message[template] is required when messaging_type is UTILITY",
        ));
    }
    if let Some(metadata) = message.get("metadata") {
        let Some(metadata) = metadata.as_str() else {
            return Err(GraphError::invalid_parameter(
                "Param message[metadata] must be a string",
            ));
        };
        if metadata.chars().count() > MAX_METADATA_CHARS {
            return Err(GraphError::invalid_parameter(
                "Length of param message[metadata] must be less than 1000",
            ));
        }
    }
    if let Some(quick_replies) = message.get("quick_replies") {
        check_quick_replies(quick_replies)?;
    }
    Ok(())
}

fn check_text(text: &Value) -> Result<(), GraphError> {
    let Some(text) = text.as_str() else {
        return Err(GraphError::invalid_parameter(
            "Param message[text] must be a string",
        ));
    };
    if text.trim().is_empty() {
        return Err(GraphError::new(
            100,
            Some(2018034),
            "Message cannot be empty, must provide valid attachment or text",
        ));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(GraphError::invalid_parameter(
            "Length of param message[text] must be less than 2000",
        ));
    }
    Ok(())
}

fn check_quick_replies(quick_replies: &Value) -> Result<(), GraphError> {
    let Some(quick_replies) = quick_replies.as_array() else {
        return Err(GraphError::invalid_parameter(
            "Param message[quick_replies] must be an array",
        ));
    };
    if quick_replies.len() > MAX_QUICK_REPLIES {
        return Err(GraphError::invalid_parameter(
            "Param message[quick_replies] must have at most 13 elements",
        ));
    }
    for (index, reply) in quick_replies.iter().enumerate() {
        let field = |name: &str| reply.get(name).and_then(Value::as_str);
        let valid = match field("content_type") {
            Some("text") => {
                field("title").is_some_and(|t| !t.is_empty()) && field("payload").is_some()
            }
            Some("user_phone_number" | "user_email") => true,
            _ => false,
        };
        if !valid {
            return Err(GraphError::invalid_parameter(&format!(
                "Param message[quick_replies][{index}] must have content_type text (with title \
                 and payload), user_phone_number or user_email"
            )));
        }
    }
    Ok(())
}

fn check_attachment(attachment: &Value) -> Result<(), GraphError> {
    let kind = attachment.get("type").and_then(Value::as_str);
    let Some(payload) = attachment.get("payload").and_then(Value::as_object) else {
        return Err(GraphError::invalid_parameter(
            "Param message[attachment][payload] must be an object",
        ));
    };
    match kind {
        Some("audio" | "file" | "image" | "video") => {
            let has = |name: &str| {
                payload
                    .get(name)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
            };
            if has("url") || has("attachment_id") {
                Ok(())
            } else {
                Err(GraphError::invalid_parameter(
                    "Param message[attachment][payload] needs a url or an attachment_id",
                ))
            }
        }
        Some("template") => match payload.get("template_type").and_then(Value::as_str) {
            Some("receipt") => check_receipt(payload),
            Some(_) => Ok(()),
            None => Err(GraphError::invalid_parameter(
                "Param message[attachment][payload][template_type] is required",
            )),
        },
        _ => Err(GraphError::invalid_parameter(
            "Param message[attachment][type] must be one of {audio, file, image, template, video}",
        )),
    }
}

/// The receipt template's required fields (MESSENGER.md §4).
fn check_receipt(payload: &Map<String, Value>) -> Result<(), GraphError> {
    const FIELD: &str = "message[attachment][payload]";
    let missing = |field: String| {
        GraphError::invalid_parameter(&format!("Param {FIELD}[{field}] is required"))
    };
    let is_text =
        |value: Option<&Value>| value.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    let is_amount = |value: Option<&Value>| {
        value.is_some_and(|value| {
            value.is_number() || value.as_str().is_some_and(|s| s.parse::<f64>().is_ok())
        })
    };
    for field in [
        "recipient_name",
        "order_number",
        "currency",
        "payment_method",
    ] {
        if !is_text(payload.get(field)) {
            return Err(missing(field.to_owned()));
        }
    }
    if !is_amount(
        payload
            .get("summary")
            .and_then(|summary| summary.get("total_cost")),
    ) {
        return Err(missing("summary][total_cost".to_owned()));
    }
    if let Some(address) = payload.get("address") {
        for field in ["street_1", "city", "postal_code", "state", "country"] {
            if !is_text(address.get(field)) {
                return Err(missing(format!("address][{field}")));
            }
        }
    }
    if let Some(adjustments) = payload.get("adjustments") {
        let adjustments = adjustments
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (index, adjustment) in adjustments.iter().enumerate() {
            if !is_text(adjustment.get("name")) {
                return Err(missing(format!("adjustments][{index}][name")));
            }
            if !is_amount(adjustment.get("amount")) {
                return Err(missing(format!("adjustments][{index}][amount")));
            }
        }
    }
    if let Some(elements) = payload.get("elements") {
        let Some(elements) = elements.as_array() else {
            return Err(GraphError::invalid_parameter(&format!(
                "Param {FIELD}[elements] must be an array"
            )));
        };
        if elements.len() > MAX_RECEIPT_ELEMENTS {
            return Err(GraphError::invalid_parameter(&format!(
                "Param {FIELD}[elements] must have at most 100 elements"
            )));
        }
        for (index, element) in elements.iter().enumerate() {
            if !is_text(element.get("title")) {
                return Err(missing(format!("elements][{index}][title")));
            }
            if !is_amount(element.get("price")) {
                return Err(missing(format!("elements][{index}][price")));
            }
        }
    }
    Ok(())
}

/// A utility template: `{name, language: {code}, components?: [{type, parameters?}]}` (§1.4).
fn check_utility_template(template: &Value) -> Result<(), GraphError> {
    let non_empty =
        |value: Option<&Value>| value.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if !non_empty(template.get("name")) {
        return Err(GraphError::invalid_parameter(
            "Param message[template][name] is required",
        ));
    }
    if !non_empty(
        template
            .get("language")
            .and_then(|language| language.get("code")),
    ) {
        return Err(GraphError::invalid_parameter(
            "Param message[template][language][code] is required",
        ));
    }
    let Some(components) = template.get("components") else {
        return Ok(());
    };
    let Some(components) = components.as_array() else {
        return Err(GraphError::invalid_parameter(
            "Param message[template][components] must be an array",
        ));
    };
    for (index, component) in components.iter().enumerate() {
        let typed = non_empty(component.get("type"));
        let parameters_ok = component.get("parameters").is_none_or(Value::is_array);
        if !typed || !parameters_ok {
            return Err(GraphError::invalid_parameter(&format!(
                "Param message[template][components][{index}] needs a type and an array of \
                 parameters"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
