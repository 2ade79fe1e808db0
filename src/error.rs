//! `ApiError`: the one type that becomes an HTTP error response, as `application/problem+json`.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::{CommandError, SendError, WebhookError};
use crate::domain::{FieldError, Forbidden, MessageId, MessageStatus};
use crate::policy::{Decision, Reason};
use crate::store::StoreError;

pub use crate::report::error_chain;

/// Every error a client can see. Each variant has one status and a stable `type`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the request body has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The message is not in a status that allows what was asked.
    #[error("message {id} is {status}")]
    MessageConflict {
        id: MessageId,
        status: MessageStatus,
    },
    #[error("the policy denied this message: {}", .decision.reason)]
    Denied {
        decision: Box<Decision>,
        message_id: MessageId,
    },
    /// The body is over the configured limit (`[server] max_body_bytes`).
    #[error("{0}")]
    TooLarge(String),
    /// The body is not in a format the route reads (a JSON route given `text/plain`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("the store is unavailable; nothing was written")]
    StoreUnavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            e @ StoreError::BadCursor => ApiError::BadRequest(e.to_string()),
            e => ApiError::StoreUnavailable(e),
        }
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Invalid(errors) => ApiError::Invalid(errors),
            SendError::Denied {
                decision,
                message_id,
            } => ApiError::Denied {
                decision,
                message_id,
            },
            e @ SendError::IdempotencyConflict => ApiError::Conflict(e.to_string()),
            SendError::Store(e) => ApiError::StoreUnavailable(e),
        }
    }
}

impl From<Forbidden> for ApiError {
    fn from(e: Forbidden) -> Self {
        ApiError::Forbidden(e.to_string())
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Invalid(errors) => ApiError::Invalid(errors),
            CommandError::NotFound(what) => ApiError::NotFound(what),
            CommandError::Forbidden(why) => ApiError::Forbidden(why),
            CommandError::NotCancellable { id, status } => ApiError::MessageConflict { id, status },
            e @ CommandError::CampaignConflict { .. } => ApiError::Conflict(e.to_string()),
            e @ CommandError::Policy(_) => ApiError::BadRequest(e.to_string()),
            CommandError::NotConfigured(what) => ApiError::Conflict(what),
            CommandError::Store(e) => ApiError::from(e),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            e @ WebhookError::Malformed(_) => ApiError::BadRequest(e.to_string()),
            WebhookError::Store(e) => ApiError::StoreUnavailable(e),
        }
    }
}

impl ApiError {
    fn kind(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Invalid(_) => "invalid_request",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) | ApiError::MessageConflict { .. } => "conflict",
            ApiError::Denied { .. } => "policy_denied",
            ApiError::TooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Invalid(_) => "Invalid request",
            ApiError::BadRequest(_) => "Bad request",
            ApiError::NotFound(_) => "Not found",
            ApiError::Conflict(_) | ApiError::MessageConflict { .. } => "Conflict",
            ApiError::Denied { .. } => "Denied by policy",
            ApiError::TooLarge(_) => "Payload too large",
            ApiError::UnsupportedMediaType(_) => "Unsupported media type",
            ApiError::TooManyRequests { .. } => "Too many requests",
            ApiError::StoreUnavailable(_) => "Store unavailable",
            ApiError::Internal(_) => "Internal server error",
        }
    }

    /// The problem+json body.
    pub fn problem(&self) -> Problem {
        let mut problem = Problem {
            kind: format!("https://herald.dev/problems/{}", self.kind()),
            title: self.title().to_owned(),
            status: self.status_code().as_u16(),
            detail: self.to_string(),
            errors: None,
            reason: None,
            rule: None,
            message_id: None,
            decision: None,
            message_status: None,
        };
        match self {
            ApiError::Invalid(errors) => {
                problem.detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                problem.errors = Some(errors.clone());
            }
            ApiError::Denied {
                decision,
                message_id,
            } => {
                problem.reason = Some(decision.reason);
                problem.rule = Some(decision.rule.clone());
                problem.message_id = Some(message_id.clone());
                problem.decision = Some(decision.as_ref().clone());
            }
            ApiError::MessageConflict { id, status } => {
                problem.detail = format!(
                    "message {id} is {status}: only a queued or deferred message can be cancelled"
                );
                problem.message_id = Some(id.clone());
                problem.message_status = Some(*status);
            }
            _ => {}
        }
        problem
    }
}

/// Every error: `application/problem+json` (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `https://herald.dev/problems/<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Each bad field (400 invalid_request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The decision's reason (422 policy_denied).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Reason>,
    /// The rule that decided (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The audit record of a denied message (422), or the message in conflict (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub message_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub decision: Option<Decision>,
    /// The status of a message that cannot be cancelled (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub message_status: Option<MessageStatus>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Invalid(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::MessageConflict { .. } => StatusCode::CONFLICT,
            ApiError::Denied { decision, .. } if decision.reason == Reason::RoleForbidden => {
                StatusCode::FORBIDDEN
            }
            ApiError::Denied { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::StoreUnavailable(e) = self {
            tracing::error!(error = %error_chain(e), "store unavailable");
        }
        if let ApiError::Internal(e) = self {
            tracing::error!(error = %error_chain(e.as_ref()), "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if let ApiError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(self.problem())
    }
}
