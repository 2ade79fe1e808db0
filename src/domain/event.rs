//! Events for business systems (API.md, "Events for business systems"): what a backend, a
//! helpdesk or a CRM behind Herald hears about — a message's statuses, the customer's inbound
//! messages, consents, recipients, campaigns, event endpoints.
//!
//! An event is not written on its own: it is read from the audit log, whose entries are already
//! written in the transaction of the change they record. So an event is never lost in a crash
//! and never told of a change that did not happen, the write path pays nothing for it, it is
//! kept exactly as long as the audit log, and erasing a person's values from the log erases them
//! from every event built from it afterwards. [`events_of`] is that reading: one audit entry
//! gives no event, one, or (never more than [`MAX_PER_ENTRY`]) several.
//!
//! ```text
//!   audit chain:  … entry (chain, seq) …  ──events_of──►  Event { id: evt_<chain>_<seq>_<i>, type, at, data }
//! ```
//!
//! An event's id names where it was read from ([`EventRef`]), so it is the same every time it is
//! read: on every retry and every replay (the `webhook-id` receivers deduplicate by).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::audit::{AuditEntry, AuditKind, POST_FIELDS};
use super::lifecycle::MessageStatus;

/// At most this many events come from one audit entry.
pub const MAX_PER_ENTRY: u8 = 4;

/// Every event type, as endpoints subscribe to them and the feed filters them.
pub const TYPES: &[&str] = &[
    "message.queued",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.expired",
    "message.cancelled",
    "message.denied",
    "inbound.message",
    "inbound.postback",
    "inbound.reaction",
    "inbound.referral",
    "consent.granted",
    "consent.opted_out",
    "recipient.unreachable",
    "recipient.erased",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.completed",
    "campaign.cancelled",
    "endpoint.disabled",
];

/// Where an event was read from: the audit chain (0 with one chain), the entry's seq in it, and
/// the event's place among those of the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventRef {
    pub chain: u32,
    pub seq: u64,
    pub index: u8,
}

impl EventRef {
    /// `evt_<chain>_<seq>_<index>`.
    pub fn id(&self) -> String {
        format!("evt_{}_{}_{}", self.chain, self.seq, self.index)
    }

    /// The reference an id names; `None` for anything that is not an event id.
    pub fn parse(id: &str) -> Option<EventRef> {
        let mut parts = id.strip_prefix("evt_")?.splitn(3, '_');
        let chain = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let index: u8 = parts.next()?.parse().ok()?;
        (index < MAX_PER_ENTRY).then_some(EventRef { chain, seq, index })
    }
}

/// One event, as it is delivered and listed: `{ "id", "type", "at", "data" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: DateTime<Utc>,
    pub data: Value,
}

/// Which event types an endpoint or a query wants: exact types, `prefix.*`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TypeFilter(Vec<String>);

impl TypeFilter {
    /// Every event.
    pub fn all() -> TypeFilter {
        TypeFilter(vec!["*".to_owned()])
    }

    /// Checks each pattern names a type or a family of types; the error names the first that
    /// does not.
    pub fn parse(patterns: Vec<String>) -> Result<TypeFilter, String> {
        if patterns.is_empty() {
            return Err("name at least one event type, or \"*\" for all".to_owned());
        }
        for p in &patterns {
            let known = match p.strip_suffix(".*") {
                Some(family) => TYPES.iter().any(|t| t.split('.').next() == Some(family)),
                None => p == "*" || TYPES.contains(&p.as_str()),
            };
            if !known {
                return Err(format!(
                    "{p:?} is not an event type: one of {}, a family such as \"message.*\", or \"*\"",
                    TYPES.join(", ")
                ));
            }
        }
        Ok(TypeFilter(patterns))
    }

    /// Whether an event of type `kind` passes.
    pub fn admits(&self, kind: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => kind.starts_with(prefix),
            None => p == kind,
        })
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

/// The events an audit entry (read with its erasable values, unless erased) tells of, with
/// their place in the chain. `chain` is the entry's chain (0 when the store keeps one).
pub fn events_of(entry: &AuditEntry) -> Vec<Event> {
    let chain = entry.chain.unwrap_or(0);
    kinds_and_data(entry)
        .into_iter()
        .take(usize::from(MAX_PER_ENTRY))
        .enumerate()
        .map(|(i, (kind, data))| Event {
            id: EventRef {
                chain,
                seq: entry.seq,
                index: i as u8,
            }
            .id(),
            kind,
            at: entry.at,
            data,
        })
        .collect()
}

/// The one event `reference` names, if its entry gives it.
pub fn event_at(entry: &AuditEntry, reference: EventRef) -> Option<Event> {
    events_of(entry)
        .into_iter()
        .nth(usize::from(reference.index))
}

fn kinds_and_data(entry: &AuditEntry) -> Vec<(String, Value)> {
    let outcome = entry.outcome.as_deref().unwrap_or_default();
    let kind = match entry.kind {
        // The email fallback's decision is no news of its own: the message was queued before,
        // and what it leads to is told by `message.sent` (channel email) or `message.failed`.
        AuditKind::Decision if entry.channel.is_some() => None,
        AuditKind::Decision => match outcome {
            "allow" => Some("message.queued"),
            "deny" => Some("message.denied"),
            _ => None,
        },
        AuditKind::Status => match entry.status {
            Some(MessageStatus::Sent) => Some("message.sent"),
            Some(MessageStatus::Delivered) => Some("message.delivered"),
            Some(MessageStatus::Read) => Some("message.read"),
            Some(MessageStatus::Failed) => Some("message.failed"),
            Some(MessageStatus::Expired) => Some("message.expired"),
            Some(MessageStatus::Cancelled) => Some("message.cancelled"),
            // A denial is told by its decision; queued by the decision that allowed it.
            _ => None,
        },
        AuditKind::Consent => match outcome {
            "grant" => Some("consent.granted"),
            "opt_out" => Some("consent.opted_out"),
            _ => None,
        },
        AuditKind::Campaign => match outcome {
            "started" => Some("campaign.started"),
            "paused" => Some("campaign.paused"),
            "resumed" => Some("campaign.resumed"),
            "completed" => Some("campaign.completed"),
            "cancelled" => Some("campaign.cancelled"),
            _ => None,
        },
        AuditKind::Erasure => Some("recipient.erased"),
        AuditKind::Recipient => match outcome {
            "unreachable" => Some("recipient.unreachable"),
            _ => None,
        },
        AuditKind::Inbound => match outcome {
            "message" => Some("inbound.message"),
            "postback" => Some("inbound.postback"),
            "reaction" => Some("inbound.reaction"),
            "referral" => Some("inbound.referral"),
            _ => None,
        },
        AuditKind::Endpoint => (outcome == "disabled").then_some("endpoint.disabled"),
        AuditKind::Attempt | AuditKind::Policy | AuditKind::Retention => None,
    };
    let Some(kind) = kind else {
        return Vec::new();
    };
    let data = match entry.kind {
        AuditKind::Decision | AuditKind::Status => message_data(entry, kind),
        AuditKind::Consent => consent_data(entry),
        AuditKind::Campaign => campaign_data(entry, outcome),
        AuditKind::Inbound => inbound_data(entry),
        AuditKind::Endpoint => json!({ "id": entry.detail, "reason": entry.reason }),
        AuditKind::Recipient => recipient_data(entry),
        _ => person_data(entry),
    };
    vec![(kind.to_owned(), data)]
}

/// Inserts `value` under `key` unless it is `None`.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<impl Serialize>) {
    if let Some(v) = value.and_then(|v| serde_json::to_value(v).ok()) {
        map.insert(key.to_owned(), v);
    }
}

/// The person an entry is about: the PSID (a `user_ref:…` key as `user_ref`) until erased, and
/// the page.
fn person_data(entry: &AuditEntry) -> Value {
    let mut map = Map::new();
    put_person(&mut map, entry);
    put(&mut map, "page_id", entry.page_id.as_deref());
    Value::Object(map)
}

fn put_person(map: &mut Map<String, Value>, entry: &AuditEntry) {
    match entry.recipient() {
        Some(key) => match key.strip_prefix("user_ref:") {
            Some(user_ref) => put(map, "user_ref", Some(user_ref)),
            None => put(map, "psid", Some(key)),
        },
        None if entry.erased() => put(map, "erased", Some(true)),
        None => {}
    }
}

/// A person Messenger cannot reach: who, on which page, and the Graph error that said so.
fn recipient_data(entry: &AuditEntry) -> Value {
    let mut map = Map::new();
    put_person(&mut map, entry);
    put(&mut map, "page_id", entry.page_id.as_deref());
    put(&mut map, "reason", entry.detail.as_deref());
    if let Some(e) = &entry.graph_error {
        map.insert(
            "error".to_owned(),
            json!({ "code": e.code, "subcode": e.subcode }),
        );
    }
    Value::Object(map)
}

/// A message as `GET /v1/messages/{id}` shows it, at the moment of the entry.
fn message_data(entry: &AuditEntry, kind: &str) -> Value {
    let status = kind.strip_prefix("message.").unwrap_or(kind);
    let mut map = Map::new();
    put(&mut map, "id", entry.message_id.as_deref());
    put(&mut map, "status", Some(status));
    put(
        &mut map,
        "channel",
        Some(entry.channel.as_deref().unwrap_or("messenger")),
    );
    if let Some(key) = entry.recipient() {
        let recipient = match key.strip_prefix("user_ref:") {
            Some(user_ref) => json!({ "user_ref": user_ref }),
            None => json!({ "id": key }),
        };
        map.insert("recipient".to_owned(), recipient);
    } else if entry.erased() {
        put(&mut map, "erased", Some(true));
    }
    put(&mut map, "page_id", entry.page_id.as_deref());
    put(&mut map, "category", entry.category);
    put(&mut map, "reason", entry.reason.as_deref());
    put(&mut map, "rule", entry.rule.as_deref());
    put(
        &mut map,
        "graph_message_id",
        entry.graph_message_id.as_deref(),
    );
    put(&mut map, "error", entry.graph_error.as_ref());
    put(&mut map, "campaign", entry.campaign.as_deref());
    put(&mut map, "client", entry.client.as_deref());
    Value::Object(map)
}

/// A consent granted or withdrawn: the person, its scope, and where it came from (for an
/// opt-out: `stop_keyword`, `api`, `notification_stop` or `blocked`).
fn consent_data(entry: &AuditEntry) -> Value {
    let mut map = Map::new();
    put_person(&mut map, entry);
    put(&mut map, "page_id", entry.page_id.as_deref());
    put(&mut map, "scope", entry.reason.as_deref());
    let source = match entry.detail.as_deref() {
        Some("notification_settings") => Some("notification_stop"),
        other => other,
    };
    put(&mut map, "source", source);
    put(&mut map, "consent_id", entry.consent_id.as_deref());
    put(&mut map, "client", entry.client.as_deref());
    Value::Object(map)
}

fn campaign_data(entry: &AuditEntry, outcome: &str) -> Value {
    let status = match outcome {
        "started" | "resumed" => "running",
        other => other,
    };
    let mut map = Map::new();
    put(&mut map, "id", entry.campaign.as_deref());
    put(&mut map, "status", Some(status));
    put(&mut map, "page_id", entry.page_id.as_deref());
    put(&mut map, "reason", entry.reason.as_deref());
    put(&mut map, "detail", entry.detail.as_deref());
    put(&mut map, "client", entry.client.as_deref());
    Value::Object(map)
}

/// An inbound event: the person and page, when it happened, and what the event carried (kept
/// with the entry's erasable values: gone once the person is erased).
fn inbound_data(entry: &AuditEntry) -> Value {
    let mut map = Map::new();
    put_person(&mut map, entry);
    put(&mut map, "page_id", entry.page_id.as_deref());
    put(&mut map, "at", Some(entry.at));
    if let Some(Value::Object(fields)) = entry.personal.as_ref().and_then(|p| p.event.as_ref()) {
        for (k, v) in fields {
            if !POST_FIELDS.contains(&k.as_str()) {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests;
