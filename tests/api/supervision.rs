//! Background tasks are supervised: a panic is caught, counted and the task started again;
//! `/readyz` says so while one is down; shutdown never waits on a send that died; a page's
//! pause after Messenger's rate limit outlives a restart; and what Messenger or a policy file
//! sends cannot stop the real binary.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use herald::domain::Role;
use serde_json::{json, Value};

use crate::crash::{
    accept_shipping_update, backend_token, client_token, launch, until_sent, Launched,
};
use crate::helpers::{metric, policy_copy, policy_version, spawn_app, spawn_app_with, TestOptions};

/// Polls `check` every 20 ms until it holds; fails after `within`, saying `what`.
async fn until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /readyz`: its status and body.
async fn readyz(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let r = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_background_task_that_panics_is_restarted_counted_and_reported_by_readyz() {
    let app = spawn_app().await;
    let tasks = app.handle().herald.tasks.clone();
    assert_eq!(readyz(&app.http, &app.address).await.0, 200);

    // The worker's loop dies four times (0.1 + 0.2 + 0.4 + 0.8 s of back-off in all): while it
    // waits for a restart, /readyz says which task is down.
    tasks.inject_panics("worker", 4);
    app.handle().herald.outbox_wake.notify_one();
    until(
        Duration::from_secs(10),
        "/readyz never reported the worker down",
        || async {
            let (status, body) = readyz(&app.http, &app.address).await;
            status == 503
                && body["status"] == "not_ready"
                && body["tasks"]["worker"]["state"] == "restarting"
        },
    )
    .await;
    // Between two of its deaths the worker runs a moment: it is back once all four are spent.
    until(
        Duration::from_secs(20),
        "the worker never came back",
        || async {
            let (status, body) = readyz(&app.http, &app.address).await;
            status == 200 && body["tasks"]["worker"]["restarts"] == 4
        },
    )
    .await;
    let (_, body) = readyz(&app.http, &app.address).await;
    assert_eq!(body["tasks"]["worker"]["state"], "running", "{body}");
    assert!(
        body["tasks"]["worker"].get("last_panic").is_none(),
        "a panic's text is logged, not served: {body}"
    );
    assert!(
        tasks.health()["worker"]
            .last_panic
            .as_deref()
            .is_some_and(|p| p.contains("injected")),
        "the supervisor keeps the last panic's message"
    );
    assert_eq!(
        metric(
            &app.http,
            &app.address,
            r#"herald_task_restarts_total{task="worker"}"#
        )
        .await,
        4.0
    );

    // The restarted loop delivers on its own: nothing here drains the outbox.
    app.consent("7001", "transactional", None).await;
    app.create_user("7001").await;
    let (status, body) = app.receipt("7001", "R-1").await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    // Sent, not only claimed (a claimed message reads `sending` before Messenger has it).
    until(
        Duration::from_secs(10),
        "the restarted worker sent nothing",
        || async {
            let status = app.message(&id).await["status"].clone();
            ["sent", "delivered", "read"].contains(&status.as_str().unwrap_or_default())
        },
    )
    .await;
    assert_eq!(app.inbox("7001").len(), 1);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_send_that_panicked() {
    let app = spawn_app().await;
    app.consent("7002", "transactional", None).await;
    app.create_user("7002").await;
    app.handle().herald.tasks.inject_panics("delivery", 1);
    let (status, body) = app.receipt("7002", "R-2").await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    // The send dies; draining returns (nothing counts as still in flight) ...
    tokio::time::timeout(Duration::from_secs(10), app.drain_now())
        .await
        .expect("a send that panicked is no longer in flight");
    assert_eq!(
        metric(
            &app.http,
            &app.address,
            r#"herald_task_restarts_total{task="delivery"}"#
        )
        .await,
        1.0
    );
    assert!(app.inbox("7002").is_empty(), "the panicked send went out");
    assert_eq!(
        app.message(&id).await["status"],
        "queued",
        "nothing is lost"
    );
    // ... and so does shutdown: it was waiting for ever on the send that died.
    let stopped = tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("shutdown finished");
    // The message is tried again a minute later, by the next process.
    let app = spawn_app_with(TestOptions {
        data: Some(stopped),
        ..TestOptions::default()
    })
    .await;
    app.create_user("7002").await;
    app.set_time(app.now() + TimeDelta::minutes(2));
    app.drain_now().await;
    assert_eq!(app.inbox("7002").len(), 1);
}

#[tokio::test]
async fn a_message_whose_send_keeps_panicking_fails_after_its_third_panic() {
    let app = spawn_app().await;
    app.consent("7003", "transactional", None).await;
    app.create_user("7003").await;
    app.handle().herald.tasks.inject_panics("delivery", 3);
    let (status, body) = app.receipt("7003", "R-5").await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    for attempt in 1..=3 {
        app.drain_now().await;
        let m = app.message(&id).await;
        let expected = if attempt < 3 { "queued" } else { "failed" };
        assert_eq!(m["status"], expected, "after panic {attempt}: {m}");
        app.set_time(app.now() + TimeDelta::minutes(2));
    }
    app.drain_now().await;
    assert!(
        app.inbox("7003").is_empty(),
        "a message that keeps panicking is not sent"
    );
    let m = app.message(&id).await;
    assert!(
        m.to_string().contains("not tried again"),
        "the attempt says why: {m}"
    );
}

#[tokio::test]
async fn a_pages_pause_after_a_rate_limit_outlives_a_restart() {
    // Retries may wait as long as Messenger asks, up to an hour.
    let mut app = spawn_app_with(TestOptions {
        settings: Some(Box::new(|s| s.delivery.retry_max_ms = 3_600_000)),
        ..TestOptions::default()
    })
    .await;
    for psid in ["7101", "7102"] {
        app.consent(psid, "transactional", None).await;
        app.create_user(psid).await;
    }
    app.sandbox_post(
        "/faults",
        json!({"code": 613, "count": 1, "retry_after": 600}),
    )
    .await;
    let (status, _) = app.receipt("7101", "R-3").await;
    assert_eq!(status, 202);
    app.drain_now().await;
    assert_eq!(app.stats().injected_faults, 1, "the 613 was answered");

    // A new process (on PostgreSQL: another instance) holds the page back too.
    app.restart().await;
    let (status, body) = app.receipt("7102", "R-4").await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    app.drain_now().await;
    assert!(
        app.inbox("7102").is_empty(),
        "a send went to a page Messenger asked to wait"
    );
    assert_eq!(app.message(&id).await["status"], "queued");

    // Once the pause is over, both go.
    app.set_time(app.now() + TimeDelta::minutes(11));
    app.drain_now().await;
    assert_eq!(app.inbox("7101").len(), 1);
    assert_eq!(app.inbox("7102").len(), 1);
}

#[tokio::test]
async fn hostile_answers_and_policy_files_do_not_stop_the_real_binary() {
    let policy = policy_copy(|text| text.to_owned());
    // The directory (the store, the log) lives as long as the test.
    let Launched {
        dir: _dir,
        sandbox,
        gateway,
        log,
    } = launch(policy.path(), "").await;
    let http = reqwest::Client::new();
    let token = backend_token();
    let base = gateway.base.clone();

    // Messenger asks for a wait of 10^9 s (a 613) and of 10^15 s (a 1200): the worker waits at
    // most `retry_max_ms` (200 ms here), does not panic, and both messages go.
    for (i, code) in [613, 1200].into_iter().enumerate() {
        http.post(format!("{}/sandbox/faults", sandbox.base_url()))
            .json(&json!({"code": code, "count": 1, "retry_after": 10u64.pow(9 + 6 * i as u32)}))
            .send()
            .await
            .expect("fault");
        let psid = format!("720{i}");
        let id =
            accept_shipping_update(&http, &sandbox.base_url(), &base, &token, &psid, "S-1").await;
        let deadline = Instant::now() + Duration::from_secs(20);
        until_sent(&http, &gateway, &token, &id, deadline).await;
    }

    // A policy file the reader once panicked on, then a good one: SIGHUP reloads still work.
    let admin = client_token("ops", Role::Admin);
    let before = policy_version(&http, &base, &admin).await;
    let default = policy.path().join("default.toml");
    let good = std::fs::read_to_string(&default).expect("policy");
    std::fs::write(
        &default,
        format!("{good}\n[[receipt.outside_window]]\nuntil = \"2026-04-2ä7\"\n"),
    )
    .expect("write");
    let hangup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &gateway.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    };
    hangup();
    // Signals that arrive together count once: the next is sent after this one was handled.
    until(
        Duration::from_secs(10),
        "the bad policy's SIGHUP was never handled",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("the policy was not reloaded")
        },
    )
    .await;
    std::fs::write(&default, format!("{good}\n# changed\n")).expect("write");
    hangup();
    until(
        Duration::from_secs(10),
        "SIGHUP no longer reloads the policy",
        || async { policy_version(&http, &base, &admin).await != before },
    )
    .await;
    let (status, body) = readyz(&http, &base).await;
    assert_eq!(status, 200, "{body}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("panicked"), "nothing panicked:\n{text}");
}
