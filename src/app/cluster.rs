//! Instances sharing one store (PostgreSQL) act as one gateway: the engine's upkeep (lease
//! rounds) runs here as a supervised task, and a policy reload on one instance reaches the
//! others — each instance reloads its own policy files when it sees a reload it has not acted
//! on, and reports the version it runs (`GET /v1/status` lists them).
//!
//! ```text
//!   reload (API or SIGHUP) on A ──► store.engine.publish_policy(version) → generation g
//!   every lease round on B: published generation > the one B acted on?
//!        └─ yes: B reloads its files (audited as the client "cluster"), reports its version
//! ```

use std::sync::atomic::Ordering;

use super::{CommandError, Herald};
use crate::domain::Client;
use crate::domain::Role;
use crate::store::{InstanceState, StoreError};

/// The client a reload that another instance asked for is audited under.
pub const CLUSTER_CLIENT: &str = "cluster";

impl Herald {
    /// At start: the reloads published so far are behind this instance (it has just read its
    /// files), and it says which version it runs.
    pub async fn join_cluster(&self) -> Result<(), StoreError> {
        if let Some((generation, _)) = self.store.engine.published_policy().await? {
            self.policy_generation.store(generation, Ordering::SeqCst);
        }
        self.store
            .engine
            .report_policy(self.policy().version())
            .await
    }

    /// One round of the engine's upkeep, then the policy: reloads when another instance
    /// published a reload this one has not acted on.
    pub async fn maintain(&self) -> Result<(), CommandError> {
        self.store.engine.maintain().await?;
        self.publish_pending().await?;
        if let Some((generation, version)) = self.store.engine.published_policy().await? {
            let seen = self
                .policy_generation
                .fetch_max(generation, Ordering::SeqCst);
            if generation > seen && version != self.policy().version() {
                self.follow_reload(&version).await;
            }
        }
        self.store
            .engine
            .report_policy(self.policy().version())
            .await?;
        Ok(())
    }

    /// Tells the other instances of a reload made here, now or, when the store could not be
    /// reached then, at a later round.
    pub(super) async fn publish_reload(&self, version: &str) {
        *self.unpublished.lock() = Some(version.to_owned());
        if let Err(e) = self.publish_pending().await {
            tracing::warn!(error = %crate::report::error_chain(&e), "the other instances will hear of the policy reload at a later round");
        }
    }

    async fn publish_pending(&self) -> Result<(), StoreError> {
        let Some(version) = self.unpublished.lock().clone() else {
            return Ok(());
        };
        let generation = self.store.engine.publish_policy(&version).await?;
        self.policy_generation
            .fetch_max(generation, Ordering::SeqCst);
        {
            let mut unpublished = self.unpublished.lock();
            if unpublished.as_deref() == Some(version.as_str()) {
                *unpublished = None;
            }
        }
        self.store.engine.report_policy(&version).await
    }

    /// Another instance reloaded its policy: reload ours from our files.
    async fn follow_reload(&self, published: &str) {
        let operator = Client {
            name: CLUSTER_CLIENT.to_owned(),
            role: Role::Admin,
        };
        match self.load_policy(&operator).await {
            Ok(version) if version == published => {
                tracing::info!(%version, "policy reloaded: another instance reloaded it");
            }
            Ok(version) => tracing::warn!(
                %version, %published,
                "policy reloaded, but this instance's policy files differ from the instance that published the reload"
            ),
            Err(e) => tracing::error!(
                error = %crate::report::error_chain(&e),
                "another instance reloaded the policy; this instance's files could not be loaded"
            ),
        }
    }

    /// The instances sharing the store and the policy each runs; with one instance (sled), this
    /// one.
    pub async fn instances(&self) -> Result<Vec<InstanceState>, StoreError> {
        let alive = self.store.engine.instances().await?;
        Ok(if alive.is_empty() {
            vec![InstanceState {
                id: "local".to_owned(),
                alive_until: None,
                policy_version: Some(self.policy().version().to_owned()),
            }]
        } else {
            alive
        })
    }
}
