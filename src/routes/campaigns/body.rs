//! A campaign's body as the client sends it (JSON, or a CSV upload's query parameters): read by
//! serde, then each field checked and named when bad.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::invalid;
use crate::app::NewCampaign;
use crate::domain::campaign::{Guard, Rollout};
use crate::domain::{bounds, parse_time, validate_message_object, PageId, Violations};
use crate::error::ApiError;

/// `POST /v1/campaigns` as JSON. As `text/csv` (a `psid` column), the other fields are query
/// parameters.
// Read by serde (the first bad field is named), then each field is checked in
// `CampaignBody::into_campaign`. The document has always called these `…Request`; serde's
// messages name the Rust types.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CampaignRequest)]
pub(super) struct CampaignBody {
    name: String,
    page_id: Option<String>,
    #[schema(value_type = Object)]
    message: Value,
    // Required in a JSON body; a CSV upload's comes from the body instead.
    #[schema(value_type = AudienceBody)]
    pub(super) audience: Option<AudienceBody>,
    /// At most 365 days ahead.
    #[schema(value_type = Option<DateTime<Utc>>)]
    send_at: Option<Value>,
    /// 1 to 300 (Messenger's page limit), and at most the page's `[send_rate] per_page`.
    rate_per_second: Option<u32>,
    /// Default true.
    respect_quiet_hours: Option<bool>,
    rollout: Option<RolloutBody>,
    guard: Option<GuardBody>,
}

/// A campaign's audience: listed PSIDs, or a segment (`marketing_opted_in`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AudienceRequest)]
pub(super) struct AudienceBody {
    #[schema(value_type = Option<Vec<String>>)]
    pub(super) psids: Option<Vec<Value>>,
    pub(super) segment: Option<String>,
}

/// `rollout`: send to `first_percent` first, then wait `hold` (e.g. `"2h"`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RolloutRequest)]
struct RolloutBody {
    /// 1 to 99.
    // Read wider than it may be, so that 150 is refused in Herald's words, not serde's.
    #[schema(value_type = u8)]
    first_percent: u32,
    /// At most 30 days.
    hold: String,
}

/// `guard`: pause once `min_sends` have gone if opt-outs exceed `max_opt_out_percent`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GuardRequest)]
struct GuardBody {
    max_opt_out_percent: f64,
    min_sends: u64,
}

impl CampaignBody {
    /// Reads the body's shape; a field of the wrong type or an unknown one is named.
    pub(super) fn parse(value: Value) -> Result<CampaignBody, ApiError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            invalid(&field, &e.into_inner().to_string())
        })
    }

    /// Checks every field and names each bad one; dates are bounded from `now`.
    pub(super) fn into_campaign(self, now: DateTime<Utc>) -> Result<NewCampaign, ApiError> {
        let mut v = Violations::default();
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            v.push("name", "must be 1 to 200 characters");
        }
        let page_id = self
            .page_id
            .as_deref()
            .and_then(|p| match PageId::parse(p) {
                Ok(id) => Some(id),
                Err(e) => {
                    v.push("page_id", e);
                    None
                }
            });
        validate_message_object(&self.message, "message", &mut v);
        let send_at = self
            .send_at
            .as_ref()
            .and_then(|s| parse_time(s, "send_at", &mut v));
        if let Some(Err(e)) = send_at.map(|at| bounds::check_send_at(at, now)) {
            v.push("send_at", e);
        }
        if let Some(Err(e)) = self
            .rate_per_second
            .map(|rate| bounds::check_range(rate, &bounds::CAMPAIGN_RATE))
        {
            v.push("rate_per_second", e);
        }
        let rollout = self.rollout.and_then(|r| r.read(&mut v));
        let guard = self.guard.map(|g| g.read(&mut v));
        if !v.is_empty() {
            return Err(ApiError::Invalid(v.into_inner()));
        }
        Ok(NewCampaign {
            name,
            page_id,
            message: self.message,
            send_at,
            rate_per_second: self.rate_per_second,
            respect_quiet_hours: self.respect_quiet_hours.unwrap_or(true),
            rollout,
            guard,
        })
    }
}

impl RolloutBody {
    /// The rollout, each bad field named in `v`.
    fn read(self, v: &mut Violations) -> Option<Rollout> {
        let first_percent = match bounds::check_range(self.first_percent, &bounds::FIRST_PERCENT)
            .and_then(|()| u8::try_from(self.first_percent).map_err(|e| e.to_string()))
        {
            Ok(percent) => Some(percent),
            Err(e) => {
                v.push("rollout.first_percent", e);
                None
            }
        };
        let Ok(hold) = humantime::parse_duration(&self.hold) else {
            v.push(
                "rollout.hold",
                "must be a duration such as \"2h\" or \"30m\"",
            );
            return None;
        };
        if let Err(e) = bounds::check_hold(hold) {
            v.push("rollout.hold", e);
        }
        Some(Rollout {
            first_percent: first_percent?,
            hold_seconds: i64::try_from(hold.as_secs()).unwrap_or(i64::MAX),
        })
    }
}

impl GuardBody {
    /// The guard, each bad field named in `v`.
    fn read(self, v: &mut Violations) -> Guard {
        if !(0.0..=100.0).contains(&self.max_opt_out_percent) {
            v.push("guard.max_opt_out_percent", "must be from 0 to 100");
        }
        if self.min_sends == 0 {
            v.push("guard.min_sends", "must be at least 1");
        }
        Guard {
            max_opt_out_percent: self.max_opt_out_percent,
            min_sends: self.min_sends,
        }
    }
}

/// A CSV upload's fields come as query parameters: the JSON ones (`message`, `rollout`,
/// `guard`) as JSON text, numbers and booleans as text.
pub(super) fn query_as_json(query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let mut body = Map::new();
    for (key, text) in query {
        let value = match key.as_str() {
            "message" | "rollout" | "guard" => serde_json::from_str(text)
                .map_err(|e| invalid(key, &format!("must be JSON: {e}")))?,
            "rate_per_second" => text
                .parse::<u32>()
                .map(Value::from)
                .map_err(|_| invalid(key, "must be a whole number"))?,
            "respect_quiet_hours" => text
                .parse::<bool>()
                .map(Value::from)
                .map_err(|_| invalid(key, "must be true or false"))?,
            _ => Value::String(text.clone()),
        };
        body.insert(key.clone(), value);
    }
    Ok(Value::Object(body))
}
