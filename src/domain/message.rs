use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::Fields;
use super::receipt::check_url;
use super::requests::Addressed;
use super::{
    check_text, Body, Category, FieldError, PageId, Receipt, ReceiptRequest, Recipient,
    SendMessageRequest, ShippingUpdate, ShippingUpdateRequest, Violations,
};

/// Messenger's limit on a text message: under 2,000 characters (it answers error 100 to 2,000).
pub const MAX_TEXT_CHARS: usize = 1999;
const MAX_QUICK_REPLIES: usize = 13;
const MAX_METADATA_CHARS: usize = 1000;
const ATTACHMENT_TYPES: [&str; 5] = ["audio", "file", "image", "template", "video"];

/// A message a client asked Herald to send, validated and ready for the policy engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The page to send as; `None` means the configured default page.
    pub page_id: Option<PageId>,
    pub recipient: Recipient,
    pub category: Category,
    pub content: Content,
    /// A utility template for use outside the window, when the client supplies one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility_template: Option<UtilityTemplate>,
    /// Not before this moment; absent means now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<DateTime<Utc>>,
    /// Not sent by this moment, it expires; absent means the category's time-to-live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the policy's quiet hours apply. Always true for a single send; a campaign
    /// created with `respect_quiet_hours: false` waives them for its own messages.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub respect_quiet_hours: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What is sent: a Messenger message object as the client wrote it, or a structured
/// receipt or shipping update that Herald renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "snake_case")]
pub enum Content {
    Message(Value),
    Receipt(Box<Receipt>),
    ShippingUpdate(ShippingUpdate),
}

impl Content {
    /// A Messenger receipt template is a receipt too, wherever it came from.
    pub fn is_receipt(&self) -> bool {
        match self {
            Content::Receipt(_) => true,
            Content::Message(m) => {
                m.pointer("/attachment/payload/template_type")
                    .and_then(Value::as_str)
                    == Some("receipt")
            }
            Content::ShippingUpdate(_) => false,
        }
    }

    /// A Messenger message that is nothing but a utility template (`message.template`, as the
    /// Send API takes it with `messaging_type: UTILITY`): it can only ever go as UTILITY.
    pub fn is_utility_template(&self) -> bool {
        match self {
            Content::Message(m) => m.get("template").is_some(),
            Content::Receipt(_) | Content::ShippingUpdate(_) => false,
        }
    }
}

/// A utility template (`messaging_type: UTILITY`) with positional parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UtilityTemplate {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub parameters: Vec<String>,
}

impl UtilityTemplate {
    fn parse(value: &Value, path: &str, v: &mut Violations) -> UtilityTemplate {
        let f = Fields::of(value, path, v);
        let parameters = f
            .opt_array("parameters", 20, v)
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, p)| match p {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => {
                            v.push(format!("{path}.parameters[{i}]"), "must be a string");
                            String::new()
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        UtilityTemplate {
            name: f.req_str("name", 512, v),
            language: f.req_str("language", 15, v),
            parameters,
        }
    }
}

/// Which endpoint a send came through; each has its own body shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendKind {
    /// `POST /v1/messages`: category and a Messenger message object.
    Message,
    /// `POST /v1/receipts`: an order.
    Receipt,
    /// `POST /v1/shipping-updates`: a shipment status.
    ShippingUpdate,
}

impl SendKind {
    /// The endpoint's name, which an `Idempotency-Key` is bound to.
    pub fn as_str(self) -> &'static str {
        match self {
            SendKind::Message => "message",
            SendKind::Receipt => "receipt",
            SendKind::ShippingUpdate => "shipping_update",
        }
    }
}

impl OutboundMessage {
    /// Parses a send body, naming every bad field. Unknown top-level fields are refused so that a
    /// typo (`utility_templat`) does not silently change what is sent.
    ///
    /// Dates are checked only against each other: a route parses with
    /// [`OutboundMessage::parse_at`], which bounds them too.
    pub fn parse(body: &Value, kind: SendKind) -> Result<OutboundMessage, Vec<FieldError>> {
        Self::parse_bounded(body, kind, None)
    }

    /// [`OutboundMessage::parse`], with `send_at` and `expires_at` held to the contract's
    /// bounds measured from `now` (Herald's clock): a date far out is a 400 naming it, never a
    /// task that overflows on it later.
    pub fn parse_at(
        body: &Value,
        kind: SendKind,
        now: DateTime<Utc>,
    ) -> Result<OutboundMessage, Vec<FieldError>> {
        Self::parse_bounded(body, kind, Some(now))
    }

    /// Reads `body` into the request its endpoint documents, then checks that.
    fn parse_bounded(
        body: &Value,
        kind: SendKind,
        now: Option<DateTime<Utc>>,
    ) -> Result<OutboundMessage, Vec<FieldError>> {
        match kind {
            SendKind::Message => Self::from_message(Body::read(body), now),
            SendKind::Receipt => Self::from_receipt(Body::read(body), now),
            SendKind::ShippingUpdate => Self::from_shipping_update(Body::read(body), now),
        }
    }

    /// `POST /v1/messages` (and the message `POST /v1/policy/evaluate` is asked about): a
    /// category and a Messenger message object. Dates are bounded from `now` when there is one.
    pub fn from_message(
        body: Body<SendMessageRequest>,
        now: Option<DateTime<Utc>>,
    ) -> Result<OutboundMessage, Vec<FieldError>> {
        let (body, mut v) = body.open();
        let addressed = Addressed::parse(body.addressing(), now, &mut v);
        let category = match &body.category {
            None => {
                v.push("category", "is required");
                None
            }
            Some(c) => match c.as_str().map(str::parse::<Category>) {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    v.push("category", e);
                    None
                }
                None => {
                    v.push("category", "must be a string");
                    None
                }
            },
        };
        let content = match body.message {
            Some(m) => {
                validate_message_object(&m, "message", &mut v);
                Some(Content::Message(m))
            }
            None => {
                v.push("message", "is required");
                None
            }
        };
        let template = body
            .utility_template
            .as_ref()
            .map(|t| UtilityTemplate::parse(t, "utility_template", &mut v));
        if template.is_some() && category == Some(Category::Marketing) {
            v.push(
                "utility_template",
                "utility templates carry transactional updates, never marketing",
            );
        }
        addressed.message(category, content, template, v)
    }

    /// `POST /v1/receipts`: an order.
    fn from_receipt(
        body: Body<ReceiptRequest>,
        now: Option<DateTime<Utc>>,
    ) -> Result<OutboundMessage, Vec<FieldError>> {
        let (body, mut v) = body.open();
        let addressed = Addressed::parse(body.addressing(), now, &mut v);
        let order = match &body.order {
            Some(o) => Receipt::parse(o, "order", &mut v).map(|r| Content::Receipt(Box::new(r))),
            None => {
                v.push("order", "is required");
                None
            }
        };
        addressed.message(Some(Category::Receipt), order, None, v)
    }

    /// `POST /v1/shipping-updates`: a shipment's status.
    fn from_shipping_update(
        body: Body<ShippingUpdateRequest>,
        now: Option<DateTime<Utc>>,
    ) -> Result<OutboundMessage, Vec<FieldError>> {
        let (body, mut v) = body.open();
        let addressed = Addressed::parse(body.addressing(), now, &mut v);
        let update = ShippingUpdate::parse(&body, &mut v).map(Content::ShippingUpdate);
        addressed.message(Some(Category::ShippingUpdate), update, None, v)
    }
}

/// Checks a Messenger message object against the Send API's rules (MESSENGER.md §1.4).
pub fn validate_message_object(value: &Value, path: &str, v: &mut Violations) {
    let f = Fields::of(value, path, v);
    let Some(obj) = value.as_object() else {
        return;
    };
    for key in obj.keys() {
        if !["text", "attachment", "quick_replies", "metadata"].contains(&key.as_str()) {
            v.push(f.path(key), "is not a field of a Messenger message");
        }
    }
    match (f.get("text"), f.get("attachment")) {
        (Some(_), Some(_)) => v.push(path, "must have text or attachment, not both"),
        (None, None) => v.push(path, "must not be empty: give text or attachment"),
        (Some(Value::String(text)), None) if text.chars().count() > MAX_TEXT_CHARS => {
            v.push(
                f.path("text"),
                "must be under 2,000 characters (Messenger's limit)",
            );
        }
        (Some(Value::String(text)), None) => check_text(v, &f.path("text"), text, MAX_TEXT_CHARS),
        (Some(_), None) => v.push(f.path("text"), "must be a string"),
        (None, Some(attachment)) => validate_attachment(attachment, &f.path("attachment"), v),
    }
    if let Some(replies) = f.opt_array("quick_replies", MAX_QUICK_REPLIES, v) {
        for (i, reply) in replies.iter().enumerate() {
            let qp = format!("{}[{i}]", f.path("quick_replies"));
            let q = Fields::of(reply, &qp, v);
            match q.get("content_type").and_then(Value::as_str) {
                Some("text") => {
                    q.req_str("title", 20, v);
                    q.req_str("payload", 1000, v);
                }
                Some("user_phone_number" | "user_email") => {}
                _ => v.push(
                    q.path("content_type"),
                    "must be text, user_phone_number or user_email",
                ),
            }
        }
    }
    f.opt_str("metadata", MAX_METADATA_CHARS - 1, v);
}

fn validate_attachment(value: &Value, path: &str, v: &mut Violations) {
    let f = Fields::of(value, path, v);
    let kind = f.req_str("type", 16, v);
    if !kind.is_empty() && !ATTACHMENT_TYPES.contains(&kind.as_str()) {
        v.push(
            f.path("type"),
            "must be audio, file, image, template or video",
        );
    }
    let Some(payload) = f.get("payload") else {
        v.push(f.path("payload"), "is required");
        return;
    };
    let p = Fields::of(payload, &f.path("payload"), v);
    if kind == "template" {
        let template_type = p.req_str("template_type", 32, v);
        if template_type == "receipt" {
            Receipt::parse(payload, &f.path("payload"), v);
        }
    } else if let Some(url) = p.opt_str("url", 2000, v) {
        check_url(v, &p.path("url"), &url);
    } else if !p.has("attachment_id") {
        v.push(f.path("payload"), "must have url or attachment_id");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Psid;

    fn fields(body: Value, kind: SendKind) -> Vec<String> {
        match OutboundMessage::parse(&body, kind) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn a_text_message_parses() {
        let m = OutboundMessage::parse(
            &json!({"recipient": {"psid": "123"}, "category": "response", "message": {"text": "hi"}}),
            SendKind::Message,
        )
        .expect("valid");
        assert_eq!(m.category, Category::Response);
        assert_eq!(
            m.recipient,
            Recipient::Psid(Psid::parse("123").expect("psid"))
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (
                json!({"recipient": {"psid": "1"}, "category": "response", "message": {"text": "x".repeat(2001)}}),
                vec!["message.text"],
            ),
            (
                json!({"recipient": {"psid": "1"}, "category": "response", "message": {}}),
                vec!["message"],
            ),
            (
                json!({"recipient": {"psid": "1"}, "category": "gossip", "message": {"text": "x"}}),
                vec!["category"],
            ),
            (
                json!({"category": "response", "message": {"text": "x"}, "colour": 1}),
                vec!["colour", "recipient"],
            ),
            (
                json!({"recipient": {"psid": "1"}, "category": "response",
                       "message": {"text": "x", "quick_replies": vec![json!({"content_type": "text", "title": "t", "payload": "p"}); 14]}}),
                vec!["message.quick_replies"],
            ),
        ];
        for (body, expected) in cases {
            let mut got = fields(body.clone(), SendKind::Message);
            got.sort();
            assert_eq!(got, expected, "for {body}");
        }
    }

    #[test]
    fn a_text_must_be_under_2000_characters() {
        let text = |n: usize| json!({"recipient": {"psid": "1"}, "category": "response", "message": {"text": "é".repeat(n)}});
        assert!(fields(text(1999), SendKind::Message).is_empty());
        assert_eq!(fields(text(2000), SendKind::Message), ["message.text"]);
    }

    #[test]
    fn receipt_bodies_need_price_and_total_cost() {
        let body = json!({"recipient": {"psid": "1"}, "order": {
            "order_number": "1", "currency": "USD", "payment_method": "Visa", "recipient_name": "A",
            "summary": {}, "elements": [{"title": "x"}]}});
        let mut got = fields(body, SendKind::Receipt);
        got.sort();
        assert_eq!(got, ["order.elements[0].price", "order.summary.total_cost"]);
    }

    #[test]
    fn shipping_updates_need_a_known_status() {
        let body = json!({"recipient": {"psid": "1"}, "order_number": "A-1", "status": "lost"});
        assert_eq!(fields(body, SendKind::ShippingUpdate), ["status"]);
    }
}
