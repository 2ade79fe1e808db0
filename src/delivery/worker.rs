//! The delivery worker: it claims due work, paces each page and calls the Graph API. Whether
//! and what to send, and what an answer changes, are the core's (`app/deliver.rs`).
//!
//! ```text
//!   outbox ──claim_due()──► dispatch ──► N tasks in flight (semaphore), each holding its claim
//!                                              │
//!        core: prepare_delivery — settled? expired? campaign paused? deferred: decide again
//!              under the policy in force; the token and the rendered body
//!                                              ▼
//!          on channel email? ── yes ──► the SMTP server (`worker/email.rs`)
//!                                              ▼
//!                   page paused? ── yes ──► postponed to the pause's end (`worker/pages.rs`)
//!                                              ▼
//!          page out (its breaker, `breaker.rs`)? ── yes ──► email if the fallback allows,
//!                                              │               else wait for the next probe
//!                                              ▼
//!        pace the page (governor, the policy's per_page) ─► Graph Send API (reqwest)
//!                                              ▼   (a failure: `worker/failed.rs`)
//!   core: sent / retry_later / settle_failure — lifecycle::apply (status + attempt + audit +
//!         outbox, durable) and what the answer says about the person (domain::recipient)
//! ```
//!
//! A send that panics is postponed, then failed after a few panics (`worker/panics.rs`).
//!
//! Delivery is at-least-once: a message leaves the outbox only in the transaction that records
//! its outcome, so a crash between the Graph call and that write sends it again on restart.
//!
//! Messages to one person (from one page: a lane, see `domain::lifecycle`) reach Messenger in
//! order: a claim hands out at most one message per lane, and none of a lane whose message is
//! in flight or waits for its retry — so the tasks in flight are all for different people, and
//! Messenger's answers to them may overtake each other harmlessly. Everything that puts a
//! claimed message back (a retry, a page's pause, pacing a campaign, a panic) keeps its lane
//! until it is tried again; only a paused campaign's message steps aside
//! (`Event::SetAside`), as a deferred message does.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::breaker::{Breakers, Gate};
use super::GraphClient;
use crate::app::{Herald, Prepared, Processed};
use crate::clients::Mailer;
use crate::configuration::DeliverySettings;
use crate::domain::MessageId;
use crate::store::{Claimed, StoreError};
use crate::supervisor::{TASK_DELIVERY, TASK_WORKER};

mod email;
mod failed;
mod pages;
mod panics;

use self::pages::{Pacer, PausedPages};
use self::panics::InFlight;

/// How long a campaign's message steps back when its page has no capacity free.
const CAMPAIGN_BACKOFF_MS: i64 = 50;

/// How often a drain looks again at due messages passed over behind their person's message
/// that waits for a retry.
const PASSED_OVER_RECHECK: Duration = Duration::from_millis(5);

/// How long the worker holds a claimed message: far longer than one send takes, so that only a
/// worker that died lets go of it this way.
const CLAIM_LEASE_SECONDS: i64 = 300;

/// Empties the outbox. Drive it with [`Worker::run`], or from a test with [`Worker::drain`].
pub struct Worker {
    herald: Arc<Herald>,
    graph: GraphClient,
    /// The email fallback's SMTP client, when `[email]` is configured.
    mailer: Option<Mailer>,
    /// Each page's circuit breaker: a page whose Graph API keeps failing is left alone but
    /// for a probe now and then.
    breakers: Breakers,
    settings: DeliverySettings,
    pacer: Pacer,
    permits: Arc<Semaphore>,
    in_flight_count: watch::Sender<usize>,
    /// Messages whose delivery panicked, and how often (kept until they fail or the process
    /// ends).
    panics: Mutex<HashMap<MessageId, u32>>,
    /// The messages this worker's tasks hold.
    held: Mutex<std::collections::HashSet<MessageId>>,
    /// A claim may be held in the store that no task holds: a claim's answer or a release was
    /// lost with the store's connection. The next dispatch lets go of such claims.
    claims_unsure: std::sync::atomic::AtomicBool,
    /// One dispatch at a time claims and registers what it claimed, so that letting go of
    /// unheld claims never takes one that is being registered.
    claiming: tokio::sync::Mutex<()>,
    /// When the retries this worker scheduled fall due. A message passed over behind one of
    /// them (its person's next) is due already, so the outbox's earliest entry no longer tells
    /// the loop when to look again: these do.
    comebacks: Mutex<std::collections::BTreeSet<DateTime<Utc>>>,
    /// Pages Messenger asked to wait (a 613), as last read from the store, where they are
    /// kept so that a restart or another instance taking the page over waits too.
    paused_pages: Mutex<PausedPages>,
    task_done: Notify,
}

impl Worker {
    pub fn new(
        herald: Arc<Herald>,
        graph: GraphClient,
        mailer: Option<Mailer>,
        settings: DeliverySettings,
    ) -> Arc<Worker> {
        let pacer = Pacer::new(herald.policy().page_rate_per_second());
        Arc::new(Worker {
            herald,
            graph,
            mailer,
            breakers: Breakers::default(),
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            pacer,
            in_flight_count: watch::channel(0).0,
            held: Mutex::new(std::collections::HashSet::new()),
            panics: Mutex::new(HashMap::new()),
            claims_unsure: std::sync::atomic::AtomicBool::new(false),
            claiming: tokio::sync::Mutex::new(()),
            comebacks: Mutex::new(std::collections::BTreeSet::new()),
            paused_pages: Mutex::new(PausedPages::default()),
            task_done: Notify::new(),
        })
    }

    fn now(&self) -> DateTime<Utc> {
        self.herald.clock.now()
    }

    /// Runs until `stop`, then lets in-flight sends finish (their outcome is recorded).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let wake = Arc::clone(&self.herald.outbox_wake);
        while !stop.is_cancelled() {
            self.herald.tasks.checkpoint(TASK_WORKER);
            let dispatched = match self.dispatch_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %crate::report::error_chain(&e), "reading the outbox failed");
                    0
                }
            };
            let now = self.now();
            let next = self.herald.store.outbox.next_due().await.ok().flatten();
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
            if let Some(comeback) = self.next_comeback(now) {
                wait = wait.min(comeback);
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

    /// Claims what is due and starts a task for each; returns how many started.
    pub async fn dispatch_due(self: &Arc<Self>) -> Result<usize, StoreError> {
        let free = self.permits.available_permits();
        if free == 0 {
            // Every slot is busy; a finishing task wakes the loop again.
            return Ok(0);
        }
        let claiming = self.claiming.lock().await;
        if self.claims_unsure.swap(false, Ordering::SeqCst) {
            let held: Vec<MessageId> = self.held.lock().iter().cloned().collect();
            let released = match self.herald.store.outbox.release_others(&held).await {
                Ok(released) => released,
                Err(e) => {
                    self.claims_unsure.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            };
            if released > 0 {
                tracing::info!(
                    released,
                    "claims lost with the store's connection let go of"
                );
            }
        }
        self.read_pauses().await;
        let lease = chrono::Duration::seconds(CLAIM_LEASE_SECONDS);
        let claims = match self
            .herald
            .store
            .outbox
            .claim_due(self.now(), free, lease)
            .await
        {
            Ok(claims) => claims,
            Err(e) => {
                self.claims_unsure.store(true, Ordering::SeqCst);
                return Err(e);
            }
        };
        let started = claims.len();
        let mut tasks = Vec::with_capacity(started);
        for claimed in claims {
            // Counted out when the task ends, however it ends: a send that panicked must not
            // keep shutdown waiting for it.
            tasks.push((
                InFlight::start(Arc::clone(self), claimed.id.clone()),
                claimed,
            ));
        }
        drop(claiming);
        for (in_flight, claimed) in tasks {
            let permit = Arc::clone(&self.permits).acquire_owned().await;
            // One span per delivery; `process` adds the page and the recipient's pseudonym.
            let span = tracing::info_span!(
                "delivery",
                message_id = %claimed.id,
                page = tracing::field::Empty,
                recipient = tracing::field::Empty,
            );
            tokio::spawn(Arc::clone(self).deliver(claimed, span, permit.ok(), in_flight));
        }
        Ok(started)
    }

    /// One claimed message's delivery, in a task of its own: processed in an inner task so that
    /// a panic is caught here, then the claim is let go of.
    async fn deliver(
        self: Arc<Self>,
        claimed: Claimed,
        span: tracing::Span,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        in_flight: InFlight,
    ) {
        let id = claimed.id.clone();
        let processing = {
            let worker = Arc::clone(&self);
            tokio::spawn(async move { worker.process(claimed).instrument(span).await })
        };
        let (mut release, mut unsure) = (true, false);
        match processing.await {
            // The send's record let go of the claim in the same write.
            Ok(Ok(Processed::Sent)) => release = false,
            Ok(Ok(_)) => {}
            // The entry stays in the outbox and is tried again.
            Ok(Err(e)) => {
                unsure = true;
                tracing::error!(message_id = %id, error = %crate::report::error_chain(&e), "delivery bookkeeping failed");
            }
            Err(e) => release = self.after_panic(&id, e).await,
        }
        if release {
            if let Err(e) = self.herald.store.outbox.release(&id).await {
                unsure = true;
                tracing::error!(message_id = %id, error = %e, "releasing a claim failed");
            }
        }
        drop(permit);
        drop(in_flight);
        // Only once the message has left `held`: the next dispatch then lets go of its claim
        // if the store still has it.
        if unsure {
            self.claims_unsure.store(true, Ordering::SeqCst);
        }
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
        let until = crate::domain::bounds::later_std(self.now(), horizon);
        loop {
            let started = self.dispatch_due().await?;
            self.wait_idle().await;
            let now = self.now();
            match self.herald.store.outbox.next_due().await? {
                // Due, yet nothing could be claimed: passed over behind its person's message
                // that waits for a retry (or a page's pause). Looked at again when the retry
                // is due, or shortly, until the horizon passes.
                Some(next) if next <= now && started == 0 => {
                    if now > until {
                        return Ok(());
                    }
                    let wait = self.next_comeback(now).unwrap_or(PASSED_OVER_RECHECK);
                    let left = (until - now).to_std().unwrap_or_default();
                    tokio::time::sleep(wait.min(left).saturating_add(Duration::from_millis(1)))
                        .await;
                }
                Some(next) if next <= until => {
                    let wait = (next - now).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
                // The run loop may have claimed something since this drain last waited (its
                // outbox entry is then claimed, not due): wait for it too.
                _ if *self.in_flight_count.borrow() > 0 => {}
                _ => return Ok(()),
            }
        }
    }

    /// Remembers that a message this worker put back is due again at `at` (a retry).
    fn expect_back(&self, at: DateTime<Utc>) {
        self.comebacks.lock().insert(at);
    }

    /// How long until the soonest retry falls due; forgets those due already.
    fn next_comeback(&self, now: DateTime<Utc>) -> Option<Duration> {
        let mut comebacks = self.comebacks.lock();
        let later = comebacks.split_off(&now);
        *comebacks = later;
        let soonest = comebacks.first()?;
        Some((*soonest - now).to_std().unwrap_or_default())
    }

    /// Handles one outbox entry, which the caller holds: the core says whether and what to
    /// send; the worker holds it back while its page is paused, paces the page, calls the
    /// Graph API and reports the answer to the core.
    pub async fn process(&self, claimed: Claimed) -> Result<Processed, StoreError> {
        self.herald.tasks.checkpoint(TASK_DELIVERY);
        let now = self.now();
        let id = &claimed.id.clone();
        let ready = match self.herald.prepare_delivery(claimed, now).await? {
            Prepared::Send(ready) => ready,
            Prepared::Email(ready) => return self.email(&ready).await,
            Prepared::Done(processed) => return Ok(processed),
        };
        let record = &ready.record;
        if let Some(until) = self.paused_until(record.page_id.as_str(), now) {
            return self.herald.postpone(id, until, now).await;
        }
        let policy = self.herald.policy();
        let gate = self
            .breakers
            .gate(&record.page_id, now, policy.outage_after());
        if gate != Gate::Closed {
            // A page goes out (or stays out) only here; it comes back in `graph_answered`.
            self.count_pages_out(now);
        }
        if let Gate::Open { since, next_probe } = gate {
            // The page's Graph API is out: email if the fallback allows it, else wait for the
            // next probe (holding the person's lane).
            if self
                .herald
                .fall_back_on_outage(record, None, since, now)
                .await?
            {
                return Ok(Processed::Retrying);
            }
            return self.herald.postpone(id, next_probe, now).await;
        }
        let per_second = policy.page_rate_per_second();
        let limiter = self.pacer.limiter(per_second);
        if record.campaign.is_some() {
            // Transactional traffic goes first: a campaign's message takes the page's capacity
            // only when it is free now, and otherwise steps back a little.
            if limiter.check_key(&record.page_id).is_err() {
                self.herald.metrics.pacing_waits.inc();
                let later = crate::domain::bounds::later(
                    now,
                    chrono::Duration::milliseconds(CAMPAIGN_BACKOFF_MS),
                );
                return self.herald.postpone(id, later, now).await;
            }
        } else if limiter.check_key(&record.page_id).is_err() {
            // Counted only when the page is at its rate: a free slot is taken by the check.
            self.herald.metrics.pacing_waits.inc();
            limiter.until_key_ready(&record.page_id).await;
        }
        match self
            .graph
            .send(record.page_id.as_str(), &ready.access_token, &ready.body)
            .await
        {
            Ok(sent) => {
                self.graph_answered(record);
                self.herald.sent(&ready, sent.message_id, self.now()).await
            }
            Err(failure) => self.failed(record, failure).await,
        }
    }
}
