//! Delivery: the worker that empties the outbox into the Graph Send API, and the dispatcher
//! that tells the business's event endpoints what happened.

pub mod events;
mod graph_client;
mod retry;
mod webhook_client;
mod worker;

pub use crate::app::Processed;
pub use events::EventDispatcher;
pub use graph_client::{ActionSent, GraphClient, SendFailure, Sent};
pub use retry::{backoff, retry_delay};
pub use webhook_client::{PostOutcome, WebhookClient, DELIVERY_TIMEOUT};
pub use worker::Worker;
