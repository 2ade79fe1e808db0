//! Security as tests: quotas, other clients' messages, the headers on every answer. (The JWT
//! matrix is in `auth.rs`.)

use herald::domain::Role;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with, TestOptions};

fn response(psid: &str) -> serde_json::Value {
    json!({"recipient": {"psid": psid}, "category": "response", "message": {"text": "hi"}})
}

#[tokio::test]
async fn a_client_over_its_configured_quota_gets_429_with_retry_after() {
    let app = spawn_app_with(TestOptions {
        client_quota: Some(2),
        ..TestOptions::default()
    })
    .await;
    let token = app.token(Role::Backend);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let r = app
            .post("/v1/messages", Some(&token), &response("4242"))
            .await;
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 429 {
            retry_after = r.headers().get("retry-after").cloned();
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
    }
    // The policy denies (422: no consent); what matters is that the quota cut in after 2.
    assert_eq!(statuses, [422, 422, 429, 429]);
    let secs: u64 = retry_after
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(secs >= 1, "Retry-After {secs}");
    // Another client has its own quota.
    let other = app
        .keys
        .issue(
            "other-shop",
            Role::Backend,
            std::time::Duration::from_secs(60),
        )
        .expect("token");
    let r = app
        .post("/v1/messages", Some(&other), &response("4242"))
        .await;
    assert_eq!(r.status().as_u16(), 422);
}

#[tokio::test]
async fn a_client_cannot_read_or_cancel_another_clients_message() {
    let app = spawn_app().await;
    app.create_user("4242").await;
    app.consent("4242", "transactional", None).await;
    let (status, body) = app.receipt("4242", "A-1").await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    let other = app
        .keys
        .issue(
            "another-shop",
            Role::Backend,
            std::time::Duration::from_secs(60),
        )
        .expect("token");
    let r = app.get(&format!("/v1/messages/{id}"), Some(&other)).await;
    assert_eq!(
        r.status().as_u16(),
        404,
        "another client's message does not exist for it"
    );
    let r = app
        .post(
            &format!("/v1/messages/{id}/cancel"),
            Some(&other),
            &json!({}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 404);
    let r = app
        .get(
            &format!("/v1/messages/{id}"),
            Some(&app.token(Role::Backend)),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200, "its own client reads it");
    app.drain().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    let backend = app.token(Role::Backend);
    let answers = vec![
        (
            "202",
            app.post("/v1/messages", Some(&backend), &response("1"))
                .await,
        ),
        ("401", app.post("/v1/messages", None, &response("1")).await),
        (
            "400",
            app.post("/v1/consents", Some(&backend), &json!({"scope": 1}))
                .await,
        ),
        ("404 route", app.get("/nowhere", None).await),
        (
            "404 message",
            app.get("/v1/messages/msg_nope", Some(&backend)).await,
        ),
        ("healthz", app.get("/healthz", None).await),
        ("metrics", app.get("/metrics", None).await),
        ("openapi", app.get("/openapi.json", None).await),
        ("docs", app.get("/docs", None).await),
        (
            "webhook 403",
            app.post("/webhooks/messenger", None, &json!({})).await,
        ),
        (
            "graph",
            app.post("/graph/v21.0/me/messages", None, &json!({})).await,
        ),
    ];
    for (what, r) in answers {
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["x-frame-options"], "DENY", "{what}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("frame-ancestors 'none'"),
            "{what}"
        );
        assert_eq!(h["cache-control"], "no-store", "{what}");
    }
}
