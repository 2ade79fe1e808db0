//! The web console at `/console`: its files as served (content types, a CSP of this origin
//! only), the operator's status endpoint it reads, the sandbox's sign-in link, and the console
//! itself driven in headless Chromium (tests/console/console.js, playwright-core from the npm
//! registry driving the system's /usr/bin/chromium) as a compliance officer, an admin and a
//! marketer use it. Screenshots of each page are kept under target/console-screenshots/.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestOptions};

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_a_policy_of_this_origin_only() {
    let app = spawn_app().await;
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/", "text/html; charset=utf-8"),
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), content_type, "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    }
    let page = app.get("/console", None).await.text().await.expect("text");
    assert!(
        page.contains("<script src=\"/console/console.js\""),
        "{page}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads nothing from another host"
    );
    assert_eq!(app.get("/console/other.js", None).await.status(), 404);
}

#[tokio::test]
async fn the_status_shows_the_outbox_and_the_last_hours_sends_to_compliance_and_admin_only() {
    let app = spawn_app().await;
    app.user_writes("9701", "hi", None).await;
    let (status, _) = app
        .send(
            json!({"recipient": {"psid": "9701"}, "category": "response",
                     "message": {"text": "hello"}}),
        )
        .await;
    assert_eq!(status, 202);
    app.drain().await;

    let app = &app;
    let read = |role| async move { app.get("/v1/status", Some(&app.token(role))).await };
    let r = read(Role::Compliance).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["outbox"]["depth"], 0, "{body}");
    assert_eq!(body["deliveries"]["by_result"]["sent"], 1, "{body}");
    assert_eq!(
        body["deliveries"]["sent_per_minute"]
            .as_array()
            .map(Vec::len),
        Some(60),
        "{body}"
    );
    assert_eq!(body["deliveries"]["truncated"], false, "{body}");
    assert!(body["policy_version"]
        .as_str()
        .is_some_and(|v| v.len() == 64));
    assert_eq!(read(Role::Admin).await.status().as_u16(), 200);
    for role in [Role::Marketer, Role::Backend] {
        let r = read(role).await;
        assert_eq!(r.status().as_u16(), 403, "{role}");
        let problem: Value = r.json().await.expect("problem");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("may not")),
            "{problem}"
        );
    }
    assert_eq!(app.get("/v1/status", None).await.status().as_u16(), 401);

    // A message that waits for its moment is in the outbox, due then, and nothing is behind.
    let send_at = "2026-11-25T18:00:00Z";
    let (status, _) = app
        .send(
            json!({"recipient": {"psid": "9701"}, "category": "response",
                     "message": {"text": "later"}, "send_at": send_at}),
        )
        .await;
    assert_eq!(status, 202);
    let body: Value = read(Role::Admin).await.json().await.expect("json");
    assert_eq!(body["outbox"]["depth"], 1, "{body}");
    assert_eq!(
        body["outbox"]["oldest_due_at"], "2026-11-25T18:00:00Z",
        "{body}"
    );
    assert_eq!(body["outbox"]["behind_seconds"], 0.0, "{body}");
}

#[tokio::test]
async fn the_sandbox_prints_a_console_link_that_signs_in_as_admin() {
    let log = tempfile::NamedTempFile::new().expect("log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--sandbox", "--config", "no-such-herald.toml"])
        .env("RUST_LOG", "warn")
        // Any free port: the banner prints the one bound.
        .env("HERALD_SERVER__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log.reopen().expect("log")))
        .spawn()
        .expect("start herald serve --sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let link = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let link = lines.by_ref().map_while(Result::ok).find_map(|line| {
            line.trim()
                .contains("/console#token=")
                .then(|| line.trim().to_owned())
        });
        // The rest of the banner is read too, as a terminal would.
        std::thread::spawn(move || lines.for_each(drop));
        link
    })
    .await
    .expect("read banner");
    let outcome = async {
        let link = link.expect("a console link in the banner");
        let (page, token) = link.split_once("#token=").expect("token in the fragment");
        let http = reqwest::Client::new();
        // The banner is printed once the port is bound; the workers may take a moment longer.
        let mut ready = false;
        // Generous: the rest of the suite (a browser among it) shares the two cores.
        for _ in 0..400 {
            let health = http.get(page.replace("/console", "/healthz")).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            ready,
            "the sandbox gateway never answered at {page}; its log:\n{}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
        let r = http.get(page).send().await.expect("console");
        assert_eq!(r.status(), 200);
        let audit = http
            .get(page.replace("/console", "/v1/audit"))
            .bearer_auth(token)
            .send()
            .await
            .expect("audit");
        assert_eq!(audit.status(), 200, "the link's token reads the audit log");
    };
    let result = tokio::time::timeout(Duration::from_secs(30), outcome).await;
    let _ = child.kill();
    let _ = child.wait();
    result.expect("the sandbox answered in time");
}

/// A string of the script's answer, or "" when it is not one.
fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn console_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/console")
}

/// Node.js, playwright-core (pinned in tests/console/package-lock.json) and the system's
/// Chromium; `.ci/run` installs Node.js and Chromium from the system packages when missing.
fn install_browser_driver() -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "Node.js is needed for the console test: apt-get install nodejs npm (.ci/run does)"
    );
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()));
    assert!(
        chromium.exists(),
        "Chromium is needed for the console test: apt-get install chromium (.ci/run does)"
    );
    if !console_dir().join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(console_dir())
            .status()
            .expect("run npm ci");
        assert!(status.success(), "npm ci in tests/console failed");
    }
    chromium
}

/// Someone who wrote to the page and opted in to its marketing messages.
async fn subscriber(app: &TestApp, psid: &str) {
    app.user_writes(psid, "hi", None).await;
    app.sandbox_post(
        &format!("/users/{psid}/marketing-optin"),
        json!({"timezone": "Europe/Berlin", "title": "Deals"}),
    )
    .await;
}

#[tokio::test]
async fn the_console_in_chromium_searches_the_audit_log_and_runs_campaigns_within_each_roles_rights(
) {
    let chromium = tokio::task::spawn_blocking(install_browser_driver)
        .await
        .expect("install");
    // Event endpoints on this machine are allowed, as `serve --sandbox` allows them.
    let app = spawn_app_with(TestOptions {
        settings: Some(Box::new(|s| s.events.allow_private_networks = true)),
        ..TestOptions::default()
    })
    .await;
    // Two event endpoints: one whose receiver is gone (every delivery fails), one that hears
    // only what does not happen here.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!(
            "http://127.0.0.1:{}/gone",
            listener.local_addr().expect("addr").port()
        )
    };
    let mut endpoint_ids = Vec::new();
    for (url, events) in [
        (gone.as_str(), json!(["*"])),
        ("http://127.0.0.1:9/quiet", json!(["campaign.cancelled"])),
    ] {
        let (status, body) = app
            .call(
                Role::Admin,
                "/v1/event-endpoints",
                json!({"url": url, "events": events}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        endpoint_ids.push(body["id"].as_str().expect("id").to_owned());
    }

    // Ada: a consent, a reply that was sent, and one that was refused.
    app.user_writes("9801", "where is my teapot?", None).await;
    app.consent("9801", "transactional", Some("Europe/Berlin"))
        .await;
    let (status, _) = app
        .send(
            json!({"recipient": {"psid": "9801"}, "category": "response",
                     "message": {"text": "On its way!"}}),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = app
        .send(
            json!({"recipient": {"psid": "9801"}, "category": "marketing",
                     "message": {"text": "20% off"}}),
        )
        .await;
    assert_eq!(status, 403, "a backend may not send marketing");
    app.drain().await;
    app.handle().events.drain().await.expect("drain events");
    // Someone the admin erases.
    app.user_writes("9802", "forget me", None).await;
    let subscribers = ["9811", "9812", "9813", "9814", "9815"];
    for psid in subscribers {
        subscriber(&app, psid).await;
    }

    // The log's latest entries as the audit API reads them from the end (in log order: seq on
    // sled, across the chains on PostgreSQL), before the console adds any.
    let (_, latest) = app
        .read(Role::Compliance, "/v1/audit?order=newest&limit=50")
        .await;
    let newest: Vec<Value> = latest["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["seq"].clone())
        .collect();
    let screenshots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    let envs = [
        ("HERALD_URL", app.address.clone()),
        ("COMPLIANCE_TOKEN", app.token(Role::Compliance)),
        ("ADMIN_TOKEN", app.token(Role::Admin)),
        ("MARKETER_TOKEN", app.token(Role::Marketer)),
        ("AUDIT_PSID", "9801".to_owned()),
        ("ERASE_PSID", "9802".to_owned()),
        ("SUBSCRIBERS", subscribers.join(",")),
        ("FAILING_ENDPOINT", endpoint_ids[0].clone()),
        ("ENDPOINT_URL", "https://crm.example.com/herald".to_owned()),
        ("SCREENSHOT_DIR", screenshots.display().to_string()),
        ("CHROMIUM", chromium.display().to_string()),
    ];
    // The gateway runs on this test's runtime: the browser is driven from a blocking thread.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(console_dir().join("console.js"))
            .envs(envs)
            .output()
            .expect("run node")
    })
    .await
    .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let r: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");

    assert_eq!(
        r["errors"],
        json!([]),
        "no script error or CSP violation: {r}"
    );
    // Signed in by the link's fragment, which left the address bar.
    assert_eq!(r["signed_in"]["who"], "test-compliance (compliance)", "{r}");
    assert_eq!(r["signed_in"]["url"], "/console#/audit", "{r}");
    assert_eq!(r["signed_in"]["token_kept"], true, "{r}");

    // Opened, the audit page shows the latest entries at once, newest first, with times to the
    // second in the viewer's zone (the browser's is Asia/Kolkata) and the exact value on hover.
    let opened = &r["audit_on_open"];
    assert!(
        opened["rows"]
            .as_u64()
            .is_some_and(|n| (1..=50).contains(&n)),
        "{r}"
    );
    assert_eq!(
        opened["seqs"],
        json!(newest),
        "the newest entries first: {r}"
    );
    let (shown, exact) = (text(&opened["at_shown"]), text(&opened["at_title"]));
    assert!(
        exact.ends_with('Z') && exact.contains('T'),
        "the exact RFC 3339 value on hover: {r}"
    );
    assert!(
        shown.starts_with(text(&opened["at_expected"])) && shown != exact,
        "to the second, in the viewer's zone: {r}"
    );

    // Audit search, paging, an entry with its decision trace and Graph outcome.
    assert_eq!(r["audit"]["first_page"], 2, "{r}");
    assert!(r["audit"]["second_page"].as_u64() >= Some(1), "{r}");
    assert_eq!(r["audit"]["kinds"], json!(["decision"]), "{r}");
    assert_eq!(r["audit"]["decisions"], 2, "{r}");
    assert!(r["audit"]["trace_steps"].as_u64() >= Some(3), "{r}");
    assert!(
        text(&r["audit"]["trace_first_rule"]).starts_with("policies/default.toml#roles."),
        "{r}"
    );
    assert_eq!(
        r["audit"]["attempts"], 1,
        "the first decision was sent: {r}"
    );
    assert_eq!(r["audit"]["message_status"], "sent", "{r}");
    assert_eq!(r["audit"]["message_channel"], "messenger", "{r}");
    assert_eq!(r["audit"]["attempt_channels"], json!(["messenger"]), "{r}");

    // The exports, downloaded with the bearer header.
    assert!(
        text(&r["export"]["csv_header"]).starts_with("seq,at,kind,message_id"),
        "{r}"
    );
    assert_eq!(r["export"]["csv_name"], "herald-audit.csv", "{r}");
    assert_eq!(r["export"]["jsonl_lines"], 2, "the search's filters: {r}");
    assert_eq!(r["export"]["jsonl_kinds"], json!(["decision"]), "{r}");
    assert_eq!(r["export"]["csv_lines"], 3, "a header and two entries: {r}");

    // The recipient's page; verify and checkpoint; the status page.
    assert!(r["recipient"]["consents"].as_u64() >= Some(2), "{r}");
    assert_eq!(r["recipient"]["messages"], 1, "{r}");
    assert_eq!(r["recipient"]["decisions"], 2, "{r}");
    assert!(
        text(&r["compliance_erase"]).contains("403")
            && text(&r["compliance_erase"]).contains("role compliance may not do this"),
        "{r}"
    );
    assert_eq!(r["verify"]["ok"], "true", "{r}");
    assert!(
        text(&r["verify"]["with_checkpoint"]).starts_with("matches at seq"),
        "{r}"
    );
    assert_eq!(r["status"]["ready"], "ready", "{r}");
    assert_eq!(r["status"]["sent_last_hour"], 1, "{r}");
    assert!(r["status"]["bars"].as_u64() >= Some(1), "{r}");

    // The admin erased 9802, after a confirmation.
    assert_eq!(r["erase"]["disabled_before_typing"], true, "{r}");

    // Event endpoints: the failing one and the quiet one with their health, the failing one's
    // attempts, a replay, and a new endpoint whose secret was shown once and is never listed.
    assert_eq!(
        r["endpoints"]["healths"],
        json!(["failing", "healthy"]),
        "{r}"
    );
    assert!(r["endpoints"]["failed_rows"].as_u64() >= Some(1), "{r}");
    let replayed = text(&r["endpoints"]["replayed"]);
    let n: u64 = replayed
        .trim_start_matches("Replaying ")
        .trim_end_matches(" events.")
        .parse()
        .unwrap_or_else(|_| panic!("a count of events replayed: {r}"));
    assert!(n >= 3, "the failing endpoint hears every event: {r}");
    assert_eq!(r["endpoints"]["secret_shown"], true, "{r}");
    let (_, listed) = app.read(Role::Admin, "/v1/event-endpoints").await;
    let listed = listed["endpoints"].as_array().expect("endpoints").clone();
    assert_eq!(listed.len(), 3, "the console added one: {listed:?}");
    assert!(
        listed
            .iter()
            .any(|e| e["url"] == "https://crm.example.com/herald"
                && e["events"] == json!(["message.*", "consent.opted_out"])),
        "{listed:?}"
    );
    assert!(
        !Value::Array(listed).to_string().contains("whsec_"),
        "no secret is listed"
    );
    let recipient = app
        .get("/v1/recipients/9802", Some(&app.token(Role::Admin)))
        .await;
    let recipient: Value = recipient.json().await.expect("json");
    assert!(recipient["erased_at"].is_string(), "{recipient}");

    // A marketer: 403 on audit data, shown as the API's detail, and no row of it.
    assert_eq!(r["marketer_landing"], "/console#/campaigns", "{r}");
    for page in ["audit", "status"] {
        assert!(
            text(&r["marketer"][page]).contains("403")
                && text(&r["marketer"][page]).contains("role marketer may not do this"),
            "{page}: {r}"
        );
    }
    assert_eq!(r["marketer"]["rows_shown"], 0, "{r}");
    assert_eq!(r["marketer"]["audit_nav_hidden"], true, "{r}");

    // The campaign created in the console completed, everyone sent; the API agrees.
    assert_eq!(r["campaign"]["status"], "completed", "{r}");
    assert_eq!(r["campaign"]["audience"], 5, "{r}");
    assert_eq!(r["campaign"]["sent"], 5, "{r}");
    assert!(r["campaign"]["chart_points"].as_u64() >= Some(1), "{r}");
    let id = r["campaign"]["id"].as_str().expect("id");
    let campaign: Value = app
        .get(
            &format!("/v1/campaigns/{id}"),
            Some(&app.token(Role::Marketer)),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(campaign["status"], "completed", "{campaign}");
    assert_eq!(campaign["counts"]["sent"], 5, "{campaign}");
    for psid in subscribers {
        assert_eq!(app.inbox(psid).len(), 1, "{psid}");
    }
    assert!(
        text(&r["invalid_campaign"]).contains("400")
            && text(&r["invalid_campaign"]).contains("audience"),
        "{r}"
    );

    // Paused, resumed and cancelled from its page.
    assert_eq!(
        r["slow"]["statuses"],
        json!(["running", "paused", "running", "cancelled"]),
        "{r}"
    );
    let slow = r["slow"]["id"].as_str().expect("id");
    let audit: Value = app
        .get(
            &format!("/v1/audit?campaign={slow}&kind=campaign"),
            Some(&app.token(Role::Compliance)),
        )
        .await
        .json()
        .await
        .expect("json");
    let changes: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(
        changes,
        ["created", "started", "paused", "resumed", "cancelled"],
        "{audit}"
    );
    assert!(r["campaigns_listed"].as_u64() >= Some(2), "{r}");
    for shot in [
        "01-audit-search",
        "02-audit-entry",
        "06-status",
        "10-campaign-completed",
    ] {
        assert!(screenshots.join(format!("{shot}.png")).exists(), "{shot}");
    }
}
