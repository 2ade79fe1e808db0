//! What the store keeps, one serde type per kind of record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::campaign::CampaignId;
use super::decision::Decision;
use super::lifecycle::MessageStatus;
use super::{
    Category, ConsentScope, ConsentSource, Content, MessageId, PageId, Recipient, Role,
    UtilityTemplate,
};

/// One status change of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusChange {
    pub status: MessageStatus,
    pub at: DateTime<Utc>,
}

/// A Graph API error as Herald records it (never with a token in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GraphErrorRecord {
    pub code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subcode: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The way a message went, or a try was made: Messenger, or email when Messenger could not take
/// it (API.md, "Email fallback").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    #[default]
    Messenger,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Messenger => "messenger",
            Channel::Email => "email",
        }
    }

    /// Messenger, which records leave out (every record written before email existed).
    pub fn is_messenger(&self) -> bool {
        *self == Channel::Messenger
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one try at the Graph API ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The Graph API took the message.
    Sent,
    /// A transient failure: tried again at `next_attempt_at`.
    Retry,
    /// A permanent failure, or the last attempt.
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Sent => "sent",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Failed => "failed",
        }
    }
}

/// One try at handing a message to the Graph API, or to the SMTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// Which way the try went (left out for Messenger).
    #[serde(default, skip_serializing_if = "Channel::is_messenger")]
    pub channel: Channel,
    pub outcome: AttemptOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_error: Option<GraphErrorRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// An email try: the SMTP server's reply, such as `250 2.0.0 Ok: queued as 4F2A1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

impl Attempt {
    /// A try at Messenger that ended with `outcome`; the caller fills in what the answer said.
    pub fn messenger(at: DateTime<Utc>, outcome: AttemptOutcome) -> Attempt {
        Attempt::by(Channel::Messenger, at, outcome)
    }

    /// A try on `channel` that ended with `outcome`.
    pub fn by(channel: Channel, at: DateTime<Utc>, outcome: AttemptOutcome) -> Attempt {
        Attempt {
            at,
            channel,
            outcome,
            http_status: None,
            graph_error: None,
            error: None,
            next_attempt_at: None,
            reply: None,
        }
    }
}

/// Everything Herald knows about one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    pub created_at: DateTime<Utc>,
    /// The client (`sub`) that asked for it.
    pub client: String,
    /// The client's role, for decisions taken again at send time.
    pub role: Role,
    pub page_id: PageId,
    pub recipient: Recipient,
    pub category: Category,
    pub content: Content,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility_template: Option<UtilityTemplate>,
    pub decision: Decision,
    pub status: MessageStatus,
    /// The way it goes: Messenger, or email once Messenger could not take it.
    #[serde(default, skip_serializing_if = "Channel::is_messenger")]
    pub channel: Channel,
    /// The email fallback's decision, when Messenger could not take it and `[email]` is
    /// configured: allowed (it goes by email) or denied (it failed), with its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Decision>,
    /// When it may go out (for queued and deferred messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    /// Not sent by then, it expires (the send's `expires_at`, or its category's time-to-live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    pub history: Vec<StatusChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignId>,
    /// sha256 of the content as accepted.
    pub content_sha256: String,
    /// sha256 of the latest decision's trace: its key in the store's `traces` tree, where
    /// each distinct trace is kept once (see the store's `Messages::trace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sha256: Option<String>,
}

/// Grant or withdrawal of a consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    Grant,
    OptOut,
}

/// One consent event, kept forever: opt-outs are appended, never deletions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentEvent {
    /// `cns_` and a ULID, given when the event is recorded (see `app::push_consent`): what a
    /// decision and its audit entry name as the consent that permitted it.
    #[serde(default)]
    pub id: String,
    pub scope: ConsentScope,
    pub action: ConsentAction,
    pub source: ConsentSource,
    /// What proves it: the client's evidence, the webhook's ref, the keyword written. Personal
    /// data: `null` once the person's data was erased.
    pub evidence: Value,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl ConsentEvent {
    /// A fresh consent id.
    pub fn new_id() -> String {
        format!("cns_{}", ulid::Ulid::new())
    }
}

/// The consent a decision rests on, by reference: the record it names holds the evidence (and
/// is what erasure empties), so a decision, an idempotent answer or an audit entry that carries
/// this holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsentRef {
    /// The [`ConsentEvent::id`].
    pub id: String,
    pub scope: ConsentScope,
    pub source: ConsentSource,
    /// When it was given.
    pub at: DateTime<Utc>,
    /// The client that recorded it, for consents recorded through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

impl From<&ConsentEvent> for ConsentRef {
    fn from(e: &ConsentEvent) -> ConsentRef {
        ConsentRef {
            id: e.id.clone(),
            scope: e.scope,
            source: e.source.clone(),
            at: e.at,
            client: e.client.clone(),
        }
    }
}

/// State of a Marketing Messages token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Active,
    Stopped,
}

/// A recipient's Marketing Messages (notification messages) token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub token: String,
    pub status: TokenStatus,
    pub page_id: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sent_at: Option<DateTime<Utc>>,
}

/// Where a user came from (m.me link, ad, Messenger code), kept as consent evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attribution {
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ad_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Everything Herald knows about one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RecipientRecord {
    #[serde(default)]
    pub consents: Vec<ConsentEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_user_interaction_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_ref_optin_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marketing_token: Option<TokenRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Messenger said "this person isn't available" (551) at this time, after the last message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreachable_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributions: Vec<Attribution>,
    /// The person's data was erased (`DELETE /v1/recipients/{psid}`): when, and how many
    /// consent events were on record then. Those no longer count: nothing is sent until a new
    /// consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased: Option<Erasure>,
}

/// When a recipient's personal data was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub at: DateTime<Utc>,
    /// Consent events recorded before the erasure: they stay as history, without evidence, and
    /// permit nothing.
    pub consents_before: usize,
}

impl RecipientRecord {
    /// The consent events that still count: those recorded since the last erasure.
    fn counting(&self) -> &[ConsentEvent] {
        let from = self.erased.map_or(0, |e| e.consents_before);
        self.consents.get(from..).unwrap_or_default()
    }

    /// The latest event for `scope`, if any.
    fn latest(&self, scope: ConsentScope) -> Option<&ConsentEvent> {
        self.counting().iter().rev().find(|c| c.scope == scope)
    }

    /// The grant a send of `scope` rests on: the latest, if no opt-out came after it.
    pub fn permitting(&self, scope: ConsentScope) -> Option<&ConsentEvent> {
        self.latest(scope)
            .filter(|c| c.action == ConsentAction::Grant)
    }

    /// Erases the person's data, keeping the consent history without its evidence; the
    /// consents on record no longer count.
    pub fn erase(&mut self, at: DateTime<Utc>) {
        for c in &mut self.consents {
            c.evidence = Value::Null;
        }
        for a in &mut self.attributions {
            a.reference = None;
            a.ad_id = None;
        }
        self.email = None;
        self.timezone = None;
        self.locale = None;
        self.marketing_token = None;
        self.erased = Some(Erasure {
            at,
            consents_before: self.consents.len(),
        });
    }

    /// A grant of `scope` on record with no opt-out after it.
    pub fn has_consent(&self, scope: ConsentScope) -> bool {
        self.latest(scope)
            .is_some_and(|c| c.action == ConsentAction::Grant)
    }

    /// The latest event for `scope` is an opt-out.
    pub fn opted_out(&self, scope: ConsentScope) -> bool {
        self.latest(scope)
            .is_some_and(|c| c.action == ConsentAction::OptOut)
    }

    /// A grant of `scope` was ever recorded, even if withdrawn since.
    pub fn ever_granted(&self, scope: ConsentScope) -> bool {
        self.counting()
            .iter()
            .any(|c| c.scope == scope && c.action == ConsentAction::Grant)
    }

    /// A grant of `scope` from `source` was ever recorded, even if withdrawn since.
    pub fn ever_granted_by(&self, scope: ConsentScope, source: &ConsentSource) -> bool {
        self.consents
            .iter()
            .any(|c| c.scope == scope && c.action == ConsentAction::Grant && c.source == *source)
    }
}

/// A message accepted for delivery: queued now, or deferred to `not_before`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Acceptance {
    pub id: MessageId,
    pub status: MessageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    pub decision: Decision,
}

/// What a send was answered: kept under its `Idempotency-Key`, so that a retried request gets
/// the very same answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum SendAnswer {
    Accepted(Acceptance),
    /// The policy refused; the message is on record as `denied`.
    Denied {
        message_id: MessageId,
        decision: Decision,
    },
}

/// What an `Idempotency-Key` answered the first time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// sha256 of the request (route and body) the key was first used with.
    pub request_sha256: String,
    pub answer: SendAnswer,
    pub at: DateTime<Utc>,
}
