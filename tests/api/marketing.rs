use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{at, spawn_app, TestApp};

/// At the tests' moment (noon UTC) it is 13:00 in Berlin: inside the marketing hours.
const BERLIN: &str = "Europe/Berlin";

fn offer(psid: &str) -> Value {
    json!({"recipient": {"psid": psid}, "category": "marketing", "message": {"text": "20% off teapots this week"}})
}

async fn market(app: &TestApp, psid: &str) -> (u16, Value) {
    app.call(Role::Marketer, "/v1/messages", offer(psid)).await
}

async fn opt_in(app: &TestApp, psid: &str, timezone: &str) -> String {
    let answer = app
        .sandbox_post(
            &format!("/users/{psid}/marketing-optin"),
            json!({"timezone": timezone, "title": "Deals"}),
        )
        .await;
    answer["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn marketing_needs_an_opt_in_and_stops_at_stop() {
    let app = spawn_app().await;
    app.user_writes("3001", "hi", None).await;
    let (status, body) = market(&app, "3001").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("no_consent")),
        "{body}"
    );

    opt_in(&app, "3001", BERLIN).await;
    let (status, body) = market(&app, "3001").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "queued", "{body}");
    app.drain().await;
    assert_eq!(app.inbox("3001").len(), 1);

    app.user_writes("3001", "STOP", None).await;
    let (status, body) = market(&app, "3001").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("opted_out")),
        "{body}"
    );
    let (_, recipient) = app.recipient("3001").await;
    assert_eq!(recipient["opt_outs"]["marketing"], true, "{recipient}");
    assert_eq!(
        recipient["opt_outs"]["transactional"], false,
        "a stop keyword only stops marketing"
    );
    app.drain().await;
    assert_eq!(app.inbox("3001").len(), 1, "nothing more after STOP");
    app.assert_no_rejections();
}

#[tokio::test]
async fn marketing_in_quiet_hours_is_deferred_to_the_recipients_morning_not_denied() {
    let app = spawn_app().await;
    // 23:30 in Berlin, 07:30 the next morning in Tokyo.
    app.set_time(at("2026-11-25T22:30:00Z"));
    app.user_writes("3002", "hi", None).await;
    opt_in(&app, "3002", BERLIN).await;
    app.user_writes("3006", "hi", None).await;
    opt_in(&app, "3006", "Asia/Tokyo").await;

    let (status, body) = market(&app, "3002").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "deferred");
    assert_eq!(body["decision"]["outcome"], "defer");
    assert_eq!(body["decision"]["reason"], "quiet_hours");
    assert_eq!(
        body["decision"]["not_before"], "2026-11-26T07:00:00Z",
        "08:00 in Berlin: {body}"
    );
    let (_, tokyo) = market(&app, "3006").await;
    assert_eq!(
        tokyo["decision"]["not_before"], "2026-11-25T23:00:00Z",
        "08:00 in Tokyo comes first: {tokyo}"
    );
    app.drain().await;
    assert!(app.inbox("3002").is_empty(), "held until morning");
    let message = app.message(body["id"].as_str().expect("id")).await;
    assert_eq!(message["status"], "deferred");

    // Morning in Berlin: the message is decided again and goes.
    app.set_time(at("2026-11-26T07:00:01Z"));
    app.drain().await;
    assert_eq!(
        app.inbox("3002").len(),
        1,
        "sent in the morning, not dropped"
    );
    let message = app.message(body["id"].as_str().expect("id")).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(
        app.inbox("3006").len(),
        1,
        "Tokyo's went at its own morning"
    );
}

#[tokio::test]
async fn marketing_outside_the_window_goes_through_the_marketing_messages_token() {
    let app = spawn_app().await;
    app.create_user("3003").await;
    let token = opt_in(&app, "3003", BERLIN).await;
    let (status, body) = market(&app, "3003").await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    let inbox = app.inbox("3003");
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        inbox[0].body["recipient"]["notification_messages_token"],
        token.as_str()
    );
    // One per token per 48 hours: the next one waits for the cooldown.
    let (status, body) = market(&app, "3003").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "deferred", "{body}");
    app.drain().await;
    assert_eq!(app.inbox("3003").len(), 1);
    app.assert_no_rejections();
}

#[tokio::test]
async fn a_resume_keyword_lifts_only_a_stop_keyword_opt_out() {
    let app = spawn_app().await;
    opt_in(&app, "3004", BERLIN).await;
    app.user_writes("3004", "stop", None).await;
    let (status, body) = market(&app, "3004").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("opted_out")),
        "{body}"
    );
    app.user_writes("3004", "START", None).await;
    let (status, body) = market(&app, "3004").await;
    assert_eq!(status, 202, "{body}");

    // Someone who never opted in gains nothing by writing START.
    app.user_writes("3005", "START", None).await;
    let (status, body) = market(&app, "3005").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("no_consent")),
        "{body}"
    );
}
