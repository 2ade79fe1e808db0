//! Webhooks the sandbox sends to Herald as Messenger would (MESSENGER.md §7): the
//! `{"object":"page","entry":[…]}` envelope, one event per entry, signed with
//! `X-Hub-Signature-256` over the exact bytes sent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::runtime::Handle;

use crate::clock::SharedClock;
use crate::messenger;

/// Messenger gives up on a webhook call after 20 s (§7.3).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(20);

/// Posts signed webhooks to Herald.
pub(crate) struct WebhookClient {
    url: Option<String>,
    app_secret: String,
    http: reqwest::Client,
    /// The runtime that started the sandbox. Calls run there rather than on the HTTP
    /// workers' runtimes, so the client's pooled connections live on one runtime.
    runtime: Handle,
    /// Dates each envelope.
    clock: SharedClock,
}

impl WebhookClient {
    /// A client posting to `url` (`None`: webhooks are built but not sent).
    pub fn new(
        url: Option<String>,
        app_secret: String,
        runtime: Handle,
        clock: SharedClock,
    ) -> std::io::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            url,
            app_secret,
            http,
            runtime,
            clock,
        })
    }

    /// Sends `events` from the page, one entry each, and returns Herald's HTTP status;
    /// `None` when no webhook URL is configured or Herald could not be reached.
    pub async fn post(&self, page_id: &str, events: Vec<Value>) -> Option<u16> {
        let url = self.url.clone()?;
        let body = envelope(page_id, events, self.clock.now())
            .to_string()
            .into_bytes();
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                "X-Hub-Signature-256",
                messenger::sign(self.app_secret.as_bytes(), &body),
            )
            .body(body);
        match self.runtime.spawn(request.send()).await {
            Ok(Ok(response)) => Some(response.status().as_u16()),
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "sandbox could not deliver a webhook to Herald");
                None
            }
            Err(error) => {
                tracing::warn!(error = %error, "sandbox webhook task ended early");
                None
            }
        }
    }
}

/// The page envelope, one entry per event, `time` being when the webhook is sent.
pub(crate) fn envelope(page_id: &str, events: Vec<Value>, now: DateTime<Utc>) -> Value {
    let time = now.timestamp_millis();
    let entries: Vec<Value> = events
        .into_iter()
        .map(|event| json!({ "id": page_id, "time": time, "messaging": [event] }))
        .collect();
    json!({ "object": "page", "entry": entries })
}

/// An event from the person to the page: `{sender, recipient, timestamp, <kind>: payload}`.
pub(crate) fn from_person(
    psid: &str,
    page_id: &str,
    at: DateTime<Utc>,
    kind: &str,
    payload: Value,
) -> Value {
    json!({
        "sender": { "id": psid },
        "recipient": { "id": page_id },
        "timestamp": at.timestamp_millis(),
        kind: payload,
    })
}

/// A checkbox plugin opt-in: Messenger sends it without `sender` (§3.2).
pub(crate) fn checkbox_optin(
    page_id: &str,
    at: DateTime<Utc>,
    reference: Option<&str>,
    user_ref: &str,
) -> Value {
    let mut optin = json!({ "user_ref": user_ref });
    if let Some(reference) = reference {
        optin["ref"] = json!(reference);
    }
    json!({
        "recipient": { "id": page_id },
        "timestamp": at.timestamp_millis(),
        "optin": optin,
    })
}

/// The emoji Messenger sends with each reaction.
pub(crate) fn reaction_emoji(reaction: &str) -> Option<&'static str> {
    Some(match reaction {
        "smile" => "\u{1F606}",
        "angry" => "\u{1F621}",
        "sad" => "\u{1F622}",
        "wow" => "\u{1F62E}",
        "love" => "\u{2764}",
        "like" => "\u{1F44D}",
        "dislike" => "\u{1F44E}",
        "other" => "",
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_holds_one_event_per_entry() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_000).expect("valid");
        let events = vec![json!({"a": 1}), json!({"b": 2})];
        let envelope = envelope("p1", events, at);
        assert_eq!(envelope["object"], "page");
        assert_eq!(envelope["entry"][1]["id"], "p1");
        assert_eq!(envelope["entry"][1]["time"], 1_700_000_000_000_i64);
        assert_eq!(envelope["entry"][1]["messaging"], json!([{"b": 2}]));
    }

    #[test]
    fn checkbox_optins_have_no_sender() {
        let at = DateTime::from_timestamp_millis(0).expect("valid");
        let event = checkbox_optin("p1", at, Some("signup"), "u1");
        assert!(event.get("sender").is_none());
        assert_eq!(event["optin"], json!({"ref": "signup", "user_ref": "u1"}));
    }
}
