//! A store that cannot write: every client hears 503 (never 400 or 500), nothing is half-written,
//! and the gateway carries on once the store can write again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald::domain::audit::{AuditEntry, AuditHead, ChainItem, ChainPoint, Verification};
use herald::domain::campaign::{Campaign, CampaignId};
use herald::domain::{IdempotencyRecord, MessageId, MessageRecord, Psid, RecipientRecord};
use herald::policy::{RecentSend, TraceStep};
use herald::store::{
    Accepted, AuditCursor, AuditFilter, AuditLog, AuditOrder, AuditPage, CampaignChange, Campaigns,
    MessageChange, Messages, MessagesChange, NewMessage, ParkedId, Pauses, Pruned, RecipientChange,
    Recipients, SeenMid, StoreError, Stores,
};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestOptions};

/// A full disk, while its flag is set.
#[derive(Clone)]
struct Disk(Arc<AtomicBool>);

impl Disk {
    /// Fails as a write to a full disk does.
    fn write(&self) -> Result<(), StoreError> {
        if self.0.load(Ordering::SeqCst) {
            Err(StoreError::Engine(Arc::new(std::io::Error::other(
                "No space left on device (injected)",
            ))))
        } else {
            Ok(())
        }
    }
}

/// One of the real store's interfaces (sled, or PostgreSQL), whose writes fail while the disk
/// is full.
struct Faulty<T: ?Sized> {
    inner: Arc<T>,
    disk: Disk,
}

fn faulty<T: ?Sized>(inner: Arc<T>, disk: &Disk) -> Arc<Faulty<T>> {
    Arc::new(Faulty {
        inner,
        disk: disk.clone(),
    })
}

/// The store on a full disk: every interface that keeps data fails its writes; the outbox's
/// claims (held in memory on sled, and no data on PostgreSQL) and the engine pass through.
fn full_disk(store: Stores, disk: Disk) -> Stores {
    Stores {
        messages: faulty(store.messages, &disk),
        recipients: faulty(store.recipients, &disk),
        audit: faulty(store.audit, &disk),
        campaigns: faulty(store.campaigns, &disk),
        pauses: faulty(store.pauses, &disk),
        ..store
    }
}

#[async_trait]
impl Messages for Faulty<dyn Messages> {
    async fn accept(&self, new: NewMessage) -> Result<Accepted, StoreError> {
        self.disk.write()?;
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
        self.disk.write()?;
        self.inner.update_message(id, change).await
    }
    async fn update_and_release(
        &self,
        id: &MessageId,
        change: MessageChange,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.disk.write()?;
        self.inner.update_and_release(id, change).await
    }
    async fn update_messages(
        &self,
        ids: Vec<MessageId>,
        change: MessagesChange,
    ) -> Result<usize, StoreError> {
        self.disk.write()?;
        self.inner.update_messages(ids, change).await
    }
    async fn messages_by_graph_ids(&self, mids: &[String]) -> Result<Vec<MessageId>, StoreError> {
        self.inner.messages_by_graph_ids(mids).await
    }
    async fn erase_idempotency_answers(&self, messages: &[MessageId]) -> Result<u64, StoreError> {
        self.disk.write()?;
        self.inner.erase_idempotency_answers(messages).await
    }
}

#[async_trait]
impl Recipients for Faulty<dyn Recipients> {
    async fn recipient(&self, key: &str) -> Result<Option<RecipientRecord>, StoreError> {
        self.inner.recipient(key).await
    }
    async fn marketing_token_owner(&self, token: &str) -> Result<Option<String>, StoreError> {
        self.inner.marketing_token_owner(token).await
    }
    async fn update_recipient(
        &self,
        key: &str,
        seen: Option<SeenMid<'_>>,
        change: RecipientChange,
    ) -> Result<bool, StoreError> {
        self.disk.write()?;
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
    async fn recipients_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RecipientRecord)>, StoreError> {
        self.inner.recipients_after(after, limit).await
    }
    async fn park_event(&self, event: &Value) -> Result<(), StoreError> {
        self.disk.write()?;
        self.inner.park_event(event).await
    }
    async fn parked_events(&self, limit: usize) -> Result<Vec<(ParkedId, Value)>, StoreError> {
        self.inner.parked_events(limit).await
    }
    async fn unpark_event(&self, id: ParkedId) -> Result<(), StoreError> {
        self.disk.write()?;
        self.inner.unpark_event(id).await
    }
}

#[async_trait]
impl AuditLog for Faulty<dyn AuditLog> {
    async fn append(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        self.disk.write()?;
        self.inner.append(entries).await
    }
    async fn head(&self) -> Result<AuditHead, StoreError> {
        self.inner.head().await
    }
    async fn entries(&self, from_seq: u64, limit: usize) -> Result<Vec<ChainItem>, StoreError> {
        self.inner.entries(from_seq, limit).await
    }
    async fn chains(&self) -> Result<Vec<(u32, u64)>, StoreError> {
        self.inner.chains().await
    }
    async fn read_chain(
        &self,
        chain: u32,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.read_chain(chain, after, limit).await
    }
    async fn verify(&self) -> Result<Verification, StoreError> {
        self.inner.verify().await
    }
    async fn hash_at(&self, point: &ChainPoint) -> Result<Option<String>, StoreError> {
        self.inner.hash_at(point).await
    }
    async fn query(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        cursor: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        self.inner.query(filter, order, cursor, limit).await
    }
    async fn erase_personal(&self, key: &str) -> Result<u64, StoreError> {
        self.disk.write()?;
        self.inner.erase_personal(key).await
    }
    async fn prune(&self, before: DateTime<Utc>) -> Result<Option<Pruned>, StoreError> {
        self.disk.write()?;
        self.inner.prune(before).await
    }
}

#[async_trait]
impl Campaigns for Faulty<dyn Campaigns> {
    async fn create(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.disk.write()?;
        self.inner.create(campaign).await
    }
    async fn append_audience(
        &self,
        id: &CampaignId,
        from: u64,
        psids: &[Psid],
    ) -> Result<(), StoreError> {
        self.disk.write()?;
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
    async fn all(&self) -> Result<Vec<Campaign>, StoreError> {
        self.inner.all().await
    }
    async fn update(
        &self,
        id: &CampaignId,
        change: CampaignChange,
    ) -> Result<Option<Campaign>, StoreError> {
        self.disk.write()?;
        self.inner.update(id, change).await
    }
    async fn drop_draft(&self, id: &CampaignId) -> Result<(), StoreError> {
        self.disk.write()?;
        self.inner.drop_draft(id).await
    }
    async fn counts(&self, id: &CampaignId) -> Result<Vec<(String, u64)>, StoreError> {
        self.inner.counts(id).await
    }
}

#[async_trait]
impl Pauses for Faulty<dyn Pauses> {
    async fn pause_page(&self, page_id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.disk.write()?;
        self.inner.pause_page(page_id, until).await
    }
    async fn paused_pages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        // Its pauses are not to be read either: the worker keeps the ones it knows.
        self.disk.write()?;
        self.inner.paused_pages(now).await
    }
}

#[tokio::test]
async fn a_store_that_cannot_write_answers_503_and_nothing_is_half_written() {
    let failing = Arc::new(AtomicBool::new(false));
    let switch = Arc::clone(&failing);
    let app = spawn_app_with(TestOptions {
        store: Some(Box::new(move |store| full_disk(store, Disk(switch)))),
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
    assert_eq!(store.outbox.outbox_len().await.expect("outbox"), 0);

    // The disk has room again: the same request goes through.
    failing.store(false, Ordering::SeqCst);
    let (status, body) = app.respond("8001", "are you there?").await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    assert_eq!(app.inbox("8001").len(), 1);
}
