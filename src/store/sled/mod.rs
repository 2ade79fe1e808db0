//! The embedded sled store: the only code that touches sled.
//!
//! Every write goes through [`SledStore::commit`]: one sled transaction across the trees it
//! needs, with the audit entries it produces chained in the same transaction, so a message, its
//! decision's audit entry and its idempotency record are written together or not at all. The
//! transaction is prepared first (reads, encoding, hashing: [`Tx`]) and sled's process-wide
//! lock is taken for the inserts alone. Accepts and message updates are committed in batches by
//! one writer thread that flushes each batch itself ([`writer`]); other writers that must be
//! durable wait for a group commit ([`group_commit`]).
//!
//! Each of the store's interfaces is implemented in the file that does its work:
//!
//! ```text
//!   impl Messages    messages.rs ──► writer.rs (accepts, message changes) ─┐
//!   impl Outbox      outbox.rs   (claims in memory)                        │
//!   impl Recipients  recipients.rs                                         │
//!   impl AuditLog    audit.rs    (the chain, its indexes, prune, erase)    ├─► mod.rs (Tx, trees,
//!   impl Campaigns   campaigns.rs                                          │    codec, commit)
//!   impl Pauses      pages.rs                                              │
//!   impl Engine      mod.rs      (close, size on disk) ────────────────────┘
//! ```

mod audit;
mod campaigns;
mod endpoints;
mod group_commit;
mod messages;
mod outbox;
mod pages;
mod recipients;
mod timeline;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional};
use tokio_util::sync::CancellationToken;

use super::{packing, Engine, StoreError};
use crate::domain::audit::{fresh_salt, AuditEntry, AuditHead, Pseudonyms};
use group_commit::GroupCommit;

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(Arc::new(e))
    }
}

/// The trees, by role. The discriminant is the index into [`SledStore::trees`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum T {
    /// message id → [`MessageRecord`]
    Messages,
    /// due time (ms, big-endian) ++ message id → the message's lane (see
    /// [`crate::domain::lifecycle::lane`]; empty in entries written before lanes were kept)
    Outbox,
    /// seq (big-endian) → [`AuditEntry`]
    Audit,
    /// small named values: the audit head
    Meta,
    /// client ++ 0 ++ key → [`IdempotencyRecord`]
    Idempotency,
    /// recipient key → [`RecipientRecord`]
    Recipients,
    /// recipient key ++ 0 ++ time (ms, big-endian) ++ message id → category
    Sends,
    /// Graph message id → message id, for the messages receipts need it for
    /// ([`lifecycle::graph_id_to_index`](crate::domain::lifecycle::graph_id_to_index))
    GraphIds,
    /// webhook `mid` → time seen (deduplication)
    WebhookMids,
    /// id (big-endian) → a webhook event that failed to apply, kept for a retry
    ParkedEvents,
    /// sha256 of a decision trace → the trace. Kept apart from the records, which are
    /// rewritten at every status change, and stored once however many decisions share it:
    /// most decisions' traces are alike word for word.
    Traces,
    /// campaign id → [`crate::domain::campaign::Campaign`]
    Campaigns,
    /// campaign id ++ 0 ++ first position (big-endian) → a part of the audience, a PSID a line
    Audience,
    /// campaign id ++ 0 ++ status (or `denied:<reason>`) → how many of its messages are there
    CampaignCounts,
    /// Marketing Messages token → recipient key: who a Send API request addressed by token
    /// (`recipient.notification_messages_token`) is.
    MarketingTokens,
    /// seq (big-endian) → an audit entry's erasable values ([`Personal`]), as entries written
    /// before session 20 of issue 18 kept them; later entries keep them in their own value in
    /// [`T::Audit`] (see [`audit::stored_value`]). Read, erased and pruned, no longer written.
    AuditPersonal,
    /// Secondary indexes of the audit log, written with each entry: one key per field it can
    /// be found by, `field tag ++ value ++ 0 ++ seq`, or `t ++ time (ms) ++ seq` (see `audit.rs`).
    AuditIndex,
    /// lane → the outbox key of the queued message that holds it (waiting for its retry or
    /// a page's pause): the lane's other messages wait for it (see [`outbox`]).
    Lanes,
    /// endpoint id → [`crate::domain::endpoint::EndpointRecord`]
    Endpoints,
    /// endpoint id ++ 0 ++ chain (big-endian) → the last seq handed over (big-endian)
    EndpointCursors,
    /// endpoint id ++ 0 ++ due (ms) ++ chain ++ seq ++ index → a pending delivery
    EndpointPending,
    /// endpoint id ++ 0 ++ chain ++ seq ++ index → its due (ms): finds a pending delivery by
    /// its event, to replace or drop it
    EndpointPendingByEvent,
    /// endpoint id ++ 0 ++ attempt id → [`crate::domain::endpoint::DeliveryAttempt`]
    EndpointAttempts,
}

impl T {
    const ALL: [T; 23] = [
        T::Messages,
        T::Outbox,
        T::Audit,
        T::Meta,
        T::Idempotency,
        T::Recipients,
        T::Sends,
        T::GraphIds,
        T::WebhookMids,
        T::ParkedEvents,
        T::Traces,
        T::Campaigns,
        T::Audience,
        T::CampaignCounts,
        T::MarketingTokens,
        T::AuditPersonal,
        T::AuditIndex,
        T::Lanes,
        T::Endpoints,
        T::EndpointCursors,
        T::EndpointPending,
        T::EndpointPendingByEvent,
        T::EndpointAttempts,
    ];

    /// What the tree holds, for errors.
    fn record(self) -> &'static str {
        match self {
            T::Messages => "message",
            T::Outbox => "outbox entry",
            T::Audit => "audit entry",
            T::Meta => "audit head",
            T::Idempotency => "idempotency record",
            T::Recipients => "recipient",
            T::Sends => "send history entry",
            T::GraphIds => "Graph message id",
            T::WebhookMids => "webhook mid",
            T::ParkedEvents => "parked webhook event",
            T::Traces => "decision trace",
            T::Campaigns => "campaign",
            T::Audience => "audience entry",
            T::CampaignCounts => "campaign count",
            T::MarketingTokens => "marketing token owner",
            T::AuditPersonal => "audit entry's personal values",
            T::AuditIndex => "audit index key",
            T::Lanes => "lane holder",
            T::Endpoints => "event endpoint",
            T::EndpointCursors => "event endpoint cursor",
            T::EndpointPending => "pending event delivery",
            T::EndpointPendingByEvent => "pending event delivery index",
            T::EndpointAttempts => "event delivery attempt",
        }
    }

    /// Whether the tree keeps its values packed ([`packing`]): the large ones that every
    /// message writes. Values written before packing are read as they are.
    fn packed(self) -> bool {
        matches!(self, T::Messages | T::Audit)
    }

    fn name(self) -> &'static str {
        match self {
            T::Messages => "messages",
            T::Outbox => "outbox",
            T::Audit => "audit",
            T::Meta => "meta",
            T::Idempotency => "idempotency",
            T::Recipients => "recipients",
            T::Sends => "sends",
            T::GraphIds => "graph_ids",
            T::WebhookMids => "webhook_mids",
            T::ParkedEvents => "parked_events",
            T::Traces => "traces",
            T::Campaigns => "campaigns",
            T::Audience => "audience",
            T::CampaignCounts => "campaign_counts",
            T::MarketingTokens => "marketing_tokens",
            T::AuditPersonal => "audit_personal",
            T::AuditIndex => "audit_index",
            T::Lanes => "lanes",
            T::Endpoints => "endpoints",
            T::EndpointCursors => "endpoint_cursors",
            T::EndpointPending => "endpoint_pending",
            T::EndpointPendingByEvent => "endpoint_pending_by_event",
            T::EndpointAttempts => "endpoint_attempts",
        }
    }
}

const AUDIT_HEAD: &[u8] = b"audit_head";
/// The last entry pruned ([`AuditHead`]): where the chain now starts.
const AUDIT_START: &[u8] = b"audit_start";

/// sled's page cache. 64 MiB let the gateway's RSS reach 155 MB in a 250,000-message run end
/// to end; 32 MiB kept it at 117 MB with no loss of throughput. Once values were packed, the
/// same budget held more (smaller) pages and the gateway reached 136–140 MB end to end; 20 MiB
/// brings it to 121–122 MB with the same throughput and audit query times (BENCHMARKS.md).
const CACHE_BYTES: u64 = 20 * 1024 * 1024;

/// The embedded sled store.
pub struct SledStore {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// The end of the audit chain and where its times stand. Held across each transaction,
    /// which orders the chain and keeps transactions from conflicting.
    end: Mutex<ChainEnd>,
    /// The last audit entry known to be on disk. Events are read only up to it
    /// ([`crate::store::AuditLog::read_chain`]), so that none is told of a change a crash could
    /// still undo (an entry is visible to readers once committed, before its flush).
    durable_seq: std::sync::atomic::AtomicU64,
    group_commit: Arc<GroupCommit>,
    /// The group-commit task; [`SledStore::shut`] waits for it, so that afterwards nothing but
    /// this handle keeps the database (and its file lock) open.
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: CancellationToken,
    /// Accepts and message updates queue here for the batching writer.
    writes: tokio::sync::mpsc::UnboundedSender<writer::Job>,
    /// Who holds which outbox entry (see [`outbox`]).
    claims: outbox::Claims,
    /// Turns recipients into the pseudonyms the audit log names them by.
    pseudonyms: Pseudonyms,
    /// How long transactions and flushes take, for `GET /metrics`.
    latency: Latency,
}

/// The store's latency histograms (registered by the application's metrics).
#[derive(Clone)]
pub(crate) struct Latency {
    commit: prometheus::Histogram,
    flush: prometheus::Histogram,
}

impl Latency {
    fn new() -> Result<Latency, StoreError> {
        let histogram = |name: &str, help: &str| {
            prometheus::Histogram::with_opts(crate::metrics::latency_opts(name, help))
                .map_err(|e| StoreError::Engine(Arc::new(std::io::Error::other(e))))
        };
        Ok(Latency {
            commit: histogram(
                "herald_store_commit_seconds",
                "time to apply one store transaction (a batch of writes)",
            )?,
            flush: histogram(
                "herald_store_flush_seconds",
                "time to flush the store to disk (fsync)",
            )?,
        })
    }
}

type TxResult<R> = Result<R, StoreError>;

/// The end of the audit chain: its head, and the watermark and lag of its times (see
/// [`timeline`]).
#[derive(Debug, Clone, Default)]
struct ChainEnd {
    head: AuditHead,
    time: timeline::Timeline,
}

/// One transaction being prepared: reads see the store and the writes staged so far; writes
/// are encoded here and staged, and [`SledStore::commit`] applies them all in one sled transaction.
///
/// sled 0.34 holds a process-wide lock for a whole transaction, which stops every reader in the
/// process; preparing outside it (under [`SledStore::head`], which serialises every writer) keeps
/// that lock for the inserts alone.
pub(crate) struct Tx<'a> {
    store: &'a SledStore,
    /// Staged writes by tree and key; `None` removes the key.
    writes: HashMap<(T, Vec<u8>), Option<IVec>>,
    head: AuditHead,
    time: timeline::Timeline,
}

fn decode<V: DeserializeOwned>(t: T, bytes: &[u8]) -> Result<V, StoreError> {
    let json = packing::unpack_stored(t.record(), bytes)?;
    let json = match t {
        T::Audit => audit::Stored::split(&json).sealed,
        _ => &json,
    };
    serde_json::from_slice(json).map_err(|source| StoreError::Corrupt {
        what: t.record(),
        source: Arc::new(source),
    })
}

fn encode<V: Serialize>(t: T, value: &V) -> Result<Vec<u8>, StoreError> {
    let json = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        what: t.record(),
        source: Arc::new(source),
    })?;
    match t.packed() {
        true => packing::pack_stored(t.record(), &json),
        false => Ok(json),
    }
}

impl Tx<'_> {
    /// The value as this transaction sees it: staged, else stored.
    fn raw(&self, t: T, key: &[u8]) -> TxResult<Option<IVec>> {
        match self.writes.get(&(t, key.to_vec())) {
            Some(staged) => Ok(staged.clone()),
            None => Ok(self.store.tree(t).get(key)?),
        }
    }

    fn get<V: DeserializeOwned>(&self, t: T, key: &[u8]) -> TxResult<Option<V>> {
        self.raw(t, key)?.map(|bytes| decode(t, &bytes)).transpose()
    }

    fn contains(&self, t: T, key: &[u8]) -> TxResult<bool> {
        Ok(self.raw(t, key)?.is_some())
    }

    fn put<V: Serialize>(&mut self, t: T, key: &[u8], value: &V) -> TxResult<()> {
        let bytes = encode(t, value)?;
        self.writes.insert((t, key.to_vec()), Some(bytes.into()));
        Ok(())
    }

    fn put_raw(&mut self, t: T, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.writes.insert((t, key.to_vec()), Some(value.into()));
        Ok(())
    }

    fn remove(&mut self, t: T, key: &[u8]) -> TxResult<()> {
        self.writes.insert((t, key.to_vec()), None);
        Ok(())
    }

    /// Appends `entry` to the audit chain in this transaction, its erasable values in the same
    /// value outside what its hash covers ([`audit::stored_value`]), and its index keys with it.
    fn audit(&mut self, mut entry: AuditEntry) -> TxResult<u64> {
        let seq = self.head.seq + 1;
        let encode_error = |source| StoreError::Encode {
            what: "audit entry",
            source: Arc::new(source),
        };
        let personal = entry
            .take_personal(&self.store.pseudonyms, fresh_salt())
            .map_err(encode_error)?;
        let sealed = entry.seal(seq, &self.head.hash).map_err(encode_error)?;
        let stored = audit::stored_value(sealed, personal.as_ref()).map_err(encode_error)?;
        self.put_raw(
            T::Audit,
            &seq.to_be_bytes(),
            &packing::pack_stored(T::Audit.record(), &stored)?,
        )?;
        for key in audit::index_keys(&entry) {
            self.put_raw(T::AuditIndex, &key, &[])?;
        }
        self.time.note(millis_of(entry.at));
        self.head = AuditHead::at(seq, entry.hash);
        Ok(seq)
    }
}

impl SledStore {
    /// Opens (or creates) the store at `path`; the audit log names recipients by their
    /// pseudonyms under `pseudonyms`, which must stay the same for the life of the store. Must
    /// run inside a tokio runtime: it starts the group-commit task.
    pub fn open(path: &Path, pseudonyms: Pseudonyms) -> Result<Arc<SledStore>, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            // sled's default page cache is 1 GiB; Herald's hot set (recent recipients and the
            // outbox) is far smaller, and resident memory is a budget (BENCHMARKS.md).
            .cache_capacity(CACHE_BYTES)
            // Every write is flushed before its caller hears of it (the writer's own flush, or
            // group commit), so sled's periodic flusher adds nothing but pauses: it holds
            // sled's process-wide lock while it writes, and the writer and readers wait.
            .flush_every_ms(None)
            .open()?;
        Self::from_db(db, pseudonyms)
    }

    fn from_db(db: sled::Db, pseudonyms: Pseudonyms) -> Result<Arc<SledStore>, StoreError> {
        let trees = T::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        let head = match trees[T::Meta as usize].get(AUDIT_HEAD)? {
            Some(bytes) => decode(T::Meta, &bytes)?,
            None => AuditHead::default(),
        };
        let stop = CancellationToken::new();
        let latency = Latency::new()?;
        let (group_commit, flusher) =
            GroupCommit::start(db.clone(), stop.clone(), latency.flush.clone());
        let (writes, queue) = tokio::sync::mpsc::unbounded_channel();
        let store = Arc::new(SledStore {
            db,
            trees,
            // What is read back at opening is on disk.
            durable_seq: std::sync::atomic::AtomicU64::new(head.seq),
            end: Mutex::new(ChainEnd {
                head,
                time: timeline::Timeline::default(),
            }),
            group_commit,
            flusher: Mutex::new(Some(flusher)),
            stop,
            writes,
            claims: outbox::Claims::default(),
            pseudonyms,
            latency,
        });
        writer::start_writer(Arc::downgrade(&store), queue)
            .map_err(|e| StoreError::Engine(Arc::new(e)))?;
        store.index_audit_times()?;
        store.index_marketing_tokens()?;
        Ok(store)
    }

    fn tree(&self, t: T) -> &sled::Tree {
        &self.trees[t as usize]
    }

    fn read<V: DeserializeOwned>(&self, t: T, key: &[u8]) -> Result<Option<V>, StoreError> {
        match self.tree(t).get(key)? {
            Some(bytes) => Ok(Some(decode(t, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Runs `f` as one transaction across every tree: `f` reads and stages writes (see [`Tx`]),
    /// then everything it staged is applied in one sled transaction, or nothing is if `f`
    /// fails. Audit entries it appends are chained in the same transaction. Not yet durable:
    /// see [`SledStore::durable`].
    fn commit<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> TxResult<R>) -> Result<R, StoreError> {
        // Every writer holds the head while it prepares and applies, so what `f` read is still
        // current when its writes land.
        let mut end = self.end.lock();
        let mut tx = Tx {
            store: self,
            writes: HashMap::new(),
            head: end.head.clone(),
            time: end.time,
        };
        let r = f(&mut tx)?;
        // The head and the time index are written once per transaction, however many entries
        // it appended.
        if tx.head.seq != end.head.seq {
            let new_head = tx.head.clone();
            tx.put(T::Meta, AUDIT_HEAD, &new_head)?;
            tx.index_times(end.head.seq + 1, tx.head.seq, end.time)?;
        }
        let writes = tx.writes;
        let _timer = self.latency.commit.start_timer();
        self.trees[..]
            .transaction(|views| {
                for ((t, key), value) in &writes {
                    let view = &views[*t as usize];
                    match value {
                        Some(v) => view.insert(key.as_slice(), v.clone())?,
                        None => view.remove(key.as_slice())?,
                    };
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => StoreError::from(e),
            })?;
        *end = ChainEnd {
            head: tx.head,
            time: tx.time,
        };
        Ok(r)
    }

    /// Writes everything committed so far to disk, on this thread.
    fn flush(&self) -> Result<(), StoreError> {
        let committed = self.end.lock().head.seq;
        let _timer = self.latency.flush.start_timer();
        self.db.flush()?;
        self.mark_durable(committed);
        Ok(())
    }

    /// Waits until everything committed so far is on disk (group commit).
    async fn durable(&self) -> Result<(), StoreError> {
        // Read before the ticket is taken: the flush that answers it covers this entry.
        let committed = self.end.lock().head.seq;
        self.group_commit.durable().await?;
        self.mark_durable(committed);
        Ok(())
    }

    fn mark_durable(&self, seq: u64) {
        self.durable_seq
            .fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
    }

    /// The last audit entry known to be on disk.
    fn durable_seq(&self) -> u64 {
        self.durable_seq.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The store's own metrics (commit and flush latencies), for `GET /metrics`.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.latency.commit.clone()),
            Box::new(self.latency.flush.clone()),
        ]
    }
}

#[async_trait]
impl Engine for SledStore {
    async fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Stops the group-commit task and flushes everything to disk.
    async fn close(&self) -> Result<(), StoreError> {
        self.stop.cancel();
        let flusher = self.flusher.lock().take();
        if let Some(task) = flusher {
            let _ = task.await;
        }
        self.db.flush_async().await?;
        Ok(())
    }
}

/// `a ++ 0 ++ b`: keys whose first part may vary in length.
fn joined(a: &str, b: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + 1 + b.len());
    key.extend_from_slice(a.as_bytes());
    key.push(0);
    key.extend_from_slice(b);
    key
}

fn millis(at: chrono::DateTime<chrono::Utc>) -> [u8; 8] {
    millis_of(at).to_be_bytes()
}

/// Milliseconds since the epoch; times before it count as the epoch.
fn millis_of(at: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

#[cfg(test)]
pub(crate) async fn temporary() -> Arc<SledStore> {
    let db = sled::Config::new()
        .temporary(true)
        .open()
        .expect("temporary sled");
    SledStore::from_db(db, Pseudonyms::new(b"test pseudonym key")).expect("store")
}
