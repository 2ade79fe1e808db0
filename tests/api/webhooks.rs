use herald::messenger::sign;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp, APP_SECRET, VERIFY_TOKEN};

#[tokio::test]
async fn the_subscription_handshake_echoes_the_challenge_only_for_the_right_token() {
    let app = spawn_app().await;
    let url = |token: &str| {
        format!("{}/webhooks/messenger?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444", app.address)
    };
    let ok = app.http.get(url(VERIFY_TOKEN)).send().await.expect("get");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.expect("text"), "1158201444");
    let bad = app.http.get(url("guess")).send().await.expect("get");
    assert_eq!(bad.status().as_u16(), 403);
}

fn user_message(app: &TestApp, psid: &str, mid: &str) -> serde_json::Value {
    json!({"object": "page", "entry": [{"id": crate::helpers::PAGE_ID, "time": 1, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": crate::helpers::PAGE_ID},
        "timestamp": app.now().timestamp_millis(),
        "message": {"mid": mid, "text": "let me in"}}]}]})
}

#[tokio::test]
async fn a_forged_webhook_changes_nothing() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&user_message(&app, "4001", "m_forged")).expect("json");
    let post = |signature: Option<String>| {
        let mut req = app
            .http
            .post(format!("{}/webhooks/messenger", app.address))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(s) = signature {
            req = req.header("X-Hub-Signature-256", s);
        }
        req.send()
    };
    for signature in [
        None,
        Some(sign(b"not-the-app-secret", &body)),
        Some("sha256=00".into()),
    ] {
        let r = post(signature.clone()).await.expect("post");
        assert_eq!(r.status().as_u16(), 403, "{signature:?}");
    }
    let (status, _) = app.recipient("4001").await;
    assert_eq!(status, 404, "no recipient was created");
    app.consent("4001", "transactional", None).await;
    let (status, answer) = app.respond("4001", "hello?").await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (422, Some("outside_window"))
    );
    // The same body, signed with the app secret, is accepted and opens the window.
    let r = post(Some(sign(APP_SECRET.as_bytes(), &body)))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let (_, recipient) = app.recipient("4001").await;
    assert_eq!(recipient["window"]["open"], true, "{recipient}");
    let (status, answer) = app.evaluate_response("4001").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("allow")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_redelivered_event_is_applied_once() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&user_message(&app, "4002", "m_once")).expect("json");
    for _ in 0..3 {
        let r = app
            .http
            .post(format!("{}/webhooks/messenger", app.address))
            .header("X-Hub-Signature-256", sign(APP_SECRET.as_bytes(), &body))
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }
    let (_, recipient) = app.recipient("4002").await;
    assert_eq!(
        recipient["consents"].as_array().map(Vec::len),
        Some(1),
        "{recipient}"
    );
}

#[tokio::test]
async fn deliveries_and_reads_advance_the_message_status() {
    let app = spawn_app().await;
    app.user_writes("4003", "hi", None).await;
    let (_, body) = app.respond("4003", "hello").await;
    let id = body["id"].as_str().expect("id").to_owned();
    app.drain().await;
    assert_eq!(app.message(&id).await["status"], "sent");
    app.sandbox_post("/users/4003/deliveries", json!({})).await;
    assert_eq!(app.message(&id).await["status"], "delivered");
    app.sandbox_post("/users/4003/reads", json!({})).await;
    let message = app.message(&id).await;
    assert_eq!(message["status"], "read");
    let history: Vec<&str> = message["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["queued", "sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_parked_event_is_applied_when_retried() {
    let app = spawn_app().await;
    let event = json!({"page_id": crate::helpers::PAGE_ID, "event": {
        "sender": {"id": "4004"}, "recipient": {"id": crate::helpers::PAGE_ID},
        "timestamp": app.now().timestamp_millis(),
        "message": {"mid": "m_parked", "text": "I was parked"}}});
    app.handle()
        .herald
        .store
        .park_event(&event)
        .await
        .expect("park");
    let (status, _) = app.recipient("4004").await;
    assert_eq!(status, 404, "not applied yet");
    let applied = app
        .handle()
        .herald
        .retry_parked_events()
        .await
        .expect("retry");
    assert_eq!(applied, 1);
    let (_, recipient) = app.recipient("4004").await;
    assert_eq!(recipient["window"]["open"], true, "{recipient}");
    assert!(app
        .handle()
        .herald
        .store
        .parked_events(10)
        .await
        .expect("parked")
        .is_empty());
}

#[tokio::test]
async fn a_referral_is_kept_as_attribution_and_opens_the_window() {
    let app = spawn_app().await;
    app.sandbox_post(
        "/users/4005/referrals",
        json!({"ref": "spring-sale", "source": "SHORTLINK"}),
    )
    .await;
    let (_, recipient) = app.recipient("4005").await;
    assert_eq!(
        recipient["attributions"][0]["ref"], "spring-sale",
        "{recipient}"
    );
    assert_eq!(recipient["attributions"][0]["source"], "SHORTLINK");
    assert_eq!(recipient["window"]["open"], true);
    let (status, body) = app.respond("4005", "Welcome!").await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_checkbox_opt_in_lets_the_shop_send_the_receipt_to_the_user_ref() {
    let app = spawn_app().await;
    let answer = app
        .sandbox_post(
            "/checkbox",
            json!({"user_ref": "cart-7781", "ref": "checkout"}),
        )
        .await;
    assert_eq!(answer["webhook_status"], 200, "{answer}");
    let (status, body) = app
        .call(
            herald::domain::Role::Backend,
            "/v1/receipts",
            json!({
                "recipient": {"user_ref": "cart-7781"},
                "order": {"order_number": "C-1", "currency": "USD", "payment_method": "Visa",
                          "recipient_name": "Grace", "summary": {"total_cost": 10}}
            }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    let inbox = app.inbox("cart-7781");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].body["recipient"]["user_ref"], "cart-7781");
    app.assert_no_rejections();
}
