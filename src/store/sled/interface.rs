//! [`SledStore`] behind the [`Store`] interface.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::writer::Job;
use super::{SledStore, StoreError};
use crate::domain::audit::{AuditEntry, AuditHead, ChainItem, ChainPoint, Verification};
use crate::domain::campaign::{Campaign, CampaignId};
use crate::domain::{IdempotencyRecord, MessageId, MessageRecord, Psid, RecipientRecord};
use crate::policy::{RecentSend, TraceStep};
use crate::store::{
    Accepted, AuditCursor, AuditFilter, AuditOrder, AuditPage, CampaignChange, MessageChange,
    MessagesChange, NewMessage, ParkedId, Pruned, RecipientChange, SeenMid, Store,
};

#[async_trait]
impl Store for SledStore {
    async fn accept(&self, new: NewMessage) -> Result<Accepted, StoreError> {
        let new = self.encode_new(new)?;
        self.submit(|reply| Job::Accept { new, reply }).await
    }

    async fn message(&self, id: &MessageId) -> Result<Option<MessageRecord>, StoreError> {
        self.read_message(id)
    }

    async fn trace(&self, record: &MessageRecord) -> Result<Vec<TraceStep>, StoreError> {
        self.read_trace(record)
    }

    async fn idempotency(
        &self,
        client: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.read_idempotency(client, key)
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

    async fn messages_by_graph_ids(&self, mids: &[String]) -> Result<Vec<MessageId>, StoreError> {
        let mut ids = Vec::new();
        for mid in mids {
            if let Some(id) = self.message_by_graph_id(mid)? {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<MessageId>, StoreError> {
        self.claim(now, limit, lease)
    }

    async fn try_claim(
        &self,
        id: &MessageId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.claim_one(id, now, lease))
    }

    async fn release(&self, id: &MessageId) -> Result<(), StoreError> {
        self.unclaim(id);
        Ok(())
    }

    async fn is_claimed(&self, id: &MessageId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.held(id, now))
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.first_due()
    }

    async fn outbox_len(&self) -> Result<u64, StoreError> {
        Ok(self.outbox_count())
    }

    async fn recipient(&self, key: &str) -> Result<Option<RecipientRecord>, StoreError> {
        self.read_recipient(key)
    }

    async fn marketing_token_owner(&self, token: &str) -> Result<Option<String>, StoreError> {
        SledStore::marketing_token_owner(self, token)
    }

    async fn update_recipient(
        &self,
        key: &str,
        seen: Option<SeenMid<'_>>,
        change: RecipientChange,
    ) -> Result<bool, StoreError> {
        self.change_recipient(key, seen, change).await
    }

    async fn recent_sends(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<RecentSend>, StoreError> {
        SledStore::recent_sends(self, key, since)
    }

    async fn recent_message_ids(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<MessageId>, StoreError> {
        self.recent_send_ids(key, limit)
    }

    async fn park_event(&self, event: &Value) -> Result<(), StoreError> {
        self.park(event).await
    }

    async fn parked_events(&self, limit: usize) -> Result<Vec<(ParkedId, Value)>, StoreError> {
        self.parked(limit)
    }

    async fn unpark_event(&self, id: ParkedId) -> Result<(), StoreError> {
        self.unpark(id).await
    }

    async fn append_audit(&self, entries: Vec<AuditEntry>) -> Result<(), StoreError> {
        self.append(entries).await
    }

    async fn audit_head(&self) -> Result<AuditHead, StoreError> {
        Ok(self.head())
    }

    async fn audit_entries(
        &self,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<ChainItem>, StoreError> {
        self.audit_page(from_seq, limit)
    }

    async fn verify_audit(&self) -> Result<Verification, StoreError> {
        self.verify()
    }

    async fn recipients_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, RecipientRecord)>, StoreError> {
        SledStore::recipients_after(self, after, limit)
    }

    async fn create_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.create(campaign).await
    }

    async fn append_audience(
        &self,
        id: &CampaignId,
        from: u64,
        psids: &[Psid],
    ) -> Result<(), StoreError> {
        self.extend_audience(id, from, psids).await
    }

    async fn audience(
        &self,
        id: &CampaignId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Psid>, StoreError> {
        self.audience_page(id, from, limit)
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        self.read_campaign(id)
    }

    async fn campaigns(&self) -> Result<Vec<Campaign>, StoreError> {
        self.all_campaigns()
    }

    async fn update_campaign(
        &self,
        id: &CampaignId,
        change: CampaignChange,
    ) -> Result<Option<Campaign>, StoreError> {
        self.change_campaign(id, change).await
    }

    async fn drop_draft(&self, id: &CampaignId) -> Result<(), StoreError> {
        SledStore::drop_draft(self, id).await
    }

    async fn campaign_counts(&self, id: &CampaignId) -> Result<Vec<(String, u64)>, StoreError> {
        self.counts(id)
    }

    async fn audit_hash_at(&self, point: &ChainPoint) -> Result<Option<String>, StoreError> {
        self.hash_at(point.seq)
    }

    async fn audit_query(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        cursor: Option<&AuditCursor>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        self.query(filter, order, cursor, limit)
    }

    async fn erase_audit_personal(&self, key: &str) -> Result<u64, StoreError> {
        self.erase_personal(key).await
    }

    async fn erase_idempotency_answers(&self, messages: &[MessageId]) -> Result<u64, StoreError> {
        self.erase_answers(messages).await
    }

    async fn prune_audit(&self, before: DateTime<Utc>) -> Result<Option<Pruned>, StoreError> {
        self.prune(before).await
    }

    async fn pause_page(&self, page_id: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        self.pause(page_id, until).await
    }

    async fn paused_pages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.pauses(now)
    }

    async fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.shut().await
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.latency.commit.clone()),
            Box::new(self.latency.flush.clone()),
        ]
    }
}
