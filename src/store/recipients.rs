//! Recipients: consents, window, tokens, send history; and webhook bookkeeping.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::records::{MessageRecord, RecipientRecord};
use super::{joined, millis, AuditEntry, Store, StoreError, T};
use crate::domain::{Category, MessageId};
use crate::policy::RecentSend;

/// Parses a `Sends` key's tail: time (8 bytes) ++ message id.
fn parse_send_key(prefix_len: usize, key: &[u8]) -> Option<(DateTime<Utc>, MessageId)> {
    let tail = key.get(prefix_len..)?;
    let ms = u64::from_be_bytes(tail.get(..8)?.try_into().ok()?);
    let at = DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    let id = MessageId::parse(std::str::from_utf8(tail.get(8..)?).ok()?)?;
    Some((at, id))
}

impl Store {
    pub fn recipient(&self, key: &str) -> Result<Option<RecipientRecord>, StoreError> {
        self.read(T::Recipients, key.as_bytes())
    }

    /// Changes a recipient with `f` (starting from an empty record for a new one) and appends
    /// the audit entries `f` returns, in one durable transaction. `f` runs once.
    ///
    /// With `dedup_mid`, a webhook event whose `mid` was applied before is skipped and `None`
    /// returned, so Messenger's redeliveries change nothing.
    pub async fn update_recipient<R>(
        &self,
        key: &str,
        dedup_mid: Option<&str>,
        f: impl FnOnce(&mut RecipientRecord) -> (R, Vec<AuditEntry>),
    ) -> Result<Option<R>, StoreError> {
        let result = self.commit(|tx| {
            if let Some(mid) = dedup_mid {
                if tx.contains(T::WebhookMids, mid.as_bytes())? {
                    return Ok(None);
                }
                tx.put_raw(T::WebhookMids, mid.as_bytes(), &millis(Utc::now()))?;
            }
            let mut record = tx
                .get::<RecipientRecord>(T::Recipients, key.as_bytes())?
                .unwrap_or_default();
            let (r, entries) = f(&mut record);
            tx.put(T::Recipients, key.as_bytes(), &record)?;
            for entry in entries {
                tx.audit(entry)?;
            }
            Ok(Some(r))
        })?;
        self.durable().await?;
        Ok(result)
    }

    /// Sends allowed to `recipient_key` at or after `since`, newest first.
    pub fn recent_sends(
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
    pub fn recent_send_ids(
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

    /// The last `limit` messages allowed to `recipient_key`, newest first.
    pub fn recent_messages(
        &self,
        recipient_key: &str,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let mut out = Vec::new();
        for id in self.recent_send_ids(recipient_key, limit)? {
            if let Some(m) = self.message(&id)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Keeps a webhook event that could not be applied, so it can be retried, not lost.
    pub async fn park_event(&self, event: &Value) -> Result<(), StoreError> {
        let id = self.db.generate_id()?;
        self.commit(|tx| tx.put(T::ParkedEvents, &id.to_be_bytes(), event))?;
        self.durable().await
    }

    /// Parked webhook events, oldest first, with their ids.
    pub fn parked_events(&self, limit: usize) -> Result<Vec<(u64, Value)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(T::ParkedEvents).iter().take(limit) {
            let (key, value) = item?;
            let id = key
                .as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or_default();
            out.push((id, super::decode(T::ParkedEvents, &value)?));
        }
        Ok(out)
    }

    /// Forgets a parked event once it has been applied.
    pub async fn unpark_event(&self, id: u64) -> Result<(), StoreError> {
        self.commit(|tx| tx.remove(T::ParkedEvents, &id.to_be_bytes()))?;
        self.durable().await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::store::messages::tests::record_for;
    use crate::store::NewMessage;

    #[tokio::test]
    async fn send_history_stays_within_one_recipient() {
        let store = crate::store::temporary().await;
        let now = Utc::now();
        // "12" is a prefix of "123": their histories must not mix.
        for (psid, n) in [("12", 2), ("123", 3), ("1", 1)] {
            for i in 0..n {
                let r = record_for(psid, now - Duration::minutes(i));
                store.accept(NewMessage::new(r)).await.expect("accept");
            }
        }
        let since = now - Duration::hours(1);
        assert_eq!(store.recent_sends("12", since).expect("sends").len(), 2);
        assert_eq!(store.recent_sends("123", since).expect("sends").len(), 3);
        assert_eq!(store.recent_sends("1", since).expect("sends").len(), 1);
        assert_eq!(
            store
                .recent_sends("1", now + Duration::minutes(1))
                .expect("sends")
                .len(),
            0
        );
        let newest_first = store.recent_sends("123", since).expect("sends");
        assert!(newest_first.windows(2).all(|w| w[0].at >= w[1].at));
    }
}
