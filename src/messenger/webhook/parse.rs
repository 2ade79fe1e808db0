//! Reading a webhook POST: the page envelope, each entry's events by the one key that carries
//! them, and their moments, each judged against the moment the POST was received.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{string, Event, EventKind, NotificationStatus, Optin, Referral};
use crate::domain::bounds;

/// A millisecond timestamp given as a number or a string, as a number; one past `i64` (a huge
/// or fractional number) saturates, to be judged out of range like any other.
fn raw_millis(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|_| i64::MAX))
            // `as` saturates: a float past i64's range is its end, NaN is 0.
            .or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Bounds the moments Messenger reports, so that no value anyone can sign reaches date
/// arithmetic further in (a year-262142 `timestamp` once made every later read of the person
/// panic). Each value out of range is replaced and its field noted for the caller to count.
#[derive(Debug, Clone, Copy)]
struct Moments {
    received_at: DateTime<Utc>,
    /// The latest event time believed: the receive time plus the clock skew allowed.
    latest: DateTime<Utc>,
}

impl Moments {
    /// The bounds of a webhook received at `received_at`.
    fn new(received_at: DateTime<Utc>) -> Moments {
        Moments {
            received_at,
            latest: bounds::later(received_at, bounds::EVENT_CLOCK_SKEW),
        }
    }

    /// When something happened (`timestamp`, `time`, a `watermark`). One in the future is taken
    /// as the receive time: Messenger cannot report what has not happened. One before Messenger
    /// existed is taken as its start, which opens no window and moves no message.
    fn event(
        &self,
        v: Option<&Value>,
        field: &'static str,
        out_of_range: &mut Vec<&'static str>,
    ) -> Option<DateTime<Utc>> {
        Self::bounded(v, field, out_of_range, self.latest, self.received_at)
    }

    /// When a token expires: may lie far ahead, but within [`bounds::latest_expiry`] (past it,
    /// clamped there: the token is as good as lasting, and the date stays printable).
    fn expiry(
        &self,
        v: Option<&Value>,
        field: &'static str,
        out_of_range: &mut Vec<&'static str>,
    ) -> Option<DateTime<Utc>> {
        let latest = bounds::latest_expiry();
        Self::bounded(v, field, out_of_range, latest, latest)
    }

    /// The moment `v` names (milliseconds), between Messenger's start and `latest`; out of that
    /// range, noted in `out_of_range` and taken as Messenger's start (too early) or `past`.
    fn bounded(
        v: Option<&Value>,
        field: &'static str,
        out_of_range: &mut Vec<&'static str>,
        latest: DateTime<Utc>,
        past: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let ms = raw_millis(v)?;
        let earliest = bounds::earliest_event();
        Some(match DateTime::from_timestamp_millis(ms) {
            Some(at) if (earliest..=latest).contains(&at) => at,
            _ => {
                out_of_range.push(field);
                if ms < earliest.timestamp_millis() {
                    earliest
                } else {
                    past
                }
            }
        })
    }
}

fn referral(v: Option<&Value>) -> Option<Referral> {
    let v = v?;
    Some(Referral {
        reference: string(v, "/ref"),
        source: string(v, "/source"),
        ad_id: string(v, "/ad_id"),
    })
}

/// A webhook body that is not a page envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a page webhook (object must be \"page\")")]
    NotAPage,
    #[error("entry must be an array")]
    NoEntries,
}

/// Reads `{"object":"page","entry":[{"id","time","messaging":[…]}]}`. Events it cannot read are
/// returned as `Other`, never dropped silently; a body that is not a page envelope is an error.
pub fn parse_envelope(
    body: &Value,
    received_at: DateTime<Utc>,
) -> Result<Vec<Event>, EnvelopeError> {
    if body.get("object").and_then(Value::as_str) != Some("page") {
        return Err(EnvelopeError::NotAPage);
    }
    let entries = body
        .get("entry")
        .and_then(Value::as_array)
        .ok_or(EnvelopeError::NoEntries)?;
    let moments = Moments::new(received_at);
    let mut events = Vec::new();
    for entry in entries {
        let page_id = string(entry, "/id").unwrap_or_default();
        let items = entry
            .get("messaging")
            .or_else(|| entry.get("standby"))
            .and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            events.push(parse_event(item, &page_id, entry.get("time"), &moments));
        }
    }
    Ok(events)
}

fn parse_event(
    item: &Value,
    page_id: &str,
    entry_time: Option<&Value>,
    moments: &Moments,
) -> Event {
    let mut out_of_range = Vec::new();
    // The entry's `time` stands in for an event without its own `timestamp` only.
    let timestamp = match moments.event(item.get("timestamp"), "timestamp", &mut out_of_range) {
        Some(at) => at,
        None => moments
            .event(entry_time, "time", &mut out_of_range)
            .unwrap_or(moments.received_at),
    };
    let kind = event_kind(item, timestamp, moments, &mut out_of_range);
    Event {
        page_id: page_id.to_owned(),
        sender: string(item, "/sender/id"),
        recipient: string(item, "/recipient/id"),
        timestamp,
        kind,
        raw: item.clone(),
        out_of_range,
    }
}

/// What the event is, by the one key that carries it; receipts without a watermark take the
/// event's `timestamp`.
fn event_kind(
    item: &Value,
    timestamp: DateTime<Utc>,
    moments: &Moments,
    out_of_range: &mut Vec<&'static str>,
) -> EventKind {
    let mut watermark = |v: &Value| {
        moments
            .event(v.get("watermark"), "watermark", out_of_range)
            .unwrap_or(timestamp)
    };
    if let Some(m) = item.get("message") {
        message_kind(m)
    } else if let Some(p) = item.get("postback") {
        EventKind::Postback {
            mid: string(p, "/mid"),
            payload: string(p, "/payload"),
            referral: referral(p.get("referral")),
        }
    } else if let Some(r) = item.get("reaction") {
        EventKind::Reaction {
            mid: string(r, "/mid"),
            action: string(r, "/action").unwrap_or_else(|| "react".into()),
        }
    } else if let Some(r) = item.get("referral") {
        EventKind::Referral(referral(Some(r)).unwrap_or_default())
    } else if let Some(o) = item.get("optin") {
        EventKind::Optin(parse_optin(o, moments, out_of_range))
    } else if let Some(d) = item.get("delivery") {
        EventKind::Delivery {
            mids: strings(d.get("mids")),
            watermark: watermark(d),
        }
    } else if let Some(r) = item.get("read") {
        EventKind::Read {
            watermark: watermark(r),
        }
    } else {
        EventKind::Other(other_name(item))
    }
}

/// A message the user sent, or the echo of one the page sent.
fn message_kind(m: &Value) -> EventKind {
    let mid = string(m, "/mid");
    if m.get("is_echo").and_then(Value::as_bool) == Some(true) {
        EventKind::Echo { mid }
    } else {
        EventKind::Message {
            mid,
            text: string(m, "/text"),
            referral: referral(m.get("referral")),
        }
    }
}

/// The strings of an array (`mids`); anything else is none.
fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// An event of a kind Herald does not read: named by its first key that is not an address or
/// a time.
fn other_name(item: &Value) -> String {
    item.as_object()
        .and_then(|o| {
            o.keys()
                .find(|k| !["sender", "recipient", "timestamp"].contains(&k.as_str()))
        })
        .cloned()
        .unwrap_or_else(|| "unknown".into())
}

fn parse_optin(o: &Value, moments: &Moments, out_of_range: &mut Vec<&'static str>) -> Optin {
    let kind = string(o, "/type");
    if kind.as_deref() == Some("notification_messages") {
        let status = string(o, "/notification_messages_status").and_then(|s| {
            // Meta's docs print "STOP NOTIFICATIONS"; accept an underscore too (MESSENGER.md §3.1).
            match s.to_uppercase().replace('_', " ").as_str() {
                "STOP NOTIFICATIONS" | "STOP" => Some(NotificationStatus::Stop),
                "RESUME NOTIFICATIONS" | "RESUME" => Some(NotificationStatus::Resume),
                _ => None,
            }
        });
        return Optin::Marketing {
            token: string(o, "/notification_messages_token"),
            status,
            timezone: string(o, "/notification_messages_timezone"),
            frequency: string(o, "/notification_messages_frequency"),
            expires_at: moments.expiry(
                o.get("token_expiry_timestamp"),
                "token_expiry_timestamp",
                out_of_range,
            ),
            title: string(o, "/title"),
            payload: string(o, "/payload"),
        };
    }
    if let Some(user_ref) = string(o, "/user_ref") {
        return Optin::Checkbox {
            user_ref,
            reference: string(o, "/ref"),
        };
    }
    match kind {
        Some(other) => Optin::Other(other),
        None => Optin::Plugin {
            reference: string(o, "/ref"),
        },
    }
}
