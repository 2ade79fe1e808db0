//! The accept path: command → facts → decision → one durable write → outcome.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{Herald, Page, SendError};
use crate::domain::campaign::CampaignId;
use crate::domain::lifecycle::{self, MessageStatus};
use crate::domain::Client;
use crate::domain::{
    Acceptance, Content, FieldError, MessageId, MessageRecord, OutboundMessage, PageId, Psid,
    SendAnswer,
};
use crate::policy::{Decision, Outcome, Reason, TraceStep};
use crate::store::{Accepted, IdempotencyWrite, NewMessage, StoreError};

/// A send, as a client asked for it: already parsed into domain types.
#[derive(Debug, Clone)]
pub struct SendCommand {
    pub client: Client,
    pub message: OutboundMessage,
    /// The client's `Idempotency-Key`, bound to what was asked.
    pub idempotency: Option<IdempotencyKey>,
    /// The campaign this send belongs to, if any.
    pub campaign: Option<CampaignId>,
    /// What becomes of a message the policy defers.
    pub when_deferred: WhenDeferred,
}

/// What becomes of a message the policy defers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenDeferred {
    /// Queued for the moment the decision names (Herald's own API).
    Queue,
    /// Refused, on record as denied, when deferred for one of these reasons. A Send API client
    /// expects "sent" or an error, and resends on the errors Messenger gives; a message kept
    /// for later as well would reach the person twice.
    Refuse(&'static [Reason]),
}

/// An idempotency key and the sha256 of the request it was first used with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_sha256: String,
}

impl IdempotencyKey {
    /// Binds `key` to a request: what it asked for (`what`, e.g. the endpoint) and its bytes.
    pub fn new(key: String, what: &str, request: &[u8]) -> IdempotencyKey {
        let mut h = Sha256::new();
        h.update(what.as_bytes());
        h.update(b"\n");
        h.update(request);
        IdempotencyKey {
            key,
            request_sha256: hex::encode(h.finalize()),
        }
    }
}

/// sha256 of the content's canonical JSON (serde_json sorts object keys).
fn content_sha256(content: &Content) -> Result<String, StoreError> {
    let bytes = serde_json::to_vec(content).map_err(|source| StoreError::Encode {
        what: "message content",
        source: Arc::new(source),
    })?;
    Ok(hex::encode(Sha256::digest(bytes)))
}

impl Herald {
    /// The page a message names, or the default page; an unknown page is a bad field.
    pub fn resolve_page(&self, message: &OutboundMessage) -> Result<&Page, Vec<FieldError>> {
        self.page(message.page_id.as_ref())
    }

    /// The page named, or the default page; an unknown page is a bad field.
    pub fn page(&self, id: Option<&PageId>) -> Result<&Page, Vec<FieldError>> {
        self.pages.resolve(id).ok_or_else(|| {
            vec![FieldError::new(
                "page_id",
                "is not a page configured in [messenger.pages]",
            )]
        })
    }

    /// The PSID whose current Marketing Messages token is `token`: how a Send API request
    /// addressed by token (`recipient.notification_messages_token`) finds its person.
    pub async fn marketing_token_owner(&self, token: &str) -> Result<Option<Psid>, StoreError> {
        let key = self.store.recipients.marketing_token_owner(token).await?;
        Ok(key.and_then(|k| Psid::parse(&k).ok()))
    }

    /// Decides on a send and, unless it is a replay, stores it durably before answering: an
    /// allowed or deferred message is accepted; a denied one is on record as `denied` and
    /// comes back as [`SendError::Denied`].
    pub async fn accept(&self, cmd: SendCommand) -> Result<Acceptance, SendError> {
        if let Some(key) = &cmd.idempotency {
            if let Some(first) = self
                .store
                .messages
                .idempotency(&cmd.client.name, &key.key)
                .await?
            {
                return replay(first.answer, &first.request_sha256, key);
            }
        }
        let now = self.clock.now();
        let page = self
            .resolve_page(&cmd.message)
            .map_err(SendError::Invalid)?;
        let expires_at = self.expiry(&cmd.message, now)?;
        let mut decision = self
            .decide(&cmd.message, page, cmd.client.role, now)
            .await?;
        if let WhenDeferred::Refuse(reasons) = cmd.when_deferred {
            if decision.outcome == Outcome::Defer && reasons.contains(&decision.reason) {
                decision.outcome = Outcome::Deny;
            }
        }
        let mut record = new_record(&cmd.client, cmd.message, page, decision, expires_at, now)?;
        record.campaign = cmd.campaign.clone();
        let effects = lifecycle::accepted(&mut record);
        let answer = answer(&record, effects.trace.as_deref());
        let enqueued = record.status.is_pending();
        let idempotency = cmd.idempotency.as_ref().map(|key| IdempotencyWrite {
            client: cmd.client.name.clone(),
            key: key.key.clone(),
            request_sha256: key.request_sha256.clone(),
            answer: answer.clone(),
        });
        let stored = self
            .store
            .messages
            .accept(NewMessage {
                record,
                effects,
                idempotency,
            })
            .await?;
        match (stored, &cmd.idempotency) {
            (Accepted::Stored, _) => {
                if enqueued {
                    self.outbox_wake.notify_one();
                }
                outcome(answer)
            }
            (Accepted::Replay(first), Some(key)) => {
                replay(first.answer, &first.request_sha256, key)
            }
            (Accepted::Replay(_) | Accepted::Conflict, _) => Err(SendError::IdempotencyConflict),
        }
    }

    /// When a message must have gone by: its own `expires_at`, else its category's
    /// time-to-live from now.
    fn expiry(
        &self,
        message: &OutboundMessage,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, SendError> {
        match message.expires_at {
            Some(at) if at <= now => Err(SendError::Invalid(vec![FieldError::new(
                "expires_at",
                "is in the past",
            )])),
            Some(at) => Ok(at),
            None => {
                let ttl = self.ttl.of(message.category);
                let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
                let from = message.send_at.filter(|s| *s > now).unwrap_or(now);
                Ok(from
                    .checked_add_signed(ttl)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC))
            }
        }
    }
}

fn replay(
    first: SendAnswer,
    first_sha256: &str,
    key: &super::IdempotencyKey,
) -> Result<Acceptance, SendError> {
    if first_sha256 == key.request_sha256 {
        outcome(first)
    } else {
        Err(SendError::IdempotencyConflict)
    }
}

fn outcome(answer: SendAnswer) -> Result<Acceptance, SendError> {
    match answer {
        SendAnswer::Accepted(acceptance) => Ok(acceptance),
        SendAnswer::Denied {
            message_id,
            decision,
        } => Err(SendError::Denied {
            decision: Box::new(decision),
            message_id,
        }),
    }
}

fn new_record(
    client: &Client,
    message: OutboundMessage,
    page: &Page,
    decision: Decision,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<MessageRecord, StoreError> {
    let (status, not_before) = lifecycle::admit(&decision, message.send_at, now);
    Ok(MessageRecord {
        id: MessageId::generate(),
        created_at: now,
        client: client.name.clone(),
        role: client.role,
        page_id: page.id.clone(),
        content_sha256: content_sha256(&message.content)?,
        recipient: message.recipient,
        category: message.category,
        content: message.content,
        utility_template: message.utility_template,
        decision,
        status,
        channel: crate::domain::Channel::Messenger,
        fallback: None,
        not_before,
        expires_at: Some(expires_at),
        attempts: Vec::new(),
        graph_message_id: None,
        sent_at: None,
        history: Vec::new(),
        campaign: None,
        trace_sha256: None,
    })
}

/// What the client is told about a freshly decided message, with the decision's trace (which
/// the record keeps apart).
fn answer(record: &MessageRecord, trace: Option<&[TraceStep]>) -> SendAnswer {
    let mut decision = record.decision.clone();
    decision.trace = trace.map(<[_]>::to_vec).unwrap_or_default();
    if record.status == MessageStatus::Denied {
        return SendAnswer::Denied {
            message_id: record.id.clone(),
            decision,
        };
    }
    SendAnswer::Accepted(Acceptance {
        id: record.id.clone(),
        status: record.status,
        not_before: record
            .not_before
            .filter(|_| record.status == MessageStatus::Deferred),
        decision,
    })
}
