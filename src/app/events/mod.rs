//! Event endpoints, administered (API.md, "Events for business systems"): create, list, read,
//! change, delete, rotate the secret, test, replay, attempts. Delivery itself is the
//! dispatcher's (`delivery/events.rs`); this wakes it when an endpoint changes or is given work.
//!
//! Every change is audited (kind `endpoint`, outcome `created|changed|deleted|secret_rotated|
//! disabled`, detail = the endpoint's id, client = who asked) in the transaction of the change.
//! A secret is shown twice in its life — in the answer to the create or rotate that made it —
//! and never in a listing, an audit entry, a log line or a `Debug` output.
//!
//! This file administers endpoints; `deliveries.rs` tests, replays and reports on their
//! deliveries.

mod deliveries;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{CommandError, Herald};
use crate::domain::audit::{AuditEntry, AuditKind};
use crate::domain::endpoint::{check_url, EndpointFormat, EndpointRecord, MAX_DESCRIPTION};
use crate::domain::event::TypeFilter;
use crate::domain::Client;
use crate::domain::{EndpointId, FieldError};

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
