//! The writer: one thread that commits every queued write (accepts and message updates) in a
//! single sled transaction and a single flush.
//!
//! sled 0.34 takes a process-wide lock for each transaction, and the audit chain needs one
//! writer anyway; one transaction per request made requests queue on that lock. Batching turns
//! the queue into throughput (BENCHMARKS.md).

use std::sync::Weak;

use tokio::sync::{mpsc, oneshot};

use super::messages::{Accepted, EncodedMessage, MessageUpdate};
use super::records::MessageRecord;
use super::{Store, StoreError, Tx, TxResult};
use crate::domain::MessageId;

/// A message change, decided by the caller (see [`Store::update_message`]).
pub(super) type UpdateFn = Box<dyn Fn(&mut MessageRecord) -> Option<MessageUpdate> + Send>;

/// One write waiting for the writer.
pub(super) enum Job {
    Accept {
        new: Box<EncodedMessage>,
        reply: oneshot::Sender<Result<Accepted, StoreError>>,
    },
    Update {
        id: MessageId,
        f: UpdateFn,
        reply: oneshot::Sender<Result<Option<MessageRecord>, StoreError>>,
    },
}

/// What one job wrote.
enum Written {
    Accepted(Accepted),
    Updated(Option<Box<MessageRecord>>),
}

impl Written {
    fn changed(&self) -> bool {
        matches!(
            self,
            Written::Accepted(Accepted::Stored) | Written::Updated(Some(_))
        )
    }
}

impl Job {
    fn write(&self, tx: &mut Tx<'_>) -> TxResult<Written> {
        match self {
            Job::Accept { new, .. } => tx.write_new(new).map(Written::Accepted),
            Job::Update { id, f, .. } => tx
                .update_message(id, f)
                .map(|r| Written::Updated(r.map(Box::new))),
        }
    }

    /// Answers the caller: `durable` is the outcome of the flush that covers this job.
    fn answer(self, written: Written, durable: Result<(), &StoreError>) {
        let failed = |e: &StoreError| StoreError::Write(e.to_string());
        match (self, written) {
            (Job::Accept { reply, .. }, Written::Accepted(outcome)) => {
                let stored = matches!(outcome, Accepted::Stored);
                let _ = reply.send(match durable {
                    Err(e) if stored => Err(failed(e)),
                    _ => Ok(outcome),
                });
            }
            (Job::Update { reply, .. }, Written::Updated(record)) => {
                let _ = reply.send(match durable {
                    Err(e) if record.is_some() => Err(failed(e)),
                    _ => Ok(record.map(|r| *r)),
                });
            }
            (job, _) => job.fail("the writer mixed up its answers"),
        }
    }

    fn fail(self, why: &str) {
        match self {
            Job::Accept { reply, .. } => {
                let _ = reply.send(Err(StoreError::Write(why.to_owned())));
            }
            Job::Update { reply, .. } => {
                let _ = reply.send(Err(StoreError::Write(why.to_owned())));
            }
        }
    }
}

impl Store {
    /// Queues a job for the writer and waits for its answer.
    pub(super) async fn submit<R>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<R, StoreError>>) -> Job,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(job(reply))
            .map_err(|_| StoreError::Write("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Write("the store writer stopped".into()))?
    }
}

/// The most writes one transaction takes.
const MAX_BATCH: usize = 256;

/// Starts the thread that commits queued writes (accepts and message updates) in batches: one
/// sled transaction and one flush for everything queued, rather than one transaction per
/// request under the store's lock. It stops when the store is dropped (its sender closes).
///
/// The thread flushes each batch itself before it takes the next. sled 0.34's flush holds the
/// read side of its process-wide lock until the `fsync` returns, so a transaction started
/// during a flush waits for it, and every reader in the process queues behind that
/// transaction. Committing and flushing in turn on one thread leaves readers (the accept
/// path's facts) free to run during the `fsync`, while the next batch gathers.
pub(super) fn start_writer(
    store: Weak<Store>,
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
                    jobs.iter()
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
                            job.answer(w, durable.as_ref().map(|_| ()));
                        }
                    }
                    Err(e) => {
                        // Nothing of the batch was written; every caller hears why.
                        let why = e.to_string();
                        for job in jobs {
                            job.fail(&why);
                        }
                    }
                }
            }
        })
        .map(|_| ())
}
