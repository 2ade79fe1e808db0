use chrono::Duration;
use serde_json::json;

use super::*;
use crate::sandbox::rules::Purpose;

fn page() -> SandboxPage {
    SandboxPage {
        id: "p1".to_owned(),
        access_token: "t".to_owned(),
        region: Some("EU".to_owned()),
    }
}

fn request(recipient: Recipient) -> SendRequest {
    SendRequest {
        recipient,
        purpose: Purpose::Standard,
        content: Content::Message,
    }
}

fn code(outcome: &SendOutcome) -> Option<(u32, Option<u32>)> {
    match outcome {
        SendOutcome::Accepted(_) => None,
        SendOutcome::Refused(error) => Some((error.code, error.subcode)),
        SendOutcome::Fault(fault) => Some((fault.error.code, fault.error.subcode)),
    }
}

#[test]
fn a_fault_is_used_once_and_counted_apart_from_rule_rejections() {
    let mut state = State::default();
    let now = Utc::now();
    state.record_interaction("u1", "p1", now);
    state.add_fault(Fault {
        code: 1200,
        subcode: Some(2018024),
        count: 1,
        psid: Some("u1".to_owned()),
        page_id: None,
        retry_after: None,
        http_status: None,
        message: None,
        every: None,
        delay_ms: None,
        drop_connection: false,
        usage_header: None,
        seen: 0,
    });
    let send = request(Recipient::Psid("u1".to_owned()));
    let first = state.process_send(&page(), &send, json!({}), now);
    assert_eq!(code(&first), Some((1200, Some(2018024))));
    let second = state.process_send(&page(), &send, json!({}), now);
    assert_eq!(code(&second), None);
    let stats = state.stats();
    assert_eq!(
        (stats.accepted, stats.rejected, stats.injected_faults),
        (1, 0, 1)
    );
    assert_eq!(state.inbox("u1").len(), 1);
}

#[test]
fn deliveries_report_each_message_once() {
    let mut state = State::default();
    let now = Utc::now();
    state.record_interaction("u1", "p1", now);
    let send = request(Recipient::Psid("u1".to_owned()));
    state.process_send(&page(), &send, json!({}), now);
    let first = state.deliver_until("u1", "p1", now + Duration::seconds(1));
    assert_eq!(first.len(), 1);
    let again = state.deliver_until("u1", "p1", now + Duration::seconds(2));
    assert!(again.is_empty());
}

#[test]
fn an_older_event_does_not_shorten_the_window() {
    let mut state = State::default();
    let now = Utc::now();
    state.record_interaction("u1", "p1", now);
    state.record_interaction("u1", "p1", now - Duration::days(3));
    let send = request(Recipient::Psid("u1".to_owned()));
    assert_eq!(
        code(&state.process_send(&page(), &send, json!({}), now)),
        None
    );
}
