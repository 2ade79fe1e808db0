//! The store's interfaces, one per kind of caller (see the module documentation of `store`):
//! what each promises, engine by engine.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{
    Accepted, AuditCursor, AuditFilter, AuditOrder, AuditPage, CampaignChange, Claimed,
    InstanceState, MessageChange, MessagesChange, NewMessage, ParkedId, Pruned, RecipientChange,
    SeenMid, StoreError,
};
use crate::domain::audit::{AuditEntry, AuditHead, ChainItem, ChainPoint, Verification};
use crate::domain::campaign::{Campaign, CampaignId};
use crate::domain::decision::TraceStep;
use crate::domain::endpoint::{
    AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointRecord, PendingDelivery,
};
use crate::domain::facts::RecentSend;
use crate::domain::{IdempotencyRecord, MessageId, MessageRecord, Psid, RecipientRecord};

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

    /// The messages Messenger knows by these Graph message ids, among those whose id the store
    /// indexes ([`lifecycle::graph_id_to_index`](crate::domain::lifecycle::graph_id_to_index):
    /// messages to a `user_ref`; a receipt finds the others among its sender's latest sends).
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
    ) -> Result<Vec<Claimed>, StoreError>;

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
