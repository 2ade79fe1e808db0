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

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::decision::Decision;
use super::lifecycle::MessageStatus;
use super::records::{GraphErrorRecord, MessageRecord};
use super::Category;

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
        format!("psn_{}", hex::encode(&digest[..16]))
    }
}

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

/// Where the chain ends. A store with several chains reports their combination
/// ([`AuditHead::combined`]): `seq` counts every entry and `hash` covers each chain's head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
    /// With several chains: the head of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainHead>,
}

impl Default for AuditHead {
    fn default() -> Self {
        AuditHead::at(0, GENESIS.to_owned())
    }
}

/// Where one of several chains ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub chain: u32,
    pub seq: u64,
    pub hash: String,
}

impl AuditHead {
    /// The head of a single chain.
    pub fn at(seq: u64, hash: String) -> AuditHead {
        AuditHead {
            seq,
            hash,
            chains: Vec::new(),
        }
    }

    /// The combined head of several chains: `seq` is the sum of their seqs and `hash` the
    /// sha256 of `chain:seq:hash` lines in chain order, so that signing it pins every chain.
    pub fn combined(mut chains: Vec<ChainHead>) -> AuditHead {
        chains.sort_by_key(|c| c.chain);
        let mut h = Sha256::new();
        for c in &chains {
            h.update(format!("{}:{}:{}\n", c.chain, c.seq, c.hash).as_bytes());
        }
        AuditHead {
            seq: chains.iter().map(|c| c.seq).sum(),
            hash: hex::encode(h.finalize()),
            chains,
        }
    }
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// Entries checked and found good.
    pub entries: u64,
    /// Where the chain starts: 1, or the first entry kept after older ones were pruned (whose
    /// `prev_hash` is the recorded hash of the last one pruned).
    pub first_seq: u64,
    /// The last good entry's seq and hash.
    pub head_seq: u64,
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// With several chains: the chain that breaks (`first_bad_seq` is within it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_chain: Option<u32>,
    /// With several chains: each chain's own verification; `entries`, `head_seq` and `head`
    /// are then their combination ([`AuditHead::combined`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainVerification>,
    /// With a checkpoint: whether the log still extends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointCheck>,
}

/// One chain's verification, among several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainVerification {
    pub chain: u32,
    pub ok: bool,
    pub entries: u64,
    pub first_seq: u64,
    pub head_seq: u64,
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
}

impl Verification {
    /// The verification of several chains, each walked on its own: ok when every one is, with
    /// their combined head.
    pub fn combine(walked: Vec<(u32, Verification)>) -> Verification {
        let head = AuditHead::combined(
            walked
                .iter()
                .map(|(chain, v)| ChainHead {
                    chain: *chain,
                    seq: v.head_seq,
                    hash: v.head.clone(),
                })
                .collect(),
        );
        let bad = walked
            .iter()
            .find_map(|(chain, v)| v.first_bad_seq.map(|seq| (*chain, seq)));
        Verification {
            ok: walked.iter().all(|(_, v)| v.ok),
            entries: walked.iter().map(|(_, v)| v.entries).sum(),
            first_seq: 1,
            head_seq: head.seq,
            head: head.hash,
            first_bad_seq: bad.map(|(_, seq)| seq),
            first_bad_chain: bad.map(|(chain, _)| chain),
            chains: walked
                .into_iter()
                .map(|(chain, v)| ChainVerification {
                    chain,
                    ok: v.ok,
                    entries: v.entries,
                    first_seq: v.first_seq,
                    head_seq: v.head_seq,
                    head: v.head,
                    first_bad_seq: v.first_bad_seq,
                })
                .collect(),
            checkpoint: None,
        }
    }
}

/// A point of the log someone kept: the entry at `seq` had hash `hash`. With several chains,
/// `seq` and `hash` are a combined head and `chains` the heads it combines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPoint {
    pub seq: u64,
    pub hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<ChainHead>,
}

/// What became of a checkpoint in a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointCheck {
    pub seq: u64,
    /// The entry at `seq` still has the checkpoint's hash: the log was only appended to since.
    pub ok: bool,
    /// Why not, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Verification {
    /// Checks that the chain (already walked) still extends `point`, given the hash found at
    /// `point.seq` (`None`: no such entry). A log that does not is not ok.
    pub fn against(&mut self, point: &ChainPoint, found: Option<&str>) {
        // With several chains, one of the point's chains may have been pruned past it.
        let pruned_chain = point.chains.iter().find_map(|c| {
            self.chains
                .iter()
                .find(|v| v.chain == c.chain && c.seq + 1 < v.first_seq)
                .map(|v| (c.chain, c.seq, v.first_seq))
        });
        let problem = if point.seq > self.head_seq {
            Some(format!(
                "the log ends at {} before the checkpoint's entry",
                self.head_seq
            ))
        } else if let Some((chain, seq, first)) = pruned_chain {
            Some(format!(
                "entry {seq} of chain {chain} was pruned; that chain now starts at {first}"
            ))
        } else if point.chains.is_empty() && point.seq + 1 < self.first_seq {
            Some(format!(
                "entry {} was pruned; the chain now starts at {}",
                point.seq, self.first_seq
            ))
        } else {
            match found {
                Some(h) if h == point.hash => None,
                Some(_) => Some(format!(
                    "entry {} no longer has the checkpoint's hash: the log was rewritten",
                    point.seq
                )),
                None => Some(format!("entry {} is missing", point.seq)),
            }
        };
        if problem.is_some() {
            self.ok = false;
            self.first_bad_seq = self.first_bad_seq.or(Some(point.seq));
        }
        self.checkpoint = Some(CheckpointCheck {
            seq: point.seq,
            ok: problem.is_none(),
            problem,
        });
    }
}

/// One stored entry as the chain walk sees it.
// Walked one at a time, nearly all of them entries: boxing each would cost an allocation apiece.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ChainItem {
    Entry(AuditEntry),
    /// An entry as stored under `seq`, checked without decoding it (see [`sealed_hash`]).
    Sealed {
        seq: u64,
        bytes: Vec<u8>,
    },
    /// The bytes stored under `seq` are not an entry: altered or corrupt, so the chain breaks
    /// there.
    Undecodable {
        seq: u64,
    },
}

/// How a sealed entry's stored JSON ends: `,"hash":"` + 64 hex digits + `"}`.
const HASH_SUFFIX: usize = 9 + 64 + 2;

/// The hash of an entry as stored, if it links to `prev_hash` and its bytes are intact. The
/// stored JSON is the canonical JSON with its hash spliced onto the end ([`AuditEntry::seal`]),
/// so the hash is recomputed over the very bytes on disk, with no decoding and no encoding:
/// any byte changed, the hash differs.
pub fn sealed_hash(prev_hash: &str, stored: &[u8]) -> Option<String> {
    let cut = stored.len().checked_sub(HASH_SUFFIX)?;
    let (canonical, suffix) = stored.split_at(cut);
    let hash = suffix.strip_prefix(b",\"hash\":\"")?.strip_suffix(b"\"}")?;
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical);
    h.update(b"}");
    let computed = hex::encode(h.finalize());
    (computed.as_bytes() == hash).then_some(computed)
}

/// Walks entries in order from `start` (the genesis, or the last entry pruned) and reports the
/// first that breaks the chain. An `Err` from the entries (the disk could not be read) is an
/// error, never a verdict of tampering.
pub fn verify_chain<E, I>(start: AuditHead, entries: I) -> Result<Verification, E>
where
    I: IntoIterator<Item = Result<ChainItem, E>>,
{
    let first_seq = start.seq + 1;
    let mut prev = start;
    let result = |prev: AuditHead, bad: Option<u64>| Verification {
        ok: bad.is_none(),
        entries: prev.seq + 1 - first_seq,
        first_seq,
        head_seq: prev.seq,
        head: prev.hash,
        first_bad_seq: bad,
        first_bad_chain: None,
        chains: Vec::new(),
        checkpoint: None,
    };
    for item in entries {
        let entry = match item? {
            ChainItem::Entry(e) => e,
            ChainItem::Sealed { seq, bytes } => {
                let expected_seq = prev.seq + 1;
                match sealed_hash(&prev.hash, &bytes) {
                    Some(hash) if seq == expected_seq => {
                        prev = AuditHead::at(seq, hash);
                        continue;
                    }
                    _ => return Ok(result(prev, Some(expected_seq.min(seq.max(1))))),
                }
            }
            ChainItem::Undecodable { seq } => return Ok(result(prev, Some(seq))),
        };
        let expected_seq = prev.seq + 1;
        let hash_ok = entry
            .computed_hash()
            .is_ok_and(|computed| computed == entry.hash);
        if entry.seq != expected_seq || entry.prev_hash != prev.hash || !hash_ok {
            let bad = expected_seq.min(entry.seq.max(1));
            return Ok(result(prev, Some(bad)));
        }
        prev = AuditHead::at(entry.seq, entry.hash);
    }
    Ok(result(prev, None))
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
                head = AuditHead::at(seq, e.hash.clone());
                e
            })
            .collect()
    }

    fn walk(entries: Vec<AuditEntry>) -> Verification {
        verify_chain(
            AuditHead::default(),
            entries
                .into_iter()
                .map(|e| Ok::<_, ()>(ChainItem::Entry(e))),
        )
        .expect("walk")
    }

    #[test]
    fn a_read_error_is_an_error_not_tampering() {
        let items = vec![Ok(ChainItem::Entry(chain(1).remove(0))), Err("disk")];
        assert_eq!(verify_chain(AuditHead::default(), items), Err("disk"));
    }

    #[test]
    fn undecodable_bytes_break_the_chain_where_they_stand() {
        let mut items: Vec<Result<ChainItem, ()>> = chain(2)
            .into_iter()
            .map(|e| Ok(ChainItem::Entry(e)))
            .collect();
        items.push(Ok(ChainItem::Undecodable { seq: 3 }));
        let v = verify_chain(AuditHead::default(), items).expect("walk");
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
    fn a_pruned_chain_verifies_from_where_it_now_starts() {
        let entries = chain(5);
        let start = AuditHead::at(2, entries[1].hash.clone());
        let kept = entries
            .into_iter()
            .skip(2)
            .map(|e| Ok::<_, ()>(ChainItem::Entry(e)));
        let v = verify_chain(start, kept).expect("walk");
        assert_eq!((v.ok, v.first_seq, v.entries, v.head_seq), (true, 3, 3, 5));
    }

    #[test]
    fn a_checkpoint_that_the_log_no_longer_extends_fails_the_verification() {
        let entries = chain(5);
        let mut v = walk(entries.clone());
        let point = ChainPoint {
            seq: 3,
            hash: entries[2].hash.clone(),
            chains: Vec::new(),
        };
        v.against(&point, Some(&entries[2].hash));
        assert!(v.ok);
        let mut v = walk(entries.clone());
        v.against(&point, Some("another hash"));
        assert_eq!((v.ok, v.first_bad_seq), (false, Some(3)));
    }

    #[test]
    fn personal_values_leave_the_entry_before_it_is_sealed() {
        let pseudonyms = Pseudonyms::new(b"a key of the gateway's");
        let mut e = AuditEntry {
            personal: Some(Personal::of("4242")),
            ..AuditEntry::default()
        };
        let personal = e
            .take_personal(&pseudonyms, "salt".into())
            .expect("encode")
            .expect("personal");
        let stored = String::from_utf8(e.seal(1, GENESIS).expect("seal")).expect("utf8");
        assert!(!stored.contains("4242"), "{stored}");
        assert_eq!(e.recipient_pseudonym, Some(pseudonyms.of("4242")));
        assert_eq!(e.personal_sha256, Some(personal.sha256().expect("sha")));
        assert_ne!(
            pseudonyms.of("4242"),
            Pseudonyms::new(b"another key").of("4242")
        );
    }

    #[test]
    fn a_removed_entry_is_named() {
        let mut entries = chain(5);
        entries.remove(1);
        let v = walk(entries);
        assert_eq!((v.ok, v.first_bad_seq), (false, Some(2)));
    }

    #[test]
    fn a_sealed_entry_is_checked_as_stored_and_any_changed_byte_breaks_it() {
        let mut e = AuditEntry {
            detail: Some("quote \" and é".into()),
            ..AuditEntry::default()
        };
        let stored = e.seal(1, GENESIS).expect("seal");
        assert_eq!(
            sealed_hash(GENESIS, &stored).as_deref(),
            Some(e.hash.as_str())
        );
        assert_eq!(
            sealed_hash(&e.hash, &stored),
            None,
            "linked to another entry"
        );
        for i in [0, stored.len() / 2, stored.len() - 3] {
            let mut flipped = stored.clone();
            flipped[i] ^= 1;
            assert_eq!(sealed_hash(GENESIS, &flipped), None, "byte {i} changed");
        }
        assert_eq!(sealed_hash(GENESIS, b"{}"), None);
    }
}
