//! The accept path: parse → facts → decision → one durable write → answer.

use actix_web::ResponseError;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::Herald;
use crate::auth::Client;
use crate::domain::{FieldError, MessageId, OutboundMessage, SendKind};
use crate::error::ApiError;
use crate::policy::{evaluate, Decision, Outcome};
use crate::store::{self, IdempotencyWrite, MessageRecord, MessageStatus, NewMessage};

/// One send as a client made it.
pub struct SendRequest<'a> {
    pub client: &'a Client,
    pub kind: SendKind,
    /// The parsed JSON body.
    pub body: &'a Value,
    pub idempotency_key: Option<&'a str>,
}

/// The answer to a send: `202` with the message, or the policy's refusal. Both are stored under
/// the idempotency key, so a retried request gets the same answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub status: u16,
    pub body: Value,
}

/// What an Idempotency-Key is bound to: the endpoint and the body's canonical JSON.
fn request_sha256(kind: SendKind, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(format!("{kind:?}\n").as_bytes());
    h.update(serde_json::to_vec(body).unwrap_or_default());
    hex::encode(h.finalize())
}

/// sha256 of a value's canonical JSON (serde_json sorts object keys).
pub fn sha256_json(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

impl Herald {
    /// Parses and validates a send, resolving its page.
    pub fn parse_send(
        &self,
        body: &Value,
        kind: SendKind,
    ) -> Result<(OutboundMessage, &super::Page), ApiError> {
        let message = OutboundMessage::parse(body, kind).map_err(ApiError::Invalid)?;
        let page = self
            .pages
            .resolve(message.page_id.as_ref())
            .ok_or_else(|| {
                ApiError::Invalid(vec![FieldError::new(
                    "page_id",
                    "is not a page configured in [messenger.pages]",
                )])
            })?;
        Ok((message, page))
    }

    /// Decides on a send and, unless it is a replay, stores it durably before answering.
    pub async fn send(&self, req: SendRequest<'_>) -> Result<Accepted, ApiError> {
        // Only a request with an Idempotency-Key pays for hashing its body.
        let keyed = match req.idempotency_key {
            Some(key) => {
                let request_sha256 = request_sha256(req.kind, req.body);
                if let Some(first) = self.store.idempotency(&req.client.name, key)? {
                    return replay(first, &request_sha256);
                }
                Some((key, request_sha256))
            }
            None => None,
        };
        let (message, page) = self.parse_send(req.body, req.kind)?;
        let now = Utc::now();
        let policy = self.policy();
        let facts = self.facts(
            &policy,
            &message.recipient,
            page.region.as_deref(),
            req.client.role,
            now,
        )?;
        let decision = evaluate(&policy, &message, &facts);
        let record = new_record(req.client, message, page.id.as_str(), decision, now);
        let answer = answer(&record);
        let enqueue = record.status.is_pending();
        let idempotency = keyed
            .as_ref()
            .map(|(key, request_sha256)| IdempotencyWrite {
                client: req.client.name.clone(),
                key: (*key).to_owned(),
                request_sha256: request_sha256.clone(),
                status: answer.status,
                body: answer.body.clone(),
            });
        let outcome = self
            .store
            .accept(NewMessage::new(record).with_idempotency(idempotency))
            .await?;
        match outcome {
            store::Accepted::Stored => {
                if enqueue {
                    self.outbox_wake.notify_one();
                }
                Ok(answer)
            }
            store::Accepted::Replay(first) => {
                let request_sha256 = keyed.map(|(_, sha)| sha).unwrap_or_default();
                replay(first, &request_sha256)
            }
            store::Accepted::Conflict => Err(conflict()),
        }
    }
}

fn conflict() -> ApiError {
    ApiError::Conflict("this Idempotency-Key was used with another request body".into())
}

fn replay(first: store::IdempotencyRecord, request_sha256: &str) -> Result<Accepted, ApiError> {
    if first.request_sha256 == request_sha256 {
        Ok(Accepted {
            status: first.status,
            body: first.body,
        })
    } else {
        Err(conflict())
    }
}

/// The status a fresh decision puts a message in, and when it may go.
pub fn placement(
    decision: &Decision,
    send_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (MessageStatus, Option<DateTime<Utc>>) {
    let later = send_at.filter(|t| *t > now);
    match decision.outcome {
        Outcome::Deny => (MessageStatus::Denied, None),
        Outcome::Defer => {
            let at = decision.not_before.unwrap_or(now);
            (
                MessageStatus::Deferred,
                Some(later.map_or(at, |l| l.max(at))),
            )
        }
        // Allowed now, but asked for later: decided again when the time comes.
        Outcome::Allow => match later {
            Some(at) => (MessageStatus::Deferred, Some(at)),
            None => (MessageStatus::Queued, Some(now)),
        },
    }
}

fn new_record(
    client: &Client,
    message: OutboundMessage,
    page_id: &str,
    decision: Decision,
    now: DateTime<Utc>,
) -> MessageRecord {
    let (status, not_before) = placement(&decision, message.send_at, now);
    MessageRecord {
        id: MessageId::generate(),
        created_at: now,
        client: client.name.clone(),
        role: client.role,
        page_id: page_id.to_owned(),
        content_sha256: sha256_json(&message.content),
        recipient: message.recipient,
        category: message.category,
        content: message.content,
        utility_template: message.utility_template,
        decision,
        status,
        not_before,
        attempts: Vec::new(),
        graph_message_id: None,
        sent_at: None,
        history: vec![store::StatusChange { status, at: now }],
        campaign: None,
        trace_sha256: None,
    }
}

/// What the client is told about a freshly decided message.
fn answer(record: &MessageRecord) -> Accepted {
    if record.status == MessageStatus::Denied {
        let error = ApiError::Denied {
            decision: Box::new(record.decision.clone()),
            message_id: record.id.clone(),
        };
        return Accepted {
            status: error.status_code().as_u16(),
            body: error.body(),
        };
    }
    Accepted {
        status: 202,
        body: json!({
            "id": record.id,
            "status": record.status,
            "not_before": record.not_before.filter(|_| record.status == MessageStatus::Deferred),
            "decision": record.decision,
        }),
    }
}
