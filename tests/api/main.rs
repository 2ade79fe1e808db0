#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers panic on purpose

//! Integration tests: the real gateway on port 0, a temporary store, and the Messenger sandbox
//! standing in for the Graph API.

mod helpers;

mod audit;
mod auth;
mod bounds;
mod campaigns;
mod cli;
mod clients;
mod console;
mod crash;
mod delivery;
mod events;
mod fallback;
mod faults;
mod feed;
mod graph;
mod hostile;
mod lifecycle;
mod marketing;
mod operations;
mod ordering;
mod policy;
mod postgres;
mod postgres_events;
mod sandbox;
mod security;
mod sending;
mod shutdown;
mod smtp;
mod store_faults;
mod supervision;
mod webhooks;
mod window;
