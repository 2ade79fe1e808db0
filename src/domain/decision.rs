//! What the engine answers: a decision with the rule that made it and a trace of every rule.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::UtilityTemplate;

/// The verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Send it now.
    Allow,
    /// Never send it; `reason` says why.
    Deny,
    /// Not now, but at `not_before`: the message is queued, not refused.
    Defer,
}

impl Outcome {
    /// The wire spelling: `allow`, `deny`, `defer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Defer => "defer",
        }
    }
}

/// Why: stable snake_case codes that clients may branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Every rule passed.
    Ok,
    /// The client's role may not send this category.
    RoleForbidden,
    /// The consent the category needs is not on record.
    NoConsent,
    /// The recipient opted out (stop keyword, stopped notifications, API).
    OptedOut,
    /// Messenger answered 551 since the user last wrote.
    RecipientUnreachable,
    /// The standard window is closed and the category may not go outside it.
    OutsideWindow,
    /// Outside the window a free-form message needs a utility template.
    TemplateRequired,
    /// The user last wrote longer ago than `HUMAN_AGENT` allows.
    HumanAgentWindowExpired,
    /// Marketing outside the window without a usable Marketing Messages token.
    MarketingOutsideWindow,
    /// The user stopped the Marketing Messages on this token.
    MarketingTokenStopped,
    /// The token was used too recently; the message waits (`defer`).
    MarketingTokenCooldown,
    /// Over a frequency cap (deny, or defer until the period has room).
    FrequencyCap,
    /// Outside the sending hours in the recipient's time zone (`defer`).
    QuietHours,
    /// Email fallback: the policy does not let this category go by email (`[fallback] email`).
    NotForEmail,
    /// Email fallback: no email address is on the person's consent.
    NoEmailAddress,
}

impl Reason {
    /// The wire spelling, e.g. `outside_window`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::RoleForbidden => "role_forbidden",
            Reason::NoConsent => "no_consent",
            Reason::OptedOut => "opted_out",
            Reason::RecipientUnreachable => "recipient_unreachable",
            Reason::OutsideWindow => "outside_window",
            Reason::TemplateRequired => "template_required",
            Reason::HumanAgentWindowExpired => "human_agent_window_expired",
            Reason::MarketingOutsideWindow => "marketing_outside_window",
            Reason::MarketingTokenStopped => "marketing_token_stopped",
            Reason::MarketingTokenCooldown => "marketing_token_cooldown",
            Reason::FrequencyCap => "frequency_cap",
            Reason::QuietHours => "quiet_hours",
            Reason::NotForEmail => "not_for_email",
            Reason::NoEmailAddress => "no_email_address",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Send API's `messaging_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessagingType {
    /// A reply inside the standard window.
    Response,
    /// Sent on the page's initiative inside the standard window.
    Update,
    /// Outside the window, with a `tag`.
    MessageTag,
    /// An approved utility template (`message.template`).
    Utility,
}

impl MessagingType {
    /// The Send API spelling, e.g. `MESSAGE_TAG`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessagingType::Response => "RESPONSE",
            MessagingType::Update => "UPDATE",
            MessagingType::MessageTag => "MESSAGE_TAG",
            MessagingType::Utility => "UTILITY",
        }
    }
}

/// A Messenger message tag (with `messaging_type: MESSAGE_TAG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Tag {
    /// A person's manual reply, up to 7 days after the user's last message.
    HumanAgent,
    /// Receipts and shipment updates (retired 2026-04-27).
    PostPurchaseUpdate,
    /// Account changes and alerts (retired 2026-04-27).
    AccountUpdate,
    /// Updates for a booked event (retired 2026-04-27).
    ConfirmedEventUpdate,
}

impl Tag {
    /// The Send API spelling, e.g. `POST_PURCHASE_UPDATE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::HumanAgent => "HUMAN_AGENT",
            Tag::PostPurchaseUpdate => "POST_PURCHASE_UPDATE",
            Tag::AccountUpdate => "ACCOUNT_UPDATE",
            Tag::ConfirmedEventUpdate => "CONFIRMED_EVENT_UPDATE",
        }
    }
}

/// How the recipient is addressed in the Send API call.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// `recipient: {id}` or `{user_ref}` as given.
    #[default]
    Recipient,
    /// `recipient: {notification_messages_token}`: the recipient's Marketing Messages token.
    MarketingToken,
}

impl Via {
    /// Whether this is the default (the recipient as given); used to leave the field out.
    pub fn is_recipient(&self) -> bool {
        *self == Via::Recipient
    }
}

/// One rule's result in a decision's trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepResult {
    /// The rule was checked and allows the message.
    Pass,
    /// The rule was checked and stops the message; it decides.
    Fail,
    /// The rule does not apply here.
    Skip,
}

/// One line of a decision's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceStep {
    /// The rule's id: `policies/default.toml#window.standard`.
    pub rule: String,
    /// What the rule concluded.
    pub result: StepResult,
    /// What the rule saw, in words. Static text on the common paths, so that an allowed
    /// message costs no formatting; build one with `"…".into()` or `format!(…).into()`.
    pub detail: Cow<'static, str>,
}

/// The engine's answer for one message (API.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// allow, deny or defer.
    pub outcome: Outcome,
    /// Why, as a stable code.
    pub reason: Reason,
    /// The rule that decided: the first that failed; for `allow`, the rule that chose how the
    /// message goes (`receipt.inside_window`, `receipt.outside_window`, `marketing.outside_window`).
    pub rule: String,
    /// sha256 of the policy files the decision was made under.
    pub policy_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The Send API `messaging_type` to use (`None` for Marketing Messages token sends).
    pub messaging_type: Option<MessagingType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The message tag, with `MESSAGE_TAG`.
    pub tag: Option<Tag>,
    /// For `UTILITY` sends: the template with its parameters filled in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility_template: Option<UtilityTemplate>,
    /// How the recipient is addressed. Marketing outside the window goes `MarketingToken`, with
    /// `messaging_type` left out, as Messenger's token examples send it.
    #[serde(default, skip_serializing_if = "Via::is_recipient")]
    pub via: Via,
    /// For `defer`: the earliest moment the message may go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// The consent the decision rests on (allow and defer), by reference. The engine decides
    /// from facts, which name no record; the caller fills this in from the recipient's record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<crate::domain::ConsentRef>,
    /// Every rule looked at, in order.
    pub trace: Vec<TraceStep>,
}
