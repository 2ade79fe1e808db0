//! The delivery worker.
//!
//! ```text
//!   outbox (sled, by due time) ──due()──► dispatch ──► N tasks in flight (semaphore)
//!                                                          │
//!        deferred? decide again under the policy in force ─┤
//!                                                          ▼
//!                         page paused? ── yes ──► reschedule at the pause's end
//!                                                          ▼
//!                         pace the page (governor, 300/s) ─► Graph Send API (reqwest)
//!                                                          ▼
//!    store.update_message: status + attempt + audit + outbox change, one durable transaction
//! ```
//!
//! Delivery is at-least-once: a message leaves the outbox only in the transaction that records
//! its outcome, so a crash between the Graph call and that write sends it again on restart.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{retry_delay, GraphClient, SendFailure, Sent};
use crate::configuration::DeliverySettings;
use crate::domain::{ConsentScope, ConsentSource, MessageId, OutboundMessage, PageId};
use crate::messenger::{render, ErrorClass, RenderTarget};
use crate::policy::{evaluate, Decision, Outcome, Via};
use crate::service::Herald;
use crate::store::{
    Attempt, AuditEntry, AuditKind, ConsentAction, ConsentEvent, MessageRecord, MessageStatus,
    MessageUpdate, OutboxChange, StoreError, TokenStatus,
};

/// What processing one outbox entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    Sent,
    /// A transient failure or a paused page: back in the outbox for later.
    Retrying,
    Failed,
    /// Decided again and deferred again.
    Deferred,
    /// Decided again and denied.
    Denied,
    /// Nothing to do (already handled, or gone).
    Skipped,
}

/// Empties the outbox. Drive it with [`Worker::run`], or from a test with [`Worker::drain`].
pub struct Worker {
    herald: Arc<Herald>,
    graph: GraphClient,
    settings: DeliverySettings,
    limiter: DefaultKeyedRateLimiter<String>,
    permits: Arc<Semaphore>,
    in_flight: Mutex<HashSet<MessageId>>,
    in_flight_count: watch::Sender<usize>,
    paused_pages: Mutex<HashMap<String, DateTime<Utc>>>,
    task_done: Notify,
    /// Where the next outbox scan starts (see [`Worker::dispatch_due`]).
    cursor: Mutex<Option<Vec<u8>>>,
}

/// Each page's pace: `per_second` on average, in bursts of at most a tenth of a second's worth.
/// Messenger counts its 300/s on arrival; a full second's burst, sent at once, reaches it
/// bunched by the network and the connection pool and is refused (613).
fn page_quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second / 10).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Worker {
    pub fn new(herald: Arc<Herald>, graph: GraphClient, settings: DeliverySettings) -> Arc<Worker> {
        let quota = page_quota(herald.policy().page_rate_per_second());
        Arc::new(Worker {
            herald,
            graph,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            limiter: RateLimiter::keyed(quota),
            in_flight: Mutex::new(HashSet::new()),
            in_flight_count: watch::channel(0).0,
            paused_pages: Mutex::new(HashMap::new()),
            task_done: Notify::new(),
            cursor: Mutex::new(None),
        })
    }

    /// Whether `id` is being handed to the Graph API right now.
    pub fn is_in_flight(&self, id: &MessageId) -> bool {
        self.in_flight.lock().contains(id)
    }

    /// Runs until `stop`, then lets in-flight sends finish (their outcome is recorded).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let wake = Arc::clone(&self.herald.outbox_wake);
        while !stop.is_cancelled() {
            let dispatched = match self.dispatch_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "reading the outbox failed");
                    0
                }
            };
            let now = Utc::now();
            let next = self.herald.store.next_due().ok().flatten();
            // Sleep until the next entry is due, but never past a second, so that a clock jump
            // or a missed wake-up costs at most that.
            let mut wait = Duration::from_secs(1);
            if let Some(next) = next {
                if next > now {
                    wait = wait.min((next - now).to_std().unwrap_or_default());
                } else if dispatched > 0 {
                    continue;
                }
            }
            tokio::select! {
                () = wake.notified() => {}
                () = self.task_done.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => {}
            }
        }
        self.wait_idle().await;
    }

    /// Starts a task for every due entry not already in flight; returns how many started.
    pub async fn dispatch_due(self: &Arc<Self>) -> Result<usize, StoreError> {
        let free = self.permits.available_permits();
        if free == 0 {
            // Every slot is busy; a finishing task wakes the loop again.
            return Ok(0);
        }
        // Continue after the last page instead of rescanning entries already in flight: under
        // load the front of the outbox is all in flight, and every accept and every finished
        // send asks for a dispatch.
        let after = self.cursor.lock().take();
        let page = self.herald.store.due(Utc::now(), after.as_deref(), free)?;
        *self.cursor.lock() = page.next;
        let mut started = 0;
        for id in page.ids {
            if !self.in_flight.lock().insert(id.clone()) {
                continue;
            }
            self.in_flight_count.send_modify(|n| *n += 1);
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                break;
            };
            started += 1;
            let worker = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = worker.process(&id).await {
                    // The entry stays in the outbox and is tried again.
                    tracing::error!(message_id = %id, error = %e, "delivery bookkeeping failed");
                }
                drop(permit);
                worker.in_flight.lock().remove(&id);
                worker
                    .in_flight_count
                    .send_modify(|n| *n = n.saturating_sub(1));
                worker.task_done.notify_one();
            });
        }
        Ok(started)
    }

    /// Waits until no send is in flight.
    pub async fn wait_idle(&self) {
        let mut rx = self.in_flight_count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Processes everything due now and everything that falls due within `horizon` (retries
    /// with short backoff), then returns once nothing is in flight. Tests use it in place of
    /// sleeping.
    pub async fn drain(self: &Arc<Self>, horizon: Duration) -> Result<(), StoreError> {
        let until = Utc::now() + chrono::Duration::from_std(horizon).unwrap_or_default();
        loop {
            self.dispatch_due().await?;
            self.wait_idle().await;
            match self.herald.store.next_due()? {
                Some(next) if next <= until => {
                    let wait = (next - Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Handles one outbox entry.
    pub async fn process(&self, id: &MessageId) -> Result<Processed, StoreError> {
        let store = &self.herald.store;
        let Some(record) = store.message(id)? else {
            return Ok(Processed::Skipped);
        };
        if !record.status.is_pending() {
            // Already settled (e.g. cancelled): only the outbox entry is left to tidy.
            store
                .update_message(id, move |r| {
                    (!r.status.is_pending()).then(|| MessageUpdate::new(OutboxChange::Remove))
                })
                .await?;
            return Ok(Processed::Skipped);
        }
        let now = Utc::now();
        let decision = if record.status == MessageStatus::Deferred {
            match self.decide_again(&record, now).await? {
                Ok(decision) => decision,
                Err(processed) => return Ok(processed),
            }
        } else {
            record.decision.clone()
        };
        let paused_until = self.paused_pages.lock().get(&record.page_id).copied();
        if let Some(until) = paused_until.filter(|u| *u > now) {
            store
                .update_message(id, move |r| {
                    r.status
                        .is_pending()
                        .then(|| MessageUpdate::new(OutboxChange::Reschedule(until)))
                })
                .await?;
            return Ok(Processed::Retrying);
        }
        let page = PageId::parse(&record.page_id)
            .ok()
            .and_then(|p| self.herald.pages.get(&p));
        let Some(page) = page else {
            return self
                .fail(&record, &decision, now, "the page is no longer configured")
                .await;
        };
        let token = match decision.via {
            Via::Recipient => None,
            Via::MarketingToken => {
                let token = store
                    .recipient(&record.recipient.key())?
                    .and_then(|r| r.marketing_token)
                    .filter(|t| t.status == TokenStatus::Active)
                    .map(|t| t.token);
                match token {
                    Some(t) => Some(t),
                    None => {
                        return self
                            .fail(
                                &record,
                                &decision,
                                now,
                                "no active Marketing Messages token",
                            )
                            .await
                    }
                }
            }
        };
        let target = match &token {
            Some(t) => RenderTarget::MarketingToken(t),
            None => RenderTarget::Recipient(&record.recipient),
        };
        let body = render(&record.content, &decision, target);
        self.limiter.until_key_ready(&record.page_id).await;
        match self
            .graph
            .send(&record.page_id, &page.access_token, &body)
            .await
        {
            Ok(sent) => self.sent(&record, &decision, sent, token.is_some()).await,
            Err(failure) => self.failed(&record, &decision, failure).await,
        }
    }

    /// A deferred message's moment has come: the policy decides again with today's facts.
    /// `Ok(Ok(decision))` means go ahead and send.
    async fn decide_again(
        &self,
        record: &MessageRecord,
        now: DateTime<Utc>,
    ) -> Result<Result<Decision, Processed>, StoreError> {
        let policy = self.herald.policy();
        let page = PageId::parse(&record.page_id).ok();
        let region = page
            .as_ref()
            .and_then(|p| self.herald.pages.get(p))
            .and_then(|p| p.region.as_deref());
        let facts = self
            .herald
            .facts(&policy, &record.recipient, region, record.role, now)?;
        let message = OutboundMessage {
            page_id: page,
            recipient: record.recipient.clone(),
            category: record.category,
            content: record.content.clone(),
            utility_template: record.utility_template.clone(),
            send_at: None,
        };
        let mut decision = evaluate(&policy, &message, &facts);
        let outcome = decision.outcome;
        let not_before = decision.not_before.unwrap_or(now);
        // The record keeps the decision; its trace is stored apart (see `Store::trace`).
        let trace = std::mem::take(&mut decision.trace);
        let updated = self
            .herald
            .store
            .update_message(&record.id, move |r| {
                if r.status != MessageStatus::Deferred {
                    return None;
                }
                r.decision = decision.clone();
                let mut update = MessageUpdate::new(match outcome {
                    Outcome::Allow => OutboxChange::Keep,
                    Outcome::Deny => OutboxChange::Remove,
                    Outcome::Defer => OutboxChange::Reschedule(not_before),
                });
                match outcome {
                    Outcome::Allow => {
                        r.set_status(MessageStatus::Queued, now);
                        update.counts_as_send = true;
                    }
                    Outcome::Deny => r.set_status(MessageStatus::Denied, now),
                    Outcome::Defer => {}
                }
                update.trace = Some(trace.clone());
                update.audit.push(AuditEntry::decision(r, &decision, now));
                if outcome == Outcome::Deny {
                    update
                        .audit
                        .push(AuditEntry::status(r, MessageStatus::Denied, now));
                }
                Some(update)
            })
            .await?;
        let Some(updated) = updated else {
            return Ok(Err(Processed::Skipped));
        };
        Ok(match outcome {
            Outcome::Allow => Ok(updated.decision),
            Outcome::Deny => Err(Processed::Denied),
            Outcome::Defer => Err(Processed::Deferred),
        })
    }

    fn attempt_entry(record: &MessageRecord, decision: &Decision, attempt: &Attempt) -> AuditEntry {
        AuditEntry {
            outcome: Some(attempt.outcome.clone()),
            policy_version: Some(decision.policy_version.clone()),
            messaging_type: decision.messaging_type.map(|m| m.as_str().to_owned()),
            tag: decision.tag.map(|t| t.as_str().to_owned()),
            graph_message_id: record.graph_message_id.clone(),
            graph_error: attempt.graph_error.clone(),
            detail: attempt.error.clone(),
            ..AuditEntry::about(AuditKind::Attempt, record, attempt.at)
        }
    }

    async fn sent(
        &self,
        record: &MessageRecord,
        decision: &Decision,
        sent: Sent,
        via_token: bool,
    ) -> Result<Processed, StoreError> {
        let now = Utc::now();
        let decision = decision.clone();
        self.herald
            .store
            .update_message(&record.id, move |r| {
                let decision = &decision;
                r.graph_message_id = Some(sent.message_id.clone());
                r.sent_at = Some(now);
                r.decision = decision.clone();
                let attempt = Attempt {
                    at: now,
                    outcome: "sent".into(),
                    http_status: Some(200),
                    graph_error: None,
                    error: None,
                    next_attempt_at: None,
                };
                let mut update = MessageUpdate::new(OutboxChange::Remove);
                update
                    .audit
                    .push(Self::attempt_entry(r, decision, &attempt));
                r.attempts.push(attempt);
                r.set_status(MessageStatus::Sent, now);
                update
                    .audit
                    .push(AuditEntry::status(r, MessageStatus::Sent, now));
                Some(update)
            })
            .await?;
        if via_token {
            self.herald
                .store
                .update_recipient(&record.recipient.key(), None, |r| {
                    if let Some(t) = r.marketing_token.as_mut() {
                        t.last_sent_at = Some(now);
                    }
                    ((), Vec::new())
                })
                .await?;
        }
        Ok(Processed::Sent)
    }

    async fn failed(
        &self,
        record: &MessageRecord,
        decision: &Decision,
        failure: SendFailure,
    ) -> Result<Processed, StoreError> {
        let now = Utc::now();
        let attempts = u32::try_from(record.attempts.len()).unwrap_or(u32::MAX) + 1;
        let retryable = matches!(
            failure.class,
            ErrorClass::Transient | ErrorClass::RateLimited
        );
        let retry_at = (retryable && attempts < self.settings.max_attempts).then(|| {
            let delay = retry_delay(
                attempts,
                self.settings.retry_base(),
                self.settings.retry_max(),
                failure.retry_after,
            );
            now + chrono::Duration::from_std(delay).unwrap_or_default()
        });
        if let (Some(until), ErrorClass::RateLimited) = (retry_at, failure.class) {
            // The limit is the page's, not this message's: hold back every send to it.
            self.paused_pages
                .lock()
                .insert(record.page_id.clone(), until);
            tracing::warn!(page = %record.page_id, until = %until, "Graph rate limit: pausing the page");
        }
        let graph_error = failure.graph_error.as_ref().map(|e| e.record());
        let attempt = Attempt {
            at: now,
            outcome: if retry_at.is_some() {
                "retry"
            } else {
                "failed"
            }
            .into(),
            http_status: failure.http_status,
            graph_error,
            error: Some(format!("{}: {}", failure.class.as_str(), failure.detail)),
            next_attempt_at: retry_at,
        };
        let Some(retry_at) = retry_at else {
            return self
                .settle_failure(record, decision, attempt, failure.class)
                .await;
        };
        let decision = decision.clone();
        self.herald
            .store
            .update_message(&record.id, move |r| {
                let mut update = MessageUpdate::new(OutboxChange::Reschedule(retry_at));
                update
                    .audit
                    .push(Self::attempt_entry(r, &decision, &attempt));
                r.attempts.push(attempt.clone());
                Some(update)
            })
            .await?;
        Ok(Processed::Retrying)
    }

    async fn fail(
        &self,
        record: &MessageRecord,
        decision: &Decision,
        now: DateTime<Utc>,
        why: &str,
    ) -> Result<Processed, StoreError> {
        let attempt = Attempt {
            at: now,
            outcome: "failed".into(),
            http_status: None,
            graph_error: None,
            error: Some(why.to_owned()),
            next_attempt_at: None,
        };
        self.settle_failure(record, decision, attempt, ErrorClass::Permanent)
            .await
    }

    /// Marks the message failed, and learns what the error says about the recipient.
    async fn settle_failure(
        &self,
        record: &MessageRecord,
        decision: &Decision,
        attempt: Attempt,
        class: ErrorClass,
    ) -> Result<Processed, StoreError> {
        let now = attempt.at;
        if class == ErrorClass::Auth {
            tracing::error!(page = %record.page_id, error = ?attempt.error, "the Graph API refused the page's credentials or permissions");
        }
        let owned = (decision.clone(), attempt.clone());
        self.herald
            .store
            .update_message(&record.id, move |r| {
                let (decision, attempt) = &owned;
                let mut update = MessageUpdate::new(OutboxChange::Remove);
                update.audit.push(Self::attempt_entry(r, decision, attempt));
                r.attempts.push(attempt.clone());
                r.set_status(MessageStatus::Failed, now);
                let mut status = AuditEntry::status(r, MessageStatus::Failed, now);
                status.graph_error = attempt.graph_error.clone();
                update.audit.push(status);
                Some(update)
            })
            .await?;
        let key = record.recipient.key();
        match class {
            ErrorClass::Unreachable => {
                self.herald
                    .store
                    .update_recipient(&key, None, |r| {
                        r.unreachable_since = Some(now);
                        ((), Vec::new())
                    })
                    .await?;
            }
            ErrorClass::TokenStopped => {
                self.herald
                    .store
                    .update_recipient(&key, None, |r| {
                        if let Some(t) = r.marketing_token.as_mut() {
                            t.status = TokenStatus::Stopped;
                        }
                        let event = ConsentEvent {
                            scope: ConsentScope::Marketing,
                            action: ConsentAction::OptOut,
                            source: ConsentSource::NotificationSettings,
                            evidence: json!({"graph_error": "10/1893015", "message_id": record.id}),
                            at: now,
                            client: None,
                        };
                        let entry =
                            crate::service::push_consent(r, &key, event, Some(&record.page_id));
                        ((), vec![entry])
                    })
                    .await?;
            }
            _ => {}
        }
        Ok(Processed::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_paced_in_bursts_of_a_tenth_of_its_rate() {
        let limiter = RateLimiter::direct(page_quota(300));
        let at_once = (0..300).filter(|_| limiter.check().is_ok()).count();
        assert_eq!(at_once, 30, "a burst is a tenth of a second's sends");
        let slow = RateLimiter::direct(page_quota(5));
        assert_eq!((0..5).filter(|_| slow.check().is_ok()).count(), 1);
    }
}
