//! The writer: one thread that commits every queued write (accepts and message changes) in a
//! single sled transaction and a single flush.
//!
//! sled 0.34 takes a process-wide lock for each transaction, and the audit chain needs one
//! writer anyway; one transaction per request made requests queue on that lock. Batching turns
//! the queue into throughput (BENCHMARKS.md).

use std::sync::Weak;

use tokio::sync::{mpsc, oneshot};

use super::messages::EncodedMessage;
use super::{SledStore, StoreError, Tx, TxResult};
use crate::domain::{MessageId, MessageRecord};
use crate::store::{Accepted, MessageChange, MessagesChange};

/// One write waiting for the writer.
pub(super) enum Job {
    Accept {
        new: Box<EncodedMessage>,
        reply: oneshot::Sender<Result<Accepted, StoreError>>,
    },
    Update {
        id: MessageId,
        /// Taken when the job is written: a change runs once.
        change: Option<MessageChange>,
        reply: oneshot::Sender<Result<Option<MessageRecord>, StoreError>>,
    },
    UpdateMany {
        ids: Vec<MessageId>,
        change: MessagesChange,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
}

/// What one job wrote.
enum Written {
    Accepted(Accepted),
    Updated(Option<Box<MessageRecord>>),
    UpdatedMany(usize),
}

impl Written {
    fn changed(&self) -> bool {
        match self {
            Written::Accepted(a) => matches!(a, Accepted::Stored),
            Written::Updated(r) => r.is_some(),
            Written::UpdatedMany(n) => *n > 0,
        }
    }
}

impl Job {
    fn write(&mut self, tx: &mut Tx<'_>) -> TxResult<Written> {
        match self {
            Job::Accept { new, .. } => tx.write_new(new).map(Written::Accepted),
            Job::Update { id, change, .. } => match change.take() {
                Some(change) => tx
                    .update_message(id, change)
                    .map(|r| Written::Updated(r.map(Box::new))),
                None => Ok(Written::Updated(None)),
            },
            Job::UpdateMany { ids, change, .. } => {
                let mut n = 0;
                for id in ids.iter() {
                    if tx.update_message(id, |r| change(r))?.is_some() {
                        n += 1;
                    }
                }
                Ok(Written::UpdatedMany(n))
            }
        }
    }

    /// Answers the caller: `durable` is the outcome of the flush that covers this job. A job
    /// that changed nothing needs no flush and is answered as it is.
    fn answer(self, written: Written, durable: &Result<(), StoreError>) {
        let failed = written.changed().then(|| durable.clone().err()).flatten();
        match (self, written) {
            (Job::Accept { reply, .. }, Written::Accepted(outcome)) => {
                let _ = reply.send(failed.map_or(Ok(outcome), Err));
            }
            (Job::Update { reply, .. }, Written::Updated(record)) => {
                let _ = reply.send(failed.map_or(Ok(record.map(|r| *r)), Err));
            }
            (Job::UpdateMany { reply, .. }, Written::UpdatedMany(n)) => {
                let _ = reply.send(failed.map_or(Ok(n), Err));
            }
            (job, _) => job.fail(StoreError::Closed),
        }
    }

    fn fail(self, error: StoreError) {
        match self {
            Job::Accept { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Job::Update { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Job::UpdateMany { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

impl SledStore {
    /// Queues a job for the writer and waits for its answer.
    pub(super) async fn submit<R>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<R, StoreError>>) -> Job,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(job(reply))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// The most writes one transaction takes.
const MAX_BATCH: usize = 256;

/// Starts the thread that commits queued writes (accepts and message changes) in batches: one
/// sled transaction and one flush for everything queued, rather than one transaction per
/// request under the store's lock. It stops when the store is dropped (its sender closes).
///
/// The thread flushes each batch itself before it takes the next. sled 0.34's flush holds the
/// read side of its process-wide lock until the `fsync` returns, so a transaction started
/// during a flush waits for it, and every reader in the process queues behind that
/// transaction. Committing and flushing in turn on one thread leaves readers (the accept
/// path's facts) free to run during the `fsync`, while the next batch gathers.
pub(super) fn start_writer(
    store: Weak<SledStore>,
    mut queue: mpsc::UnboundedReceiver<Job>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("herald-writer".into())
        .spawn(move || {
            while let Some(first) = queue.blocking_recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                let Some(store) = store.upgrade() else {
                    return;
                };
                let committed = store.commit(|tx| {
                    jobs.iter_mut()
                        .map(|job| job.write(tx))
                        .collect::<TxResult<Vec<_>>>()
                });
                match committed {
                    Ok(written) => {
                        let durable = if written.iter().any(Written::changed) {
                            store.flush()
                        } else {
                            Ok(())
                        };
                        for (job, w) in jobs.into_iter().zip(written) {
                            job.answer(w, &durable);
                        }
                    }
                    Err(e) => {
                        // Nothing of the batch was written; every caller hears why.
                        for job in jobs {
                            job.fail(e.clone());
                        }
                    }
                }
            }
        })
        .map(|_| ())
}
