//! A message's life past its acceptance: cancelled before it goes, expired when it cannot go in
//! time, and the transitions that are refused.

use chrono::Duration;
use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{at, spawn_app, spawn_app_with, TestApp, TestOptions};

/// A response to `psid` asked for `minutes` from now.
async fn later(app: &TestApp, psid: &str, minutes: i64) -> Value {
    let send_at = app.now() + Duration::minutes(minutes);
    let (status, body) = app
        .send(json!({"recipient": {"psid": psid}, "category": "response",
                     "message": {"text": "later"}, "send_at": send_at.to_rfc3339()}))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("deferred")),
        "{body}"
    );
    body
}

async fn cancel(app: &TestApp, role: Role, id: &str) -> (u16, Value) {
    app.call(role, &format!("/v1/messages/{id}/cancel"), json!({}))
        .await
}

fn statuses(message: &Value) -> Vec<&str> {
    message["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect()
}

#[tokio::test]
async fn a_cancelled_message_is_never_sent_and_the_audit_log_says_so() {
    let app = spawn_app().await;
    app.user_writes("6001", "hi", None).await;
    let body = later(&app, "6001", 10).await;
    let id = body["id"].as_str().expect("id");
    let audit_before = app.audit_head().await;

    let (status, cancelled) = cancel(&app, Role::Backend, id).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(statuses(&cancelled), ["deferred", "cancelled"]);
    assert_eq!(
        app.audit_head().await,
        audit_before + 1,
        "the status change is audited"
    );

    app.set_time(app.now() + Duration::minutes(11));
    app.drain().await;
    assert!(
        app.inbox("6001").is_empty(),
        "a cancelled message never goes"
    );
    assert_eq!(app.message(id).await["status"], "cancelled");

    let (status, again) = cancel(&app, Role::Backend, id).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["message_status"], "cancelled", "{again}");
}

#[tokio::test]
async fn a_sent_message_cannot_be_cancelled() {
    let app = spawn_app().await;
    app.user_writes("6002", "hi", None).await;
    let (_, body) = app.respond("6002", "on its way").await;
    let id = body["id"].as_str().expect("id");
    app.drain().await;
    let (status, answer) = cancel(&app, Role::Backend, id).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["message_status"], "sent");
    assert_eq!(app.inbox("6002").len(), 1);
}

#[tokio::test]
async fn a_message_the_worker_holds_is_being_sent_and_cannot_be_cancelled() {
    let app = spawn_app().await;
    app.user_writes("6003", "hi", None).await;
    let body = later(&app, "6003", 10).await;
    let id = body["id"].as_str().expect("id");
    let message_id = herald::domain::MessageId::parse(id).expect("id");
    // Hold it as the worker does while it calls the Graph API.
    let store = &app.handle().herald.store;
    assert!(store
        .outbox
        .try_claim(&message_id, app.now(), Duration::minutes(1))
        .await
        .expect("claim"));
    let (status, answer) = cancel(&app, Role::Backend, id).await;
    assert_eq!(status, 409, "{answer}");
    store.outbox.release(&message_id).await.expect("release");
    let (status, answer) = cancel(&app, Role::Backend, id).await;
    assert_eq!(status, 200, "free again: {answer}");
}

#[tokio::test]
async fn only_the_sender_or_an_admin_may_cancel() {
    let app = spawn_app().await;
    app.user_writes("6004", "hi", None).await;
    let body = later(&app, "6004", 10).await;
    let id = body["id"].as_str().expect("id");
    let (status, _) = cancel(&app, Role::Marketer, id).await;
    assert_eq!(status, 404, "another client does not see it");
    let (status, _) = cancel(&app, Role::Compliance, id).await;
    assert_eq!(status, 403, "compliance reads, never changes");
    let (status, answer) = cancel(&app, Role::Admin, id).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _) = cancel(&app, Role::Backend, "msg_not_an_id").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_deferred_message_expires_at_its_expires_at_instead_of_going_late() {
    let app = spawn_app().await;
    // 23:30 in Berlin: marketing waits for 08:00 (07:00 UTC), but the offer ends at 02:00 UTC.
    app.set_time(at("2026-11-25T22:30:00Z"));
    app.user_writes("6005", "hi", None).await;
    app.sandbox_post(
        "/users/6005/marketing-optin",
        json!({"timezone": "Europe/Berlin", "title": "Deals"}),
    )
    .await;
    let (status, body) = app
        .call(
            Role::Marketer,
            "/v1/messages",
            json!({"recipient": {"psid": "6005"}, "category": "marketing",
                   "message": {"text": "Tonight only"}, "expires_at": "2026-11-26T02:00:00Z"}),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("deferred")),
        "{body}"
    );
    let id = body["id"].as_str().expect("id");

    app.set_time(at("2026-11-26T02:00:01Z"));
    app.drain().await;
    let message = app.message(id).await;
    assert_eq!(message["status"], "expired", "{message}");
    assert_eq!(statuses(&message), ["deferred", "expired"]);
    app.set_time(at("2026-11-26T07:00:01Z"));
    app.drain().await;
    assert!(
        app.inbox("6005").is_empty(),
        "an expired message never goes"
    );
}

#[tokio::test]
async fn a_shipping_update_that_cannot_go_within_its_time_to_live_expires() {
    // Retries an hour apart: the clock passes the time-to-live before the second try.
    let app = spawn_app_with(TestOptions {
        settings: Some(Box::new(|s| {
            s.delivery.retry_base_ms = 3_600_000;
            s.delivery.retry_max_ms = 3_600_000;
        })),
        ..TestOptions::default()
    })
    .await;
    app.user_writes("6006", "where is it?", None).await;
    // Messenger fails the first try with a transient error.
    app.sandbox_post("/faults", json!({"code": 2, "count": 1}))
        .await;
    let (status, body) = app
        .call(
            Role::Backend,
            "/v1/shipping-updates",
            json!({"recipient": {"psid": "6006"}, "order_number": "A-6", "status": "shipped"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id");
    let accepted = app.message(id).await;
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(accepted["expires_at"].as_str().expect("expires_at"))
            .expect("rfc3339");
    let created_at =
        chrono::DateTime::parse_from_rfc3339(accepted["created_at"].as_str().expect("created"))
            .expect("rfc3339");
    assert_eq!(
        expires_at - created_at,
        Duration::hours(48),
        "the shipping update's default"
    );

    // One try, which fails; then the clock passes the time-to-live before the retry.
    app.drain().await;
    assert_eq!(app.message(id).await["attempts"][0]["outcome"], "retry");
    app.set_time(app.now() + Duration::hours(49));
    app.drain().await;
    let message = app.message(id).await;
    assert_eq!(message["status"], "expired", "{message}");
    assert!(app.inbox("6006").is_empty());
}

#[tokio::test]
async fn an_expires_at_in_the_past_or_before_send_at_is_refused() {
    let app = spawn_app().await;
    let past = (app.now() - Duration::minutes(1)).to_rfc3339();
    let (status, body) = app
        .send(
            json!({"recipient": {"psid": "6007"}, "category": "response",
                     "message": {"text": "x"}, "expires_at": past}),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (400, Some("expires_at")),
        "{body}"
    );
    let (status, body) = app
        .send(
            json!({"recipient": {"psid": "6007"}, "category": "response", "message": {"text": "x"},
                     "send_at": "2026-11-25T15:00:00Z", "expires_at": "2026-11-25T14:00:00Z"}),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (400, Some("expires_at")),
        "{body}"
    );
}
