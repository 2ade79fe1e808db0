//! Messenger's wire formats: the Send API body Herald renders, the Send API requests it takes
//! from Messenger client libraries, the webhook events it reads, the `X-Hub-Signature-256`
//! check and the classification of Graph errors.

mod errors;
mod render;
mod signature;
mod webhook;

pub use errors::{ErrorClass, GraphError};
pub use render::{render, RenderTarget};
pub use signature::{sign, verify_signature};
pub use webhook::{
    keyword_form, parse_envelope, EnvelopeError, Event, EventKind, NotificationStatus, Optin,
    Referral,
};
