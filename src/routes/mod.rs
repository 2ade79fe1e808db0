//! HTTP handlers, one file per resource. Each reads like the flow: authenticate → parse into a
//! command → ask the core → answer. A route checks only which resource family a caller's role
//! may touch; which role may send which category is the policy's `[roles]`. No sled, reqwest
//! or jsonwebtoken in here.

mod audit;
mod campaigns;
mod consents;
mod console;
mod event_endpoints;
mod feed;
mod graph;
mod graph_error;
mod graph_request;
mod health;
mod json;
mod messages;
mod metrics;
pub mod openapi;
mod policy;
mod recipients;
mod status;
mod webhooks;

use std::num::NonZeroU32;
use std::sync::Arc;

use actix_web::HttpRequest;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::SecretString;
use serde_json::Value;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::app::Herald;
use crate::error::ApiError;

/// What every handler can reach.
pub struct AppState {
    pub herald: Arc<Herald>,
    /// Verifies `X-Hub-Signature-256`.
    pub app_secret: SecretString,
    /// Answers the subscription handshake.
    pub verify_token: SecretString,
    /// Per-client request quota on the sending endpoints.
    pub quota: DefaultKeyedRateLimiter<String>,
}

impl AppState {
    pub fn new(
        herald: Arc<Herald>,
        app_secret: SecretString,
        verify_token: SecretString,
        per_client_per_second: u32,
    ) -> AppState {
        let rate = NonZeroU32::new(per_client_per_second).unwrap_or(NonZeroU32::MIN);
        AppState {
            herald,
            app_secret,
            verify_token,
            quota: RateLimiter::keyed(Quota::per_second(rate)),
        }
    }

    /// 429 when `client` is over its quota.
    pub fn check_quota(&self, client: &str) -> Result<(), ApiError> {
        match self.quota_wait(client) {
            Some(retry_after_secs) => Err(ApiError::TooManyRequests { retry_after_secs }),
            None => Ok(()),
        }
    }

    /// Counts a request of `client` against its quota; when it is over, how many seconds to
    /// wait.
    pub fn quota_wait(&self, client: &str) -> Option<u64> {
        self.quota
            .check_key(&client.to_owned())
            .err()
            .map(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                wait.as_secs().max(1)
            })
    }
}

/// Reads a JSON body: 415 unless the request says it is JSON, 400 (problem+json) when it is
/// not JSON or names a key twice.
pub fn json_body(req: &HttpRequest, bytes: &[u8]) -> Result<Value, ApiError> {
    json::require_json(req)?;
    json::parse_strict(bytes)
}

/// Every route of the gateway. Registering through `utoipa-actix-web` is what documents a
/// route: `.service` takes only handlers with a `#[utoipa::path]`, so whatever is served is in
/// `/openapi.json` (and a test checks that nothing slipped in another way).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(health::configure)
        .configure(metrics::configure)
        .configure(openapi::configure)
        .configure(webhooks::configure)
        .configure(graph::configure)
        .configure(console::configure)
        .service(
            utoipa_actix_web::scope("/v1")
                .app_data(audit::query_config())
                .configure(messages::configure)
                .configure(campaigns::configure)
                .configure(audit::configure)
                .configure(feed::configure)
                .configure(consents::configure)
                .configure(event_endpoints::configure)
                .configure(recipients::configure)
                .configure(policy::configure)
                .configure(status::configure),
        );
}
