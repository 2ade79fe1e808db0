//! Webhook events (MESSENGER.md §7), read from the raw JSON into what Herald acts on.
//!
//! This file holds what an event is and what Herald reads off it; `parse.rs` reads a POST's
//! envelope into events.

mod parse;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::domain::recipient::InboundKind;

pub use self::parse::{parse_envelope, EnvelopeError};

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

#[cfg(test)]
mod tests;
