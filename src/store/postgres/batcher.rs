//! The writer and the reader. Concurrent writes (accepts, and the worker's changes to
//! messages) go in one transaction, one transaction at a time; concurrent decisions' reads in
//! one statement.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::recipients::RecipientWithSends;
use super::writes::Rows;
use super::{encode, PgStore, Prepared, StoreError};
use crate::domain::{IdempotencyRecord, MessageRecord};
use crate::store::{Accepted, MessageChange, NewMessage};

/// Jobs of one kind per batch, at most.
const BATCH: usize = 256;

/// Batches of one batcher run at once. One: write batches side by side lock the same audit
/// chains (each appends entries for many pages) and wait for each other's commit anyway, and
/// every instance's batches queue on the same rows; one at a time, each batch takes everything
/// that queued while the one before it committed. Four at a time made batches of ~3 messages
/// and cost the database ~1.6× the CPU per message; one makes batches of ~30 (BENCHMARKS.md).
/// Accepts and the worker's changes share one transaction for the same reason: as two kinds
/// of batch they took turns on the chains' rows, each paying for its own commit.
const BATCHES_IN_FLIGHT: usize = 1;

/// Each job's own result within a batch that was written.
type Results<T> = Vec<Result<T, StoreError>>;

/// Where a job's result goes.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One accept waiting for the writer.
pub(super) struct AcceptJob {
    pub new: NewMessage,
    pub reply: Reply<Accepted>,
}

/// One change to a message waiting for the writer: the worker records what each send did.
pub(super) struct UpdateJob {
    pub id: String,
    pub change: MessageChange,
    /// Let go of this instance's claim on the message with the change.
    pub release: bool,
    pub reply: Reply<Option<MessageRecord>>,
}

/// One decision's read waiting for the reader: a recipient and their sends since `since`.
pub(super) struct ReadJob {
    pub key: String,
    pub since: DateTime<Utc>,
    pub reply: Reply<RecipientWithSends>,
}

/// Moves what waits in `queue` into `jobs`, up to [`BATCH`] in all.
fn gather<T>(queue: &mut mpsc::UnboundedReceiver<T>, jobs: &mut Vec<T>) {
    while jobs.len() < BATCH {
        match queue.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Answers each of `replies` with its result, in order, or all of them with one error.
fn answer<T>(replies: Vec<Reply<T>>, results: Result<Results<T>, StoreError>) {
    match results {
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
}

/// Takes the decisions' reads off the queue and reads what queued together in one statement,
/// [`BATCHES_IN_FLIGHT`] at a time.
pub(super) async fn run_reader(store: Weak<PgStore>, mut queue: mpsc::UnboundedReceiver<ReadJob>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Whatever queued while the slot was awaited joins this batch.
        let mut jobs = vec![first];
        gather(&mut queue, &mut jobs);
        let (asked, replies): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .map(|j| ((j.key, j.since), j.reply))
            .unzip();
        let Some(store) = store.upgrade() else {
            answer(replies, Err(StoreError::Closed));
            return;
        };
        tokio::spawn(async move {
            answer(replies, store.recipients_with_sends(asked).await);
            drop(slot);
        });
    }
}

/// Takes accepts and changes off their queues and writes what queued together in one
/// transaction, [`BATCHES_IN_FLIGHT`] at a time, up to [`BATCH`] of each kind.
pub(super) async fn run_writer(
    store: Weak<PgStore>,
    mut accepts: mpsc::UnboundedReceiver<AcceptJob>,
    mut updates: mpsc::UnboundedReceiver<UpdateJob>,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let mut batch = Batch::default();
        // Both queues belong to the store: when one closes, so does the other.
        tokio::select! {
            job = accepts.recv() => match job {
                Some(job) => batch.accepts.push(job),
                None => return,
            },
            job = updates.recv() => match job {
                Some(job) => batch.updates.push(job),
                None => return,
            },
        }
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // Whatever queued while the slot was awaited joins this batch.
        gather(&mut accepts, &mut batch.accepts);
        gather(&mut updates, &mut batch.updates);
        let (news, accepted): (Vec<_>, Vec<_>) =
            batch.accepts.into_iter().map(|j| (j.new, j.reply)).unzip();
        let (changes, changed): (Vec<_>, Vec<_>) = batch
            .updates
            .into_iter()
            .map(|j| ((j.id, j.change, j.release), j.reply))
            .unzip();
        let Some(store) = store.upgrade() else {
            answer(accepted, Err(StoreError::Closed));
            answer(changed, Err(StoreError::Closed));
            return;
        };
        tokio::spawn(async move {
            match write_batch(&store, news, changes).await {
                Ok((outcomes, results)) => {
                    answer(accepted, Ok(outcomes.into_iter().map(Ok).collect()));
                    answer(changed, Ok(results));
                }
                Err(e) => {
                    answer(accepted, Err(e.clone()));
                    answer(changed, Err(e));
                }
            }
            drop(slot);
        });
    }
}

/// The jobs of one write batch.
#[derive(Default)]
struct Batch {
    accepts: Vec<AcceptJob>,
    updates: Vec<UpdateJob>,
}

/// Writes a batch of accepts and message changes in one transaction: each accept's outcome and
/// each change's result, in order.
async fn write_batch(
    store: &PgStore,
    news: Vec<NewMessage>,
    changes: Vec<(String, MessageChange, bool)>,
) -> Result<(Vec<Accepted>, Results<Option<MessageRecord>>), StoreError> {
    let _timer = store.commit.start_timer();
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let mut rows = Rows::default();
    let accepted = stage_accepts(store, &tx, news, &mut rows).await?;
    let mut updated = stage_updates(store, &tx, changes, &mut rows).await?;
    if accepted.is_empty() && !updated.changed_any {
        drop(tx);
    } else {
        rows.write(&tx, store).await?;
        store.finish(tx).await?;
    }
    updated.release_claims(store, &client).await;
    Ok((accepted, updated.results))
}

/// The changes of a write batch, staged: each one's result, and the claims to let go of.
struct StagedUpdates {
    results: Results<Option<MessageRecord>>,
    /// Any change is to be written.
    changed_any: bool,
    /// (index in `results`, message id) of the changes that let go of their claim and whose
    /// message stays in the outbox.
    release: Vec<(usize, String)>,
}

impl StagedUpdates {
    /// Lets go of the claims the changes asked to, once the batch is committed, in one
    /// statement; if it fails, only the callers whose claim may still be held hear of it.
    async fn release_claims(&mut self, store: &PgStore, client: &deadpool_postgres::Object) {
        if self.release.is_empty() {
            return;
        }
        let ids: Vec<&str> = self.release.iter().map(|(_, id)| id.as_str()).collect();
        let released = client
            .exec(
                "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL, claim_epoch = NULL
                 WHERE message_id = ANY($1) AND claimed_by = $2",
                &[&ids, &store.instance],
            )
            .await;
        if let Err(e) = released {
            for (i, _) in &self.release {
                if let Some(result) = self.results.get_mut(*i) {
                    *result = Err(e.clone());
                }
            }
        }
    }
}

/// Stages a batch of message changes: the messages are locked in id order,
/// each change runs on the record as the changes before it in the batch left it, and a change
/// that finishes a send claimed under an epoch that has passed is refused alone.
///
/// The claims of the changes that let go of theirs are released in the same round: none needs
/// a statement when its change took the message out of the outbox (a send), the others one
/// statement for the batch once it is committed.
async fn stage_updates(
    store: &PgStore,
    tx: &Transaction<'_>,
    inputs: Vec<(String, MessageChange, bool)>,
    rows: &mut Rows,
) -> Result<StagedUpdates, StoreError> {
    let mut staged = StagedUpdates {
        results: Vec::with_capacity(inputs.len()),
        changed_any: false,
        release: Vec::new(),
    };
    if inputs.is_empty() {
        return Ok(staged);
    }
    let mut ids: Vec<String> = inputs.iter().map(|(id, _, _)| id.clone()).collect();
    ids.sort();
    ids.dedup();
    let locked = store.lock_messages(tx, &ids).await?;
    let fenced = store.fenced(tx, &locked).await?;
    let mut current: HashMap<String, (MessageRecord, bool)> = locked
        .into_iter()
        .map(|l| {
            let in_outbox = l.in_outbox();
            (l.record.id.to_string(), (l.record, in_outbox))
        })
        .collect();
    let results = &mut staged.results;
    for (id, change, let_go) in inputs {
        if let_go {
            staged.release.push((results.len(), id.clone()));
        }
        if let Some(refused) = fenced.get(&id) {
            results.push(Err(refused.clone()));
            continue;
        }
        let Some((record, in_outbox)) = current.get_mut(&id) else {
            results.push(Ok(None));
            continue;
        };
        // A change that leaves the message alone may still have touched its copy.
        let mut changed = record.clone();
        let Some(effects) = change(&mut changed) else {
            results.push(Ok(None));
            continue;
        };
        rows.update(store, record, *in_outbox, &mut changed, effects)?;
        *record = changed;
        staged.changed_any = true;
        results.push(Ok(Some(record.clone())));
    }
    // A message this batch takes out of the outbox takes its claim with it.
    staged
        .release
        .retain(|(_, id)| !rows.outbox_remove.contains(id));
    Ok(staged)
}

/// Stages a batch of accepts: each one's outcome, in order. Their idempotency keys are taken
/// in `tx`, so a batch with accepts is committed even when every one of them is a replay.
async fn stage_accepts(
    store: &PgStore,
    tx: &Transaction<'_>,
    news: Vec<NewMessage>,
    rows: &mut Rows,
) -> Result<Vec<Accepted>, StoreError> {
    if news.is_empty() {
        return Ok(Vec::new());
    }
    let keys = BatchKeys::claim(tx, &news).await?;
    let mut outcomes = Vec::with_capacity(news.len());
    for (i, new) in news.into_iter().enumerate() {
        match keys.outcome(i, &new) {
            Some(o) => outcomes.push(o),
            None => {
                rows.accept(store, new)?;
                outcomes.push(Accepted::Stored);
            }
        }
    }
    Ok(outcomes)
}

/// A client's idempotency key.
type Key = (String, String);

/// The idempotency keys of a batch of accepts. The first use of each key in the batch tries to
/// take it; the database's unique key decides between instances.
#[derive(Default)]
struct BatchKeys {
    /// Which accept of the batch uses each key first.
    first_use: BTreeMap<Key, usize>,
    /// The keys this batch took.
    taken: HashSet<Key>,
    /// What each first use stores, for a later use in the same batch to be answered from.
    mine: HashMap<Key, IdempotencyRecord>,
    /// What was stored before under the keys this batch did not take.
    stored_before: HashMap<Key, IdempotencyRecord>,
}

impl BatchKeys {
    /// Takes the batch's keys that are free, and reads what is stored under the others.
    async fn claim(tx: &Transaction<'_>, news: &[NewMessage]) -> Result<Self, StoreError> {
        let mut keys = BatchKeys::default();
        for (i, new) in news.iter().enumerate() {
            if let Some(idem) = &new.idempotency {
                keys.first_use
                    .entry((idem.client.clone(), idem.key.clone()))
                    .or_insert(i);
            }
        }
        if keys.first_use.is_empty() {
            return Ok(keys);
        }
        keys.take_free(tx, news).await?;
        keys.read_taken_before(tx).await?;
        Ok(keys)
    }

    async fn take_free(
        &mut self,
        tx: &Transaction<'_>,
        news: &[NewMessage],
    ) -> Result<(), StoreError> {
        let mut cols = (Vec::new(), Vec::new(), Vec::new());
        for ((client, key), i) in &self.first_use {
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
            self.mine.insert((client.clone(), key.clone()), record);
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
            self.taken.insert((row.get(0), row.get(1)));
        }
        Ok(())
    }

    async fn read_taken_before(&mut self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let (missing_clients, missing_keys): (Vec<String>, Vec<String>) = self
            .first_use
            .keys()
            .filter(|k| !self.taken.contains(*k))
            .cloned()
            .unzip();
        if missing_clients.is_empty() {
            return Ok(());
        }
        for row in tx
            .rows(
                "SELECT i.client, i.key, i.record FROM idempotency i
                 JOIN UNNEST($1::text[], $2::text[]) AS u(c, k) ON i.client = u.c AND i.key = u.k",
                &[&missing_clients, &missing_keys],
            )
            .await?
        {
            let text: String = row.get(2);
            self.stored_before.insert(
                (row.get(0), row.get(1)),
                super::decode("idempotency record", &text)?,
            );
        }
        Ok(())
    }

    /// The outcome of the batch's `i`th accept when it is not stored: a replay or a conflict
    /// of its key's earlier use (before this batch, or by an earlier accept of it).
    fn outcome(&self, i: usize, new: &NewMessage) -> Option<Accepted> {
        let idem = new.idempotency.as_ref()?;
        let key = (idem.client.clone(), idem.key.clone());
        if self.first_use.get(&key) == Some(&i) && self.taken.contains(&key) {
            return None;
        }
        let earlier = if self.taken.contains(&key) {
            self.mine.get(&key)
        } else {
            self.stored_before.get(&key)
        };
        Some(match earlier {
            Some(r) if r.request_sha256 == idem.request_sha256 => {
                Accepted::Replay(Box::new(r.clone()))
            }
            _ => Accepted::Conflict,
        })
    }
}
