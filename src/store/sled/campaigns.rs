//! Campaigns, their audiences, and how many of each campaign's messages stand where.

use async_trait::async_trait;

use super::{decode, joined, SledStore, StoreError, Tx, TxResult, T};
use crate::domain::campaign::{Campaign, CampaignId};
use crate::domain::{MessageRecord, Psid};
use crate::store::{count_label, CampaignChange, Campaigns};

fn count_key(campaign: &str, label: &str) -> Vec<u8> {
    joined(campaign, label.as_bytes())
}

impl Tx<'_> {
    /// Moves a campaign message's count from the label it had (`before`) to the one it has.
    pub(super) fn recount(
        &mut self,
        before: Option<&MessageRecord>,
        after: &MessageRecord,
    ) -> TxResult<()> {
        let Some(campaign) = after.campaign.as_ref().map(CampaignId::as_str) else {
            return Ok(());
        };
        let (old, new) = (before.map(count_label), count_label(after));
        if old.as_deref() == Some(new.as_str()) {
            return Ok(());
        }
        if let Some(old) = old {
            self.add(&count_key(campaign, &old), -1)?;
        }
        self.add(&count_key(campaign, &new), 1)
    }

    fn add(&mut self, key: &[u8], delta: i64) -> TxResult<()> {
        let now = self
            .raw(T::CampaignCounts, key)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let next = now.saturating_add_signed(delta);
        self.put_raw(T::CampaignCounts, key, &next.to_be_bytes())
    }
}

fn position_key(id: &CampaignId, index: u64) -> Vec<u8> {
    joined(id.as_str(), &index.to_be_bytes())
}

#[async_trait]
impl Campaigns for SledStore {
    async fn create(&self, campaign: &Campaign) -> Result<(), StoreError> {
        self.commit(|tx| tx.put(T::Campaigns, campaign.id.as_str().as_bytes(), campaign))?;
        self.durable().await
    }

    /// A part is one key, its PSIDs one per line,
    /// so that a million recipients are a thousand keys, not a million.
    async fn append_audience(
        &self,
        id: &CampaignId,
        from: u64,
        psids: &[Psid],
    ) -> Result<(), StoreError> {
        if psids.is_empty() {
            return Ok(());
        }
        let mut part = Vec::with_capacity(psids.len() * 17);
        for psid in psids {
            part.extend_from_slice(psid.as_str().as_bytes());
            part.push(b'\n');
        }
        self.commit(|tx| tx.put_raw(T::Audience, &position_key(id, from), &part))?;
        self.durable().await
    }

    async fn audience(
        &self,
        id: &CampaignId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Psid>, StoreError> {
        let corrupt = || StoreError::Corrupt {
            what: T::Audience.record(),
            source: std::sync::Arc::new(<serde_json::Error as serde::de::Error>::custom(
                "not a part of an audience",
            )),
        };
        let tree = self.tree(T::Audience);
        // The part that holds position `from` starts at or before it.
        let start = tree
            .range(position_key(id, 0)..=position_key(id, from))
            .next_back()
            .transpose()?
            .map_or_else(|| position_key(id, from), |(key, _)| key.to_vec());
        let end = joined(id.as_str(), &u64::MAX.to_be_bytes());
        let mut out = Vec::with_capacity(limit);
        for item in tree.range(start..end) {
            let (key, value) = item?;
            let first = key
                .len()
                .checked_sub(8)
                .and_then(|at| <[u8; 8]>::try_from(&key[at..]).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(corrupt)?;
            let text = std::str::from_utf8(&value).map_err(|_| corrupt())?;
            if crate::store::take_audience(first, text, from, limit, &mut out)? {
                return Ok(out);
            }
        }
        Ok(out)
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        self.read(T::Campaigns, id.as_str().as_bytes())
    }

    async fn all(&self) -> Result<Vec<Campaign>, StoreError> {
        self.tree(T::Campaigns)
            .iter()
            .map(|item| {
                let (_, value) = item?;
                decode(T::Campaigns, &value)
            })
            .collect()
    }

    async fn update(
        &self,
        id: &CampaignId,
        change: CampaignChange,
    ) -> Result<Option<Campaign>, StoreError> {
        let key = id.as_str().as_bytes();
        let changed = self.commit(|tx| {
            let Some(mut campaign) = tx.get::<Campaign>(T::Campaigns, key)? else {
                return Ok(None);
            };
            let Some(entries) = change(&mut campaign) else {
                return Ok(None);
            };
            tx.put(T::Campaigns, key, &campaign)?;
            for entry in entries {
                tx.audit(entry)?;
            }
            Ok(Some(campaign))
        })?;
        if changed.is_some() {
            self.durable().await?;
        }
        Ok(changed)
    }

    /// Forgets a draft whose audience could not be stored whole.
    async fn drop_draft(&self, id: &CampaignId) -> Result<(), StoreError> {
        let prefix = joined(id.as_str(), &[]);
        let parts: Vec<_> = self
            .tree(T::Audience)
            .scan_prefix(&prefix)
            .keys()
            .collect::<Result<_, _>>()?;
        self.commit(|tx| {
            for key in &parts {
                tx.remove(T::Audience, key)?;
            }
            tx.remove(T::Campaigns, id.as_str().as_bytes())
        })?;
        self.durable().await
    }

    async fn counts(&self, id: &CampaignId) -> Result<Vec<(String, u64)>, StoreError> {
        let prefix = joined(id.as_str(), &[]);
        self.tree(T::CampaignCounts)
            .scan_prefix(&prefix)
            .map(|item| {
                let (key, value) = item?;
                let label = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let n = <[u8; 8]>::try_from(value.as_ref())
                    .map(u64::from_be_bytes)
                    .unwrap_or_default();
                Ok((label, n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_audience_is_read_back_in_order_across_its_parts_from_any_position() {
        let store = crate::store::sled::temporary().await;
        let id = CampaignId::generate();
        let other = CampaignId::generate();
        let psids: Vec<Psid> = (0..5)
            .map(|i| Psid::parse(&format!("10{i}")).expect("psid"))
            .collect();
        store
            .append_audience(&id, 0, &psids[..3])
            .await
            .expect("part");
        store
            .append_audience(&id, 3, &psids[3..])
            .await
            .expect("part");
        store
            .append_audience(&other, 0, &psids[..1])
            .await
            .expect("part");
        assert_eq!(store.audience(&id, 0, 10).await.expect("read"), psids);
        assert_eq!(store.audience(&id, 2, 2).await.expect("read"), psids[2..4]);
        assert_eq!(store.audience(&id, 4, 10).await.expect("read"), psids[4..]);
        assert!(store.audience(&id, 5, 10).await.expect("read").is_empty());
        assert_eq!(
            store.audience(&other, 0, 10).await.expect("read"),
            psids[..1]
        );
    }
}
