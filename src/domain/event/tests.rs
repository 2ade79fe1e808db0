use super::*;
use crate::domain::audit::Personal;

fn entry(kind: AuditKind, outcome: Option<&str>, status: Option<MessageStatus>) -> AuditEntry {
    AuditEntry {
        seq: 42,
        chain: Some(3),
        kind,
        message_id: Some("msg_1".into()),
        page_id: Some("1234".into()),
        outcome: outcome.map(str::to_owned),
        status,
        personal: Some(Personal::of("5551")),
        ..AuditEntry::default()
    }
}

#[test]
fn an_event_id_names_its_entry_and_reads_back() {
    let events = events_of(&entry(AuditKind::Decision, Some("allow"), None));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, "evt_3_42_0");
    assert_eq!(events[0].kind, "message.queued");
    let back = EventRef::parse(&events[0].id).expect("an event id");
    assert_eq!((back.chain, back.seq, back.index), (3, 42, 0));
    assert_eq!(EventRef::parse("evt_3_42"), None);
    assert_eq!(EventRef::parse("msg_3_42_0"), None);
}

#[test]
fn message_statuses_are_told_once_each() {
    let told = |kind, outcome, status| {
        events_of(&entry(kind, outcome, status))
            .into_iter()
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        told(AuditKind::Decision, Some("deny"), None),
        ["message.denied"]
    );
    assert!(told(AuditKind::Decision, Some("defer"), None).is_empty());
    assert!(told(AuditKind::Status, None, Some(MessageStatus::Denied)).is_empty());
    assert!(told(AuditKind::Attempt, Some("sent"), None).is_empty());
    assert_eq!(
        told(AuditKind::Status, None, Some(MessageStatus::Read)),
        ["message.read"]
    );
    let sent = &events_of(&entry(AuditKind::Status, None, Some(MessageStatus::Sent)))[0];
    assert_eq!(sent.data["status"], "sent");
    assert_eq!(sent.data["recipient"]["id"], "5551");
    assert_eq!(sent.data["channel"], "messenger");
}

#[test]
fn a_message_sent_by_email_says_so_and_the_fallback_decision_is_no_event() {
    let mut e = entry(AuditKind::Status, None, Some(MessageStatus::Sent));
    e.channel = Some("email".into());
    let sent = &events_of(&e)[0];
    assert_eq!(sent.kind, "message.sent");
    assert_eq!(sent.data["channel"], "email");
    for outcome in ["allow", "deny"] {
        let mut decision = entry(AuditKind::Decision, Some(outcome), None);
        decision.channel = Some("email".into());
        assert!(events_of(&decision).is_empty(), "{outcome}");
    }
}

#[test]
fn an_erased_person_is_gone_from_the_event() {
    let mut e = entry(AuditKind::Status, None, Some(MessageStatus::Sent));
    e.personal_sha256 = Some("x".into());
    e.personal = None;
    let event = &events_of(&e)[0];
    assert!(event.data.get("recipient").is_none());
    assert_eq!(event.data["erased"], true);
}

#[test]
fn an_opt_out_by_notification_settings_is_a_notification_stop() {
    let mut e = entry(AuditKind::Consent, Some("opt_out"), None);
    e.reason = Some("marketing".into());
    e.detail = Some("notification_settings".into());
    let event = &events_of(&e)[0];
    assert_eq!(event.kind, "consent.opted_out");
    assert_eq!(event.data["source"], "notification_stop");
    assert_eq!(event.data["scope"], "marketing");
    assert_eq!(event.data["psid"], "5551");
}

#[test]
fn an_inbound_event_tells_what_it_carried_but_not_the_posts_bytes() {
    let mut e = entry(AuditKind::Inbound, Some("postback"), None);
    e.message_id = None;
    e.personal = Some(Personal {
        event: Some(
            json!({"mid": "m1", "payload": "GET_STARTED", "ref": "spring",
            "raw": "{}", "signature": "sha256=00", "post_types": ["inbound.postback"]}),
        ),
        ..Personal::of("5551")
    });
    let event = &events_of(&e)[0];
    assert_eq!(event.kind, "inbound.postback");
    assert_eq!(event.data["psid"], "5551");
    assert_eq!(event.data["page_id"], "1234");
    assert_eq!(event.data["payload"], "GET_STARTED");
    assert_eq!(event.data["ref"], "spring");
    assert!(event.data.get("raw").is_none());
    assert!(event.data.get("signature").is_none());
    assert!(event.data.get("post_types").is_none());
    e.personal_sha256 = Some("x".into());
    e.personal = None;
    let erased = &events_of(&e)[0];
    assert!(erased.data.get("psid").is_none() && erased.data.get("payload").is_none());
    assert_eq!(erased.data["erased"], true);
}

#[test]
fn an_unreachable_person_names_the_error_that_said_so() {
    let mut e = entry(AuditKind::Recipient, Some("unreachable"), None);
    e.detail = Some("Messenger error 551/1545041".into());
    e.graph_error = Some(crate::domain::GraphErrorRecord {
        code: 551,
        subcode: Some(1_545_041),
        message: Some("This person isn't available right now.".into()),
    });
    let event = &events_of(&e)[0];
    assert_eq!(event.kind, "recipient.unreachable");
    assert_eq!(event.data["psid"], "5551");
    assert_eq!(
        event.data["error"],
        json!({"code": 551, "subcode": 1_545_041})
    );
    assert_eq!(event.data["reason"], "Messenger error 551/1545041");
}

#[test]
fn a_filter_takes_types_families_and_everything() {
    let f = TypeFilter::parse(vec!["message.*".into(), "consent.opted_out".into()])
        .expect("known types");
    assert!(f.admits("message.sent"));
    assert!(f.admits("consent.opted_out"));
    assert!(!f.admits("consent.granted"));
    assert!(TypeFilter::all().admits("endpoint.disabled"));
    assert!(TypeFilter::parse(vec!["message.sending".into()]).is_err());
    assert!(TypeFilter::parse(vec!["mess.*".into()]).is_err());
    assert!(TypeFilter::parse(Vec::new()).is_err());
}
