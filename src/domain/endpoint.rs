//! Event endpoints: the business's own systems that hear Herald's events (API.md, "Events for
//! business systems"), and the record of delivering events to them.
//!
//! An endpoint's delivery walks each audit chain from a cursor (the last seq handed over); an
//! event that could not be delivered waits as a [`PendingDelivery`] for its retry, so that a
//! slow or dead endpoint holds back only itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::{EventRef, TypeFilter};

/// How an endpoint is sent its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointFormat {
    /// Herald's events, JSON, signed as Standard Webhooks 1.0 say.
    #[default]
    Herald,
    /// Inbound events only: the body Messenger posted, byte for byte, with its own
    /// `X-Hub-Signature-256`.
    Messenger,
}

/// An endpoint as stored. Its secrets never leave the store but through the secret route.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// `ep_…`
    pub id: String,
    pub url: String,
    pub events: TypeFilter,
    #[serde(default)]
    pub format: EndpointFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `whsec_<base64>`: signs every delivery.
    pub secret: String,
    /// The secret before the last rotation, signing beside the new one until `.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<(String, DateTime<Utc>)>,
    #[serde(default)]
    pub disabled: bool,
    /// Since when every attempt has failed; `None` after a success. Five days of it disables
    /// the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for EndpointRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRecord")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("format", &self.format)
            .field("disabled", &self.disabled)
            .field("failing_since", &self.failing_since)
            .finish_non_exhaustive()
    }
}

/// An event waiting to be delivered (again) to one endpoint: after a failed attempt, or asked
/// for by a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDelivery {
    pub event: EventRefRecord,
    pub due: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
}

/// An [`EventRef`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventRefRecord {
    pub chain: u32,
    pub seq: u64,
    pub index: u8,
}

impl From<EventRef> for EventRefRecord {
    fn from(r: EventRef) -> Self {
        EventRefRecord {
            chain: r.chain,
            seq: r.seq,
            index: r.index,
        }
    }
}

impl From<EventRefRecord> for EventRef {
    fn from(r: EventRefRecord) -> Self {
        EventRef {
            chain: r.chain,
            seq: r.seq,
            index: r.index,
        }
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Succeeded,
    /// Failed; tried again at `next_attempt_at`.
    Retrying,
    /// Failed, and no more tries (a replay can send it again).
    Failed,
}

/// One attempt to deliver an event to an endpoint, as `GET /v1/event-endpoints/{id}/attempts`
/// lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// `att_…`, sortable by time.
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub status: AttemptStatus,
    /// The endpoint's HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why it failed, in a few words (never a secret, never the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// 1 for the first attempt of this event to this endpoint.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One round of an endpoint's delivery, recorded in one transaction.
#[derive(Debug, Clone, Default)]
pub struct DeliveryRound {
    /// The chain and seq the endpoint's cursor moves to (everything up to it handed over:
    /// delivered, or pending).
    pub cursor: Option<(u32, u64)>,
    pub attempts: Vec<DeliveryAttempt>,
    /// Pending deliveries to add or replace (by event).
    pub pending: Vec<PendingDelivery>,
    /// Pending deliveries that are done (delivered, or failed for good).
    pub done: Vec<EventRefRecord>,
}
