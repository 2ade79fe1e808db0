//! The clients Herald calls out with: the Graph Send API (`graph.rs`), the business's event
//! endpoints (`webhook.rs`) and the email fallback's SMTP server (`smtp.rs`). The core holds
//! them and the delivery tasks use them through it; they know their protocol and the wire
//! format of an answer, nothing of policy or the store.

mod graph;
mod smtp;
mod webhook;

pub use graph::{ActionSent, GraphClient, SendFailure, Sent};
pub use smtp::{Mailer, SmtpAccepted, SmtpFailure};
pub use webhook::{PostOutcome, WebhookClient, DELIVERY_TIMEOUT};
