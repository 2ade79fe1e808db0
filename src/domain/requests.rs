//! The bodies of the sending endpoints as they come. Each is one struct that both reads the body
//! (serde) and describes it in `/openapi.json` (utoipa), so that what is parsed and what is
//! documented cannot drift apart.
//!
//! A field keeps the JSON it came as, `Option<Value>` (a `null` reads as an absent field), and
//! its `#[schema(value_type = …)]` says what it must be. The parser then checks every field and
//! names each bad one in the 400, where typed fields would stop serde at the first. Any other
//! key lands in `unknown`, which the document leaves out, and is refused by name. The routes' own
//! bodies of this kind (`POST /v1/consents`, `POST /v1/policy/evaluate`, the Graph Send API's
//! parameters) are written the same way; a campaign's has typed fields, and serde names its first
//! bad one.
//!
//! What the three bodies share is checked here: the page, the recipient and the dates
//! ([`Addressed`]). What each endpoint adds is checked where the message is built,
//! [`OutboundMessage::from_message`] and its siblings in `message.rs`.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{
    bounds, Category, Content, FieldError, OutboundMessage, PageId, Psid, Receipt, Recipient,
    ShippingStatus, UtilityTemplate, Violations,
};

/// A request body read into `T`, a struct of raw fields. A body that is not a JSON object has no
/// fields: it reads as an empty `T` and, once opened, names itself as not an object, so that the
/// 400 says so beside every required field it lacks.
#[derive(Debug)]
pub struct Body<T> {
    pub fields: T,
    /// Why the body has no fields, when it has none.
    unreadable: Option<String>,
}

impl<T: DeserializeOwned + Default> Body<T> {
    /// Reads a request body, whatever JSON it is.
    pub fn read(json: &Value) -> Body<T> {
        match read_object(json) {
            Ok(fields) => Body {
                fields,
                unreadable: None,
            },
            Err(why) => Body {
                fields: T::default(),
                unreadable: Some(why),
            },
        }
    }
}

impl<T> Body<T> {
    /// The same body as another request: `POST /v1/policy/evaluate`'s is a message's plus two
    /// fields.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Body<U> {
        Body {
            fields: f(self.fields),
            unreadable: self.unreadable,
        }
    }

    /// The fields, and the violations to check them into, which name the body first when it
    /// was not an object.
    pub(crate) fn open(self) -> (T, Violations) {
        let mut v = Violations::default();
        if let Some(why) = self.unreadable {
            v.push("", why);
        }
        (self.fields, v)
    }
}

/// `value` read into `T`, a struct of raw fields; anything but an object is refused.
pub(crate) fn read_object<T: DeserializeOwned>(value: &Value) -> Result<T, String> {
    if !value.is_object() {
        return Err("must be an object".to_owned());
    }
    // Each field is raw JSON and `unknown` takes any other key: an object always reads.
    T::deserialize(value).map_err(|e| e.to_string())
}

/// Who a message goes to: exactly one of `psid` (`id` is accepted as Graph spells it) or
/// `user_ref` (a checkbox-plugin reference, before the person has a PSID).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RecipientRef {
    /// A page-scoped id: digits.
    #[schema(value_type = Option<String>)]
    pub psid: Option<Value>,
    // `psid` as Graph spells it; the document names the one spelling, in the text above.
    #[schema(ignore)]
    pub id: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub user_ref: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Map<String, Value>,
}

/// `POST /v1/messages`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SendMessageRequest {
    /// The page to send from (default: the only configured page).
    #[schema(value_type = Option<String>)]
    pub page_id: Option<Value>,
    #[schema(value_type = RecipientRef)]
    pub recipient: Option<Value>,
    #[schema(value_type = Category)]
    pub category: Option<Value>,
    /// A Messenger message object: `text`, or `attachment` (a template), with optional
    /// `quick_replies`. `text` must be under 2,000 characters.
    #[schema(value_type = Object)]
    pub message: Option<Value>,
    /// The utility template to use outside the window, when the policy asks for one.
    #[schema(value_type = Option<UtilityTemplate>)]
    pub utility_template: Option<Value>,
    /// Not before this moment; at most 365 days ahead.
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub send_at: Option<Value>,
    /// Not after this moment: unsent by then, the message is `expired`. After now, and at most
    /// 30 days after the message is due.
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Map<String, Value>,
}

/// `POST /v1/receipts`: rendered as Messenger's receipt template.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReceiptRequest {
    #[schema(value_type = Option<String>)]
    pub page_id: Option<Value>,
    #[schema(value_type = RecipientRef)]
    pub recipient: Option<Value>,
    #[schema(value_type = Receipt)]
    pub order: Option<Value>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub send_at: Option<Value>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Map<String, Value>,
}

/// `POST /v1/shipping-updates`: rendered as a message with a tracking button when a URL is
/// given.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ShippingUpdateRequest {
    #[schema(value_type = Option<String>)]
    pub page_id: Option<Value>,
    #[schema(value_type = RecipientRef)]
    pub recipient: Option<Value>,
    #[schema(value_type = String)]
    pub order_number: Option<Value>,
    #[schema(value_type = ShippingStatus)]
    pub status: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub carrier: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub tracking_number: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub tracking_url: Option<Value>,
    #[schema(value_type = Option<String>)]
    pub estimated_delivery: Option<Value>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub send_at: Option<Value>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Value>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub unknown: Map<String, Value>,
}

/// What every send body says besides its content: the page, the person and when. Borrowed from
/// a body, for the part of the parser the three share.
pub(crate) struct Addressing<'a> {
    pub unknown: &'a Map<String, Value>,
    pub page_id: Option<&'a Value>,
    pub recipient: Option<&'a Value>,
    pub send_at: Option<&'a Value>,
    pub expires_at: Option<&'a Value>,
}

/// The three send bodies name their addressing fields alike: one `addressing()` for each.
macro_rules! addressing {
    ($($body:ty),*) => {$(
        impl $body {
            pub(crate) fn addressing(&self) -> Addressing<'_> {
                Addressing {
                    unknown: &self.unknown,
                    page_id: self.page_id.as_ref(),
                    recipient: self.recipient.as_ref(),
                    send_at: self.send_at.as_ref(),
                    expires_at: self.expires_at.as_ref(),
                }
            }
        }
    )*};
}

addressing!(SendMessageRequest, ReceiptRequest, ShippingUpdateRequest);

/// What every send body says besides its content, checked: the page, the person and when.
pub(crate) struct Addressed {
    page_id: Option<PageId>,
    recipient: Option<Recipient>,
    send_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

impl Addressed {
    /// Refuses every unknown key by name, then checks the fields the three bodies share; dates
    /// are bounded from `now` when there is one.
    pub(crate) fn parse(
        a: Addressing<'_>,
        now: Option<DateTime<Utc>>,
        v: &mut Violations,
    ) -> Addressed {
        for key in a.unknown.keys() {
            v.push(key.clone(), "is not a known field");
        }
        let page_id = a.page_id.and_then(|p| match p.as_str().map(PageId::parse) {
            Some(Ok(id)) => Some(id),
            Some(Err(e)) => {
                v.push("page_id", e);
                None
            }
            None => {
                v.push("page_id", "must be a string");
                None
            }
        });
        let recipient = match a.recipient {
            Some(r) => parse_recipient(r, "recipient", v),
            None => {
                v.push("recipient", "is required");
                None
            }
        };
        let send_at = a.send_at.and_then(|s| parse_time(s, "send_at", v));
        let expires_at = a.expires_at.and_then(|s| parse_time(s, "expires_at", v));
        if let (Some(send_at), Some(expires_at)) = (send_at, expires_at) {
            if expires_at <= send_at {
                v.push("expires_at", "must be later than send_at");
            }
        }
        if let Some(now) = now {
            if let Some(Err(e)) = send_at.map(|at| bounds::check_send_at(at, now)) {
                v.push("send_at", e);
            }
            if let Some(Err(e)) = expires_at.map(|at| bounds::check_expires_at(at, now, send_at)) {
                v.push("expires_at", e);
            }
        }
        Addressed {
            page_id,
            recipient,
            send_at,
            expires_at,
        }
    }

    /// The message, when no field of its body was bad.
    pub(crate) fn message(
        self,
        category: Option<Category>,
        content: Option<Content>,
        utility_template: Option<UtilityTemplate>,
        v: Violations,
    ) -> Result<OutboundMessage, Vec<FieldError>> {
        match (self.recipient, category, content) {
            (Some(recipient), Some(category), Some(content)) if v.is_empty() => {
                Ok(OutboundMessage {
                    page_id: self.page_id,
                    recipient,
                    category,
                    content,
                    utility_template,
                    send_at: self.send_at,
                    expires_at: self.expires_at,
                    respect_quiet_hours: true,
                })
            }
            _ => Err(v.into_inner()),
        }
    }
}

/// `{"psid": "…"}`, `{"id": "…"}` (Graph spelling) or `{"user_ref": "…"}`: exactly one, and
/// nothing else. Two ways of naming a person, or a key Herald does not know, would leave it to
/// guess who is meant.
pub fn parse_recipient(value: &Value, path: &str, v: &mut Violations) -> Option<Recipient> {
    let named: RecipientRef = match read_object(value) {
        Ok(named) => named,
        Err(why) => {
            v.push(path, why);
            return None;
        }
    };
    if !named.unknown.is_empty() {
        let unknown: Vec<&str> = named.unknown.keys().map(String::as_str).collect();
        v.push(
            path,
            format!(
                "has unknown keys ({}): give exactly one of psid, id or user_ref",
                unknown.join(", ")
            ),
        );
        return None;
    }
    let given = [&named.psid, &named.id, &named.user_ref];
    if given.iter().filter(|field| field.is_some()).count() > 1 {
        v.push(path, "must have one of psid, id or user_ref, not several");
        return None;
    }
    let field = |name: &str| match path {
        "" => name.to_owned(),
        _ => format!("{path}.{name}"),
    };
    if let Some(p) = named.psid.or(named.id) {
        return match p.as_str().map(Psid::parse) {
            Some(Ok(p)) => Some(Recipient::Psid(p)),
            Some(Err(e)) => {
                v.push(field("psid"), e);
                None
            }
            None => {
                v.push(field("psid"), "must be a string");
                None
            }
        };
    }
    match &named.user_ref {
        Some(r) => match r.as_str() {
            Some(r) if !r.trim().is_empty() && r.len() <= 256 => {
                Some(Recipient::UserRef(r.to_owned()))
            }
            _ => {
                v.push(field("user_ref"), "must be a non-empty string");
                None
            }
        },
        None => {
            v.push(path, "must have psid or user_ref");
            None
        }
    }
}

/// An RFC 3339 timestamp.
pub fn parse_time(value: &Value, path: &str, v: &mut Violations) -> Option<DateTime<Utc>> {
    let parsed = value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc));
    if parsed.is_none() {
        v.push(
            path,
            "must be an RFC 3339 timestamp such as 2026-11-25T09:00:00Z",
        );
    }
    parsed
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_body_reads_its_fields_and_keeps_every_other_key() {
        let body = Body::<SendMessageRequest>::read(&json!({
            "category": "response", "page_id": null, "colour": 1, "brightness": null}));
        let (fields, v) = body.open();
        assert!(v.is_empty());
        assert_eq!(fields.category, Some(json!("response")));
        assert_eq!(fields.page_id, None, "null reads as absent");
        let unknown: Vec<&str> = fields.unknown.keys().map(String::as_str).collect();
        assert_eq!(unknown, ["brightness", "colour"]);
    }

    #[test]
    fn a_body_that_is_not_an_object_reads_empty_and_says_so() {
        for json in [json!([]), json!("x"), json!(null), json!(1)] {
            let (fields, v) = Body::<ReceiptRequest>::read(&json).open();
            assert!(
                fields.order.is_none() && fields.unknown.is_empty(),
                "{json}"
            );
            let errors = v.into_inner();
            assert_eq!(errors.len(), 1, "{json}");
            assert_eq!(
                (errors[0].field.as_str(), errors[0].message.as_str()),
                ("", "must be an object")
            );
        }
    }
}
