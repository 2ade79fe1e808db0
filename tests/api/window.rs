use chrono::Duration;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_response_is_denied_until_the_user_writes_and_allowed_after() {
    let app = spawn_app().await;
    app.create_user("2001").await;
    app.consent("2001", "transactional", None).await;
    let (status, body) = app.respond("2001", "Thanks for writing!").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("outside_window")),
        "{body}"
    );
    app.user_writes("2001", "Do you ship to Norway?", None)
        .await;
    let (status, body) = app.respond("2001", "We do!").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["decision"]["messaging_type"], "RESPONSE");
    app.drain().await;
    let inbox = app.inbox("2001");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].body["message"]["text"], "We do!");
    app.assert_no_rejections();
}

#[tokio::test]
async fn a_webhook_event_25_hours_old_does_not_open_the_window() {
    let app = spawn_app().await;
    app.user_writes(
        "2002",
        "hello from yesterday",
        Some(app.now() - Duration::hours(25)),
    )
    .await;
    // Writing to the page is a consent on record: what refuses the reply is the window alone.
    let (status, body) = app.respond("2002", "too late").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("outside_window")),
        "{body}"
    );
    let (_, recipient) = app.recipient("2002").await;
    assert_eq!(recipient["window"]["open"], false, "{recipient}");
}

#[tokio::test]
async fn an_agent_reply_gets_human_agent_at_3_days_and_is_denied_at_8() {
    let app = spawn_app().await;
    let agent = |psid: &str| {
        json!({"recipient": {"psid": psid}, "category": "agent_reply",
        "message": {"text": "Hi, this is Sam from support."}})
    };
    app.user_writes(
        "2003",
        "my parcel is broken",
        Some(app.now() - Duration::days(3)),
    )
    .await;
    let (status, body) = app.send(agent("2003")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["decision"]["messaging_type"], "MESSAGE_TAG");
    assert_eq!(body["decision"]["tag"], "HUMAN_AGENT");
    app.drain().await;
    assert_eq!(app.inbox("2003").len(), 1);

    app.user_writes("2004", "anyone there?", Some(app.now() - Duration::days(8)))
        .await;
    let (status, body) = app.send(agent("2004")).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("human_agent_window_expired")),
        "{body}"
    );
    app.drain().await;
    assert!(app.inbox("2004").is_empty());
    app.assert_no_rejections();
}

#[tokio::test]
async fn evaluate_applies_the_rules_in_force_at_the_moment_asked_about() {
    let app = spawn_app().await;
    app.consent("2005", "transactional", None).await;
    let body = |at: &str| {
        json!({"recipient": {"psid": "2005"}, "category": "shipping_update",
               "message": {"text": "Your parcel has shipped"}, "at": at})
    };
    let (status, before) = app
        .call(
            herald::domain::Role::Backend,
            "/v1/policy/evaluate",
            body("2026-03-01T12:00:00Z"),
        )
        .await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["messaging_type"], "MESSAGE_TAG");
    assert_eq!(before["tag"], "POST_PURCHASE_UPDATE");
    let (_, after) = app
        .call(
            herald::domain::Role::Backend,
            "/v1/policy/evaluate",
            body("2026-05-01T12:00:00Z"),
        )
        .await;
    assert_eq!(after["outcome"], "deny", "{after}");
    assert_eq!(
        after["reason"], "template_required",
        "a free-form update needs a utility template now"
    );
    assert!(after["trace"].as_array().is_some_and(|t| !t.is_empty()));
    // Evaluating wrote nothing.
    let audit = app.audit_head().await;
    app.call(
        herald::domain::Role::Backend,
        "/v1/policy/evaluate",
        body("2026-05-01T12:00:00Z"),
    )
    .await;
    assert_eq!(app.audit_head().await, audit);
}
