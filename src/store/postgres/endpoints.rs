//! Event endpoints and where each one's delivery stands (`migrations/0004_event_endpoints.sql`).
//!
//! Events are read from the audit log, one chain per partition of pages; the owner of a
//! partition delivers its chain's events to every endpoint, as it sends its pages' messages. A
//! round of one endpoint's delivery is recorded by one statement, fenced as the outbox's writes
//! are: it first locks (`FOR SHARE`) the rows of the partitions whose chains it touches, under
//! the owner and epoch this instance holds them by, and writes nothing unless every one is
//! still this instance's. A partition taken over meanwhile (the epoch grew) refuses the whole
//! round, and the new owner, which reads the cursor only once it holds the partition, delivers
//! from where the last recorded round left off: an event goes twice only if it was in flight
//! when its partition changed hands without a handover (a kill).
//!
//! A round that only queues deliveries (a replay, asked of any instance) is not fenced: it
//! moves no one's progress, and each queued event is delivered by its chain's owner.
//!
//! ```text
//!   record_deliveries ── one statement ──► fence (partitions FOR SHARE: owner, epoch)
//!                                           └─ all ours? ─► attempts, pending, done, cursor
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::writes::append_audit;
use super::{decode, encode, int8, uint, PgStore, Prepared, StoreError};
use crate::domain::audit::AuditEntry;
use crate::domain::endpoint::{
    AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointRecord, EventRefRecord, PendingDelivery,
};
use crate::store::{EndpointChange, EventEndpoints};

/// A chain (a partition) as its column.
fn chain_col(chain: u32) -> i32 {
    i32::try_from(chain).unwrap_or(i32::MAX)
}

fn status_text(status: AttemptStatus) -> &'static str {
    match status {
        AttemptStatus::Succeeded => "succeeded",
        AttemptStatus::Retrying => "retrying",
        AttemptStatus::Failed => "failed",
    }
}

/// Events named by where they are read from, as columns.
#[derive(Default)]
struct Refs {
    chain: Vec<i32>,
    seq: Vec<i64>,
    index: Vec<i16>,
}

impl Refs {
    fn push(&mut self, r: &EventRefRecord) {
        self.chain.push(chain_col(r.chain));
        self.seq.push(int8(r.seq));
        self.index.push(i16::from(r.index));
    }
}

/// A round's rows as the columns the statement takes.
#[derive(Default)]
struct RoundColumns {
    attempt_ids: Vec<String>,
    attempt_status: Vec<&'static str>,
    attempt_at: Vec<DateTime<Utc>>,
    attempts: Vec<String>,
    done: Refs,
    pending: Refs,
    pending_due: Vec<DateTime<Utc>>,
    pending_attempts: Vec<i32>,
}

impl RoundColumns {
    /// As the sled store applies a round (done, then pending): an event both done and pending
    /// in one round is pending; of one event pending twice, the last says when it is due. (One
    /// statement may not touch a row twice.)
    fn of(
        attempts: &[DeliveryAttempt],
        pending: Vec<PendingDelivery>,
        done: &[EventRefRecord],
    ) -> Result<RoundColumns, StoreError> {
        let mut c = RoundColumns::default();
        for a in attempts {
            c.attempt_ids.push(a.id.clone());
            c.attempt_status.push(status_text(a.status));
            c.attempt_at.push(a.at);
            c.attempts.push(encode("delivery attempt", a)?);
        }
        let pending: BTreeMap<EventRefRecord, PendingDelivery> =
            pending.into_iter().map(|p| (p.event, p)).collect();
        let done: BTreeSet<EventRefRecord> = done
            .iter()
            .filter(|r| !pending.contains_key(r))
            .copied()
            .collect();
        for r in &done {
            c.done.push(r);
        }
        for (r, p) in pending {
            c.pending.push(&r);
            c.pending_due.push(p.due);
            c.pending_attempts
                .push(i32::try_from(p.attempts).unwrap_or(i32::MAX));
        }
        Ok(c)
    }
}

/// A delivery round in one statement: the fence first, then every write only if it holds
/// (see the module documentation). The partitions are locked in partition order, as every write
/// that locks several does.
const RECORD_DELIVERIES: &str = "WITH fence AS (
     SELECT p.partition FROM partitions p
     JOIN UNNEST($2::integer[], $3::bigint[]) AS h(partition, epoch)
       ON p.partition = h.partition AND p.epoch = h.epoch
     WHERE p.owner = $4
     ORDER BY p.partition FOR SHARE OF p),
 endpoint AS (SELECT id FROM event_endpoints WHERE id = $1 FOR KEY SHARE),
 go AS (SELECT (SELECT count(*) FROM fence) = cardinality($2::integer[])
               AND EXISTS (SELECT 1 FROM endpoint) AS ok),
 attempted AS (
     INSERT INTO event_attempts (endpoint, id, status, at, attempt)
     SELECT $1, a.* FROM go,
         UNNEST($5::text[], $6::text[], $7::timestamptz[], $8::text[])
             AS a(id, status, at, attempt)
     WHERE go.ok
     ON CONFLICT DO NOTHING),
 finished AS (
     DELETE FROM event_pending e
     USING go, UNNEST($9::integer[], $10::bigint[], $11::smallint[])
         AS d(chain, seq, index)
     WHERE go.ok AND e.endpoint = $1
       AND e.chain = d.chain AND e.seq = d.seq AND e.index = d.index),
 waiting AS (
     INSERT INTO event_pending (endpoint, chain, seq, index, due, attempts)
     SELECT $1, w.* FROM go,
         UNNEST($12::integer[], $13::bigint[], $14::smallint[],
                $15::timestamptz[], $16::integer[])
             AS w(chain, seq, index, due, attempts)
     WHERE go.ok
     ON CONFLICT (endpoint, chain, seq, index)
         DO UPDATE SET due = EXCLUDED.due, attempts = EXCLUDED.attempts),
 moved AS (
     INSERT INTO event_cursors (endpoint, chain, seq)
     SELECT $1, $17::integer, $18::bigint FROM go
     WHERE go.ok AND $17::integer IS NOT NULL
     ON CONFLICT (endpoint, chain) DO UPDATE SET seq = EXCLUDED.seq)
 SELECT coalesce((SELECT array_agg(partition) FROM fence), '{}')::integer[]";

impl PgStore {
    /// The partitions (and the epochs this instance holds them at) a delivery round is fenced
    /// by. A replay queues deliveries from whichever instance an administrator reached; the
    /// chains' owners deliver them. Only a round that delivered something is fenced.
    fn fence_of(&self, round: &DeliveryRound) -> Result<(Vec<i32>, Vec<i64>), StoreError> {
        let queues_only =
            round.cursor.is_none() && round.attempts.is_empty() && round.done.is_empty();
        let chains: BTreeSet<u32> = round
            .cursor
            .iter()
            .map(|(chain, _)| *chain)
            .chain(round.pending.iter().map(|p| p.event.chain))
            .chain(round.done.iter().map(|d| d.chain))
            .filter(|_| !queues_only)
            .collect();
        let mut partitions = Vec::with_capacity(chains.len());
        let mut epochs = Vec::with_capacity(chains.len());
        for chain in chains {
            let Some(epoch) = self.leases.epoch_of(chain) else {
                return Err(StoreError::Fenced {
                    partition: chain,
                    epoch: 0,
                });
            };
            partitions.push(chain_col(chain));
            epochs.push(epoch);
        }
        Ok((partitions, epochs))
    }
}

/// The first of the round's partitions this instance no longer held when it wrote (`ours` are
/// those the fence found), as the error that says so.
fn fenced_out(partitions: &[i32], epochs: &[i64], ours: &[i32]) -> Result<(), StoreError> {
    match partitions
        .iter()
        .zip(epochs)
        .find(|(p, _)| !ours.contains(p))
    {
        Some((partition, epoch)) => Err(StoreError::Fenced {
            partition: u32::try_from(*partition).unwrap_or_default(),
            epoch: *epoch,
        }),
        None => Ok(()),
    }
}

#[async_trait]
impl EventEndpoints for PgStore {
    async fn create_endpoint(
        &self,
        endpoint: &EndpointRecord,
        start: &[(u32, u64)],
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        let _timer = self.commit.start_timer();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.exec(
            "INSERT INTO event_endpoints (id, created_at, record) VALUES ($1, $2, $3::text::jsonb)",
            &[
                &endpoint.id,
                &endpoint.created_at,
                &encode("event endpoint", endpoint)?,
            ],
        )
        .await?;
        if !start.is_empty() {
            let (chains, seqs): (Vec<i32>, Vec<i64>) = start
                .iter()
                .map(|(chain, seq)| (chain_col(*chain), int8(*seq)))
                .unzip();
            tx.exec(
                "INSERT INTO event_cursors (endpoint, chain, seq)
                 SELECT $1, * FROM UNNEST($2::integer[], $3::bigint[])
                 ON CONFLICT (endpoint, chain) DO UPDATE SET seq = EXCLUDED.seq",
                &[&endpoint.id, &chains, &seqs],
            )
            .await?;
        }
        append_audit(&tx, self, audit).await?;
        self.finish(tx).await
    }

    async fn endpoint(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError> {
        self.read_json(
            "event endpoint",
            "SELECT record::text FROM event_endpoints WHERE id = $1",
            &id,
        )
        .await
    }

    async fn endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT record::text FROM event_endpoints ORDER BY created_at, id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| decode("event endpoint", row.get::<_, &str>(0)))
            .collect()
    }

    async fn update_endpoint(
        &self,
        id: &str,
        change: EndpointChange,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let _timer = self.commit.start_timer();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // NO KEY UPDATE: a delivery round recording meanwhile (it holds the row FOR KEY SHARE)
        // is not waited for.
        let Some(row) = tx
            .opt(
                "SELECT record::text FROM event_endpoints WHERE id = $1 FOR NO KEY UPDATE",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut endpoint: EndpointRecord = decode("event endpoint", row.get::<_, &str>(0))?;
        let Some(entries) = change(&mut endpoint) else {
            return Ok(None);
        };
        tx.exec(
            "UPDATE event_endpoints SET record = $2::text::jsonb WHERE id = $1",
            &[&id, &encode("event endpoint", &endpoint)?],
        )
        .await?;
        append_audit(&tx, self, entries).await?;
        self.finish(tx).await?;
        Ok(Some(endpoint))
    }

    async fn delete_endpoint(&self, id: &str, audit: Vec<AuditEntry>) -> Result<bool, StoreError> {
        let _timer = self.commit.start_timer();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Its cursors, pending deliveries and attempts go with it (ON DELETE CASCADE).
        let deleted = tx
            .exec("DELETE FROM event_endpoints WHERE id = $1", &[&id])
            .await?;
        if deleted == 0 {
            return Ok(false);
        }
        append_audit(&tx, self, audit).await?;
        self.finish(tx).await?;
        Ok(true)
    }

    async fn cursor(&self, id: &str, chain: u32) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .opt(
                "SELECT seq FROM event_cursors WHERE endpoint = $1 AND chain = $2",
                &[&id, &chain_col(chain)],
            )
            .await?;
        Ok(row.map_or(0, |row| uint(row.get(0))))
    }

    async fn due_deliveries(
        &self,
        id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let running = self.leases.running(Instant::now());
        if running.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT chain, seq, index, due, attempts FROM event_pending
                 WHERE endpoint = $1 AND due <= $2 AND chain = ANY($3)
                 ORDER BY due, chain, seq, index LIMIT $4",
                &[&id, &now, &running, &int8(limit as u64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| PendingDelivery {
                event: EventRefRecord {
                    chain: u32::try_from(row.get::<_, i32>(0)).unwrap_or_default(),
                    seq: uint(row.get(1)),
                    index: u8::try_from(row.get::<_, i16>(2)).unwrap_or_default(),
                },
                due: row.get(3),
                attempts: u32::try_from(row.get::<_, i32>(4)).unwrap_or_default(),
            })
            .collect())
    }

    async fn next_delivery_due(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let running = self.leases.running(Instant::now());
        if running.is_empty() {
            return Ok(None);
        }
        let client = self.client().await?;
        let row = client
            .one(
                "SELECT min(due) FROM event_pending WHERE endpoint = $1 AND chain = ANY($2)",
                &[&id, &running],
            )
            .await?;
        Ok(row.get(0))
    }

    /// One statement, so one round trip and no explicit transaction: the fence first, then
    /// every write only if it holds (see the module documentation).
    async fn record_deliveries(&self, id: &str, round: DeliveryRound) -> Result<(), StoreError> {
        let (partitions, epochs) = self.fence_of(&round)?;
        let DeliveryRound {
            cursor,
            attempts,
            pending,
            done,
        } = round;
        if cursor.is_none() && attempts.is_empty() && pending.is_empty() && done.is_empty() {
            return Ok(());
        }
        let c = RoundColumns::of(&attempts, pending, &done)?;
        let cursor_chain = cursor.map(|(chain, _)| chain_col(chain));
        let cursor_seq = cursor.map(|(_, seq)| int8(seq));
        let _timer = self.commit.start_timer();
        let client = self.client().await?;
        // The partitions are locked in partition order, as every write that locks several does.
        let row = client
            .one(
                RECORD_DELIVERIES,
                &[
                    &id,
                    &partitions,
                    &epochs,
                    &self.instance,
                    &c.attempt_ids,
                    &c.attempt_status,
                    &c.attempt_at,
                    &c.attempts,
                    &c.done.chain,
                    &c.done.seq,
                    &c.done.index,
                    &c.pending.chain,
                    &c.pending.seq,
                    &c.pending.index,
                    &c.pending_due,
                    &c.pending_attempts,
                    &cursor_chain,
                    &cursor_seq,
                ],
            )
            .await?;
        // A round of an endpoint deleted meanwhile wrote nothing, and has nowhere to go.
        fenced_out(&partitions, &epochs, &row.get::<_, Vec<i32>>(0))
    }

    async fn attempts(
        &self,
        id: &str,
        status: Option<AttemptStatus>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        // Literal conditions, so that each listing has a plan of its own: failures through
        // their partial index, the rest walking the primary key backwards.
        let of_status = match status {
            None => "",
            Some(AttemptStatus::Succeeded) => "AND status = 'succeeded'",
            Some(AttemptStatus::Retrying) => "AND status = 'retrying'",
            Some(AttemptStatus::Failed) => "AND status = 'failed'",
        };
        let before_it = if before.is_some() {
            "AND id < $2"
        } else {
            "AND $2::text IS NULL"
        };
        let sql = format!(
            "SELECT attempt FROM event_attempts WHERE endpoint = $1 {of_status} {before_it}
             ORDER BY id DESC LIMIT $3"
        );
        let client = self.client().await?;
        let rows = client
            .rows(&sql, &[&id, &before, &int8(limit as u64)])
            .await?;
        rows.iter()
            .map(|row| decode("delivery attempt", row.get::<_, &str>(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn pending(seq: u64, due: i64) -> PendingDelivery {
        PendingDelivery {
            event: EventRefRecord {
                chain: 1,
                seq,
                index: 0,
            },
            due: Utc.timestamp_opt(due, 0).single().unwrap_or_default(),
            attempts: 1,
        }
    }

    #[test]
    fn a_round_touches_each_event_once_and_pending_wins_over_done_as_on_sled() {
        let c = RoundColumns::of(
            &[],
            vec![pending(5, 10), pending(6, 10), pending(5, 20)],
            &[
                pending(6, 0).event,
                pending(7, 0).event,
                pending(7, 0).event,
            ],
        )
        .expect("columns");
        assert_eq!(c.pending.seq, [5, 6], "one row per event pending");
        assert_eq!(
            c.pending_due.first().map(|d| d.timestamp()),
            Some(20),
            "the last says when"
        );
        assert_eq!(c.done.seq, [7], "pending in the same round is not done");
    }
}
