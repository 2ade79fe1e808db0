//! The schema, embedded in the binary and applied at start (and by `herald migrate`).
//!
//! Each migration runs once, in order, in one transaction with the record that it ran; an
//! advisory lock keeps instances that start together from applying one twice.

use std::collections::HashSet;

use deadpool_postgres::Pool;
use secrecy::ExposeSecret;

use super::{connect, redacted, OpenError, PgOptions, StoreError};
use crate::domain::audit::GENESIS;

/// Every migration, in order: (version, name, SQL).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (
        2,
        "pages and policy",
        include_str!("migrations/0002_pages_and_policy.sql"),
    ),
    (
        3,
        "order per person",
        include_str!("migrations/0003_order_per_person.sql"),
    ),
    (
        4,
        "event endpoints",
        include_str!("migrations/0004_event_endpoints.sql"),
    ),
];

/// The advisory lock Herald's schema changes take (any number, the same everywhere).
const MIGRATION_LOCK: i64 = 0x4845_5241_4c44; // "HERALD"

/// Applies the migrations the database lacks; returns the versions applied (none when it is up
/// to date).
pub(super) async fn apply(pool: &Pool) -> Result<Vec<i32>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('herald_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        tx.batch_execute(
            "CREATE TABLE herald_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    }
    let done: HashSet<i32> = tx
        .query("SELECT version FROM herald_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO herald_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        applied.push(*version);
    }
    tx.commit().await?;
    Ok(applied)
}

/// Applies the migrations, then makes sure the partitions and their audit chains exist, and
/// that the database was made with as many partitions as `partitions` says.
pub(super) async fn prepare(pool: &Pool, partitions: u32) -> Result<(), StoreError> {
    apply(pool).await?;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let wanted = partitions.to_string();
    let found: Option<String> = tx
        .query_opt(
            "SELECT value FROM herald_meta WHERE key = 'partitions'",
            &[],
        )
        .await?
        .map(|row| row.get(0));
    match found {
        Some(found) if found != wanted => {
            return Err(StoreError::Engine(std::sync::Arc::new(std::io::Error::other(
                format!(
                    "the database was made with {found} partitions, and storage.partitions says {wanted}: every instance must use {found}"
                ),
            ))))
        }
        Some(_) => {}
        None => {
            tx.execute(
                "INSERT INTO herald_meta (key, value) VALUES ('partitions', $1)",
                &[&wanted],
            )
            .await?;
        }
    }
    let last = i32::try_from(partitions).unwrap_or(i32::MAX) - 1;
    tx.execute(
        "INSERT INTO partitions (partition) SELECT generate_series(0, $1::integer)
         ON CONFLICT DO NOTHING",
        &[&last],
    )
    .await?;
    tx.execute(
        "INSERT INTO audit_chains (chain, seq, hash, start_seq, start_hash)
         SELECT g, 0, $2, 0, $2 FROM generate_series(0, $1::integer) g
         ON CONFLICT DO NOTHING",
        &[&last, &GENESIS],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `herald migrate`: applies the migrations the database at `options.url` lacks.
pub async fn migrate(options: &PgOptions) -> Result<Vec<i32>, OpenError> {
    let pool = connect(options).await?;
    apply(&pool).await.map_err(|e| OpenError::Unusable {
        url: redacted(options.url.expose_secret()),
        reason: crate::error::error_chain(&e),
    })
}
