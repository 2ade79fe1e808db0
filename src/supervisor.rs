//! Supervised background tasks.
//!
//! The gateway's long-running tasks (the delivery worker's loop, the campaign scheduler, the
//! webhook retries and retention, the PostgreSQL lease rounds, the policy reload on SIGHUP) run
//! under a [`Supervisor`]. A panic in one of them — a bug, or a value nobody thought to bound —
//! is caught, logged with its message, counted (`herald_task_restarts_total{task}`), and the
//! task is started again after a back-off that doubles up to [`BACKOFF_MAX`] while it keeps
//! dying. `GET /readyz` answers 503 while a task is down, so that a load balancer and an
//! operator see it; shutdown never waits on a task that died.
//!
//! ```text
//!   spawn(name, make) ──► run make() in its own task ──► returned: done (stop was asked)
//!                                  ▲                  └─► panicked: log, count, mark down,
//!                                  └──── back-off (cancellable by stop) ◄──┘
//! ```

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::IntCounterVec;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The supervised tasks' names, as `/readyz` and `herald_task_restarts_total{task}` show them.
pub const TASK_WORKER: &str = "worker";
pub const TASK_CAMPAIGNS: &str = "campaigns";
pub const TASK_BACKGROUND: &str = "background";
pub const TASK_RELOAD: &str = "policy_reload";
pub const TASK_LEASES: &str = "leases";
/// The event dispatcher (its endpoints' lanes are restarted by it, counted under this name).
pub const TASK_EVENTS: &str = "events";
/// Not a long-running task: a single delivery that panicked is counted under this name.
pub const TASK_DELIVERY: &str = "delivery";

/// The first wait before a task that panicked is started again.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);

/// The longest wait between restarts of a task that keeps panicking.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A task that ran this long before it panicked starts again after [`BACKOFF_MIN`]: it was
/// healthy, and this panic is news.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// How one supervised task is doing, as `GET /readyz` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskHealth {
    /// `running`, `restarting` (it panicked and waits for its restart) or `stopped` (it
    /// finished: the gateway is shutting down).
    pub state: &'static str,
    /// How often it was restarted since the gateway started.
    pub restarts: u64,
    /// The message of its last panic, if it ever panicked. Logged, never served: a panic's
    /// message may quote whatever text it failed on, and `/readyz` needs no token.
    #[serde(skip)]
    pub last_panic: Option<String>,
}

/// Starts background tasks and keeps them running. Cheap to clone; clones share their state.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    tasks: Mutex<BTreeMap<&'static str, TaskHealth>>,
    restarts: IntCounterVec,
    /// Panics asked for by a test ([`Supervisor::inject_panics`]), by task.
    injected: Mutex<HashMap<&'static str, u32>>,
    /// Whether a test ever asked: until then a checkpoint reads one atomic and takes no lock.
    armed: std::sync::atomic::AtomicBool,
}

impl Supervisor {
    /// A supervisor that counts restarts in `restarts` (labelled by `task`).
    pub fn new(restarts: IntCounterVec) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                tasks: Mutex::new(BTreeMap::new()),
                restarts,
                injected: Mutex::new(HashMap::new()),
                armed: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Runs `make()` as the task `name` until it returns (which it does once `stop` is
    /// cancelled), starting it anew whenever it panics. The handle ends when the task has
    /// returned or `stop` was cancelled while it waited to restart.
    pub fn spawn<F, Fut>(
        &self,
        name: &'static str,
        stop: CancellationToken,
        make: F,
    ) -> JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let this = self.clone();
        this.set(name, "running", None);
        tokio::spawn(async move {
            let mut backoff = BACKOFF_MIN;
            loop {
                let started = Instant::now();
                match tokio::spawn(make()).await {
                    Ok(()) => {
                        this.set(name, "stopped", None);
                        return;
                    }
                    Err(e) if e.is_panic() => {
                        let message = panic_message(e.into_panic().as_ref());
                        tracing::error!(task = name, panic = %message, "a background task panicked; it will be restarted");
                        this.inner.restarts.with_label_values(&[name]).inc();
                        this.set(name, "restarting", Some(message));
                        if started.elapsed() >= HEALTHY_AFTER {
                            backoff = BACKOFF_MIN;
                        }
                        tokio::select! {
                            () = stop.cancelled() => {
                                this.set(name, "stopped", None);
                                return;
                            }
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        this.set(name, "running", None);
                    }
                    // Cancelled: only the runtime shutting down does that.
                    Err(_) => return,
                }
            }
        })
    }

    fn set(&self, name: &'static str, state: &'static str, panic: Option<String>) {
        let mut tasks = self.inner.tasks.lock();
        let health = tasks.entry(name).or_insert(TaskHealth {
            state,
            restarts: 0,
            last_panic: None,
        });
        health.state = state;
        if let Some(message) = panic {
            health.restarts += 1;
            health.last_panic = Some(message);
        }
    }

    /// Every task started so far and how it is doing.
    pub fn health(&self) -> BTreeMap<&'static str, TaskHealth> {
        self.inner.tasks.lock().clone()
    }

    /// The tasks waiting to be restarted after a panic.
    pub fn down(&self) -> Vec<&'static str> {
        self.inner
            .tasks
            .lock()
            .iter()
            .filter(|(_, h)| h.state == "restarting")
            .map(|(name, _)| *name)
            .collect()
    }

    /// Called by a task on each round of its loop: panics when a test asked for it through
    /// [`Supervisor::inject_panics`]. Costs one atomic read when no test asked (it is on the
    /// path of every send).
    pub fn checkpoint(&self, name: &'static str) {
        if !self.inner.armed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let mut injected = self.inner.injected.lock();
        if let Some(left) = injected.get_mut(name) {
            if *left > 0 {
                *left -= 1;
                drop(injected);
                panic!("a panic injected into {name} by a test");
            }
        }
    }

    /// A test hook: the task `name` panics at its next `times` rounds. Nothing in the HTTP API
    /// reaches it.
    pub fn inject_panics(&self, name: &'static str, times: u32) {
        self.inner.injected.lock().insert(name, times);
        self.inner
            .armed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// What a panic said (`panic!("…")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn supervisor() -> Supervisor {
        Supervisor::new(
            IntCounterVec::new(Opts::new("restarts", "restarts"), &["task"]).expect("a counter"),
        )
    }

    #[tokio::test]
    async fn a_task_that_panics_is_restarted_and_counted() {
        let tasks = supervisor();
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicU32::new(0));
        let (seen, done) = (Arc::clone(&runs), stop.clone());
        let handle = tasks.spawn("t", stop.clone(), move || {
            let (seen, done) = (Arc::clone(&seen), done.clone());
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("boom {}", 7);
                }
                done.cancelled().await;
            }
        });
        while runs.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let health = tasks.health();
        assert_eq!(health["t"].restarts, 2);
        assert_eq!(health["t"].last_panic.as_deref(), Some("boom 7"));
        assert_eq!(health["t"].state, "running");
        assert_eq!(tasks.inner.restarts.with_label_values(&["t"]).get(), 2);
        stop.cancel();
        handle.await.expect("the supervisor ends");
        assert_eq!(tasks.health()["t"].state, "stopped");
    }

    #[tokio::test]
    async fn stop_does_not_wait_for_a_restart() {
        let tasks = supervisor();
        let stop = CancellationToken::new();
        tasks.inject_panics("t", u32::MAX);
        let probe = tasks.clone();
        let handle = tasks.spawn("t", stop.clone(), move || {
            let probe = probe.clone();
            async move { probe.checkpoint("t") }
        });
        while tasks.down().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("a dead task does not hold up shutdown")
            .expect("the supervisor ends");
    }

    #[test]
    fn a_panic_message_is_read_from_either_payload() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("owned")), "owned");
        assert_eq!(panic_message(&3_u8), "(a panic without a message)");
    }
}
