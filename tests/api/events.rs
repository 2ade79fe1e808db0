//! Event endpoints and their delivery (API.md, "Events for business systems"): real receivers on
//! port 0 record what Herald posts; signatures are checked by the official `standardwebhooks`
//! Python package (pinned in tests/clients/standardwebhooks, installed into target/ by the
//! first test that needs it); time is the injected clock.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::{DateTime, Utc};
use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, test_moment, TestApp, TestOptions};

/// What a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Status(u16),
    /// Holds the request open far past Herald's 15 s.
    Hang,
}

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

impl Received {
    fn id(&self) -> &str {
        self.headers.get("webhook-id").map_or("", String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// An HTTP server on port 0 that records every request and answers as told.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let url = format!(
            "http://127.0.0.1:{}/hooks/herald",
            listener.local_addr().expect("addr").port()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let (s, a) = (Arc::clone(&seen), Arc::clone(&answer));
        let server = HttpServer::new(move || {
            let (s, a) = (Arc::clone(&s), Arc::clone(&a));
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (s, a) = (Arc::clone(&s), Arc::clone(&a));
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    s.lock().expect("seen").push(Received {
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let answer = *a.lock().expect("answer");
                    match answer {
                        Answer::Status(code) => HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(code).expect("status"),
                        )
                        .finish(),
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(120)).await;
                            HttpResponse::Ok().finish()
                        }
                    }
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url,
            seen,
            answer,
            server: handle,
        }
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().expect("seen").clone()
    }

    fn answer(&self, answer: Answer) {
        *self.answer.lock().expect("answer") = answer;
    }

    /// Waits (real time, at most `within`) until `n` requests have arrived.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.seen();
            if seen.len() >= n || Instant::now() > deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let server = self.server.clone();
        tokio::spawn(async move { server.stop(false).await });
    }
}

/// A gateway that may post events to this machine's receivers.
async fn events_app() -> TestApp {
    spawn_app_with(TestOptions {
        settings: Some(Box::new(|s| s.events.allow_private_networks = true)),
        ..TestOptions::default()
    })
    .await
}

/// Creates an endpoint as an admin; returns its id and secret.
async fn endpoint(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let (status, body) = app
        .call(
            Role::Admin,
            "/v1/event-endpoints",
            json!({"url": url, "events": events, "description": "the shop's backend"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"), "{body}");
    (body["id"].as_str().expect("id").to_owned(), secret)
}

/// Everything due to every endpoint attempted.
async fn drain_events(app: &TestApp) {
    app.handle().events.drain().await.expect("drain events");
}

/// A consent granted: the `consent.granted` event.
async fn grant(app: &TestApp, psid: &str) {
    app.consent(psid, "transactional", None).await;
}

async fn send_json(
    app: &TestApp,
    method: reqwest::Method,
    role: Role,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(app.token(role));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A virtual environment under target/ with the pinned `standardwebhooks`, made once.
fn install_standardwebhooks() -> PathBuf {
    crate::clients::python_venv(
        "standardwebhooks",
        "tests/clients/standardwebhooks/requirements.txt",
    )
}

/// Whether the official library verifies each delivery under `secret`, at the moment `now`.
async fn verified(secret: &str, now: DateTime<Utc>, deliveries: &[Received]) -> Vec<bool> {
    let request = json!({
        "secret": secret,
        "now": now.timestamp(),
        "deliveries": deliveries.iter().map(|d| json!({"headers": d.headers, "body": d.body})).collect::<Vec<_>>(),
    });
    let out = tokio::task::spawn_blocking(move || {
        let python = install_standardwebhooks();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients/standardwebhooks/verify.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run verify.py");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(request.to_string().as_bytes())
            .expect("write");
        child.wait_with_output().expect("verify.py")
    })
    .await
    .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    answer["verified"]
        .as_array()
        .expect("verified")
        .iter()
        .map(|v| v.as_bool().expect("bool"))
        .collect()
}

#[tokio::test]
async fn events_are_signed_so_that_the_official_standard_webhooks_library_verifies_them() {
    let receiver = Receiver::start(Answer::Status(204)).await;
    let app = events_app().await;
    grant(&app, "7001").await; // before the endpoint: not its business
    let (_, secret) = endpoint(&app, &receiver.url, &["consent.*"]).await;
    grant(&app, "7002").await;
    drain_events(&app).await;

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let event = seen[0].json();
    assert_eq!(event["type"], "consent.granted", "{event}");
    assert_eq!(event["data"]["psid"], "7002", "{event}");
    assert!(event["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("evt_")));
    assert_eq!(seen[0].id(), event["id"].as_str().expect("id"));
    assert_eq!(seen[0].headers["content-type"], "application/json");
    assert_eq!(
        seen[0].headers["webhook-timestamp"],
        app.now().timestamp().to_string()
    );
    assert_eq!(verified(&secret, app.now(), &seen).await, [true]);

    // A body changed on the way, or another secret, does not verify.
    let mut tampered = seen[0].clone();
    tampered.body = tampered.body.replace("7002", "7003");
    let other = herald::domain::endpoint::new_secret();
    assert_eq!(verified(&secret, app.now(), &[tampered]).await, [false]);
    assert_eq!(verified(&other, app.now(), &seen).await, [false]);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_the_same_webhook_id_after_about_5_s_then_5_min() {
    let receiver = Receiver::start(Answer::Status(500)).await;
    let app = events_app().await;
    let (id, _) = endpoint(&app, &receiver.url, &["*"]).await;
    grant(&app, "7101").await;
    drain_events(&app).await;
    let start = app.now();
    assert_eq!(receiver.seen().len(), 1);

    let at = |secs: i64| start + chrono::Duration::milliseconds(secs);
    app.set_time(at(4_900));
    drain_events(&app).await;
    assert_eq!(receiver.seen().len(), 1, "retried before 5 s");
    app.set_time(at(6_300));
    drain_events(&app).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "retried after about 5 s");
    assert_eq!(seen[0].id(), seen[1].id(), "the same webhook-id");

    app.set_time(at(6_300 + 299_000));
    drain_events(&app).await;
    assert_eq!(receiver.seen().len(), 2, "retried before 5 min");
    receiver.answer(Answer::Status(200));
    app.set_time(at(6_300 + 376_000));
    drain_events(&app).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3, "retried after about 5 min");
    assert_eq!(seen[2].id(), seen[0].id());
    app.set_time(at(86_400_000));
    drain_events(&app).await;
    assert_eq!(receiver.seen().len(), 3, "delivered: not sent again");

    let (status, attempts) = app
        .read(Role::Admin, &format!("/v1/event-endpoints/{id}/attempts"))
        .await;
    assert_eq!(status, 200, "{attempts}");
    let statuses: Vec<&str> = attempts["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["status"].as_str().expect("status"))
        .collect();
    assert_eq!(
        statuses,
        ["succeeded", "retrying", "retrying"],
        "{attempts}"
    );
    let first = &attempts["attempts"][2];
    assert_eq!(first["http_status"], 500, "{attempts}");
    assert_eq!(first["attempt"], 1, "{attempts}");
    let (_, failed) = app
        .read(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/attempts?status=failed&limit=1"),
        )
        .await;
    assert_eq!(
        failed["attempts"].as_array().map(Vec::len),
        Some(1),
        "{failed}"
    );
    let cursor = failed["next_cursor"].as_str().expect("a next page");
    let (_, next) = app
        .read(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/attempts?status=failed&cursor={cursor}"),
        )
        .await;
    assert_eq!(next["attempts"].as_array().map(Vec::len), Some(1), "{next}");
    let (_, succeeded) = app
        .read(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/attempts?status=succeeded"),
        )
        .await;
    assert_eq!(succeeded["attempts"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn replay_delivers_every_matching_event_since_a_moment_again_with_the_same_ids() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let app = events_app().await;
    grant(&app, "7201").await; // before the endpoint: a replay reaches it
    let (id, _) = endpoint(&app, &receiver.url, &["consent.granted"]).await;
    grant(&app, "7202").await;
    drain_events(&app).await;
    let first = receiver.seen();
    assert_eq!(first.len(), 1);

    let since = (test_moment() - chrono::Duration::seconds(1)).to_rfc3339();
    let (status, body) = app
        .call(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/replay"),
            json!({"since": since}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"events": 2}));
    drain_events(&app).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let psids: Vec<Value> = seen[1..]
        .iter()
        .map(|r| r.json()["data"]["psid"].clone())
        .collect();
    assert!(
        psids.contains(&json!("7201")) && psids.contains(&json!("7202")),
        "{psids:?}"
    );
    assert!(
        seen[1..].iter().any(|r| r.id() == first[0].id()),
        "the same id again"
    );

    // Types narrow a replay; a moment after everything finds nothing.
    let (_, none) = app
        .call(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/replay"),
            json!({"since": since, "types": ["message.*"]}),
        )
        .await;
    assert_eq!(none, json!({"events": 0}));
    let later = (app.now() + chrono::Duration::hours(1)).to_rfc3339();
    let (_, none) = app
        .call(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/replay"),
            json!({"since": later}),
        )
        .await;
    assert_eq!(none, json!({"events": 0}));
    let (status, _) = app
        .call(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/replay"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_rotated_out_secret_signs_beside_the_new_one_for_24_hours_then_only_the_new_one() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let app = events_app().await;
    let (id, old) = endpoint(&app, &receiver.url, &["consent.*"]).await;
    let (status, rotated) = app
        .call(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);

    grant(&app, "7301").await;
    drain_events(&app).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let signatures = seen[0].headers["webhook-signature"].split(' ').count();
    assert_eq!(signatures, 2, "{:?}", seen[0].headers);
    assert_eq!(verified(&old, app.now(), &seen).await, [true]);
    assert_eq!(verified(&new, app.now(), &seen).await, [true]);

    app.set_time(app.now() + chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    grant(&app, "7302").await;
    drain_events(&app).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    let later = &seen[1..];
    assert_eq!(verified(&new, app.now(), later).await, [true]);
    assert_eq!(verified(&old, app.now(), later).await, [false]);
}

#[tokio::test]
async fn a_hung_endpoint_delays_neither_another_endpoint_nor_the_messenger_sends() {
    let hung = Receiver::start(Answer::Hang).await;
    let good = Receiver::start(Answer::Status(200)).await;
    let app = events_app().await;
    endpoint(&app, &hung.url, &["*"]).await;
    endpoint(&app, &good.url, &["message.*"]).await;
    grant(&app, "7400").await; // something for the hung endpoint to hang on
    app.user_writes("7401", "where is my order?", None).await;

    // The hung endpoint is holding requests open by now.
    assert!(!hung.wait_for(1, Duration::from_secs(5)).await.is_empty());
    let started = Instant::now();
    let (status, body) = app.respond("7401", "It ships today.").await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    let id = body["id"].as_str().expect("id");
    assert_eq!(app.message(id).await["status"], "sent");
    assert_eq!(app.inbox("7401").len(), 1);
    // The other endpoint hears of it from its own lane, while the hung one still waits.
    let heard = |seen: &[Received]| {
        seen.iter()
            .any(|r| r.json()["type"] == "message.sent" && r.json()["data"]["id"] == id)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !heard(&good.seen()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        heard(&good.seen()),
        "the good endpoint never heard: {:?}",
        good.seen()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}: the hung endpoint held the others",
        started.elapsed()
    );
}

#[tokio::test]
async fn urls_on_internal_addresses_are_refused_unless_private_networks_are_allowed() {
    let app = crate::helpers::spawn_app().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://192.168.1.20/hook",
        "http://172.16.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let r = app
            .post(
                "/v1/event-endpoints",
                Some(&app.token(Role::Admin)),
                &json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(r.status().as_u16(), 400, "{url} must be refused");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{url}"
        );
        let body: Value = r.json().await.expect("json");
        assert!(
            body.to_string().contains("allow_private_networks"),
            "{url}: {body}"
        );
    }
    for (url, why) in [
        ("ftp://example.com/", "not http"),
        ("https://user:pw@example.com/", "credentials"),
        ("not a url", "not a URL"),
    ] {
        let (status, _) = app
            .call(
                Role::Admin,
                "/v1/event-endpoints",
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(status, 400, "{why}");
    }
    // A public address passes (a literal: no DNS needed), and a change to a private one is
    // refused too.
    let (status, body) = app
        .call(
            Role::Admin,
            "/v1/event-endpoints",
            json!({"url": "https://93.184.216.34/hooks", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().expect("id");
    let (status, _) = send_json(
        &app,
        reqwest::Method::PATCH,
        Role::Admin,
        &format!("/v1/event-endpoints/{id}"),
        Some(json!({"url": "http://127.0.0.1/x"})),
    )
    .await;
    assert_eq!(status, 400);

    // With `[events] allow_private_networks = true` (as `serve --sandbox` sets), they pass.
    let allowed = events_app().await;
    let (status, body) = allowed
        .call(
            Role::Admin,
            "/v1/event-endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn only_administrators_manage_event_endpoints() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let app = events_app().await;
    let (id, _) = endpoint(&app, &receiver.url, &["*"]).await;
    let since = test_moment().to_rfc3339();
    use reqwest::Method;
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/event-endpoints".into(),
            Some(json!({"url": receiver.url, "events": ["*"]})),
        ),
        (Method::GET, "/v1/event-endpoints".into(), None),
        (Method::GET, format!("/v1/event-endpoints/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/event-endpoints/{id}"),
            Some(json!({"description": "changed"})),
        ),
        (
            Method::POST,
            format!("/v1/event-endpoints/{id}/rotate-secret"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1/event-endpoints/{id}/test"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/v1/event-endpoints/{id}/replay"),
            Some(json!({"since": since})),
        ),
        (
            Method::GET,
            format!("/v1/event-endpoints/{id}/attempts"),
            None,
        ),
        (Method::DELETE, format!("/v1/event-endpoints/{id}"), None),
    ];
    for role in [Role::Backend, Role::Marketer, Role::Compliance] {
        for (method, path, body) in &calls {
            let (status, answer) = send_json(&app, method.clone(), role, path, body.clone()).await;
            assert_eq!(status, 403, "{role} {method} {path}: {answer}");
        }
    }
    let expected = [201, 200, 200, 200, 200, 200, 202, 200, 204];
    for ((method, path, body), want) in calls.iter().zip(expected) {
        let (status, answer) =
            send_json(&app, method.clone(), Role::Admin, path, body.clone()).await;
        assert_eq!(status, want, "admin {method} {path}: {answer}");
    }
    let (status, _) = app
        .read(Role::Admin, &format!("/v1/event-endpoints/{id}"))
        .await;
    assert_eq!(status, 404, "deleted");
    let r = app.get("/v1/event-endpoints", None).await;
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn the_secret_is_shown_once_and_never_in_listings_reads_or_the_audit_log() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let app = events_app().await;
    let (id, secret) = endpoint(&app, &receiver.url, &["*"]).await;
    let (_, rotated) = app
        .call(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/rotate-secret"),
            json!({}),
        )
        .await;
    let new = rotated["secret"].as_str().expect("secret").to_owned();
    let (_, list) = app.read(Role::Admin, "/v1/event-endpoints").await;
    let (_, one) = app
        .read(Role::Admin, &format!("/v1/event-endpoints/{id}"))
        .await;
    assert_eq!(list["endpoints"][0]["id"], id.as_str());
    assert!(one.get("secret").is_none(), "{one}");
    assert!(one["previous_secret_valid_until"].is_string(), "{one}");
    let export = app
        .get("/v1/audit/export", Some(&app.token(Role::Compliance)))
        .await
        .text()
        .await
        .expect("export");
    let (_, test) = app
        .call(
            Role::Admin,
            &format!("/v1/event-endpoints/{id}/test"),
            json!({}),
        )
        .await;
    assert_eq!(test["status"], "succeeded", "{test}");
    let (_, attempts) = app
        .read(Role::Admin, &format!("/v1/event-endpoints/{id}/attempts"))
        .await;
    for s in [&secret, &new] {
        let bare = s.trim_start_matches("whsec_");
        for (what, text) in [
            ("list", list.to_string()),
            ("read", one.to_string()),
            ("audit", export.clone()),
            ("attempts", attempts.to_string()),
        ] {
            assert!(!text.contains(bare), "the secret is in the {what}: {text}");
        }
    }
    // The audit log tells who made and rotated the endpoint, by its id.
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .filter(|e: &Value| e["kind"] == "endpoint")
        .collect();
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|e| e["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes, ["created", "secret_rotated"], "{lines:?}");
    assert!(lines
        .iter()
        .all(|e| e["detail"] == id.as_str() && e["client"] == "test-admin"));
    // The test event arrived, signed with the new secret.
    let seen = receiver.seen();
    let test_event = seen
        .iter()
        .find(|r| r.json()["type"] == "endpoint.test")
        .expect("test event");
    assert_eq!(
        verified(&new, app.now(), std::slice::from_ref(test_event)).await,
        [true]
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_5_days_is_disabled_and_the_others_hear_of_it() {
    let dead = Receiver::start(Answer::Status(503)).await;
    let listener = Receiver::start(Answer::Status(200)).await;
    let app = events_app().await;
    let (dead_id, _) = endpoint(&app, &dead.url, &["consent.*"]).await;
    endpoint(&app, &listener.url, &["endpoint.disabled"]).await;
    grant(&app, "7501").await;
    drain_events(&app).await;
    let (_, read) = app
        .read(Role::Admin, &format!("/v1/event-endpoints/{dead_id}"))
        .await;
    assert!(read["failing_since"].is_string(), "{read}");
    assert_eq!(read["disabled"], false);

    // Four days on, still failing: not yet.
    app.set_time(app.now() + chrono::Duration::days(4));
    grant(&app, "7502").await;
    drain_events(&app).await;
    assert!(listener.seen().is_empty());
    app.set_time(test_moment() + chrono::Duration::days(5) + chrono::Duration::seconds(1));
    grant(&app, "7503").await;
    drain_events(&app).await;
    let (_, read) = app
        .read(Role::Admin, &format!("/v1/event-endpoints/{dead_id}"))
        .await;
    assert_eq!(read["disabled"], true, "{read}");
    let seen = listener.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let event = seen[0].json();
    assert_eq!(event["type"], "endpoint.disabled");
    assert_eq!(event["data"]["id"], dead_id.as_str());

    // Disabled: nothing more is sent to it; re-enabled, it starts afresh.
    let before = dead.seen().len();
    grant(&app, "7504").await;
    drain_events(&app).await;
    assert_eq!(dead.seen().len(), before);
    let (status, body) = send_json(
        &app,
        reqwest::Method::PATCH,
        Role::Admin,
        &format!("/v1/event-endpoints/{dead_id}"),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], false);
    assert!(body.get("failing_since").is_none(), "{body}");
}

#[tokio::test]
async fn metrics_show_each_endpoints_deliveries_retries_and_oldest_undelivered_event() {
    let dead = Receiver::start(Answer::Status(500)).await;
    let good = Receiver::start(Answer::Status(200)).await;
    let app = events_app().await;
    let (dead_id, _) = endpoint(&app, &dead.url, &["consent.*"]).await;
    let (good_id, _) = endpoint(&app, &good.url, &["consent.*"]).await;
    grant(&app, "7601").await;
    drain_events(&app).await;
    app.set_time(app.now() + chrono::Duration::seconds(3));
    let text = crate::helpers::metrics_text(&app.http, &app.address).await;
    for line in [
        format!("herald_event_endpoint_delivered_total{{endpoint=\"{good_id}\"}} 1"),
        format!("herald_event_endpoint_retrying{{endpoint=\"{dead_id}\"}} 1"),
        format!("herald_event_endpoint_retrying{{endpoint=\"{good_id}\"}} 0"),
        format!("herald_event_endpoint_oldest_undelivered_age_seconds{{endpoint=\"{dead_id}\"}} 3"),
        format!("herald_event_endpoint_oldest_undelivered_age_seconds{{endpoint=\"{good_id}\"}} 0"),
    ] {
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_event_endpoint_routes() {
    let app = crate::helpers::spawn_app().await;
    let doc: Value = app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    for path in [
        "/v1/event-endpoints",
        "/v1/event-endpoints/{id}",
        "/v1/event-endpoints/{id}/rotate-secret",
        "/v1/event-endpoints/{id}/test",
        "/v1/event-endpoints/{id}/replay",
        "/v1/event-endpoints/{id}/attempts",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert!(doc["paths"]["/v1/event-endpoints/{id}"]["patch"].is_object());
    assert!(doc["paths"]["/v1/event-endpoints/{id}"]["delete"].is_object());
}

#[tokio::test]
async fn kill_9_with_undelivered_events_then_restart_delivers_every_event() {
    let receiver = Receiver::start(Answer::Status(503)).await;
    let launched = crate::crash::launch(
        &crate::helpers::policy_dir(),
        "\n[events]\nallow_private_networks = true\n",
    )
    .await;
    let crate::crash::Launched {
        dir,
        sandbox,
        mut gateway,
        log,
    } = launched;
    let http = reqwest::Client::new();
    let admin = crate::crash::client_token("ops", Role::Admin);
    let backend = crate::crash::backend_token();
    let created: Value = http
        .post(format!("{}/v1/event-endpoints", gateway.base))
        .bearer_auth(&admin)
        .json(&json!({"url": receiver.url, "events": ["consent.granted"]}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    let psids: Vec<String> = (0..5).map(|i| format!("78{i:02}")).collect();
    for psid in &psids {
        crate::crash::customer(
            &http,
            &sandbox.base_url(),
            &gateway.base,
            &backend,
            psid,
            "transactional",
        )
        .await;
    }
    // Every event was tried once and failed: each waits for its retry when the gateway dies.
    let tried = receiver
        .wait_for(psids.len(), Duration::from_secs(10))
        .await;
    assert_eq!(tried.len(), psids.len(), "{tried:?}");
    // ... and recorded as waiting for their retry (a kill before that sends them again from
    // the cursor, which the next lines would not tell apart).
    let endpoint = created["id"].as_str().expect("id");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempts: Value = http
            .get(format!(
                "{}/v1/event-endpoints/{endpoint}/attempts?status=failed",
                gateway.base
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("attempts")
            .json()
            .await
            .expect("json");
        if attempts["attempts"].as_array().map_or(0, Vec::len) == psids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "attempts never recorded: {attempts}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.child.kill().expect("kill -9");
    let _ = gateway.child.wait();

    receiver.answer(Answer::Status(200));
    let config = dir.path().join("herald.toml");
    let _gateway = crate::crash::start(&config, &log).await;
    let all = receiver
        .wait_for(2 * psids.len(), Duration::from_secs(30))
        .await;
    let delivered: std::collections::BTreeSet<String> = all[psids.len()..]
        .iter()
        .map(|r| r.json()["data"]["psid"].as_str().expect("psid").to_owned())
        .collect();
    assert_eq!(
        delivered,
        psids.iter().cloned().collect(),
        "every event delivered after the restart"
    );
    let ids_before: std::collections::BTreeSet<&str> = tried.iter().map(Received::id).collect();
    let ids_after: std::collections::BTreeSet<&str> =
        all[psids.len()..].iter().map(Received::id).collect();
    assert_eq!(ids_before, ids_after, "the same webhook-ids");
    // The secret never reached the log (which is at debug level).
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        !text.contains(secret.trim_start_matches("whsec_")),
        "the secret is in the log"
    );
    drop(sandbox);
}

#[tokio::test]
async fn the_address_is_checked_again_at_delivery_so_a_name_turning_internal_is_not_reached() {
    let receiver = Receiver::start(Answer::Status(200)).await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .expect("port")
        .split('/')
        .next()
        .expect("port");
    // Made while internal addresses were allowed; the gateway then restarts without that.
    let mut app = events_app().await;
    let (literal, _) = endpoint(&app, &receiver.url, &["*"]).await;
    let by_name = format!("http://localhost:{port}/by-name");
    let (named, _) = endpoint(&app, &by_name, &["*"]).await;
    app.restart().await;

    grant(&app, "7701").await;
    drain_events(&app).await;
    assert!(receiver.seen().is_empty(), "{:?}", receiver.seen());
    for (id, why) in [
        (&literal, "allow_private_networks"),
        (&named, "resolves only to internal addresses"),
    ] {
        let (_, attempts) = app
            .read(Role::Admin, &format!("/v1/event-endpoints/{id}/attempts"))
            .await;
        let first = &attempts["attempts"][0];
        assert_eq!(first["status"], "retrying", "{attempts}");
        assert!(
            first["error"].as_str().is_some_and(|e| e.contains(why)),
            "{why}: {attempts}"
        );
    }
}

#[tokio::test]
async fn serve_sandbox_allows_endpoints_on_this_machine() {
    // The console link in the banner carries an admin token.
    let (mut child, link) = crate::helpers::serve_sandbox(|l| l.contains("/console#token=")).await;
    let outcome = async {
        let link = link.expect("a console link");
        let (page, token) = link.trim().split_once("#token=").expect("token");
        let base = page.replace("/console", "");
        let http = reqwest::Client::new();
        let create = || {
            http.post(format!("{base}/v1/event-endpoints"))
                .bearer_auth(token)
                .json(&json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}))
                .send()
        };
        let mut status = 0;
        for _ in 0..400 {
            if let Ok(r) = create().await {
                status = r.status().as_u16();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, 201, "the sandbox allows a loopback endpoint");
    };
    let result = tokio::time::timeout(Duration::from_secs(30), outcome).await;
    let _ = child.kill();
    let _ = child.wait();
    result.expect("the sandbox answered in time");
}

/// Posts `bytes` to Herald's Messenger webhook, signed with the app secret as Messenger signs.
async fn messenger_posts(app: &TestApp, bytes: &[u8]) {
    let status = app
        .http
        .post(format!("{}/webhooks/messenger", app.address))
        .header("content-type", "application/json")
        .header(
            "X-Hub-Signature-256",
            herald::messenger::sign(crate::helpers::APP_SECRET.as_bytes(), bytes),
        )
        .body(bytes.to_vec())
        .send()
        .await
        .expect("webhook")
        .status();
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_messenger_format_endpoint_gets_messengers_own_bytes_and_signature_once_per_post() {
    let app = events_app().await;
    let helpdesk = Receiver::start(Answer::Status(200)).await;
    let postbacks_only = Receiver::start(Answer::Status(200)).await;
    for (receiver, events) in [
        (&helpdesk, "inbound.*"),
        (&postbacks_only, "inbound.postback"),
    ] {
        let (status, body) = app
            .call(
                Role::Admin,
                "/v1/event-endpoints",
                json!({"url": receiver.url, "events": [events], "format": "messenger"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // A POST with a message and a reaction, spaced as Messenger spaces it (not as Herald would
    // encode it again); then one with only a delivery receipt, which is no inbound event.
    let at = app.now().timestamp_millis();
    let page = crate::helpers::PAGE_ID;
    let event = |ms: i64, what: &str, value: Value| {
        let mut e =
            json!({"sender": {"id": "7301"}, "recipient": {"id": page}, "timestamp": at + ms});
        e[what] = value;
        e
    };
    let first = serde_json::to_vec_pretty(&json!({"object": "page", "entry": [{"id": page, "time": at,
        "messaging": [event(0, "message", json!({"mid": "m_h1", "text": "Wo ist mein Paket? ✉"})),
                      event(1, "reaction", json!({"mid": "m_h1", "reaction": "love", "action": "react"}))]}]}))
    .expect("json");
    let receipt = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": page, "time": at,
        "messaging": [event(2, "delivery", json!({"mids": [], "watermark": at}))]}]}))
    .expect("json");
    messenger_posts(&app, &first).await;
    messenger_posts(&app, &receipt).await;
    // Messenger redelivers the first POST: nothing new happened, nothing is forwarded again.
    messenger_posts(&app, &first).await;
    drain_events(&app).await;

    let seen = helpdesk.seen();
    assert_eq!(seen.len(), 1, "one forward for one POST: {seen:?}");
    assert_eq!(seen[0].body.as_bytes(), first.as_slice(), "byte for byte");
    assert_eq!(
        seen[0]
            .headers
            .get("x-hub-signature-256")
            .map(String::as_str),
        Some(herald::messenger::sign(crate::helpers::APP_SECRET.as_bytes(), &first).as_str()),
        "Messenger's own signature, which the helpdesk verifies with the app secret"
    );
    assert!(seen[0].id().starts_with("evt_"), "{:?}", seen[0].headers);
    assert!(
        postbacks_only.seen().is_empty(),
        "a POST without a postback is not for an endpoint that hears only postbacks"
    );
}
