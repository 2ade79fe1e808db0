//! One transaction's writes, gathered and then sent a table at a time (the batcher that
//! puts concurrent writes of one kind in one transaction is `batcher.rs`).
//!
//! A transaction first reads and locks what its change needs (the message or recipient row),
//! runs the caller's change, gathers every row the change writes in [`Rows`], and writes them
//! with one statement per table (`UNNEST` of arrays), in a fixed order that takes the audit
//! chains' locks last and in chain order, so that transactions on several instances never wait
//! for each other in a circle.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use futures_util::future::{try_join, try_join_all, BoxFuture};
use sha2::{Digest, Sha256};

use super::{encode, encode_packed, pseudonym_column, uint, PgStore, Prepared, StoreError};
use crate::domain::audit::{fresh_salt, AuditEntry};
use crate::domain::decision::TraceStep;
use crate::domain::lifecycle::{self, Effects, OutboxChange};
use crate::domain::MessageRecord;
use crate::store::packing;
use crate::store::{count_label, NewMessage};

/// Every row one transaction writes, by table.
///
/// A message's record lives in its outbox row while it has one, and in `messages` once it has
/// left the outbox (migration 9): the table of every message gets the record when the message is
/// done with the outbox (and after that only what happens to a message already sent: receipts,
/// erasure), and the versions a message goes through while it waits, is claimed and tried
/// again are rows of the small queue, which `VACUUM` empties. An outbox row written before
/// migration 9 has no record: its message's is in `messages` until it leaves.
#[derive(Default)]
pub(super) struct Rows {
    /// id → record (packed JSON) of a message out of the outbox, inserted or replaced.
    messages: BTreeMap<String, Vec<u8>>,
    /// id → record of a message that stays in the outbox where it is.
    outbox_records: BTreeMap<String, Vec<u8>>,
    /// sha256 → trace (JSON), kept once.
    traces: BTreeMap<String, String>,
    /// id → where it goes in the outbox: put there or moved in it.
    outbox_put: BTreeMap<String, OutboxRow>,
    pub(super) outbox_remove: Vec<String>,
    /// (recipient, at, message id, category)
    sends: Vec<(String, DateTime<Utc>, String, String)>,
    /// Graph message id → message id.
    graph_ids: BTreeMap<String, String>,
    /// (campaign, label) → change of its count.
    counts: BTreeMap<(String, String), i64>,
    audit: Vec<AuditEntry>,
}

// The tables' statements, each sent by the `write_…` function of its table.
const TRACES: &str = "INSERT INTO traces (sha256, trace)
     SELECT * FROM UNNEST($1::text[], $2::text[])
     ON CONFLICT DO NOTHING";

const MESSAGES: &str = "INSERT INTO messages (id, record)
     SELECT * FROM UNNEST($1::text[], $2::bytea[])
     ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record";

const OUTBOX_REMOVE: &str = "DELETE FROM outbox WHERE message_id = ANY($1)";

const OUTBOX_PUT: &str = "INSERT INTO outbox (message_id, partition, due, person, holds, record)
     SELECT * FROM UNNEST($1::text[], $2::integer[], $3::timestamptz[], $4::text[],
     $5::boolean[], $6::bytea[])
     ON CONFLICT (message_id) DO UPDATE
     SET due = EXCLUDED.due, person = EXCLUDED.person, holds = EXCLUDED.holds,
         record = EXCLUDED.record";

const OUTBOX_RECORDS: &str = "UPDATE outbox o SET record = r.record
     FROM UNNEST($1::text[], $2::bytea[]) AS r(id, record)
     WHERE o.message_id = r.id";

const SENDS: &str = "INSERT INTO sends (recipient, at, message_id, category)
     SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[])
     ON CONFLICT DO NOTHING";

const GRAPH_IDS: &str = "INSERT INTO graph_ids (graph_id, message_id)
     SELECT * FROM UNNEST($1::text[], $2::text[])
     ON CONFLICT (graph_id) DO UPDATE SET message_id = EXCLUDED.message_id";

const COUNTS: &str = "INSERT INTO campaign_counts (campaign, label, n)
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
     ON CONFLICT (campaign, label) DO UPDATE SET n = campaign_counts.n + EXCLUDED.n";

/// The tables' statements, in the order a batch sends them.
const TABLES: [&str; 8] = [
    TRACES,
    MESSAGES,
    OUTBOX_REMOVE,
    OUTBOX_PUT,
    OUTBOX_RECORDS,
    SENDS,
    GRAPH_IDS,
    COUNTS,
];

/// One table's statement of a batch, to be sent with the others.
type Statement<'a> = BoxFuture<'a, Result<(), StoreError>>;

/// An outbox row as a change writes it.
struct OutboxRow {
    partition: i32,
    due: DateTime<Utc>,
    /// The message's lane ([`lifecycle::lane`]), which claims take one message at a time from.
    person: String,
    /// It holds its lane ([`Effects::holds_lane`]).
    holds: bool,
    /// The message's record (packed JSON).
    record: Vec<u8>,
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
        self.effects(store, &record, false, effects)
    }

    /// A changed message: `before` is as it was read, `record` as the change left it;
    /// `in_outbox`, whether it had an outbox row when it was read.
    pub(super) fn update(
        &mut self,
        store: &PgStore,
        before: &MessageRecord,
        in_outbox: bool,
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
        if let Some(graph_id) =
            lifecycle::graph_id_to_index(before.graph_message_id.as_deref(), record)
        {
            self.graph_ids
                .insert(graph_id.to_owned(), record.id.to_string());
        }
        self.effects(store, record, in_outbox, effects)
    }

    /// The record where the message now is, its outbox entry, send history and audit entries
    /// of one change. Where the message is: where an earlier change of this batch put it (a
    /// row put in the outbox, or a record for `messages`), else where it was read (`in_outbox`).
    fn effects(
        &mut self,
        store: &PgStore,
        record: &MessageRecord,
        in_outbox: bool,
        effects: Effects,
    ) -> Result<(), StoreError> {
        let id = record.id.to_string();
        let packed = encode_packed("message", record)?;
        match effects.outbox {
            OutboxChange::Keep => {
                if let Some(row) = self.outbox_put.get_mut(&id) {
                    row.record = packed;
                } else if in_outbox && !self.messages.contains_key(&id) {
                    self.outbox_records.insert(id.clone(), packed);
                } else {
                    self.messages.insert(id.clone(), packed);
                }
            }
            OutboxChange::Remove => {
                self.outbox_put.remove(&id);
                self.outbox_records.remove(&id);
                self.outbox_remove.push(id.clone());
                self.messages.insert(id.clone(), packed);
            }
            OutboxChange::Schedule(due) => {
                let row = OutboxRow {
                    partition: i32::try_from(store.partition_of(record.page_id.as_str()))
                        .unwrap_or(0),
                    due,
                    person: lifecycle::lane(record),
                    holds: effects.holds_lane,
                    record: packed,
                };
                self.messages.remove(&id);
                self.outbox_records.remove(&id);
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
        Ok(())
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

    /// Writes everything gathered, a statement per table; the audit chains last. The tables'
    /// statements go out together, without waiting for each other's answers (tokio-postgres
    /// pipelines what is polled together on one connection, and PostgreSQL runs it in the order
    /// it arrives), so they cost one round trip instead of one each.
    pub(super) async fn write(
        self,
        tx: &Transaction<'_>,
        store: &PgStore,
    ) -> Result<(), StoreError> {
        let Rows {
            messages,
            outbox_records,
            traces,
            outbox_put,
            outbox_remove,
            sends,
            graph_ids,
            counts,
            audit,
        } = self;
        // Each statement is prepared on this connection first (once: the connection keeps it),
        // so that each of them below goes out as soon as it is polled, in the order of
        // [`TABLES`]: every transaction takes its rows' locks in the same order, as when the
        // statements went one at a time, and a row deleted from the outbox and put back in the
        // same batch is deleted first.
        try_join_all(TABLES.iter().map(|sql| tx.prepare_cached(sql))).await?;
        let tables: Vec<Statement<'_>> = vec![
            // Traces not stored yet: a trace is kept once, by its sha256.
            Box::pin(write_pairs(tx, TRACES, traces)),
            Box::pin(write_pairs(tx, MESSAGES, messages)),
            Box::pin(write_outbox_remove(tx, outbox_remove)),
            Box::pin(write_outbox_put(tx, outbox_put)),
            Box::pin(write_pairs(tx, OUTBOX_RECORDS, outbox_records)),
            Box::pin(write_sends(tx, sends)),
            // Graph message ids, for receipts to find their message.
            Box::pin(write_pairs(tx, GRAPH_IDS, graph_ids)),
            Box::pin(write_counts(tx, counts)),
        ];
        try_join_all(tables).await?;
        append_audit(tx, store, audit).await
    }
}

/// Rows of a key and a value (a trace by its sha256, a record by its message's id, a message's
/// id by its Graph id), sent by `statement` as two arrays.
async fn write_pairs<V>(
    tx: &Transaction<'_>,
    statement: &str,
    pairs: BTreeMap<String, V>,
) -> Result<(), StoreError>
where
    Vec<V>: tokio_postgres::types::ToSql + Sync,
{
    if pairs.is_empty() {
        return Ok(());
    }
    let (keys, values): (Vec<String>, Vec<V>) = pairs.into_iter().unzip();
    tx.exec(statement, &[&keys, &values]).await?;
    Ok(())
}

/// Outbox rows of messages that left it.
async fn write_outbox_remove(
    tx: &Transaction<'_>,
    outbox_remove: Vec<String>,
) -> Result<(), StoreError> {
    if outbox_remove.is_empty() {
        return Ok(());
    }
    tx.exec(OUTBOX_REMOVE, &[&outbox_remove]).await?;
    Ok(())
}

/// Outbox rows put there or moved in it.
async fn write_outbox_put(
    tx: &Transaction<'_>,
    outbox_put: BTreeMap<String, OutboxRow>,
) -> Result<(), StoreError> {
    if outbox_put.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(outbox_put.len());
    let mut partitions = Vec::with_capacity(outbox_put.len());
    let mut dues = Vec::with_capacity(outbox_put.len());
    let mut persons = Vec::with_capacity(outbox_put.len());
    let mut holds = Vec::with_capacity(outbox_put.len());
    let mut records = Vec::with_capacity(outbox_put.len());
    for (id, row) in outbox_put {
        ids.push(id);
        partitions.push(row.partition);
        dues.push(row.due);
        persons.push(row.person);
        holds.push(row.holds);
        records.push(row.record);
    }
    tx.exec(
        OUTBOX_PUT,
        &[&ids, &partitions, &dues, &persons, &holds, &records],
    )
    .await?;
    Ok(())
}

/// The send history the policy reads.
async fn write_sends(
    tx: &Transaction<'_>,
    sends: Vec<(String, DateTime<Utc>, String, String)>,
) -> Result<(), StoreError> {
    if sends.is_empty() {
        return Ok(());
    }
    let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (recipient, at, id, category) in sends {
        cols.0.push(recipient);
        cols.1.push(at);
        cols.2.push(id);
        cols.3.push(category);
    }
    tx.exec(SENDS, &[&cols.0, &cols.1, &cols.2, &cols.3])
        .await?;
    Ok(())
}

/// Changes to campaigns' counts.
async fn write_counts(
    tx: &Transaction<'_>,
    counts: BTreeMap<(String, String), i64>,
) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut cols = (Vec::new(), Vec::new(), Vec::new());
    for ((campaign, label), delta) in counts {
        cols.0.push(campaign);
        cols.1.push(label);
        cols.2.push(delta);
    }
    tx.exec(COUNTS, &[&cols.0, &cols.1, &cols.2]).await?;
    Ok(())
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
    // Both statements on the chains' rows read their arrays through `(SELECT $n)`, which hides
    // the arrays' length from the planner: seen, PostgreSQL planned them again at every call
    // (its plan for a short array costs less than its one plan for any), ~50 µs of planning each
    // at every batch; hidden, the one plan serves every batch (the table has a row per chain).
    let heads: HashMap<i32, (i64, String)> = tx
        .rows(
            "SELECT chain, seq, hash FROM audit_chains
             WHERE chain = ANY((SELECT $1::integer[])::integer[]) ORDER BY chain FOR UPDATE",
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
            let sealed = packing::pack_stored("audit entry", &sealed)?;
            let personal = personal
                .map(|p| encode("audit entry's personal values", &p))
                .transpose()?;
            rows.push(chain_col, seq, &entry, sealed, personal)?;
            hash = entry.hash;
        }
        new_heads.0.push(chain_col);
        new_heads.1.push(seq);
        new_heads.2.push(hash);
    }
    // The entries and the chains' new heads, together (one round trip).
    let heads = async {
        tx.exec(
            "UPDATE audit_chains c SET seq = h.seq, hash = h.hash
             FROM UNNEST((SELECT $1::integer[]), (SELECT $2::bigint[]), (SELECT $3::text[]))
                 AS h(chain, seq, hash)
             WHERE c.chain = h.chain",
            &[&new_heads.0, &new_heads.1, &new_heads.2],
        )
        .await
        .map(|_| ())
    };
    try_join(rows.write(tx), heads).await?;
    Ok(())
}

/// Sealed entries as columns.
#[derive(Default)]
struct AuditRows {
    chain: Vec<i32>,
    seq: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    kind: Vec<String>,
    pseudonym: Vec<Option<Vec<u8>>>,
    page_id: Vec<Option<String>>,
    category: Vec<Option<String>>,
    outcome: Vec<Option<String>>,
    reason: Vec<Option<String>>,
    campaign: Vec<Option<String>>,
    client: Vec<Option<String>>,
    entry: Vec<Vec<u8>>,
    personal: Vec<Option<String>>,
}

impl AuditRows {
    fn push(
        &mut self,
        chain: i32,
        seq: i64,
        e: &AuditEntry,
        sealed: Vec<u8>,
        personal: Option<String>,
    ) -> Result<(), StoreError> {
        self.pseudonym.push(
            e.recipient_pseudonym
                .as_deref()
                .map(pseudonym_column)
                .transpose()?,
        );
        self.chain.push(chain);
        self.seq.push(seq);
        self.at.push(e.at);
        self.kind.push(e.kind.as_str().to_owned());
        self.page_id.push(e.page_id.clone());
        self.category
            .push(e.category.map(|c| c.as_str().to_owned()));
        self.outcome.push(e.outcome.clone());
        self.reason.push(e.reason.clone());
        self.campaign.push(e.campaign.clone());
        self.client.push(e.client.clone());
        self.entry.push(sealed);
        self.personal.push(personal);
        Ok(())
    }

    /// Inserts the entries, each with its erasable values.
    async fn write(self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let columns: [&(dyn tokio_postgres::types::ToSql + Sync); 13] = [
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
            &self.personal,
        ];
        tx.exec(
            "INSERT INTO audit (chain, seq, at, kind, pseudonym, page_id, category, outcome,
                                reason, campaign, client, entry, personal)
             SELECT * FROM UNNEST($1::integer[], $2::bigint[], $3::timestamptz[], $4::text[],
                                  $5::bytea[], $6::text[], $7::text[], $8::text[], $9::text[],
                                  $10::text[], $11::text[], $12::bytea[], $13::text[])",
            &columns,
        )
        .await?;
        Ok(())
    }
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
