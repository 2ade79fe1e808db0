//! Webhook events (MESSENGER.md §7), read from the raw JSON into what Herald acts on.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Where a user came from: an m.me link, an ad, a Messenger code.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Referral {
    pub reference: Option<String>,
    pub source: Option<String>,
    pub ad_id: Option<String>,
}

/// `notification_messages_status` of a Marketing Messages opt-in event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationStatus {
    Stop,
    Resume,
}

/// A `messaging_optins` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Optin {
    /// A Marketing Messages (notification messages) opt-in, stop or resume.
    Marketing {
        token: Option<String>,
        status: Option<NotificationStatus>,
        timezone: Option<String>,
        frequency: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        title: Option<String>,
        payload: Option<String>,
    },
    /// The checkbox plugin: no sender yet, a `user_ref` to send to.
    Checkbox {
        user_ref: String,
        reference: Option<String>,
    },
    /// Send to Messenger and similar plugin opt-ins of a known user.
    Plugin { reference: Option<String> },
    /// Anything else (one-time notification requests…), kept but not acted on.
    Other(String),
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Message {
        mid: Option<String>,
        text: Option<String>,
        referral: Option<Referral>,
    },
    /// Echo of a message the page sent: not a user interaction.
    Echo {
        mid: Option<String>,
    },
    Postback {
        mid: Option<String>,
        payload: Option<String>,
        referral: Option<Referral>,
    },
    Reaction {
        mid: Option<String>,
        action: String,
    },
    Referral(Referral),
    Optin(Optin),
    Delivery {
        mids: Vec<String>,
        watermark: DateTime<Utc>,
    },
    Read {
        watermark: DateTime<Utc>,
    },
    /// An event Herald does not act on (policy enforcement, handover…).
    Other(String),
}

/// One `messaging[]` item.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub page_id: String,
    /// The user's PSID; absent for checkbox opt-ins.
    pub sender: Option<String>,
    /// When Messenger says it happened (not when the webhook arrived).
    pub timestamp: DateTime<Utc>,
    pub kind: EventKind,
    /// The event as received, kept for a retry if applying it fails.
    pub raw: Value,
}

impl EventKind {
    /// The kind's name, for metrics and logs: a small fixed set (never an id or a payload).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Message { .. } => "message",
            EventKind::Echo { .. } => "echo",
            EventKind::Postback { .. } => "postback",
            EventKind::Reaction { .. } => "reaction",
            EventKind::Referral(_) => "referral",
            EventKind::Optin(_) => "optin",
            EventKind::Delivery { .. } => "delivery",
            EventKind::Read { .. } => "read",
            EventKind::Other(_) => "other",
        }
    }

    /// A user action that opens the standard messaging window (MESSENGER.md §2.1).
    pub fn opens_window(&self) -> bool {
        matches!(
            self,
            EventKind::Message { .. }
                | EventKind::Postback { .. }
                | EventKind::Reaction { .. }
                | EventKind::Referral(_)
                | EventKind::Optin(Optin::Plugin { .. })
        )
    }

    /// The id to deduplicate redeliveries on.
    pub fn mid(&self) -> Option<&str> {
        match self {
            EventKind::Message { mid, .. }
            | EventKind::Postback { mid, .. }
            | EventKind::Echo { mid } => mid.as_deref(),
            _ => None,
        }
    }
}

/// A millisecond timestamp given as a number or a string.
fn millis(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let ms = match v? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    DateTime::from_timestamp_millis(ms)
}

fn string(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
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
    let mut events = Vec::new();
    for entry in entries {
        let page_id = string(entry, "/id").unwrap_or_default();
        let entry_time = millis(entry.get("time"));
        let items = entry
            .get("messaging")
            .or_else(|| entry.get("standby"))
            .and_then(Value::as_array);
        for item in items.into_iter().flatten() {
            events.push(parse_event(
                item,
                &page_id,
                entry_time.unwrap_or(received_at),
            ));
        }
    }
    Ok(events)
}

fn parse_event(item: &Value, page_id: &str, fallback_time: DateTime<Utc>) -> Event {
    let timestamp = millis(item.get("timestamp")).unwrap_or(fallback_time);
    let kind = if let Some(m) = item.get("message") {
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
        EventKind::Optin(parse_optin(o))
    } else if let Some(d) = item.get("delivery") {
        EventKind::Delivery {
            mids: d
                .get("mids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            watermark: millis(d.get("watermark")).unwrap_or(timestamp),
        }
    } else if let Some(r) = item.get("read") {
        EventKind::Read {
            watermark: millis(r.get("watermark")).unwrap_or(timestamp),
        }
    } else {
        let name = item
            .as_object()
            .and_then(|o| {
                o.keys()
                    .find(|k| !["sender", "recipient", "timestamp"].contains(&k.as_str()))
            })
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        EventKind::Other(name)
    };
    Event {
        page_id: page_id.to_owned(),
        sender: string(item, "/sender/id"),
        timestamp,
        kind,
        raw: item.clone(),
    }
}

fn parse_optin(o: &Value) -> Optin {
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
            expires_at: millis(o.get("token_expiry_timestamp")),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn one(event: Value) -> Event {
        let body =
            json!({"object": "page", "entry": [{"id": "P1", "time": 1, "messaging": [event]}]});
        let mut events = parse_envelope(&body, Utc::now()).expect("envelope");
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn a_message_keeps_its_own_timestamp() {
        let e = one(json!({"sender": {"id": "U1"}, "recipient": {"id": "P1"},
            "timestamp": 1_700_000_000_000_i64, "message": {"mid": "m1", "text": "hi"}}));
        assert_eq!(e.timestamp.timestamp_millis(), 1_700_000_000_000);
        assert_eq!(e.sender.as_deref(), Some("U1"));
        assert!(e.kind.opens_window());
        assert_eq!(e.kind.mid(), Some("m1"));
    }

    #[test]
    fn echoes_deliveries_reads_and_marketing_optins_do_not_open_the_window() {
        let echo = one(
            json!({"sender": {"id": "P1"}, "timestamp": 1, "message": {"mid": "m", "is_echo": true}}),
        );
        let delivery =
            one(json!({"sender": {"id": "U1"}, "timestamp": 1, "delivery": {"watermark": 5}}));
        let read = one(json!({"sender": {"id": "U1"}, "timestamp": 1, "read": {"watermark": "5"}}));
        let optin = one(json!({"sender": {"id": "U1"}, "timestamp": 1, "optin": {
            "type": "notification_messages", "notification_messages_token": "tok",
            "notification_messages_status": "STOP NOTIFICATIONS"}}));
        for e in [&echo, &delivery, &read, &optin] {
            assert!(!e.kind.opens_window(), "{:?}", e.kind);
        }
        assert!(
            matches!(read.kind, EventKind::Read { watermark } if watermark.timestamp_millis() == 5)
        );
        assert!(matches!(
            optin.kind,
            EventKind::Optin(Optin::Marketing {
                status: Some(NotificationStatus::Stop),
                ..
            })
        ));
    }

    #[test]
    fn a_checkbox_optin_has_no_sender() {
        let e = one(
            json!({"recipient": {"id": "P1"}, "timestamp": 1, "optin": {"ref": "cart", "user_ref": "ur-1"}}),
        );
        assert_eq!(e.sender, None);
        assert_eq!(
            e.kind,
            EventKind::Optin(Optin::Checkbox {
                user_ref: "ur-1".into(),
                reference: Some("cart".into())
            })
        );
    }

    #[test]
    fn other_objects_are_refused() {
        assert!(parse_envelope(&json!({"object": "instagram", "entry": []}), Utc::now()).is_err());
    }
}
