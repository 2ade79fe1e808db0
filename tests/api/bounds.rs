//! Bounded values (docs/api.md): every date, duration and count a client sends has a sane
//! range, measured from Herald's clock; one just inside is taken, one just past it is a 400
//! naming the field. Amounts beyond what a decimal carries are refused too.

use chrono::{DateTime, Duration, Utc};
use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const PSID: &str = "8101";

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn response(extra: Value) -> Value {
    let mut body = json!({"recipient": {"psid": PSID}, "category": "response",
        "message": {"text": "hi"}});
    merge(&mut body, extra);
    body
}

fn receipt(extra: Value) -> Value {
    let mut body = json!({"recipient": {"psid": PSID}, "order": {"order_number": "A-1",
        "currency": "EUR", "payment_method": "Visa", "recipient_name": "Ada",
        "summary": {"total_cost": 1}, "elements": [{"title": "Tea", "price": 1}]}});
    merge(&mut body, extra);
    body
}

fn shipping(extra: Value) -> Value {
    let mut body = json!({"recipient": {"psid": PSID}, "order_number": "A-1",
        "status": "shipped"});
    merge(&mut body, extra);
    body
}

fn campaign(extra: Value) -> Value {
    let mut body = json!({"name": "Teas", "message": {"text": "20% off"},
        "audience": {"psids": [PSID]}});
    merge(&mut body, extra);
    body
}

fn merge(body: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
}

/// The answer's status and the fields a 400 names.
async fn post(app: &TestApp, path: &str, role: Role, body: Value) -> (u16, Vec<String>, Value) {
    let (status, answer) = app.call(role, path, body).await;
    (status, fields(&answer), answer)
}

fn fields(answer: &Value) -> Vec<String> {
    answer["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

/// What a case is about, the path, the role, the body, the status expected and the field a 400
/// names.
type Case = (
    &'static str,
    &'static str,
    Role,
    Value,
    u16,
    Option<&'static str>,
);

#[tokio::test]
async fn every_bounded_value_is_taken_at_its_edge_and_refused_just_past_it() {
    let app = spawn_app().await;
    app.user_writes(PSID, "hi", None).await;
    app.consent(PSID, "transactional", None).await;
    let now = app.now();
    let minute = Duration::minutes(1);
    let year = rfc3339(now + Duration::days(365));
    let past_year = rfc3339(now + Duration::days(365) + minute);
    let month = rfc3339(now + Duration::days(30));
    let past_month = rfc3339(now + Duration::days(30) + minute);
    let gone = rfc3339(now - minute);
    let (backend, marketer) = (Role::Backend, Role::Marketer);
    let evaluate = |extra: Value| response(extra);
    let cases: Vec<Case> = vec![
        (
            "send_at a year ahead",
            "/v1/messages",
            backend,
            response(json!({"send_at": year})),
            202,
            None,
        ),
        (
            "send_at past a year",
            "/v1/messages",
            backend,
            response(json!({"send_at": past_year})),
            400,
            Some("send_at"),
        ),
        (
            "send_at in the year 0",
            "/v1/messages",
            backend,
            response(json!({"send_at": "0000-01-01T00:00:00Z"})),
            400,
            Some("send_at"),
        ),
        (
            "send_at in 9999",
            "/v1/messages",
            backend,
            response(json!({"send_at": "9999-12-31T23:59:59Z"})),
            400,
            Some("send_at"),
        ),
        (
            "expires_at in 30 days",
            "/v1/messages",
            backend,
            response(json!({"expires_at": month})),
            202,
            None,
        ),
        (
            "expires_at past 30 days",
            "/v1/messages",
            backend,
            response(json!({"expires_at": past_month})),
            400,
            Some("expires_at"),
        ),
        (
            "expires_at gone",
            "/v1/messages",
            backend,
            response(json!({"expires_at": gone})),
            400,
            Some("expires_at"),
        ),
        (
            "receipt send_at past a year",
            "/v1/receipts",
            backend,
            receipt(json!({"send_at": past_year})),
            400,
            Some("send_at"),
        ),
        (
            "receipt expires_at in 30 days",
            "/v1/receipts",
            backend,
            receipt(json!({"expires_at": month})),
            202,
            None,
        ),
        (
            "receipt expires_at past 30 days",
            "/v1/receipts",
            backend,
            receipt(json!({"expires_at": past_month})),
            400,
            Some("expires_at"),
        ),
        (
            "shipping send_at a year ahead",
            "/v1/shipping-updates",
            backend,
            shipping(json!({"send_at": year})),
            202,
            None,
        ),
        (
            "shipping send_at past a year",
            "/v1/shipping-updates",
            backend,
            shipping(json!({"send_at": past_year})),
            400,
            Some("send_at"),
        ),
        (
            "shipping expires_at gone",
            "/v1/shipping-updates",
            backend,
            shipping(json!({"expires_at": gone})),
            400,
            Some("expires_at"),
        ),
        (
            "evaluate at 2011",
            "/v1/policy/evaluate",
            backend,
            evaluate(json!({"at": "2011-01-01T00:00:00Z"})),
            200,
            None,
        ),
        (
            "evaluate at before 2011",
            "/v1/policy/evaluate",
            backend,
            evaluate(json!({"at": "2010-12-31T23:59:59Z"})),
            400,
            Some("at"),
        ),
        (
            "evaluate at a year ahead",
            "/v1/policy/evaluate",
            backend,
            evaluate(json!({"at": year})),
            200,
            None,
        ),
        (
            "evaluate at past a year",
            "/v1/policy/evaluate",
            backend,
            evaluate(json!({"at": past_year})),
            400,
            Some("at"),
        ),
        (
            "evaluate send_at past a year",
            "/v1/policy/evaluate",
            backend,
            evaluate(json!({"send_at": past_year})),
            400,
            Some("send_at"),
        ),
        (
            "campaign send_at a year ahead",
            "/v1/campaigns",
            marketer,
            campaign(json!({"send_at": year})),
            201,
            None,
        ),
        (
            "campaign send_at past a year",
            "/v1/campaigns",
            marketer,
            campaign(json!({"send_at": past_year})),
            400,
            Some("send_at"),
        ),
        (
            "hold of 30 days",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rollout": {"first_percent": 10, "hold": "30days"}})),
            201,
            None,
        ),
        (
            "hold past 30 days",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rollout": {"first_percent": 10, "hold": "30days 1s"}})),
            400,
            Some("rollout.hold"),
        ),
        (
            "hold of a million years",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rollout": {"first_percent": 10, "hold": "1000000y"}})),
            400,
            Some("rollout.hold"),
        ),
        (
            "first_percent 1",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rollout": {"first_percent": 1, "hold": "1h"}})),
            201,
            None,
        ),
        (
            "first_percent 99",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rollout": {"first_percent": 99, "hold": "1h"}})),
            201,
            None,
        ),
        (
            "first_percent 0",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rollout": {"first_percent": 0, "hold": "1h"}})),
            400,
            Some("rollout.first_percent"),
        ),
        (
            "first_percent 100",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rollout": {"first_percent": 100, "hold": "1h"}})),
            400,
            Some("rollout.first_percent"),
        ),
        (
            "rate 1",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rate_per_second": 1})),
            201,
            None,
        ),
        (
            "rate 300",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rate_per_second": 300})),
            201,
            None,
        ),
        (
            "rate 0",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rate_per_second": 0})),
            400,
            Some("rate_per_second"),
        ),
        (
            "rate 301",
            "/v1/campaigns",
            marketer,
            campaign(json!({"rate_per_second": 301})),
            400,
            Some("rate_per_second"),
        ),
    ];
    for (what, path, role, body, status, field) in cases {
        let (got, named, answer) = post(&app, path, role, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        if let Some(field) = field {
            assert_eq!(named, [field], "{what}: {answer}");
        }
    }
    app.drain().await;
}

#[tokio::test]
async fn a_csv_campaign_holds_its_query_parameters_to_the_same_bounds() {
    let app = spawn_app().await;
    let far = rfc3339(app.now() + Duration::days(366));
    let cases = [
        ("rate_per_second=301".to_owned(), Some("rate_per_second")),
        ("rate_per_second=0".to_owned(), Some("rate_per_second")),
        (
            "rollout=%7B%22first_percent%22%3A10%2C%22hold%22%3A%221000000y%22%7D".to_owned(),
            Some("rollout.hold"),
        ),
        (format!("send_at={far}"), Some("send_at")),
        (
            "rate_per_second=300&rollout=%7B%22first_percent%22%3A99%2C%22hold%22%3A%2230days%22%7D"
                .to_owned(),
            None,
        ),
    ];
    for (query, field) in cases {
        let r = app
            .http
            .post(format!(
                "{}/v1/campaigns?name=Teas&message=%7B%22text%22%3A%22hi%22%7D&{query}",
                app.address
            ))
            .bearer_auth(app.token(Role::Marketer))
            .header("content-type", "text/csv")
            .body("psid\n8201\n")
            .send()
            .await
            .expect("upload");
        let status = r.status().as_u16();
        let answer: Value = r.json().await.expect("json");
        match field {
            Some(field) => {
                assert_eq!(status, 400, "{query}: {answer}");
                assert_eq!(fields(&answer), [field], "{query}: {answer}");
            }
            None => assert_eq!(status, 201, "{query}: {answer}"),
        }
    }
}

#[tokio::test]
async fn an_audit_query_outside_its_bounds_is_refused_naming_the_parameter() {
    let app = spawn_app().await;
    let far = rfc3339(app.now() + Duration::days(366));
    let cases = [
        ("limit=1", None),
        ("limit=1000", None),
        ("limit=0", Some("limit")),
        ("limit=1001", Some("limit")),
        ("limit=-1", Some("limit")),
        ("limit=lots", Some("limit")),
        ("from=2011-01-01T00:00:00Z", None),
        ("from=2010-12-31T23:59:59Z", Some("from")),
        ("from=0000-01-01T00:00:00Z", Some("from")),
        (&*format!("to={far}"), Some("to")),
        (
            "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            Some("from"),
        ),
    ];
    for (query, field) in cases {
        for path in ["/v1/audit", "/v1/audit/export"] {
            let (status, answer) = app.read(Role::Compliance, &format!("{path}?{query}")).await;
            match field {
                Some(field) => {
                    assert_eq!(status, 400, "{path}?{query}: {answer}");
                    assert_eq!(fields(&answer), [field], "{path}?{query}: {answer}");
                }
                None => assert_eq!(status, 200, "{path}?{query}"),
            }
        }
    }
    let (_, page) = app.read(Role::Compliance, "/v1/audit?limit=1").await;
    assert!(
        page["entries"].as_array().is_some_and(|e| e.len() <= 1),
        "{page}"
    );
}

#[tokio::test]
async fn an_expiry_is_shown_as_a_plain_date_never_past_the_year_9999() {
    let app = spawn_app().await;
    app.user_writes(PSID, "hi", None).await;
    let year = rfc3339(app.now() + Duration::days(365));
    let (status, accepted) = app.send(response(json!({"send_at": year}))).await;
    assert_eq!(status, 202, "{accepted}");
    let message = app.message(accepted["id"].as_str().expect("id")).await;
    let expires = message["expires_at"].as_str().expect("expires_at");
    assert!(
        DateTime::parse_from_rfc3339(expires).is_ok() && !expires.starts_with('+'),
        "{message}"
    );
}

#[tokio::test]
async fn receipt_amounts_beyond_a_decimal_are_refused_and_the_rest_go_out_as_plain_digits() {
    let app = spawn_app().await;
    app.user_writes(PSID, "where is my order?", None).await;
    for (amount, field) in [
        (json!(1e29), "order.summary.total_cost"),
        (json!("1e29"), "order.summary.total_cost"),
        (json!("NaN"), "order.summary.total_cost"),
        (json!(u64::MAX), "order.summary.total_cost"),
        (json!(-1e308), "order.summary.total_cost"),
    ] {
        let mut body = receipt(json!({}));
        body["order"]["summary"]["total_cost"] = amount.clone();
        let (status, named, answer) = post(&app, "/v1/receipts", Role::Backend, body).await;
        assert_eq!(
            (status, named),
            (400, vec![field.to_owned()]),
            "{amount}: {answer}"
        );
    }
    // The Graph-compatible endpoint reads a receipt template by the same rules.
    let template = json!({"attachment": {"type": "template", "payload": {
        "template_type": "receipt", "recipient_name": "Ada", "order_number": "A-2",
        "currency": "EUR", "payment_method": "Visa", "summary": {"total_cost": 1e29},
        "elements": [{"title": "Tea", "price": 1}]}}});
    let r = app
        .http
        .post(format!("{}/graph/v21.0/me/messages", app.address))
        .bearer_auth(app.token(Role::Backend))
        .json(&json!({"recipient": {"id": PSID}, "message": template}))
        .send()
        .await
        .expect("graph");
    let status = r.status().as_u16();
    let answer: Value = r.json().await.expect("json");
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("total_cost")),
        "{answer}"
    );

    let mut body = receipt(json!({}));
    body["order"]["summary"] =
        json!({"subtotal": 1e12, "total_tax": "0.00001", "total_cost": 1e12});
    let (status, _, answer) = post(&app, "/v1/receipts", Role::Backend, body).await;
    assert_eq!(status, 202, "{answer}");
    app.drain().await;
    let inbox = app.inbox(PSID);
    let sent = serde_json::to_string(&inbox.last().expect("sent").body["message"]).expect("json");
    assert!(sent.contains("1000000000000"), "{sent}");
    assert!(
        !sent.contains("e+") && !sent.contains("e-") && !sent.contains("e1"),
        "no exponent notation: {sent}"
    );
}

/// The real binary: a far date or hold is refused at the edge, and a campaign at the edge of its
/// bounds is scheduled, held and left running without a background task dying (a hold of a
/// million years used to be taken, and the scheduler then panicked on it).
#[tokio::test]
async fn the_real_gateway_refuses_a_million_year_hold_and_keeps_its_scheduler_alive() {
    use crate::crash::{campaign_until, client_token, launch, Launched};

    // The directory and the stand-in live as long as the test.
    let Launched {
        dir: _dir,
        sandbox: _sandbox,
        mut gateway,
        ..
    } = launch(&crate::helpers::policy_dir(), "").await;
    let http = reqwest::Client::new();
    let marketer = client_token("marketing", Role::Marketer);
    let create = |body: Value| {
        http.post(format!("{}/v1/campaigns", gateway.base))
            .bearer_auth(&marketer)
            .json(&body)
            .send()
    };
    let far = campaign(json!({"rollout": {"first_percent": 1, "hold": "1000000y"},
        "send_at": "9999-12-31T23:59:59Z"}));
    let r = create(far).await.expect("post");
    assert_eq!(r.status().as_u16(), 400);
    let problem: Value = r.json().await.expect("problem");
    let mut named = fields(&problem);
    named.sort();
    assert_eq!(named, ["rollout.hold", "send_at"], "{problem}");

    let edge = json!({"name": "Teas", "message": {"text": "20% off"}, "rate_per_second": 300,
        "audience": {"psids": ["8301", "8302", "8303"]},
        "rollout": {"first_percent": 1, "hold": "30days"}});
    let r = create(edge).await.expect("post");
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    // The scheduler takes the first part (refused: nobody opted in) and holds the rest.
    let decided = |view: &Value| -> u64 {
        view["counts"]["denied"]
            .as_object()
            .map_or(0, |d| d.values().filter_map(Value::as_u64).sum())
    };
    let view = campaign_until(
        &http,
        &gateway,
        &marketer,
        &id,
        "its first part decided",
        |v| decided(v) >= 1,
    )
    .await;
    assert_eq!(view["status"], "running", "{view}");
    assert_eq!(
        view["counts"]["pending"], 2,
        "the rest waits 30 days: {view}"
    );
    let ready = http
        .get(format!("{}/readyz", gateway.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200, "every background task runs");
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(
        ready["tasks"]["campaigns"]["restarts"], 0,
        "the scheduler never panicked: {ready}"
    );
    assert!(
        gateway.child.try_wait().expect("wait").is_none(),
        "the gateway is alive"
    );
}
