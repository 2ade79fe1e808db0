//! Campaigns, their audiences, and how many of each campaign's messages stand where.

use async_trait::async_trait;

use super::writes::Rows;
use super::{decode, encode, int8, uint, PgStore, Prepared, StoreError};
use crate::domain::campaign::{Campaign, CampaignId};
use crate::domain::Psid;
use crate::store::{CampaignChange, Campaigns};

/// Audience parts read per round trip.
const AUDIENCE_PARTS: i64 = 8;

#[async_trait]
impl Campaigns for PgStore {
    async fn create(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO campaigns (id, record) VALUES ($1, $2::text::jsonb)",
                &[&campaign.id.as_str(), &encode("campaign", campaign)?],
            )
            .await?;
        Ok(())
    }

    async fn append_audience(
        &self,
        id: &CampaignId,
        from: u64,
        psids: &[Psid],
    ) -> Result<(), StoreError> {
        if psids.is_empty() {
            return Ok(());
        }
        let mut part = String::with_capacity(psids.len() * 17);
        for psid in psids {
            part.push_str(psid.as_str());
            part.push('\n');
        }
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO audience (campaign, first, psids) VALUES ($1, $2, $3)
                 ON CONFLICT (campaign, first) DO UPDATE SET psids = EXCLUDED.psids",
                &[&id.as_str(), &int8(from), &part],
            )
            .await?;
        Ok(())
    }

    async fn audience(
        &self,
        id: &CampaignId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Psid>, StoreError> {
        let client = self.client().await?;
        // The part that holds position `from` starts at or before it.
        let mut after: i64 = client
            .one(
                "SELECT coalesce(max(first), 0) FROM audience WHERE campaign = $1 AND first <= $2",
                &[&id.as_str(), &int8(from)],
            )
            .await?
            .get(0);
        let mut out = Vec::with_capacity(limit);
        let mut inclusive = true;
        loop {
            let rows = client
                .rows(
                    "SELECT first, psids FROM audience
                     WHERE campaign = $1 AND (first > $2 OR ($3 AND first = $2))
                     ORDER BY first LIMIT $4",
                    &[&id.as_str(), &after, &inclusive, &AUDIENCE_PARTS],
                )
                .await?;
            inclusive = false;
            let parts = rows.len();
            for row in rows {
                after = row.get(0);
                let text: &str = row.get(1);
                if crate::store::take_audience(uint(after), text, from, limit, &mut out)? {
                    return Ok(out);
                }
            }
            if i64::try_from(parts).unwrap_or_default() < AUDIENCE_PARTS {
                return Ok(out);
            }
        }
    }

    async fn campaign(&self, id: &CampaignId) -> Result<Option<Campaign>, StoreError> {
        self.read_json(
            "campaign",
            "SELECT record::text FROM campaigns WHERE id = $1",
            &id.as_str(),
        )
        .await
    }

    async fn all(&self) -> Result<Vec<Campaign>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT record::text FROM campaigns ORDER BY id COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| decode("campaign", row.get::<_, &str>(0)))
            .collect()
    }

    async fn update(
        &self,
        id: &CampaignId,
        change: CampaignChange,
    ) -> Result<Option<Campaign>, StoreError> {
        let _timer = self.commit.start_timer();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .opt(
                "SELECT record::text FROM campaigns WHERE id = $1 FOR UPDATE",
                &[&id.as_str()],
            )
            .await?
        else {
            return Ok(None);
        };
        let mut campaign: Campaign = decode("campaign", row.get::<_, &str>(0))?;
        let Some(entries) = change(&mut campaign) else {
            return Ok(None);
        };
        tx.exec(
            "UPDATE campaigns SET record = $2::text::jsonb WHERE id = $1",
            &[&id.as_str(), &encode("campaign", &campaign)?],
        )
        .await?;
        let mut rows = Rows::default();
        rows.audit(entries);
        rows.write(&tx, self).await?;
        self.finish(tx).await?;
        Ok(Some(campaign))
    }

    async fn drop_draft(&self, id: &CampaignId) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.exec("DELETE FROM audience WHERE campaign = $1", &[&id.as_str()])
            .await?;
        tx.exec("DELETE FROM campaigns WHERE id = $1", &[&id.as_str()])
            .await?;
        self.finish(tx).await?;
        Ok(())
    }

    async fn counts(&self, id: &CampaignId) -> Result<Vec<(String, u64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                "SELECT label, n FROM campaign_counts WHERE campaign = $1
                 ORDER BY label COLLATE \"C\"",
                &[&id.as_str()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), uint(row.get(1))))
            .collect())
    }
}
