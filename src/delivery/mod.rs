//! Delivery: the worker that empties the outbox into the Graph Send API (or, when Messenger
//! cannot take a message, the SMTP server; each page behind a circuit breaker), and the
//! dispatcher that tells the business's event endpoints what happened.

mod breaker;
pub mod events;
mod retry;
mod worker;

pub use crate::app::Processed;
pub use crate::clients::{ActionSent, GraphClient, SendFailure, Sent};
pub use crate::clients::{PostOutcome, WebhookClient, DELIVERY_TIMEOUT};
pub use events::EventDispatcher;
pub use retry::{backoff, retry_delay};
pub use worker::Worker;
