#![allow(clippy::expect_used, clippy::unwrap_used)] // test helpers panic on purpose

//! Integration tests: the real gateway on port 0, a temporary store, and the Messenger sandbox
//! standing in for the Graph API.

mod helpers;

mod audit;
mod auth;
mod cli;
mod crash;
mod delivery;
mod marketing;
mod sandbox;
mod sending;
mod webhooks;
mod window;
