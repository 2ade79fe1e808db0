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
//!                   page paused? ── yes ──► postponed to the pause's end
//!                                              ▼
//!          page out (its breaker, `breaker.rs`)? ── yes ──► email if the fallback allows,
//!                                              │               else wait for the next probe
//!                                              ▼
//!        pace the page (governor, the policy's per_page) ─► Graph Send API (reqwest)
//!                                              ▼
//!   core: sent / retry_later / settle_failure — lifecycle::apply (status + attempt + audit +
//!         outbox, durable) and what the answer says about the person (domain::recipient)
//! ```
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
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::breaker::{Breakers, Gate};
use super::{retry_delay, GraphClient, SendFailure};
use crate::app::{Herald, Prepared, Processed};
use crate::clients::Mailer;
use crate::configuration::DeliverySettings;
use crate::domain::{Attempt, AttemptOutcome, MessageId, MessageRecord};
use crate::messenger::ErrorClass;
use crate::store::StoreError;
use crate::supervisor::{TASK_DELIVERY, TASK_WORKER};

mod email;

/// How long a campaign's message steps back when its page has no capacity free.
const CAMPAIGN_BACKOFF_MS: i64 = 50;

/// How long a message whose delivery panicked waits before it is tried again.
const PANICKED_RETRY_SECONDS: i64 = 60;

/// After this many panics a message's delivery fails for good.
const MAX_PANICS: u32 = 3;

/// How often a drain looks again at due messages passed over behind their person's message
/// that waits for a retry.
const PASSED_OVER_RECHECK: Duration = Duration::from_millis(5);

/// How long the worker holds a claimed message: far longer than one send takes, so that only a
/// worker that died lets go of it this way.
const CLAIM_LEASE_SECONDS: i64 = 300;

/// One send in flight, counted from its claim until its task ends (also by a panic).
struct InFlight(Arc<Worker>, MessageId);

impl InFlight {
    fn start(worker: Arc<Worker>, id: MessageId) -> InFlight {
        worker.held.lock().insert(id.clone());
        worker.in_flight_count.send_modify(|n| *n += 1);
        InFlight(worker, id)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.held.lock().remove(&self.1);
        self.0
            .in_flight_count
            .send_modify(|n| *n = n.saturating_sub(1));
        self.0.task_done.notify_one();
    }
}

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

/// The pages held back, and when the store was last asked.
#[derive(Default)]
struct PausedPages {
    until: HashMap<String, DateTime<Utc>>,
    read_at: Option<std::time::Instant>,
}

/// How often the pauses are read again from the store: another instance may have paused a
/// page this one took over.
const PAUSES_REFRESH: Duration = Duration::from_secs(1);

/// Each page's pace, following the policy in force: when `[send_rate] per_page` changes (a
/// policy reload), the limiter is built anew at the new rate.
struct Pacer {
    current: Mutex<(u32, Arc<DefaultKeyedRateLimiter<crate::domain::PageId>>)>,
}

impl Pacer {
    fn new(per_second: u32) -> Pacer {
        Pacer {
            current: Mutex::new((
                per_second,
                Arc::new(RateLimiter::keyed(page_quota(per_second))),
            )),
        }
    }

    /// The limiter for `per_second`, the rate the policy in force asks for.
    fn limiter(&self, per_second: u32) -> Arc<DefaultKeyedRateLimiter<crate::domain::PageId>> {
        let mut current = self.current.lock();
        if current.0 != per_second {
            tracing::info!(per_second, "page send rate changed");
            *current = (
                per_second,
                Arc::new(RateLimiter::keyed(page_quota(per_second))),
            );
        }
        Arc::clone(&current.1)
    }
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
        let ids = match self
            .herald
            .store
            .outbox
            .claim_due(self.now(), free, lease)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                self.claims_unsure.store(true, Ordering::SeqCst);
                return Err(e);
            }
        };
        let started = ids.len();
        let mut tasks = Vec::with_capacity(started);
        for id in ids {
            // Counted out when the task ends, however it ends: a send that panicked must not
            // keep shutdown waiting for it.
            tasks.push((InFlight::start(Arc::clone(self), id.clone()), id));
        }
        drop(claiming);
        for (in_flight, id) in tasks {
            let permit = Arc::clone(&self.permits).acquire_owned().await;
            // One span per delivery; `process` adds the page and the recipient's pseudonym.
            let span = tracing::info_span!(
                "delivery",
                message_id = %id,
                page = tracing::field::Empty,
                recipient = tracing::field::Empty,
            );
            tokio::spawn(Arc::clone(self).deliver(id, span, permit.ok(), in_flight));
        }
        Ok(started)
    }

    /// One claimed message's delivery, in a task of its own: processed in an inner task so that
    /// a panic is caught here, then the claim is let go of.
    async fn deliver(
        self: Arc<Self>,
        id: MessageId,
        span: tracing::Span,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        in_flight: InFlight,
    ) {
        let processing = {
            let (worker, id) = (Arc::clone(&self), id.clone());
            tokio::spawn(async move { worker.process(&id).instrument(span).await })
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

    /// A bug met by one message: it is tried again after a while (not at once, where it would
    /// likely panic again) while the others go on, and fails after [`MAX_PANICS`] panics, so
    /// that a panic after Graph took the message cannot send it again and again. Returns
    /// whether its claim may be let go of.
    async fn after_panic(&self, id: &MessageId, e: tokio::task::JoinError) -> bool {
        let message = e
            .try_into_panic()
            .map(|p| crate::supervisor::panic_message(p.as_ref()))
            .unwrap_or_else(|_| "cancelled".to_owned());
        tracing::error!(message_id = %id, panic = %message, "a delivery panicked");
        self.herald
            .metrics
            .task_restarts
            .with_label_values(&[TASK_DELIVERY])
            .inc();
        let panics = {
            let mut panics = self.panics.lock();
            let n = panics.entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let now = self.now();
        let done = if panics >= MAX_PANICS {
            self.panics.lock().remove(id);
            self.give_up(id, panics, now).await
        } else {
            let later = crate::domain::bounds::later(
                now,
                chrono::Duration::seconds(PANICKED_RETRY_SECONDS),
            );
            self.herald.postpone(id, later, now).await.map(|_| ())
        };
        match done {
            Ok(()) => true,
            Err(e) => {
                // Left claimed: the claim runs out and the message is tried then.
                tracing::error!(message_id = %id, error = %e, "recording a delivery that panicked failed");
                false
            }
        }
    }

    /// Fails a message whose delivery panicked [`MAX_PANICS`] times.
    async fn give_up(
        &self,
        id: &MessageId,
        panics: u32,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(record) = self.herald.store.messages.message(id).await? else {
            return Ok(());
        };
        if !record.status.is_pending() {
            return Ok(());
        }
        let why = format!("Herald failed {panics} times while sending this message (a bug, logged); it is not tried again");
        self.herald.fail_for(&record, now, &why).await.map(|_| ())
    }

    /// Reads the pages' pauses from the store when the copy in memory is older than
    /// [`PAUSES_REFRESH`]. A store that does not answer leaves the copy as it is.
    async fn read_pauses(&self) {
        let stale = self
            .paused_pages
            .lock()
            .read_at
            .is_none_or(|at| at.elapsed() >= PAUSES_REFRESH);
        if !stale {
            return;
        }
        match self.herald.store.pauses.paused_pages(self.now()).await {
            Ok(pauses) => {
                let mut paused = self.paused_pages.lock();
                for (page, until) in pauses {
                    let held = paused.until.entry(page).or_insert(until);
                    *held = (*held).max(until);
                }
                paused.read_at = Some(std::time::Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "reading the pages' pauses failed"),
        }
    }

    /// Holds every send to `page` back until `until`, here and in the store.
    async fn pause_page(&self, page: &str, until: DateTime<Utc>) {
        {
            let mut paused = self.paused_pages.lock();
            let held = paused.until.entry(page.to_owned()).or_insert(until);
            *held = (*held).max(until);
        }
        if let Err(e) = self.herald.store.pauses.pause_page(page, until).await {
            // This instance still holds the page back; only a restart would forget it.
            tracing::warn!(page, error = %e, "storing a page's pause failed");
        }
        tracing::warn!(page, until = %until, "Graph rate limit: pausing the page");
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
    pub async fn process(&self, id: &MessageId) -> Result<Processed, StoreError> {
        self.herald.tasks.checkpoint(TASK_DELIVERY);
        let now = self.now();
        let ready = match self.herald.prepare_delivery(id, now).await? {
            Prepared::Send(ready) => ready,
            Prepared::Email(ready) => return self.email(&ready).await,
            Prepared::Done(processed) => return Ok(processed),
        };
        let record = &ready.record;
        let paused_until = self
            .paused_pages
            .lock()
            .until
            .get(record.page_id.as_str())
            .copied();
        if let Some(until) = paused_until.filter(|u| *u > now) {
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

    /// The Graph API answered a send to the record's page (even with a refusal): it is up.
    fn graph_answered(&self, record: &MessageRecord) {
        if self.breakers.answered(&record.page_id) {
            tracing::info!(page = %record.page_id, "the page's Graph API answers again");
            self.count_pages_out(self.now());
        }
    }

    /// Sets the metric of pages whose breaker is open.
    fn count_pages_out(&self, now: DateTime<Utc>) {
        let outage_after = self.herald.policy().outage_after();
        let out = self.breakers.open_pages(now, outage_after);
        self.herald
            .metrics
            .pages_out
            .set(i64::try_from(out).unwrap_or(i64::MAX));
    }

    /// A try failed: when (and whether) to try again is the delivery settings' and the
    /// answer's (`Retry-After`); a rate limit holds the whole page back; a page that keeps
    /// failing transiently is out (its breaker), and what may go by email goes by email.
    async fn failed(
        &self,
        record: &MessageRecord,
        failure: SendFailure,
    ) -> Result<Processed, StoreError> {
        let now = self.now();
        let outage_after = self.herald.policy().outage_after();
        if failure.class == ErrorClass::Transient {
            self.breakers.failed(&record.page_id, now, outage_after);
        } else {
            self.graph_answered(record);
        }
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
            crate::domain::bounds::later_std(now, delay)
        });
        if let (Some(until), ErrorClass::RateLimited) = (retry_at, failure.class) {
            // The limit is the page's, not this message's: hold back every send to it.
            self.pause_page(record.page_id.as_str(), until).await;
        }
        let attempt = Attempt {
            at: now,
            outcome: if retry_at.is_some() {
                AttemptOutcome::Retry
            } else {
                AttemptOutcome::Failed
            },
            http_status: failure.http_status,
            graph_error: failure.graph_error.as_ref().map(|e| e.record()),
            error: Some(format!("{}: {}", failure.class.as_str(), failure.detail)),
            next_attempt_at: retry_at,
            channel: crate::domain::Channel::Messenger,
            reply: None,
        };
        let out_since = self.breakers.open_since(&record.page_id, now, outage_after);
        if let (Some(since), Some(_)) = (out_since, retry_at) {
            // The page is out: rather than wait for a retry that would likely fail too, the
            // message goes by email if the fallback allows it.
            let attempt = Attempt {
                outcome: AttemptOutcome::Failed,
                next_attempt_at: None,
                ..attempt.clone()
            };
            let fell_back = self
                .herald
                .fall_back_on_outage(record, Some(attempt), since, now);
            if fell_back.await? {
                return Ok(Processed::Retrying);
            }
        }
        if let Some(next) = retry_at {
            // Only retries wake the loop at their time: a campaign's message stepping back
            // from a full page is looked at again with the next finished send, so that it does
            // not contend for the page's capacity with the transactional sends waiting for it;
            // a page's pause is long.
            self.expect_back(next);
            return self.herald.retry_later(record, attempt).await;
        }
        self.herald
            .settle_failure(record, attempt, failure.class)
            .await
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

    #[test]
    fn the_pace_follows_the_rate_asked_for() {
        let pacer = Pacer::new(300);
        let first = pacer.limiter(300);
        assert!(
            Arc::ptr_eq(&first, &pacer.limiter(300)),
            "same rate, same limiter"
        );
        let slower = pacer.limiter(20);
        let page = crate::domain::PageId::parse("1").expect("a page id");
        let at_once = (0..20).filter(|_| slower.check_key(&page).is_ok()).count();
        assert_eq!(at_once, 2, "a burst of a tenth of the new rate");
    }
}
