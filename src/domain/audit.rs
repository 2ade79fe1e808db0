//! The audit log: append-only, hash-chained. `hash = sha256(prev_hash || canonical entry)`, where
//! the canonical entry is the entry's JSON without its `hash`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::lifecycle::MessageStatus;
use super::records::{GraphErrorRecord, MessageRecord};
use super::Category;
use crate::policy::Decision;

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A policy decision: allow, deny or defer.
    #[default]
    Decision,
    /// One try at the Graph API.
    Attempt,
    /// A message status change.
    Status,
    /// A consent granted or withdrawn.
    Consent,
    Campaign,
    Policy,
}

/// One entry of the audit log (API.md §6, Audit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub kind: AuditKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messaging_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_error: Option<GraphErrorRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// For status entries: the new status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<MessageStatus>,
    /// Free words: the consent's source and scope, the attempt's error, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub prev_hash: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
}

impl AuditEntry {
    /// An entry about `message`, with its identifying fields filled in.
    pub fn about(kind: AuditKind, message: &MessageRecord, at: DateTime<Utc>) -> AuditEntry {
        AuditEntry {
            at,
            kind,
            message_id: Some(message.id.to_string()),
            page_id: Some(message.page_id.clone()),
            recipient: Some(message.recipient.key()),
            client: Some(message.client.clone()),
            category: Some(message.category),
            campaign: message.campaign.clone(),
            content_sha256: Some(message.content_sha256.clone()),
            ..AuditEntry::default()
        }
    }

    /// The decision entry for `message`.
    pub fn decision(message: &MessageRecord, decision: &Decision, at: DateTime<Utc>) -> Self {
        AuditEntry {
            outcome: Some(decision.outcome.as_str().to_owned()),
            reason: Some(decision.reason.as_str().to_owned()),
            rule: Some(decision.rule.clone()),
            policy_version: Some(decision.policy_version.clone()),
            messaging_type: decision.messaging_type.map(|m| m.as_str().to_owned()),
            tag: decision.tag.map(|t| t.as_str().to_owned()),
            ..AuditEntry::about(AuditKind::Decision, message, at)
        }
    }

    /// A status entry for `message` moving to `status`.
    pub fn status(message: &MessageRecord, status: MessageStatus, at: DateTime<Utc>) -> Self {
        AuditEntry {
            status: Some(status),
            graph_message_id: message.graph_message_id.clone(),
            ..AuditEntry::about(AuditKind::Status, message, at)
        }
    }

    /// Links this entry to `prev_hash`, computes its own hash, and returns the entry as
    /// stored: its JSON, encoded once.
    pub fn seal(&mut self, seq: u64, prev_hash: &str) -> Result<Vec<u8>, serde_json::Error> {
        self.seq = seq;
        self.prev_hash = prev_hash.to_owned();
        self.hash = String::new();
        let mut json = self.canonical()?;
        self.hash = chain_hash(prev_hash, &json);
        // `hash` is the last field, left out while empty: the stored JSON is the canonical JSON
        // with it appended (a test checks this against serde's own encoding).
        json.pop();
        json.extend_from_slice(b",\"hash\":\"");
        json.extend_from_slice(self.hash.as_bytes());
        json.extend_from_slice(b"\"}");
        Ok(json)
    }

    /// The entry's JSON without its `hash`: what the hash covers.
    fn canonical(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// What the hash of this entry must be, given its `prev_hash`.
    pub fn computed_hash(&self) -> Result<String, serde_json::Error> {
        let mut unsealed = self.clone();
        unsealed.hash = String::new();
        Ok(chain_hash(&self.prev_hash, &unsealed.canonical()?))
    }
}

fn chain_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical);
    hex::encode(h.finalize())
}

/// Where the chain ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

impl Default for AuditHead {
    fn default() -> Self {
        AuditHead {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub entries: u64,
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
}

/// One stored entry as the chain walk sees it.
// Walked one at a time, nearly all of them entries: boxing each would cost an allocation apiece.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ChainItem {
    Entry(AuditEntry),
    /// The bytes stored under `seq` are not an entry: altered or corrupt, so the chain breaks
    /// there.
    Undecodable {
        seq: u64,
    },
}

/// Walks entries in order and reports the first that breaks the chain. An `Err` from the
/// entries (the disk could not be read) is an error, never a verdict of tampering.
pub fn verify_chain<E, I>(entries: I) -> Result<Verification, E>
where
    I: IntoIterator<Item = Result<ChainItem, E>>,
{
    let mut prev = AuditHead::default();
    for item in entries {
        let entry = match item? {
            ChainItem::Entry(e) => e,
            ChainItem::Undecodable { seq } => return Ok(broken(prev, seq)),
        };
        let expected_seq = prev.seq + 1;
        let hash_ok = entry
            .computed_hash()
            .is_ok_and(|computed| computed == entry.hash);
        if entry.seq != expected_seq || entry.prev_hash != prev.hash || !hash_ok {
            return Ok(broken(prev, expected_seq.min(entry.seq.max(1))));
        }
        prev = AuditHead {
            seq: entry.seq,
            hash: entry.hash,
        };
    }
    Ok(Verification {
        ok: true,
        entries: prev.seq,
        head: prev.hash,
        first_bad_seq: None,
    })
}

fn broken(prev: AuditHead, seq: u64) -> Verification {
    Verification {
        ok: false,
        entries: prev.seq,
        head: prev.hash,
        first_bad_seq: Some(seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut head = AuditHead::default();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    detail: Some(format!("entry {seq}")),
                    ..AuditEntry::default()
                };
                e.seal(seq, &head.hash).expect("seal");
                head = AuditHead {
                    seq,
                    hash: e.hash.clone(),
                };
                e
            })
            .collect()
    }

    fn walk(entries: Vec<AuditEntry>) -> Verification {
        verify_chain(
            entries
                .into_iter()
                .map(|e| Ok::<_, ()>(ChainItem::Entry(e))),
        )
        .expect("walk")
    }

    #[test]
    fn a_read_error_is_an_error_not_tampering() {
        let items = vec![Ok(ChainItem::Entry(chain(1).remove(0))), Err("disk")];
        assert_eq!(verify_chain(items), Err("disk"));
    }

    #[test]
    fn undecodable_bytes_break_the_chain_where_they_stand() {
        let mut items: Vec<Result<ChainItem, ()>> = chain(2)
            .into_iter()
            .map(|e| Ok(ChainItem::Entry(e)))
            .collect();
        items.push(Ok(ChainItem::Undecodable { seq: 3 }));
        let v = verify_chain(items).expect("walk");
        assert_eq!((v.ok, v.first_bad_seq, v.entries), (false, Some(3), 2));
    }

    #[test]
    fn a_sealed_entry_is_stored_as_serde_encodes_it() {
        let mut e = AuditEntry {
            message_id: Some("msg_1".into()),
            detail: Some("quote \" and \\ and é".into()),
            ..AuditEntry::default()
        };
        let stored = e.seal(7, GENESIS).expect("seal");
        assert_eq!(stored, serde_json::to_vec(&e).expect("json"));
        assert_eq!(e.hash, e.computed_hash().expect("hash"));
        let back: AuditEntry = serde_json::from_slice(&stored).expect("decode");
        assert_eq!(back, e);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let v = walk(chain(5));
        assert!(v.ok);
        assert_eq!(v.entries, 5);
    }

    #[test]
    fn a_changed_entry_is_named() {
        let mut entries = chain(5);
        entries[2].detail = Some("rewritten".into());
        let v = walk(entries);
        assert_eq!((v.ok, v.first_bad_seq), (false, Some(3)));
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut entries = chain(5);
        entries.remove(1);
        let v = walk(entries);
        assert_eq!((v.ok, v.first_bad_seq), (false, Some(2)));
    }
}
