//! Schema-only types for `/openapi.json`: the request bodies that the routes parse from raw
//! JSON (so that every bad field is named, not only the first), the problem body and the small
//! answers built inline. Answers that are typed values (`Acceptance`, `MessageView`,
//! `CampaignView`, `Decision`, …) and the sends' bodies (`domain::requests`) derive their schema
//! where they are defined; these types are never constructed.

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::ToSchema;

use crate::app::CampaignView;
use crate::domain::{Category, RecipientRef, Role, UtilityTemplate};

/// `POST /v1/policy/evaluate`: the body of `POST /v1/messages`, plus `at` and (for compliance
/// and admin) `role`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EvaluateRequest {
    // The fields of `SendMessageRequest`, spelled out: a flattened schema becomes an `allOf`,
    // from which schema-driven fuzzers (schemathesis) cannot generate bodies.
    pub page_id: Option<String>,
    pub recipient: RecipientRef,
    pub category: Category,
    /// A Messenger message object, as for `POST /v1/messages`.
    #[schema(value_type = Object)]
    pub message: Value,
    pub utility_template: Option<UtilityTemplate>,
    pub send_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Evaluate under the rules in force at this moment (default now): from 2011-01-01 to 365
    /// days ahead.
    pub at: Option<DateTime<Utc>>,
    /// Evaluate on behalf of a sender with this role (compliance and admin only).
    pub role: Option<Role>,
}

/// The scope of a consent.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ConsentScopeName {
    Transactional,
    Marketing,
}

/// `POST /v1/consents`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConsentRequest {
    pub recipient: RecipientRef,
    pub scope: ConsentScopeName,
    /// Where the consent was given, e.g. `checkout_checkbox`.
    pub source: String,
    /// What proves it: a non-empty string or object.
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub email: Option<String>,
    /// An IANA time zone such as `Europe/Berlin`.
    pub timezone: Option<String>,
    pub locale: Option<String>,
}

/// A campaign's audience: listed PSIDs, or a segment (`marketing_opted_in`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AudienceRequest {
    pub psids: Option<Vec<String>>,
    pub segment: Option<String>,
}

/// `rollout`: send to `first_percent` first, then wait `hold` (e.g. `"2h"`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RolloutRequest {
    /// 1 to 99.
    pub first_percent: u8,
    /// At most 30 days.
    pub hold: String,
}

/// `guard`: pause once `min_sends` have gone if opt-outs exceed `max_opt_out_percent`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GuardRequest {
    pub max_opt_out_percent: f64,
    pub min_sends: u64,
}

/// `POST /v1/campaigns` as JSON. As `text/csv` (a `psid` column), the other fields are query
/// parameters.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CampaignRequest {
    pub name: String,
    pub page_id: Option<String>,
    #[schema(value_type = Object)]
    pub message: Value,
    pub audience: AudienceRequest,
    /// At most 365 days ahead.
    pub send_at: Option<DateTime<Utc>>,
    /// 1 to 300 (Messenger's page limit), and at most the page's `[send_rate] per_page`.
    pub rate_per_second: Option<u32>,
    /// Default true.
    pub respect_quiet_hours: Option<bool>,
    pub rollout: Option<RolloutRequest>,
    pub guard: Option<GuardRequest>,
}

/// `GET /v1/campaigns`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignView>,
}

/// One bad field of a request body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FieldProblem {
    /// Where, e.g. `order.elements[0].price`.
    pub field: String,
    pub message: String,
}

/// Every error: `application/problem+json` (RFC 9457).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// `https://herald.dev/problems/<kind>`.
    #[schema(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Each bad field (400 invalid_request).
    pub errors: Option<Vec<FieldProblem>>,
    /// The decision's reason (422 policy_denied).
    pub reason: Option<String>,
    /// The rule that decided (422).
    pub rule: Option<String>,
    /// The audit record of a denied message (422), or the message in conflict (409).
    pub message_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Value>,
    /// The status of a message that cannot be cancelled (409).
    pub message_status: Option<String>,
}

/// `POST /v1/policy/reload`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PolicyReloaded {
    pub policy_version: String,
}

/// `GET /healthz`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    pub status: String,
}

/// The Graph Send API request, as Messenger client libraries send it (JSON, or form fields
/// holding JSON). `access_token` is the client's Herald JWT.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GraphSendRequest {
    /// `{"id"}`, `{"user_ref"}`, `{"notification_messages_token"}`, …
    #[schema(value_type = Object)]
    pub recipient: Value,
    /// `RESPONSE`, `UPDATE`, `MESSAGE_TAG`, `UTILITY`.
    pub messaging_type: Option<String>,
    pub tag: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub message: Option<Value>,
    /// `typing_on`, `typing_off`, `mark_seen`.
    pub sender_action: Option<String>,
    pub notification_type: Option<String>,
    pub access_token: Option<String>,
    pub appsecret_proof: Option<String>,
}

/// What the Graph API answers a send.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GraphSendAnswer {
    /// Absent for a `user_ref`.
    pub recipient_id: Option<String>,
    /// Herald's message id (`GET /v1/messages/{id}` follows it); absent for a sender action.
    pub message_id: Option<String>,
}

/// A Graph-shaped error, with Messenger's own codes where one fits.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GraphError {
    pub error: GraphErrorBody,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct GraphErrorBody {
    pub message: String,
    #[schema(rename = "type")]
    pub kind: String,
    pub code: i64,
    pub error_subcode: Option<i64>,
    pub fbtrace_id: String,
}
