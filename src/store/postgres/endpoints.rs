//! TEMPORARY — NOT THE POSTGRESQL IMPLEMENTATION. Branch `events-delivery` adds
//! `Stores::endpoints`, which every engine must serve; the real `impl EventEndpoints for PgStore`
//! (tables, fencing per partition) is written on branch `events-pg` and replaces this whole
//! file at merge. Until then, on PostgreSQL there are no event endpoints: none is listed, and
//! every write is refused with an engine error that says so, so that nothing is silently lost.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::domain::audit::AuditEntry;
use crate::domain::endpoint::{
    AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointRecord, PendingDelivery,
};
use crate::store::{EndpointChange, EventEndpoints, StoreError};

fn not_yet() -> StoreError {
    StoreError::Engine(std::sync::Arc::new(std::io::Error::other(
        "event endpoints are not yet stored on PostgreSQL (branch events-pg)",
    )))
}

#[async_trait]
impl EventEndpoints for PgStore {
    async fn create_endpoint(
        &self,
        _endpoint: &EndpointRecord,
        _start: &[(u32, u64)],
        _audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        Err(not_yet())
    }

    async fn endpoint(&self, _id: &str) -> Result<Option<EndpointRecord>, StoreError> {
        Ok(None)
    }

    async fn endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn update_endpoint(
        &self,
        _id: &str,
        _change: EndpointChange,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        Ok(None)
    }

    async fn delete_endpoint(
        &self,
        _id: &str,
        _audit: Vec<AuditEntry>,
    ) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn cursor(&self, _id: &str, _chain: u32) -> Result<u64, StoreError> {
        Err(not_yet())
    }

    async fn due_deliveries(
        &self,
        _id: &str,
        _now: DateTime<Utc>,
        _limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        Ok(Vec::new())
    }

    async fn next_delivery_due(&self, _id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(None)
    }

    async fn record_deliveries(&self, _id: &str, _round: DeliveryRound) -> Result<(), StoreError> {
        Err(not_yet())
    }

    async fn attempts(
        &self,
        _id: &str,
        _status: Option<AttemptStatus>,
        _before: Option<&str>,
        _limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        Ok(Vec::new())
    }
}
