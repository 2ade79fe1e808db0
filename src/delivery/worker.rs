//! The delivery worker.
//!
//! ```text
//!   outbox ──claim_due()──► dispatch ──► N tasks in flight (semaphore), each holding its claim
//!                                              │
//!                   expired? ── yes ──► expired (lifecycle), never sent
//!                                              ▼
//!        deferred? decide again under the policy in force (Herald::decide)
//!                                              ▼
//!                   page paused? ── yes ──► postponed to the pause's end
//!                                              ▼
//!        pace the page (governor, the policy's per_page) ─► Graph Send API (reqwest)
//!                                              ▼
//!   store.messages.update_message(lifecycle::apply(event)): status + attempt + audit + outbox, durable
//! ```
//!
//! Delivery is at-least-once: a message leaves the outbox only in the transaction that records
//! its outcome, so a crash between the Graph call and that write sends it again on restart.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{retry_delay, GraphClient, SendFailure, Sent};
use crate::app::Herald;
use crate::configuration::DeliverySettings;
use crate::domain::campaign::{CampaignId, CampaignStatus};
use crate::domain::lifecycle::{self, Event, MessageStatus};
use crate::domain::{
    Attempt, AttemptOutcome, ConsentAction, ConsentEvent, ConsentScope, ConsentSource, MessageId,
    MessageRecord, OutboundMessage, PageId, TokenStatus,
};
use crate::messenger::{render, ErrorClass, RenderTarget};
use crate::policy::{Decision, Outcome, Via};
use crate::store::StoreError;
use crate::supervisor::{TASK_DELIVERY, TASK_WORKER};

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
    /// Its time ran out before it could be sent.
    Expired,
    /// Nothing to do (already handled, or gone).
    Skipped,
}

/// How long a campaign's message steps back when its page has no capacity free.
const CAMPAIGN_BACKOFF_MS: i64 = 50;

/// How often a message of a paused campaign is looked at again.
const PAUSED_CAMPAIGN_RECHECK_SECONDS: i64 = 5;

/// How long a message whose delivery panicked waits before it is tried again.
const PANICKED_RETRY_SECONDS: i64 = 60;

/// After this many panics a message's delivery fails for good.
const MAX_PANICS: u32 = 3;

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
    current: Mutex<(u32, Arc<DefaultKeyedRateLimiter<String>>)>,
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
    fn limiter(&self, per_second: u32) -> Arc<DefaultKeyedRateLimiter<String>> {
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
    pub fn new(herald: Arc<Herald>, graph: GraphClient, settings: DeliverySettings) -> Arc<Worker> {
        let pacer = Pacer::new(herald.policy().page_rate_per_second());
        Arc::new(Worker {
            herald,
            graph,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            pacer,
            in_flight_count: watch::channel(0).0,
            held: Mutex::new(std::collections::HashSet::new()),
            panics: Mutex::new(HashMap::new()),
            claims_unsure: std::sync::atomic::AtomicBool::new(false),
            claiming: tokio::sync::Mutex::new(()),
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
                    tracing::error!(error = %crate::error::error_chain(&e), "reading the outbox failed");
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
            Ok(Ok(_)) => {}
            // The entry stays in the outbox and is tried again.
            Ok(Err(e)) => {
                unsure = true;
                tracing::error!(message_id = %id, error = %crate::error::error_chain(&e), "delivery bookkeeping failed");
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
            self.change(id, Event::Postpone(later), now)
                .await
                .map(|_| ())
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
        self.fail(&record, now, &why).await.map(|_| ())
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
            self.dispatch_due().await?;
            self.wait_idle().await;
            match self.herald.store.outbox.next_due().await? {
                Some(next) if next <= until => {
                    let wait = (next - self.now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Handles one outbox entry, which the caller holds.
    pub async fn process(&self, id: &MessageId) -> Result<Processed, StoreError> {
        self.herald.tasks.checkpoint(TASK_DELIVERY);
        let store = &self.herald.store;
        let Some(record) = store.messages.message(id).await? else {
            return Ok(Processed::Skipped);
        };
        let span = tracing::Span::current();
        span.record("page", record.page_id.as_str());
        span.record(
            "recipient",
            self.herald.pseudonym(&record.recipient).as_str(),
        );
        if !record.status.is_pending() {
            // Already settled: only the outbox entry is left to tidy.
            store
                .messages
                .update_message(id, Box::new(|r| lifecycle::tidy(r)))
                .await?;
            return Ok(Processed::Skipped);
        }
        let now = self.now();
        if lifecycle::is_expired(&record, now) {
            self.change(id, Event::Expire, now).await?;
            self.herald.metrics.delivery("expired", None);
            return Ok(Processed::Expired);
        }
        let mut respect_quiet_hours = true;
        if let Some(campaign) = record.campaign.as_deref().and_then(CampaignId::parse) {
            match store.campaigns.campaign(&campaign).await? {
                Some(c) if c.status == CampaignStatus::Cancelled => {
                    self.change(id, Event::Cancel, now).await?;
                    return Ok(Processed::Skipped);
                }
                Some(c) if c.status == CampaignStatus::Paused => {
                    let later = crate::domain::bounds::later(
                        now,
                        chrono::Duration::seconds(PAUSED_CAMPAIGN_RECHECK_SECONDS),
                    );
                    self.change(id, Event::Postpone(later), now).await?;
                    return Ok(Processed::Retrying);
                }
                Some(c) => respect_quiet_hours = c.respect_quiet_hours,
                None => {}
            }
        }
        let page = PageId::parse(&record.page_id)
            .ok()
            .and_then(|p| self.herald.pages.get(&p));
        let Some(page) = page else {
            return self
                .fail(&record, now, "the page is no longer configured")
                .await;
        };
        let decision = if record.status == MessageStatus::Deferred {
            match self
                .decide_again(&record, page, respect_quiet_hours, now)
                .await?
            {
                Ok(decision) => decision,
                Err(processed) => return Ok(processed),
            }
        } else {
            record.decision.clone()
        };
        let paused_until = self.paused_pages.lock().until.get(&record.page_id).copied();
        if let Some(until) = paused_until.filter(|u| *u > now) {
            self.change(id, Event::Postpone(until), now).await?;
            return Ok(Processed::Retrying);
        }
        let token = match decision.via {
            Via::Recipient => None,
            Via::MarketingToken => {
                let token = store
                    .recipients
                    .recipient(&record.recipient.key())
                    .await?
                    .and_then(|r| r.marketing_token)
                    .filter(|t| t.status == TokenStatus::Active)
                    .map(|t| t.token);
                match token {
                    Some(t) => Some(t),
                    None => {
                        return self
                            .fail(&record, now, "no active Marketing Messages token")
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
        let per_second = self.herald.policy().page_rate_per_second();
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
                self.change(id, Event::Postpone(later), now).await?;
                return Ok(Processed::Retrying);
            }
        } else if limiter.check_key(&record.page_id).is_err() {
            // Counted only when the page is at its rate: a free slot is taken by the check.
            self.herald.metrics.pacing_waits.inc();
            limiter.until_key_ready(&record.page_id).await;
        }
        match self
            .graph
            .send(&record.page_id, &page.access_token, &body)
            .await
        {
            Ok(sent) => self.sent(&record, sent, token.is_some()).await,
            Err(failure) => self.failed(&record, failure).await,
        }
    }

    /// Applies a lifecycle event to the stored message.
    async fn change(
        &self,
        id: &MessageId,
        event: Event,
        at: DateTime<Utc>,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.herald
            .store
            .messages
            .update_message(id, Box::new(move |r| lifecycle::apply(r, event, at).ok()))
            .await
    }

    /// A deferred message's moment has come: the policy decides again with today's facts.
    /// `Ok(Ok(decision))` means go ahead and send.
    async fn decide_again(
        &self,
        record: &MessageRecord,
        page: &crate::app::Page,
        respect_quiet_hours: bool,
        now: DateTime<Utc>,
    ) -> Result<Result<Decision, Processed>, StoreError> {
        let message = OutboundMessage {
            page_id: Some(page.id.clone()),
            recipient: record.recipient.clone(),
            category: record.category,
            content: record.content.clone(),
            utility_template: record.utility_template.clone(),
            send_at: None,
            expires_at: record.expires_at,
            respect_quiet_hours,
        };
        let decision = self.herald.decide(&message, page, record.role, now).await?;
        let outcome = decision.outcome;
        let Some(updated) = self
            .change(&record.id, Event::Decided(decision), now)
            .await?
        else {
            return Ok(Err(Processed::Skipped));
        };
        Ok(match outcome {
            Outcome::Allow => Ok(updated.decision),
            Outcome::Deny => Err(Processed::Denied),
            Outcome::Defer => Err(Processed::Deferred),
        })
    }

    async fn sent(
        &self,
        record: &MessageRecord,
        sent: Sent,
        via_token: bool,
    ) -> Result<Processed, StoreError> {
        let now = self.now();
        let event = Event::Sent {
            graph_message_id: sent.message_id,
        };
        self.change(&record.id, event, now).await?;
        self.herald.metrics.delivery("sent", None);
        if via_token {
            self.herald
                .store
                .recipients
                .update_recipient(
                    &record.recipient.key(),
                    None,
                    Box::new(move |r| {
                        if let Some(t) = r.marketing_token.as_mut() {
                            t.last_sent_at = Some(now);
                        }
                        Vec::new()
                    }),
                )
                .await?;
        }
        Ok(Processed::Sent)
    }

    async fn failed(
        &self,
        record: &MessageRecord,
        failure: SendFailure,
    ) -> Result<Processed, StoreError> {
        let now = self.now();
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
            self.pause_page(&record.page_id, until).await;
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
        };
        if retry_at.is_some() {
            self.change(&record.id, Event::AttemptFailed(attempt), now)
                .await?;
            let code = failure.graph_error.as_ref().map(|e| e.record().code);
            self.herald.metrics.delivery("retry", code);
            self.herald.metrics.retries.inc();
            return Ok(Processed::Retrying);
        }
        self.settle_failure(record, attempt, failure.class).await
    }

    /// Fails a message for a reason of Herald's own (no Graph call was made).
    async fn fail(
        &self,
        record: &MessageRecord,
        now: DateTime<Utc>,
        why: &str,
    ) -> Result<Processed, StoreError> {
        let attempt = Attempt {
            at: now,
            outcome: AttemptOutcome::Failed,
            http_status: None,
            graph_error: None,
            error: Some(why.to_owned()),
            next_attempt_at: None,
        };
        self.settle_failure(record, attempt, ErrorClass::Permanent)
            .await
    }

    /// Marks the message failed, and learns what the error says about the recipient.
    async fn settle_failure(
        &self,
        record: &MessageRecord,
        attempt: Attempt,
        class: ErrorClass,
    ) -> Result<Processed, StoreError> {
        let now = attempt.at;
        if class == ErrorClass::Auth {
            tracing::error!(page = %record.page_id, error = ?attempt.error, "the Graph API refused the page's credentials or permissions");
        }
        let code = attempt.graph_error.as_ref().map(|e| e.code);
        self.change(&record.id, Event::AttemptFailed(attempt), now)
            .await?;
        self.herald.metrics.delivery("failed", code);
        let key = record.recipient.key();
        match class {
            ErrorClass::Unreachable => {
                self.herald
                    .store
                    .recipients
                    .update_recipient(
                        &key,
                        None,
                        Box::new(move |r| {
                            r.unreachable_since = Some(now);
                            Vec::new()
                        }),
                    )
                    .await?;
                // A block counts against a campaign's opt-out guard: this message's, or the
                // one that reached the person last.
                match record.campaign.as_deref().and_then(CampaignId::parse) {
                    Some(campaign) => self.herald.count_opt_out(&campaign).await?,
                    None => self.herald.note_opt_out(&key).await?,
                }
            }
            ErrorClass::TokenStopped => {
                let event = ConsentEvent {
                    id: ConsentEvent::new_id(),
                    scope: ConsentScope::Marketing,
                    action: ConsentAction::OptOut,
                    source: ConsentSource::NotificationSettings,
                    evidence: json!({"graph_error": "10/1893015", "message_id": record.id}),
                    at: now,
                    client: None,
                };
                let (entry_key, page_id) = (key.clone(), record.page_id.clone());
                self.herald
                    .store
                    .recipients
                    .update_recipient(
                        &key,
                        None,
                        Box::new(move |r| {
                            if let Some(t) = r.marketing_token.as_mut() {
                                t.status = TokenStatus::Stopped;
                            }
                            vec![crate::app::push_consent(
                                r,
                                &entry_key,
                                event,
                                Some(&page_id),
                            )]
                        }),
                    )
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

    #[test]
    fn the_pace_follows_the_rate_asked_for() {
        let pacer = Pacer::new(300);
        let first = pacer.limiter(300);
        assert!(
            Arc::ptr_eq(&first, &pacer.limiter(300)),
            "same rate, same limiter"
        );
        let slower = pacer.limiter(20);
        let page = "1".to_owned();
        let at_once = (0..20).filter(|_| slower.check_key(&page).is_ok()).count();
        assert_eq!(at_once, 2, "a burst of a tenth of the new rate");
    }
}
