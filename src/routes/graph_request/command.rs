//! A checked Send API request into Herald's command: a send (its category read from the
//! request, docs/api.md §7) or a sender action.

use serde_json::Value;

use super::{SendApiError, SendApiPayload, SendApiRecipient, SendApiRequest, REFUSED_DEFERRALS};
use crate::app::{SendCommand, SenderActionCommand, WhenDeferred};
use crate::auth::Client;
use crate::domain::{
    validate_message_object, Category, Content, OutboundMessage, PageId, Psid, Recipient,
    UtilityTemplate, Violations,
};
use crate::policy::{MessagingType, PolicySet, Tag};

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
