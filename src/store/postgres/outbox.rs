//! The outbox's due work, claimed under a lease by the owner of the page's partition.

use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::{decode_packed, int8, uint, PgStore, Prepared, StoreError};
use crate::domain::MessageId;
use crate::store::{Claimed, Outbox};

/// The longest a claim waits for a newly taken partition's pacing gap.
const LONGEST_GAP_WAIT: StdDuration = StdDuration::from_secs(2);

#[async_trait]
impl Outbox for PgStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut claimable = self.leases.claimable(Instant::now());
        if claimable.partitions.is_empty() {
            // A partition just taken over: wait out its pacing gap (a second at most).
            let Some(next) = claimable.next else {
                return Ok(Vec::new());
            };
            let wait = next.saturating_duration_since(Instant::now());
            tokio::time::sleep(wait.min(LONGEST_GAP_WAIT)).await;
            claimable = self.leases.claimable(Instant::now());
        }
        let client = self.planned_once().await?;
        // One table walked in due order (the partitions and their epochs are arrays, not a
        // join: with a join the planner, misled by a queue's fast-moving statistics, sorted
        // every due row); each row picked is claimed only while the partition is still ours.
        // Order per person: a row waits while another of its lane is claimed or holds the lane
        // (two holders, which no claim makes, would not wait for each other for ever: the one
        // accepted first goes); of the rows picked, only each lane's first is claimed. A lane
        // is in one partition (partitions are by page), so one instance runs it. The lane's
        // rows are looked up per row walked, through `outbox_person` (`OFFSET 0` keeps the
        // planner from making an anti join of it, which, counting on the few rows claimed or
        // holding, scanned the whole outbox once per claim: 30-50 ms on 200,000 rows, against
        // 1.5-2 ms for 100 claims this way and 0.5 ms before lanes). The partitions still ours
        // are read once for the statement, and `messages` only for a row that an earlier
        // version left without its record (a join looked it up for every row).
        let rows = client
            .rows(
                "WITH picked AS (
                     SELECT o.message_id, o.person, o.due FROM outbox o
                     WHERE o.due <= $3 AND o.partition = ANY($1)
                       AND (o.claimed_until IS NULL OR o.claimed_until <= $3
                            OR o.claim_epoch < ($2::bigint[])[array_position($1, o.partition)])
                       AND NOT EXISTS (
                           SELECT 1 FROM outbox w
                           WHERE w.person = o.person AND w.message_id <> o.message_id
                             AND (w.claimed_until > $3
                                  OR (w.holds AND NOT (o.holds AND o.message_id COLLATE \"C\"
                                                                   < w.message_id COLLATE \"C\")))
                           OFFSET 0)
                     ORDER BY o.due, o.message_id COLLATE \"C\" LIMIT $4
                     FOR UPDATE OF o SKIP LOCKED),
                 chosen AS (
                     SELECT DISTINCT ON (coalesce(person, message_id)) message_id FROM picked
                     ORDER BY coalesce(person, message_id), due, message_id COLLATE \"C\"),
                 claimed AS (
                     UPDATE outbox o SET claimed_until = $6, claimed_by = $5,
                         claim_epoch = ($2::bigint[])[array_position($1, o.partition)]
                     FROM chosen WHERE o.message_id = chosen.message_id
                       AND o.partition = ANY (ARRAY(
                           SELECT p.partition FROM partitions p WHERE p.partition = ANY($1)
                             AND p.owner = $5 AND p.lease_until > now()))
                     RETURNING o.message_id, o.due, o.record)
                 SELECT c.message_id, c.due,
                        coalesce(c.record, (SELECT m.record FROM messages m
                                            WHERE m.id = c.message_id))
                 FROM claimed c",
                &[
                    &claimable.partitions,
                    &claimable.epochs,
                    &now,
                    &int8(limit as u64),
                    &self.instance,
                    &(now + lease),
                ],
            )
            .await?;
        let mut claimed: Vec<(DateTime<Utc>, Claimed)> = rows
            .iter()
            .filter_map(|row| {
                let id = MessageId::parse(row.get::<_, &str>(0))?;
                // A record that does not decode is left for the worker's own read to report.
                let record = row
                    .get::<_, Option<&[u8]>>(2)
                    .and_then(|stored| decode_packed("message", stored).ok());
                Some((row.get(1), Claimed { id, record }))
            })
            .collect();
        claimed.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        Ok(claimed.into_iter().map(|(_, claimed)| claimed).collect())
    }

    async fn try_claim(
        &self,
        id: &MessageId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .one(
                "WITH held AS (
                     UPDATE outbox SET claimed_until = $3, claimed_by = $4, claim_epoch = NULL
                     WHERE message_id = $1 AND (claimed_until IS NULL OR claimed_until <= $2)
                     RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM held)
                     OR NOT EXISTS (SELECT 1 FROM outbox WHERE message_id = $1)",
                &[&id.as_str(), &now, &(now + lease), &self.instance],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn release(&self, id: &MessageId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL, claim_epoch = NULL
                 WHERE message_id = $1 AND claimed_by = $2",
                &[&id.as_str(), &self.instance],
            )
            .await?;
        Ok(())
    }

    async fn release_others(&self, held: &[MessageId]) -> Result<u64, StoreError> {
        let held: Vec<&str> = held.iter().map(MessageId::as_str).collect();
        let client = self.client().await?;
        // Only the worker's claims (they carry an epoch), never a cancel holding a message.
        let released = client
            .exec(
                "UPDATE outbox SET claimed_until = NULL, claimed_by = NULL, claim_epoch = NULL
                 WHERE claimed_by = $1 AND claim_epoch IS NOT NULL
                   AND NOT (message_id = ANY($2))",
                &[&self.instance, &held],
            )
            .await?;
        Ok(released)
    }

    async fn is_claimed(&self, id: &MessageId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .opt(
                "SELECT claimed_until > $2 FROM outbox WHERE message_id = $1",
                &[&id.as_str(), &now],
            )
            .await?;
        Ok(row
            .and_then(|r| r.get::<_, Option<bool>>(0))
            .unwrap_or(false))
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.planned_once().await?;
        let row = if self.leases.enabled() {
            let held = self.leases.held(Instant::now());
            client
                .one(
                    "SELECT min(due) FROM outbox WHERE partition = ANY($1)",
                    &[&held],
                )
                .await?
        } else {
            client.one("SELECT min(due) FROM outbox", &[]).await?
        };
        Ok(row.get(0))
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client.one("SELECT count(*) FROM outbox", &[]).await?.get(0);
        Ok(uint(n))
    }
}
