//! Campaigns: one marketing message to an audience, each recipient decided by the policy at the
//! moment of sending, at the pace asked, staged and guarded.
//!
//! ```text
//!   create: draft ── audience streamed in parts (a PSID repeated: 400, draft dropped) ── scheduled
//!   tick (every 100 ms, and from tests):
//!     scheduled ── send_at ──► running ── slot i due ──► accept(marketing, idempotency key
//!                                │                        campaign:psid) — allowed, deferred
//!                                │                        (quiet hours) or denied, counted
//!                                ├── rollout: first part gone ──► hold ──► the rest
//!                                ├── guard: opt-outs over the limit ──► paused (opt_out_rate)
//!                                └── everyone handed over, nothing waiting ──► completed
//! ```
//!
//! Recipient `i` is due at `base_at + (i - base_index) / rate`: the pace is kept by the slots,
//! which the worker honours as `send_at`. A campaign found behind its slots (a stalled machine, a
//! start after `send_at` while Herald was down) starts its pace again from now rather than sending
//! the missed slots at once. The campaign's cursor is stored after each part it hands over; a
//! crash between an accept and the cursor's write replays that accept under its idempotency key,
//! so no recipient gets the campaign twice.
//!
//! `create.rs` makes a campaign (the draft, its audience); `tick.rs` runs them (the slots, the
//! rollout, the guard, the opt-outs counted against a campaign); this file reads them and
//! answers a client's pause, resume and cancel.

mod create;
mod tick;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{CommandError, Herald};
use crate::domain::campaign::{
    Campaign, CampaignCounts, CampaignEvent, CampaignId, CampaignStatus, Guard, GuardBaseline,
    PausedReason, Rollout,
};
use crate::domain::Client;
use crate::domain::{FieldError, PageId};
use crate::store::StoreError;

/// A campaign as a client asked for it, parsed; its audience comes apart.
#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub name: String,
    pub page_id: Option<PageId>,
    /// A Messenger message object, already validated.
    pub message: Value,
    pub send_at: Option<DateTime<Utc>>,
    pub rate_per_second: Option<u32>,
    pub respect_quiet_hours: bool,
    pub rollout: Option<Rollout>,
    pub guard: Option<Guard>,
}

/// Who a campaign goes to.
pub enum Audience<S> {
    /// Listed by the client (JSON `psids` or a CSV upload), read as it arrives. Each item is
    /// a PSID or the problem with its line.
    Listed { members: S, kind: ListKind },
    /// Everyone with a marketing consent and no opt-out, at the moment of creation.
    MarketingOptedIn,
}

/// How a listed audience names its positions in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `audience.psids[i]`
    Json,
    /// `line n` of an uploaded CSV file (the header is line 1).
    Csv,
}

impl ListKind {
    fn place(self, index: u64) -> String {
        match self {
            ListKind::Json => format!("audience.psids[{index}]"),
            ListKind::Csv => format!("line {}", index + 2),
        }
    }
}

/// A campaign and where its messages stand.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CampaignView {
    pub id: CampaignId,
    pub name: String,
    pub status: CampaignStatus,
    pub paused_reason: Option<PausedReason>,
    pub page_id: String,
    pub send_at: DateTime<Utc>,
    pub rate_per_second: u32,
    pub respect_quiet_hours: bool,
    pub rollout: Option<Rollout>,
    pub guard: Option<Guard>,
    /// After a resume from a pause its guard made: the guard counts from there.
    pub guard_counts_from: Option<GuardBaseline>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: CampaignCounts,
}

/// The campaign's messages that have gone to Messenger (the guard's denominator).
fn sends(counts: &CampaignCounts) -> u64 {
    counts.sent + counts.delivered + counts.read + counts.failed
}

impl Herald {
    /// Every campaign but drafts, newest first.
    pub async fn campaigns(&self) -> Result<Vec<CampaignView>, CommandError> {
        let mut out = Vec::new();
        for c in self.store.campaigns.all().await? {
            if c.status != CampaignStatus::Draft {
                out.push(self.campaign_view(c).await?);
            }
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// Where the messages of each scheduled, running or paused campaign stand, for
    /// `GET /metrics`: `(campaign, state, count)`.
    pub async fn campaign_progress(
        &self,
    ) -> Result<Vec<(String, &'static str, u64)>, CommandError> {
        let mut out = Vec::new();
        for view in self.campaigns().await? {
            if !matches!(
                view.status,
                CampaignStatus::Scheduled | CampaignStatus::Running | CampaignStatus::Paused
            ) {
                continue;
            }
            let c = &view.counts;
            let denied = c.denied.values().sum();
            for (state, n) in [
                ("audience", c.audience),
                ("pending", c.pending),
                ("deferred", c.deferred),
                ("sent", c.sent),
                ("delivered", c.delivered),
                ("read", c.read),
                ("failed", c.failed),
                ("expired", c.expired),
                ("cancelled", c.cancelled),
                ("denied", denied),
                ("opt_outs", c.opt_outs),
            ] {
                out.push((view.id.to_string(), state, n));
            }
        }
        Ok(out)
    }

    pub async fn campaign(&self, id: &str) -> Result<CampaignView, CommandError> {
        let campaign = self.find(id).await?;
        self.campaign_view(campaign).await
    }

    /// Stops handing recipients over; messages already waiting stay waiting.
    pub async fn pause_campaign(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<CampaignView, CommandError> {
        let event = CampaignEvent::Paused {
            reason: PausedReason::Requested,
            detail: None,
        };
        self.control(client, id, event, "paused").await
    }

    /// Carries on from where the campaign stopped, at its pace from now.
    pub async fn resume_campaign(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<CampaignView, CommandError> {
        let campaign = self.find(id).await?;
        let counts = self.counts(&campaign).await?;
        let event = CampaignEvent::Resumed {
            sends: sends(&counts),
        };
        let view = self.control(client, id, event, "resumed").await?;
        self.campaigns_wake.notify_one();
        Ok(view)
    }

    /// Ends the campaign for good: nobody else gets it, and its waiting messages are cancelled
    /// when they come due.
    pub async fn cancel_campaign(
        &self,
        client: &Client,
        id: &str,
    ) -> Result<CampaignView, CommandError> {
        self.control(client, id, CampaignEvent::Cancelled, "cancelled")
            .await
    }

    /// A client's pause, resume or cancel; a conflict when the campaign's status does not
    /// allow it.
    async fn control(
        &self,
        client: &Client,
        id: &str,
        event: CampaignEvent,
        what: &'static str,
    ) -> Result<CampaignView, CommandError> {
        let campaign = self.find(id).await?;
        let now = self.clock.now();
        match self
            .transition(&campaign.id, event, now, Some(&client.name))
            .await?
        {
            Some(changed) => self.campaign_view(changed).await,
            None => Err(CommandError::CampaignConflict {
                id: campaign.id,
                status: campaign.status,
                what,
            }),
        }
    }

    /// Applies `event` to the stored campaign (`Campaign::apply` decides whether its status
    /// allows it) with its audit entry, in one durable write; `None` when it does not.
    async fn transition(
        &self,
        id: &CampaignId,
        event: CampaignEvent,
        at: DateTime<Utc>,
        client: Option<&str>,
    ) -> Result<Option<Campaign>, StoreError> {
        let client = client.map(str::to_owned);
        self.store
            .campaigns
            .update(
                id,
                Box::new(move |c| c.apply(event, at, client.as_deref()).map(|e| vec![e])),
            )
            .await
    }

    async fn find(&self, id: &str) -> Result<Campaign, CommandError> {
        let not_found = || CommandError::NotFound(format!("no campaign {id}"));
        let id = CampaignId::parse(id).ok_or_else(not_found)?;
        match self.store.campaigns.campaign(&id).await? {
            Some(c) if c.status != CampaignStatus::Draft => Ok(c),
            _ => Err(not_found()),
        }
    }

    async fn campaign_view(&self, c: Campaign) -> Result<CampaignView, CommandError> {
        let counts = self.counts(&c).await?;
        Ok(CampaignView {
            id: c.id,
            name: c.name,
            status: c.status,
            paused_reason: c.paused_reason,
            page_id: c.page_id,
            send_at: c.send_at,
            rate_per_second: c.rate_per_second,
            respect_quiet_hours: c.respect_quiet_hours,
            rollout: c.rollout,
            guard: c.guard,
            guard_counts_from: c.guard_from,
            created_by: c.created_by,
            created_at: c.created_at,
            finished_at: c.finished_at,
            counts,
        })
    }

    /// Where the campaign's messages stand, from the counts the store keeps.
    async fn counts(&self, c: &Campaign) -> Result<CampaignCounts, StoreError> {
        let mut counts = CampaignCounts {
            audience: c.audience,
            opt_outs: c.opt_outs,
            ..CampaignCounts::default()
        };
        for (label, n) in self.store.campaigns.counts(&c.id).await? {
            match label.as_str() {
                // Queued messages are still pending (below).
                "queued" | "sending" => {}
                "deferred" => counts.deferred += n,
                "sent" => counts.sent += n,
                "delivered" => counts.delivered += n,
                "read" => counts.read += n,
                "failed" => counts.failed += n,
                "expired" => counts.expired += n,
                "cancelled" => counts.cancelled += n,
                other => {
                    if let Some(reason) = other.strip_prefix("denied:") {
                        *counts.denied.entry(reason.to_owned()).or_default() += n;
                    }
                }
            }
        }
        // Everyone not yet past the queue: not handed over yet, or queued to go. Counted from
        // the messages themselves (one per recipient, by the idempotency key), not from the
        // cursor, which is stored only after a tick's part has been handed over.
        let past_the_queue = counts.deferred
            + counts.sent
            + counts.delivered
            + counts.read
            + counts.failed
            + counts.expired
            + counts.cancelled
            + counts.denied.values().sum::<u64>();
        counts.pending = c.audience.saturating_sub(past_the_queue);
        Ok(counts)
    }
}

fn invalid(field: &str, message: &str) -> CommandError {
    CommandError::Invalid(vec![FieldError::new(field, message)])
}
