//! The PostgreSQL store: several Herald instances on one database.
//!
//! Everything the sled store keeps is a table here (`migrations/`), written in transactions
//! that PostgreSQL makes durable before they return (`synchronous_commit`, the default). What
//! several instances add:
//!
//! - **Partitions of pages** ([`leases`]): pages hash into a fixed number of partitions, each
//!   owned by one instance at a time through a lease row with an epoch. Only the owner claims
//!   a partition's outbox (`FOR UPDATE SKIP LOCKED`), so one instance paces each page; a write
//!   that finishes a send checks that the claim's epoch is still the partition's (fencing); a
//!   dead instance's partitions are taken over when its lease runs out, and the new owner waits
//!   one pacing window before it sends.
//! - **Writes in batches** ([`batcher`], [`writes`]): concurrent accepts share one transaction, and so do
//!   the changes the worker records as its sends finish; the idempotency key is a unique
//!   constraint, so a retry on another instance gets the first answer.
//! - **One audit chain per partition** ([`audit`]): instances append side by side, each chain
//!   in order under its row's lock, `(chain, seq)` unique; verification walks each and reports
//!   their combined head, which checkpoints sign.
//!
//! Each of the store's interfaces is implemented in the file that does its work:
//!
//! ```text
//!   impl Messages    messages.rs ─┬─► batcher.rs (accepts and the worker's changes, in batches)
//!   impl Recipients  recipients.rs├─► writes.rs (Rows: one transaction's writes, a statement
//!   impl Campaigns   campaigns.rs ┘               per table; the audit chains last)
//!   impl Outbox      outbox.rs ─────► leases.rs (partitions, epochs)
//!   impl AuditLog    audit.rs    (append, queries, verify, prune, erase)
//!   impl EventEndpoints endpoints.rs ► leases.rs (a round's writes fenced by the epochs)
//!   impl Pauses      cluster.rs  (pages' pauses, shared by every instance)
//!   impl Engine      cluster.rs  (policy published and reported, instances, lease rounds, close)
//! ```

mod audit;
mod batcher;
mod campaigns;
mod cluster;
mod endpoints;
mod leases;
mod messages;
mod migrations;
mod outbox;
mod recipients;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod};
use parking_lot::Mutex;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::{packing, StoreError};
use crate::domain::audit::Pseudonyms;

pub use leases::LeaseSettings;
pub use migrations::migrate;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Engine(Arc::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Engine(Arc::new(e))
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database`, with `?sslmode=require` for TLS.
    pub url: SecretString,
    /// Certificates (PEM) to trust for the server's TLS certificate, besides the public roots.
    pub ca_file: Option<std::path::PathBuf>,
    pub pool_size: usize,
    /// How many partitions pages hash into (fixed for the life of the database).
    pub partitions: u32,
    /// Take part in running the outbox (a gateway), or only read and write (a command-line
    /// tool, which must not take partitions from the gateways).
    pub leases: Option<LeaseSettings>,
}

/// Why the database could not be opened: said in one line that names `storage.url`, with the
/// password hidden.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("storage.url is not a PostgreSQL URL (postgres://user:password@host:port/database)")]
    BadUrl,
    #[error("storage.ca_file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot connect to PostgreSQL at storage.url {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the database at storage.url {url} cannot be used: {reason}")]
    Unusable { url: String, reason: String },
}

/// The URL with its password replaced by `***`, to be named in errors and logs.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// The database connection pool for `options`, with one connection tried.
pub(crate) async fn connect(options: &PgOptions) -> Result<Pool, OpenError> {
    let pool = new_pool(options, options.pool_size, None)?;
    // One connection now, so that a wrong URL or a database that is down is said at start.
    let first = pool.get().await.map_err(|e| OpenError::Unreachable {
        url: redacted(options.url.expose_secret()),
        reason: pool_error_reason(&e),
    })?;
    drop(first);
    Ok(pool)
}

/// How the statements over tables that change as fast as a queue are planned — the outbox's
/// claim and next due time, and the decisions' read of recipients and their recent sends — on
/// connections of their own. Their statistics move faster than `ANALYZE` runs, and plans chosen
/// from them did not hold: in some runs PostgreSQL planned the claim again at most calls
/// (~250 µs a plan) and the decisions' read at half, weighing a plan for the values given
/// against one kept from when the tables were smaller; and a plan made on an empty outbox
/// sorts every due row. On these connections
/// each statement is planned once and may only walk indexes — the outbox in due order, a
/// person's rows, the primary keys — whatever the statistics say; JIT is off, because a path
/// turned off is costed so high that it would be compiled.
const PLANNED_ONCE: &str = "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
     SET enable_sort = off; SET enable_hashjoin = off; SET enable_mergejoin = off; SET jit = off";

/// A pool of at most `size` connections to `options.url`, made when first asked for; each runs
/// `settings` (SQL) once it is made.
fn new_pool(
    options: &PgOptions,
    size: usize,
    settings: Option<&'static str>,
) -> Result<Pool, OpenError> {
    let url = options.url.expose_secret();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(OpenError::BadUrl);
    }
    let mut config: tokio_postgres::Config = url.parse().map_err(|_| OpenError::BadUrl)?;
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("herald");
    let manager = Manager::from_connect(
        config,
        OnRuntime {
            runtime: tokio::runtime::Handle::current(),
            tls: tls(options)?,
        },
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let mut pool = Pool::builder(manager).max_size(size);
    if let Some(settings) = settings {
        // `SET` once connected, not the startup packet's `options`, which a connection pooler
        // such as PgBouncer may refuse.
        pool = pool.post_create(Hook::async_fn(move |client, _| {
            Box::pin(async move {
                client
                    .batch_execute(settings)
                    .await
                    .map_err(HookError::Backend)
            })
        }));
    }
    pool.build().map_err(|e| OpenError::Unusable {
        url: redacted(url),
        reason: e.to_string(),
    })
}

/// Makes every connection on the runtime the store was opened on, whichever task asks for
/// one. A connection is driven by a task on the runtime that made it; the HTTP server's
/// worker threads each run their own runtime, which ends when the server stops — before the
/// delivery worker has written what its last sends did. A connection made there would close
/// under it, and a message sent would not be recorded as sent (and go again).
struct OnRuntime {
    runtime: tokio::runtime::Handle,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

/// TLS to the database (rustls): the server's certificate is checked against the public roots
/// and `ca_file`, and its name against the URL's host. Whether TLS is used is the URL's
/// `sslmode`: `prefer` (the default) when the server offers it, `require` always, `disable`
/// never.
fn tls(options: &PgOptions) -> Result<tokio_postgres_rustls::MakeRustlsConnect, OpenError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &options.ca_file {
        let bad = |reason: String| OpenError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("holds no certificate".into()));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| OpenError::Unusable {
        url: redacted(options.url.expose_secret()),
        reason: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

type Connected =
    Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>;

impl deadpool_postgres::Connect for OnRuntime {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Connected> + Send + '_>> {
        let config = pg_config.clone();
        let runtime = self.runtime.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let made = runtime.spawn(async move {
                let (client, connection) = config.connect(tls).await?;
                let driver = tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "a database connection failed");
                    }
                });
                Ok((client, driver))
            });
            match made.await {
                Ok(connected) => connected,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // The store's runtime is ending: nothing is left to connect for.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

/// The root cause of a pool error, in words (the password never appears in them).
fn pool_error_reason(e: &deadpool_postgres::PoolError) -> String {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    reason
}

/// The PostgreSQL store.
pub struct PgStore {
    pool: Pool,
    /// Two connections for the statements over queue-like tables ([`PLANNED_ONCE`]): the
    /// outbox's claims and the decisions' reads, each run one at a time.
    planned_once: Pool,
    /// This instance, as it signs its leases and claims.
    instance: String,
    partitions: u32,
    leases: Arc<leases::Leases>,
    /// How often the lease rounds run; `None` for a store that runs no outbox (the CLI).
    lease_every: Option<std::time::Duration>,
    pseudonyms: Pseudonyms,
    /// Accepts queue here for the writer.
    accepts: tokio::sync::mpsc::UnboundedSender<batcher::AcceptJob>,
    /// Message changes queue here for it too, to be written in the same transactions.
    updates: tokio::sync::mpsc::UnboundedSender<batcher::UpdateJob>,
    /// The decisions' reads queue here for the reader, to be read together.
    reads: tokio::sync::mpsc::UnboundedSender<batcher::ReadJob>,
    stop: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    commit: prometheus::Histogram,
    flush: prometheus::Histogram,
}

impl PgStore {
    /// Connects, applies the migrations, and — with `options.leases` — joins the instances that
    /// run the outbox, taking a first share of partitions before it returns.
    pub async fn open(
        options: &PgOptions,
        pseudonyms: Pseudonyms,
    ) -> Result<Arc<PgStore>, OpenError> {
        let pool = connect(options).await?;
        let unusable = |e: StoreError| OpenError::Unusable {
            url: redacted(options.url.expose_secret()),
            reason: crate::report::error_chain(&e),
        };
        migrations::prepare(&pool, options.partitions)
            .await
            .map_err(unusable)?;
        let commit = prometheus::Histogram::with_opts(crate::metrics::latency_opts(
            "herald_store_commit_seconds",
            "time to commit one store transaction (a batch of writes), durable on return",
        ))
        .map_err(|e| unusable(StoreError::Engine(Arc::new(std::io::Error::other(e)))))?;
        let flush = prometheus::Histogram::with_opts(crate::metrics::latency_opts(
            "herald_store_flush_seconds",
            "time to commit (PostgreSQL flushes its write-ahead log)",
        ))
        .map_err(|e| unusable(StoreError::Engine(Arc::new(std::io::Error::other(e)))))?;
        let (accepts, queue) = tokio::sync::mpsc::unbounded_channel();
        let (updates, update_queue) = tokio::sync::mpsc::unbounded_channel();
        let (reads, read_queue) = tokio::sync::mpsc::unbounded_channel();
        let lease = options.leases.clone();
        let store = Arc::new(PgStore {
            pool,
            planned_once: new_pool(options, 2, Some(PLANNED_ONCE))?,
            instance: ulid::Ulid::new().to_string(),
            partitions: options.partitions,
            leases: Arc::new(leases::Leases::new(
                lease.as_ref().map(|l| l.lease).unwrap_or_default(),
            )),
            lease_every: lease.as_ref().map(|l| l.lease / 3),
            pseudonyms,
            accepts,
            updates,
            reads,
            stop: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            commit,
            flush,
        });
        let writer = tokio::spawn(batcher::run_writer(
            Arc::downgrade(&store),
            queue,
            update_queue,
        ));
        let reader = tokio::spawn(batcher::run_reader(Arc::downgrade(&store), read_queue));
        store.tasks.lock().extend([writer, reader]);
        // The later rounds are the gateway's to run (`Engine::maintain`), as a supervised task.
        if lease.is_some() {
            leases::round(&store).await.map_err(unusable)?;
        }
        Ok(store)
    }

    /// Commits `tx`: the round trip in which PostgreSQL flushes its log, timed as the flush.
    async fn finish(&self, tx: deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        let _timer = self.flush.start_timer();
        tx.commit().await?;
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// A connection for the statements over queue-like tables ([`PLANNED_ONCE`]).
    async fn planned_once(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.planned_once.get().await?)
    }

    async fn read_json<V: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        sql: &str,
        key: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<V>, StoreError> {
        let client = self.client().await?;
        let row = client.opt(sql, &[key]).await?;
        row.map(|row| decode(what, &row.get::<_, String>(0)))
            .transpose()
    }

    /// The partition `page_id` hashes into.
    fn partition_of(&self, page_id: &str) -> u32 {
        partition_of(page_id, self.partitions)
    }

    /// The chain an audit entry goes to: its page's partition, or 0 for entries about no page.
    fn chain_of(&self, page_id: Option<&str>) -> u32 {
        page_id.map_or(0, |p| self.partition_of(p))
    }

    /// The store's own metrics (commit and flush latencies), for `GET /metrics`.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![Box::new(self.commit.clone()), Box::new(self.flush.clone())]
    }
}

/// Statements run prepared, each prepared once per connection and kept: one round trip per
/// statement, planned once.
pub(super) trait Prepared: deadpool_postgres::GenericClient {
    fn rows<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Vec<tokio_postgres::Row>, StoreError>> + Send + 'a
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            Ok(self.query(&statement, params).await?)
        }
    }

    fn one<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<tokio_postgres::Row, StoreError>> + Send + 'a
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            Ok(self.query_one(&statement, params).await?)
        }
    }

    fn opt<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<Option<tokio_postgres::Row>, StoreError>> + Send + 'a
    {
        async move {
            let statement = self.prepare_cached(sql).await?;
            Ok(self.query_opt(&statement, params).await?)
        }
    }

    fn exec<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)],
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send + 'a {
        async move {
            let statement = self.prepare_cached(sql).await?;
            Ok(self.execute(&statement, params).await?)
        }
    }
}

impl<T: deadpool_postgres::GenericClient> Prepared for T {}

/// The partition `page_id` hashes into: the first four bytes of its sha256, modulo
/// `partitions` — the same on every instance and every version.
pub fn partition_of(page_id: &str, partitions: u32) -> u32 {
    let digest = Sha256::digest(page_id.as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    n % partitions.max(1)
}

fn encode<V: Serialize>(what: &'static str, value: &V) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode {
        what,
        source: Arc::new(source),
    })
}

fn decode<V: DeserializeOwned>(what: &'static str, text: &str) -> Result<V, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        what,
        source: Arc::new(source),
    })
}

/// `value` as a packed column keeps it (`messages.record`, `audit.entry`; see [`packing`]).
fn encode_packed<V: Serialize>(what: &'static str, value: &V) -> Result<Vec<u8>, StoreError> {
    packing::pack_stored(what, encode(what, value)?.as_bytes())
}

fn decode_packed<V: DeserializeOwned>(what: &'static str, stored: &[u8]) -> Result<V, StoreError> {
    serde_json::from_slice(&packing::unpack_stored(what, stored)?).map_err(|source| {
        StoreError::Corrupt {
            what,
            source: Arc::new(source),
        }
    })
}

/// A pseudonym as `audit.pseudonym` keeps it: its 16 bytes (migration 8).
fn pseudonym_column(pseudonym: &str) -> Result<Vec<u8>, StoreError> {
    Pseudonyms::bytes(pseudonym).map(Vec::from).ok_or_else(|| {
        StoreError::Engine(Arc::new(std::io::Error::other(
            "an audit entry's pseudonym is not `psn_` and 32 hex digits",
        )))
    })
}

/// A `u64` as PostgreSQL's `bigint`, and back.
fn int8(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn uint(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_hashes_into_the_same_partition_everywhere() {
        assert_eq!(
            partition_of("100000000000001", 64),
            partition_of("100000000000001", 64)
        );
        let spread: std::collections::HashSet<u32> = (0..1000)
            .map(|i| partition_of(&format!("1000000000{i:05}"), 16))
            .collect();
        assert_eq!(spread.len(), 16, "a thousand pages reach every partition");
        assert!(spread.iter().all(|p| *p < 16));
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        let shown = redacted("postgres://herald:s3cret-pw@db.example:5432/herald");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(
            shown.contains("herald:***@db.example:5432/herald"),
            "{shown}"
        );
    }
}
