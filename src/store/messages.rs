//! Messages, the outbox and idempotency records.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::records::{IdempotencyRecord, MessageRecord, MessageStatus};
use super::writer::{Job, UpdateFn};
use super::{encode, joined, millis, AuditEntry, Store, StoreError, Tx, TxResult, T};
use crate::domain::MessageId;
use crate::policy::TraceStep;

/// A message to store on acceptance, with everything that must be written with it.
pub struct NewMessage {
    pub record: MessageRecord,
    /// The decision's audit entry (and any other).
    pub audit: Vec<AuditEntry>,
    /// Put it in the outbox (allowed or deferred), due at `record.not_before`.
    pub enqueue: bool,
    /// The policy allowed it now: it counts toward the recipient's frequency caps.
    pub counts_as_send: bool,
    pub idempotency: Option<IdempotencyWrite>,
    /// The decision's trace, stored apart from the record (the record's own is left empty).
    pub trace: Vec<TraceStep>,
}

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

impl NewMessage {
    /// A freshly decided message, with everything derived from it: queued or deferred messages
    /// go to the outbox, one allowed now counts toward the frequency caps, the decision gets its
    /// audit entry, and the trace moves out of the record to be stored apart.
    pub fn new(mut record: MessageRecord) -> NewMessage {
        let trace = std::mem::take(&mut record.decision.trace);
        let audit = vec![AuditEntry::decision(
            &record,
            &record.decision,
            record.created_at,
        )];
        NewMessage {
            enqueue: record.status.is_pending(),
            counts_as_send: record.status == MessageStatus::Queued,
            audit,
            trace,
            idempotency: None,
            record,
        }
    }

    /// Stores the first answer under an `Idempotency-Key` with the message.
    pub fn with_idempotency(self, idempotency: Option<IdempotencyWrite>) -> NewMessage {
        NewMessage {
            idempotency,
            ..self
        }
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
    fn new(mut new: NewMessage) -> Result<EncodedMessage, StoreError> {
        let trace = if new.trace.is_empty() {
            None
        } else {
            Some(EncodedTrace::new(&new.trace)?)
        };
        new.record.trace_sha256 = trace.as_ref().map(EncodedTrace::hex);
        Ok(EncodedMessage {
            record: encode(T::Messages, &new.record)?,
            new,
            trace,
        })
    }
}

/// The `Idempotency-Key` record to write with a message.
pub struct IdempotencyWrite {
    pub client: String,
    pub key: String,
    pub request_sha256: String,
    pub status: u16,
    pub body: Value,
}

/// What became of a [`NewMessage`].
#[derive(Debug)]
pub enum Accepted {
    /// Written and durable.
    Stored,
    /// The key was used before with the same request: here is the first answer.
    Replay(IdempotencyRecord),
    /// The key was used before with another request.
    Conflict,
}

/// One page of due outbox entries.
#[derive(Debug, Default)]
pub struct DuePage {
    pub ids: Vec<MessageId>,
    /// Where the next page starts, when this one was full; `None`: start over next time.
    pub next: Option<Vec<u8>>,
}

/// What happens to a message's outbox entry in an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxChange {
    Keep,
    Remove,
    /// Move it to a new due time (also stored as the record's `not_before`).
    Reschedule(DateTime<Utc>),
}

/// The side effects of one update to a message, decided by the caller.
pub struct MessageUpdate {
    pub audit: Vec<AuditEntry>,
    pub outbox: OutboxChange,
    /// Record the message in the recipient's send history (it was allowed now).
    pub counts_as_send: bool,
    /// A new decision's trace, when the update carries a new decision.
    pub trace: Option<Vec<TraceStep>>,
}

impl MessageUpdate {
    pub fn new(outbox: OutboxChange) -> Self {
        MessageUpdate {
            audit: Vec::new(),
            outbox,
            counts_as_send: false,
            trace: None,
        }
    }
}

fn outbox_key(due: DateTime<Utc>, id: &MessageId) -> Vec<u8> {
    let mut key = millis(due).to_vec();
    key.extend_from_slice(id.as_str().as_bytes());
    key
}

fn due_of(record: &MessageRecord) -> DateTime<Utc> {
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
                    Accepted::Replay(first)
                } else {
                    Accepted::Conflict
                });
            }
            self.put(
                T::Idempotency,
                &key,
                &IdempotencyRecord {
                    request_sha256: idem.request_sha256.clone(),
                    status: idem.status,
                    body: idem.body.clone(),
                    at: record.created_at,
                },
            )?;
        }
        self.put_raw(T::Messages, record.id.as_str().as_bytes(), &encoded.record)?;
        if let Some(trace) = &encoded.trace {
            // Checked on the caller's thread (see `Store::accept`): not stored yet, or stored
            // by another accept of this batch with the very same bytes.
            self.put_raw(T::Traces, &trace.sha256, &trace.json)?;
        }
        if new.enqueue {
            self.put_raw(T::Outbox, &outbox_key(due_of(record), &record.id), &[])?;
        }
        if new.counts_as_send {
            self.record_send(record, record.created_at)?;
        }
        for entry in &new.audit {
            self.audit(entry.clone())?;
        }
        Ok(Accepted::Stored)
    }

    /// Applies `f` to the stored message and writes the effects it returns.
    pub(super) fn update_message(
        &mut self,
        id: &MessageId,
        f: &UpdateFn,
    ) -> TxResult<Option<MessageRecord>> {
        let key = id.as_str().as_bytes();
        let Some(mut record) = self.get::<MessageRecord>(T::Messages, key)? else {
            return Ok(None);
        };
        let old_due = due_of(&record);
        let Some(update) = f(&mut record) else {
            return Ok(None);
        };
        match update.outbox {
            OutboxChange::Keep => {}
            OutboxChange::Remove => self.remove(T::Outbox, &outbox_key(old_due, id))?,
            OutboxChange::Reschedule(due) => {
                self.remove(T::Outbox, &outbox_key(old_due, id))?;
                record.not_before = Some(due);
                self.put_raw(T::Outbox, &outbox_key(due, id), &[])?;
            }
        }
        if update.counts_as_send {
            let at = record.history.last().map_or(record.created_at, |h| h.at);
            self.record_send(&record, at)?;
        }
        if let Some(graph_id) = &record.graph_message_id {
            self.put_raw(T::GraphIds, graph_id.as_bytes(), id.as_str().as_bytes())?;
        }
        for entry in &update.audit {
            self.audit(entry.clone())?;
        }
        if let Some(trace) = &update.trace {
            let trace = EncodedTrace::new(trace)?;
            self.keep_trace(&trace)?;
            record.trace_sha256 = Some(trace.hex());
        }
        self.put(T::Messages, key, &record)?;
        Ok(Some(record))
    }

    /// Stores a trace under its sha256, unless an earlier decision stored the same one.
    fn keep_trace(&mut self, trace: &EncodedTrace) -> TxResult<()> {
        if !self.contains(T::Traces, &trace.sha256)? {
            self.put_raw(T::Traces, &trace.sha256, &trace.json)?;
        }
        Ok(())
    }

    fn record_send(&mut self, record: &MessageRecord, at: DateTime<Utc>) -> TxResult<()> {
        self.put_raw(
            T::Sends,
            &send_key(record, at),
            record.category.as_str().as_bytes(),
        )
    }
}

impl Store {
    /// Writes an accepted (or denied) message, its audit entries, its outbox entry and its
    /// idempotency record in one transaction, and returns once that is on disk.
    ///
    /// The record and trace are encoded here, on the caller's thread; then the accept joins the
    /// writer's queue (`store/writer.rs`), which commits whatever has queued up in a single
    /// transaction and a single flush, rather than one transaction per request under sled's
    /// lock.
    pub async fn accept(&self, new: NewMessage) -> Result<Accepted, StoreError> {
        let mut encoded = EncodedMessage::new(new)?;
        // Traces are never removed, so one found here is still there when the writer runs:
        // the writer, which every write waits for, is spared the read.
        if let Some(trace) = &encoded.trace {
            if self.tree(T::Traces).contains_key(trace.sha256)? {
                encoded.trace = None;
            }
        }
        self.submit(|reply| Job::Accept {
            new: Box::new(encoded),
            reply,
        })
        .await
    }

    /// The first answer given for an idempotency key, if any.
    pub fn idempotency(
        &self,
        client: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.read(T::Idempotency, &joined(client, key.as_bytes()))
    }

    pub fn message(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        self.read(T::Messages, id.as_str().as_bytes())
    }

    /// The trace of the message's latest decision (empty if none was kept).
    pub fn trace(&self, record: &MessageRecord) -> Result<Vec<TraceStep>, StoreError> {
        let Some(key) = record
            .trace_sha256
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
        else {
            return Ok(Vec::new());
        };
        Ok(self.read(T::Traces, &key)?.unwrap_or_default())
    }

    /// Changes a message with `f` and applies the effects `f` returns, in one transaction (the
    /// writer's, shared with whatever else is queued), and returns once that is on disk.
    /// `f` runs once, on the writer thread, and must not block. Returns the updated record, or
    /// `None` when `f` declined (returned `None`).
    pub async fn update_message(
        &self,
        id: &MessageId,
        f: impl Fn(&mut MessageRecord) -> Option<MessageUpdate> + Send + 'static,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.submit(|reply| Job::Update {
            id: id.clone(),
            f: Box::new(f),
            reply,
        })
        .await
    }

    /// Up to `limit` message ids due at or before `now`, earliest first, starting after the
    /// outbox key `after` (a [`DuePage::next`] from the previous call) or from the beginning.
    pub fn due(
        &self,
        now: DateTime<Utc>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DuePage, StoreError> {
        // Every key due at or before `now` sorts before the first key of the next millisecond.
        let end = millis(now + chrono::Duration::milliseconds(1)).to_vec();
        let range = match after {
            Some(after) => self.tree(T::Outbox).range::<&[u8], _>((
                std::ops::Bound::Excluded(after),
                std::ops::Bound::Excluded(end.as_slice()),
            )),
            None => self.tree(T::Outbox).range(..end),
        };
        let mut page = DuePage::default();
        let mut last = None;
        for item in range.take(limit) {
            let (key, _) = item?;
            // Keys are `due (8 bytes) ++ id`; a key that is not is skipped, not fatal.
            if let Some(id) = key
                .get(8..)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(MessageId::parse)
            {
                page.ids.push(id);
            }
            last = Some(key);
        }
        if page.ids.len() == limit {
            page.next = last.map(|k| k.to_vec());
        }
        Ok(page)
    }

    /// When the earliest outbox entry is due.
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
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

    /// Messages waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.tree(T::Outbox).len()
    }

    /// The message Messenger knows as `graph_id`.
    pub fn message_by_graph_id(&self, graph_id: &str) -> Result<Option<MessageId>, StoreError> {
        Ok(self
            .tree(T::GraphIds)
            .get(graph_id.as_bytes())?
            .and_then(|v| std::str::from_utf8(&v).ok().and_then(MessageId::parse)))
    }

    /// Moves sent messages to `to` (delivered or read): those named in `mids`, and those to
    /// `recipient_key` sent at or before `watermark`. Returns how many moved.
    pub async fn advance_status(
        &self,
        recipient_key: &str,
        watermark: DateTime<Utc>,
        mids: &[String],
        to: MessageStatus,
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut candidates: Vec<MessageId> = self
            .recent_send_ids(recipient_key, 500)?
            .into_iter()
            .collect();
        for mid in mids {
            if let Some(id) = self.message_by_graph_id(mid)? {
                candidates.push(id);
            }
        }
        candidates.sort();
        candidates.dedup();
        let moved = self.commit(|tx| {
            let mut moved = 0;
            for id in &candidates {
                let key = id.as_str().as_bytes();
                let Some(mut record) = tx.get::<MessageRecord>(T::Messages, key)? else {
                    continue;
                };
                let named = record
                    .graph_message_id
                    .as_ref()
                    .is_some_and(|g| mids.contains(g));
                let covered = record.sent_at.is_some_and(|s| s <= watermark);
                if !(named || covered) || !record.status.advances_to(to) {
                    continue;
                }
                // A read implies delivery: record both so the history tells the whole story.
                if to == MessageStatus::Read && record.status == MessageStatus::Sent {
                    record.set_status(MessageStatus::Delivered, at);
                }
                record.set_status(to, at);
                tx.audit(AuditEntry::status(&record, to, at))?;
                tx.put(T::Messages, key, &record)?;
                moved += 1;
            }
            Ok(moved)
        })?;
        if moved > 0 {
            self.durable().await?;
        }
        Ok(moved)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::{Category, Content, Psid, Recipient};
    use crate::policy::{Decision, Outcome, Reason, Via};

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
            page_id: "1".into(),
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
                trace: vec![],
            },
            status: MessageStatus::Queued,
            not_before: Some(due),
            attempts: vec![],
            graph_message_id: None,
            sent_at: None,
            history: vec![],
            campaign: None,
            trace_sha256: None,
            content_sha256: "x".into(),
        }
    }

    async fn put(store: &Store, r: &MessageRecord) {
        let outcome = store
            .accept(NewMessage::new(r.clone()))
            .await
            .expect("accept");
        assert!(matches!(outcome, Accepted::Stored));
    }

    fn step(detail: &'static str) -> TraceStep {
        TraceStep {
            rule: "policies/default.toml#window.standard".into(),
            result: crate::policy::StepResult::Pass,
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
            let stored = store.message(&r.id).expect("read").expect("stored");
            assert!(stored.decision.trace.is_empty(), "the record keeps no copy");
            assert_eq!(store.trace(&stored).expect("trace"), a.decision.trace);
        }

        // A decision taken again brings its own trace; the other message keeps the first.
        let again = vec![step("decided again")];
        let moved = again.clone();
        store
            .update_message(&a.id, move |_| {
                let mut update = MessageUpdate::new(OutboxChange::Keep);
                update.trace = Some(moved.clone());
                Some(update)
            })
            .await
            .expect("update");
        let a_now = store.message(&a.id).expect("read").expect("stored");
        let b_now = store.message(&b.id).expect("read").expect("stored");
        assert_eq!(store.trace(&a_now).expect("trace"), again);
        assert_eq!(store.trace(&b_now).expect("trace"), b.decision.trace);
        assert_eq!(store.tree(T::Traces).len(), 2);
    }

    #[tokio::test]
    async fn due_returns_only_what_is_due_in_order() {
        let store = super::super::temporary().await;
        let now = Utc::now();
        let later = record(now + Duration::hours(1));
        let first = record(now - Duration::seconds(2));
        let second = record(now - Duration::seconds(1));
        for r in [&later, &second, &first] {
            put(&store, r).await;
        }
        let page = store.due(now, None, 10).expect("due");
        assert_eq!(page.ids, vec![first.id.clone(), second.id.clone()]);
        assert!(page.next.is_none(), "the page was not full");
        let page = store.due(now, None, 1).expect("due");
        assert_eq!(page.ids, vec![first.id]);
        let rest = store.due(now, page.next.as_deref(), 10).expect("due");
        assert_eq!(
            rest.ids,
            vec![second.id],
            "the next page starts after the first"
        );
        assert_eq!(
            store
                .next_due()
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
            let store = Store::open(&path).expect("open");
            put(&store, &r).await;
            store.close().await.expect("close");
            store.audit_head()
        };
        let store = Store::open(&path).expect("reopen: the file lock was released");
        assert_eq!(store.audit_head(), head);
        assert_eq!(
            store.message(&r.id).expect("read").map(|m| m.id),
            Some(r.id)
        );
        assert!(store.verify_audit().ok);
    }

    #[tokio::test]
    async fn accepting_chains_the_audit_log() {
        let store = super::super::temporary().await;
        for _ in 0..3 {
            put(&store, &record(Utc::now())).await;
        }
        let v = store.verify_audit();
        assert!(v.ok, "{v:?}");
        assert_eq!(v.entries, 3);
        assert_eq!(store.audit_head().seq, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_accepts_with_one_key_store_one_message() {
        let store = super::super::temporary().await;
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    let r = record(Utc::now());
                    store
                        .accept(NewMessage::new(r).with_idempotency(Some(IdempotencyWrite {
                            client: "shop".into(),
                            key: "same".into(),
                            request_sha256: "body".into(),
                            status: 202,
                            body: serde_json::json!({"n": 1}),
                        })))
                        .await
                        .expect("accept")
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
        assert_eq!(store.outbox_len(), 1);
        assert_eq!(store.verify_audit().entries, 1);
    }

    #[tokio::test]
    async fn an_idempotency_key_replays_or_conflicts() {
        let store = super::super::temporary().await;
        let body = serde_json::json!({"id": "first"});
        let r = record(Utc::now());
        let write = |sha: &'static str| IdempotencyWrite {
            client: "shop".into(),
            key: "k1".into(),
            request_sha256: sha.into(),
            status: 202,
            body: body.clone(),
        };
        let new = |sha| NewMessage::new(r.clone()).with_idempotency(Some(write(sha)));
        assert!(matches!(store.accept(new("a")).await, Ok(Accepted::Stored)));
        assert!(matches!(store.accept(new("a")).await, Ok(Accepted::Replay(f)) if f.body == body));
        assert!(matches!(
            store.accept(new("b")).await,
            Ok(Accepted::Conflict)
        ));
    }
}
