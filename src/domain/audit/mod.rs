//! The audit log: append-only, hash-chained. `hash = sha256(prev_hash || canonical entry)`, where
//! the canonical entry is the entry's JSON without its `hash`.
//!
//! Personal data stays out of the chain, so that it can be erased while the chain still
//! verifies: an entry names its recipient by a keyed pseudonym ([`Pseudonyms`]) and holds the
//! sha256 of its erasable values ([`Personal`]: the recipient's key, a consent's evidence, with
//! a random salt), which the store keeps beside the chain and erasure removes.
//!
//! ```text
//!   chain:   … ─► entry n { recipient_pseudonym, personal_sha256, … , prev_hash, hash } ─► …
//!   beside:        personal n { recipient, consent_evidence, event, email, salt }   (erasable)
//! ```
//!
//! This file holds what an entry is and how it is sealed; `chain.rs` the chain's head and its
//! verification.

mod chain;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::decision::Decision;
use super::lifecycle::MessageStatus;
use super::records::{GraphErrorRecord, MessageRecord};
use super::Category;

pub use self::chain::{
    sealed_hash, verify_chain, AuditHead, ChainHead, ChainItem, ChainPoint, ChainVerification,
    CheckpointCheck, Verification,
};

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
    /// Entries older than `[audit] retain_days` were pruned; the chain now starts after them.
    Retention,
    /// A person's data was erased (`DELETE /v1/recipients/{psid}`).
    Erasure,
    /// Something the person did that Messenger told Herald of: a message, a postback, a
    /// reaction, a referral (outcome names which; what it carried is an erasable value).
    Inbound,
    /// A change in what Herald knows of a person outside consent: unreachable.
    Recipient,
    /// An event endpoint created, changed, deleted, given a new secret or disabled.
    Endpoint,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Decision => "decision",
            AuditKind::Attempt => "attempt",
            AuditKind::Status => "status",
            AuditKind::Consent => "consent",
            AuditKind::Campaign => "campaign",
            AuditKind::Policy => "policy",
            AuditKind::Retention => "retention",
            AuditKind::Erasure => "erasure",
            AuditKind::Inbound => "inbound",
            AuditKind::Recipient => "recipient",
            AuditKind::Endpoint => "endpoint",
        }
    }
}

impl std::str::FromStr for AuditKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            AuditKind::Decision,
            AuditKind::Attempt,
            AuditKind::Status,
            AuditKind::Consent,
            AuditKind::Campaign,
            AuditKind::Policy,
            AuditKind::Retention,
            AuditKind::Erasure,
            AuditKind::Inbound,
            AuditKind::Recipient,
            AuditKind::Endpoint,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| format!("{s} is not an audit entry kind"))
    }
}

/// What the first inbound entry of a webhook POST keeps of the POST, in [`Personal::event`],
/// for `format: "messenger"` endpoints only: its body as posted, its `X-Hub-Signature-256`,
/// the inbound event types it holds. Left out of events and of the API's view of the entry.
pub const POST_FIELDS: [&str; 3] = ["raw", "signature", "post_types"];

/// The erasable values of one entry, kept beside the chain; the entry holds their sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Personal {
    /// The recipient's key (the PSID, or `user_ref:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// A consent's evidence: the client's, the webhook's ref, the keyword written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_evidence: Option<Value>,
    /// What an inbound event carried (its `mid`, text, attachments, payload, `ref`, and for
    /// `format: "messenger"` endpoints the body Messenger posted and its signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    /// The address an email try went to (email fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Random, given when the entry is sealed: without it the sha256 of a short value (a PSID)
    /// would give the value away once it is erased.
    #[serde(default)]
    pub salt: String,
}

impl Personal {
    /// The recipient's values, to be sealed with an entry.
    pub fn of(recipient: impl Into<String>) -> Personal {
        Personal {
            recipient: Some(recipient.into()),
            ..Personal::default()
        }
    }

    /// The sha256 the entry keeps, over the JSON of these values with their salt.
    pub fn sha256(&self) -> Result<String, serde_json::Error> {
        Ok(hex::encode(Sha256::digest(serde_json::to_vec(self)?)))
    }
}

/// Keyed pseudonyms of recipients: HMAC-SHA256 under a key of the gateway's (`[audit]
/// pseudonym_key`, or derived from the signing key). The same recipient always gets the same
/// pseudonym, so queries by PSID find entries whose PSID was erased; without the key, a
/// pseudonym cannot be turned back into a PSID, nor a guess confirmed.
#[derive(Clone)]
pub struct Pseudonyms {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonyms(<key>)")
    }
}

impl Pseudonyms {
    /// Pseudonyms under `key`.
    pub fn new(key: &[u8]) -> Pseudonyms {
        // HMAC takes a key of any length; this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        Pseudonyms { mac }
    }

    /// `psn_` and the first 16 bytes of HMAC(key, recipient key), in hex.
    pub fn of(&self, recipient: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(recipient.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("{PSEUDONYM_PREFIX}{}", hex::encode(&digest[..16]))
    }

    /// The 16 bytes a pseudonym [`Pseudonyms::of`] made spells, for a store that keeps them as
    /// bytes; `None` for anything else.
    pub fn bytes(pseudonym: &str) -> Option<[u8; 16]> {
        let mut bytes = [0; 16];
        let digits = pseudonym.strip_prefix(PSEUDONYM_PREFIX)?;
        hex::decode_to_slice(digits, &mut bytes).ok()?;
        Some(bytes)
    }
}

/// What every pseudonym starts with.
const PSEUDONYM_PREFIX: &str = "psn_";

/// One entry of the audit log (API.md §6, Audit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AuditEntry {
    pub seq: u64,
    /// The chain the entry belongs to, when the store keeps several (PostgreSQL keeps one per
    /// partition of pages, so that instances append side by side); absent with one chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<u32>,
    pub at: DateTime<Utc>,
    pub kind: AuditKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    /// The recipient's keyed pseudonym ([`Pseudonyms`]), given when the entry is sealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_pseudonym: Option<String>,
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
    /// The consent this entry is about (consent entries) or that permitted it (decisions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
    /// That consent's source: `api`, `plugin`, `referral`, `user_message`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_source: Option<String>,
    /// Tries, statuses and decisions about the email fallback: `email` (left out for
    /// Messenger, as on every entry written before email existed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Free words: the consent's source and scope, the attempt's error, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// sha256 of the entry's erasable values ([`Personal`]), which are kept beside the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub personal_sha256: Option<String>,
    pub prev_hash: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// The erasable values, outside the chain: given by whoever builds the entry, taken apart
    /// by the store when it seals it, and put back when it is read unless they were erased.
    #[serde(skip)]
    pub personal: Option<Personal>,
}

impl AuditEntry {
    /// An entry about `message`, with its identifying fields filled in.
    pub fn about(kind: AuditKind, message: &MessageRecord, at: DateTime<Utc>) -> AuditEntry {
        AuditEntry {
            at,
            kind,
            message_id: Some(message.id.to_string()),
            page_id: Some(message.page_id.to_string()),
            client: Some(message.client.clone()),
            category: Some(message.category),
            campaign: message.campaign.as_ref().map(ToString::to_string),
            content_sha256: Some(message.content_sha256.clone()),
            personal: Some(Personal::of(message.recipient.key())),
            ..AuditEntry::default()
        }
    }

    /// The recipient's key, unless it was erased (or the entry names none).
    pub fn recipient(&self) -> Option<&str> {
        self.personal.as_ref()?.recipient.as_deref()
    }

    /// The entry had erasable values, and they were erased.
    pub fn erased(&self) -> bool {
        self.personal_sha256.is_some() && self.personal.is_none()
    }

    /// Takes the erasable values out before sealing: salts them, and keeps the recipient's
    /// pseudonym and their sha256 in the entry. Returns them, to be stored beside the chain.
    pub fn take_personal(
        &mut self,
        pseudonyms: &Pseudonyms,
        salt: String,
    ) -> Result<Option<Personal>, serde_json::Error> {
        let Some(mut personal) = self.personal.take() else {
            return Ok(None);
        };
        personal.salt = salt;
        self.recipient_pseudonym = personal.recipient.as_deref().map(|r| pseudonyms.of(r));
        self.personal_sha256 = Some(personal.sha256()?);
        Ok(Some(personal))
    }

    /// The entry as the API shows it: the chained fields with the erasable values beside them.
    pub fn view(&self) -> AuditView<'_> {
        AuditView {
            recipient: self.recipient(),
            consent_evidence: self
                .personal
                .as_ref()
                .and_then(|p| p.consent_evidence.as_ref()),
            email: self.personal.as_ref().and_then(|p| p.email.as_deref()),
            event: self
                .personal
                .as_ref()
                .and_then(|p| p.event.as_ref())
                .and_then(Value::as_object)
                .map(|fields| {
                    fields
                        .iter()
                        .filter(|(k, _)| !POST_FIELDS.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                }),
            erased: self.erased(),
            entry: self,
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
            consent_id: decision.consent.as_ref().map(|c| c.id.clone()),
            consent_source: decision
                .consent
                .as_ref()
                .map(|c| c.source.as_str().to_owned()),
            ..AuditEntry::about(AuditKind::Decision, message, at)
        }
    }

    /// A status entry for `message` moving to `status`.
    pub fn status(message: &MessageRecord, status: MessageStatus, at: DateTime<Utc>) -> Self {
        AuditEntry {
            status: Some(status),
            graph_message_id: message.graph_message_id.clone(),
            channel: (!message.channel.is_messenger()).then(|| message.channel.as_str().to_owned()),
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

/// An entry as the API shows it (`GET /v1/audit`, the JSONL export).
#[derive(Debug, Serialize)]
pub struct AuditView<'a> {
    #[serde(flatten)]
    pub entry: &'a AuditEntry,
    /// The recipient's key, until it is erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent_evidence: Option<&'a Value>,
    /// The address an email try went to (email fallback), until it is erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    /// What an inbound event carried (kind `inbound`), until it is erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Map<String, Value>>,
    /// The entry's personal data was erased; its pseudonym and hash remain.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

fn chain_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical);
    hex::encode(h.finalize())
}

/// A fresh random salt for an entry's personal values.
pub fn fresh_salt() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests;
