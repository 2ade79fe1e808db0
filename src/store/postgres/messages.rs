//! Messages and their idempotency records: reads, locking and fencing for a change, and changes
//! to several messages at once. Accepts and single changes queue for the writer (`batcher.rs`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::batcher::{AcceptJob, UpdateJob};
use super::writes::Rows;
use super::{decode, decode_packed, PgStore, Prepared, StoreError};
use crate::domain::decision::TraceStep;
use crate::domain::{IdempotencyRecord, MessageId, MessageRecord};
use crate::store::{Accepted, MessageChange, Messages, MessagesChange, NewMessage};

/// A message row read for a change, locked until the transaction ends.
pub(super) struct Locked {
    pub record: MessageRecord,
    /// Its outbox row's claim on it, when it has an outbox row: (partition, claimed by, under
    /// epoch).
    pub claim: Option<(i32, Option<String>, Option<i64>)>,
}

impl Locked {
    /// It has an outbox row (and its record is there: see [`Rows`]).
    pub fn in_outbox(&self) -> bool {
        self.claim.is_some()
    }
}

impl PgStore {
    /// Queues a change for the writer (`batcher.rs`); with `release`, the caller's claim on the
    /// message goes with it (see [`Messages::update_and_release`]).
    async fn batched_update(
        &self,
        id: &MessageId,
        change: MessageChange,
        release: bool,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.updates
            .send(UpdateJob {
                id: id.to_string(),
                change,
                release,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Reads and locks messages for a change: the outbox rows of those that have one, then the
    /// `messages` rows of the others (and of those whose outbox row predates migration 9), each
    /// in id order. A message's record is its outbox row's while it has one (see
    /// [`Rows`]); a message that leaves the outbox does so under its outbox row's lock, so a
    /// change waiting for that lock finds the message in `messages` when it gets it.
    pub(super) async fn lock_messages(
        &self,
        tx: &Transaction<'_>,
        ids: &[String],
    ) -> Result<Vec<Locked>, StoreError> {
        // Sent together (one round trip), run in this order.
        let (queued, done) = futures_util::future::try_join(
            tx.rows(
                "SELECT message_id, record, partition, claimed_by, claim_epoch FROM outbox
                 WHERE message_id = ANY($1) ORDER BY message_id FOR UPDATE",
                &[&ids],
            ),
            tx.rows(
                "SELECT id, record FROM messages WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            ),
        )
        .await?;
        let mut kept: HashMap<&str, &[u8]> = done
            .iter()
            .map(|row| (row.get::<_, &str>(0), row.get::<_, &[u8]>(1)))
            .collect();
        let mut locked = Vec::with_capacity(queued.len() + kept.len());
        for row in &queued {
            let id: &str = row.get(0);
            let Some(record) = row
                .get::<_, Option<&[u8]>>(1)
                .or_else(|| kept.get(id).copied())
            else {
                continue;
            };
            kept.remove(id);
            locked.push(Locked {
                record: decode_packed("message", record)?,
                claim: Some((row.get(2), row.get(3), row.get(4))),
            });
        }
        for record in kept.into_values() {
            locked.push(Locked {
                record: decode_packed("message", record)?,
                claim: None,
            });
        }
        locked.sort_by(|a, b| a.record.id.as_str().cmp(b.record.id.as_str()));
        Ok(locked)
    }

    /// The locked messages whose change must be refused: this instance claimed them to send
    /// under an epoch that has passed, so the partition was taken over and the new owner has
    /// them now (fencing). `FOR SHARE` holds the partitions' rows until commit: no takeover in
    /// between.
    pub(super) async fn fenced(
        &self,
        tx: &Transaction<'_>,
        locked: &[Locked],
    ) -> Result<HashMap<String, StoreError>, StoreError> {
        let mine: Vec<(String, i32, i64)> = locked
            .iter()
            .filter_map(|l| match &l.claim {
                Some((partition, Some(by), Some(epoch))) if *by == self.instance => {
                    Some((l.record.id.to_string(), *partition, *epoch))
                }
                _ => None,
            })
            .collect();
        if mine.is_empty() {
            return Ok(HashMap::new());
        }
        let partitions: Vec<i32> = mine.iter().map(|m| m.1).collect();
        let epochs: Vec<i64> = mine.iter().map(|m| m.2).collect();
        let current: HashSet<(i32, i64)> = tx
            .rows(
                "SELECT p.partition, p.epoch FROM partitions p
                     JOIN UNNEST($1::integer[], $2::bigint[]) AS c(partition, epoch)
                       ON p.partition = c.partition AND p.epoch = c.epoch
                     ORDER BY p.partition FOR SHARE OF p",
                &[&partitions, &epochs],
            )
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        Ok(mine
            .into_iter()
            .filter(|(_, partition, epoch)| !current.contains(&(*partition, *epoch)))
            .map(|(id, partition, epoch)| {
                let refused = StoreError::Fenced {
                    partition: u32::try_from(partition).unwrap_or_default(),
                    epoch,
                };
                (id, refused)
            })
            .collect())
    }

    /// Changes the messages `ids` by `change` in one transaction; the changed records.
    async fn change_messages(
        &self,
        mut ids: Vec<String>,
        change: &mut (dyn FnMut(&mut MessageRecord) -> Option<crate::domain::lifecycle::Effects>
                  + Send),
    ) -> Result<Vec<MessageRecord>, StoreError> {
        ids.sort();
        ids.dedup();
        let _timer = self.commit.start_timer();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let mut rows = Rows::default();
        let mut changed = Vec::new();
        let locked = self.lock_messages(&tx, &ids).await?;
        let mut fenced = self.fenced(&tx, &locked).await?;
        for locked in locked {
            let mut record = locked.record.clone();
            let Some(effects) = change(&mut record) else {
                continue;
            };
            if let Some(refused) = fenced.remove(&record.id.to_string()) {
                return Err(refused);
            }
            rows.update(
                self,
                &locked.record,
                locked.in_outbox(),
                &mut record,
                effects,
            )?;
            changed.push(record);
        }
        if changed.is_empty() {
            return Ok(changed);
        }
        rows.write(&tx, self).await?;
        self.finish(tx).await?;
        Ok(changed)
    }
}

#[async_trait]
impl Messages for PgStore {
    async fn accept(&self, new: NewMessage) -> Result<Accepted, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.accepts
            .send(AcceptJob { new, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn message(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        let client = self.client().await?;
        // In its outbox row while it has one (and that row has it: see [`Rows`]).
        let row = client
            .one(
                "SELECT coalesce((SELECT record FROM outbox WHERE message_id = $1),
                                 (SELECT record FROM messages WHERE id = $1))",
                &[&id.as_str()],
            )
            .await?;
        row.get::<_, Option<&[u8]>>(0)
            .map(|record| decode_packed("message", record))
            .transpose()
    }

    async fn trace(&self, record: &MessageRecord) -> Result<Vec<TraceStep>, StoreError> {
        let Some(sha) = record.trace_sha256.as_deref() else {
            return Ok(Vec::new());
        };
        Ok(self
            .read_json(
                "decision trace",
                "SELECT trace FROM traces WHERE sha256 = $1",
                &sha,
            )
            .await?
            .unwrap_or_default())
    }

    async fn idempotency(
        &self,
        client: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let db = self.client().await?;
        let row = db
            .opt(
                "SELECT record FROM idempotency WHERE client = $1 AND key = $2",
                &[&client, &key],
            )
            .await?;
        row.map(|row| decode("idempotency record", &row.get::<_, String>(0)))
            .transpose()
    }

    async fn update_message(
        &self,
        id: &MessageId,
        change: MessageChange,
    ) -> Result<Option<MessageRecord>, StoreError> {
        // Batched with the other changes waiting: the worker records its sends this way.
        self.batched_update(id, change, false).await
    }

    async fn update_and_release(
        &self,
        id: &MessageId,
        change: MessageChange,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.batched_update(id, change, true).await
    }

    async fn update_messages(
        &self,
        ids: Vec<MessageId>,
        mut change: MessagesChange,
    ) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let ids = ids.iter().map(ToString::to_string).collect();
        Ok(self.change_messages(ids, &mut *change).await?.len())
    }

    async fn messages_by_graph_ids(&self, mids: &[String]) -> Result<Vec<MessageId>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT message_id FROM graph_ids WHERE graph_id = ANY($1)",
                &[&mids],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| MessageId::parse(row.get::<_, &str>(0)))
            .collect())
    }

    async fn erase_idempotency_answers(&self, messages: &[MessageId]) -> Result<u64, StoreError> {
        let ids: Vec<&str> = messages.iter().map(MessageId::as_str).collect();
        let db = self.client().await?;
        // One statement: atomic, and the rows it changes no longer hold the marker, so asking
        // again finds nothing left to do. Only rows holding a template are parsed.
        let n = db
            .exec(
                "UPDATE idempotency
                 SET record = jsonb_set(record::jsonb #- '{answer,decision,utility_template}',
                                        '{answer,decision,trace}', '[]')::text
                 WHERE (strpos(record, $2) > 0 OR strpos(record, $3) > 0)
                   AND coalesce(record::jsonb #>> '{answer,id}',
                                record::jsonb #>> '{answer,message_id}') = ANY($1)",
                &[
                    &ids,
                    &crate::store::PERSONAL_IN_ANSWER,
                    &crate::store::TRACE_IN_ANSWER,
                ],
            )
            .await?;
        Ok(n)
    }
}
