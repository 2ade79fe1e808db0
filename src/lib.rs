//! Herald: a policy-enforcing outbound messaging gateway for Facebook Messenger.
//!
//! A request travels one way: HTTP → auth → domain types → policy decision → one durable write
//! (outbox + audit + idempotency) → 202. A worker then travels: outbox → Graph API → audit → status.

pub mod app;
pub mod auth;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod configuration;
pub mod delivery;
pub mod domain;
pub mod email;
pub mod error;
pub mod messenger;
pub mod metrics;
pub mod policy;
pub mod report;
pub mod routes;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod supervisor;
pub mod telemetry;
