use chrono::TimeDelta;
use serde_json::json;

use super::*;
use crate::domain::bounds;

fn one(event: Value) -> Event {
    let body = json!({"object": "page", "entry": [{"id": "P1", "time": 1, "messaging": [event]}]});
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
            EventKind::Optin(Optin::Marketing { expires_at, .. }) => (expires_at, e.out_of_range),
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
    let message = one(json!({"sender": {"id": "U1"}, "timestamp": 1, "message": {"mid": "m9"}}));
    assert_eq!(message.dedup_key().as_deref(), Some("m9"));
    let referral = |ts: i64| {
        one(json!({"sender": {"id": "U1"}, "timestamp": ts, "referral": {"ref": "a"}})).dedup_key()
    };
    assert_eq!(referral(1), referral(1));
    assert_ne!(referral(1), referral(2));
}

#[test]
fn other_objects_are_refused() {
    assert!(parse_envelope(&json!({"object": "instagram", "entry": []}), Utc::now()).is_err());
}
