//! `GET /openapi.json`, `GET /docs` and `GET /metrics`.

use std::collections::BTreeSet;

use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn document(app: &TestApp) -> Value {
    let r = app.get("/openapi.json", None).await;
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("the document is JSON")
}

/// `(METHOD, path)` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_has_every_route_of_the_api() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1: {}",
        doc["openapi"]
    );
    let ops = operations(&doc);
    // API.md §6 (the audit routes come with the audit work).
    for (method, path) in [
        ("POST", "/v1/messages"),
        ("POST", "/v1/receipts"),
        ("POST", "/v1/shipping-updates"),
        ("GET", "/v1/messages/{id}"),
        ("POST", "/v1/messages/{id}/cancel"),
        ("POST", "/v1/consents"),
        ("DELETE", "/v1/consents/{psid}"),
        ("GET", "/v1/recipients/{psid}"),
        ("POST", "/v1/campaigns"),
        ("GET", "/v1/campaigns"),
        ("GET", "/v1/campaigns/{id}"),
        ("POST", "/v1/campaigns/{id}/pause"),
        ("POST", "/v1/campaigns/{id}/resume"),
        ("POST", "/v1/campaigns/{id}/cancel"),
        ("POST", "/v1/policy/evaluate"),
        ("GET", "/v1/policy"),
        ("POST", "/v1/policy/reload"),
        ("GET", "/webhooks/messenger"),
        ("POST", "/webhooks/messenger"),
        ("POST", "/graph/{version}/{node}/messages"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
    ] {
        assert!(
            ops.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is in /openapi.json: {ops:?}"
        );
    }
    // Typed request and response bodies, and the problem body, are described.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "Problem",
        "Acceptance",
        "Decision",
        "MessageView",
        "CampaignView",
        "RecipientView",
        "SendMessageRequest",
        "ReceiptRequest",
        "ShippingUpdateRequest",
        "ConsentRequest",
        "CampaignRequest",
        "EvaluateRequest",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    let send = &doc["paths"]["/v1/messages"]["post"];
    assert_eq!(
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SendMessageRequest"
    );
    for status in ["202", "400", "401", "409", "413", "422", "429", "503"] {
        assert!(
            send["responses"][status].is_object(),
            "send answers {status}"
        );
    }
    assert_eq!(
        send["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
}

/// Every route is registered through `utoipa-actix-web`, which accepts only handlers with a
/// `#[utoipa::path]`; the one way around it is registering by hand (`.route`, `web::resource`,
/// `.map` with actix's own `ServiceConfig`). So: no registration by hand in `src/routes/`, and as many handler attributes there
/// as operations in the document — a handler that is served but not documented fails here.
#[tokio::test]
async fn every_route_the_app_registers_is_in_the_document() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut handlers = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/routes") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let by_hand_text = text.replace("utoipa_actix_web::", "");
        for by_hand in [
            ".route(",
            "web::resource(",
            "web::scope(",
            "web::ServiceConfig",
        ] {
            assert!(
                !by_hand_text.contains(by_hand),
                "{} registers a route by hand ({by_hand}): register a #[utoipa::path] handler instead",
                path.display()
            );
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim();
            if ["#[get(", "#[post(", "#[delete(", "#[put(", "#[patch("]
                .iter()
                .any(|m| line.starts_with(m))
            {
                handlers.push(format!("{}:{} {line}", path.display(), i + 1));
                let documented = lines[..i]
                    .iter()
                    .rev()
                    .take_while(|l| !l.trim().is_empty() && !l.trim().starts_with('}'))
                    .any(|l| l.contains("#[utoipa::path"));
                assert!(
                    documented,
                    "{}:{} has no #[utoipa::path]",
                    path.display(),
                    i + 1
                );
            }
        }
    }
    let ops = operations(&doc);
    assert_eq!(
        handlers.len(),
        ops.len(),
        "handlers {handlers:#?}\nvs documented operations {ops:#?}"
    );
}

/// The other way round: each documented operation is served by the app at that pattern (the
/// request is counted under the route, not as unmatched).
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let token = app.token(Role::Admin);
    for (method, pattern) in operations(&doc) {
        let path = pattern
            .replace("{version}", "v21.0")
            .replace("{node}", "me")
            .replace("{id}", "msg_01J00000000000000000000000")
            .replace("{psid}", "4242");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        assert!(
            r.status().as_u16() < 500,
            "{method} {path}: {} (a documented route never answers 5xx to a bad request)",
            r.status()
        );
    }
    let metrics = app.get("/metrics", None).await.text().await.expect("text");
    for (method, pattern) in operations(&doc) {
        let label = format!(r#"method="{method}",route="{pattern}""#);
        assert!(
            metrics.contains(&label),
            "{method} {pattern} was routed to its pattern ({label})"
        );
    }
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary_and_loads_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let r = app.get("/docs", None).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/html"));
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = r.text().await.expect("page");
    assert!(
        page.contains("/openapi.json"),
        "the page renders the document"
    );
    for remote in ["<script src", "<link", "http://", "https://", "@import"] {
        assert!(
            !page.contains(remote),
            "the page loads nothing remote ({remote})"
        );
    }
}

/// One line of the exposition that starts with `prefix` (name and labels), its value.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_decisions_deliveries_webhooks_and_store_latency() {
    let app = spawn_app().await;
    // Long enough not to turn up by chance in a sample value (a sum of seconds).
    let psid = "97531864204242";
    app.create_user(psid).await;
    app.consent(psid, "transactional", None).await;
    app.user_writes(psid, "hello", None).await;
    let (status, _) = app.respond(psid, "On its way!").await;
    assert_eq!(status, 202);
    let (status, _) = app.respond("5151", "no consent").await;
    assert_eq!(status, 422);
    app.sandbox_post("/faults", json!({"code": 1200, "count": 1}))
        .await;
    let (status, _) = app.receipt(psid, "A-1").await;
    assert_eq!(status, 202);
    app.drain().await;
    let (status, _) = app
        .call(
            Role::Marketer,
            "/v1/campaigns",
            json!({"name": "later", "message": {"text": "hi"}, "audience": {"psids": [psid]},
                   "send_at": "2027-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201);

    let r = app.get("/metrics", None).await;
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/plain"));
    let text = r.text().await.expect("text");
    for (line, at_least) in [
        (
            r#"herald_http_requests_total{method="POST",route="/v1/messages",status="202"}"#,
            1.0,
        ),
        (
            r#"herald_http_requests_total{method="POST",route="/v1/messages",status="422"}"#,
            1.0,
        ),
        (
            r#"herald_decisions_total{outcome="allow",reason="ok"}"#,
            2.0,
        ),
        (
            r#"herald_decisions_total{outcome="deny",reason="no_consent"}"#,
            1.0,
        ),
        (
            r#"herald_deliveries_total{graph_code="none",result="sent"}"#,
            2.0,
        ),
        (
            r#"herald_deliveries_total{graph_code="1200",result="retry"}"#,
            1.0,
        ),
        ("herald_delivery_retries_total", 1.0),
        (r#"herald_webhook_events_total{type="message"}"#, 1.0),
        ("herald_store_commit_seconds_count", 1.0),
        ("herald_store_flush_seconds_count", 1.0),
        (
            r#"herald_http_request_duration_seconds_count{route="/v1/messages"}"#,
            2.0,
        ),
        (r#"herald_campaign_messages{campaign="cmp_"#, 0.0),
    ] {
        let value = sample(&text, line).unwrap_or_else(|| panic!("{line} in\n{text}"));
        assert!(value >= at_least, "{line} = {value}, at least {at_least}");
    }
    assert_eq!(sample(&text, "herald_outbox_depth "), Some(0.0));
    assert!(text.contains("herald_outbox_oldest_due_age_seconds 0"));
    assert!(text.contains("herald_pacing_waits_total"));
    assert!(
        text.contains(r#"state="audience"} 1"#),
        "the scheduled campaign's audience: {text}"
    );
    assert!(!text.contains(psid), "no PSID in the metrics");
}

#[tokio::test]
async fn invented_methods_share_one_metric_series_and_every_label_is_from_a_closed_set() {
    let app = spawn_app().await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("ZZ{i:05}").as_bytes()).expect("method");
        let r = app
            .http
            .request(method, format!("{}/healthz", app.address))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 405);
    }
    let r = app
        .http
        .request(
            reqwest::Method::from_bytes(b"ZZNOWHERE").expect("method"),
            format!("{}/nowhere/{}", app.address, "x".repeat(40)),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 404);
    let text = app
        .get("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        !text.contains("ZZ"),
        "no invented method in a label:\n{text}"
    );
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("herald_http_requests_total{"))
        .collect();
    let other: Vec<&&str> = requests
        .iter()
        .filter(|l| l.contains(r#"method="other",route="/healthz""#))
        .collect();
    assert_eq!(other.len(), 1, "{requests:#?}");
    assert!(other[0].contains(r#"status="405"} 50"#), "{other:?}");
    for line in &requests {
        let label = |name: &str| {
            let start = line.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
            let rest = &line[start..];
            rest[..rest.find('"').expect("end")].to_owned()
        };
        assert!(
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"]
                .contains(&label("method").as_str()),
            "{line}"
        );
        let route = label("route");
        assert!(
            route == "unmatched" || (route.starts_with('/') && !route.contains("xxxx")),
            "{line}"
        );
        assert!(label("status").parse::<u16>().is_ok(), "{line}");
    }
}

#[tokio::test]
async fn head_answers_as_get_without_a_body_and_an_unserved_method_is_405_with_allow() {
    let app = spawn_app().await;
    let url = |path: &str| format!("{}{path}", app.address);
    for path in ["/healthz", "/readyz"] {
        let r = app.http.head(url(path)).send().await.expect("head");
        assert_eq!(r.status().as_u16(), 200, "HEAD {path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert!(r.bytes().await.expect("body").is_empty(), "HEAD {path}");
    }
    let r = app.http.head(url("/v1/status")).send().await.expect("head");
    assert_eq!(
        r.status().as_u16(),
        401,
        "HEAD asks for a token as GET does"
    );
    let r = app
        .http
        .head(url("/v1/status"))
        .bearer_auth(app.token(Role::Admin))
        .send()
        .await
        .expect("head");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.bytes().await.expect("body").is_empty());

    for (method, path, allow) in [
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/readyz", "GET, HEAD"),
        ("OPTIONS", "/healthz", "GET, HEAD"),
        ("GET", "/v1/messages", "POST"),
        ("PUT", "/v1/messages/msg_123", "GET, HEAD"),
        ("PATCH", "/v1/recipients/4242", "DELETE, GET, HEAD"),
        ("ZZ12345", "/v1/status", "GET, HEAD"),
        ("GET", "/webhooks/messenger/", ""),
    ] {
        let r = app
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                url(path),
            )
            .bearer_auth(app.token(Role::Admin))
            .send()
            .await
            .expect("request");
        if allow.is_empty() {
            assert_eq!(r.status().as_u16(), 404, "{method} {path}: not a route");
            continue;
        }
        assert_eq!(r.status().as_u16(), 405, "{method} {path}");
        let mut served: Vec<&str> = r.headers()["allow"]
            .to_str()
            .expect("allow")
            .split(", ")
            .collect();
        served.sort_unstable();
        assert_eq!(served.join(", "), allow, "{method} {path}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let problem: Value = r.json().await.expect("problem");
        assert_eq!(problem["status"], 405);
    }
    // Where two routes share a path's shape, each method still reaches its own route: this
    // one is the campaign `messages`, which does not exist, not the Graph endpoint's path.
    let r = app
        .get("/v1/campaigns/messages", Some(&app.token(Role::Admin)))
        .await;
    assert_eq!(r.status().as_u16(), 404);
    let r = app.http.get(url("/nowhere")).send().await.expect("request");
    assert_eq!(r.status().as_u16(), 404);
}

/// How often the gateways of this test binary gave memory back.
static RELEASES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_release() {
    RELEASES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[tokio::test]
async fn a_gateway_gives_unused_memory_back_once_its_store_is_open() {
    // The binary hands in jemalloc's purge (`src/allocator.rs`); this counts the calls.
    herald::startup::release_memory_with(count_release);
    let before = RELEASES.load(std::sync::atomic::Ordering::SeqCst);
    let app = spawn_app().await;
    assert!(
        RELEASES.load(std::sync::atomic::Ordering::SeqCst) > before,
        "the gateway was built without giving memory back"
    );
    assert_eq!(app.get("/readyz", None).await.status().as_u16(), 200);
}
