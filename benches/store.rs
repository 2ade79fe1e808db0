//! The store: one durable accept (message + outbox + audit in one transaction, then fsync),
//! the same under 64 concurrent writers (group commit), and reading the audit log; and, for
//! comparison, sled alone doing the least an accepted message needs.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use herald::domain::audit::AuditEntry;
use herald::domain::lifecycle;
use herald::domain::{
    Category, Content, MessageId, MessageRecord, MessageStatus, Psid, Recipient, Role,
};
use herald::policy::{Decision, Outcome, Reason, Via};
use herald::store::{LeaseSettings, Messages, NewMessage, PgOptions, PgStore, SledStore, Stores};
use serde_json::json;

/// jemalloc, as the `herald` binary has: the store's figures in BENCHMARKS.md ("session 2,
/// jemalloc") were measured with it, and a writer freeing what other threads allocated is what
/// it changes.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn record(i: usize) -> MessageRecord {
    let now = Utc::now();
    let decision = Decision {
        outcome: Outcome::Allow,
        reason: Reason::Ok,
        rule: "policies/default.toml#response.inside_window".into(),
        policy_version: "0".repeat(64),
        messaging_type: None,
        tag: None,
        utility_template: None,
        via: Via::Recipient,
        not_before: None,
        consent: None,
        trace: Vec::new(),
    };
    MessageRecord {
        id: MessageId::generate(),
        created_at: now,
        client: "bench".into(),
        role: Role::Backend,
        page_id: herald::domain::PageId::parse("100000000000001").expect("a page id"),
        recipient: Recipient::Psid(
            Psid::parse(&format!("{}", 1_000_000 + i % 5000)).expect("psid"),
        ),
        category: Category::Response,
        content: Content::Message(json!({"text": "Your order has shipped."})),
        utility_template: None,
        decision,
        status: MessageStatus::Queued,
        channel: Default::default(),
        fallback: None,
        not_before: Some(now),
        expires_at: None,
        attempts: Vec::new(),
        graph_message_id: None,
        sent_at: None,
        history: Vec::new(),
        campaign: None,
        trace_sha256: None,
        content_sha256: "0".repeat(64),
    }
}

async fn accept(store: &dyn Messages, mut record: MessageRecord) {
    let effects = lifecycle::accepted(&mut record);
    let new = NewMessage {
        record,
        effects,
        idempotency: None,
    };
    store.accept(new).await.expect("accept");
}

/// A durable accept alone, and 64 at once (`together`: how the store joins them).
fn accept_benches(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn Messages>,
    together: &str,
) {
    g.sample_size(20);
    g.bench_function("accept, one writer (durable)", |b| {
        b.to_async(rt).iter_batched(
            || record(0),
            |r| {
                let store = Arc::clone(&store);
                async move { accept(store.as_ref(), r).await }
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function(format!("accept, 64 concurrent writers ({together})"), |b| {
        b.to_async(rt).iter_batched(
            || (0..64).map(record).collect::<Vec<_>>(),
            |records| {
                let store = Arc::clone(&store);
                async move {
                    let tasks: Vec<_> = records
                        .into_iter()
                        .map(|r| {
                            let store = Arc::clone(&store);
                            tokio::spawn(async move { accept(store.as_ref(), r).await })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("task");
                    }
                }
            },
            BatchSize::SmallInput,
        )
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let store = rt.block_on(async {
        Stores::of(
            SledStore::open(
                &dir.path().join("store"),
                herald::domain::audit::Pseudonyms::new(b"bench"),
            )
            .expect("store"),
        )
    });

    let mut g = c.benchmark_group("store");
    accept_benches(&mut g, &rt, Arc::clone(&store.messages), "group commit");
    g.finish();

    // The audit log: 100,000 entries, then reads from its middle and a full verification.
    rt.block_on(async {
        for chunk in 0..100 {
            let entries = (0..1000)
                .map(|i| AuditEntry {
                    at: Utc::now(),
                    message_id: Some(format!("msg_{chunk}_{i}")),
                    outcome: Some("allow".into()),
                    ..AuditEntry::default()
                })
                .collect();
            store.audit.append(entries).await.expect("append");
        }
    });
    let head = rt.block_on(store.audit.head()).expect("head").seq;
    let middle = head / 2;
    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(100));
    g.bench_function("read 100 entries from the middle", |b| {
        b.iter(|| {
            rt.block_on(store.audit.entries(middle, 100))
                .expect("read")
                .len()
        })
    });
    g.throughput(Throughput::Elements(head));
    g.sample_size(10);
    g.bench_function("verify the whole chain", |b| {
        b.iter(|| rt.block_on(store.audit.verify()).expect("verify"))
    });
    g.finish();
}

/// PostgreSQL (a server at `HERALD_BENCH_POSTGRES_URL`, a fresh database): a durable accept
/// alone and under 64 concurrent writers (the batcher), and the outbox's claim rate — 100 due
/// messages claimed under a lease (`FOR UPDATE SKIP LOCKED`) per call.
fn postgres(c: &mut Criterion) {
    let Ok(server) = std::env::var("HERALD_BENCH_POSTGRES_URL") else {
        eprintln!("postgres benches skipped: set HERALD_BENCH_POSTGRES_URL");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (store, database): (Stores, String) = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let name = format!(
            "herald_bench_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create");
        let mut url = url::Url::parse(&server).expect("url");
        url.set_path(&format!("/{name}"));
        let options = PgOptions {
            url: secrecy::SecretString::from(url.to_string()),
            ca_file: None,
            pool_size: 16,
            partitions: 64,
            leases: Some(LeaseSettings {
                lease: std::time::Duration::from_secs(10),
            }),
        };
        let store = PgStore::open(&options, herald::domain::audit::Pseudonyms::new(b"bench"))
            .await
            .expect("open");
        let store = Stores::of(store);
        // The lease rounds a gateway would run: without them the leases run out mid-bench.
        let _ = herald::store::spawn_upkeep(Arc::clone(&store.engine));
        (store, url.to_string())
    });
    let mut g = c.benchmark_group("postgres");
    accept_benches(&mut g, &rt, Arc::clone(&store.messages), "batched");
    // Claims: 10,000 more due messages (and whatever the runs above left); each call claims
    // 100 and the claims are let go of, untimed, before the next.
    rt.block_on(async {
        for _ in 0..100 {
            let tasks: Vec<_> = (0..100)
                .map(|i| {
                    let store = Arc::clone(&store.messages);
                    tokio::spawn(async move { accept(store.as_ref(), record(i)).await })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        }
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("claim 100 due messages", |b| {
        let (store, database) = (Arc::clone(&store.outbox), database.clone());
        b.to_async(&rt).iter_custom(move |iters| {
            let (store, database) = (Arc::clone(&store), database.clone());
            async move {
                let (client, connection) =
                    tokio_postgres::connect(&database, tokio_postgres::NoTls)
                        .await
                        .expect("connect");
                tokio::spawn(connection);
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    client
                        .execute(
                            "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL
                             WHERE claimed_by IS NOT NULL",
                            &[],
                        )
                        .await
                        .expect("let go");
                    let now = Utc::now();
                    let started = std::time::Instant::now();
                    let claimed = store
                        .claim_due(now, 100, chrono::Duration::minutes(5))
                        .await
                        .expect("claim");
                    total += started.elapsed();
                    assert_eq!(claimed.len(), 100);
                }
                total
            }
        })
    });
    g.finish();
    rt.block_on(store.engine.close()).expect("close");
}

/// The engine's floor: sled 0.34 by itself, with no encoding, hashing or bookkeeping, writing
/// what 64 accepted messages need at the least (a 900-byte record, a 600-byte audit entry, an
/// outbox key and a send-history key each) in one transaction across four trees, then
/// flushing. Herald's writer cannot be faster than this.
fn sled_alone(c: &mut Criterion) {
    use sled::Transactional;
    let dir = tempfile::tempdir().expect("dir");
    let db = sled::Config::new()
        .path(dir.path())
        .mode(sled::Mode::HighThroughput)
        .cache_capacity(64 * 1024 * 1024)
        .open()
        .expect("sled");
    let trees: Vec<sled::Tree> = ["messages", "audit", "outbox", "sends"]
        .iter()
        .map(|t| db.open_tree(t).expect("tree"))
        .collect();
    let (record, entry) = (vec![b'r'; 900], vec![b'a'; 600]);
    let mut seq = 0u64;
    let mut g = c.benchmark_group("sled alone");
    g.sample_size(20);
    g.throughput(Throughput::Elements(64));
    g.bench_function("64 messages' least writes, one transaction, flushed", |b| {
        b.iter(|| {
            let first = seq;
            seq += 64;
            trees[..]
                .transaction(|t| {
                    for s in first..first + 64 {
                        let key = s.to_be_bytes();
                        t[0].insert(&key, record.as_slice())?;
                        t[1].insert(&key, entry.as_slice())?;
                        t[2].insert(&key, &[])?;
                        let recipient = (s * 7919 % 5000).to_be_bytes();
                        t[3].insert([&recipient[..], &key[..]].concat(), b"response")?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .expect("transaction");
            db.flush().expect("flush");
        })
    });
    // sled's cheapest atomic write: one batch on one tree, the four kinds apart by a prefix.
    let one = db.open_tree("one").expect("tree");
    g.bench_function(
        "64 messages' least writes, one batch on one tree, flushed",
        |b| {
            b.iter(|| {
                let mut batch = sled::Batch::default();
                for s in seq..seq + 64 {
                    let key = s.to_be_bytes();
                    let recipient = (s * 7919 % 5000).to_be_bytes();
                    batch.insert([&[0u8][..], &key].concat(), record.as_slice());
                    batch.insert([&[1u8][..], &key].concat(), entry.as_slice());
                    batch.insert([&[2u8][..], &key].concat(), &[]);
                    batch.insert([&[3u8][..], &recipient, &key].concat(), b"response");
                }
                seq += 64;
                one.apply_batch(batch).expect("batch");
                db.flush().expect("flush");
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench, sled_alone, postgres);
criterion_main!(benches);
