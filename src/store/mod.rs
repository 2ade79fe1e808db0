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

mod postgres;
mod sled;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::domain::audit::{AuditEntry, AuditHead, AuditKind, ChainItem, ChainPoint, Verification};
use crate::domain::campaign::{Campaign, CampaignId};
use crate::domain::decision::TraceStep;
use crate::domain::endpoint::{
    AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointRecord, PendingDelivery,
};
use crate::domain::facts::RecentSend;
use crate::domain::lifecycle::Effects;
use crate::domain::{
    Category, IdempotencyRecord, MessageId, MessageRecord, Psid, RecipientRecord, SendAnswer,
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

/// Messages and their idempotency records: the accept path, the worker's record of each send,
/// cancelling, webhook receipts and erasure. See the module documentation for the contract.
#[async_trait]
pub trait Messages: Send + Sync + 'static {
    /// Writes an accepted (or denied) message, its effects and its idempotency record in one
    /// transaction, and returns once that is durable. The idempotency key is checked inside the
    /// transaction, so two concurrent requests with one key store one message.
    async fn accept(&self, new: NewMessage) -> Result<Accepted, StoreError>;

    /// A message by id.
    async fn message(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError>;

    /// The trace of the message's latest decision (empty if none was kept).
    async fn trace(&self, record: &MessageRecord) -> Result<Vec<TraceStep>, StoreError>;

    /// The first answer given under an idempotency key, if any.
    async fn idempotency(
        &self,
        client: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Changes one message by `change`, writing its effects in the same transaction; durable
    /// on return. `None` when the message is unknown or `change` left it alone.
    async fn update_message(
        &self,
        id: &MessageId,
        change: MessageChange,
    ) -> Result<Option<MessageRecord>, StoreError>;

    /// Changes each of `ids` by `change` in one transaction; returns how many changed.
    async fn update_messages(
        &self,
        ids: Vec<MessageId>,
        change: MessagesChange,
    ) -> Result<usize, StoreError>;

    /// The messages Messenger knows by these Graph message ids.
    async fn messages_by_graph_ids(&self, mids: &[String]) -> Result<Vec<MessageId>, StoreError>;

    /// Removes the personal values (the filled-in template) from the answers kept under an
    /// `Idempotency-Key` for any of `messages`. The answers themselves stay: a replay still
    /// names the message and sends nothing twice. Can run again; returns how many changed.
    async fn erase_idempotency_answers(&self, messages: &[MessageId]) -> Result<u64, StoreError>;

    /// Changes a message the caller holds (as [`Messages::update_message`]) and lets go of its
    /// claim (as [`Outbox::release`]) with the same write: the worker's last step of a send.
    /// PostgreSQL folds the release into the update's batch (no statement at all when the change
    /// takes the message out of the outbox); sled lets go of its claim, kept in memory, once the
    /// update is written.
    async fn update_and_release(
        &self,
        id: &MessageId,
        change: MessageChange,
    ) -> Result<Option<MessageRecord>, StoreError>;
}

/// The outbox's due work and who holds it: the delivery worker, cancelling, the status page.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Up to `limit` messages due at or before `now`, earliest first, that no one holds; each
    /// is held by the caller until [`Outbox::release`] or until `lease` has passed.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<MessageId>, StoreError>;

    /// Holds one message, if no one else does (cancelling a message holds it so that the worker
    /// cannot start sending it meanwhile).
    async fn try_claim(
        &self,
        id: &MessageId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Lets go of a held message.
    async fn release(&self, id: &MessageId) -> Result<(), StoreError>;

    /// Lets go of every claim this instance's worker holds except those of `held`: after a
    /// lost connection, a claim whose answer never arrived (or whose release failed) would
    /// otherwise hold its message until the claim runs out. None with sled, whose claims live
    /// in the process.
    async fn release_others(&self, _held: &[MessageId]) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Whether someone holds the message now.
    async fn is_claimed(&self, id: &MessageId, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// When the earliest outbox entry is due.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Messages waiting in the outbox.
    async fn outbox_len(&self) -> Result<u64, StoreError>;
}

/// Recipients — consent, window, tokens, send history — and the webhook events that failed to
/// apply to them: the policy's facts, consent, webhooks, the worker, erasure, audiences.
#[async_trait]
pub trait Recipients: Send + Sync + 'static {
    /// A recipient by key (`Recipient::key`).
    async fn recipient(&self, key: &str) -> Result<Option<RecipientRecord>, StoreError>;

    /// The key of the recipient whose current Marketing Messages token is `token`, if any.
    async fn marketing_token_owner(&self, token: &str) -> Result<Option<String>, StoreError>;

    /// Changes a recipient by `change` and appends the audit entries it returns, in one durable
    /// transaction. With `seen`, an event whose `mid` was applied before changes nothing and
    /// `false` is returned, so that Messenger's redeliveries are harmless.
    async fn update_recipient(
        &self,
        key: &str,
        seen: Option<SeenMid<'_>>,
        change: RecipientChange,
    ) -> Result<bool, StoreError>;

    /// Sends allowed to the recipient at or after `since`, newest first.
    async fn recent_sends(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecentSend>, StoreError>;

    /// The ids of the last `limit` messages allowed to the recipient, newest first.
    async fn recent_message_ids(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<MessageId>, StoreError>;

    /// Up to `limit` recipients by key, after `after` (from the first when `None`).
    async fn recipients_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RecipientRecord)>, StoreError>;

    /// What a decision reads about a recipient, in one call: the record by key
    /// ([`Recipients::recipient`]) and its sends at or after `since`
    /// ([`Recipients::recent_sends`]). An engine that pays a round trip per read answers both
    /// with one.
    async fn recipient_with_sends(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<(Option<RecipientRecord>, Vec<RecentSend>), StoreError> {
        Ok((
            self.recipient(key).await?,
            self.recent_sends(key, since).await?,
        ))
    }

    /// Keeps a webhook event that could not be applied, so that it is retried, not lost.
    async fn park_event(&self, event: &Value) -> Result<(), StoreError>;

    /// Parked events, oldest first.
    async fn parked_events(&self, limit: usize) -> Result<Vec<(ParkedId, Value)>, StoreError>;

    /// Forgets a parked event once it has been applied.
    async fn unpark_event(&self, id: ParkedId) -> Result<(), StoreError>;
}

/// The audit log: appended to by the core, read back by queries, exports, verification and
/// checkpoints, pruned by retention and emptied of a person's values by erasure. (Most entries
/// are written by the other interfaces, in the transaction of the change they record.)
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends entries that belong to no other write (policy reloads, campaign changes).
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError>;

    /// The current end of the audit chain.
    async fn head(&self) -> Result<AuditHead, StoreError>;

    /// Up to `limit` entries from `from_seq` on, in order.
    async fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<ChainItem>, StoreError>;

    /// The chains the log keeps, each with the seq of its last entry: `[(0, head)]` for a store
    /// with one chain, one per partition of pages on PostgreSQL.
    async fn chains(&self) -> Result<Vec<(u32, u64)>, StoreError>;

    /// Up to `limit` entries of `chain` after its entry `after`, in seq order, with their
    /// erasable values unless erased: how events are read (`domain::event`). Within a chain,
    /// an entry is readable only once every entry before it is, so a reader that remembers the
    /// last seq it read misses nothing.
    async fn read_chain(
        &self,
        chain: u32,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Walks the whole audit chain, from where it starts (see [`AuditLog::prune`]).
    async fn verify(&self) -> Result<Verification, StoreError>;

    /// The hash the log has now at `point`: of entry `point.seq`, or of the last entry pruned
    /// when `point.seq` is that one; with several chains, the combination of each chain's hash
    /// at `point.chains`. `None` when there is no such entry (any more).
    async fn hash_at(&self, point: &ChainPoint) -> Result<Option<String>, StoreError>;

    /// Entries matching `filter`, `limit` at most, in `order`, after `cursor`. Found through
    /// indexes written with each entry, so a recipient's history is read without a scan of
    /// the log. A page may hold fewer than `limit` entries and still have a `next`.
    async fn query(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        cursor: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError>;

    /// Removes the erasable values of every entry about the recipient `key` (their hashes and
    /// the recipient's pseudonym stay in the chain, which still verifies). Returns how many
    /// entries lost values.
    async fn erase_personal(&self, key: &str) -> Result<u64, StoreError>;

    /// Prunes entries made before `before`, oldest first, as long as they are; records the
    /// last one pruned as where the chain now starts, in the same transaction. `None` when
    /// nothing was old enough.
    async fn prune(&self, before: DateTime<Utc>) -> Result<Option<Pruned>, StoreError>;
}

/// Campaigns, their audiences and their counts: the campaign API and scheduler.
#[async_trait]
pub trait Campaigns: Send + Sync + 'static {
    /// Stores a new campaign (as a draft, until its audience is stored whole).
    async fn create(&self, campaign: &Campaign) -> Result<(), StoreError>;

    /// Stores the next part of a campaign's audience, from position `from`, in one durable
    /// write. (The core makes sure no PSID comes twice.)
    async fn append_audience(
        &self,
        id: &CampaignId,
        from: u64,
        psids: &[Psid],
    ) -> Result<(), StoreError>;

    /// Up to `limit` audience members from position `from`, in order.
    async fn audience(
        &self,
        id: &CampaignId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Psid>, StoreError>;

    /// A campaign by id.
    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError>;

    /// Every campaign, drafts included.
    async fn all(&self) -> Result<Vec<Campaign>, StoreError>;

    /// Changes a campaign by `change` with the audit entries it returns, durably.
    async fn update(
        &self,
        id: &CampaignId,
        change: CampaignChange,
    ) -> Result<Option<Campaign>, StoreError>;

    /// Forgets a draft and its audience.
    async fn drop_draft(&self, id: &CampaignId) -> Result<(), StoreError>;

    /// How many of the campaign's messages are in each status (`denied:<reason>` for denials),
    /// kept up to date in the transactions that move them.
    async fn counts(&self, id: &CampaignId) -> Result<Vec<(String, u64)>, StoreError>;
}

/// A change to one event endpoint; returns the audit entries it produces, or `None` to leave
/// it alone. It runs once, inside the transaction.
pub type EndpointChange = Box<dyn FnOnce(&mut EndpointRecord) -> Option<Vec<AuditEntry>> + Send>;

/// Event endpoints and the delivery of events to them: the events API and the event
/// dispatcher (`domain::endpoint`). Events themselves are read from the audit log
/// ([`AuditLog::read_chain`]); this keeps who hears them and how far each has heard.
#[async_trait]
pub trait EventEndpoints: Send + Sync + 'static {
    /// Stores a new endpoint with its audit entries, in one durable transaction. Its delivery
    /// starts after `start`: each chain's last seq when it was made ([`AuditLog::chains`]), so
    /// that it hears events from its creation on (a replay reaches further back).
    async fn create_endpoint(
        &self,
        endpoint: &EndpointRecord,
        start: &[(u32, u64)],
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError>;

    /// An endpoint by id.
    async fn endpoint(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError>;

    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError>;

    /// Changes an endpoint by `change`, with the audit entries it returns, durably. `None` when
    /// the endpoint is unknown or `change` left it alone.
    async fn update_endpoint(
        &self,
        id: &str,
        change: EndpointChange,
    ) -> Result<Option<EndpointRecord>, StoreError>;

    /// Deletes an endpoint, its cursors, its pending deliveries and its attempts, with the audit
    /// entries, durably; `false` when there was no such endpoint.
    async fn delete_endpoint(&self, id: &str, audit: Vec<AuditEntry>) -> Result<bool, StoreError>;

    /// The last seq of `chain` handed over to the endpoint (delivered, or pending).
    async fn cursor(&self, id: &str, chain: u32) -> Result<u64, StoreError>;

    /// Up to `limit` of the endpoint's pending deliveries due at or before `now`, earliest
    /// first, in chains this instance runs ([`Engine::runs_chain`]).
    async fn due_deliveries(
        &self,
        id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError>;

    /// When the endpoint's earliest pending delivery (in chains this instance runs) is due.
    async fn next_delivery_due(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Records one round of the endpoint's delivery in one durable transaction: its attempts,
    /// pending deliveries added or replaced, those done, and its cursor moved. With several
    /// instances, the owner of a chain's partition alone moves that chain's cursor and
    /// deliveries: a round touching a chain whose partition this instance no longer owns is
    /// refused whole ([`StoreError::Fenced`]). A round that only queues deliveries (a replay:
    /// pending, with nothing attempted, nothing done and no cursor) moves no one's progress,
    /// and is taken from any instance.
    async fn record_deliveries(&self, id: &str, round: DeliveryRound) -> Result<(), StoreError>;

    /// Up to `limit` of the endpoint's attempts, newest first, before the attempt id `before`;
    /// only those with `status` when it is given.
    async fn attempts(
        &self,
        id: &str,
        status: Option<AttemptStatus>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError>;
}

/// Pages held back after Messenger's rate limit (a 613): the delivery worker's pacing.
#[async_trait]
pub trait Pauses: Send + Sync + 'static {
    /// Holds every send to `page_id` back until `until`, for whichever instance runs the page,
    /// now, after a restart and after a failover. A later `until` replaces an earlier one; an
    /// earlier one leaves a later one in place.
    async fn pause_page(&self, page_id: &str, until: DateTime<Utc>) -> Result<(), StoreError>;

    /// The pages held back past `now`, each with the moment its pause ends.
    async fn paused_pages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;
}

/// The engine itself and the instances sharing it: upkeep, which instance runs which page,
/// the policy every instance should run, closing. The defaults are those of an engine that
/// serves one process (sled).
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Makes `version` the policy every instance sharing the store should run: a reload on one
    /// instance bumps the returned generation, and each instance reloads its policy files when
    /// it sees a generation it has not acted on. With one instance (sled) there is nobody to
    /// tell: 0.
    async fn publish_policy(&self, _version: &str) -> Result<i64, StoreError> {
        Ok(0)
    }

    /// The generation and version published last, if any.
    async fn published_policy(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(None)
    }

    /// Records the policy version this instance runs, for `GET /v1/status`.
    async fn report_policy(&self, _version: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// The instances alive that share the store, with the policy version each runs; empty with
    /// one instance (sled).
    async fn instances(&self) -> Result<Vec<InstanceState>, StoreError> {
        Ok(Vec::new())
    }

    /// How often [`Engine::maintain`] must run: PostgreSQL's lease rounds (heartbeat, leases,
    /// the fair share of partitions). `None`: the engine needs no upkeep.
    fn maintenance_every(&self) -> Option<std::time::Duration> {
        None
    }

    /// One round of the engine's upkeep; the gateway runs it as a supervised task.
    async fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether this instance runs the page's scheduled work (campaigns). With one instance
    /// (sled), always; with several, only the owner of the page's partition.
    fn runs_page(&self, _page_id: &str) -> bool {
        true
    }

    /// Whether this instance delivers the events of audit chain `chain` (see
    /// [`EventEndpoints`]). With one instance (sled), always; with several, only the owner of
    /// the chain's partition.
    fn runs_chain(&self, _chain: u32) -> bool {
        true
    }

    /// Bytes the store takes on disk.
    async fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// Writes everything to disk and lets go of the engine.
    async fn close(&self) -> Result<(), StoreError>;
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
