use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn two_transient_graph_errors_then_success_deliver_once() {
    let app = spawn_app().await;
    app.user_writes("5001", "hi", None).await;
    app.sandbox_post(
        "/faults",
        json!({"code": 1200, "subcode": 2018024, "count": 2, "psid": "5001"}),
    )
    .await;
    let (status, body) = app.respond("5001", "third time lucky").await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    let message = app.message(body["id"].as_str().expect("id")).await;
    assert_eq!(message["status"], "sent", "{message}");
    let outcomes: Vec<&str> = message["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .filter_map(|a| a["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "sent"], "{message}");
    assert_eq!(message["attempts"][0]["graph_error"]["code"], 1200);
    assert_eq!(app.inbox("5001").len(), 1, "delivered exactly once");
    assert_eq!(app.stats().injected_faults, 2);
    app.assert_no_rejections();
}

#[tokio::test]
async fn a_rate_limited_page_backs_off_and_then_sends() {
    let app = spawn_app().await;
    app.user_writes("5002", "hi", None).await;
    app.sandbox_post("/faults", json!({"code": 613, "count": 1}))
        .await;
    let (_, body) = app.respond("5002", "patience").await;
    app.drain().await;
    let message = app.message(body["id"].as_str().expect("id")).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["attempts"][0]["graph_error"]["code"], 613);
    assert_eq!(app.inbox("5002").len(), 1);
}

#[tokio::test]
async fn a_person_who_blocked_the_page_is_not_messaged_again_until_they_write() {
    let app = spawn_app().await;
    app.user_writes("5003", "hi", None).await;
    app.sandbox_post("/users/5003/block", json!({})).await;
    app.expect_rejection(551);
    let (_, body) = app.respond("5003", "are you there?").await;
    app.drain().await;
    let message = app.message(body["id"].as_str().expect("id")).await;
    assert_eq!(message["status"], "failed", "{message}");
    assert_eq!(
        message["attempts"].as_array().map(Vec::len),
        Some(1),
        "551 is not retried"
    );
    assert_eq!(message["attempts"][0]["graph_error"]["code"], 551);
    let (status, body) = app.respond("5003", "hello?").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("recipient_unreachable")),
        "{body}"
    );
    app.sandbox_post("/users/5003/unblock", json!({})).await;
    app.user_writes("5003", "sorry, I'm back", None).await;
    let (status, body) = app.respond("5003", "welcome back").await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    assert_eq!(app.inbox("5003").len(), 1);
}

#[tokio::test]
async fn a_permanent_graph_error_fails_the_message_without_retrying() {
    let app = spawn_app().await;
    app.user_writes("5004", "hi", None).await;
    app.sandbox_post(
        "/faults",
        json!({"code": 100, "subcode": 2018001, "count": 1}),
    )
    .await;
    let (_, body) = app.respond("5004", "x").await;
    app.drain().await;
    let message = app.message(body["id"].as_str().expect("id")).await;
    assert_eq!(message["status"], "failed");
    assert_eq!(message["attempts"].as_array().map(Vec::len), Some(1));
    let v = app
        .handle()
        .herald
        .store
        .audit
        .verify()
        .await
        .expect("verify");
    assert!(v.ok, "{v:?}");
    assert!(
        v.entries >= 4,
        "decision, consent, attempt and status entries: {v:?}"
    );
}

#[tokio::test]
async fn a_change_that_lets_go_of_its_claim_leaves_the_message_free_for_the_next_claim() {
    use chrono::Duration;
    use herald::domain::lifecycle::{apply, Event};
    use herald::domain::MessageId;

    let app = spawn_app().await;
    app.user_writes("5004", "hi", None).await;
    let later = app.now() + Duration::hours(1);
    let (status, body) = app
        .send(
            json!({"recipient": {"psid": "5004"}, "category": "response",
                     "message": {"text": "later"}, "send_at": later.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = MessageId::parse(body["id"].as_str().expect("id")).expect("message id");
    let store = &app.handle().herald.store;
    // Claimed as the worker would an hour from now, then postponed: it stays in the outbox,
    // and the claim goes with the change.
    let (then, lease) = (later + Duration::minutes(1), Duration::minutes(5));
    assert_eq!(
        store
            .outbox
            .claim_due(then, 10, lease)
            .await
            .expect("claim")
            .into_iter()
            .map(|claimed| claimed.id)
            .collect::<Vec<_>>(),
        std::slice::from_ref(&id)
    );
    assert!(store.outbox.is_claimed(&id, then).await.expect("held"));
    let until = later + Duration::hours(1);
    let changed = store
        .messages
        .update_and_release(
            &id,
            Box::new(move |r| apply(r, Event::Postpone(until), then).ok()),
        )
        .await
        .expect("update and release");
    assert!(changed.is_some(), "postponed");
    assert!(
        !store.outbox.is_claimed(&id, then).await.expect("held"),
        "released with the change"
    );
    assert!(
        store
            .outbox
            .claim_due(then, 10, lease)
            .await
            .expect("claim")
            .is_empty(),
        "not due before its new moment"
    );
    let after = until + Duration::minutes(1);
    assert_eq!(
        store
            .outbox
            .claim_due(after, 10, lease)
            .await
            .expect("claim")
            .into_iter()
            .map(|claimed| claimed.id)
            .collect::<Vec<_>>(),
        [id],
        "free for the next claim at its new moment"
    );
}
