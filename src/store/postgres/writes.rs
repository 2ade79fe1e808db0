//! One transaction's writes, gathered and then sent a table at a time, and the batcher that
//! puts concurrent writes of one kind (accepts; the worker's changes to messages) in one
//! transaction.
//!
//! A transaction first reads and locks what its change needs (the message or recipient row),
//! runs the caller's change, gathers every row the change writes in [`Rows`], and writes them
//! with one statement per table (`UNNEST` of arrays), in a fixed order that takes the audit
//! chains' locks last and in chain order, so that transactions on several instances never wait
//! for each other in a circle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{encode, uint, PgStore, Prepared, StoreError};
use crate::domain::audit::{fresh_salt, AuditEntry};
use crate::domain::decision::TraceStep;
use crate::domain::lifecycle::{self, Effects, OutboxChange};
use crate::domain::{IdempotencyRecord, MessageRecord};
use crate::store::{count_label, Accepted, MessageChange, NewMessage};

/// Accepts per transaction, at most.
const BATCH: usize = 256;

/// Batches written at once: more transactions in flight than cores keeps the database busy
/// while one commits.
const BATCHES_IN_FLIGHT: usize = 4;

/// Every row one transaction writes, by table.
#[derive(Default)]
pub(super) struct Rows {
    /// id → record (JSON), inserted or replaced.
    messages: BTreeMap<String, String>,
    /// sha256 → trace (JSON), kept once.
    traces: BTreeMap<String, String>,
    /// id → where it goes in the outbox: put there or moved in it.
    outbox_put: BTreeMap<String, OutboxRow>,
    outbox_remove: Vec<String>,
    /// (recipient, at, message id, category)
    sends: Vec<(String, DateTime<Utc>, String, String)>,
    /// Graph message id → message id.
    graph_ids: BTreeMap<String, String>,
    /// (campaign, label) → change of its count.
    counts: BTreeMap<(String, String), i64>,
    audit: Vec<AuditEntry>,
}

/// An outbox row as a change writes it.
struct OutboxRow {
    partition: i32,
    due: DateTime<Utc>,
    /// The message's lane ([`lifecycle::lane`]), which claims take one message at a time from.
    person: String,
    /// It holds its lane ([`Effects::holds_lane`]).
    holds: bool,
}

/// A trace's sha256 (hex) and JSON.
fn encode_trace(trace: &[TraceStep]) -> Result<(String, String), StoreError> {
    let json = encode("decision trace", &trace)?;
    Ok((hex::encode(Sha256::digest(json.as_bytes())), json))
}

impl Rows {
    /// A new message and what accepting it writes.
    pub(super) fn accept(&mut self, store: &PgStore, new: NewMessage) -> Result<(), StoreError> {
        let NewMessage {
            mut record,
            mut effects,
            ..
        } = new;
        if let Some(trace) = effects.trace.take().filter(|t| !t.is_empty()) {
            let (sha, json) = encode_trace(&trace)?;
            record.trace_sha256 = Some(sha.clone());
            self.traces.insert(sha, json);
        }
        self.recount(None, &record);
        self.effects(store, &record, effects);
        self.messages
            .insert(record.id.to_string(), encode("message", &record)?);
        Ok(())
    }

    /// A changed message: `before` is as it was read, `record` as the change left it.
    pub(super) fn update(
        &mut self,
        store: &PgStore,
        before: &MessageRecord,
        record: &mut MessageRecord,
        mut effects: Effects,
    ) -> Result<(), StoreError> {
        self.recount(Some(before), record);
        if let OutboxChange::Schedule(due) = effects.outbox {
            record.not_before = Some(due);
        }
        if let Some(trace) = effects.trace.take() {
            let (sha, json) = encode_trace(&trace)?;
            record.trace_sha256 = Some(sha.clone());
            self.traces.insert(sha, json);
        }
        if let Some(graph_id) = &record.graph_message_id {
            self.graph_ids
                .insert(graph_id.clone(), record.id.to_string());
        }
        self.effects(store, record, effects);
        self.messages
            .insert(record.id.to_string(), encode("message", &*record)?);
        Ok(())
    }

    /// The outbox entry, send history and audit entries of one change.
    fn effects(&mut self, store: &PgStore, record: &MessageRecord, effects: Effects) {
        let id = record.id.to_string();
        match effects.outbox {
            OutboxChange::Keep => {}
            OutboxChange::Remove => {
                self.outbox_put.remove(&id);
                self.outbox_remove.push(id.clone());
            }
            OutboxChange::Schedule(due) => {
                let row = OutboxRow {
                    partition: i32::try_from(store.partition_of(record.page_id.as_str()))
                        .unwrap_or(0),
                    due,
                    person: lifecycle::lane(record),
                    holds: effects.holds_lane,
                };
                self.outbox_put.insert(id.clone(), row);
            }
        }
        if let Some(at) = effects.counts_as_send {
            self.sends.push((
                record.recipient.key(),
                at,
                id,
                record.category.as_str().to_owned(),
            ));
        }
        self.audit.extend(effects.audit);
    }

    /// Moves a campaign message's count from the label it had to the one it has.
    fn recount(&mut self, before: Option<&MessageRecord>, after: &MessageRecord) {
        let Some(campaign) = after
            .campaign
            .as_ref()
            .map(crate::domain::campaign::CampaignId::as_str)
        else {
            return;
        };
        let (old, new) = (before.map(count_label), count_label(after));
        if old.as_deref() == Some(new.as_str()) {
            return;
        }
        if let Some(old) = old {
            *self.counts.entry((campaign.to_owned(), old)).or_default() -= 1;
        }
        *self.counts.entry((campaign.to_owned(), new)).or_default() += 1;
    }

    /// Audit entries to append.
    pub(super) fn audit(&mut self, entries: impl IntoIterator<Item = AuditEntry>) {
        self.audit.extend(entries);
    }

    /// Writes everything gathered, a statement per table; the audit chains last.
    pub(super) async fn write(
        self,
        tx: &Transaction<'_>,
        store: &PgStore,
    ) -> Result<(), StoreError> {
        if !self.traces.is_empty() {
            let (sha, json): (Vec<String>, Vec<String>) = self.traces.into_iter().unzip();
            tx.exec(
                "INSERT INTO traces (sha256, trace)
                 SELECT * FROM UNNEST($1::text[], $2::text[])
                 ON CONFLICT DO NOTHING",
                &[&sha, &json],
            )
            .await?;
        }
        if !self.messages.is_empty() {
            let (ids, records): (Vec<String>, Vec<String>) = self.messages.into_iter().unzip();
            tx.exec(
                "INSERT INTO messages (id, record)
                 SELECT * FROM UNNEST($1::text[], $2::text[])
                 ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                &[&ids, &records],
            )
            .await?;
        }
        if !self.outbox_remove.is_empty() {
            tx.exec(
                "DELETE FROM outbox WHERE message_id = ANY($1)",
                &[&self.outbox_remove],
            )
            .await?;
        }
        if !self.outbox_put.is_empty() {
            let mut ids = Vec::with_capacity(self.outbox_put.len());
            let mut partitions = Vec::with_capacity(self.outbox_put.len());
            let mut dues = Vec::with_capacity(self.outbox_put.len());
            let mut persons = Vec::with_capacity(self.outbox_put.len());
            let mut holds = Vec::with_capacity(self.outbox_put.len());
            for (id, row) in self.outbox_put {
                ids.push(id);
                partitions.push(row.partition);
                dues.push(row.due);
                persons.push(row.person);
                holds.push(row.holds);
            }
            tx.exec(
                "INSERT INTO outbox (message_id, partition, due, person, holds)
                 SELECT * FROM UNNEST($1::text[], $2::integer[], $3::timestamptz[], $4::text[],
                                      $5::boolean[])
                 ON CONFLICT (message_id) DO UPDATE
                     SET due = EXCLUDED.due, person = EXCLUDED.person, holds = EXCLUDED.holds",
                &[&ids, &partitions, &dues, &persons, &holds],
            )
            .await?;
        }
        if !self.sends.is_empty() {
            let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (recipient, at, id, category) in self.sends {
                cols.0.push(recipient);
                cols.1.push(at);
                cols.2.push(id);
                cols.3.push(category);
            }
            tx.exec(
                "INSERT INTO sends (recipient, at, message_id, category)
                 SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[])
                 ON CONFLICT DO NOTHING",
                &[&cols.0, &cols.1, &cols.2, &cols.3],
            )
            .await?;
        }
        if !self.graph_ids.is_empty() {
            let (graph, ids): (Vec<String>, Vec<String>) = self.graph_ids.into_iter().unzip();
            tx.exec(
                "INSERT INTO graph_ids (graph_id, message_id)
                 SELECT * FROM UNNEST($1::text[], $2::text[])
                 ON CONFLICT (graph_id) DO UPDATE SET message_id = EXCLUDED.message_id",
                &[&graph, &ids],
            )
            .await?;
        }
        if !self.counts.is_empty() {
            let mut cols = (Vec::new(), Vec::new(), Vec::new());
            for ((campaign, label), delta) in self.counts {
                cols.0.push(campaign);
                cols.1.push(label);
                cols.2.push(delta);
            }
            tx.exec(
                "INSERT INTO campaign_counts (campaign, label, n)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
                 ON CONFLICT (campaign, label) DO UPDATE SET n = campaign_counts.n + EXCLUDED.n",
                &[&cols.0, &cols.1, &cols.2],
            )
            .await?;
        }
        append_audit(tx, store, self.audit).await
    }
}

/// Appends `entries` to their chains: locks the chains' rows in chain order, seals each entry
/// after its chain's head, and moves the heads.
pub(super) async fn append_audit(
    tx: &Transaction<'_>,
    store: &PgStore,
    entries: Vec<AuditEntry>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut by_chain: BTreeMap<u32, Vec<AuditEntry>> = BTreeMap::new();
    for entry in entries {
        let chain = store.chain_of(entry.page_id.as_deref());
        by_chain.entry(chain).or_default().push(entry);
    }
    let chains: Vec<i32> = by_chain
        .keys()
        .map(|c| i32::try_from(*c).unwrap_or(i32::MAX))
        .collect();
    let heads: HashMap<i32, (i64, String)> = tx
        .rows(
            "SELECT chain, seq, hash FROM audit_chains WHERE chain = ANY($1)
             ORDER BY chain FOR UPDATE",
            &[&chains],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect();
    let mut rows = AuditRows::default();
    let mut new_heads = (Vec::new(), Vec::new(), Vec::new());
    for (chain, entries) in by_chain {
        let chain_col = i32::try_from(chain).unwrap_or(i32::MAX);
        let (mut seq, mut hash) = heads.get(&chain_col).cloned().ok_or_else(|| {
            StoreError::Engine(Arc::new(std::io::Error::other(format!(
                "audit chain {chain} is missing: the database was made with fewer partitions"
            ))))
        })?;
        for mut entry in entries {
            seq += 1;
            entry.chain = Some(chain);
            let encode_error = |source| StoreError::Encode {
                what: "audit entry",
                source: Arc::new(source),
            };
            let personal = entry
                .take_personal(&store.pseudonyms, fresh_salt())
                .map_err(encode_error)?;
            let sealed = entry.seal(uint(seq), &hash).map_err(encode_error)?;
            let sealed = String::from_utf8(sealed)
                .map_err(|e| StoreError::Engine(Arc::new(std::io::Error::other(e.to_string()))))?;
            if let Some(personal) = personal {
                rows.personal.0.push(chain_col);
                rows.personal.1.push(seq);
                rows.personal
                    .2
                    .push(encode("audit entry's personal values", &personal)?);
            }
            rows.push(chain_col, seq, &entry, sealed);
            hash = entry.hash;
        }
        new_heads.0.push(chain_col);
        new_heads.1.push(seq);
        new_heads.2.push(hash);
    }
    rows.write(tx).await?;
    tx.exec(
        "UPDATE audit_chains c SET seq = h.seq, hash = h.hash
         FROM UNNEST($1::integer[], $2::bigint[], $3::text[]) AS h(chain, seq, hash)
         WHERE c.chain = h.chain",
        &[&new_heads.0, &new_heads.1, &new_heads.2],
    )
    .await?;
    Ok(())
}

/// Sealed entries as columns.
#[derive(Default)]
struct AuditRows {
    chain: Vec<i32>,
    seq: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    kind: Vec<String>,
    pseudonym: Vec<Option<String>>,
    page_id: Vec<Option<String>>,
    category: Vec<Option<String>>,
    outcome: Vec<Option<String>>,
    reason: Vec<Option<String>>,
    campaign: Vec<Option<String>>,
    client: Vec<Option<String>>,
    entry: Vec<String>,
    personal: (Vec<i32>, Vec<i64>, Vec<String>),
}

impl AuditRows {
    fn push(&mut self, chain: i32, seq: i64, e: &AuditEntry, sealed: String) {
        self.chain.push(chain);
        self.seq.push(seq);
        self.at.push(e.at);
        self.kind.push(e.kind.as_str().to_owned());
        self.pseudonym.push(e.recipient_pseudonym.clone());
        self.page_id.push(e.page_id.clone());
        self.category
            .push(e.category.map(|c| c.as_str().to_owned()));
        self.outcome.push(e.outcome.clone());
        self.reason.push(e.reason.clone());
        self.campaign.push(e.campaign.clone());
        self.client.push(e.client.clone());
        self.entry.push(sealed);
    }

    async fn write(self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        tx.exec(
            "INSERT INTO audit (chain, seq, at, kind, pseudonym, page_id, category, outcome,
                                reason, campaign, client, entry)
             SELECT * FROM UNNEST($1::integer[], $2::bigint[], $3::timestamptz[], $4::text[],
                                  $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                                  $10::text[], $11::text[], $12::text[])",
            &[
                &self.chain,
                &self.seq,
                &self.at,
                &self.kind,
                &self.pseudonym,
                &self.page_id,
                &self.category,
                &self.outcome,
                &self.reason,
                &self.campaign,
                &self.client,
                &self.entry,
            ],
        )
        .await?;
        if !self.personal.0.is_empty() {
            tx.exec(
                "INSERT INTO audit_personal (chain, seq, personal)
                 SELECT * FROM UNNEST($1::integer[], $2::bigint[], $3::text[])",
                &[&self.personal.0, &self.personal.1, &self.personal.2],
            )
            .await?;
        }
        Ok(())
    }
}

/// Each job's own result within a batch that was written.
type Results<T> = Vec<Result<T, StoreError>>;

/// A write that waits for the batcher: a batch of them is written in one transaction.
pub(super) trait Job: Send + Sized + 'static {
    /// What is written.
    type Input: Send + 'static;
    /// What the caller hears back.
    type Outcome: Send + 'static;
    /// The job's input, and where its outcome goes.
    fn split(
        self,
    ) -> (
        Self::Input,
        oneshot::Sender<Result<Self::Outcome, StoreError>>,
    );
    /// Writes `inputs` in one transaction: each one's result, in order, or one error for all.
    fn write(
        store: &PgStore,
        inputs: Vec<Self::Input>,
    ) -> impl std::future::Future<Output = Result<Results<Self::Outcome>, StoreError>> + Send;
}

/// One accept waiting for the batcher.
pub(super) struct AcceptJob {
    pub new: NewMessage,
    pub reply: oneshot::Sender<Result<Accepted, StoreError>>,
}

impl Job for AcceptJob {
    type Input = NewMessage;
    type Outcome = Accepted;

    fn split(self) -> (NewMessage, oneshot::Sender<Result<Accepted, StoreError>>) {
        (self.new, self.reply)
    }

    async fn write(
        store: &PgStore,
        inputs: Vec<NewMessage>,
    ) -> Result<Results<Accepted>, StoreError> {
        Ok(accept_batch(store, inputs)
            .await?
            .into_iter()
            .map(Ok)
            .collect())
    }
}

/// One change to a message waiting for the batcher: the worker records what each send did.
pub(super) struct UpdateJob {
    pub id: String,
    pub change: MessageChange,
    /// Let go of this instance's claim on the message with the change.
    pub release: bool,
    pub reply: oneshot::Sender<Result<Option<MessageRecord>, StoreError>>,
}

impl Job for UpdateJob {
    type Input = (String, MessageChange, bool);
    /// The changed record; `None` when the message is unknown or the change left it alone.
    type Outcome = Option<MessageRecord>;

    fn split(
        self,
    ) -> (
        Self::Input,
        oneshot::Sender<Result<Option<MessageRecord>, StoreError>>,
    ) {
        ((self.id, self.change, self.release), self.reply)
    }

    async fn write(
        store: &PgStore,
        inputs: Vec<Self::Input>,
    ) -> Result<Results<Option<MessageRecord>>, StoreError> {
        update_batch(store, inputs).await
    }
}

/// Takes jobs off the queue and writes them in batches, a few batches at a time.
pub(super) async fn run_batcher<J: Job>(
    store: Weak<PgStore>,
    mut queue: mpsc::UnboundedReceiver<J>,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Whatever queued while the slot was awaited joins this batch.
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (inputs, replies): (Vec<_>, Vec<_>) = jobs.into_iter().map(Job::split).unzip();
        let Some(store) = store.upgrade() else {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Closed));
            }
            return;
        };
        tokio::spawn(async move {
            match J::write(&store, inputs).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Writes a batch of message changes in one transaction: the messages are locked in id order,
/// each change runs on the record as the changes before it in the batch left it, and a change
/// that finishes a send claimed under an epoch that has passed is refused alone.
///
/// The claims of the changes that let go of theirs are released in the same round: none needs
/// a statement when its change took the message out of the outbox (a send), the others one
/// statement for the batch once it is committed.
async fn update_batch(
    store: &PgStore,
    inputs: Vec<(String, MessageChange, bool)>,
) -> Result<Results<Option<MessageRecord>>, StoreError> {
    let _timer = store.commit.start_timer();
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let mut ids: Vec<String> = inputs.iter().map(|(id, _, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    let locked = store.lock_messages(&tx, &ids).await?;
    let fenced = store.fenced(&tx, &locked).await?;
    let mut current: HashMap<String, MessageRecord> = locked
        .into_iter()
        .map(|l| (l.record.id.to_string(), l.record))
        .collect();
    let mut rows = Rows::default();
    let mut results = Vec::with_capacity(inputs.len());
    let mut changed_any = false;
    let mut release = Vec::new();
    for (id, change, let_go) in inputs {
        if let_go {
            release.push((results.len(), id.clone()));
        }
        if let Some(refused) = fenced.get(&id) {
            results.push(Err(refused.clone()));
            continue;
        }
        let Some(record) = current.get_mut(&id) else {
            results.push(Ok(None));
            continue;
        };
        // A change that leaves the message alone may still have touched its copy.
        let mut changed = record.clone();
        let Some(effects) = change(&mut changed) else {
            results.push(Ok(None));
            continue;
        };
        rows.update(store, record, &mut changed, effects)?;
        *record = changed;
        changed_any = true;
        results.push(Ok(Some(record.clone())));
    }
    // A message this batch takes out of the outbox takes its claim with it.
    release.retain(|(_, id)| !rows.outbox_remove.contains(id));
    if changed_any {
        rows.write(&tx, store).await?;
        store.finish(tx).await?;
    } else {
        drop(tx);
    }
    if !release.is_empty() {
        let ids: Vec<&str> = release.iter().map(|(_, id)| id.as_str()).collect();
        let released = client
            .exec(
                "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL, claim_epoch = NULL
                 WHERE message_id = ANY($1) AND claimed_by = $2",
                &[&ids, &store.instance],
            )
            .await;
        // The changes are written: only the callers whose claim may still be held hear of it.
        if let Err(e) = released {
            for (i, _) in release {
                if let Some(result) = results.get_mut(i) {
                    *result = Err(e.clone());
                }
            }
        }
    }
    Ok(results)
}

/// Writes a batch of accepts in one transaction; returns each one's outcome, in order.
async fn accept_batch(store: &PgStore, news: Vec<NewMessage>) -> Result<Vec<Accepted>, StoreError> {
    let _timer = store.commit.start_timer();
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    // The first use of each key in the batch tries to take it; the database's unique key
    // decides between instances.
    let mut first_use: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, new) in news.iter().enumerate() {
        if let Some(idem) = &new.idempotency {
            first_use
                .entry((idem.client.clone(), idem.key.clone()))
                .or_insert(i);
        }
    }
    let mut taken: HashSet<(String, String)> = HashSet::new();
    // What each first use stores, for a later use in the same batch to be answered from.
    let mut mine: HashMap<(String, String), IdempotencyRecord> = HashMap::new();
    let mut stored_before: HashMap<(String, String), IdempotencyRecord> = HashMap::new();
    if !first_use.is_empty() {
        let mut cols = (Vec::new(), Vec::new(), Vec::new());
        for ((client, key), i) in &first_use {
            let Some(idem) = &news[*i].idempotency else {
                continue;
            };
            let record = IdempotencyRecord {
                request_sha256: idem.request_sha256.clone(),
                answer: idem.answer.clone(),
                at: news[*i].record.created_at,
            };
            cols.0.push(client.clone());
            cols.1.push(key.clone());
            cols.2.push(encode("idempotency record", &record)?);
            mine.insert((client.clone(), key.clone()), record);
        }
        for row in tx
            .rows(
                "INSERT INTO idempotency (client, key, record)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                 ON CONFLICT DO NOTHING RETURNING client, key",
                &[&cols.0, &cols.1, &cols.2],
            )
            .await?
        {
            taken.insert((row.get(0), row.get(1)));
        }
        let (missing_clients, missing_keys): (Vec<String>, Vec<String>) = first_use
            .keys()
            .filter(|k| !taken.contains(*k))
            .cloned()
            .unzip();
        if !missing_clients.is_empty() {
            for row in tx
                .rows("SELECT i.client, i.key, i.record FROM idempotency i
                     JOIN UNNEST($1::text[], $2::text[]) AS u(c, k) ON i.client = u.c AND i.key = u.k",
                    &[&missing_clients, &missing_keys],
                )
                .await?
            {
                let text: String = row.get(2);
                stored_before.insert(
                    (row.get(0), row.get(1)),
                    super::decode("idempotency record", &text)?,
                );
            }
        }
    }
    let mut outcomes = Vec::with_capacity(news.len());
    let mut rows = Rows::default();
    for (i, new) in news.into_iter().enumerate() {
        let outcome = match &new.idempotency {
            None => None,
            Some(idem) => {
                let key = (idem.client.clone(), idem.key.clone());
                let first = first_use.get(&key).copied();
                if first == Some(i) && taken.contains(&key) {
                    None
                } else {
                    // Used before this batch, or by an earlier accept of it.
                    let earlier = if taken.contains(&key) {
                        mine.get(&key)
                    } else {
                        stored_before.get(&key)
                    };
                    Some(match earlier {
                        Some(r) if r.request_sha256 == idem.request_sha256 => {
                            Accepted::Replay(Box::new(r.clone()))
                        }
                        _ => Accepted::Conflict,
                    })
                }
            }
        };
        match outcome {
            Some(o) => outcomes.push(o),
            None => {
                rows.accept(store, new)?;
                outcomes.push(Accepted::Stored);
            }
        }
    }
    rows.write(&tx, store).await?;
    store.finish(tx).await?;
    Ok(outcomes)
}

/// Writes `rows` in a transaction of their own.
pub(super) async fn write_alone(store: &PgStore, rows: Rows) -> Result<(), StoreError> {
    let _timer = store.commit.start_timer();
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    rows.write(&tx, store).await?;
    store.finish(tx).await?;
    Ok(())
}
