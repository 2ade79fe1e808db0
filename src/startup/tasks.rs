//! The background tasks a gateway runs beside the HTTP server, each supervised: the delivery
//! worker, the event dispatcher, campaigns, upkeep of a shared store, parked webhook events
//! and the audit log's retention, and a policy reload on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::Herald;
use crate::auth::Client;
use crate::delivery::{EventDispatcher, Worker};
use crate::domain::Role;
use crate::supervisor::{
    TASK_BACKGROUND, TASK_CAMPAIGNS, TASK_EVENTS, TASK_LEASES, TASK_RELOAD, TASK_WORKER,
};

/// How often running campaigns are moved along (their slots are finer than this: each tick
/// hands over a second's worth ahead).
const CAMPAIGN_TICK: Duration = Duration::from_millis(100);

/// Moves campaigns along until `stop`.
async fn run_campaigns(herald: Arc<Herald>, stop: CancellationToken) {
    let wake = Arc::clone(&herald.campaigns_wake);
    loop {
        herald.tasks.checkpoint(TASK_CAMPAIGNS);
        if let Err(e) = herald.campaigns_tick().await {
            tracing::warn!(error = %crate::report::error_chain(&e), "moving campaigns along failed");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(CAMPAIGN_TICK) => {}
            () = wake.notified() => {}
        }
    }
}

/// Runs the store's upkeep every `every` until `stop`: on PostgreSQL the lease rounds
/// (heartbeat, leases, the fair share of partitions), and with them whether another instance
/// reloaded the policy.
async fn maintain(herald: Arc<Herald>, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        herald.tasks.checkpoint(TASK_LEASES);
        if let Err(e) = herald.maintain().await {
            tracing::error!(error = %crate::report::error_chain(&e), "the store's upkeep (lease round) failed");
        }
    }
}

/// The client name a reload by signal is audited under.
pub const SIGHUP_CLIENT: &str = "SIGHUP";

/// `kill -HUP` reloads the policy as `POST /v1/policy/reload` does: audited (as the client
/// [`SIGHUP_CLIENT`]), and a bad file keeps the policy in force, with the errors logged. The
/// signal is listened for once, outside the supervised task: a task restarted after a panic
/// then still gets a SIGHUP sent while it was down.
pub(super) fn reload_on_sighup(
    herald: &Arc<Herald>,
    stop: &CancellationToken,
) -> Option<JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload the policy through the API");
            return None;
        };
        let hangups = Arc::new(tokio::sync::Mutex::new(hangups));
        let (herald, stop) = (Arc::clone(herald), stop.clone());
        let tasks = herald.tasks.clone();
        Some(tasks.spawn(TASK_RELOAD, stop.clone(), move || {
            reload_on_each(Arc::clone(&herald), Arc::clone(&hangups), stop.clone())
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = (herald, stop);
        None
    }
}

#[cfg(unix)]
async fn reload_on_each(
    herald: Arc<Herald>,
    hangups: Arc<tokio::sync::Mutex<tokio::signal::unix::Signal>>,
    stop: CancellationToken,
) {
    let operator = Client {
        name: SIGHUP_CLIENT.to_owned(),
        role: Role::Admin,
    };
    let mut hangups = hangups.lock().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            signal = hangups.recv() => if signal.is_none() { return },
        }
        herald.tasks.checkpoint(TASK_RELOAD);
        match herald.reload_policy(&operator).await {
            Ok(version) => tracing::info!(%version, "policy reloaded on SIGHUP"),
            Err(e) => tracing::error!(error = %e, "SIGHUP: the policy was not reloaded"),
        }
    }
}

/// How often the audit log's retention runs (when `[audit] retain_days` is set), and how long
/// after start-up it first runs: not at once, so that start-up stays quick and a test's own
/// retention run is the only one.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
const RETENTION_FIRST: Duration = Duration::from_secs(60);

/// Webhook events that failed to apply are tried again every few seconds; the audit log's
/// retention runs a minute after start-up and hourly.
async fn background_work(herald: Arc<Herald>, stop: CancellationToken) {
    let mut next_retention = std::time::Instant::now() + RETENTION_FIRST;
    loop {
        herald.tasks.checkpoint(TASK_BACKGROUND);
        if std::time::Instant::now() >= next_retention {
            next_retention += RETENTION_EVERY;
            match herald.apply_retention().await {
                Ok(None) => {}
                Ok(Some(r)) => tracing::info!(
                    pruned = r.pruned,
                    through = r.through_seq,
                    "audit retention"
                ),
                Err(e) => tracing::warn!(error = %e, "audit retention failed"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        match herald.retry_parked_events().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(applied = n, "parked webhook events applied"),
            Err(e) => tracing::warn!(error = %e, "retrying parked webhook events failed"),
        }
    }
}

/// The background tasks, each supervised: a panic is logged, counted and the task started
/// again (see `supervisor`), so that one bad value cannot silently stop sending.
pub(super) fn spawn_background(
    herald: &Arc<Herald>,
    worker: &Arc<Worker>,
    dispatcher: &Arc<EventDispatcher>,
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let tasks = &herald.tasks;
    let worker_task = tasks.spawn(TASK_WORKER, stop.clone(), {
        let (worker, stop) = (Arc::clone(worker), stop.clone());
        move || Arc::clone(&worker).run(stop.clone())
    });
    let background = tasks.spawn(TASK_BACKGROUND, stop.clone(), {
        let (herald, stop) = (Arc::clone(herald), stop.clone());
        move || background_work(Arc::clone(&herald), stop.clone())
    });
    let campaigns = tasks.spawn(TASK_CAMPAIGNS, stop.clone(), {
        let (herald, stop) = (Arc::clone(herald), stop.clone());
        move || run_campaigns(Arc::clone(&herald), stop.clone())
    });
    // Each endpoint's lane is a task of the dispatcher's, so that a slow endpoint holds back
    // only itself (see `delivery::events`).
    let events = tasks.spawn(TASK_EVENTS, stop.clone(), {
        let (dispatcher, stop) = (Arc::clone(dispatcher), stop.clone());
        move || Arc::clone(&dispatcher).run(stop.clone())
    });
    let maintenance = herald.store.engine.maintenance_every().map(|every| {
        tasks.spawn(TASK_LEASES, stop.clone(), {
            let (herald, stop) = (Arc::clone(herald), stop.clone());
            move || maintain(Arc::clone(&herald), every, stop.clone())
        })
    });
    let mut tasks = vec![worker_task, background, campaigns, events];
    tasks.extend(maintenance);
    tasks
}
