//! The HTTP clients Herald calls out with: the Graph Send API (`graph.rs`) and the business's
//! event endpoints (`webhook.rs`). The core holds them and the delivery tasks use them through
//! it; they know HTTP and the wire format of an answer, nothing of policy or the store.

mod graph;
mod webhook;

pub use graph::{ActionSent, GraphClient, SendFailure, Sent};
pub use webhook::{PostOutcome, WebhookClient, DELIVERY_TIMEOUT};
