//! What the instances sharing the database tell each other besides leases — pages Messenger
//! asked to wait (a 613), the policy every instance should run — and the engine's own part in
//! sharing it: the lease rounds, which pages this instance runs, letting go when it closes.

use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{leases, uint, PgStore, Prepared, StoreError};
use crate::store::{Engine, InstanceState, Pauses};

#[async_trait]
impl Pauses for PgStore {
    async fn pause_page(&self, page_id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.client()
            .await?
            .exec(
                "INSERT INTO page_pauses (page_id, until) VALUES ($1, $2)
                 ON CONFLICT (page_id) DO UPDATE SET until = GREATEST(page_pauses.until, EXCLUDED.until)",
                &[&page_id, &until],
            )
            .await?;
        Ok(())
    }

    async fn paused_pages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows = self
            .client()
            .await?
            .rows(
                "SELECT page_id, until FROM page_pauses WHERE until > $1",
                &[&now],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

#[async_trait]
impl Engine for PgStore {
    async fn publish_policy(&self, version: &str) -> Result<i64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let generation: String = tx
            .one(
                "INSERT INTO herald_meta (key, value) VALUES ('policy_generation', '1')
                 ON CONFLICT (key) DO UPDATE SET value = (herald_meta.value::bigint + 1)::text
                 RETURNING value",
                &[],
            )
            .await?
            .get(0);
        tx.exec(
            "INSERT INTO herald_meta (key, value) VALUES ('policy_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&version],
        )
        .await?;
        tx.commit().await?;
        generation.parse().map_err(|_| {
            StoreError::Engine(std::sync::Arc::new(std::io::Error::other(format!(
                "herald_meta's policy_generation is not a number: {generation}"
            ))))
        })
    }

    async fn published_policy(&self) -> Result<Option<(i64, String)>, StoreError> {
        let rows = self
            .client()
            .await?
            .rows(
                "SELECT key, value FROM herald_meta
                 WHERE key IN ('policy_generation', 'policy_version')",
                &[],
            )
            .await?;
        let value = |name: &str| {
            rows.iter()
                .find(|r| r.get::<_, String>(0) == name)
                .map(|r| r.get::<_, String>(1))
        };
        Ok(value("policy_generation")
            .and_then(|g| g.parse().ok())
            .zip(value("policy_version")))
    }

    async fn report_policy(&self, version: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .exec(
                "UPDATE instances SET policy_version = $2 WHERE id = $1",
                &[&self.instance, &version],
            )
            .await?;
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<InstanceState>, StoreError> {
        let rows = self
            .client()
            .await?
            .rows(
                "SELECT id, heartbeat_until, policy_version FROM instances
                 WHERE heartbeat_until > now() ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| InstanceState {
                id: r.get(0),
                alive_until: Some(r.get(1)),
                policy_version: r.get(2),
            })
            .collect())
    }

    fn maintenance_every(&self) -> Option<std::time::Duration> {
        self.lease_every
    }

    async fn maintain(&self) -> Result<(), StoreError> {
        leases::round(self).await
    }

    fn runs_page(&self, page_id: &str) -> bool {
        self.leases
            .holds(self.partition_of(page_id), Instant::now())
    }

    /// A chain is a partition's (entries without a page go to chain 0). Without leases (a tool),
    /// none.
    fn runs_chain(&self, chain: u32) -> bool {
        self.leases.runs_events(chain, Instant::now())
    }

    async fn size_on_disk(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .one("SELECT pg_database_size(current_database())", &[])
            .await?
            .get(0);
        Ok(uint(n))
    }

    /// Stops the background tasks and lets go of this instance's partitions.
    async fn close(&self) -> Result<(), StoreError> {
        self.stop.cancel();
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if self.leases.enabled() {
            leases::release_all(self).await?;
        }
        Ok(())
    }
}
