//! A delivery that panics: counted, postponed, and failed for good after a few panics; the
//! count of sends in flight survives the panic.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Worker;
use crate::domain::MessageId;
use crate::store::StoreError;
use crate::supervisor::TASK_DELIVERY;

/// How long a message whose delivery panicked waits before it is tried again.
const PANICKED_RETRY_SECONDS: i64 = 60;

/// After this many panics a message's delivery fails for good.
const MAX_PANICS: u32 = 3;

/// One send in flight, counted from its claim until its task ends (also by a panic).
pub(super) struct InFlight(Arc<Worker>, MessageId);

impl InFlight {
    pub(super) fn start(worker: Arc<Worker>, id: MessageId) -> InFlight {
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

impl Worker {
    /// A bug met by one message: it is tried again after a while (not at once, where it would
    /// likely panic again) while the others go on, and fails after [`MAX_PANICS`] panics, so
    /// that a panic after Graph took the message cannot send it again and again. Returns
    /// whether its claim may be let go of.
    pub(super) async fn after_panic(&self, id: &MessageId, e: tokio::task::JoinError) -> bool {
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
}
