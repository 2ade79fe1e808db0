use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, zone_where_local_hour_in, TestApp};

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
    let daytime = zone_where_local_hour_in(9..20);
    app.user_writes("3001", "hi", None).await;
    let (status, body) = market(&app, "3001").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("no_consent")),
        "{body}"
    );

    opt_in(&app, "3001", &daytime).await;
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
async fn marketing_in_quiet_hours_is_deferred_not_denied() {
    let app = spawn_app().await;
    let night = zone_where_local_hour_in(22..24);
    app.user_writes("3002", "hi", None).await;
    opt_in(&app, "3002", &night).await;
    let (status, body) = market(&app, "3002").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "deferred");
    assert_eq!(body["decision"]["outcome"], "defer");
    assert_eq!(body["decision"]["reason"], "quiet_hours");
    let not_before = body["decision"]["not_before"].as_str().expect("not_before");
    let not_before = chrono::DateTime::parse_from_rfc3339(not_before).expect("rfc3339");
    assert!(
        not_before > chrono::Utc::now() + chrono::Duration::hours(1),
        "{not_before}"
    );
    app.drain().await;
    assert!(app.inbox("3002").is_empty(), "held until morning");
    let message = app.message(body["id"].as_str().expect("id")).await;
    assert_eq!(message["status"], "deferred");
}

#[tokio::test]
async fn marketing_outside_the_window_goes_through_the_marketing_messages_token() {
    let app = spawn_app().await;
    let daytime = zone_where_local_hour_in(9..20);
    app.create_user("3003").await;
    let token = opt_in(&app, "3003", &daytime).await;
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
    let daytime = zone_where_local_hour_in(9..20);
    opt_in(&app, "3004", &daytime).await;
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
