//! What can go wrong in the core, per command family. Each keeps its source; none knows a
//! status code (`error.rs` maps them).

use crate::domain::campaign::{CampaignId, CampaignStatus};
use crate::domain::{FieldError, MessageId, MessageStatus};
use crate::messenger::EnvelopeError;
use crate::policy::{Decision, PolicyErrors};
use crate::store::StoreError;

/// Why a send was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The command has bad fields; each is named.
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    /// The policy refused. The message is on record as `denied`, with its audit entry.
    #[error("the policy denied this message: {}", .decision.reason)]
    Denied {
        decision: Box<Decision>,
        message_id: MessageId,
    },
    /// The `Idempotency-Key` was used before with another request.
    #[error("this Idempotency-Key was used with another request body")]
    IdempotencyConflict,
    /// Nothing was written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why another command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    /// The caller may see this but not change it.
    #[error("{0}")]
    Forbidden(String),
    /// Only a queued or deferred message, not in the middle of being sent, can be cancelled.
    #[error("message {id} is {status} and can no longer be cancelled")]
    NotCancellable {
        id: MessageId,
        status: MessageStatus,
    },
    /// The campaign is not in a status that allows what was asked.
    #[error("campaign {id} is {status} and cannot be {what}")]
    CampaignConflict {
        id: CampaignId,
        status: CampaignStatus,
        what: &'static str,
    },
    /// Something this needs is not configured (the audit signing key).
    #[error("{0}")]
    NotConfigured(String),
    /// The policy files on disk are invalid; the policy in force was kept.
    #[error("the policy was not reloaded: {0}")]
    Policy(PolicyErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a webhook delivery was not taken. Events that fail to apply are parked, not lost: only a
/// body that is not a page envelope, or a store that cannot even park, fails the delivery (and
/// Messenger delivers it again).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook body is not a Messenger page envelope: {0}")]
    Malformed(#[from] EnvelopeError),
    #[error("an event could not be applied nor kept for a retry")]
    Store(#[from] StoreError),
}
