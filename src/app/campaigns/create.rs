//! Creating a campaign: the checked draft, its audience streamed in and stored part by part
//! (a listed one or the marketing segment), then scheduled.

use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use super::{invalid, Audience, CampaignView, ListKind, NewCampaign};
use crate::app::{CommandError, Herald};
use crate::domain::campaign::{Campaign, CampaignEvent, CampaignId, CampaignStatus};
use crate::domain::Client;
use crate::domain::{Category, ConsentScope, Content, FieldError, Psid};
use crate::store::StoreError;

/// Audience members stored per transaction while an audience is read.
const AUDIENCE_PART: usize = 1_000;
/// The default pace when a campaign names none: gentle, well under a page's limit.
const DEFAULT_RATE: u32 = 50;

impl Herald {
    /// Creates a campaign: stores its audience part by part, then schedules it.
    pub async fn create_campaign<S>(
        &self,
        client: &Client,
        new: NewCampaign,
        audience: Audience<S>,
    ) -> Result<CampaignView, CommandError>
    where
        S: Stream<Item = Result<Psid, FieldError>> + Unpin,
    {
        let now = self.clock.now();
        let draft = self.draft(client, new, now)?;
        self.store.campaigns.create(&draft).await?;
        let size = self.store_audience(&draft.id, audience).await?;
        let campaign = self
            .transition(
                &draft.id,
                CampaignEvent::Scheduled { audience: size },
                now,
                None,
            )
            .await?
            .ok_or_else(|| CommandError::NotFound(format!("no campaign {}", draft.id)))?;
        self.campaigns_wake.notify_one();
        self.campaign_view(campaign).await
    }

    /// The campaign as a draft, once the client may send marketing, the page is one of
    /// `[messenger.pages]` and the rate fits the page's limit.
    fn draft(
        &self,
        client: &Client,
        new: NewCampaign,
        now: DateTime<Utc>,
    ) -> Result<Campaign, CommandError> {
        let policy = self.policy();
        if !policy.role_may_send(client.role, Category::Marketing) {
            return Err(CommandError::Forbidden(format!(
                "the policy's [roles] does not let {} send marketing",
                client.role
            )));
        }
        let page = self
            .pages
            .resolve(new.page_id.as_ref())
            .ok_or_else(|| invalid("page_id", "is not a page configured in [messenger.pages]"))?;
        let page_rate = policy.page_rate_per_second();
        let rate = new.rate_per_second.unwrap_or(page_rate.min(DEFAULT_RATE));
        if rate == 0 || rate > page_rate {
            return Err(invalid(
                "rate_per_second",
                &format!("must be from 1 to the page's limit, {page_rate}"),
            ));
        }
        let send_at = new.send_at.unwrap_or(now).max(now);
        Ok(Campaign {
            id: CampaignId::generate(),
            name: new.name,
            page_id: page.id.as_str().to_owned(),
            content: Content::Message(new.message),
            created_by: client.name.clone(),
            role: client.role,
            created_at: now,
            send_at,
            rate_per_second: rate,
            respect_quiet_hours: new.respect_quiet_hours,
            rollout: new.rollout,
            guard: new.guard,
            status: CampaignStatus::Draft,
            paused_reason: None,
            audience: 0,
            cursor: 0,
            base_at: send_at,
            base_index: 0,
            hold_until: None,
            opt_outs: 0,
            finished_at: None,
            guard_from: None,
        })
    }

    /// Stores the draft's audience and returns its size; an empty or refused audience drops
    /// the draft, so that nothing of the campaign is left.
    async fn store_audience<S>(
        &self,
        id: &CampaignId,
        audience: Audience<S>,
    ) -> Result<u64, CommandError>
    where
        S: Stream<Item = Result<Psid, FieldError>> + Unpin,
    {
        let stored = match audience {
            Audience::Listed { members, kind } => self.store_listed(id, members, kind).await,
            Audience::MarketingOptedIn => self.store_segment(id).await,
        };
        let size = match stored {
            Ok(0) => Err(invalid("audience", "is empty: nobody to send to")),
            other => other,
        };
        if size.is_err() {
            self.store.campaigns.drop_draft(id).await?;
        }
        size
    }

    /// Stores a listed audience as it arrives; returns its size. A PSID that comes twice is
    /// an error naming both places. What was seen is kept as one 64-bit hash a PSID (about
    /// 20 MB for a million), so memory stays flat however the list is sent; a hash seen before
    /// is checked against the stored list before it is called a repeat.
    async fn store_listed<S>(
        &self,
        id: &CampaignId,
        mut members: S,
        kind: ListKind,
    ) -> Result<u64, CommandError>
    where
        S: Stream<Item = Result<Psid, FieldError>> + Unpin,
    {
        let hasher = std::collections::hash_map::RandomState::new();
        let mut seen = std::collections::HashSet::new();
        let mut stored = 0u64;
        let mut part: Vec<Psid> = Vec::with_capacity(AUDIENCE_PART);
        while let Some(member) = members.next().await {
            let psid = member.map_err(|e| CommandError::Invalid(vec![e]))?;
            let index = stored + part.len() as u64;
            if !seen.insert(std::hash::BuildHasher::hash_one(&hasher, psid.as_str())) {
                let earlier = match part.iter().position(|p| *p == psid) {
                    Some(i) => Some(stored + i as u64),
                    None => self.position_of(id, &psid, stored).await?,
                };
                if let Some(first) = earlier {
                    return Err(invalid(
                        &kind.place(index),
                        &format!("repeats PSID {psid}, first at {}", kind.place(first)),
                    ));
                }
            }
            part.push(psid);
            if part.len() == AUDIENCE_PART {
                self.store
                    .campaigns
                    .append_audience(id, stored, &part)
                    .await?;
                stored += part.len() as u64;
                part.clear();
            }
        }
        self.store
            .campaigns
            .append_audience(id, stored, &part)
            .await?;
        Ok(stored + part.len() as u64)
    }

    /// Where `psid` stands among the first `stored` members of the audience, if it does.
    async fn position_of(
        &self,
        id: &CampaignId,
        psid: &Psid,
        stored: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut from = 0;
        while from < stored {
            let page = self
                .store
                .campaigns
                .audience(id, from, AUDIENCE_PART)
                .await?;
            if page.is_empty() {
                break;
            }
            if let Some(i) = page.iter().position(|p| p == psid) {
                return Ok(Some(from + i as u64));
            }
            from += page.len() as u64;
        }
        Ok(None)
    }

    /// Everyone with a marketing consent and no opt-out, read from the store page by page.
    async fn store_segment(&self, id: &CampaignId) -> Result<u64, CommandError> {
        let mut stored = 0u64;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .recipients
                .recipients_after(after.as_deref(), AUDIENCE_PART)
                .await?;
            let Some((last, _)) = page.last() else {
                return Ok(stored);
            };
            after = Some(last.clone());
            let part: Vec<Psid> = page
                .iter()
                .filter(|(_, r)| {
                    r.has_consent(ConsentScope::Marketing) && !r.opted_out(ConsentScope::Marketing)
                })
                .filter_map(|(key, _)| Psid::parse(key).ok())
                .collect();
            // Recipients are one record each: no PSID comes twice.
            self.store
                .campaigns
                .append_audience(id, stored, &part)
                .await?;
            stored += part.len() as u64;
        }
    }
}
