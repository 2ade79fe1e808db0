//! The schema, embedded in the binary and applied at start (and by `herald migrate`).
//!
//! Each migration runs once, in order, in one transaction with the record that it ran; an
//! advisory lock keeps instances that start together from applying one twice.
//!
//! Hand-written on purpose, not `refinery` or an sqlx-style runner: what Herald needs is the
//! fifty lines of `apply` — SQL embedded with `include_str!`, every missing migration in one
//! transaction (all of them apply or none), and a transaction-scoped advisory lock, the same one
//! `prepare`'s partition set-up takes. `refinery` keeps its history in a table of its own, so
//! existing databases would need their `herald_migrations` rows moved (a change to stored data),
//! and sqlx's runner brings sqlx, a second PostgreSQL driver beside `tokio-postgres`. What a
//! runner adds that this lacks is a checksum of each applied migration; here a released
//! migration is never edited (a change is a new one), and a test pins the released files'
//! hashes instead of the database.

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
    (
        5,
        "lean audit indexes",
        include_str!("migrations/0005_lean_audit_indexes.sql"),
    ),
    (
        6,
        "packed values",
        include_str!("migrations/0006_packed_values.sql"),
    ),
    (
        7,
        "personal values in the entry's row",
        include_str!("migrations/0007_personal_values_in_the_entry_row.sql"),
    ),
    (
        8,
        "pseudonyms as bytes",
        include_str!("migrations/0008_pseudonyms_as_bytes.sql"),
    ),
    (
        9,
        "records in the outbox",
        include_str!("migrations/0009_records_in_the_outbox.sql"),
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
        reason: crate::report::error_chain(&e),
    })
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::MIGRATIONS;

    /// The SHA-256 of every released migration. A database that ran one would never run it
    /// again, so editing it would make databases differ by when they were made.
    const RELEASED: &[(i32, &str)] = &[
        (
            1,
            "bfa185294066bd473d86908c845bf678a283837e0a5333cb49e84a1347bac6f8",
        ),
        (
            2,
            "d97e755ace1f811ccab015d7546750575c064d7b8b7ece1fa6ae720dc2779b06",
        ),
        (
            3,
            "84a31c8ff96ff2039e01f4adddb0d8f6d472e6cf0f49e9787ea21be3c0caaa07",
        ),
        (
            4,
            "ff9231c3ec14c2e68d502b5b770307c4bb6e379383d917bc8e0bd8c473184899",
        ),
        (
            5,
            "3336699bb2f27d841025a837c63142b182997799a9f1a3bad2ceef5e25419188",
        ),
        (
            6,
            "e60b526405b2b8c4bf658be71194072c793d81f5c72e7a657750314864e63344",
        ),
        (
            7,
            "7942a664ef6e7e442af6f319ba9e8180e494244151fa638a0e3ea548ca392cfb",
        ),
        (
            8,
            "63444e7df05a8b0f713276225f602d51862c57d9d5d9b08a9f6015b99be5afe5",
        ),
        (
            9,
            "4d93e3b58ae5a85a78900156891d1fb08650fb081f95c41f9349b743fe7c4789",
        ),
    ];

    #[test]
    fn a_released_migration_is_never_edited() {
        for (version, sha256) in RELEASED {
            let sql = MIGRATIONS
                .iter()
                .find(|(v, _, _)| v == version)
                .map(|(_, _, sql)| sql)
                .unwrap_or_else(|| panic!("migration {version} is gone"));
            assert_eq!(
                hex::encode(Sha256::digest(sql.as_bytes())),
                *sha256,
                "migration {version} was edited: add a new migration instead"
            );
        }
    }

    #[test]
    fn versions_run_in_order_each_once() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "versions out of order or repeated: {versions:?}"
        );
    }
}
