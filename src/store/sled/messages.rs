//! Messages, the outbox index and idempotency records, as one transaction sees them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use std::collections::HashSet;

use super::writer::Job;
use super::{decode, encode, joined, millis, SledStore, StoreError, Tx, TxResult, T};
use crate::domain::decision::TraceStep;
use crate::domain::lifecycle::{self, Effects, OutboxChange};
use crate::domain::{IdempotencyRecord, MessageId, MessageRecord};
use crate::store::{
    answered_message, erase_answer, Accepted, MessageChange, Messages, MessagesChange, NewMessage,
    PERSONAL_IN_ANSWER, TRACE_IN_ANSWER,
};

/// Idempotency records rewritten per transaction by an erasure.
const ERASE_CHUNK: usize = 500;

/// A trace encoded for the `traces` tree, under its sha256.
pub(super) struct EncodedTrace {
    sha256: [u8; 32],
    json: Vec<u8>,
}

impl EncodedTrace {
    fn new(trace: &[TraceStep]) -> Result<EncodedTrace, StoreError> {
        let json = encode(T::Traces, &trace)?;
        Ok(EncodedTrace {
            sha256: Sha256::digest(&json).into(),
            json,
        })
    }

    fn hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// A [`NewMessage`] with its record and trace already encoded, on the caller's thread: the
/// writer, which every write waits for, only stages bytes.
pub(super) struct EncodedMessage {
    new: NewMessage,
    record: Vec<u8>,
    trace: Option<EncodedTrace>,
}

impl EncodedMessage {
    /// Encodes `new`; a trace that `store` holds already is not stored again. Traces are never
    /// removed, so one found here is still there when the writer runs: the writer, which every
    /// write waits for, is spared the read.
    pub(super) fn new(
        mut new: NewMessage,
        store: &SledStore,
    ) -> Result<EncodedMessage, StoreError> {
        let trace = match new.effects.trace.take().filter(|t| !t.is_empty()) {
            Some(trace) => Some(EncodedTrace::new(&trace)?),
            None => None,
        };
        new.record.trace_sha256 = trace.as_ref().map(EncodedTrace::hex);
        let trace = match trace {
            Some(t) if store.tree(T::Traces).contains_key(t.sha256)? => None,
            other => other,
        };
        Ok(EncodedMessage {
            record: encode(T::Messages, &new.record)?,
            new,
            trace,
        })
    }
}

fn outbox_key(due: DateTime<Utc>, id: &MessageId) -> Vec<u8> {
    let mut key = millis(due).to_vec();
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

/// Where a waiting message stands in the outbox.
pub(super) fn due_of(record: &MessageRecord) -> DateTime<Utc> {
    record.not_before.unwrap_or(record.created_at)
}

fn send_key(record: &MessageRecord, at: DateTime<Utc>) -> Vec<u8> {
    let mut tail = millis(at).to_vec();
    tail.extend_from_slice(record.id.as_str().as_bytes());
    joined(&record.recipient.key(), &tail)
}

impl Tx<'_> {
    /// Writes one accepted message and what goes with it; the idempotency check sees earlier
    /// messages of the same batch.
    pub(super) fn write_new(&mut self, encoded: &EncodedMessage) -> TxResult<Accepted> {
        let new = &encoded.new;
        let record = &new.record;
        if let Some(idem) = &new.idempotency {
            let key = joined(&idem.client, idem.key.as_bytes());
            if let Some(first) = self.get::<IdempotencyRecord>(T::Idempotency, &key)? {
                return Ok(if first.request_sha256 == idem.request_sha256 {
                    Accepted::Replay(Box::new(first))
                } else {
                    Accepted::Conflict
                });
            }
            self.put(
                T::Idempotency,
                &key,
                &IdempotencyRecord {
                    request_sha256: idem.request_sha256.clone(),
                    answer: idem.answer.clone(),
                    at: record.created_at,
                },
            )?;
        }
        self.put_raw(T::Messages, record.id.as_str().as_bytes(), &encoded.record)?;
        if let Some(trace) = &encoded.trace {
            // Checked on the caller's thread (see `EncodedMessage::new`): not stored yet, or
            // stored by another accept of this batch with the very same bytes.
            self.put_raw(T::Traces, &trace.sha256, &trace.json)?;
        }
        self.write_effects(record, None, &new.effects)?;
        self.recount(None, record)?;
        Ok(Accepted::Stored)
    }

    /// Applies `change` to the stored message and writes the effects it returns.
    pub(super) fn update_message(
        &mut self,
        id: &MessageId,
        change: impl FnOnce(&mut MessageRecord) -> Option<Effects>,
    ) -> TxResult<Option<MessageRecord>> {
        let key = id.as_str().as_bytes();
        let Some(mut record) = self.get::<MessageRecord>(T::Messages, key)? else {
            return Ok(None);
        };
        let old_due = due_of(&record);
        let before = record.campaign.is_some().then(|| record.clone());
        let graph_id_before = record.graph_message_id.clone();
        let Some(mut effects) = change(&mut record) else {
            return Ok(None);
        };
        self.recount(before.as_ref(), &record)?;
        if let OutboxChange::Schedule(due) = effects.outbox {
            record.not_before = Some(due);
        }
        if let Some(trace) = effects.trace.take() {
            let trace = EncodedTrace::new(&trace)?;
            if !self.contains(T::Traces, &trace.sha256)? {
                self.put_raw(T::Traces, &trace.sha256, &trace.json)?;
            }
            record.trace_sha256 = Some(trace.hex());
        }
        self.write_effects(&record, Some(old_due), &effects)?;
        if let Some(graph_id) = lifecycle::graph_id_to_index(graph_id_before.as_deref(), &record) {
            self.put_raw(T::GraphIds, graph_id.as_bytes(), id.as_str().as_bytes())?;
        }
        self.put(T::Messages, key, &record)?;
        Ok(Some(record))
    }

    /// The outbox entry, send history and audit entries of one change; `old_due` is where the
    /// message stood in the outbox before it (`None` for a new message).
    fn write_effects(
        &mut self,
        record: &MessageRecord,
        old_due: Option<DateTime<Utc>>,
        effects: &Effects,
    ) -> TxResult<()> {
        let id = &record.id;
        match (effects.outbox, old_due) {
            (OutboxChange::Keep, _) | (OutboxChange::Remove, None) => {}
            (OutboxChange::Remove, Some(old)) => {
                self.remove(T::Outbox, &outbox_key(old, id))?;
                self.let_go_of_lane(record)?;
            }
            (OutboxChange::Schedule(due), old) => {
                let key = outbox_key(due, id);
                let lane = lifecycle::lane(record);
                if let Some(old) = old {
                    // Removed before the new key is put: due again in the same millisecond, the
                    // two keys are one, and the entry must stay.
                    self.remove(T::Outbox, &outbox_key(old, id))?;
                    if effects.holds_lane {
                        self.put_raw(T::Lanes, lane.as_bytes(), &key)?;
                    } else {
                        self.let_go_of_lane(record)?;
                    }
                }
                self.put_raw(T::Outbox, &key, lane.as_bytes())?;
            }
        }
        if let Some(at) = effects.counts_as_send {
            self.put_raw(
                T::Sends,
                &send_key(record, at),
                record.category.as_str().as_bytes(),
            )?;
        }
        for entry in &effects.audit {
            self.audit(entry.clone())?;
        }
        Ok(())
    }
}

impl Tx<'_> {
    /// Frees the message's lane if the message holds it (a new message holds nothing).
    fn let_go_of_lane(&mut self, record: &MessageRecord) -> TxResult<()> {
        let lane = lifecycle::lane(record);
        let holder = self.raw(T::Lanes, lane.as_bytes())?;
        if holder.is_some_and(|key| key.get(8..) == Some(record.id.as_str().as_bytes())) {
            self.remove(T::Lanes, lane.as_bytes())?;
        }
        Ok(())
    }
}

#[async_trait]
impl Messages for SledStore {
    async fn accept(&self, new: NewMessage) -> Result<Accepted, StoreError> {
        let new = self.encode_new(new)?;
        self.submit(|reply| Job::Accept { new, reply }).await
    }

    async fn message(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        self.read(T::Messages, id.as_str().as_bytes())
    }

    async fn idempotency(
        &self,
        client: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.read(T::Idempotency, &joined(client, key.as_bytes()))
    }

    /// Every record is looked at (they are keyed by client and key, not by person), but only
    /// those holding a template are read.
    async fn erase_idempotency_answers(&self, messages: &[MessageId]) -> Result<u64, StoreError> {
        let ids: HashSet<&MessageId> = messages.iter().collect();
        let markers = [PERSONAL_IN_ANSWER.as_bytes(), TRACE_IN_ANSWER.as_bytes()];
        let mut keys = Vec::new();
        for item in self.tree(T::Idempotency).iter() {
            let (key, value) = item?;
            let holds = |marker: &[u8]| value.windows(marker.len()).any(|w| w == marker);
            if !markers.into_iter().any(holds) {
                continue;
            }
            let record: IdempotencyRecord = decode(T::Idempotency, &value)?;
            if ids.contains(answered_message(&record.answer)) {
                keys.push(key);
            }
        }
        let mut erased = 0;
        for chunk in keys.chunks(ERASE_CHUNK) {
            erased += self.commit(|tx| {
                let mut n = 0;
                for key in chunk {
                    if let Some(mut record) = tx.get::<IdempotencyRecord>(T::Idempotency, key)? {
                        if erase_answer(&mut record.answer) {
                            tx.put(T::Idempotency, key, &record)?;
                            n += 1;
                        }
                    }
                }
                Ok(n)
            })?;
        }
        self.durable().await?;
        Ok(erased)
    }

    /// The trace of the message's latest decision (empty if none was kept).
    async fn trace(&self, record: &MessageRecord) -> Result<Vec<TraceStep>, StoreError> {
        let Some(key) = record
            .trace_sha256
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
        else {
            return Ok(Vec::new());
        };
        Ok(self.read(T::Traces, &key)?.unwrap_or_default())
    }

    async fn update_message(
        &self,
        id: &MessageId,
        change: MessageChange,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.submit(|reply| Job::Update {
            id: id.clone(),
            change: Some(change),
            reply,
        })
        .await
    }

    async fn update_messages(
        &self,
        ids: Vec<MessageId>,
        change: MessagesChange,
    ) -> Result<usize, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.submit(|reply| Job::UpdateMany { ids, change, reply })
            .await
    }

    async fn update_and_release(
        &self,
        id: &MessageId,
        change: MessageChange,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let changed = self.update_message(id, change).await;
        // Claims live in this process: let go of it whether or not the write went through
        // (a failed one leaves the message in the outbox, tried again).
        self.unclaim(id);
        changed
    }

    async fn messages_by_graph_ids(&self, mids: &[String]) -> Result<Vec<MessageId>, StoreError> {
        let mut ids = Vec::new();
        for mid in mids {
            if let Some(id) = self.message_by_graph_id(mid)? {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

impl SledStore {
    /// The message Messenger knows as `graph_id`.
    pub(super) fn message_by_graph_id(
        &self,
        graph_id: &str,
    ) -> Result<Option<MessageId>, StoreError> {
        Ok(self
            .tree(T::GraphIds)
            .get(graph_id.as_bytes())?
            .and_then(|v| std::str::from_utf8(&v).ok().and_then(MessageId::parse)))
    }

    /// Encodes `new` here, on the caller's thread, then joins the writer's queue
    /// (`writer.rs`), which commits whatever has queued up in a single transaction and a
    /// single flush.
    pub(super) fn encode_new(&self, new: NewMessage) -> Result<Box<EncodedMessage>, StoreError> {
        EncodedMessage::new(new, self).map(Box::new)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::decision::{Decision, Outcome, Reason, Via};
    use crate::domain::lifecycle::{self, Event};
    use crate::domain::{
        Acceptance, Category, Content, MessageStatus, Psid, Recipient, SendAnswer,
    };
    use crate::store::{AuditFilter, AuditLog, AuditOrder, Engine, IdempotencyWrite, Outbox};

    fn record(due: DateTime<Utc>) -> MessageRecord {
        record_for("42", due)
    }

    /// A queued response to `psid`, due at `due`.
    pub(crate) fn record_for(psid: &str, due: DateTime<Utc>) -> MessageRecord {
        MessageRecord {
            id: MessageId::generate(),
            created_at: due,
            client: "shop".into(),
            role: crate::domain::Role::Backend,
            page_id: crate::domain::PageId::parse("1").expect("a page id"),
            recipient: Recipient::Psid(Psid::parse(psid).expect("psid")),
            category: Category::Response,
            content: Content::Message(serde_json::json!({"text": "hi"})),
            utility_template: None,
            decision: Decision {
                outcome: Outcome::Allow,
                reason: Reason::Ok,
                rule: "r".into(),
                policy_version: "v".into(),
                messaging_type: None,
                tag: None,
                utility_template: None,
                via: Via::Recipient,
                not_before: None,
                consent: None,
                trace: vec![],
            },
            status: MessageStatus::Queued,
            channel: Default::default(),
            fallback: None,
            not_before: Some(due),
            expires_at: None,
            attempts: vec![],
            graph_message_id: None,
            sent_at: None,
            history: vec![],
            campaign: None,
            trace_sha256: None,
            content_sha256: "x".into(),
        }
    }

    /// `record` as the accept path would store it.
    pub(crate) fn new_message(mut record: MessageRecord) -> NewMessage {
        let effects = lifecycle::accepted(&mut record);
        NewMessage {
            record,
            effects,
            idempotency: None,
        }
    }

    async fn put(store: &SledStore, r: &MessageRecord) {
        let outcome = store.accept(new_message(r.clone())).await.expect("accept");
        assert!(matches!(outcome, Accepted::Stored));
    }

    async fn claim_all(store: &SledStore, now: DateTime<Utc>, limit: usize) -> Vec<MessageId> {
        store
            .claim_due(now, limit, Duration::minutes(5))
            .await
            .expect("claim")
            .into_iter()
            .map(|claimed| claimed.id)
            .collect()
    }

    fn step(detail: &'static str) -> TraceStep {
        TraceStep {
            rule: "policies/default.toml#window.standard".into(),
            result: crate::domain::decision::StepResult::Pass,
            detail: detail.into(),
        }
    }

    #[tokio::test]
    async fn alike_traces_are_stored_once_and_each_message_finds_its_own() {
        let store = super::super::temporary().await;
        let now = Utc::now();
        let (mut a, mut b) = (record(now), record(now));
        a.decision.trace = vec![step("inside the window")];
        b.decision.trace = vec![step("inside the window")];
        put(&store, &a).await;
        put(&store, &b).await;
        assert_eq!(
            store.tree(T::Traces).len(),
            1,
            "one trace for two decisions"
        );
        for r in [&a, &b] {
            let stored = store.message(&r.id).await.expect("read").expect("stored");
            assert!(stored.decision.trace.is_empty(), "the record keeps no copy");
            assert_eq!(store.trace(&stored).await.expect("trace"), a.decision.trace);
        }

        // A decision taken again brings its own trace; the other message keeps the first.
        let again = vec![step("decided again")];
        let moved = again.clone();
        store
            .update_message(
                &a.id,
                Box::new(move |r| {
                    r.status = MessageStatus::Deferred;
                    let mut decision = r.decision.clone();
                    decision.trace = moved;
                    lifecycle::apply(r, Event::Decided(decision), now).ok()
                }),
            )
            .await
            .expect("update")
            .expect("changed");
        let a_now = store.message(&a.id).await.expect("read").expect("stored");
        let b_now = store.message(&b.id).await.expect("read").expect("stored");
        assert_eq!(store.trace(&a_now).await.expect("trace"), again);
        assert_eq!(store.trace(&b_now).await.expect("trace"), b.decision.trace);
        assert_eq!(store.tree(T::Traces).len(), 2);
    }

    #[tokio::test]
    async fn claims_hand_out_what_is_due_in_order_and_never_twice() {
        let store = super::super::temporary().await;
        let now = Utc::now();
        let later = record(now + Duration::hours(1));
        let first = record(now - Duration::seconds(2));
        // Another person's: one person's messages go one at a time (see `outbox.rs`).
        let second = record_for("43", now - Duration::seconds(1));
        for r in [&later, &second, &first] {
            put(&store, r).await;
        }
        assert_eq!(claim_all(&store, now, 1).await, vec![first.id.clone()]);
        assert_eq!(
            claim_all(&store, now, 10).await,
            vec![second.id.clone()],
            "the first is held; the later one is not due"
        );
        assert!(claim_all(&store, now, 10).await.is_empty());
        assert!(store.is_claimed(&first.id, now).await.expect("claimed"));
        store.release(&first.id).await.expect("release");
        assert!(!store.is_claimed(&first.id, now).await.expect("claimed"));
        assert_eq!(claim_all(&store, now, 10).await, vec![first.id.clone()]);
        assert!(
            !store
                .try_claim(&second.id, now, Duration::minutes(1))
                .await
                .expect("try"),
            "held by the first claim"
        );
        let past_lease = now + Duration::minutes(6);
        assert!(
            store
                .try_claim(&second.id, past_lease, Duration::minutes(1))
                .await
                .expect("try"),
            "a lease that ran out is free again"
        );
        assert_eq!(
            store
                .next_due()
                .await
                .expect("next")
                .map(|d| d.timestamp_millis()),
            Some((now - Duration::seconds(2)).timestamp_millis())
        );
    }

    #[tokio::test]
    async fn a_closed_store_reopens_with_its_messages_and_audit_head() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("store");
        let r = record(Utc::now());
        let head = {
            let store =
                SledStore::open(&path, crate::domain::audit::Pseudonyms::new(b"k")).expect("open");
            put(&store, &r).await;
            store.close().await.expect("close");
            store.head().await.expect("head")
        };
        let store = SledStore::open(&path, crate::domain::audit::Pseudonyms::new(b"k"))
            .expect("reopen: the file lock was released");
        assert_eq!(store.head().await.expect("head"), head);
        assert_eq!(
            store.message(&r.id).await.expect("read").map(|m| m.id),
            Some(r.id)
        );
        assert!(store.verify().await.expect("verify").ok);
    }

    /// Records and audit entries are stored packed; a store written before packing (its values
    /// plain JSON) reads, verifies and is found just the same.
    #[tokio::test]
    async fn values_are_packed_and_values_stored_plain_still_read() {
        let store = super::super::temporary().await;
        let records: Vec<MessageRecord> = (0..3).map(|_| record(Utc::now())).collect();
        let mut packed = Vec::new();
        for r in &records {
            put(&store, r).await;
            packed.push(store.message(&r.id).await.expect("read").expect("record"));
        }
        for t in [T::Messages, T::Audit] {
            for item in store.tree(t).iter() {
                let (key, stored) = item.expect("read");
                let json = crate::store::packing::unpack(&stored).expect("unpack");
                assert!(
                    stored[0] != b'{' && stored.len() < json.len(),
                    "{t:?}: {} bytes stored for {} of JSON",
                    stored.len(),
                    json.len()
                );
                store.tree(t).insert(key, json.as_ref()).expect("plain");
            }
        }
        for r in &packed {
            let read = store.message(&r.id).await.expect("read").expect("record");
            assert_eq!(
                serde_json::to_value(&read).ok(),
                serde_json::to_value(r).ok()
            );
        }
        let v = store.verify().await.expect("verify");
        assert_eq!((v.ok, v.entries), (true, 3), "{v:?}");
        let page = store
            .query(&AuditFilter::default(), AuditOrder::OldestFirst, None, 10)
            .await
            .expect("query");
        assert_eq!(page.entries.len(), 3);
    }

    #[tokio::test]
    async fn accepting_chains_the_audit_log() {
        let store = super::super::temporary().await;
        for _ in 0..3 {
            put(&store, &record(Utc::now())).await;
        }
        let v = store.verify().await.expect("verify");
        assert!(v.ok, "{v:?}");
        assert_eq!(v.entries, 3);
        assert_eq!(store.head().await.expect("head").seq, 3);
    }

    #[tokio::test]
    async fn a_disk_read_error_is_reported_and_altered_bytes_are_named() {
        let store = super::super::temporary().await;
        for _ in 0..3 {
            put(&store, &record(Utc::now())).await;
        }
        store
            .tree(T::Audit)
            .insert(2u64.to_be_bytes(), b"{not an entry".to_vec())
            .expect("tamper");
        let v = store.verify().await.expect("a read that works is no error");
        assert_eq!((v.ok, v.first_bad_seq), (false, Some(2)));
    }

    fn answer(r: &MessageRecord) -> SendAnswer {
        SendAnswer::Accepted(Acceptance {
            id: r.id.clone(),
            status: r.status,
            not_before: None,
            decision: r.decision.clone(),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_accepts_with_one_key_store_one_message() {
        let store = super::super::temporary().await;
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    let r = record(Utc::now());
                    let mut new = new_message(r.clone());
                    new.idempotency = Some(IdempotencyWrite {
                        client: "shop".into(),
                        key: "same".into(),
                        request_sha256: "body".into(),
                        answer: answer(&r),
                    });
                    store.accept(new).await.expect("accept")
                })
            })
            .collect();
        let mut stored = 0;
        for t in tasks {
            if matches!(t.await.expect("task"), Accepted::Stored) {
                stored += 1;
            }
        }
        assert_eq!(
            stored, 1,
            "one message for one key, however the batches fall"
        );
        assert_eq!(store.outbox_len().await.expect("len"), 1);
        assert_eq!(store.verify().await.expect("verify").entries, 1);
    }

    #[tokio::test]
    async fn an_idempotency_key_replays_or_conflicts() {
        let store = super::super::temporary().await;
        let r = record(Utc::now());
        let first = answer(&r);
        let new = |sha: &str| {
            let mut new = new_message(r.clone());
            new.idempotency = Some(IdempotencyWrite {
                client: "shop".into(),
                key: "k1".into(),
                request_sha256: sha.into(),
                answer: first.clone(),
            });
            new
        };
        assert!(matches!(store.accept(new("a")).await, Ok(Accepted::Stored)));
        assert!(
            matches!(store.accept(new("a")).await, Ok(Accepted::Replay(f)) if f.answer == first)
        );
        assert!(matches!(
            store.accept(new("b")).await,
            Ok(Accepted::Conflict)
        ));
    }
}
