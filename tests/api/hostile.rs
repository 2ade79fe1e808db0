//! Hostile input: property tests over every JSON body and the webhook parser. Whatever arrives,
//! Herald does not panic and does not answer 500; a refused body is a 400 problem that says
//! what is wrong. Oversized bodies are refused with 413, deeply nested JSON with 400.

use herald::domain::Role;
use herald::messenger::sign;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestOptions, APP_SECRET};

/// Field names of Herald's bodies and Messenger's payloads, so that generated objects often
/// hit a real field with a wrong value rather than only unknown keys.
const KEYS: &[&str] = &[
    "recipient",
    "psid",
    "user_ref",
    "id",
    "category",
    "message",
    "text",
    "attachment",
    "quick_replies",
    "page_id",
    "send_at",
    "expires_at",
    "utility_template",
    "order",
    "order_number",
    "currency",
    "summary",
    "total_cost",
    "elements",
    "price",
    "status",
    "tracking_url",
    "scope",
    "source",
    "evidence",
    "timezone",
    "email",
    "name",
    "audience",
    "psids",
    "segment",
    "rollout",
    "guard",
    "first_percent",
    "hold",
    "at",
    "role",
    "object",
    "entry",
    "messaging",
    "sender",
    "timestamp",
    "delivery",
    "read",
    "watermark",
    "mids",
    "optin",
    "postback",
    "payload",
    "referral",
    "ref",
];

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[0-9]{1,20}".prop_map(Value::from),
        prop_oneof![
            Just("2026-11-25T12:00:00Z"),
            Just("response"),
            Just("marketing"),
            Just("EUR"),
            Just("1e400"),
            Just("-1"),
            Just(""),
            // Dates at and past the ends of what a date type holds.
            Just("+262142-01-01T00:00:00Z"),
            Just("9999-12-31T23:59:59Z"),
            Just("0000-01-01T00:00:00Z"),
            Just("1000000y"),
            Just("NaN"),
        ]
        .prop_map(Value::from),
        // Numbers at the ends of each type: epochs far out either way, amounts no decimal holds.
        prop_oneof![
            Just(json!(1e308)),
            Just(json!(-1e308)),
            Just(json!(1e29)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(i64::MAX)),
            Just(json!(-62_135_596_800_i64)),
            Just(json!(253_402_300_800_000_i64)),
            Just(json!(0)),
        ],
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A valid body with one top-level field replaced, removed or added.
fn mutated(valid: Value) -> impl Strategy<Value = Value> {
    let keys: Vec<String> = valid
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    (
        prop::sample::select(keys),
        prop::option::of(any_json()),
        prop::sample::select(KEYS),
    )
        .prop_map(move |(key, replacement, extra)| {
            let mut body: Map<String, Value> = valid.as_object().cloned().unwrap_or_default();
            match replacement {
                Some(v) if key.len() % 2 == 0 => {
                    body.insert(extra.to_owned(), v);
                }
                Some(v) => {
                    body.insert(key, v);
                }
                None => {
                    body.remove(&key);
                }
            }
            Value::Object(body)
        })
}

/// What a test may send: any JSON, a mutated valid body, or bytes that are not JSON.
fn body(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any_json().prop_map(|v| v.to_string().into_bytes()),
        mutated(valid).prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// Posts `bytes` as JSON; fails the case on a 5xx, or on a 400 that is not a problem naming
/// what is wrong.
async fn post_raw(
    app: &TestApp,
    path: &str,
    role: Role,
    bytes: Vec<u8>,
) -> Result<u16, TestCaseError> {
    let mut req = app
        .http
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/json");
    if path.starts_with("/webhooks") {
        req = req.header("X-Hub-Signature-256", sign(APP_SECRET.as_bytes(), &bytes));
    } else {
        req = req.bearer_auth(app.token(role));
    }
    let r = req.body(bytes.clone()).send().await.expect("request");
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = r.text().await.unwrap_or_default();
    let shown = String::from_utf8_lossy(&bytes);
    prop_assert!(status < 500, "{path} answered {status} to {shown}: {text}");
    if status == 400 {
        prop_assert_eq!(
            content_type,
            "application/problem+json",
            "{} {}",
            path,
            shown
        );
        let problem: Value = serde_json::from_str(&text).expect("problem JSON");
        let detail = problem["detail"].as_str().unwrap_or_default();
        prop_assert!(
            !detail.trim().is_empty(),
            "{path}: a 400 says what is wrong: {text}"
        );
    }
    Ok(status)
}

/// Every JSON body Herald reads, with a valid example of each and the role that may send it.
fn endpoints() -> Vec<(&'static str, Role, Value)> {
    let recipient = json!({"psid": "4242"});
    vec![
        (
            "/v1/messages",
            Role::Backend,
            json!({"recipient": recipient, "category": "response", "message": {"text": "hi"}}),
        ),
        (
            "/v1/receipts",
            Role::Backend,
            json!({"recipient": recipient, "order": {"order_number": "A-1", "currency": "EUR",
                "payment_method": "Visa", "recipient_name": "Ada", "summary": {"total_cost": 1},
                "elements": [{"title": "Tea", "price": 1}]}}),
        ),
        (
            "/v1/shipping-updates",
            Role::Backend,
            json!({"recipient": recipient, "order_number": "A-1", "status": "shipped",
                "tracking_url": "https://example.com/t/1"}),
        ),
        (
            "/v1/consents",
            Role::Backend,
            json!({"recipient": recipient, "scope": "transactional", "source": "checkout",
                "evidence": {"order": "A-1"}}),
        ),
        (
            "/v1/campaigns",
            Role::Marketer,
            json!({"name": "n", "message": {"text": "hi"}, "audience": {"psids": ["4242"]},
                "send_at": "2027-01-01T00:00:00Z"}),
        ),
        (
            "/v1/policy/evaluate",
            Role::Backend,
            json!({"recipient": recipient, "category": "receipt", "message": {"text": "x"},
                "at": "2026-03-01T12:00:00Z"}),
        ),
        (
            "/webhooks/messenger",
            Role::Backend,
            json!({"object": "page", "entry": [{"id": "100000000000001", "time": 1,
                "messaging": [{"sender": {"id": "4242"}, "recipient": {"id": "100000000000001"},
                "timestamp": 1764072000000_i64, "message": {"mid": "m.1", "text": "hi"}}]}]}),
        ),
    ]
}

/// proptest drives its cases synchronously, so the gateway runs on a runtime of the test's
/// own and each case blocks on its request.
#[test]
fn no_body_makes_herald_panic_or_answer_500() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = rt.block_on(spawn_app());
    // The person exists in Messenger: whatever Herald accepts and sends is judged by the
    // stand-in's rules (a rejection fails the test when the app is dropped).
    rt.block_on(app.create_user("4242"));
    for (path, role, valid) in endpoints() {
        let mut runner = TestRunner::new(Config {
            cases: 96,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&body(valid), |bytes| {
            rt.block_on(post_raw(&app, path, role, bytes)).map(|_| ())
        });
        if let Err(e) = result {
            panic!("{path}: {e}");
        }
    }
    rt.block_on(app.drain());
    drop(app);
}

#[tokio::test]
async fn a_body_over_the_configured_limit_is_refused_with_413() {
    let app = spawn_app_with(TestOptions {
        settings: Some(Box::new(|s| s.server.max_body_bytes = 4096)),
        ..TestOptions::default()
    })
    .await;
    let big = json!({"recipient": {"psid": "4242"}, "category": "response",
        "message": {"text": "x".repeat(5000)}});
    for path in [
        "/v1/messages",
        "/v1/consents",
        "/v1/policy/evaluate",
        "/webhooks/messenger",
    ] {
        let r = app.post(path, Some(&app.token(Role::Backend)), &big).await;
        assert_eq!(r.status().as_u16(), 413, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
    // Under the limit, the same route reads the body (and judges it).
    let small = json!({"recipient": {"psid": "4242"}, "category": "response",
        "message": {"text": "x"}});
    let (status, _) = app.send(small).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn deeply_nested_json_is_refused_with_400() {
    let app = spawn_app().await;
    let depth = 10_000;
    let nested = format!(
        r#"{{"recipient": {{"psid": "4242"}}, "category": "response", "message": {}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    for (path, role) in [
        ("/v1/messages", Role::Backend),
        ("/v1/campaigns", Role::Marketer),
        ("/v1/consents", Role::Backend),
        ("/webhooks/messenger", Role::Backend),
    ] {
        let status = post_raw(&app, path, role, nested.clone().into_bytes())
            .await
            .expect("a problem, not a 5xx");
        assert_eq!(status, 400, "{path}");
    }
}

#[tokio::test]
async fn a_json_route_refuses_another_content_type_with_415() {
    let app = spawn_app().await;
    let body = json!({"recipient": {"psid": "4242"}, "category": "response",
        "message": {"text": "hi"}})
    .to_string();
    for (path, role) in [
        ("/v1/messages", Role::Backend),
        ("/v1/receipts", Role::Backend),
        ("/v1/shipping-updates", Role::Backend),
        ("/v1/consents", Role::Backend),
        ("/v1/policy/evaluate", Role::Backend),
        ("/v1/campaigns", Role::Marketer),
    ] {
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let mut req = app
                .http
                .post(format!("{}{path}", app.address))
                .bearer_auth(app.token(role))
                .body(body.clone());
            if let Some(ct) = content_type {
                req = req.header("content-type", ct);
            }
            let r = req.send().await.expect("request");
            assert_eq!(r.status().as_u16(), 415, "{path} {content_type:?}");
            assert_eq!(
                r.headers()["content-type"],
                "application/problem+json",
                "{path} {content_type:?}"
            );
            let problem: Value = r.json().await.expect("problem");
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("application/json")),
                "{path}: {problem}"
            );
        }
    }
    // JSON with a charset, or a +json type, is JSON.
    app.user_writes("4242", "hi", None).await;
    for content_type in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        let r = app
            .http
            .post(format!("{}/v1/messages", app.address))
            .bearer_auth(app.token(Role::Backend))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 202, "{content_type}");
    }
    app.drain().await;
}

#[tokio::test]
async fn the_graph_endpoint_still_takes_form_bodies() {
    let app = spawn_app().await;
    app.user_writes("4243", "hi", None).await;
    let r = app
        .http
        .post(format!("{}/graph/v21.0/me/messages", app.address))
        .form(&[
            ("access_token", app.token(Role::Backend)),
            ("recipient", r#"{"id":"4243"}"#.to_owned()),
            ("message", r#"{"text":"hello"}"#.to_owned()),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    app.drain().await;
    assert_eq!(app.inbox("4243").len(), 1);
}

/// PostgreSQL cannot store U+0000 in text or `jsonb`: a client's request holding it is refused
/// by its path on either store (on PostgreSQL it was a 503), the Graph endpoint's too, whether
/// its parameters come as JSON or as form fields.
/// Posts each case's JSON body to its path as its role; each must be a 400 whose first error
/// names the field given. Returns the problems, in order.
async fn refused_naming(app: &TestApp, cases: &[(&str, Role, &str, &str)]) -> Vec<Value> {
    let mut problems = Vec::new();
    for &(path, role, body, field) in cases {
        let r = app
            .http
            .post(format!("{}{path}", app.address))
            .bearer_auth(app.token(role))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 400, "{path}: {body}");
        let problem: Value = r.json().await.expect("problem");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
        problems.push(problem);
    }
    problems
}

#[tokio::test]
async fn a_string_with_u0000_is_refused_naming_where_it_is() {
    let app = spawn_app().await;
    let cases = [
        (
            "/v1/messages",
            Role::Backend,
            r#"{"recipient": {"user_ref": "\u0000"}, "category": "response",
                "message": {"text": "hi"}}"#,
            "recipient.user_ref",
        ),
        (
            "/v1/consents",
            Role::Backend,
            r#"{"recipient": {"psid": "4242"}, "scope": "transactional", "source": "checkout",
                "evidence": {"order": ["A-1", "A\u00002"]}}"#,
            "evidence.order[1]",
        ),
    ];
    for problem in refused_naming(&app, &cases).await {
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("U+0000")),
            "{problem}"
        );
    }
    let graph = [
        (
            "application/json",
            r#"{"recipient": {"user_ref": "\u0000"}, "message": {"text": "hi"}}"#,
        ),
        (
            "application/x-www-form-urlencoded",
            "recipient=%7B%22id%22%3A%224242%22%7D&message=%7B%22text%22%3A%22a%5Cu0000b%22%7D",
        ),
    ];
    for (content_type, body) in graph {
        let r = app
            .http
            .post(format!("{}/graph/v21.0/me/messages", app.address))
            .bearer_auth(app.token(Role::Backend))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let error: Value = r.json().await.expect("graph error");
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("U+0000")),
            "{error}"
        );
    }
    app.drain().await;
    assert!(app.inbox("4242").is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_key_named_twice_is_refused_at_any_depth_naming_the_key() {
    let app = spawn_app().await;
    let cases = [
        (
            "/v1/messages",
            Role::Backend,
            r#"{"recipient": {"psid": "4242"}, "category": "response", "category": "marketing",
                "message": {"text": "hi"}}"#,
            "category",
        ),
        (
            "/v1/messages",
            Role::Backend,
            r#"{"recipient": {"psid": "4242", "psid": "4243"}, "category": "response",
                "message": {"text": "hi"}}"#,
            "recipient.psid",
        ),
        (
            "/v1/receipts",
            Role::Backend,
            r#"{"recipient": {"psid": "4242"}, "order": {"order_number": "A-1", "currency": "EUR",
                "payment_method": "Visa", "recipient_name": "Ada", "summary": {"total_cost": 1},
                "elements": [{"title": "Tea", "price": 1, "price": 100}]}}"#,
            "order.elements[0].price",
        ),
        (
            "/v1/consents",
            Role::Backend,
            r#"{"recipient": {"psid": "4242"}, "scope": "transactional", "scope": "marketing",
                "source": "checkout", "evidence": {}}"#,
            "scope",
        ),
        (
            "/v1/campaigns",
            Role::Marketer,
            r#"{"name": "n", "message": {"text": "hi"}, "audience": {"psids": ["4242"]},
                "rate_per_second": 1, "rate_per_second": 300}"#,
            "rate_per_second",
        ),
        (
            "/v1/policy/evaluate",
            Role::Backend,
            r#"{"recipient": {"psid": "4242"}, "category": "response", "message": {"text": "x"},
                "at": "2026-03-01T12:00:00Z", "at": "2026-03-02T12:00:00Z"}"#,
            "at",
        ),
    ];
    refused_naming(&app, &cases).await;
    // The Graph-compatible endpoint answers in Graph's shape, naming the key.
    let r = app
        .http
        .post(format!("{}/graph/v21.0/me/messages", app.address))
        .bearer_auth(app.token(Role::Backend))
        .header("content-type", "application/json")
        .body(r#"{"recipient": {"id": "4242", "id": "4243"}, "message": {"text": "hi"}}"#)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
    let error: Value = r.json().await.expect("graph error");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("recipient")),
        "{error}"
    );
    // A webhook is Messenger's, signed; a duplicate there is refused the same way.
    let body = br#"{"object": "page", "object": "user", "entry": []}"#.to_vec();
    let status = post_raw(&app, "/webhooks/messenger", Role::Backend, body)
        .await
        .expect("a problem, not a 5xx");
    assert_eq!(status, 400);
}
