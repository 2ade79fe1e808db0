//! `SendApiRequest::parse`: the decoded parameters checked Graph's way (the first problem is
//! the answer) into whom the request addresses and what it carries.

use serde_json::Value;

use super::{GraphSendRequest, SendApiError};
use crate::app::SenderAction;
use crate::domain::Psid;
use crate::policy::{MessagingType, Tag};

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
