//! The outbox's due work and who holds it.
//!
//! sled serves one process, so claims are kept in memory: a crash forgets them, and on restart
//! every entry is free to be claimed again — which is what at-least-once delivery needs. (An
//! engine shared by several instances keeps the lease with the entry instead.)

use std::collections::HashMap;
use std::ops::Bound;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

use super::{millis, SledStore, StoreError, T};
use crate::domain::MessageId;
use crate::store::Outbox;

/// Claims on outbox entries, and where the next scan for due work starts.
#[derive(Default)]
pub(super) struct Claims {
    /// Held entries and until when.
    held: Mutex<HashMap<MessageId, DateTime<Utc>>>,
    /// The last key of the previous scan, when it stopped because it had enough.
    cursor: Mutex<Option<Vec<u8>>>,
}

#[async_trait]
impl Outbox for SledStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<MessageId>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Every key due at or before `now` sorts before the first key of the next millisecond.
        let end = millis(crate::domain::bounds::later(now, Duration::milliseconds(1))).to_vec();
        // Continue after the previous scan instead of rescanning entries already held: under
        // load the front of the outbox is all held, and every accept and every finished send
        // asks for more.
        let after = self.claims.cursor.lock().take();
        let start = match &after {
            Some(after) => Bound::Excluded(after.as_slice()),
            None => Bound::Unbounded,
        };
        let mut held = self.claims.held.lock();
        let mut claimed = Vec::new();
        for item in self
            .tree(T::Outbox)
            .range::<&[u8], _>((start, Bound::Excluded(end.as_slice())))
        {
            let (key, _) = item?;
            // Keys are `due (8 bytes) ++ id`; a key that is not is skipped, not fatal.
            let id = key
                .get(8..)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(MessageId::parse);
            let Some(id) = id else { continue };
            if held.get(&id).is_some_and(|until| *until > now) {
                continue;
            }
            held.insert(id.clone(), now + lease);
            claimed.push(id);
            if claimed.len() == limit {
                *self.claims.cursor.lock() = Some(key.to_vec());
                break;
            }
        }
        Ok(claimed)
    }

    async fn try_claim(
        &self,
        id: &MessageId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut held = self.claims.held.lock();
        if held.get(id).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        held.insert(id.clone(), now + lease);
        Ok(true)
    }

    async fn release(&self, id: &MessageId) -> Result<(), StoreError> {
        self.claims.held.lock().remove(id);
        Ok(())
    }

    async fn is_claimed(&self, id: &MessageId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self
            .claims
            .held
            .lock()
            .get(id)
            .is_some_and(|until| *until > now))
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some((key, _)) = self.tree(T::Outbox).first()? else {
            return Ok(None);
        };
        let ms = key
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .and_then(|ms| i64::try_from(ms).ok())
            .unwrap_or(0);
        Ok(DateTime::from_timestamp_millis(ms))
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        Ok(self.tree(T::Outbox).len() as u64)
    }
}
