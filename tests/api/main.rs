#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers panic on purpose

//! Integration tests: the real gateway on port 0, a temporary store, and the Messenger sandbox
//! standing in for the Graph API.

mod helpers;

mod audit;
mod auth;
mod campaigns;
mod cli;
mod clients;
mod console;
mod crash;
mod delivery;
mod graph;
mod lifecycle;
mod marketing;
mod policy;
mod sandbox;
mod sending;
mod store_faults;
mod webhooks;
mod window;
