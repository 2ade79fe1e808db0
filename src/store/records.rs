//! What the store keeps, one serde type per kind of record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Category, ConsentScope, ConsentSource, Content, MessageId, Recipient};
use crate::policy::Decision;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Deferred,
    Sending,
    Sent,
    Delivered,
    Read,
    Denied,
    Failed,
    Expired,
    Cancelled,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Deferred => "deferred",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Denied => "denied",
            MessageStatus::Failed => "failed",
            MessageStatus::Expired => "expired",
            MessageStatus::Cancelled => "cancelled",
        }
    }

    /// Still waiting in the outbox.
    pub fn is_pending(self) -> bool {
        matches!(self, MessageStatus::Queued | MessageStatus::Deferred)
    }

    /// How far along delivery is, for statuses that only move forward.
    fn rank(self) -> u8 {
        match self {
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            _ => 0,
        }
    }

    /// A delivery or read receipt may move a sent message forward, never back.
    pub fn advances_to(self, next: MessageStatus) -> bool {
        self.rank() > 0 && next.rank() > self.rank()
    }
}

/// One status change of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: MessageStatus,
    pub at: DateTime<Utc>,
}

/// A Graph API error as Herald records it (never with a token in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphErrorRecord {
    pub code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subcode: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One try at handing a message to the Graph API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// `sent`, `retry`, `failed`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_error: Option<GraphErrorRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Everything Herald knows about one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    pub created_at: DateTime<Utc>,
    /// The client (`sub`) that asked for it.
    pub client: String,
    /// The client's role, for decisions taken again at send time.
    pub role: crate::domain::Role,
    pub page_id: String,
    pub recipient: Recipient,
    pub category: Category,
    pub content: Content,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility_template: Option<crate::domain::UtilityTemplate>,
    pub decision: Decision,
    pub status: MessageStatus,
    /// When it may go out (for queued and deferred messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    pub history: Vec<StatusChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// sha256 of the content as accepted.
    pub content_sha256: String,
    /// sha256 of the latest decision's trace: its key in the store's `traces` tree, where
    /// each distinct trace is kept once (see [`crate::store::Store::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sha256: Option<String>,
}

impl MessageRecord {
    pub fn set_status(&mut self, status: MessageStatus, at: DateTime<Utc>) {
        self.status = status;
        self.history.push(StatusChange { status, at });
    }
}

/// Grant or withdrawal of a consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    Grant,
    OptOut,
}

/// One consent event, kept forever: opt-outs are appended, never deletions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub scope: ConsentScope,
    pub action: ConsentAction,
    pub source: ConsentSource,
    /// What proves it: the client's evidence, the webhook's ref, the keyword written.
    pub evidence: Value,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// State of a Marketing Messages token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl RecipientRecord {
    /// The latest event for `scope`, if any.
    fn latest(&self, scope: ConsentScope) -> Option<&ConsentEvent> {
        self.consents.iter().rev().find(|c| c.scope == scope)
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
        self.consents
            .iter()
            .any(|c| c.scope == scope && c.action == ConsentAction::Grant)
    }
}

/// What an `Idempotency-Key` answered the first time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// sha256 of the request (route and body) the key was first used with.
    pub request_sha256: String,
    pub status: u16,
    pub body: Value,
    pub at: DateTime<Utc>,
}
