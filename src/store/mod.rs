//! The store: everything Herald keeps, behind small interfaces in domain operations.
//!
//! The application core speaks to the store through one interface per kind of caller, held
//! together in [`Stores`]: [`Messages`] (accept a message, change it by a rule it passes in),
//! [`Outbox`] (claim the due work), [`Recipients`], [`AuditLog`], [`Campaigns`], [`Pauses`]
//! (pages Messenger asked to wait) and [`Engine`] (upkeep, the instances sharing the store,
//! closing). Nothing in them names an engine: no sled type, raw key or live iterator, no
//! metrics type, and no business rule — what a change does is decided by the caller (the
//! message lifecycle, the consent rules) and handed over as a closure that runs inside the
//! store's transaction.
//!
//! ```text
//!   app (core), worker, routes ──► Stores { messages, outbox, recipients, audit,
//!                                           campaigns, pauses, endpoints, engine }
//!                                      │  each an Arc<dyn …> onto one engine (Stores::of)
//!                                      ├─► sled/      the embedded default: one process
//!                                      └─► postgres/  several instances on one database
//! ```
//!
//! An engine implements each interface directly, in the module that does the work (sled's
//! `outbox.rs` is `impl Outbox for SledStore`); a wrapper, such as a test's store that fails
//! its writes, replaces only the interfaces it changes. Every method is async;
//! [`Messages::accept`] is one transaction that concurrent callers may share (one flush for
//! many); [`Outbox::claim_due`] hands out due work under a lease so that two workers never hold
//! the same message; a change closure runs against the freshly read record inside the
//! transaction. `src/store/sled/` is the only code that touches sled, and `src/store/postgres/`
//! the only code that speaks SQL.

mod interfaces;
pub mod packing;
mod postgres;
mod sled;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::audit::{AuditEntry, AuditHead, AuditKind};
use crate::domain::campaign::Campaign;
use crate::domain::lifecycle::Effects;
use crate::domain::{
    Category, IdempotencyRecord, MessageId, MessageRecord, Psid, RecipientRecord, SendAnswer,
};

pub use self::interfaces::{
    AuditLog, Campaigns, EndpointChange, Engine, EventEndpoints, Messages, Outbox, Pauses,
    Recipients,
};
pub use self::postgres::{
    migrate, partition_of, redacted, LeaseSettings, OpenError, PgOptions, PgStore,
};
pub use self::sled::SledStore;

/// Why the store could not do what was asked. Every variant means nothing was half-written.
/// Sources are shared, so that one failed transaction can be reported to each of its callers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The engine could not read or write: an I/O error, a full disk, a read-only directory.
    #[error("the storage engine failed")]
    Engine(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// Bytes on record that do not decode as what they should be.
    #[error("a stored {what} could not be decoded")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A value that could not be encoded for storage.
    #[error("a {what} could not be encoded")]
    Encode {
        what: &'static str,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The store is closed, or its writer has stopped.
    #[error("the store is closed")]
    Closed,
    /// A cursor this store did not hand out.
    #[error("the cursor is not one this store handed out")]
    BadCursor,
    /// A write by the owner of a partition of pages under an epoch that has passed: another
    /// instance took the partition over, and the write is refused (fencing).
    #[error("partition {partition} is no longer ours (epoch {epoch} has passed)")]
    Fenced { partition: u32, epoch: i64 },
}

/// Runs the store's upkeep ([`Engine::maintain`], every [`Engine::maintenance_every`]) on the
/// current runtime until the handle is aborted, for a program that opens a store taking part in
/// running the outbox without being a gateway (a benchmark, a test playing another instance).
/// A gateway runs it as a supervised task instead, with the policy's upkeep.
pub fn spawn_upkeep(engine: Arc<dyn Engine>) -> Option<tokio::task::JoinHandle<()>> {
    let every = engine.maintenance_every()?;
    Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = engine.maintain().await {
                tracing::warn!(error = %e, "the store's upkeep failed");
            }
        }
    }))
}

/// One instance sharing the store, as `GET /v1/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstanceState {
    pub id: String,
    /// Until when its heartbeat holds it alive; `None` for the only instance (sled).
    pub alive_until: Option<DateTime<Utc>>,
    /// The policy version it reported running; `None` before its first report.
    pub policy_version: Option<String>,
}

/// Which audit entries a query wants: every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// The recipient's key (a PSID or `user_ref:…`); the store finds entries by its keyed
    /// pseudonym, so entries whose personal data was erased are found too.
    pub recipient: Option<String>,
    pub page_id: Option<String>,
    pub category: Option<Category>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub campaign: Option<String>,
    pub client: Option<String>,
    pub kind: Option<AuditKind>,
    /// Entries at or after this moment.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this moment.
    pub to: Option<DateTime<Utc>>,
}

/// Where an audit query stopped, handed back to continue after it. Opaque: what it holds is
/// the engine's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor(pub String);

/// The order of an audit query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditOrder {
    /// Oldest first, newest last: how the log is read and exported.
    #[default]
    OldestFirst,
    /// Newest first: a recipient's last decisions.
    NewestFirst,
}

/// One page of an audit query.
#[derive(Debug, Clone, Default)]
pub struct AuditPage {
    /// The entries, with their personal values unless they were erased.
    pub entries: Vec<AuditEntry>,
    /// Where to continue; `None` when there is nothing more.
    pub next: Option<AuditCursor>,
}

/// What a retention run pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// How many entries went.
    pub entries: u64,
    /// The last entry pruned: the chain now starts after it, and its hash is kept as the
    /// first kept entry's `prev_hash`.
    pub through: AuditHead,
}

/// A change to one message, decided by the caller: given the record as stored, it changes it
/// and returns what else to write, or `None` to leave it alone. It runs once, inside the
/// transaction, and must not block.
pub type MessageChange = Box<dyn FnOnce(&mut MessageRecord) -> Option<Effects> + Send>;

/// A change applied to each of several messages in one transaction.
pub type MessagesChange = Box<dyn FnMut(&mut MessageRecord) -> Option<Effects> + Send>;

/// A change to one recipient (starting from an empty record for a new one); returns the audit
/// entries it produces. It runs once, inside the transaction.
pub type RecipientChange = Box<dyn FnOnce(&mut RecipientRecord) -> Vec<AuditEntry> + Send>;

/// A change to one campaign; returns the audit entries it produces, or `None` to leave it alone.
/// It runs once, inside the transaction.
pub type CampaignChange = Box<dyn FnOnce(&mut Campaign) -> Option<Vec<AuditEntry>> + Send>;

/// A message to store on acceptance, with everything that must be written with it.
pub struct NewMessage {
    pub record: MessageRecord,
    /// What accepting it writes besides the record (see `lifecycle::accepted`).
    pub effects: Effects,
    /// The answer to keep under an `Idempotency-Key`.
    pub idempotency: Option<IdempotencyWrite>,
}

/// The `Idempotency-Key` record to write with a message.
#[derive(Debug, Clone)]
pub struct IdempotencyWrite {
    pub client: String,
    pub key: String,
    /// sha256 of what the key is bound to (the endpoint and the request).
    pub request_sha256: String,
    pub answer: SendAnswer,
}

/// A message [`Outbox::claim_due`] handed out: its id, and its record when the engine read it
/// with the claim (PostgreSQL does, in the same statement; sled leaves it to the caller, for
/// whom a read is as cheap). Read while the claim was taken, so no other delivery changed it
/// since; a caller without it reads the record itself.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: MessageId,
    pub record: Option<MessageRecord>,
}

impl Claimed {
    /// A claim of `id` whose record the caller reads.
    pub fn id(id: MessageId) -> Claimed {
        Claimed { id, record: None }
    }
}

/// What became of a [`NewMessage`].
#[derive(Debug)]
pub enum Accepted {
    /// Written and durable.
    Stored,
    /// The key was used before with the same request: here is the first answer.
    Replay(Box<IdempotencyRecord>),
    /// The key was used before with another request.
    Conflict,
}

/// A webhook event's `mid`, seen at a moment: an event whose `mid` was applied before is skipped.
#[derive(Debug, Clone, Copy)]
pub struct SeenMid<'a> {
    pub mid: &'a str,
    pub at: DateTime<Utc>,
}

/// Which parked webhook event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParkedId(pub u64);

/// What a campaign's message counts as in its campaign's counts ([`Campaigns::counts`]):
/// its status, or `denied:<reason>`.
pub(crate) fn count_label(record: &MessageRecord) -> String {
    match record.status {
        crate::domain::MessageStatus::Denied => {
            format!("denied:{}", record.decision.reason.as_str())
        }
        status => status.as_str().to_owned(),
    }
}

/// Reads one stored part of an audience (PSIDs a line, the first at position `first`) into
/// `out`, from position `from` on, until `out` holds `limit`; `true` when it does.
pub(crate) fn take_audience(
    first: u64,
    text: &str,
    from: u64,
    limit: usize,
    out: &mut Vec<Psid>,
) -> Result<bool, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "audience entry",
        source: Arc::new(<serde_json::Error as serde::de::Error>::custom(
            "not a part of an audience",
        )),
    };
    for (i, line) in text.lines().enumerate() {
        if first + (i as u64) < from {
            continue;
        }
        out.push(Psid::parse(line).map_err(|_| corrupt())?);
        if out.len() == limit {
            return Ok(true);
        }
    }
    Ok(out.len() >= limit)
}

/// The interfaces of one store, each shared by the parts of Herald that use it. Built from one
/// engine ([`Stores::of`]); a wrapper (a test injecting faults) replaces the interfaces it
/// changes and keeps the others as they are.
#[derive(Clone)]
pub struct Stores {
    pub messages: Arc<dyn Messages>,
    pub outbox: Arc<dyn Outbox>,
    pub recipients: Arc<dyn Recipients>,
    pub audit: Arc<dyn AuditLog>,
    pub campaigns: Arc<dyn Campaigns>,
    pub pauses: Arc<dyn Pauses>,
    pub endpoints: Arc<dyn EventEndpoints>,
    pub engine: Arc<dyn Engine>,
}

impl Stores {
    /// Every interface served by `engine`.
    pub fn of<E>(engine: Arc<E>) -> Stores
    where
        E: Messages + Outbox + Recipients + AuditLog + Campaigns + Pauses + EventEndpoints + Engine,
    {
        Stores {
            messages: engine.clone(),
            outbox: engine.clone(),
            recipients: engine.clone(),
            audit: engine.clone(),
            campaigns: engine.clone(),
            pauses: engine.clone(),
            endpoints: engine.clone(),
            engine,
        }
    }
}

/// The message an answer kept under an `Idempotency-Key` names.
pub(crate) fn answered_message(answer: &SendAnswer) -> &MessageId {
    match answer {
        SendAnswer::Accepted(acceptance) => &acceptance.id,
        SendAnswer::Denied { message_id, .. } => message_id,
    }
}

/// Removes from a kept answer what it holds of the person (the template's parameters, which
/// carry names and order details); `false` when it held nothing.
pub(crate) fn erase_answer(answer: &mut SendAnswer) -> bool {
    let decision = match answer {
        SendAnswer::Accepted(acceptance) => &mut acceptance.decision,
        SendAnswer::Denied { decision, .. } => decision,
    };
    // The trace's details can name the person's time zone ("22:10 in Europe/Berlin").
    let trace = !decision.trace.is_empty();
    decision.trace.clear();
    decision.utility_template.take().is_some() || trace
}

/// What an answer kept under an `Idempotency-Key` holds of a person is found by these texts in
/// its stored form (a filled-in template, a decision's trace): answers without them are
/// skipped unread.
pub(crate) const PERSONAL_IN_ANSWER: &str = "\"utility_template\"";
pub(crate) const TRACE_IN_ANSWER: &str = "\"trace\":[{";
