//! An endpoint's deliveries: a test event, a replay of past events, its attempts and health;
//! and what the dispatcher reports back (an endpoint failing, or given up after five days).

use chrono::{DateTime, Utc};

use super::{invalid, EndpointHealth, Replay, MAX_ATTEMPTS_PAGE, REPLAY_PAGE, TEST_EVENT};
use crate::app::{CommandError, Herald};
use crate::domain::endpoint::{
    AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointFormat, EndpointRecord, EventRefRecord,
    Outgoing, PendingDelivery,
};
use crate::domain::event::{EventRef, TypeFilter};
use crate::domain::AttemptId;
use crate::store::{AuditFilter, AuditOrder, StoreError};

impl Herald {
    /// Disables an endpoint that failed every attempt for five days (the dispatcher's call):
    /// audited, which is the `endpoint.disabled` event the other endpoints hear. `false` when
    /// it was not (any more) to be disabled.
    pub async fn give_up_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let entry = self.endpoint_entry(None, id, "disabled", Some("failing"));
        let disabled = self
            .store
            .endpoints
            .update_endpoint(
                id,
                Box::new(move |record| {
                    if !record.gives_up(now) {
                        return None;
                    }
                    record.disabled = true;
                    record.updated_at = now;
                    Some(vec![entry])
                }),
            )
            .await?;
        if disabled.is_some() {
            tracing::warn!(endpoint = %id, "event endpoint disabled: every attempt failed for 5 days");
            self.events_wake.notify_one();
        }
        Ok(disabled.is_some())
    }

    /// Records whether the endpoint's last round delivered anything: a success forgets since
    /// when it failed; a round of failures only starts the count.
    pub async fn endpoint_failing(&self, id: &str, failing: bool) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.store
            .endpoints
            .update_endpoint(
                id,
                Box::new(move |record| {
                    let since = if failing {
                        Some(record.failing_since.unwrap_or(now))
                    } else {
                        None
                    };
                    (since != record.failing_since).then(|| {
                        record.failing_since = since;
                        Vec::new()
                    })
                }),
            )
            .await?;
        Ok(())
    }

    /// Sends the endpoint a synthetic `endpoint.test` event now, signed as every event is, and
    /// records and returns the attempt. It neither counts towards disabling nor is retried.
    pub async fn test_endpoint(&self, id: &str) -> Result<DeliveryAttempt, CommandError> {
        let record = self.endpoint_record(id).await?;
        let now = self.clock.now();
        let event = crate::domain::event::Event {
            id: format!(
                "evt_test_{}",
                AttemptId::generate().as_str().trim_start_matches("att_")
            ),
            kind: TEST_EVENT.to_owned(),
            at: now,
            data: serde_json::json!({ "endpoint": record.id }),
        };
        let body = serde_json::to_vec(&event).map_err(|e| StoreError::Encode {
            what: "test event",
            source: std::sync::Arc::new(e),
        })?;
        let outgoing = Outgoing {
            reference: EventRef {
                chain: 0,
                seq: 0,
                index: 0,
            },
            id: event.id.clone(),
            kind: event.kind.clone(),
            body,
            hub_signature: None,
        };
        let headers = match record.format {
            // The test event is a Herald event whatever the format, signed the Herald way.
            EndpointFormat::Messenger => EndpointRecord {
                format: EndpointFormat::Herald,
                ..record.clone()
            }
            .headers(now, &outgoing),
            EndpointFormat::Herald => record.headers(now, &outgoing),
        };
        let outcome = self
            .webhooks
            .post(&record.url, &headers, outgoing.body.clone())
            .await;
        let attempt = DeliveryAttempt {
            id: AttemptId::generate().to_string(),
            event_id: outgoing.id,
            event_type: outgoing.kind,
            at: now,
            status: match outcome.delivered() {
                true => AttemptStatus::Succeeded,
                false => AttemptStatus::Failed,
            },
            http_status: outcome.status,
            error: outcome.error,
            duration_ms: outcome.duration_ms,
            attempt: 1,
            next_attempt_at: None,
        };
        let round = DeliveryRound {
            attempts: vec![attempt.clone()],
            ..DeliveryRound::default()
        };
        self.store.endpoints.record_deliveries(id, round).await?;
        Ok(attempt)
    }

    /// Queues every event since `replay.since` that the endpoint hears (and of `replay.types`
    /// when given) as a delivery due now; returns how many. Each keeps its id, so a receiver
    /// that has one already knows it by its `webhook-id`.
    pub async fn replay_events(&self, id: &str, replay: Replay) -> Result<u64, CommandError> {
        let record = self.endpoint_record(id).await?;
        let types = replay
            .types
            .map(|t| TypeFilter::parse(t).map_err(|e| invalid("types", e)))
            .transpose()?;
        let now = self.clock.now();
        let filter = AuditFilter {
            from: Some(replay.since),
            ..AuditFilter::default()
        };
        let mut cursor = None;
        let mut queued = 0u64;
        loop {
            let page = self
                .store
                .audit
                .query(
                    &filter,
                    AuditOrder::OldestFirst,
                    cursor.as_ref(),
                    REPLAY_PAGE,
                )
                .await?;
            let pending: Vec<PendingDelivery> = page
                .entries
                .iter()
                .flat_map(|entry| record.events_in(entry))
                .filter(|o| types.as_ref().is_none_or(|t| t.admits(&o.kind)))
                .map(|o| PendingDelivery {
                    event: EventRefRecord::from(o.reference),
                    due: now,
                    attempts: 0,
                })
                .collect();
            queued += pending.len() as u64;
            if !pending.is_empty() {
                let round = DeliveryRound {
                    pending,
                    ..DeliveryRound::default()
                };
                self.store.endpoints.record_deliveries(id, round).await?;
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        self.events_wake.notify_one();
        Ok(queued)
    }

    /// The endpoint's attempts, newest first, with where the next page starts. `failed` takes
    /// every attempt that failed, whether it is tried again (`retrying`) or not.
    pub async fn endpoint_attempts(
        &self,
        id: &str,
        status: Option<AttemptStatus>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<DeliveryAttempt>, Option<String>), CommandError> {
        self.endpoint_record(id).await?;
        let limit = limit.clamp(1, MAX_ATTEMPTS_PAGE);
        let endpoints = &self.store.endpoints;
        let (mut out, mut before) = (Vec::with_capacity(limit), cursor.map(str::to_owned));
        let failed = status == Some(AttemptStatus::Failed);
        loop {
            let asked = if failed { None } else { status };
            let page = endpoints
                .attempts(id, asked, before.as_deref(), limit)
                .await?;
            let last = page.len() < limit;
            before = page.last().map(|a| a.id.clone());
            out.extend(
                page.into_iter()
                    .filter(|a| !failed || a.status != AttemptStatus::Succeeded),
            );
            if last || out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        let next = (out.len() == limit)
            .then(|| out.last().map(|a| a.id.clone()))
            .flatten();
        Ok((out, next))
    }

    /// How each endpoint's delivery stands: its retries waiting, and how old the oldest event
    /// it has not had is (a retry's, or one not read yet).
    pub async fn endpoint_health(&self) -> Result<Vec<EndpointHealth>, StoreError> {
        let now = self.clock.now();
        let endpoints = self.store.endpoints.endpoints().await?;
        let chains = self.store.audit.chains().await?;
        let mut out = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints.iter().filter(|e| !e.disabled) {
            let far = crate::domain::bounds::later(now, chrono::Duration::days(3650));
            let pending = self
                .store
                .endpoints
                .due_deliveries(&endpoint.id, far, usize::MAX)
                .await?;
            let mut oldest: Option<DateTime<Utc>> = None;
            if let Some(first) = pending.iter().min_by_key(|p| (p.event.chain, p.event.seq)) {
                oldest = self
                    .entry_time(first.event.chain, first.event.seq.saturating_sub(1))
                    .await?;
            }
            for (chain, last) in &chains {
                if !self.store.engine.runs_chain(*chain) {
                    continue;
                }
                let cursor = self.store.endpoints.cursor(&endpoint.id, *chain).await?;
                if cursor < *last {
                    if let Some(at) = self.entry_time(*chain, cursor).await? {
                        oldest = Some(oldest.map_or(at, |o| o.min(at)));
                    }
                }
            }
            out.push(EndpointHealth {
                id: endpoint.id.clone(),
                retrying: pending.len() as u64,
                oldest_undelivered_seconds: oldest.map_or(0.0, |at| {
                    (now - at).num_milliseconds().max(0) as f64 / 1000.0
                }),
            });
        }
        Ok(out)
    }

    /// When the entry after `after` in `chain` was made.
    async fn entry_time(
        &self,
        chain: u32,
        after: u64,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let entries = self.store.audit.read_chain(chain, after, 1).await?;
        Ok(entries.first().map(|e| e.at))
    }
}
