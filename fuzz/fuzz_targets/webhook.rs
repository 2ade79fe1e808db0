//! The webhook's way in, as Messenger (or anyone) can reach it: the `X-Hub-Signature-256`
//! check over arbitrary bytes and headers, then the envelope parser over whatever JSON they
//! hold. Nothing may panic; a body signed with the app secret must verify, and a changed one
//! must not. Every moment the parser returns lies in its sane range, whatever millisecond
//! values (`time`, `timestamp`, `watermark`, `token_expiry_timestamp`) the body carried.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| check(data));

const SECRET: &[u8] = b"fuzz-app-secret";

fn check(data: &[u8]) {
    // The first line plays the signature header, the rest the raw body.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let header = std::str::from_utf8(header).ok();
    let _ = herald::messenger::verify_signature(SECRET, body, header);

    let signed = herald::messenger::sign(SECRET, body);
    assert!(herald::messenger::verify_signature(
        SECRET,
        body,
        Some(&signed)
    ));
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert!(!herald::messenger::verify_signature(
        SECRET,
        &changed,
        Some(&signed)
    ));

    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = herald::messenger::parse_envelope(&value, chrono::DateTime::UNIX_EPOCH);
    }
    moments(data);
}

/// Millisecond values taken from the input, the extremes among them most of the time, in each
/// place a webhook carries a moment: the parsed event holds none outside its range.
fn moments(data: &[u8]) {
    use chrono::{DateTime, TimeDelta};
    use herald::domain::bounds;
    use herald::messenger::{parse_envelope, EventKind, Optin};
    use serde_json::{json, Value};

    const EXTREMES: [i64; 8] = [
        i64::MIN,
        -1,
        0,
        1,
        8_210_266_876_799_999, // year 262142
        8_210_266_876_800_000, // past chrono's range
        253_402_300_800_000,   // year 10000
        i64::MAX,
    ];
    let mut words = data.chunks(8).map(|c| {
        let mut bytes = [0u8; 8];
        bytes[..c.len()].copy_from_slice(c);
        let n = i64::from_le_bytes(bytes);
        EXTREMES.get((n as u64 % 16) as usize).copied().unwrap_or(n)
    });
    let mut next = || -> Value {
        let n = words.next().unwrap_or(0);
        // As a number, as a string, as a float: Messenger's moments come in each form.
        match n & 3 {
            0 => json!(n.to_string()),
            1 => json!(n as f64),
            _ => json!(n),
        }
    };
    let received = DateTime::from_timestamp_millis(1_764_072_000_000).unwrap_or_default();
    let body = json!({"object": "page", "entry": [{"id": "1", "time": next(), "messaging": [
        {"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": next(),
            "message": {"mid": "m", "text": "STOP"}},
        {"sender": {"id": "2"}, "delivery": {"watermark": next()}},
        {"sender": {"id": "2"}, "timestamp": next(), "read": {"watermark": next()}},
        {"sender": {"id": "2"}, "timestamp": next(), "optin": {"type": "notification_messages",
            "notification_messages_token": "t", "token_expiry_timestamp": next()}},
    ]}]});
    let Ok(events) = parse_envelope(&body, received) else {
        panic!("a page envelope");
    };
    let event_range = bounds::earliest_event()..=received + TimeDelta::minutes(5);
    for event in events {
        assert!(
            event_range.contains(&event.timestamp),
            "{:?}",
            event.timestamp
        );
        match event.kind {
            EventKind::Delivery { watermark, .. } | EventKind::Read { watermark } => {
                assert!(event_range.contains(&watermark), "{watermark:?}");
            }
            EventKind::Optin(Optin::Marketing {
                expires_at: Some(at),
                ..
            }) => {
                assert!(
                    (bounds::earliest_event()..=bounds::latest_expiry()).contains(&at),
                    "{at:?}"
                );
            }
            _ => {}
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = herald::messenger::keyword_form(text);
    }
}
