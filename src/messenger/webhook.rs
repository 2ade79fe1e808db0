//! Webhook events (MESSENGER.md §7), read from the raw JSON into what Herald acts on.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::domain::bounds;
use crate::domain::recipient::InboundKind;

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
    /// Whom the event was for: the page, except on echoes (the user).
    pub recipient: Option<String>,
    /// When Messenger says it happened (not when the webhook arrived).
    pub timestamp: DateTime<Utc>,
    pub kind: EventKind,
    /// The event as received, kept for a retry if applying it fails.
    pub raw: Value,
    /// Moments it reported outside their sane range, by field name (`timestamp`, `watermark`,
    /// `token_expiry_timestamp`, `time`): each was replaced by a moment in range.
    pub out_of_range: Vec<&'static str>,
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

impl Event {
    /// What a redelivery of this event is recognised by (Messenger redelivers a webhook it
    /// did not see answered; the same event comes again, byte for byte). A message or a
    /// postback by its `mid`. A reaction's `mid` is the message reacted to, so two reactions
    /// to one message share it: a reaction is known by the person, that `mid`, what they did
    /// (`action`, `reaction`) and Messenger's `timestamp` as sent. A referral (no `mid`) by
    /// the person, the page, its `ref` and `timestamp`. `None`: nothing to recognise it by.
    pub fn dedup_key(&self) -> Option<String> {
        let sender = self.sender.as_deref().unwrap_or_default();
        let raw_field = |pointer: &str| match self.raw.pointer(pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        // A key of several parts is kept as their digest: as short as a `mid`, however long
        // what Messenger sent.
        let digest = |kind: &str, parts: &[&str]| {
            let mut h = Sha256::new();
            for part in parts {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part.as_bytes());
            }
            format!("{kind}:{}", hex::encode(&h.finalize()[..20]))
        };
        match &self.kind {
            EventKind::Message { mid, .. } | EventKind::Echo { mid } => mid.clone(),
            EventKind::Postback { mid: Some(mid), .. } => Some(mid.clone()),
            EventKind::Postback { mid: None, .. } => Some(digest(
                "postback",
                &[
                    &self.page_id,
                    sender,
                    &raw_field("/timestamp"),
                    &raw_field("/postback/payload"),
                ],
            )),
            EventKind::Reaction { mid, action } => Some(digest(
                "reaction",
                &[
                    sender,
                    mid.as_deref().unwrap_or_default(),
                    action,
                    &raw_field("/reaction/reaction"),
                    &raw_field("/timestamp"),
                ],
            )),
            EventKind::Referral(r) => Some(digest(
                "referral",
                &[
                    &self.page_id,
                    sender,
                    r.reference.as_deref().unwrap_or_default(),
                    &raw_field("/timestamp"),
                ],
            )),
            _ => None,
        }
    }

    /// What a person did that Herald records as an inbound event, with what it carried as
    /// Messenger gave it: `mid`, `text`, `attachments` (`type`, `url`), a quick reply's
    /// `quick_reply_payload`, a postback's `title` and `payload`, a reaction's `reaction`,
    /// `emoji` and `action`, and the `ref`, `source`, `ad_id` of a referral (on its own or
    /// on a message or postback). `None` for anything else (echoes, receipts, opt-ins).
    pub fn inbound(&self) -> Option<(InboundKind, Value)> {
        let raw = &self.raw;
        let mut carried = Map::new();
        let mut put = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                carried.insert(key.to_owned(), Value::String(v));
            }
        };
        let (what, referral) = match &self.kind {
            EventKind::Message { mid, text, .. } => {
                put("mid", mid.clone());
                put("text", text.clone());
                put(
                    "quick_reply_payload",
                    string(raw, "/message/quick_reply/payload"),
                );
                (InboundKind::Message, raw.pointer("/message/referral"))
            }
            EventKind::Postback { mid, payload, .. } => {
                put("mid", mid.clone());
                put("title", string(raw, "/postback/title"));
                put("payload", payload.clone());
                (InboundKind::Postback, raw.pointer("/postback/referral"))
            }
            EventKind::Reaction { mid, action } => {
                put("mid", mid.clone());
                put("reaction", string(raw, "/reaction/reaction"));
                put("emoji", string(raw, "/reaction/emoji"));
                put("action", Some(action.clone()));
                (InboundKind::Reaction, None)
            }
            EventKind::Referral(_) => (InboundKind::Referral, raw.get("referral")),
            _ => return None,
        };
        if let Some(r) = referral {
            put("ref", string(r, "/ref"));
            put("source", string(r, "/source"));
            put("ad_id", string(r, "/ad_id"));
        }
        if let Some(list) = raw
            .pointer("/message/attachments")
            .and_then(Value::as_array)
        {
            let attachments: Vec<Value> = list
                .iter()
                .map(|a| {
                    let mut one = Map::new();
                    for (key, pointer) in [("type", "/type"), ("url", "/payload/url")] {
                        if let Some(v) = string(a, pointer) {
                            one.insert(key.to_owned(), Value::String(v));
                        }
                    }
                    Value::Object(one)
                })
                .collect();
            carried.insert("attachments".to_owned(), Value::Array(attachments));
        }
        Some((what, Value::Object(carried)))
    }
}

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

/// The form a message's text is compared to keywords in: compatibility forms folded (NFKC:
/// full-width `ＳＴＯＰ` is `STOP`), invisible format characters dropped (`S\u{200B}TOP` is
/// `STOP`), lowercased. A person who writes a stop keyword in any of these ways means it.
pub fn keyword_form(text: &str) -> String {
    text.nfkc()
        .filter(|c| !is_format_char(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Unicode's format characters (general category Cf): zero-width spaces and joiners,
/// direction marks, the byte order mark, invisible operators, tags.
fn is_format_char(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
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

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
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
        let delivery = one(
            json!({"sender": {"id": "U1"}, "timestamp": 1, "delivery": {"watermark": 1_700_000_000_005_i64}}),
        );
        let read = one(
            json!({"sender": {"id": "U1"}, "timestamp": 1, "read": {"watermark": "1700000000005"}}),
        );
        let optin = one(json!({"sender": {"id": "U1"}, "timestamp": 1, "optin": {
            "type": "notification_messages", "notification_messages_token": "tok",
            "notification_messages_status": "STOP NOTIFICATIONS"}}));
        for e in [&echo, &delivery, &read, &optin] {
            assert!(!e.kind.opens_window(), "{:?}", e.kind);
        }
        assert!(
            matches!(read.kind, EventKind::Read { watermark } if watermark.timestamp_millis() == 1_700_000_000_005)
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
    fn moments_out_of_range_are_replaced_and_named() {
        let now = Utc::now();
        let far = 8_210_266_876_799_999_i64; // year 262142
        let e = one(json!({"sender": {"id": "U1"}, "timestamp": far, "message": {"mid": "m"}}));
        assert!(
            e.timestamp <= now + bounds::EVENT_CLOCK_SKEW,
            "{}",
            e.timestamp
        );
        assert!(e.timestamp >= now - TimeDelta::minutes(1));
        assert_eq!(e.out_of_range, ["timestamp"]);

        let early = one(
            json!({"sender": {"id": "U1"}, "timestamp": 1_700_000_000_000_i64,
            "read": {"watermark": -5}}),
        );
        assert!(
            matches!(early.kind, EventKind::Read { watermark } if watermark == bounds::earliest_event())
        );
        assert_eq!(early.out_of_range, ["watermark"]);
        let future = one(
            json!({"sender": {"id": "U1"}, "timestamp": 1_700_000_000_000_i64,
            "delivery": {"watermark": i64::MAX}}),
        );
        assert!(
            matches!(future.kind, EventKind::Delivery { watermark, .. } if watermark <= now + bounds::EVENT_CLOCK_SKEW)
        );

        let token = |expiry: Value| {
            let e = one(
                json!({"sender": {"id": "U1"}, "timestamp": 1_700_000_000_000_i64,
                "optin": {"type": "notification_messages", "notification_messages_token": "t",
                    "token_expiry_timestamp": expiry}}),
            );
            match e.kind {
                EventKind::Optin(Optin::Marketing { expires_at, .. }) => {
                    (expires_at, e.out_of_range)
                }
                other => panic!("{other:?}"),
            }
        };
        // Far, but a real date: kept.
        let in_5000 = 95_617_584_000_000_i64;
        assert_eq!(
            token(json!(in_5000)),
            (DateTime::from_timestamp_millis(in_5000), vec![])
        );
        assert_eq!(
            token(json!(far)),
            (
                Some(bounds::latest_expiry()),
                vec!["token_expiry_timestamp"]
            )
        );
        assert_eq!(
            token(json!(u64::MAX)),
            (
                Some(bounds::latest_expiry()),
                vec!["token_expiry_timestamp"]
            )
        );
        assert_eq!(
            token(json!(-1e300)),
            (
                Some(bounds::earliest_event()),
                vec!["token_expiry_timestamp"]
            )
        );
    }

    #[test]
    fn an_event_without_its_own_timestamp_takes_the_entrys_time_bounded_too() {
        let body = json!({"object": "page", "entry": [{"id": "P1", "time": 8_210_266_876_799_999_i64,
            "messaging": [{"sender": {"id": "U1"}, "message": {"mid": "m"}}]}]});
        let now = Utc::now();
        let events = parse_envelope(&body, now).expect("envelope");
        assert_eq!(events[0].timestamp, now);
        assert_eq!(events[0].out_of_range, ["time"]);
    }

    #[test]
    fn keywords_are_compared_in_one_form_whatever_the_characters_used() {
        for (written, form) in [
            ("STOP", "stop"),
            ("ＳＴＯＰ", "stop"),
            ("S\u{200B}TOP", "stop"),
            ("\u{FEFF}stop\u{2060}", "stop"),
            ("S\u{200C}T\u{200D}O\u{200E}P\u{200F}", "stop"),
            ("ｓｔｏｐ", "stop"),
            ("Ｓｔｏｐ ａｌｌ", "stop all"),
            ("ＳＴＯＰ\u{00AD}", "stop"),
            ("ﬁn", "fin"),
            ("СТОП", "стоп"),
            ("arrêt", "arrêt"),
            ("Arre\u{0302}t", "arrêt"),
        ] {
            assert_eq!(keyword_form(written), form, "{written:?}");
        }
        assert_ne!(keyword_form("S TOP"), "stop", "a visible space stays");
    }

    #[test]
    fn an_inbound_event_carries_what_messenger_gave() {
        let message = one(
            json!({"sender": {"id": "U1"}, "recipient": {"id": "P1"}, "timestamp": 5,
            "message": {"mid": "m1", "text": "hi", "quick_reply": {"payload": "YES"},
                "attachments": [{"type": "image", "payload": {"url": "https://x/y.png"}}],
                "referral": {"ref": "ad-7", "source": "ADS", "ad_id": "77"}}}),
        );
        let (what, carried) = message.inbound().expect("inbound");
        assert_eq!(what, InboundKind::Message);
        assert_eq!(
            carried,
            json!({"mid": "m1", "text": "hi", "quick_reply_payload": "YES",
                "attachments": [{"type": "image", "url": "https://x/y.png"}],
                "ref": "ad-7", "source": "ADS", "ad_id": "77"})
        );
        let postback = one(json!({"sender": {"id": "U1"}, "timestamp": 5,
            "postback": {"mid": "m2", "title": "Start", "payload": "GET_STARTED",
                "referral": {"ref": "spring", "source": "SHORTLINK", "type": "OPEN_THREAD"}}}));
        assert_eq!(
            postback.inbound(),
            Some((
                InboundKind::Postback,
                json!({"mid": "m2", "title": "Start",
                "payload": "GET_STARTED", "ref": "spring", "source": "SHORTLINK"})
            ))
        );
        let reaction = one(json!({"sender": {"id": "U1"}, "timestamp": 5,
            "reaction": {"mid": "m0", "reaction": "love", "emoji": "\u{2764}", "action": "react"}}));
        assert_eq!(
            reaction.inbound(),
            Some((
                InboundKind::Reaction,
                json!({"mid": "m0", "reaction": "love",
                "emoji": "\u{2764}", "action": "react"})
            ))
        );
        let referral = one(json!({"sender": {"id": "U1"}, "timestamp": 5,
            "referral": {"ref": "summer", "source": "SHORTLINK", "type": "OPEN_THREAD"}}));
        assert_eq!(
            referral.inbound(),
            Some((
                InboundKind::Referral,
                json!({"ref": "summer", "source": "SHORTLINK"})
            ))
        );
        let echo = one(json!({"sender": {"id": "P1"}, "timestamp": 5,
            "message": {"mid": "m3", "is_echo": true, "text": "ours"}}));
        assert_eq!(echo.inbound(), None);
    }

    #[test]
    fn two_reactions_to_one_message_are_two_events_and_a_redelivery_is_one() {
        let reaction = |reaction: &str, action: &str, ts: i64| {
            one(json!({"sender": {"id": "U1"}, "timestamp": ts,
                "reaction": {"mid": "m0", "reaction": reaction, "action": action}}))
            .dedup_key()
        };
        let love = reaction("love", "react", 1_700_000_000_000);
        assert!(love.is_some());
        assert_eq!(
            love,
            reaction("love", "react", 1_700_000_000_000),
            "redelivery"
        );
        assert_ne!(love, reaction("like", "react", 1_700_000_000_000));
        assert_ne!(love, reaction("love", "unreact", 1_700_000_000_000));
        assert_ne!(
            love,
            reaction("love", "react", 1_700_000_000_001),
            "again, later"
        );
        assert_ne!(love.as_deref(), Some("m0"), "not the reacted message's mid");
        let other = one(
            json!({"sender": {"id": "U2"}, "timestamp": 1_700_000_000_000_i64,
            "reaction": {"mid": "m0", "reaction": "love", "action": "react"}}),
        );
        assert_ne!(love, other.dedup_key(), "another person");
        let message =
            one(json!({"sender": {"id": "U1"}, "timestamp": 1, "message": {"mid": "m9"}}));
        assert_eq!(message.dedup_key().as_deref(), Some("m9"));
        let referral = |ts: i64| {
            one(json!({"sender": {"id": "U1"}, "timestamp": ts, "referral": {"ref": "a"}}))
                .dedup_key()
        };
        assert_eq!(referral(1), referral(1));
        assert_ne!(referral(1), referral(2));
    }

    #[test]
    fn other_objects_are_refused() {
        assert!(parse_envelope(&json!({"object": "instagram", "entry": []}), Utc::now()).is_err());
    }
}
