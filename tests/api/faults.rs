//! A sustained run against a Messenger that fails a share of the sends every way it can:
//! transient errors (1200, 2), rate limits (613 with and without the usage header), a 5xx, a
//! timeout and a dropped connection. Every accepted message must settle — sent, failed or
//! expired, with the reason on record — none lost, and none delivered twice.

use std::collections::HashMap;

use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp, TestOptions};

/// Each fault fails every n-th send, for the whole run.
fn faults() -> Vec<Value> {
    let forever = 1_000_000;
    vec![
        json!({"code": 1200, "subcode": 2018024, "every": 5, "count": forever}),
        json!({"code": 2, "every": 7, "count": forever}),
        json!({"code": 613, "every": 23, "count": forever}),
        json!({"code": 613, "every": 29, "count": forever, "usage_header": false}),
        json!({"code": 1, "http_status": 503, "every": 11, "count": forever}),
        json!({"code": 2, "every": 13, "count": forever, "delay_ms": 400}),
        json!({"code": 2, "every": 17, "count": forever, "drop_connection": true}),
    ]
}

async fn settle(app: &TestApp, ids: &[(String, String)]) -> Vec<Value> {
    // Retries come within milliseconds here; a few rounds see every message settle.
    let mut messages = Vec::new();
    for _ in 0..200 {
        app.drain().await;
        messages.clear();
        for (_, id) in ids {
            messages.push(app.message(id).await);
        }
        let waiting = messages
            .iter()
            .filter(|m| matches!(m["status"].as_str(), Some("queued" | "deferred")))
            .count();
        if waiting == 0 {
            break;
        }
    }
    messages
}

#[tokio::test]
async fn under_sustained_faults_every_message_settles_none_is_lost_and_none_goes_twice() {
    fault_run(40, 3).await;
}

/// The same for longer: `cargo test --test api -- --ignored soak` (README, "Tests").
#[tokio::test]
#[ignore = "a soak: minutes long"]
async fn soak_under_sustained_faults() {
    fault_run(200, 25).await;
}

/// `rounds` shipping updates to each of `recipients` people, against the faults above.
async fn fault_run(recipients: usize, rounds: usize) {
    let app = spawn_app_with(TestOptions {
        settings: Some(Box::new(|s| {
            // A Graph call that takes longer than this is a timeout, and tried again.
            s.delivery.request_timeout_ms = 150;
            s.delivery.max_attempts = 8;
        })),
        ..TestOptions::default()
    })
    .await;
    let psids: Vec<String> = (0..recipients).map(|i| format!("88{i:04}")).collect();
    for p in &psids {
        app.user_writes(p, "where is my parcel?", None).await;
    }
    for fault in faults() {
        app.sandbox_post("/faults", fault).await;
    }
    let mut ids = Vec::new();
    for round in 0..rounds {
        for p in &psids {
            let (status, body) = app
                .call(
                    Role::Backend,
                    "/v1/shipping-updates",
                    json!({"recipient": {"psid": p}, "order_number": format!("F-{round}"),
                           "status": "in_transit"}),
                )
                .await;
            assert_eq!(status, 202, "{body}");
            ids.push((p.clone(), body["id"].as_str().expect("id").to_owned()));
        }
    }
    let messages = settle(&app, &ids).await;

    let mut sent_to: HashMap<&str, usize> = HashMap::new();
    for ((psid, id), m) in ids.iter().zip(&messages) {
        match m["status"].as_str() {
            Some("sent") => *sent_to.entry(psid).or_default() += 1,
            Some("failed" | "expired") => {
                let last = m["attempts"].as_array().and_then(|a| a.last()).cloned();
                assert!(
                    last.is_some_and(|a| a["error"].is_string()),
                    "{id} settled without a reason on record: {m}"
                );
            }
            _ => panic!("{id} did not settle: {m}"),
        }
    }
    // What Messenger received is exactly what Herald records as sent: nothing lost, nothing
    // delivered twice (the faults fired before Messenger delivered anything).
    for p in &psids {
        assert_eq!(
            app.inbox(p).len(),
            sent_to.get(p.as_str()).copied().unwrap_or(0),
            "{p}: received vs recorded as sent"
        );
    }
    let stats = app.stats();
    assert!(
        stats.injected_faults >= 20,
        "the run met faults of every kind: {stats:?}"
    );
    let retried = messages
        .iter()
        .filter(|m| m["attempts"].as_array().is_some_and(|a| a.len() > 1))
        .count();
    assert!(retried > 0, "some messages needed a retry");
    let verified = app
        .handle()
        .herald
        .store
        .audit
        .verify()
        .await
        .expect("verify");
    assert!(verified.ok, "{verified:?}");
}
