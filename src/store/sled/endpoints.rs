//! Event endpoints, how far each has heard each audit chain, the deliveries waiting for their
//! retry and the attempts made (`domain::endpoint`). One chain on sled (0), which this process
//! always runs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{decode, joined, millis, SledStore, StoreError, Tx, TxResult, T};
use crate::domain::audit::AuditEntry;
use crate::domain::endpoint::{
    AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointRecord, EventRefRecord, PendingDelivery,
};
use crate::store::{EndpointChange, EventEndpoints};

fn event_bytes(event: &EventRefRecord) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[..4].copy_from_slice(&event.chain.to_be_bytes());
    out[4..12].copy_from_slice(&event.seq.to_be_bytes());
    out[12] = event.index;
    out
}

fn cursor_key(id: &str, chain: u32) -> Vec<u8> {
    joined(id, &chain.to_be_bytes())
}

fn pending_key(id: &str, due_ms: [u8; 8], event: &EventRefRecord) -> Vec<u8> {
    let mut rest = due_ms.to_vec();
    rest.extend_from_slice(&event_bytes(event));
    joined(id, &rest)
}

fn by_event_key(id: &str, event: &EventRefRecord) -> Vec<u8> {
    joined(id, &event_bytes(event))
}

/// Every key of `t` under `id`.
fn keys_of(store: &SledStore, t: T, id: &str) -> Result<Vec<sled::IVec>, StoreError> {
    Ok(store
        .tree(t)
        .scan_prefix(joined(id, &[]))
        .keys()
        .collect::<Result<_, _>>()?)
}

impl Tx<'_> {
    /// Drops the endpoint's pending delivery of `event`, if there is one.
    fn drop_pending(&mut self, id: &str, event: &EventRefRecord) -> TxResult<()> {
        let index = by_event_key(id, event);
        if let Some(due) = self.raw(T::EndpointPendingByEvent, &index)? {
            if let Ok(due) = <[u8; 8]>::try_from(due.as_ref()) {
                self.remove(T::EndpointPending, &pending_key(id, due, event))?;
            }
            self.remove(T::EndpointPendingByEvent, &index)?;
        }
        Ok(())
    }

    fn put_pending(&mut self, id: &str, pending: &PendingDelivery) -> TxResult<()> {
        self.drop_pending(id, &pending.event)?;
        let due = millis(pending.due);
        self.put(
            T::EndpointPending,
            &pending_key(id, due, &pending.event),
            pending,
        )?;
        self.put_raw(
            T::EndpointPendingByEvent,
            &by_event_key(id, &pending.event),
            &due,
        )
    }

    fn audit_all(&mut self, entries: Vec<AuditEntry>) -> TxResult<()> {
        for entry in entries {
            self.audit(entry)?;
        }
        Ok(())
    }
}

#[async_trait]
impl EventEndpoints for SledStore {
    async fn create_endpoint(
        &self,
        endpoint: &EndpointRecord,
        start: &[(u32, u64)],
        audit: Vec<AuditEntry>,
    ) -> Result<(), StoreError> {
        self.commit(|tx| {
            tx.put(T::Endpoints, endpoint.id.as_bytes(), endpoint)?;
            for (chain, seq) in start {
                tx.put_raw(
                    T::EndpointCursors,
                    &cursor_key(&endpoint.id, *chain),
                    &seq.to_be_bytes(),
                )?;
            }
            tx.audit_all(audit)
        })?;
        self.durable().await
    }

    async fn endpoint(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError> {
        self.read(T::Endpoints, id.as_bytes())
    }

    /// Ids are ULIDs, so key order is creation order.
    async fn endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        self.tree(T::Endpoints)
            .iter()
            .map(|item| {
                let (_, value) = item?;
                decode(T::Endpoints, &value)
            })
            .collect()
    }

    async fn update_endpoint(
        &self,
        id: &str,
        change: EndpointChange,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let changed = self.commit(|tx| {
            let Some(mut endpoint) = tx.get::<EndpointRecord>(T::Endpoints, id.as_bytes())? else {
                return Ok(None);
            };
            let Some(entries) = change(&mut endpoint) else {
                return Ok(None);
            };
            tx.put(T::Endpoints, id.as_bytes(), &endpoint)?;
            tx.audit_all(entries)?;
            Ok(Some(endpoint))
        })?;
        if changed.is_some() {
            self.durable().await?;
        }
        Ok(changed)
    }

    async fn delete_endpoint(&self, id: &str, audit: Vec<AuditEntry>) -> Result<bool, StoreError> {
        let trees = [
            T::EndpointCursors,
            T::EndpointPending,
            T::EndpointPendingByEvent,
            T::EndpointAttempts,
        ];
        let mut doomed = Vec::new();
        for t in trees {
            doomed.extend(keys_of(self, t, id)?.into_iter().map(|k| (t, k)));
        }
        let deleted = self.commit(|tx| {
            if !tx.contains(T::Endpoints, id.as_bytes())? {
                return Ok(false);
            }
            tx.remove(T::Endpoints, id.as_bytes())?;
            for (t, key) in &doomed {
                tx.remove(*t, key)?;
            }
            tx.audit_all(audit)?;
            Ok(true)
        })?;
        if deleted {
            self.durable().await?;
        }
        Ok(deleted)
    }

    async fn cursor(&self, id: &str, chain: u32) -> Result<u64, StoreError> {
        Ok(self
            .tree(T::EndpointCursors)
            .get(cursor_key(id, chain))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    async fn due_deliveries(
        &self,
        id: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let start = joined(id, &[]);
        let end = joined(
            id,
            &u64::from_be_bytes(millis(now))
                .saturating_add(1)
                .to_be_bytes(),
        );
        self.tree(T::EndpointPending)
            .range(start..end)
            .take(limit)
            .map(|item| {
                let (_, value) = item?;
                decode(T::EndpointPending, &value)
            })
            .collect()
    }

    async fn next_delivery_due(&self, id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self
            .tree(T::EndpointPending)
            .scan_prefix(joined(id, &[]))
            .next()
        {
            Some(item) => {
                let (_, value) = item?;
                let pending: PendingDelivery = decode(T::EndpointPending, &value)?;
                Ok(Some(pending.due))
            }
            None => Ok(None),
        }
    }

    /// A round for an endpoint deleted meanwhile writes nothing: its cursors and deliveries
    /// went with it.
    async fn record_deliveries(&self, id: &str, round: DeliveryRound) -> Result<(), StoreError> {
        let written = self.commit(|tx| {
            if !tx.contains(T::Endpoints, id.as_bytes())? {
                return Ok(false);
            }
            for event in &round.done {
                tx.drop_pending(id, event)?;
            }
            for pending in &round.pending {
                tx.put_pending(id, pending)?;
            }
            for attempt in &round.attempts {
                tx.put(
                    T::EndpointAttempts,
                    &joined(id, attempt.id.as_bytes()),
                    attempt,
                )?;
            }
            if let Some((chain, seq)) = round.cursor {
                tx.put_raw(
                    T::EndpointCursors,
                    &cursor_key(id, chain),
                    &seq.to_be_bytes(),
                )?;
            }
            Ok(true)
        })?;
        if written {
            self.durable().await?;
        }
        Ok(())
    }

    async fn attempts(
        &self,
        id: &str,
        status: Option<AttemptStatus>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let start = joined(id, &[]);
        let end = match before {
            Some(before) => joined(id, before.as_bytes()),
            None => joined(id, &[0xff]),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.tree(T::EndpointAttempts).range(start..end).rev() {
            if out.len() == limit {
                break;
            }
            let (_, value) = item?;
            let attempt: DeliveryAttempt = decode(T::EndpointAttempts, &value)?;
            if status.is_none_or(|s| s == attempt.status) {
                out.push(attempt);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn endpoint(id: &str) -> EndpointRecord {
        EndpointRecord::example(id)
    }

    fn event(seq: u64) -> EventRefRecord {
        EventRefRecord {
            chain: 0,
            seq,
            index: 0,
        }
    }

    fn attempt(id: &str, status: AttemptStatus) -> DeliveryAttempt {
        DeliveryAttempt {
            id: id.into(),
            event_id: "evt_0_1_0".into(),
            event_type: "message.sent".into(),
            at: Utc::now(),
            status,
            http_status: Some(500),
            error: None,
            duration_ms: 3,
            attempt: 1,
            next_attempt_at: None,
        }
    }

    #[tokio::test]
    async fn pending_deliveries_come_due_in_order_are_replaced_and_go_with_their_endpoint() {
        let store = crate::store::sled::temporary().await;
        let now = Utc::now();
        store
            .create_endpoint(&endpoint("ep_a"), &[(0, 7)], Vec::new())
            .await
            .expect("create");
        store
            .create_endpoint(&endpoint("ep_b"), &[(0, 7)], Vec::new())
            .await
            .expect("create");
        assert_eq!(store.cursor("ep_a", 0).await.expect("cursor"), 7);
        let pending = |seq, due| PendingDelivery {
            event: event(seq),
            due,
            attempts: 1,
        };
        let round = DeliveryRound {
            cursor: Some((0, 12)),
            attempts: vec![
                attempt("att_1", AttemptStatus::Retrying),
                attempt("att_2", AttemptStatus::Succeeded),
            ],
            pending: vec![
                pending(9, now + Duration::seconds(5)),
                pending(8, now + Duration::seconds(1)),
            ],
            done: Vec::new(),
        };
        store.record_deliveries("ep_a", round).await.expect("round");
        assert_eq!(store.cursor("ep_a", 0).await.expect("cursor"), 12);
        assert_eq!(store.cursor("ep_b", 0).await.expect("cursor"), 7);
        assert!(store
            .due_deliveries("ep_a", now, 10)
            .await
            .expect("due")
            .is_empty());
        let due = store
            .due_deliveries("ep_a", now + Duration::seconds(10), 10)
            .await
            .expect("due");
        assert_eq!(due.iter().map(|p| p.event.seq).collect::<Vec<_>>(), [8, 9]);
        assert!(store
            .due_deliveries("ep_b", now + Duration::days(1), 10)
            .await
            .expect("due")
            .is_empty());

        // Replacing a pending delivery moves it; a done one goes.
        let round = DeliveryRound {
            pending: vec![pending(8, now + Duration::seconds(60))],
            done: vec![event(9)],
            ..DeliveryRound::default()
        };
        store.record_deliveries("ep_a", round).await.expect("round");
        let next = store
            .next_delivery_due("ep_a")
            .await
            .expect("next")
            .expect("one");
        assert!(next > now + Duration::seconds(59), "{next}");
        let due = store
            .due_deliveries("ep_a", now + Duration::seconds(61), 10)
            .await
            .expect("due");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event.seq, 8);

        let failed = store
            .attempts("ep_a", Some(AttemptStatus::Retrying), None, 10)
            .await
            .expect("attempts");
        assert_eq!(failed.len(), 1);
        let all = store
            .attempts("ep_a", None, None, 10)
            .await
            .expect("attempts");
        assert_eq!(
            all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["att_2", "att_1"]
        );
        let after = store
            .attempts("ep_a", None, Some("att_2"), 10)
            .await
            .expect("attempts");
        assert_eq!(after.len(), 1);

        assert!(store
            .delete_endpoint("ep_a", Vec::new())
            .await
            .expect("delete"));
        assert!(!store
            .delete_endpoint("ep_a", Vec::new())
            .await
            .expect("delete"));
        assert_eq!(store.cursor("ep_a", 0).await.expect("cursor"), 0);
        assert_eq!(store.next_delivery_due("ep_a").await.expect("next"), None);
        assert!(store
            .attempts("ep_a", None, None, 10)
            .await
            .expect("attempts")
            .is_empty());
        // A late round of a deleted endpoint writes nothing.
        let round = DeliveryRound {
            cursor: Some((0, 20)),
            ..DeliveryRound::default()
        };
        store.record_deliveries("ep_a", round).await.expect("round");
        assert_eq!(store.cursor("ep_a", 0).await.expect("cursor"), 0);
        assert_eq!(store.endpoints().await.expect("list").len(), 1);
    }
}

#[cfg(test)]
mod visibility {
    use crate::domain::audit::{AuditEntry, AuditKind};
    use crate::store::AuditLog;

    #[tokio::test]
    async fn events_are_read_only_from_entries_on_disk() {
        let store = crate::store::sled::temporary().await;
        let entry = AuditEntry {
            kind: AuditKind::Policy,
            ..AuditEntry::default()
        };
        // Committed, not yet flushed: a crash could still undo it.
        store.commit(|tx| tx.audit(entry)).expect("commit");
        assert_eq!(store.head().await.expect("head").seq, 1);
        assert!(store.read_chain(0, 0, 10).await.expect("read").is_empty());
        assert_eq!(store.chains().await.expect("chains"), [(0, 0)]);
        store.durable().await.expect("durable");
        assert_eq!(store.read_chain(0, 0, 10).await.expect("read").len(), 1);
        assert_eq!(store.chains().await.expect("chains"), [(0, 1)]);
    }
}
