//! The outbox's due work and who holds it.
//!
//! sled serves one process, so claims are kept in memory: a crash forgets them, and on restart
//! every entry is free to be claimed again — which is what at-least-once delivery needs. (An
//! engine shared by several instances keeps the lease with the entry instead.)
//!
//! A claim hands out at most one message per lane (a page and a person), the lane's earliest,
//! and none of a lane that has a message claimed (in memory, here) or held by a message waiting
//! for its retry (the `lanes` tree, written with the outbox entry so that a restart keeps it).
//! Each entry carries its lane, so a claim reads no message record (entries written before
//! lanes were kept carry none: their record says).

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

use super::{millis, SledStore, StoreError, T};
use crate::domain::lifecycle;
use crate::domain::{MessageId, MessageRecord};
use crate::store::{Claimed, Outbox};

/// Claims on outbox entries, and where the next scan for due work starts.
#[derive(Default)]
pub(super) struct Claims {
    state: Mutex<ClaimState>,
}

#[derive(Default)]
struct ClaimState {
    /// Held entries.
    held: HashMap<MessageId, Held>,
    /// Lanes with a message claimed by [`SledStore::claim`], and which.
    lanes: HashMap<Vec<u8>, MessageId>,
    /// The first key the next scan looks at; `None`: the start of the outbox. Under load the
    /// front of the outbox is all held, and every accept and every finished send asks for
    /// more: a scan continues where the previous one stopped instead of stepping over the held
    /// entries again — but never past an entry it left waiting for its lane, which must be
    /// looked at again before any later entry of that lane.
    start: Option<Vec<u8>>,
}

/// One held entry.
struct Held {
    until: DateTime<Utc>,
    /// Its lane and outbox key, when the claim knew them ([`SledStore::claim`]).
    lane: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClaimState {
    fn is_held(&self, id: &MessageId, now: DateTime<Utc>) -> bool {
        self.held.get(id).is_some_and(|h| h.until > now)
    }

    /// Whether the lane has a message in flight other than `id`.
    fn lane_in_flight(&self, lane: &[u8], id: &MessageId, now: DateTime<Utc>) -> bool {
        self.lanes
            .get(lane)
            .is_some_and(|other| other != id && self.is_held(other, now))
    }

    /// The next scan starts at `key` at the latest.
    fn rewind_to(&mut self, key: &[u8]) {
        if self.start.as_deref().is_some_and(|start| key < start) {
            self.start = Some(key.to_vec());
        }
    }
}

#[async_trait]
impl Outbox for SledStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Every key due at or before `now` sorts before the first key of the next millisecond.
        let end = millis(crate::domain::bounds::later(now, Duration::milliseconds(1))).to_vec();
        let mut state = self.claims.state.lock();
        let start = state.start.take();
        let start = match &start {
            Some(start) => Bound::Included(start.as_slice()),
            None => Bound::Unbounded,
        };
        let mut claimed = Vec::new();
        // Lanes with a message in flight met in this scan, or claimed by it.
        let mut busy = HashSet::new();
        // The first entry left waiting for its lane.
        let mut first_waiting: Option<Vec<u8>> = None;
        for item in self
            .tree(T::Outbox)
            .range::<&[u8], _>((start, Bound::Excluded(end.as_slice())))
        {
            let (key, value) = item?;
            // Keys are `due (8 bytes) ++ id`; a key that is not is skipped, not fatal.
            let id = key
                .get(8..)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(MessageId::parse);
            let Some(id) = id else { continue };
            if state.is_held(&id, now) {
                // In flight; a cancel's hold (no lane known) holds the lane back in this scan.
                busy.insert(value.to_vec());
                continue;
            }
            // An entry written before lanes has none: its record names it.
            let (lane, record) = match value.is_empty() {
                false => (value.to_vec(), None),
                true => match self.read::<MessageRecord>(T::Messages, id.as_str().as_bytes())? {
                    Some(record) => (lifecycle::lane(&record).into_bytes(), Some(record)),
                    None => continue,
                },
            };
            let waits = busy.contains(&lane)
                || state.lane_in_flight(&lane, &id, now)
                || self.held_by_another(&lane, &key)?;
            if waits {
                first_waiting.get_or_insert_with(|| key.to_vec());
                continue;
            }
            state.held.insert(
                id.clone(),
                Held {
                    until: now + lease,
                    lane: Some((lane.clone(), key.to_vec())),
                },
            );
            busy.insert(lane.clone());
            state.lanes.insert(lane, id.clone());
            claimed.push(Claimed { id, record });
            if claimed.len() == limit {
                // The next scan goes on after this entry, or from the first one left waiting.
                let mut after = key.to_vec();
                after.push(0);
                state.start = Some(first_waiting.unwrap_or(after));
                break;
            }
        }
        // A scan that reached the last due entry leaves `start` empty: the next one starts
        // from the front, where released entries may wait again.
        Ok(claimed)
    }

    async fn try_claim(
        &self,
        id: &MessageId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let mut state = self.claims.state.lock();
        if state.is_held(id, now) {
            return Ok(false);
        }
        let held = Held {
            until: now + lease,
            lane: None,
        };
        state.held.insert(id.clone(), held);
        Ok(true)
    }

    async fn release(&self, id: &MessageId) -> Result<(), StoreError> {
        self.unclaim(id);
        Ok(())
    }

    async fn is_claimed(&self, id: &MessageId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.claims.state.lock().is_held(id, now))
    }

    /// When the earliest outbox entry is due.
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

impl SledStore {
    /// Whether the lane is held by a message other than the one at `key` that still waits.
    fn held_by_another(&self, lane: &[u8], key: &[u8]) -> Result<bool, StoreError> {
        match self.tree(T::Lanes).get(lane)? {
            Some(holder) if holder.as_ref() != key => {
                Ok(self.tree(T::Outbox).contains_key(&holder)?)
            }
            _ => Ok(false),
        }
    }

    /// Lets go of a claim. An entry let go of without an outcome (it is still where it was
    /// claimed) is looked at again by the next scan.
    pub(super) fn unclaim(&self, id: &MessageId) {
        let mut state = self.claims.state.lock();
        let Some((lane, key)) = state.held.remove(id).and_then(|held| held.lane) else {
            return;
        };
        if state.lanes.get(&lane) == Some(id) {
            state.lanes.remove(&lane);
        }
        // A failed read looks again too: a scan too many costs less than an entry overlooked.
        if self.tree(T::Outbox).contains_key(&key).unwrap_or(true) {
            state.rewind_to(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::super::messages::tests::{new_message, record_for};
    use super::super::{SledStore, T};
    use crate::domain::lifecycle::{self, Event};
    use crate::domain::{Attempt, AttemptOutcome, MessageId, MessageRecord, MessageStatus};
    use crate::store::{Engine, Messages, Outbox};

    const LEASE: i64 = 5;

    async fn accept(store: &SledStore, psid: &str, due: DateTime<Utc>) -> MessageRecord {
        let r = record_for(psid, due);
        store.accept(new_message(r.clone())).await.expect("accept");
        r
    }

    async fn claim(store: &SledStore, now: DateTime<Utc>, limit: usize) -> Vec<MessageId> {
        store
            .claim_due(now, limit, Duration::minutes(LEASE))
            .await
            .expect("claim")
            .into_iter()
            .map(|claimed| claimed.id)
            .collect()
    }

    async fn change(store: &SledStore, id: &MessageId, event: Event, now: DateTime<Utc>) {
        store
            .update_message(id, Box::new(move |r| lifecycle::apply(r, event, now).ok()))
            .await
            .expect("update")
            .expect("changed");
    }

    /// The send went: the entry leaves the outbox and the claim is let go of.
    async fn sent(store: &SledStore, id: &MessageId, now: DateTime<Utc>) {
        let event = Event::Sent {
            graph_message_id: format!("m_{id}"),
        };
        change(store, id, event, now).await;
        store.release(id).await.expect("release");
    }

    fn retry(now: DateTime<Utc>, next: DateTime<Utc>) -> Event {
        Event::AttemptFailed(Attempt {
            at: now,
            outcome: AttemptOutcome::Retry,
            http_status: Some(500),
            graph_error: None,
            error: Some("transient".into()),
            next_attempt_at: Some(next),
            channel: Default::default(),
            reply: None,
        })
    }

    #[tokio::test]
    async fn a_claim_hands_out_one_message_per_person_the_earliest_and_none_while_one_is_in_flight()
    {
        let store = super::super::temporary().await;
        let now = Utc::now();
        let a1 = accept(&store, "1", now).await;
        let a2 = accept(&store, "1", now).await;
        let b1 = accept(&store, "2", now).await;
        assert_eq!(
            claim(&store, now, 10).await,
            vec![a1.id.clone(), b1.id.clone()]
        );
        assert!(claim(&store, now, 10).await.is_empty(), "a1 is in flight");
        store.release(&a1.id).await.expect("release");
        assert_eq!(
            claim(&store, now, 10).await,
            vec![a1.id.clone()],
            "let go of without an outcome: a1 is still first"
        );
        sent(&store, &a1.id, now).await;
        assert_eq!(claim(&store, now, 10).await, vec![a2.id.clone()]);
    }

    #[tokio::test]
    async fn a_message_waiting_for_its_retry_holds_its_person_even_across_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("store");
        let pseudonyms = || crate::domain::audit::Pseudonyms::new(b"k");
        let now = Utc::now();
        let soon = now + Duration::seconds(5);
        let (a1, a2, b1) = {
            let store = SledStore::open(&path, pseudonyms()).expect("open");
            let a1 = accept(&store, "1", now).await;
            let a2 = accept(&store, "1", now).await;
            let b1 = accept(&store, "2", now).await;
            assert_eq!(claim(&store, now, 1).await, vec![a1.id.clone()]);
            change(&store, &a1.id, retry(now, soon), now).await;
            store.release(&a1.id).await.expect("release");
            store.close().await.expect("close");
            (a1, a2, b1)
        };
        // The writer thread lets go of the store a moment after it answers the last write.
        let mut reopened = SledStore::open(&path, pseudonyms());
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            reopened = SledStore::open(&path, pseudonyms());
        }
        let store = reopened.expect("reopen");
        assert_eq!(
            claim(&store, now, 10).await,
            vec![b1.id.clone()],
            "a2 waits for a1's retry"
        );
        assert_eq!(claim(&store, soon, 10).await, vec![a1.id.clone()]);
        let later = soon + Duration::seconds(1);
        change(&store, &a1.id, Event::Postpone(later), soon).await;
        store.release(&a1.id).await.expect("release");
        assert!(
            claim(&store, soon, 10).await.is_empty(),
            "postponed by a page's pause: still holding"
        );
        assert_eq!(claim(&store, later, 10).await, vec![a1.id.clone()]);
        sent(&store, &a1.id, later).await;
        assert!(store.tree(T::Lanes).is_empty(), "sent: the lane is free");
        assert_eq!(claim(&store, later, 10).await, vec![a2.id.clone()]);
    }

    #[tokio::test]
    async fn entries_left_waiting_for_their_person_are_looked_at_again_before_later_ones() {
        let store = super::super::temporary().await;
        let now = Utc::now();
        let a1 = accept(&store, "1", now).await;
        let a2 = accept(&store, "1", now).await;
        let b1 = accept(&store, "2", now).await;
        let c1 = accept(&store, "3", now).await;
        assert_eq!(claim(&store, now, 1).await, vec![a1.id.clone()]);
        assert_eq!(
            claim(&store, now, 1).await,
            vec![b1.id.clone()],
            "a2 waits; the scan stopped at b1"
        );
        sent(&store, &a1.id, now).await;
        assert_eq!(
            claim(&store, now, 1).await,
            vec![a2.id.clone()],
            "a2, passed over, comes before c1"
        );
        assert_eq!(claim(&store, now, 1).await, vec![c1.id.clone()]);
    }

    #[tokio::test]
    async fn a_retry_due_in_the_same_millisecond_keeps_its_outbox_entry() {
        let store = super::super::temporary().await;
        let now = Utc::now();
        let m = accept(&store, "1", now).await;
        assert_eq!(claim(&store, now, 10).await, vec![m.id.clone()]);
        // A retry with next to no delay: the new key is the old one.
        change(&store, &m.id, retry(now, now), now).await;
        store.release(&m.id).await.expect("release");
        assert_eq!(store.outbox_len().await.expect("len"), 1, "still waiting");
        assert_eq!(
            claim(&store, now, 10).await,
            vec![m.id.clone()],
            "and claimed again"
        );
    }

    #[tokio::test]
    async fn a_deferred_message_holds_nothing_back() {
        let store = super::super::temporary().await;
        let now = Utc::now();
        let tomorrow = now + Duration::days(1);
        let mut deferred = record_for("1", tomorrow);
        deferred.status = MessageStatus::Deferred;
        store
            .accept(new_message(deferred.clone()))
            .await
            .expect("accept");
        let queued = accept(&store, "1", now).await;
        assert_eq!(claim(&store, now, 10).await, vec![queued.id.clone()]);
        change(&store, &deferred.id, Event::Postpone(tomorrow), now).await;
        assert!(
            store.tree(T::Lanes).is_empty(),
            "a deferred message holds nothing"
        );
    }

    #[tokio::test]
    async fn entries_written_before_lanes_were_kept_find_their_lane_in_the_record() {
        let store = super::super::temporary().await;
        let now = Utc::now();
        let a1 = accept(&store, "1", now).await;
        let a2 = accept(&store, "1", now).await;
        let outbox = store.tree(T::Outbox);
        for item in outbox.iter() {
            let (key, _) = item.expect("entry");
            outbox
                .insert(key, Vec::new())
                .expect("as an older version wrote it");
        }
        assert_eq!(claim(&store, now, 10).await, vec![a1.id.clone()]);
        sent(&store, &a1.id, now).await;
        assert_eq!(claim(&store, now, 10).await, vec![a2.id]);
    }
}
