//! Domain types: everything past the HTTP handlers travels as one of these, already validated.

pub mod audit;
pub mod bounds;
pub mod campaign;
mod category;
pub mod checkpoint;
mod client;
mod consent;
pub mod decision;
pub mod endpoint;
pub mod event;
pub mod facts;
mod fields;
mod ids;
pub mod lifecycle;
mod message;
mod receipt;
pub mod recipient;
mod records;
mod requests;
mod shipping;

pub use category::{Category, Role};
pub use client::{Client, Forbidden};
pub use consent::{ConsentScope, ConsentSource};
pub use ids::{AttemptId, EndpointId, MessageId, PageId, Psid};
pub use lifecycle::MessageStatus;
pub use message::{
    validate_message_object, Content, OutboundMessage, SendKind, UtilityTemplate, MAX_TEXT_CHARS,
};
pub use receipt::{Receipt, ReceiptAddress, ReceiptAdjustment, ReceiptElement, ReceiptSummary};
pub use recipient::Recipient;
pub use records::{
    Acceptance, Attempt, AttemptOutcome, Attribution, Channel, ConsentAction, ConsentEvent,
    ConsentRef, Erasure, GraphErrorRecord, IdempotencyRecord, MessageRecord, RecipientRecord,
    SendAnswer, StatusChange, TokenRecord, TokenStatus,
};
pub use requests::{
    parse_recipient, parse_time, Body, ReceiptRequest, RecipientRef, SendMessageRequest,
    ShippingUpdateRequest,
};
pub use shipping::{ShippingStatus, ShippingUpdate};

/// One field that failed validation, named by its JSON path (`order.elements[3].price`). A
/// 400's problem lists them as its `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = FieldProblem, description = "One bad field of a request body.")]
pub struct FieldError {
    /// Where, e.g. `order.elements[0].price`.
    pub field: String,
    /// What is wrong with it, for a human.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Collects every field error of one body, so a 400 names them all at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldError>);

impl Violations {
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_inner(self) -> Vec<FieldError> {
        self.0
    }
}

/// Checks that a string is present (non-blank) and at most `max` characters long.
pub(crate) fn check_text(v: &mut Violations, field: &str, value: &str, max: usize) {
    if value.trim().is_empty() {
        v.push(field, "must not be empty");
    } else if value.chars().count() > max {
        v.push(field, format!("must be at most {max} characters"));
    }
}
