//! Group commit: many writers, one `fsync`.
//!
//! A writer that needs durability takes a ticket after its transaction and waits until a flush
//! that started after the ticket has finished. One task runs the flushes back to back, so under
//! load a single `fsync` covers every transaction committed while the previous one ran.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::StoreError;

#[derive(Debug, Clone, Default)]
struct Progress {
    /// Every ticket up to this one is on disk.
    flushed: u64,
    /// The last ticket whose flush failed (0: none).
    failed: u64,
    /// Why it failed.
    error: Option<StoreError>,
}

/// Hands out tickets and tells their holders when they are durable.
pub(super) struct GroupCommit {
    db: sled::Db,
    stop: CancellationToken,
    issued: AtomicU64,
    wake: Notify,
    progress: watch::Sender<Progress>,
    /// Flush latencies, for `GET /metrics`.
    flush_seconds: prometheus::Histogram,
}

impl GroupCommit {
    /// Starts the flushing task for `db`; it ends when `stop` is cancelled.
    pub fn start(
        db: sled::Db,
        stop: CancellationToken,
        flush_seconds: prometheus::Histogram,
    ) -> (Arc<GroupCommit>, JoinHandle<()>) {
        let gc = Arc::new(GroupCommit {
            db: db.clone(),
            stop: stop.clone(),
            issued: AtomicU64::new(0),
            wake: Notify::new(),
            progress: watch::channel(Progress::default()).0,
            flush_seconds,
        });
        let worker = Arc::clone(&gc);
        let task = tokio::spawn(async move { worker.run(db, stop).await });
        (gc, task)
    }

    async fn run(&self, db: sled::Db, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = stop.cancelled() => break,
            }
            let target = self.issued.load(Ordering::Acquire);
            if target <= self.progress.borrow().flushed {
                continue;
            }
            let timer = self.flush_seconds.start_timer();
            let flushed = db.flush_async().await;
            timer.observe_duration();
            match flushed {
                Ok(_) => {
                    self.progress
                        .send_modify(|p| p.flushed = p.flushed.max(target));
                }
                Err(e) => {
                    tracing::error!(error = %e, "store flush failed");
                    self.progress.send_modify(|p| {
                        p.failed = target;
                        p.error = Some(StoreError::from(e));
                    });
                    // Give the disk a moment before the next writer tries again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        // Whatever was committed before shutdown still reaches the disk.
        let target = self.issued.load(Ordering::Acquire);
        if let Err(e) = db.flush() {
            tracing::error!(error = %e, "final store flush failed");
        } else {
            self.progress
                .send_modify(|p| p.flushed = p.flushed.max(target));
        }
    }

    /// Waits until everything committed before this call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        if self.stop.is_cancelled() {
            // The flushing task is gone: flush for this writer alone.
            self.db.flush_async().await?;
            return Ok(());
        }
        let ticket = self.issued.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.notify_one();
        let mut rx = self.progress.subscribe();
        let progress = rx
            .wait_for(|p| p.flushed >= ticket || p.failed >= ticket)
            .await
            .map_err(|_| StoreError::Closed)?;
        if progress.flushed >= ticket {
            Ok(())
        } else {
            Err(progress.error.clone().unwrap_or(StoreError::Closed))
        }
    }
}
