//! A marketing campaign: one message to an audience, sent at a pace, staged, guarded.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::audit::{AuditEntry, AuditKind};
pub use super::ids::CampaignId;
use super::{Category, Content, Role};

/// Where a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Its audience is being stored; not yet visible.
    Draft,
    /// Waiting for `send_at`.
    Scheduled,
    Running,
    Paused,
    /// Everyone in the audience was handed to the policy and nothing is left waiting.
    Completed,
    Cancelled,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Running => "running",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Completed => "completed",
            CampaignStatus::Cancelled => "cancelled",
        }
    }

    /// Finished for good.
    pub fn is_final(self) -> bool {
        matches!(self, CampaignStatus::Completed | CampaignStatus::Cancelled)
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Send to `first_percent` of the audience first, then wait `hold` before the rest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rollout {
    pub first_percent: u8,
    /// Seconds.
    pub hold_seconds: i64,
}

/// Pause the campaign once `min_sends` have gone if more than `max_opt_out_percent` of them
/// opted out (stop keyword, stopped notifications, blocked the page).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Guard {
    pub max_opt_out_percent: f64,
    pub min_sends: u64,
}

/// Where the opt-out guard counts from after a resume: the sends and opt-outs before it were
/// seen by whoever resumed the campaign, and do not trip the guard again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GuardBaseline {
    /// When the campaign was resumed.
    pub at: DateTime<Utc>,
    /// Sends (sent, delivered, read, failed) before then.
    pub sends: u64,
    /// Opt-outs among its recipients before then.
    pub opt_outs: u64,
}

/// Why a campaign is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PausedReason {
    /// A client asked.
    Requested,
    /// The opt-out guard tripped.
    OptOutRate,
}

/// Everything Herald keeps about a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub page_id: String,
    pub content: Content,
    /// The client that created it, and its role: each send is decided as theirs.
    pub created_by: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub send_at: DateTime<Utc>,
    pub rate_per_second: u32,
    pub respect_quiet_hours: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
    pub status: CampaignStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<PausedReason>,
    /// How many recipients the audience holds.
    pub audience: u64,
    /// The next audience position to hand to the policy; everything before it was handed.
    pub cursor: u64,
    /// Position `base_index` goes at `base_at`; each later one `1 / rate` seconds after the one
    /// before. Moved on a resume and at the end of a rollout's hold.
    pub base_at: DateTime<Utc>,
    pub base_index: u64,
    /// When the rollout's hold ends (set once its first part has gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_until: Option<DateTime<Utc>>,
    /// Recipients who opted out after this campaign reached them.
    #[serde(default)]
    pub opt_outs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Set when a campaign the guard paused is resumed: the guard counts from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_from: Option<GuardBaseline>,
}

impl Campaign {
    /// When audience position `index` is due.
    pub fn slot(&self, index: u64) -> DateTime<Utc> {
        let after = index.saturating_sub(self.base_index);
        let rate = u64::from(self.rate_per_second.max(1));
        let micros = i64::try_from(after.saturating_mul(1_000_000) / rate).unwrap_or(i64::MAX);
        super::bounds::later(self.base_at, Duration::microseconds(micros))
    }

    /// How many positions the rollout's first part covers (all of them without a rollout).
    pub fn first_part(&self) -> u64 {
        match self.rollout {
            Some(r) => (self.audience * u64::from(r.first_percent)).div_ceil(100),
            None => self.audience,
        }
    }
}

/// Something that happens to a campaign as a whole.
#[derive(Debug, Clone)]
pub enum CampaignEvent {
    /// Its audience is stored whole.
    Scheduled {
        audience: u64,
    },
    /// `send_at` has come.
    Started,
    /// A client asked, or the opt-out guard tripped (with what it saw).
    Paused {
        reason: PausedReason,
        detail: Option<String>,
    },
    /// A client asked; `sends` is how many of its messages had gone by then.
    Resumed {
        sends: u64,
    },
    Cancelled,
    /// Everyone handed over and nothing left waiting.
    Completed,
    /// The rollout's first part has gone: the rest from `until` on.
    Holding {
        until: DateTime<Utc>,
        first: u64,
    },
}

impl Campaign {
    /// Applies `event` at `at` (asked by `client`, when a client asked), if the campaign's
    /// status allows it, and returns the audit entry that records it; `None` leaves the
    /// campaign as it was. The one place that says which status follows which.
    pub fn apply(
        &mut self,
        event: CampaignEvent,
        at: DateTime<Utc>,
        client: Option<&str>,
    ) -> Option<AuditEntry> {
        use CampaignStatus::*;
        let (outcome, reason, detail) = match (self.status, event) {
            (Draft, CampaignEvent::Scheduled { audience }) => {
                self.status = Scheduled;
                self.audience = audience;
                ("created", None, None)
            }
            (Scheduled, CampaignEvent::Started) => {
                self.status = Running;
                ("started", None, None)
            }
            (Scheduled | Running, CampaignEvent::Paused { reason, detail }) => {
                self.status = Paused;
                self.paused_reason = Some(reason);
                let reason =
                    (reason == PausedReason::OptOutRate).then(|| "opt_out_rate".to_owned());
                ("paused", reason, detail)
            }
            (Paused, CampaignEvent::Resumed { sends }) => ("resumed", None, self.resume(sends, at)),
            (Scheduled | Running | Paused, CampaignEvent::Cancelled) => {
                self.status = Cancelled;
                self.finished_at = Some(at);
                ("cancelled", None, None)
            }
            (Running, CampaignEvent::Completed) => {
                self.status = Completed;
                self.finished_at = Some(at);
                ("completed", None, None)
            }
            (Running, CampaignEvent::Holding { until, first }) if self.hold_until.is_none() => {
                ("holding", None, Some(self.hold(until, first)))
            }
            _ => return None,
        };
        Some(self.audit_entry(at, client, outcome, reason, detail))
    }

    /// Paused → scheduled (when nothing has gone and `send_at` is still ahead) or running. The
    /// audit detail when the opt-out guard had paused it.
    fn resume(&mut self, sends: u64, at: DateTime<Utc>) -> Option<String> {
        // Resuming a campaign its guard paused is a decision to go on despite the opt-outs
        // seen so far: the guard counts again from here, and says so.
        let detail = (self.paused_reason == Some(PausedReason::OptOutRate)).then(|| {
            self.guard_from = Some(GuardBaseline {
                at,
                sends,
                opt_outs: self.opt_outs,
            });
            format!(
                "the opt-out guard counts again from here: the {} opt-outs among {sends} sends before the resume no longer count",
                self.opt_outs
            )
        });
        self.status = if self.cursor == 0 && self.send_at > at {
            CampaignStatus::Scheduled
        } else {
            CampaignStatus::Running
        };
        self.paused_reason = None;
        // The pace starts again from now, where the campaign stopped.
        self.base_at = at.max(self.send_at);
        self.base_index = self.cursor;
        detail
    }

    /// The rollout's first part has gone: the pace of the rest starts at `until`. The detail.
    fn hold(&mut self, until: DateTime<Utc>, first: u64) -> String {
        self.hold_until = Some(until);
        self.base_at = until;
        self.base_index = first;
        format!("the rollout's first {first} recipients have gone; the rest from {until}")
    }

    /// The entry that records a change of the campaign; `detail` defaults to its name and
    /// audience.
    fn audit_entry(
        &self,
        at: DateTime<Utc>,
        client: Option<&str>,
        outcome: &str,
        reason: Option<String>,
        detail: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            at,
            kind: AuditKind::Campaign,
            campaign: Some(self.id.to_string()),
            page_id: Some(self.page_id.clone()),
            client: Some(client.unwrap_or(&self.created_by).to_owned()),
            category: Some(Category::Marketing),
            outcome: Some(outcome.to_owned()),
            reason,
            detail: Some(
                detail.unwrap_or_else(|| format!("{} ({} recipients)", self.name, self.audience)),
            ),
            ..AuditEntry::default()
        }
    }
}

/// A campaign's messages by where they are, kept up to date as they move.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignCounts {
    pub audience: u64,
    /// Not yet handed to the policy, or queued to go.
    pub pending: u64,
    pub deferred: u64,
    pub sent: u64,
    pub delivered: u64,
    pub read: u64,
    pub failed: u64,
    pub expired: u64,
    pub cancelled: u64,
    /// Refused by the policy, by reason.
    pub denied: BTreeMap<String, u64>,
    /// Recipients who opted out after this campaign reached them.
    pub opt_outs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A campaign of 95 recipients at 4 a second, with a 10 % rollout, made at `at`.
    fn campaign(at: DateTime<Utc>, status: CampaignStatus) -> Campaign {
        Campaign {
            id: CampaignId::generate(),
            name: "n".into(),
            page_id: "1".into(),
            content: Content::Message(serde_json::json!({"text": "hi"})),
            created_by: "m".into(),
            role: Role::Marketer,
            created_at: at,
            send_at: at,
            rate_per_second: 4,
            respect_quiet_hours: true,
            rollout: Some(Rollout {
                first_percent: 10,
                hold_seconds: 60,
            }),
            guard: None,
            status,
            paused_reason: None,
            audience: 95,
            cursor: 0,
            base_at: at,
            base_index: 0,
            hold_until: None,
            opt_outs: 0,
            finished_at: None,
            guard_from: None,
        }
    }

    #[test]
    fn slots_follow_the_rate_from_the_base() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let c = campaign(at, CampaignStatus::Running);
        assert_eq!(c.slot(0), at);
        assert_eq!(c.slot(4), at + Duration::seconds(1));
        assert_eq!(c.slot(6), at + Duration::milliseconds(1500));
        assert_eq!(c.first_part(), 10, "10 % of 95, rounded up");
        assert!(CampaignId::parse(c.id.as_str()).is_some());
        assert!(CampaignId::parse("msg_01J0000000000000000000000").is_none());
    }

    #[test]
    fn only_the_transitions_a_campaigns_status_allows_are_made_and_each_is_audited() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut c = campaign(at, CampaignStatus::Draft);
        c.audience = 0;
        assert!(
            c.apply(CampaignEvent::Started, at, None).is_none(),
            "a draft does not start"
        );
        let created = c
            .apply(CampaignEvent::Scheduled { audience: 20 }, at, None)
            .expect("scheduled");
        assert_eq!(
            (created.outcome.as_deref(), c.audience),
            (Some("created"), 20)
        );
        c.apply(CampaignEvent::Started, at, None).expect("started");
        c.cursor = 7;
        let paused = c
            .apply(
                CampaignEvent::Paused {
                    reason: PausedReason::OptOutRate,
                    detail: None,
                },
                at,
                None,
            )
            .expect("paused");
        assert_eq!(paused.reason.as_deref(), Some("opt_out_rate"));
        let later = at + Duration::minutes(5);
        let resumed = c
            .apply(CampaignEvent::Resumed { sends: 0 }, later, Some("ops"))
            .expect("resumed");
        assert_eq!(
            resumed.client.as_deref(),
            Some("ops"),
            "who asked is recorded"
        );
        assert_eq!(
            (c.status, c.base_at, c.base_index),
            (CampaignStatus::Running, later, 7)
        );
        assert_eq!(c.slot(7), later, "the pace starts again where it stopped");
        c.apply(CampaignEvent::Cancelled, later, None)
            .expect("cancelled");
        assert!(
            c.apply(CampaignEvent::Resumed { sends: 0 }, later, None)
                .is_none(),
            "cancelled for good"
        );
        assert!(c.apply(CampaignEvent::Completed, later, None).is_none());
    }
}
