//! Schema-only types for `/openapi.json`: the problem body and the small answers built inline.
//! Answers that are typed values (`Acceptance`, `MessageView`, `CampaignView`, `Decision`, …)
//! and the request bodies derive their schema where they are read or defined; these types are
//! never constructed.

use serde_json::Value;
use utoipa::ToSchema;

use crate::app::CampaignView;

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
