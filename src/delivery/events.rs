//! The event dispatcher: tells each event endpoint what happened, read from the audit log
//! (`domain::event`), signed (`domain::endpoint`), at least once, each endpoint on its own.
//!
//! ```text
//!   supervised task "events" (every 100 ms, and when the core pokes `events_wake`):
//!     reconcile: one lane (task) per enabled endpoint — started, stopped, restarted after a panic
//!     watch:     an audit chain grew ──► wake every lane
//!
//!   lane of one endpoint (a round at a time; a drain takes the same lock):
//!     due retries ── read each event again from its entry ─┐
//!     chain after the endpoint's cursor (≤ 256 entries) ───┴─► events its filter admits
//!         ──► POST, at most `[events] concurrency` at once, 15 s each
//!         ──► record the round in one transaction: attempts, retries due later (5 s, 5 min,
//!             30 min, 2 h, 5 h, 10 h, 10 h, jittered; then `failed`), cursor moved
//!         ──► failing for 5 days? disable (audited: the `endpoint.disabled` event)
//! ```
//!
//! At least once: the cursor moves in the transaction that records what became of every event
//! it passes, so a crash before it sends them all again, with the same `webhook-id`s. A slow or
//! dead endpoint holds back only its own lane: lanes are separate tasks, the client's timeouts
//! are the endpoint's own, and nothing here waits for the outbox's worker or it for this.
//! Time is the core's clock, so tests move time instead of sleeping, and [`EventDispatcher::drain`]
//! lets them wait for "everything due has been attempted".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::Herald;
use crate::configuration::EventsSettings;
use crate::domain::endpoint::{
    retry_delay, AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointRecord, EventRefRecord,
    Outgoing, PendingDelivery,
};
use crate::domain::AttemptId;
use crate::store::StoreError;
use crate::supervisor::TASK_EVENTS;

/// How often the dispatcher looks whether an audit chain grew (one read of each chain's last
/// seq: on sled, a lock and a copy in memory), and whether endpoints changed.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// The most audit entries one round reads.
const READ_BATCH: usize = 256;

/// The most due retries one round takes.
const DUE_BATCH: usize = 256;

/// The longest a lane sleeps without looking at its retries again (the clock may be moved).
const MAX_IDLE: Duration = Duration::from_secs(1);

/// How long a lane waits after its store failed.
const AFTER_ERROR: Duration = Duration::from_secs(1);

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Sent, recorded or moved something: there may be more.
    Worked,
    /// Nothing was due.
    Idle,
    /// The endpoint is gone or disabled: its lane ends.
    Stop,
}

/// One endpoint's task, and what wakes it.
struct Lane {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

/// Delivers events to every endpoint. Drive it with [`EventDispatcher::run`], or from a test
/// with [`EventDispatcher::drain`].
pub struct EventDispatcher {
    herald: Arc<Herald>,
    /// Requests in flight at once to one endpoint.
    concurrency: usize,
    lanes: Mutex<HashMap<String, Lane>>,
    /// One round at a time per endpoint (its lane's, or a drain's).
    rounds: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Each chain's last seq when last looked at.
    seen: Mutex<Vec<(u32, u64)>>,
}

/// One event sent in a round.
struct Sent {
    outgoing: Outgoing,
    /// Attempts made before this one.
    before: u32,
    /// Whether it was a pending delivery (a retry or a replay), to be dropped once settled.
    pending: bool,
    at: chrono::DateTime<chrono::Utc>,
    outcome: super::PostOutcome,
}

impl EventDispatcher {
    pub fn new(herald: Arc<Herald>, settings: &EventsSettings) -> Arc<EventDispatcher> {
        Arc::new(EventDispatcher {
            herald,
            concurrency: settings.concurrency.max(1),
            lanes: Mutex::new(HashMap::new()),
            rounds: Mutex::new(HashMap::new()),
            seen: Mutex::new(Vec::new()),
        })
    }

    /// Keeps one lane per enabled endpoint running until `stop`, then stops them. A lane
    /// stopped in the middle of a round loses nothing: what it sent and did not record is sent
    /// again (at least once).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let wake = Arc::clone(&self.herald.events_wake);
        // The core pokes `events_wake` when an endpoint is made, changed or replayed on this
        // instance: then the endpoints are read again and every lane looks. Otherwise lanes are
        // woken only by a chain that grew (or their own retry timer), and the endpoints are read
        // again once a second (another instance may have changed them).
        let mut poked = true;
        let mut endpoints_read = tokio::time::Instant::now();
        while !stop.is_cancelled() {
            self.herald.tasks.checkpoint(TASK_EVENTS);
            if poked || endpoints_read.elapsed() >= MAX_IDLE {
                endpoints_read = tokio::time::Instant::now();
                if let Err(e) = self.reconcile(&stop, poked).await {
                    tracing::warn!(error = %crate::report::error_chain(&e), "reading the event endpoints failed");
                }
            }
            self.watch_chains().await;
            poked = tokio::select! {
                () = stop.cancelled() => false,
                () = wake.notified() => true,
                () = tokio::time::sleep(WATCH_EVERY) => false,
            };
        }
        let lanes: Vec<Lane> = self.lanes.lock().drain().map(|(_, lane)| lane).collect();
        for lane in lanes {
            lane.task.abort();
            let _ = lane.task.await;
        }
    }

    /// Starts a lane for each enabled endpoint without one (again, after a panic), stops
    /// those of endpoints deleted or disabled, and wakes the others when `wake_all`.
    async fn reconcile(
        self: &Arc<Self>,
        stop: &CancellationToken,
        wake_all: bool,
    ) -> Result<(), StoreError> {
        let endpoints = self.herald.store.endpoints.endpoints().await?;
        let mut lanes = self.lanes.lock();
        lanes.retain(|id, lane| {
            let keep = endpoints.iter().any(|e| &e.id == id && !e.disabled);
            if !keep {
                lane.task.abort();
            }
            keep
        });
        for endpoint in endpoints.iter().filter(|e| !e.disabled) {
            if let Some(lane) = lanes.get_mut(&endpoint.id) {
                if !lane.task.is_finished() {
                    if wake_all {
                        lane.wake.notify_one();
                    }
                    continue;
                }
                if let Some(Err(e)) = (&mut lane.task).now_or_never() {
                    if e.is_panic() {
                        let message = crate::supervisor::panic_message(e.into_panic().as_ref());
                        tracing::error!(endpoint = %endpoint.id, panic = %message, "an event endpoint's lane panicked; it is started again");
                        self.herald
                            .metrics
                            .task_restarts
                            .with_label_values(&[TASK_EVENTS])
                            .inc();
                    }
                }
            }
            let wake = Arc::new(Notify::new());
            let task = tokio::spawn(Arc::clone(self).lane(
                endpoint.id.clone(),
                Arc::clone(&wake),
                stop.clone(),
            ));
            lanes.insert(endpoint.id.clone(), Lane { wake, task });
        }
        Ok(())
    }

    /// Wakes every lane when an audit chain has grown since the last look.
    async fn watch_chains(&self) {
        let Ok(chains) = self.herald.store.audit.chains().await else {
            return;
        };
        let grew = {
            let mut seen = self.seen.lock();
            let grew = *seen != chains;
            *seen = chains;
            grew
        };
        if grew {
            for lane in self.lanes.lock().values() {
                lane.wake.notify_one();
            }
        }
    }

    /// One endpoint's delivery, round after round, until the endpoint goes or `stop`.
    async fn lane(self: Arc<Self>, id: String, wake: Arc<Notify>, stop: CancellationToken) {
        loop {
            let wait = match self.locked_round(&id).await {
                Ok(Round::Stop) => return,
                Ok(Round::Worked) => continue,
                Ok(Round::Idle) => self.idle_wait(&id).await,
                Err(e) => {
                    tracing::warn!(endpoint = %id, error = %crate::report::error_chain(&e), "an event delivery round failed; tried again");
                    AFTER_ERROR
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Until the endpoint's next retry is due, but never longer than [`MAX_IDLE`].
    async fn idle_wait(&self, id: &str) -> Duration {
        let next = self.herald.store.endpoints.next_delivery_due(id).await;
        let now = self.herald.clock.now();
        match next {
            Ok(Some(due)) if due > now => (due - now).to_std().unwrap_or(MAX_IDLE).min(MAX_IDLE),
            Ok(Some(_)) => Duration::ZERO,
            _ => MAX_IDLE,
        }
    }

    async fn locked_round(&self, id: &str) -> Result<Round, StoreError> {
        let lock = Arc::clone(self.rounds.lock().entry(id.to_owned()).or_default());
        let _round = lock.lock().await;
        self.round(id).await
    }

    /// Attempts everything due for every enabled endpoint (retries due by the clock now, and
    /// every event not yet handed over), until a pass finds nothing to do: the test's way to
    /// wait for the dispatcher. An endpoint that does not answer holds the drain up to 15 s
    /// per round; [`EventDispatcher::drain_endpoint`] drains one.
    pub async fn drain(&self) -> Result<(), StoreError> {
        loop {
            let mut worked = false;
            for endpoint in self.herald.store.endpoints.endpoints().await? {
                if !endpoint.disabled {
                    worked |= self.drain_endpoint(&endpoint.id).await?;
                }
            }
            if !worked {
                return Ok(());
            }
        }
    }

    /// Attempts everything due for one endpoint; `true` if anything was.
    pub async fn drain_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        let mut worked = false;
        while self.locked_round(id).await? == Round::Worked {
            worked = true;
        }
        Ok(worked)
    }

    /// One round of one endpoint: its due retries and the next entries of one chain, sent,
    /// then recorded in one transaction.
    async fn round(&self, id: &str) -> Result<Round, StoreError> {
        let herald = &self.herald;
        let Some(endpoint) = herald.store.endpoints.endpoint(id).await? else {
            return Ok(Round::Stop);
        };
        if endpoint.disabled {
            return Ok(Round::Stop);
        }
        let now = herald.clock.now();
        let mut round = DeliveryRound::default();
        let mut work: Vec<(Outgoing, u32, bool)> = Vec::new();
        for pending in herald
            .store
            .endpoints
            .due_deliveries(id, now, DUE_BATCH)
            .await?
        {
            match self.reread(&endpoint, &pending).await? {
                Some(outgoing) => work.push((outgoing, pending.attempts, true)),
                // Pruned from the audit log, or no longer there: nothing to deliver.
                None => round.done.push(pending.event),
            }
        }
        for (chain, last) in herald.store.audit.chains().await? {
            if !herald.store.engine.runs_chain(chain) {
                continue;
            }
            let from = herald.store.endpoints.cursor(id, chain).await?;
            if from >= last {
                continue;
            }
            let entries = herald
                .store
                .audit
                .read_chain(chain, from, READ_BATCH)
                .await?;
            let Some(end) = entries.last().map(|e| e.seq) else {
                continue;
            };
            for entry in &entries {
                work.extend(endpoint.events_in(entry).into_iter().map(|o| (o, 0, false)));
            }
            // A round records one chain's cursor; the next round takes the next chain.
            round.cursor = Some((chain, end));
            break;
        }
        if work.is_empty() && round.done.is_empty() && round.cursor.is_none() {
            return Ok(Round::Idle);
        }
        let sent: Vec<Sent> = stream::iter(work)
            .map(|(outgoing, before, pending)| self.send(&endpoint, outgoing, before, pending))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let attempted = !sent.is_empty();
        let delivered = self.settle(&endpoint, sent, &mut round);
        herald.store.endpoints.record_deliveries(id, round).await?;
        if attempted {
            let failing = delivered == 0;
            if failing != endpoint.failing_since.is_some() {
                herald.endpoint_failing(id, failing).await?;
            }
            if failing
                && endpoint.gives_up(herald.clock.now())
                && herald.give_up_endpoint(id).await?
            {
                return Ok(Round::Stop);
            }
        }
        Ok(Round::Worked)
    }

    /// A pending delivery's event, read again from its audit entry.
    async fn reread(
        &self,
        endpoint: &EndpointRecord,
        pending: &PendingDelivery,
    ) -> Result<Option<Outgoing>, StoreError> {
        let event = pending.event;
        let entries = self
            .herald
            .store
            .audit
            .read_chain(event.chain, event.seq.saturating_sub(1), 1)
            .await?;
        Ok(entries
            .first()
            .filter(|e| e.seq == event.seq)
            .and_then(|e| endpoint.event_at(e, event.into())))
    }

    async fn send(
        &self,
        endpoint: &EndpointRecord,
        outgoing: Outgoing,
        before: u32,
        pending: bool,
    ) -> Sent {
        let at = self.herald.clock.now();
        let headers = endpoint.headers(at, &outgoing);
        let outcome = self
            .herald
            .webhooks
            .post(&endpoint.url, &headers, outgoing.body.clone())
            .await;
        Sent {
            outgoing,
            before,
            pending,
            at,
            outcome,
        }
    }

    /// What became of each event sent: attempts, retries and what is done, into `round`;
    /// returns how many were delivered.
    fn settle(
        &self,
        endpoint: &EndpointRecord,
        sent: Vec<Sent>,
        round: &mut DeliveryRound,
    ) -> usize {
        let metrics = &self.herald.metrics;
        let now = self.herald.clock.now();
        let mut delivered = 0;
        for s in sent {
            let event = EventRefRecord::from(s.outgoing.reference);
            let attempt = s.before.saturating_add(1);
            let mut next_attempt_at = None;
            let status = if s.outcome.delivered() {
                delivered += 1;
                metrics
                    .event_delivered
                    .with_label_values(&[&endpoint.id])
                    .inc();
                AttemptStatus::Succeeded
            } else if let Some(delay) = retry_delay(attempt) {
                let due = crate::domain::bounds::later(now, delay);
                next_attempt_at = Some(due);
                round.pending.push(PendingDelivery {
                    event,
                    due,
                    attempts: attempt,
                });
                AttemptStatus::Retrying
            } else {
                metrics
                    .event_failed
                    .with_label_values(&[&endpoint.id])
                    .inc();
                AttemptStatus::Failed
            };
            if s.pending && status != AttemptStatus::Retrying {
                round.done.push(event);
            }
            round.attempts.push(DeliveryAttempt {
                id: AttemptId::generate().to_string(),
                event_id: s.outgoing.id,
                event_type: s.outgoing.kind,
                at: s.at,
                status,
                http_status: s.outcome.status,
                error: s.outcome.error,
                duration_ms: s.outcome.duration_ms,
                attempt,
                next_attempt_at,
            });
        }
        delivered
    }
}
