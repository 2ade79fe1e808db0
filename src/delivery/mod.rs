//! Delivery: the worker that empties the outbox into the Graph Send API, and the dispatcher
//! that tells the business's event endpoints what happened.

pub mod events;
mod retry;
mod worker;

pub use crate::app::Processed;
pub use crate::clients::{ActionSent, GraphClient, SendFailure, Sent};
pub use crate::clients::{PostOutcome, WebhookClient, DELIVERY_TIMEOUT};
pub use events::EventDispatcher;
pub use retry::{backoff, retry_delay};
pub use worker::Worker;
