//! What an operator looks at first: the outbox's depth and how far behind it is, what came of
//! the sends of the last hour, and the policy in force. Read from the store and the audit log
//! (durable data), so a restarted gateway shows the same hour.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{CommandError, Herald};
use crate::domain::audit::AuditKind;
use crate::domain::bounds;
use crate::metrics::StoredState;
use crate::store::{AuditCursor, AuditFilter, AuditOrder};

/// How far back "the last hour" reaches.
const RECENT: Duration = Duration::hours(1);

/// Audit entries read per page while counting the last hour's attempts.
const STATUS_PAGE: usize = 1_000;

/// At most this many attempts are counted: past it the counts say `truncated`, so that the
/// status page stays cheap on a gateway that sends thousands a second.
const STATUS_MAX_ATTEMPTS: usize = 200_000;

/// The operator's status page (`GET /v1/status`).
#[derive(Debug, Clone, Serialize)]
pub struct OperatorStatus {
    /// The moment the figures were read.
    pub at: DateTime<Utc>,
    pub policy_version: String,
    /// The instances sharing the store and the policy version each runs (with sled, this one):
    /// after a reload they should all show the same.
    pub instances: Vec<crate::store::InstanceState>,
    pub audit_entries: u64,
    pub outbox: OutboxStatus,
    pub deliveries: RecentDeliveries,
}

/// The outbox: messages waiting to be sent (queued, deferred or retrying).
#[derive(Debug, Clone, Serialize)]
pub struct OutboxStatus {
    pub depth: u64,
    /// When the earliest waiting message is due; `None` when the outbox is empty.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// How long the earliest due message has been waiting past its moment (0 when nothing is
    /// overdue): a worker that keeps up keeps this near 0.
    pub behind_seconds: f64,
}

/// Attempts at the Graph API over the last hour, by result.
#[derive(Debug, Clone, Serialize)]
pub struct RecentDeliveries {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `sent`, `retry`, `failed` → how many.
    pub by_result: BTreeMap<String, u64>,
    /// Graph errors among them (`code` or `code/subcode`) → how many.
    pub by_graph_error: BTreeMap<String, u64>,
    /// Sends per minute, oldest first: 60 buckets of `sent` attempts.
    pub sent_per_minute: Vec<u64>,
    /// More attempts than are counted were made: the counts are a lower bound.
    pub truncated: bool,
}

impl Herald {
    /// What `GET /metrics` reports from the store: the outbox, campaigns, event endpoints.
    pub async fn stored_state(&self) -> Result<StoredState, CommandError> {
        let now = self.clock.now();
        let oldest_due_seconds = match self.store.outbox.next_due().await? {
            Some(due) if due < now => (now - due).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        Ok(StoredState {
            outbox_depth: self.store.outbox.outbox_len().await?,
            oldest_due_seconds,
            campaigns: self.campaign_progress().await?,
            endpoints: self
                .endpoint_health()
                .await?
                .into_iter()
                .map(|h| (h.id, h.retrying, h.oldest_undelivered_seconds))
                .collect(),
        })
    }

    /// The figures of the operator's status page.
    pub async fn operator_status(&self) -> Result<OperatorStatus, CommandError> {
        let now = self.clock.now();
        let oldest_due_at = self.store.outbox.next_due().await?;
        let behind = oldest_due_at.map_or(0.0, |due| {
            ((now - due).num_milliseconds().max(0) as f64) / 1000.0
        });
        Ok(OperatorStatus {
            at: now,
            policy_version: self.policy().version().to_owned(),
            instances: self.instances().await?,
            audit_entries: self.store.audit.head().await?.seq,
            outbox: OutboxStatus {
                depth: self.store.outbox.outbox_len().await?,
                oldest_due_at,
                behind_seconds: behind,
            },
            deliveries: self.recent_deliveries(now).await?,
        })
    }

    async fn recent_deliveries(
        &self,
        now: DateTime<Utc>,
    ) -> Result<RecentDeliveries, CommandError> {
        let from = bounds::earlier(now, RECENT);
        let filter = AuditFilter {
            kind: Some(AuditKind::Attempt),
            from: Some(from),
            to: Some(now),
            ..AuditFilter::default()
        };
        let mut recent = RecentDeliveries {
            from,
            to: now,
            by_result: BTreeMap::new(),
            by_graph_error: BTreeMap::new(),
            sent_per_minute: vec![0; 60],
            truncated: false,
        };
        let mut cursor: Option<AuditCursor> = None;
        let mut counted = 0;
        loop {
            let page = self
                .store
                .audit
                .query(
                    &filter,
                    AuditOrder::OldestFirst,
                    cursor.as_ref(),
                    STATUS_PAGE,
                )
                .await?;
            for entry in &page.entries {
                let result = entry.outcome.clone().unwrap_or_else(|| "unknown".into());
                if result == "sent" {
                    let minute = (entry.at - from).num_minutes().clamp(0, 59) as usize;
                    recent.sent_per_minute[minute] += 1;
                }
                *recent.by_result.entry(result).or_default() += 1;
                if let Some(e) = &entry.graph_error {
                    let code = match e.subcode {
                        Some(sub) => format!("{}/{sub}", e.code),
                        None => e.code.to_string(),
                    };
                    *recent.by_graph_error.entry(code).or_default() += 1;
                }
            }
            counted += page.entries.len();
            match page.next {
                Some(next) if counted < STATUS_MAX_ATTEMPTS => cursor = Some(next),
                Some(_) => {
                    recent.truncated = true;
                    break;
                }
                None => break,
            }
        }
        Ok(recent)
    }
}
