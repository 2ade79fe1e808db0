//! A store that cannot write: every client hears 503 (never 400 or 500), nothing is half-written,
//! and the gateway carries on once the store can write again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use herald::domain::audit::{AuditEntry, AuditHead, ChainItem, ChainPoint, Verification};
use herald::domain::campaign::{Campaign, CampaignId};
use herald::domain::{IdempotencyRecord, MessageId, MessageRecord, Psid, RecipientRecord};
use herald::policy::{RecentSend, TraceStep};
use herald::store::{
    Accepted, AuditCursor, AuditFilter, AuditOrder, AuditPage, CampaignChange, MessageChange,
    MessagesChange, NewMessage, ParkedId, Pruned, RecipientChange, SeenMid, Store, StoreError,
};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestOptions};

/// The real store (sled, or PostgreSQL), whose writes fail while `failing` is set — as on a full disk.
struct FaultyStore {
    inner: Arc<dyn Store>,
    failing: Arc<AtomicBool>,
}

impl FaultyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Engine(Arc::new(std::io::Error::other(
                "No space left on device (injected)",
            ))))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn accept(&self, new: NewMessage) -> Result<Accepted, StoreError> {
        self.check()?;
        self.inner.accept(new).await
    }
    async fn message(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        self.inner.message(id).await
    }
    async fn trace(&self, record: &MessageRecord) -> Result<Vec<TraceStep>, StoreError> {
        self.inner.trace(record).await
    }
    async fn idempotency(
        &self,
        client: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency(client, key).await
    }
    async fn update_message(
        &self,
        id: &MessageId,
        change: MessageChange,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.check()?;
        self.inner.update_message(id, change).await
    }
    async fn update_messages(
        &self,
        ids: Vec<MessageId>,
        change: MessagesChange,
    ) -> Result<usize, StoreError> {
        self.check()?;
        self.inner.update_messages(ids, change).await
    }
    async fn messages_by_graph_ids(&self, mids: &[String]) -> Result<Vec<MessageId>, StoreError> {
        self.inner.messages_by_graph_ids(mids).await
    }
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<MessageId>, StoreError> {
        self.inner.claim_due(now, limit, lease).await
    }
    async fn try_claim(
        &self,
        id: &MessageId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.try_claim(id, now, lease).await
    }
    async fn release(&self, id: &MessageId) -> Result<(), StoreError> {
        self.inner.release(id).await
    }
    async fn is_claimed(&self, id: &MessageId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.inner.is_claimed(id, now).await
    }
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.next_due().await
    }
    async fn outbox_len(&self) -> Result<u64, StoreError> {
        self.inner.outbox_len().await
    }
    async fn recipient(&self, key: &str) -> Result<Option<RecipientRecord>, StoreError> {
        self.inner.recipient(key).await
    }
    async fn update_recipient(
        &self,
        key: &str,
        seen: Option<SeenMid<'_>>,
        change: RecipientChange,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.update_recipient(key, seen, change).await
    }
    async fn recent_sends(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecentSend>, StoreError> {
        self.inner.recent_sends(key, since).await
    }
    async fn recent_message_ids(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<MessageId>, StoreError> {
        self.inner.recent_message_ids(key, limit).await
    }
    async fn park_event(&self, event: &Value) -> Result<(), StoreError> {
        self.check()?;
        self.inner.park_event(event).await
    }
    async fn parked_events(&self, limit: usize) -> Result<Vec<(ParkedId, Value)>, StoreError> {
        self.inner.parked_events(limit).await
    }
    async fn unpark_event(&self, id: ParkedId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.unpark_event(id).await
    }
    async fn append_audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.append_audit(entries).await
    }
    async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        self.inner.audit_head().await
    }
    async fn audit_entries(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChainItem>, StoreError> {
        self.inner.audit_entries(from_seq, limit).await
    }
    async fn verify_audit(&self) -> Result<Verification, StoreError> {
        self.inner.verify_audit().await
    }
    async fn marketing_token_owner(&self, token: &str) -> Result<Option<String>, StoreError> {
        self.inner.marketing_token_owner(token).await
    }
    async fn recipients_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RecipientRecord)>, StoreError> {
        self.inner.recipients_after(after, limit).await
    }
    async fn create_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.check()?;
        self.inner.create_campaign(campaign).await
    }
    async fn append_audience(
        &self,
        id: &CampaignId,
        from: u64,
        psids: &[Psid],
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.append_audience(id, from, psids).await
    }
    async fn audience(
        &self,
        id: &CampaignId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Psid>, StoreError> {
        self.inner.audience(id, from, limit).await
    }
    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        self.inner.campaign(id).await
    }
    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.inner.campaigns().await
    }
    async fn update_campaign(
        &self,
        id: &CampaignId,
        change: CampaignChange,
    ) -> Result<Option<Campaign>, StoreError> {
        self.check()?;
        self.inner.update_campaign(id, change).await
    }
    async fn drop_draft(&self, id: &CampaignId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.drop_draft(id).await
    }
    async fn campaign_counts(&self, id: &CampaignId) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.campaign_counts(id).await
    }
    async fn audit_hash_at(&self, point: &ChainPoint) -> Result<Option<String>, StoreError> {
        self.inner.audit_hash_at(point).await
    }
    async fn audit_query(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        cursor: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        self.inner.audit_query(filter, order, cursor, limit).await
    }
    async fn erase_audit_personal(&self, key: &str) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.erase_audit_personal(key).await
    }
    async fn erase_idempotency_answers(&self, messages: &[MessageId]) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.erase_idempotency_answers(messages).await
    }
    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<Option<Pruned>, StoreError> {
        self.check()?;
        self.inner.prune_audit(before).await
    }
    async fn pause_page(&self, page_id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.check()?;
        self.inner.pause_page(page_id, until).await
    }
    async fn paused_pages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.check()?;
        self.inner.paused_pages(now).await
    }
    async fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner.size_on_disk().await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
    fn runs_page(&self, page_id: &str) -> bool {
        self.inner.runs_page(page_id)
    }
}

#[tokio::test]
async fn a_store_that_cannot_write_answers_503_and_nothing_is_half_written() {
    let failing = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&failing);
    let app = spawn_app_with(TestOptions {
        store: Some(Box::new(move |inner| {
            Arc::new(FaultyStore {
                inner,
                failing: switch,
            })
        })),
        ..TestOptions::default()
    })
    .await;
    app.user_writes("8001", "hi", None).await;
    let audit_before = app.audit_head().await;

    failing.store(true, Ordering::SeqCst);
    let (status, body) = app.respond("8001", "are you there?").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["type"],
        "https://herald.dev/problems/store_unavailable"
    );
    assert!(
        !body.to_string().contains("injected"),
        "the cause is logged, not shown: {body}"
    );
    let (status, body) = app
        .call(
            herald::domain::Role::Backend,
            "/v1/consents",
            json!({"recipient": {"psid": "8001"}, "scope": "marketing", "source": "form",
                   "evidence": "ticked"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    // A webhook event that can neither be applied nor kept: Messenger is told to send it again.
    let answer = app
        .sandbox_post("/users/8001/messages", json!({"text": "hello?"}))
        .await;
    assert_eq!(answer["webhook_status"], 503, "{answer}");

    assert_eq!(app.audit_head().await, audit_before, "nothing was written");
    let store = &app.handle().herald.store;
    assert_eq!(store.outbox_len().await.expect("outbox"), 0);

    // The disk has room again: the same request goes through.
    failing.store(false, Ordering::SeqCst);
    let (status, body) = app.respond("8001", "are you there?").await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    assert_eq!(app.inbox("8001").len(), 1);
}
