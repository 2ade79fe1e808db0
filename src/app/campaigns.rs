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
//! which the worker honours as `send_at`. The campaign's cursor is stored after each part it
//! hands over; a crash between an accept and the cursor's write replays that accept under its
//! idempotency key, so no recipient gets the campaign twice.

use chrono::{DateTime, Duration, Utc};
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;

use super::{CommandError, Herald, IdempotencyKey, SendCommand, SendError, WhenDeferred};
use crate::domain::bounds;
use crate::domain::campaign::{
    Campaign, CampaignCounts, CampaignEvent, CampaignId, CampaignStatus, Guard, GuardBaseline,
    PausedReason, Rollout,
};
use crate::domain::Client;
use crate::domain::{
    Category, ConsentScope, Content, FieldError, OutboundMessage, PageId, Psid, Recipient,
};
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

/// Audience members stored per transaction while an audience is read.
const AUDIENCE_PART: usize = 1_000;
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

/// The campaign's messages that have gone to Messenger (the guard's denominator).
fn sends(counts: &CampaignCounts) -> u64 {
    counts.sent + counts.delivered + counts.read + counts.failed
}

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
            self.store
                .campaigns
                .update(
                    &c.id,
                    Box::new(move |c| {
                        (index > c.cursor).then(|| {
                            c.cursor = index;
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

/// The default pace when a campaign names none: gentle, well under a page's limit.
const DEFAULT_RATE: u32 = 50;

fn invalid(field: &str, message: &str) -> CommandError {
    CommandError::Invalid(vec![FieldError::new(field, message)])
}
