//! Recipients: consents, window, tokens, send history; and webhook bookkeeping.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{decode, joined, millis, SledStore, StoreError, T};
use crate::domain::facts::RecentSend;
use crate::domain::{Category, MessageId, RecipientRecord};
use crate::store::{ParkedId, RecipientChange, Recipients, SeenMid};

/// Parses a `Sends` key's tail: time (8 bytes) ++ message id.
fn parse_send_key(prefix_len: usize, key: &[u8]) -> Option<(DateTime<Utc>, MessageId)> {
    let tail = key.get(prefix_len..)?;
    let ms = u64::from_be_bytes(tail.get(..8)?.try_into().ok()?);
    let at = DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    let id = MessageId::parse(std::str::from_utf8(tail.get(8..)?).ok()?)?;
    Some((at, id))
}

fn token_of(record: &RecipientRecord) -> Option<String> {
    record.marketing_token.as_ref().map(|t| t.token.clone())
}

#[async_trait]
impl Recipients for SledStore {
    async fn recipient(&self, key: &str) -> Result<Option<RecipientRecord>, StoreError> {
        self.read(T::Recipients, key.as_bytes())
    }

    async fn update_recipient(
        &self,
        key: &str,
        seen: Option<SeenMid<'_>>,
        change: RecipientChange,
    ) -> Result<bool, StoreError> {
        let applied = self.commit(|tx| {
            if let Some(seen) = seen {
                if tx.contains(T::WebhookMids, seen.mid.as_bytes())? {
                    return Ok(false);
                }
                tx.put_raw(T::WebhookMids, seen.mid.as_bytes(), &millis(seen.at))?;
            }
            let mut record = tx
                .get::<RecipientRecord>(T::Recipients, key.as_bytes())?
                .unwrap_or_default();
            let before = token_of(&record);
            let entries = change(&mut record);
            let after = token_of(&record);
            // The token index follows the record in the same transaction: a replaced or
            // erased token stops naming anyone.
            if before != after {
                if let Some(old) = &before {
                    tx.remove(T::MarketingTokens, old.as_bytes())?;
                }
                if let Some(new) = &after {
                    tx.put_raw(T::MarketingTokens, new.as_bytes(), key.as_bytes())?;
                }
            }
            tx.put(T::Recipients, key.as_bytes(), &record)?;
            for entry in entries {
                tx.audit(entry)?;
            }
            Ok(true)
        })?;
        self.durable().await?;
        Ok(applied)
    }

    /// The key of the recipient whose Marketing Messages token is `token`.
    async fn marketing_token_owner(&self, token: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree(T::MarketingTokens)
            .get(token.as_bytes())?
            .and_then(|key| String::from_utf8(key.to_vec()).ok()))
    }

    /// Sends allowed to `recipient_key` at or after `since`, newest first.
    async fn recent_sends(
        &self,
        recipient_key: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecentSend>, StoreError> {
        let prefix = joined(recipient_key, &[]);
        let start = joined(recipient_key, &millis(since));
        // `key ++ 1` sorts after every `key ++ 0 ++ …`: the scan stays within this recipient.
        let mut end = recipient_key.as_bytes().to_vec();
        end.push(1);
        let mut sends = Vec::new();
        for item in self.tree(T::Sends).range(start..end).rev() {
            let (key, value) = item?;
            let Some((at, _)) = parse_send_key(prefix.len(), &key) else {
                continue;
            };
            if let Some(category) = std::str::from_utf8(&value)
                .ok()
                .and_then(|c| c.parse::<Category>().ok())
            {
                sends.push(RecentSend { at, category });
            }
        }
        Ok(sends)
    }

    /// The ids of the last `limit` messages allowed to `recipient_key`, newest first.
    async fn recent_message_ids(
        &self,
        recipient_key: &str,
        limit: usize,
    ) -> Result<Vec<MessageId>, StoreError> {
        let prefix = joined(recipient_key, &[]);
        let mut ids = Vec::new();
        for item in self.tree(T::Sends).scan_prefix(&prefix).rev().take(limit) {
            let (key, _) = item?;
            if let Some((_, id)) = parse_send_key(prefix.len(), &key) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Keeps a webhook event that could not be applied, so it can be retried, not lost.
    async fn park_event(&self, event: &Value) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        self.commit(|tx| tx.put(T::ParkedEvents, &id.to_be_bytes(), event))?;
        self.durable().await
    }

    /// Parked webhook events, oldest first, with their ids.
    async fn parked_events(&self, limit: usize) -> Result<Vec<(ParkedId, Value)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(T::ParkedEvents).iter().take(limit) {
            let (key, value) = item?;
            let id = key
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or_default();
            out.push((ParkedId(id), super::decode(T::ParkedEvents, &value)?));
        }
        Ok(out)
    }

    /// Forgets a parked event once it has been applied.
    async fn unpark_event(&self, id: ParkedId) -> Result<(), StoreError> {
        self.commit(|tx| tx.remove(T::ParkedEvents, &id.0.to_be_bytes()))?;
        self.durable().await
    }

    async fn recipients_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RecipientRecord)>, StoreError> {
        let range = match after {
            Some(after) => self.tree(T::Recipients).range::<&[u8], _>((
                std::ops::Bound::Excluded(after.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.tree(T::Recipients).iter(),
        };
        range
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((
                    String::from_utf8_lossy(&key).into_owned(),
                    decode(T::Recipients, &value)?,
                ))
            })
            .collect()
    }
}

impl SledStore {
    /// Builds the token → recipient index for a store written before the index existed (it is
    /// kept in step with every recipient change since). Runs at open, when the index is empty.
    pub(super) fn index_marketing_tokens(&self) -> Result<(), StoreError> {
        if !self.tree(T::MarketingTokens).is_empty() {
            return Ok(());
        }
        let mut found = Vec::new();
        for item in self.tree(T::Recipients).iter() {
            let (key, value) = item?;
            let record: RecipientRecord = super::decode(T::Recipients, &value)?;
            if let Some(token) = record.marketing_token {
                found.push((token.token, key));
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        self.commit(|tx| {
            for (token, key) in &found {
                tx.put_raw(T::MarketingTokens, token.as_bytes(), key)?;
            }
            Ok(())
        })?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::store::sled::messages::tests::{new_message, record_for};
    use crate::store::Messages;

    #[tokio::test]
    async fn send_history_stays_within_one_recipient() {
        let store = crate::store::sled::temporary().await;
        let now = Utc::now();
        // "12" is a prefix of "123": their histories must not mix.
        for (psid, n) in [("12", 2), ("123", 3), ("1", 1)] {
            for i in 0..n {
                let r = record_for(psid, now - Duration::minutes(i));
                store.accept(new_message(r)).await.expect("accept");
            }
        }
        let since = now - Duration::hours(1);
        assert_eq!(
            SledStore::recent_sends(&store, "12", since)
                .await
                .expect("sends")
                .len(),
            2
        );
        assert_eq!(
            SledStore::recent_sends(&store, "123", since)
                .await
                .expect("sends")
                .len(),
            3
        );
        assert_eq!(
            SledStore::recent_sends(&store, "1", since)
                .await
                .expect("sends")
                .len(),
            1
        );
        assert_eq!(
            store
                .recent_sends("1", now + Duration::minutes(1))
                .await
                .expect("sends")
                .len(),
            0
        );
        let newest_first = SledStore::recent_sends(&store, "123", since)
            .await
            .expect("sends");
        assert!(newest_first.windows(2).all(|w| w[0].at >= w[1].at));
    }

    #[tokio::test]
    async fn a_store_written_before_the_token_index_gets_it_at_open() {
        let store = crate::store::sled::temporary().await;
        let record = RecipientRecord {
            marketing_token: Some(crate::domain::TokenRecord {
                token: "tok-old".into(),
                status: crate::domain::TokenStatus::Active,
                page_id: "1".into(),
                created_at: Utc::now(),
                expires_at: None,
                frequency: None,
                last_sent_at: None,
            }),
            ..RecipientRecord::default()
        };
        // As an older version stored it: the record alone.
        store
            .tree(T::Recipients)
            .insert("4242", serde_json::to_vec(&record).expect("json"))
            .expect("insert");
        assert_eq!(
            store.marketing_token_owner("tok-old").await.expect("read"),
            None
        );
        store.index_marketing_tokens().expect("index");
        assert_eq!(
            store
                .marketing_token_owner("tok-old")
                .await
                .expect("read")
                .as_deref(),
            Some("4242")
        );
    }
}
