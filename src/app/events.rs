//! Event endpoints, administered (API.md, "Events for business systems"): create, list, read,
//! change, delete, rotate the secret, test, replay, attempts. Delivery itself is the
//! dispatcher's (`delivery/events.rs`); this wakes it when an endpoint changes or is given work.
//!
//! Every change is audited (kind `endpoint`, outcome `created|changed|deleted|secret_rotated|
//! disabled`, detail = the endpoint's id, client = who asked) in the transaction of the change.
//! A secret is shown twice in its life — in the answer to the create or rotate that made it —
//! and never in a listing, an audit entry, a log line or a `Debug` output.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CommandError, Herald};
use crate::domain::audit::{AuditEntry, AuditKind};
use crate::domain::endpoint::{
    check_url, AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointFormat, EndpointRecord,
    EventRefRecord, Outgoing, PendingDelivery, MAX_DESCRIPTION,
};
use crate::domain::event::{EventRef, TypeFilter};
use crate::domain::Client;
use crate::domain::{AttemptId, EndpointId, FieldError};
use crate::store::{AuditFilter, AuditOrder, StoreError};

/// The type of the event `POST /v1/event-endpoints/{id}/test` sends.
pub const TEST_EVENT: &str = "endpoint.test";

/// Entries read per page of a replay.
const REPLAY_PAGE: usize = 500;

/// The most attempts one listing returns.
pub const MAX_ATTEMPTS_PAGE: usize = 200;

/// An endpoint as asked for; checked by [`Herald::create_endpoint`].
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<String>,
    pub format: EndpointFormat,
    pub description: Option<String>,
}

/// A change to an endpoint: each field given replaces the endpoint's.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub format: Option<EndpointFormat>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
    /// `false` re-enables a disabled endpoint (and forgets since when it failed).
    pub disabled: Option<bool>,
}

/// A replay: every event since a moment (of the types given, else all the endpoint hears).
#[derive(Debug, Clone)]
pub struct Replay {
    pub since: DateTime<Utc>,
    pub types: Option<Vec<String>>,
}

/// An endpoint as the API shows it: never its secret, but in the answer that made it (and
/// never in its `Debug`).
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    /// `ep_…`
    pub id: String,
    pub url: String,
    /// Event types, families (`message.*`) or `*`.
    pub events: Vec<String>,
    /// `herald` (default) or `messenger`.
    #[schema(value_type = String)]
    pub format: EndpointFormat,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub disabled: bool,
    /// Since when every attempt has failed; five days of it disables the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret replaced by the last rotation still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `whsec_…`: only in the answer to the create or the rotation that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl std::fmt::Debug for EndpointView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is left out; the rest is the endpoint's, whose own `Debug` says it.
        f.debug_struct("EndpointView")
            .field("id", &self.id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl EndpointView {
    fn of(record: &EndpointRecord) -> EndpointView {
        EndpointView {
            id: record.id.clone(),
            url: record.url.clone(),
            events: record.events.patterns().to_vec(),
            format: record.format,
            description: record.description.clone(),
            disabled: record.disabled,
            failing_since: record.failing_since,
            previous_secret_valid_until: record.previous_secret.as_ref().map(|(_, until)| *until),
            created_at: record.created_at,
            updated_at: record.updated_at,
            secret: None,
        }
    }

    fn with_secret(record: &EndpointRecord) -> EndpointView {
        EndpointView {
            secret: Some(record.secret.clone()),
            ..EndpointView::of(record)
        }
    }
}

/// How one endpoint's delivery stands, for `GET /metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointHealth {
    pub id: String,
    /// Deliveries waiting for their retry (or a replay's).
    pub retrying: u64,
    /// How old the oldest event not yet delivered is (0 when none waits).
    pub oldest_undelivered_seconds: f64,
}

fn invalid(field: &str, message: impl Into<String>) -> CommandError {
    CommandError::Invalid(vec![FieldError::new(field, message)])
}

fn not_found(id: &str) -> CommandError {
    CommandError::NotFound(format!("no event endpoint {id}"))
}

/// A filter of event types; a `messenger` endpoint hears inbound events only.
fn parse_events(events: Vec<String>, format: EndpointFormat) -> Result<TypeFilter, CommandError> {
    if format == EndpointFormat::Messenger && !events.iter().all(|p| p.starts_with("inbound.")) {
        return Err(invalid(
            "events",
            "a messenger-format endpoint hears inbound events only (inbound.* or inbound.<type>)",
        ));
    }
    TypeFilter::parse(events).map_err(|e| invalid("events", e))
}

fn parse_description(text: Option<String>) -> Result<Option<String>, CommandError> {
    match text {
        Some(d) if d.chars().count() > MAX_DESCRIPTION => Err(invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        )),
        Some(d) if d.chars().any(char::is_control) => {
            Err(invalid("description", "must not hold control characters"))
        }
        Some(d) if d.trim().is_empty() => Ok(None),
        d => Ok(d),
    }
}

impl Herald {
    /// An endpoint's audit entry.
    fn endpoint_entry(
        &self,
        client: Option<&Client>,
        id: &str,
        outcome: &str,
        reason: Option<&str>,
    ) -> AuditEntry {
        AuditEntry {
            at: self.clock.now(),
            kind: AuditKind::Endpoint,
            client: client.map(|c| c.name.clone()),
            outcome: Some(outcome.to_owned()),
            reason: reason.map(str::to_owned),
            detail: Some(id.to_owned()),
            ..AuditEntry::default()
        }
    }

    /// Checks a URL as an endpoint's: its form, then its address (unless private networks are
    /// allowed). The dispatcher checks the address again at each delivery.
    async fn endpoint_url(&self, text: &str) -> Result<String, CommandError> {
        let url = check_url(text).map_err(|e| invalid("url", e.to_string()))?;
        self.webhooks
            .check_address(&url)
            .await
            .map_err(|e| invalid("url", e.to_string()))?;
        Ok(url.to_string())
    }

    async fn endpoint_record(&self, id: &str) -> Result<EndpointRecord, CommandError> {
        self.store
            .endpoints
            .endpoint(id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Creates an endpoint; it hears every event from now on. The answer holds its secret.
    pub async fn create_endpoint(
        &self,
        client: &Client,
        new: NewEndpoint,
    ) -> Result<EndpointView, CommandError> {
        let events = parse_events(new.events, new.format)?;
        let description = parse_description(new.description)?;
        let url = self.endpoint_url(&new.url).await?;
        let now = self.clock.now();
        let record = EndpointRecord {
            id: EndpointId::generate().to_string(),
            url,
            events,
            format: new.format,
            description,
            secret: crate::domain::endpoint::new_secret(),
            previous_secret: None,
            disabled: false,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let start = self.store.audit.chains().await?;
        let entry = self.endpoint_entry(Some(client), &record.id, "created", None);
        self.store
            .endpoints
            .create_endpoint(&record, &start, vec![entry])
            .await?;
        tracing::info!(endpoint = %record.id, "event endpoint created");
        self.events_wake.notify_one();
        Ok(EndpointView::with_secret(&record))
    }

    /// Every endpoint, oldest first.
    pub async fn list_endpoints(&self) -> Result<Vec<EndpointView>, CommandError> {
        let records = self.store.endpoints.endpoints().await?;
        Ok(records.iter().map(EndpointView::of).collect())
    }

    pub async fn endpoint_view(&self, id: &str) -> Result<EndpointView, CommandError> {
        Ok(EndpointView::of(&self.endpoint_record(id).await?))
    }

    /// Changes an endpoint by `patch`. Disabling is audited as `disabled` (and is the
    /// `endpoint.disabled` event); re-enabling forgets since when it failed.
    pub async fn change_endpoint(
        &self,
        client: &Client,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<EndpointView, CommandError> {
        let current = self.endpoint_record(id).await?;
        let format = patch.format.unwrap_or(current.format);
        let events = match (patch.events, patch.format) {
            (Some(events), _) => Some(parse_events(events, format)?),
            // A new format must suit the events already asked for.
            (None, Some(_)) => Some(parse_events(current.events.patterns().to_vec(), format)?),
            (None, None) => None,
        };
        let description = patch.description.map(parse_description).transpose()?;
        let url = match patch.url {
            Some(url) => Some(self.endpoint_url(&url).await?),
            None => None,
        };
        let now = self.clock.now();
        let disabling = patch.disabled == Some(true) && !current.disabled;
        let (outcome, reason) = match disabling {
            true => ("disabled", Some("by_admin")),
            false => ("changed", None),
        };
        let entry = self.endpoint_entry(Some(client), id, outcome, reason);
        let disabled = patch.disabled;
        let changed = self
            .store
            .endpoints
            .update_endpoint(
                id,
                Box::new(move |record| {
                    if let Some(url) = url {
                        record.url = url;
                    }
                    if let Some(events) = events {
                        record.events = events;
                    }
                    record.format = format;
                    if let Some(description) = description {
                        record.description = description;
                    }
                    if let Some(disabled) = disabled {
                        if record.disabled && !disabled {
                            record.failing_since = None;
                        }
                        record.disabled = disabled;
                    }
                    record.updated_at = now;
                    Some(vec![entry])
                }),
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        self.events_wake.notify_one();
        Ok(EndpointView::of(&changed))
    }

    /// Deletes an endpoint with its cursors, deliveries and attempts.
    pub async fn delete_endpoint(&self, client: &Client, id: &str) -> Result<(), CommandError> {
        let entry = self.endpoint_entry(Some(client), id, "deleted", None);
        if !self
            .store
            .endpoints
            .delete_endpoint(id, vec![entry])
            .await?
        {
            return Err(not_found(id));
        }
        self.events_wake.notify_one();
        Ok(())
    }

    /// Gives an endpoint a fresh secret; the old one signs beside it for 24 hours. The answer
    /// holds the new secret.
    pub async fn rotate_endpoint_secret(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<EndpointView, CommandError> {
        let now = self.clock.now();
        let entry = self.endpoint_entry(Some(client), id, "secret_rotated", None);
        let record = self
            .store
            .endpoints
            .update_endpoint(
                id,
                Box::new(move |record| {
                    record.rotate_secret(now);
                    Some(vec![entry])
                }),
            )
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(EndpointView::with_secret(&record))
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_with_its_secret_does_not_debug_print_it() {
        let record = EndpointRecord::example("ep_1");
        let view = EndpointView::with_secret(&record);
        let bare = record.secret.trim_start_matches("whsec_");
        assert!(!format!("{view:?}").contains(bare));
        assert!(!format!("{record:?}").contains(bare));
    }
}
