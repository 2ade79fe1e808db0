//! Delivery: the worker that empties the outbox into the Graph Send API.

mod graph_client;
mod retry;
mod worker;

pub use crate::app::Processed;
pub use graph_client::{ActionSent, GraphClient, SendFailure, Sent};
pub use retry::{backoff, retry_delay};
pub use worker::Worker;
