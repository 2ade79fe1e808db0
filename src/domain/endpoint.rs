//! Event endpoints: the business's own systems that hear Herald's events (API.md, "Events for
//! business systems"), and the record of delivering events to them.
//!
//! An endpoint's delivery walks each audit chain from a cursor (the last seq handed over); an
//! event that could not be delivered waits as a [`PendingDelivery`] for its retry, so that a
//! slow or dead endpoint holds back only itself.
//!
//! What an endpoint may be and how a delivery is signed are decided here, without I/O:
//! [`check_url`] and [`forbidden_address`] (a gateway must not become a way into the private
//! network), [`new_secret`] and [`signature`] (Standard Webhooks 1.0), [`retry_delay`] (the
//! back-off schedule) and [`gives_up`] (five days of failing disables an endpoint).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::audit::{AuditEntry, AuditKind};
use super::event::{events_of, EventRef, TypeFilter};

/// How an endpoint is sent its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointFormat {
    /// Herald's events, JSON, signed as Standard Webhooks 1.0 say.
    #[default]
    Herald,
    /// Inbound events only: the body Messenger posted, byte for byte, with its own
    /// `X-Hub-Signature-256`.
    Messenger,
}

/// An endpoint as stored. Its secrets never leave the store but through the secret route.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// `ep_…`
    pub id: String,
    pub url: String,
    pub events: TypeFilter,
    #[serde(default)]
    pub format: EndpointFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `whsec_<base64>`: signs every delivery.
    pub secret: String,
    /// The secret before the last rotation, signing beside the new one until `.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<(String, DateTime<Utc>)>,
    #[serde(default)]
    pub disabled: bool,
    /// Since when every attempt has failed; `None` after a success. Five days of it disables
    /// the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for EndpointRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRecord")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("format", &self.format)
            .field("disabled", &self.disabled)
            .field("failing_since", &self.failing_since)
            .finish_non_exhaustive()
    }
}

/// An event waiting to be delivered (again) to one endpoint: after a failed attempt, or asked
/// for by a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDelivery {
    pub event: EventRefRecord,
    pub due: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
}

/// An [`EventRef`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventRefRecord {
    pub chain: u32,
    pub seq: u64,
    pub index: u8,
}

impl From<EventRef> for EventRefRecord {
    fn from(r: EventRef) -> Self {
        EventRefRecord {
            chain: r.chain,
            seq: r.seq,
            index: r.index,
        }
    }
}

impl From<EventRefRecord> for EventRef {
    fn from(r: EventRefRecord) -> Self {
        EventRef {
            chain: r.chain,
            seq: r.seq,
            index: r.index,
        }
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Succeeded,
    /// Failed; tried again at `next_attempt_at`.
    Retrying,
    /// Failed, and no more tries (a replay can send it again).
    Failed,
}

/// One attempt to deliver an event to an endpoint, as `GET /v1/event-endpoints/{id}/attempts`
/// lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// `att_…`, sortable by time.
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub status: AttemptStatus,
    /// The endpoint's HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why it failed, in a few words (never a secret, never the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// 1 for the first attempt of this event to this endpoint.
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One round of an endpoint's delivery, recorded in one transaction.
#[derive(Debug, Clone, Default)]
pub struct DeliveryRound {
    /// The chain and seq the endpoint's cursor moves to (everything up to it handed over:
    /// delivered, or pending).
    pub cursor: Option<(u32, u64)>,
    pub attempts: Vec<DeliveryAttempt>,
    /// Pending deliveries to add or replace (by event).
    pub pending: Vec<PendingDelivery>,
    /// Pending deliveries that are done (delivered, or failed for good).
    pub done: Vec<EventRefRecord>,
}

/// The prefix of a signing secret; the rest is the base64 of the key.
pub const SECRET_PREFIX: &str = "whsec_";

/// How long a rotated-out secret keeps signing beside the new one.
pub const PREVIOUS_SECRET_HOURS: i64 = 24;

/// An endpoint whose every attempt failed for this long is disabled.
pub const DISABLE_AFTER_DAYS: i64 = 5;

/// The wait before each retry: about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. After the last,
/// the attempt is `failed`.
pub const RETRY_SCHEDULE_SECONDS: [i64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// The longest description kept.
pub const MAX_DESCRIPTION: usize = 512;

/// The longest URL kept.
pub const MAX_URL: usize = 2_048;

/// A fresh signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> String {
    let key: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The `v1,<base64>` signature of one delivery under `secret`; `None` for a secret that is not
/// `whsec_<base64>` (never one Herald made).
fn sign_v1(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = BASE64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

impl EndpointRecord {
    /// The `webhook-signature` header of a delivery made at `timestamp` (Unix seconds): one
    /// signature under the secret, and a second under the previous secret while it is valid
    /// at `now`, space-separated (Standard Webhooks 1.0).
    pub fn signature(&self, now: DateTime<Utc>, id: &str, timestamp: i64, body: &[u8]) -> String {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|(_, until)| now < *until)
            .and_then(|(secret, _)| sign_v1(secret, id, timestamp, body));
        let current = sign_v1(&self.secret, id, timestamp, body);
        [current, previous]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Puts a fresh secret in place; the one it replaces signs beside it for
    /// [`PREVIOUS_SECRET_HOURS`]. Returns the new secret.
    pub fn rotate_secret(&mut self, now: DateTime<Utc>) -> String {
        let fresh = new_secret();
        let old = std::mem::replace(&mut self.secret, fresh.clone());
        self.previous_secret = Some((
            old,
            super::bounds::later(now, Duration::hours(PREVIOUS_SECRET_HOURS)),
        ));
        self.updated_at = now;
        fresh
    }

    /// Whether every attempt has failed for so long ([`DISABLE_AFTER_DAYS`]) that the endpoint
    /// is to be disabled.
    pub fn gives_up(&self, now: DateTime<Utc>) -> bool {
        !self.disabled
            && self
                .failing_since
                .is_some_and(|since| now - since >= Duration::days(DISABLE_AFTER_DAYS))
    }
}

/// The wait before the retry after attempt `attempt` (from 1) failed, jittered from the
/// schedule's step to a quarter more (never sooner: a receiver told "about 5 s" is not hit at
/// 4); `None` after the last step: the attempt has failed for good.
pub fn retry_delay(attempt: u32) -> Option<Duration> {
    let step = *RETRY_SCHEDULE_SECONDS.get(usize::try_from(attempt.checked_sub(1)?).ok()?)?;
    let millis = step * 1_000;
    let jitter = rand::thread_rng().gen_range(0..=millis / 4);
    Some(Duration::milliseconds(millis + jitter))
}

/// One event as it goes to one endpoint: its body and, for `format: "messenger"`, Messenger's
/// own signature of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub reference: EventRef,
    /// `evt_…`: the `webhook-id`.
    pub id: String,
    /// The event's type (for `messenger`, the first inbound type of the POST the filter admits).
    pub kind: String,
    pub body: Vec<u8>,
    /// `X-Hub-Signature-256` as Messenger sent it (`messenger` format only).
    pub hub_signature: Option<String>,
}

impl EndpointRecord {
    /// The events of `entry` this endpoint hears, as they are sent to it: for `herald`, each
    /// event its filter admits, as JSON; for `messenger`, the body of the Messenger POST the
    /// entry was the first of (its `Personal.event.raw`), once, if the filter admits any of the
    /// POST's inbound types.
    pub fn events_in(&self, entry: &AuditEntry) -> Vec<Outgoing> {
        match self.format {
            EndpointFormat::Herald => events_of(entry)
                .into_iter()
                .filter(|e| self.events.admits(&e.kind))
                .filter_map(|e| {
                    Some(Outgoing {
                        reference: EventRef::parse(&e.id)?,
                        body: serde_json::to_vec(&e).ok()?,
                        id: e.id,
                        kind: e.kind,
                        hub_signature: None,
                    })
                })
                .collect(),
            EndpointFormat::Messenger => self.messenger_post(entry).into_iter().collect(),
        }
    }

    /// The one event `reference` names, as it goes to this endpoint.
    pub fn event_at(&self, entry: &AuditEntry, reference: EventRef) -> Option<Outgoing> {
        self.events_in(entry)
            .into_iter()
            .find(|o| o.reference == reference)
    }

    fn messenger_post(&self, entry: &AuditEntry) -> Option<Outgoing> {
        if entry.kind != AuditKind::Inbound {
            return None;
        }
        let event = entry.personal.as_ref()?.event.as_ref()?;
        let raw = event.get("raw")?.as_str()?;
        let kind = event
            .get("post_types")?
            .as_array()?
            .iter()
            .filter_map(|t| t.as_str())
            .map(|t| match t.contains('.') {
                true => t.to_owned(),
                false => format!("inbound.{t}"),
            })
            .find(|t| self.events.admits(t))?;
        let reference = EventRef {
            chain: entry.chain.unwrap_or(0),
            seq: entry.seq,
            index: 0,
        };
        Some(Outgoing {
            id: reference.id(),
            reference,
            kind,
            body: raw.as_bytes().to_vec(),
            hub_signature: event
                .get("signature")
                .and_then(|s| s.as_str())
                .map(str::to_owned),
        })
    }

    /// The headers of one delivery of `outgoing` at `now`: Standard Webhooks 1.0 (`webhook-id`,
    /// `-timestamp`, `-signature`) for `herald`; `webhook-id` and Messenger's own
    /// `X-Hub-Signature-256` for `messenger`.
    pub fn headers(&self, now: DateTime<Utc>, outgoing: &Outgoing) -> Vec<(&'static str, String)> {
        let mut headers = vec![("webhook-id", outgoing.id.clone())];
        match self.format {
            EndpointFormat::Herald => {
                let timestamp = now.timestamp();
                let signature = self.signature(now, &outgoing.id, timestamp, &outgoing.body);
                headers.push(("webhook-timestamp", timestamp.to_string()));
                headers.push(("webhook-signature", signature));
            }
            EndpointFormat::Messenger => {
                if let Some(signature) = &outgoing.hub_signature {
                    headers.push(("x-hub-signature-256", signature.clone()));
                }
            }
        }
        headers
    }
}

/// Why an endpoint's URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must be an absolute http or https URL")]
    NotHttp,
    #[error("must be at most {MAX_URL} characters")]
    TooLong,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("{0} is a loopback, private, link-local or otherwise internal address; set [events] allow_private_networks = true to allow it")]
    Private(IpAddr),
    #[error("the host {0} does not resolve")]
    Unresolved(String),
}

/// Parses an endpoint's URL: http or https, with a host, no credentials. The address check
/// comes apart (the host may need resolving): see [`forbidden_address`].
pub fn check_url(text: &str) -> Result<url::Url, UrlError> {
    if text.len() > MAX_URL {
        return Err(UrlError::TooLong);
    }
    let url = url::Url::parse(text).map_err(|_| UrlError::NotHttp)?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(UrlError::NotHttp);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(url)
}

/// The IP address a URL names literally, if it does.
pub fn literal_address(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Whether `ip` is an address an event endpoint may not have unless private networks are
/// allowed: loopback, private (RFC 1918, ULA fc00::/7), link-local (169.254/16 with the cloud
/// metadata address, fe80::/10), unspecified, "this network", CGNAT (100.64/10), broadcast,
/// multicast, documentation and benchmarking ranges — anything that is not a public unicast
/// address. An IPv4 address inside IPv6 (mapped, compatible, NAT64) is judged as IPv4.
pub fn forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
        }
    }
}

fn forbidden_v4(v4: Ipv4Addr) -> bool {
    let [a, b, _, _] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
}

/// The IPv4 address inside an IPv6 one: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d) or
/// the NAT64 well-known prefix (64:ff9b::/96).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified() {
        return Some(tail);
    }
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then_some(tail)
}

#[cfg(test)]
impl EndpointRecord {
    /// An endpoint for unit tests: every event, Herald's format, a fresh secret.
    pub(crate) fn example(id: &str) -> EndpointRecord {
        let now = Utc::now();
        EndpointRecord {
            id: id.into(),
            url: "https://example.com/hook".into(),
            events: TypeFilter::all(),
            format: EndpointFormat::Herald,
            description: None,
            secret: new_secret(),
            previous_secret: None,
            disabled: false,
            failing_since: None,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests;
