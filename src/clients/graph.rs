//! The Graph Send API over reqwest. Tokens travel in the `Authorization` header, never in a URL,
//! so no error message or log line can carry one.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::messenger::{ErrorClass, GraphError};

/// A successful send.
#[derive(Debug, Clone, Deserialize)]
pub struct Sent {
    pub message_id: String,
    #[serde(default)]
    pub recipient_id: Option<String>,
}

/// A sender action Messenger took: it answers no message id.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionSent {
    #[serde(default)]
    pub recipient_id: Option<String>,
}

/// A failed send, classified.
#[derive(Debug, Clone)]
pub struct SendFailure {
    pub class: ErrorClass,
    pub graph_error: Option<GraphError>,
    pub http_status: Option<u16>,
    /// How long the Graph API asked us to wait (`Retry-After`, or the page's
    /// `estimated_time_to_regain_access`).
    pub retry_after: Option<Duration>,
    /// What went wrong, for the attempt log.
    pub detail: String,
}

/// A client for one Graph base URL and version.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GraphError,
}

impl GraphClient {
    pub fn new(
        base_url: &str,
        version: &str,
        timeout: Duration,
    ) -> Result<GraphClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()?;
        Ok(GraphClient {
            http,
            base: format!("{}/{}", base_url.trim_end_matches('/'), version),
        })
    }

    /// `POST /{version}/{page_id}/messages` with `body`.
    pub async fn send(
        &self,
        page_id: &str,
        token: &SecretString,
        body: &Value,
    ) -> Result<Sent, SendFailure> {
        self.post(page_id, token, body).await
    }

    /// `POST /{version}/{page_id}/messages` with a `sender_action` body, which Messenger
    /// answers with `recipient_id` only.
    pub async fn sender_action(
        &self,
        page_id: &str,
        token: &SecretString,
        body: &Value,
    ) -> Result<ActionSent, SendFailure> {
        self.post(page_id, token, body).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        page_id: &str,
        token: &SecretString,
        body: &Value,
    ) -> Result<T, SendFailure> {
        let url = format!("{}/{page_id}/messages", self.base);
        let response = self
            .http
            .post(url)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose_secret()))
            .json(body)
            .send()
            .await
            .map_err(|e| SendFailure {
                class: ErrorClass::Transient,
                graph_error: None,
                http_status: None,
                retry_after: None,
                detail: e.without_url().to_string(),
            })?;
        let status = response.status();
        let retry_after = retry_after(response.headers(), page_id);
        let bytes = response.bytes().await.map_err(|e| SendFailure {
            class: ErrorClass::Transient,
            graph_error: None,
            http_status: Some(status.as_u16()),
            retry_after,
            detail: e.without_url().to_string(),
        })?;
        if status.is_success() {
            if let Ok(sent) = serde_json::from_slice::<T>(&bytes) {
                return Ok(sent);
            }
        }
        let graph_error = serde_json::from_slice::<ErrorBody>(&bytes)
            .ok()
            .map(|b| b.error);
        let class = match &graph_error {
            Some(e) => e.class(),
            None if status.is_server_error() || status.as_u16() == 429 => ErrorClass::Transient,
            None => ErrorClass::Permanent,
        };
        let detail = match &graph_error {
            Some(e) => e.message.chars().take(300).collect(),
            None => format!("HTTP {status} without a Graph error body"),
        };
        Err(SendFailure {
            class,
            graph_error,
            http_status: Some(status.as_u16()),
            retry_after,
            detail,
        })
    }
}

/// `Retry-After: <seconds>`, or the page's `estimated_time_to_regain_access` (minutes) from
/// `X-Business-Use-Case-Usage` (MESSENGER.md §6).
fn retry_after(headers: &HeaderMap, page_id: &str) -> Option<Duration> {
    let header = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let usage = headers
        .get("x-business-use-case-usage")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<Value>(v).ok())
        .and_then(|v| {
            v.get(page_id)?
                .as_array()?
                .iter()
                .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
                .max()
        })
        .filter(|m| *m > 0)
        .map(|m| Duration::from_secs(m.saturating_mul(60)));
    // Whatever the answer says, Herald waits at most a day (and the worker at most
    // `retry_max_ms`): a number from outside never overflows a date.
    let most = crate::domain::bounds::GRAPH_WAIT_MAX
        .to_std()
        .unwrap_or(Duration::from_secs(86_400));
    header.max(usage).map(|wait| wait.min(most))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_takes_the_longer_of_header_and_usage() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, "P"), Some(Duration::from_secs(7)));
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(r#"{"P":[{"type":"messenger","call_count":100,"estimated_time_to_regain_access":2}]}"#),
        );
        assert_eq!(retry_after(&h, "P"), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&HeaderMap::new(), "P"), None);
        let mut huge = HeaderMap::new();
        huge.insert(RETRY_AFTER, HeaderValue::from_static("1000000000000000"));
        huge.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"P":[{"estimated_time_to_regain_access":18446744073709551615}]}"#,
            ),
        );
        assert_eq!(
            retry_after(&huge, "P"),
            Some(Duration::from_secs(86_400)),
            "a wait from outside is capped at a day"
        );
    }
}
