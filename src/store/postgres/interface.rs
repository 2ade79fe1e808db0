//! [`PgStore`] behind the store's interfaces.

use std::collections::{HashMap, HashSet};
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;

use super::writes::{AcceptJob, Rows, UpdateJob};
use super::{decode, encode, int8, uint, PgStore, Prepared, StoreError};
use crate::domain::campaign::{Campaign, CampaignId};
use crate::domain::{Category, IdempotencyRecord, MessageId, MessageRecord, Psid, RecipientRecord};
use crate::policy::{RecentSend, TraceStep};
use crate::store::{
    Accepted, CampaignChange, Campaigns, MessageChange, Messages, MessagesChange, NewMessage,
    Outbox, ParkedId, RecipientChange, Recipients, SeenMid,
};

/// The longest a claim waits for a newly taken partition's pacing gap.
const LONGEST_GAP_WAIT: StdDuration = StdDuration::from_secs(2);

/// Audience parts read per round trip.
const AUDIENCE_PARTS: i64 = 8;

/// A message row read for a change, locked until the transaction ends.
pub(super) struct Locked {
    pub record: MessageRecord,
    /// The outbox claim on it: (partition, claimed by, under epoch).
    pub claim: Option<(i32, Option<String>, Option<i64>)>,
}

impl PgStore {
    /// Reads and locks messages for a change, in id order.
    pub(super) async fn lock_messages(
        &self,
        tx: &Transaction<'_>,
        ids: &[String],
    ) -> Result<Vec<Locked>, StoreError> {
        let rows = tx
            .rows(
                "SELECT m.record, o.partition, o.claimed_by, o.claim_epoch
                 FROM messages m LEFT JOIN outbox o ON o.message_id = m.id
                 WHERE m.id = ANY($1) ORDER BY m.id FOR UPDATE OF m",
                &[&ids],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.get(0);
                let partition: Option<i32> = row.get(1);
                Ok(Locked {
                    record: decode("message", &text)?,
                    claim: partition.map(|p| (p, row.get(2), row.get(3))),
                })
            })
            .collect()
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
            rows.update(self, &locked.record, &mut record, effects)?;
            changed.push(record);
        }
        if changed.is_empty() {
            return Ok(changed);
        }
        rows.write(&tx, self).await?;
        self.finish(tx).await?;
        Ok(changed)
    }

    async fn read_json<V: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        sql: &str,
        key: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Option<V>, StoreError> {
        let client = self.client().await?;
        let row = client.opt(sql, &[key]).await?;
        row.map(|row| decode(what, &row.get::<_, String>(0)))
            .transpose()
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
        self.read_json(
            "message",
            "SELECT record FROM messages WHERE id = $1",
            &id.as_str(),
        )
        .await
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
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.updates
            .send(UpdateJob {
                id: id.to_string(),
                change,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
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

#[async_trait]
impl Outbox for PgStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<MessageId>, StoreError> {
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
        let client = self.client().await?;
        // One table walked in due order (the partitions and their epochs are arrays, not a
        // join: with a join the planner, misled by a queue's fast-moving statistics, sorted
        // every due row); each row picked is claimed only while the partition is still ours.
        let rows = client
            .rows(
                "WITH picked AS (
                     SELECT o.message_id FROM outbox o
                     WHERE o.due <= $3 AND o.partition = ANY($1)
                       AND (o.claimed_until IS NULL OR o.claimed_until <= $3
                            OR o.claim_epoch < ($2::bigint[])[array_position($1, o.partition)])
                     ORDER BY o.due LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                 UPDATE outbox o SET claimed_until = $6, claimed_by = $5,
                     claim_epoch = ($2::bigint[])[array_position($1, o.partition)]
                 FROM picked WHERE o.message_id = picked.message_id
                   AND EXISTS (SELECT 1 FROM partitions p WHERE p.partition = o.partition
                               AND p.owner = $5 AND p.lease_until > now())
                 RETURNING o.message_id, o.due",
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
        let mut claimed: Vec<(DateTime<Utc>, MessageId)> = rows
            .iter()
            .filter_map(|row| MessageId::parse(row.get::<_, &str>(0)).map(|id| (row.get(1), id)))
            .collect();
        claimed.sort();
        Ok(claimed.into_iter().map(|(_, id)| id).collect())
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
        let client = self.client().await?;
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

#[async_trait]
impl Recipients for PgStore {
    async fn recipient(&self, key: &str) -> Result<Option<RecipientRecord>, StoreError> {
        self.read_json(
            "recipient",
            "SELECT record::text FROM recipients WHERE key = $1",
            &key,
        )
        .await
    }

    async fn marketing_token_owner(&self, token: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .opt(
                "SELECT key FROM recipients WHERE marketing_token = $1 LIMIT 1",
                &[&token],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn update_recipient(
        &self,
        key: &str,
        seen: Option<SeenMid<'_>>,
        change: RecipientChange,
    ) -> Result<bool, StoreError> {
        let _timer = self.commit.start_timer();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(seen) = seen {
            let first = tx
                .exec(
                    "INSERT INTO webhook_mids (mid, seen_at) VALUES ($1, $2)
                     ON CONFLICT DO NOTHING",
                    &[&seen.mid, &seen.at],
                )
                .await?;
            if first == 0 {
                // Applied before, on this instance or another.
                return Ok(false);
            }
        }
        tx.exec(
            "INSERT INTO recipients (key, record) VALUES ($1, $2::text::jsonb)
             ON CONFLICT DO NOTHING",
            &[&key, &encode("recipient", &RecipientRecord::default())?],
        )
        .await?;
        let text: String = tx
            .one(
                "SELECT record::text FROM recipients WHERE key = $1 FOR UPDATE",
                &[&key],
            )
            .await?
            .get(0);
        let mut record: RecipientRecord = decode("recipient", &text)?;
        let entries = change(&mut record);
        let token = record.marketing_token.as_ref().map(|t| t.token.clone());
        tx.exec(
            "UPDATE recipients SET record = $2::text::jsonb, marketing_token = $3 WHERE key = $1",
            &[&key, &encode("recipient", &record)?, &token],
        )
        .await?;
        let mut rows = Rows::default();
        rows.audit(entries);
        rows.write(&tx, self).await?;
        self.finish(tx).await?;
        Ok(true)
    }

    async fn recent_sends(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecentSend>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT at, category FROM sends WHERE recipient = $1 AND at >= $2
                 ORDER BY at DESC, message_id DESC",
                &[&key, &since],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let category = row.get::<_, &str>(1).parse::<Category>().ok()?;
                Some(RecentSend {
                    at: row.get(0),
                    category,
                })
            })
            .collect())
    }

    async fn recent_message_ids(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<MessageId>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT message_id FROM sends WHERE recipient = $1
                 ORDER BY at DESC, message_id DESC LIMIT $2",
                &[&key, &int8(limit as u64)],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| MessageId::parse(row.get::<_, &str>(0)))
            .collect())
    }

    async fn recipients_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RecipientRecord)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT key, record::text FROM recipients
                 WHERE $1::text IS NULL OR key COLLATE \"C\" > $1
                 ORDER BY key COLLATE \"C\" LIMIT $2",
                &[&after, &int8(limit as u64)],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.get(0), decode("recipient", row.get::<_, &str>(1))?)))
            .collect()
    }

    async fn park_event(&self, event: &Value) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO parked_events (event) VALUES ($1::text::jsonb)",
                &[&encode("parked webhook event", event)?],
            )
            .await?;
        Ok(())
    }

    async fn parked_events(&self, limit: usize) -> Result<Vec<(ParkedId, Value)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT id, event::text FROM parked_events ORDER BY id LIMIT $1",
                &[&int8(limit as u64)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    ParkedId(uint(row.get(0))),
                    decode("parked webhook event", row.get::<_, &str>(1))?,
                ))
            })
            .collect()
    }

    async fn unpark_event(&self, id: ParkedId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec("DELETE FROM parked_events WHERE id = $1", &[&int8(id.0)])
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Campaigns for PgStore {
    async fn create(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO campaigns (id, record) VALUES ($1, $2::text::jsonb)",
                &[&campaign.id.as_str(), &encode("campaign", campaign)?],
            )
            .await?;
        Ok(())
    }

    async fn append_audience(
        &self,
        id: &CampaignId,
        from: u64,
        psids: &[Psid],
    ) -> Result<(), StoreError> {
        if psids.is_empty() {
            return Ok(());
        }
        let mut part = String::with_capacity(psids.len() * 17);
        for psid in psids {
            part.push_str(psid.as_str());
            part.push('\n');
        }
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO audience (campaign, first, psids) VALUES ($1, $2, $3)
                 ON CONFLICT (campaign, first) DO UPDATE SET psids = EXCLUDED.psids",
                &[&id.as_str(), &int8(from), &part],
            )
            .await?;
        Ok(())
    }

    async fn audience(
        &self,
        id: &CampaignId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Psid>, StoreError> {
        let client = self.client().await?;
        // The part that holds position `from` starts at or before it.
        let mut after: i64 = client
            .one(
                "SELECT coalesce(max(first), 0) FROM audience WHERE campaign = $1 AND first <= $2",
                &[&id.as_str(), &int8(from)],
            )
            .await?
            .get(0);
        let mut out = Vec::with_capacity(limit);
        let mut inclusive = true;
        loop {
            let rows = client
                .rows(
                    "SELECT first, psids FROM audience
                     WHERE campaign = $1 AND (first > $2 OR ($3 AND first = $2))
                     ORDER BY first LIMIT $4",
                    &[&id.as_str(), &after, &inclusive, &AUDIENCE_PARTS],
                )
                .await?;
            inclusive = false;
            let parts = rows.len();
            for row in rows {
                after = row.get(0);
                let text: &str = row.get(1);
                if crate::store::take_audience(uint(after), text, from, limit, &mut out)? {
                    return Ok(out);
                }
            }
            if i64::try_from(parts).unwrap_or_default() < AUDIENCE_PARTS {
                return Ok(out);
            }
        }
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        self.read_json(
            "campaign",
            "SELECT record::text FROM campaigns WHERE id = $1",
            &id.as_str(),
        )
        .await
    }

    async fn all(&self) -> Result<Vec<Campaign>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT record::text FROM campaigns ORDER BY id COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| decode("campaign", row.get::<_, &str>(0)))
            .collect()
    }

    async fn update(
        &self,
        id: &CampaignId,
        change: CampaignChange,
    ) -> Result<Option<Campaign>, StoreError> {
        let _timer = self.commit.start_timer();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .opt(
                "SELECT record::text FROM campaigns WHERE id = $1 FOR UPDATE",
                &[&id.as_str()],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut campaign: Campaign = decode("campaign", row.get::<_, &str>(0))?;
        let Some(entries) = change(&mut campaign) else {
            return Ok(None);
        };
        tx.exec(
            "UPDATE campaigns SET record = $2::text::jsonb WHERE id = $1",
            &[&id.as_str(), &encode("campaign", &campaign)?],
        )
        .await?;
        let mut rows = Rows::default();
        rows.audit(entries);
        rows.write(&tx, self).await?;
        self.finish(tx).await?;
        Ok(Some(campaign))
    }

    async fn drop_draft(&self, id: &CampaignId) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.exec("DELETE FROM audience WHERE campaign = $1", &[&id.as_str()])
            .await?;
        tx.exec("DELETE FROM campaigns WHERE id = $1", &[&id.as_str()])
            .await?;
        self.finish(tx).await?;
        Ok(())
    }

    async fn counts(&self, id: &CampaignId) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT label, n FROM campaign_counts WHERE campaign = $1
                 ORDER BY label COLLATE \"C\"",
                &[&id.as_str()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), uint(row.get(1))))
            .collect())
    }
}
