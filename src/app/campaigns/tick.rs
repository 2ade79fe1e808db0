//! Running campaigns: each tick starts those whose time has come, hands the recipients whose
//! slots are due to the policy, holds a rollout, trips the opt-out guard and completes; and the
//! opt-outs counted against the campaign that reached the person.

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;

use super::sends;
use crate::app::{CommandError, Herald, IdempotencyKey, SendCommand, SendError, WhenDeferred};
use crate::domain::bounds;
use crate::domain::campaign::{
    Campaign, CampaignCounts, CampaignEvent, CampaignId, CampaignStatus, PausedReason,
};
use crate::domain::{Category, Client, OutboundMessage, PageId, Psid, Recipient};
use crate::store::StoreError;

/// How far ahead of its slot a recipient is handed to the policy (then waits as `send_at`).
const LOOKAHEAD_MS: i64 = 1_000;
/// The most recipients one campaign hands over in one tick.
const PER_TICK: usize = 2_000;
/// The most accepts of one tick in flight together (the writer commits them as one batch).
const TICK_BATCH: usize = 64;
/// How many of a recipient's latest messages are searched for the campaign that reached them.
const RECENT: usize = 20;
/// An opt-out counts against a campaign that reached the person within this many days.
const OPT_OUT_ATTRIBUTION_DAYS: i64 = 7;

impl Herald {
    /// Moves every campaign along: starts those whose time has come, hands the recipients whose
    /// slots are due to the policy, holds a rollout, trips the guard, completes. Runs every
    /// 100 ms; tests call it in place of waiting.
    pub async fn campaigns_tick(&self) -> Result<(), CommandError> {
        let _one_at_a_time = self.campaign_ticks.lock().await;
        for campaign in self.store.campaigns.all().await? {
            // With several instances, a campaign is moved along by the owner of its page's
            // partition only: one pace, one scheduler.
            if !self.store.engine.runs_page(&campaign.page_id) {
                continue;
            }
            match campaign.status {
                CampaignStatus::Scheduled | CampaignStatus::Running => {
                    if let Err(e) = self.advance(campaign).await {
                        tracing::error!(error = %crate::report::error_chain(&e), "a campaign could not advance");
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn advance(&self, campaign: Campaign) -> Result<(), CommandError> {
        let now = self.clock.now();
        let id = campaign.id.clone();
        if campaign.status == CampaignStatus::Scheduled {
            if campaign.send_at > now {
                return Ok(());
            }
            self.transition(&id, CampaignEvent::Started, now, None)
                .await?;
        }
        let Some(campaign) = self.store.campaigns.campaign(&id).await? else {
            return Ok(());
        };
        if campaign.status != CampaignStatus::Running {
            return Ok(());
        }
        let counts = self.counts(&campaign).await?;
        if self.guard_tripped(&campaign, &counts) {
            let limit = campaign
                .guard
                .map(|g| g.max_opt_out_percent)
                .unwrap_or_default();
            let event = CampaignEvent::Paused {
                reason: PausedReason::OptOutRate,
                detail: Some(format!(
                    "{} of its recipients opted out, over the guard's {limit} %",
                    campaign.opt_outs
                )),
            };
            self.transition(&id, event, now, None).await?;
            tracing::warn!(campaign = %id, "campaign paused: opt-outs over its guard");
            return Ok(());
        }
        if campaign.cursor >= campaign.audience {
            if counts.pending == 0 && counts.deferred == 0 {
                self.transition(&id, CampaignEvent::Completed, now, None)
                    .await?;
            }
            return Ok(());
        }
        self.hand_over(campaign, now).await
    }

    /// Whether the opt-outs among the campaign's recipients are over its guard's limit, since
    /// the campaign was last resumed from a pause the guard made.
    fn guard_tripped(&self, c: &Campaign, counts: &CampaignCounts) -> bool {
        let Some(guard) = c.guard else {
            return false;
        };
        let (sends_before, opt_outs_before) =
            c.guard_from.map_or((0, 0), |b| (b.sends, b.opt_outs));
        let sends = sends(counts).saturating_sub(sends_before);
        let opt_outs = c.opt_outs.saturating_sub(opt_outs_before);
        sends >= guard.min_sends.max(1)
            && (opt_outs as f64) * 100.0 > guard.max_opt_out_percent * sends as f64
    }

    /// Hands over the recipients whose slots fall within the look-ahead.
    async fn hand_over(&self, mut c: Campaign, now: DateTime<Utc>) -> Result<(), CommandError> {
        // A rollout's first part has gone: hold, then carry on from the hold's end.
        let first = c.first_part();
        if c.cursor >= first && c.cursor < c.audience {
            if let Some(rollout) = c.rollout {
                let until = match c.hold_until {
                    Some(until) => until,
                    None => {
                        // Bounded at the edge; bounded again here, as a stored campaign may
                        // predate the bound, and an overflow would stop every campaign.
                        let hold = Duration::seconds(
                            rollout
                                .hold_seconds
                                .clamp(0, bounds::ROLLOUT_HOLD_MAX.num_seconds()),
                        );
                        let until = bounds::later(c.slot(first.saturating_sub(1)).max(now), hold);
                        c = self.set_hold(&c.id, until, first).await?;
                        until
                    }
                };
                if now < until {
                    return Ok(());
                }
            }
        }
        // Behind its pace (ticks held up by a busy machine, or a start after `send_at` while
        // Herald was down), a campaign does not catch up above its rate: its pace starts again
        // from now, where it is, and it ends that much later.
        let rebased = c.slot(c.cursor) < now;
        if rebased {
            c.base_at = now;
            c.base_index = c.cursor;
        }
        let horizon = bounds::later(now, Duration::milliseconds(LOOKAHEAD_MS));
        let end = if c.cursor < first { first } else { c.audience };
        let mut index = c.cursor;
        let members = self
            .store
            .campaigns
            .audience(&c.id, index, PER_TICK.min((end - index) as usize))
            .await?;
        let mut due = Vec::with_capacity(members.len());
        for psid in members {
            let slot = c.slot(index);
            if slot > horizon {
                break;
            }
            due.push((psid, slot));
            index += 1;
        }
        // The tick's recipients go to the core side by side, so that the store's writer takes
        // their accepts as one batch: one transaction and one flush for the tick, not one
        // each (issue 18: 355–473 µs of CPU a recipient, one at a time). Each is still its own
        // accept under its own idempotency key; if one fails the cursor stays, and the next
        // tick replays the part, the accepted ones answered from their keys.
        let mut accepts = futures_util::stream::iter(due)
            .map(|(psid, slot)| self.send_one(&c, psid, slot, now))
            .buffered(TICK_BATCH);
        let mut failed = None;
        while let Some(result) = accepts.next().await {
            if let Err(e) = result {
                failed.get_or_insert(e);
            }
        }
        drop(accepts);
        if let Some(e) = failed {
            return Err(e);
        }
        if index > c.cursor {
            let base = rebased.then_some((c.base_at, c.base_index));
            self.store
                .campaigns
                .update(
                    &c.id,
                    Box::new(move |c| {
                        (index > c.cursor).then(|| {
                            c.cursor = index;
                            if let Some((base_at, base_index)) = base {
                                c.base_at = base_at;
                                c.base_index = base_index;
                            }
                            Vec::new()
                        })
                    }),
                )
                .await?;
        }
        Ok(())
    }

    async fn set_hold(
        &self,
        id: &CampaignId,
        until: DateTime<Utc>,
        first: u64,
    ) -> Result<Campaign, CommandError> {
        let changed = self
            .transition(id, CampaignEvent::Holding { until, first }, until, None)
            .await?;
        match changed {
            Some(c) => Ok(c),
            None => self
                .store
                .campaigns
                .campaign(id)
                .await?
                .ok_or_else(|| CommandError::NotFound(format!("no campaign {id}"))),
        }
    }

    /// One recipient: decided by the policy now, as the campaign's creator would send it.
    async fn send_one(
        &self,
        c: &Campaign,
        psid: Psid,
        slot: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        let key = format!("{}:{}", c.id, psid);
        let command = SendCommand {
            client: Client {
                name: c.created_by.clone(),
                role: c.role,
            },
            message: OutboundMessage {
                page_id: PageId::parse(&c.page_id).ok(),
                recipient: Recipient::Psid(psid),
                category: Category::Marketing,
                content: c.content.clone(),
                utility_template: None,
                send_at: (slot > now).then_some(slot),
                expires_at: None,
                respect_quiet_hours: c.respect_quiet_hours,
            },
            idempotency: Some(IdempotencyKey {
                request_sha256: c.id.to_string(),
                key,
            }),
            campaign: Some(c.id.clone()),
            when_deferred: WhenDeferred::Queue,
        };
        match self.accept(command).await {
            // Allowed, deferred, or refused by the policy: each is counted where it stands.
            Ok(_) | Err(SendError::Denied { .. }) => Ok(()),
            Err(SendError::Store(e)) => Err(e.into()),
            Err(SendError::Invalid(errors)) => Err(CommandError::Invalid(errors)),
            Err(SendError::IdempotencyConflict) => Ok(()),
        }
    }

    /// The person behind `key` opted out of marketing (a stop keyword, stopped notifications,
    /// blocked the page): it counts against the campaign that reached them last, if one did
    /// within a week.
    pub(crate) async fn note_opt_out(&self, key: &str) -> Result<(), StoreError> {
        let since = bounds::earlier(self.clock.now(), Duration::days(OPT_OUT_ATTRIBUTION_DAYS));
        for id in self
            .store
            .recipients
            .recent_message_ids(key, RECENT)
            .await?
        {
            let Some(message) = self.store.messages.message(&id).await? else {
                continue;
            };
            let (Some(campaign), Some(sent_at)) = (message.campaign, message.sent_at) else {
                continue;
            };
            if sent_at < since {
                return Ok(());
            }
            self.count_opt_out(&campaign).await?;
            return Ok(());
        }
        Ok(())
    }

    /// One more of the campaign's recipients opted out.
    pub(crate) async fn count_opt_out(&self, campaign: &CampaignId) -> Result<(), StoreError> {
        self.store
            .campaigns
            .update(
                campaign,
                Box::new(|c| {
                    c.opt_outs += 1;
                    Some(Vec::new())
                }),
            )
            .await?;
        self.campaigns_wake.notify_one();
        Ok(())
    }
}
