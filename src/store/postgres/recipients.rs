//! Recipients: consents, window, tokens, send history; and webhook bookkeeping.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::batcher::ReadJob;
use super::writes::Rows;
use super::{decode, encode, int8, uint, PgStore, Prepared, StoreError};
use crate::domain::facts::RecentSend;
use crate::domain::{Category, MessageId, RecipientRecord};
use crate::store::{ParkedId, RecipientChange, Recipients, SeenMid};

/// A recipient's record, and their sends since a moment, newest first.
pub(super) type RecipientWithSends = (Option<RecipientRecord>, Vec<RecentSend>);

impl PgStore {
    /// The decisions' reads that queued together, in one statement (one round trip, one
    /// wake-up of the database's backend, instead of one each): each recipient's record and
    /// their sends since their `since`, in the order asked. A key asked twice is read twice.
    pub(super) async fn recipients_with_sends(
        &self,
        asked: Vec<(String, DateTime<Utc>)>,
    ) -> Result<Vec<Result<RecipientWithSends, StoreError>>, StoreError> {
        let (keys, sinces): (Vec<String>, Vec<DateTime<Utc>>) = asked.into_iter().unzip();
        let client = self.planned_once().await?;
        // The sends as two arrays in the order `recent_sends` gives (an aggregate without
        // GROUP BY is one row, its arrays NULL when there is none). The aggregate takes the rows
        // in the order of the subquery it reads, which walks the key's index backwards: an
        // `ORDER BY` in the aggregate sorted each recipient's sends again.
        let rows = client
            .rows(
                "SELECT (SELECT r.record::text FROM recipients r WHERE r.key = q.key),
                        s.ats, s.categories
                 FROM UNNEST($1::text[], $2::timestamptz[]) WITH ORDINALITY AS q(key, since, i)
                 LEFT JOIN LATERAL (
                     SELECT array_agg(n.at) AS ats, array_agg(n.category) AS categories
                     FROM (SELECT at, category FROM sends WHERE recipient = q.key AND at >= q.since
                           ORDER BY at DESC, message_id DESC) n
                 ) s ON true
                 ORDER BY q.i",
                &[&keys, &sinces],
            )
            .await?;
        Ok(rows.iter().map(recipient_and_sends).collect())
    }
}

/// One row of [`PgStore::recipients_with_sends`].
fn recipient_and_sends(row: &tokio_postgres::Row) -> Result<RecipientWithSends, StoreError> {
    let record = row
        .get::<_, Option<String>>(0)
        .map(|r| decode("recipient", &r))
        .transpose()?;
    let ats: Vec<DateTime<Utc>> = row.get::<_, Option<_>>(1).unwrap_or_default();
    let categories: Vec<String> = row.get::<_, Option<_>>(2).unwrap_or_default();
    let sends = ats
        .into_iter()
        .zip(categories)
        .filter_map(|(at, category)| {
            Some(RecentSend {
                at,
                category: category.parse::<Category>().ok()?,
            })
        })
        .collect();
    Ok((record, sends))
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

    async fn recipient_with_sends(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<RecipientWithSends, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.reads
            .send(ReadJob {
                key: key.to_owned(),
                since,
                reply,
            })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
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
