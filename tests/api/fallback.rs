//! The email fallback (API.md, "Email fallback"): transactional messages Messenger cannot take go
//! by email, through an SMTP server Herald's authors did not write (aiosmtpd with STARTTLS and
//! AUTH, see smtp.rs), to the address on the person's consent — never marketing, never after an
//! opt-out; a page whose Graph API is out is left alone behind its circuit breaker.

use std::time::Duration;

use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{metric, policy_copy, spawn_app_with, TestApp, TestOptions};
use crate::smtp::SmtpServer;

const FROM: &str = "Tea Shop <orders@shop.example>";

/// How long an email may take to arrive once Herald has handed it over.
const ARRIVAL: Duration = Duration::from_secs(10);

/// A gateway whose `[email]` is `smtp`, with the default policy (or `policy`).
async fn app_with_email(smtp: &SmtpServer, policy: Option<std::path::PathBuf>) -> TestApp {
    app_with_email_and(smtp, policy, |_| {}).await
}

/// The same, with a change to the rest of the settings.
async fn app_with_email_and(
    smtp: &SmtpServer,
    policy: Option<std::path::PathBuf>,
    change: impl FnOnce(&mut herald::configuration::Settings) + 'static,
) -> TestApp {
    let email = smtp.settings(FROM);
    spawn_app_with(TestOptions {
        policy_dir: policy,
        settings: Some(Box::new(move |s| {
            s.email = Some(email);
            change(s);
        })),
        ..TestOptions::default()
    })
    .await
}

/// Message `id` once `done` holds of it, handing over what is due meanwhile (the gateway's own
/// worker runs beside the test's drains, so a drain alone may return while its work is in flight).
async fn until_message(
    app: &TestApp,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        app.drain_now().await;
        let message = app.message(id).await;
        if done(&message) {
            return message;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} never {what}: {message}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A person who wrote to the page and gave their address with a consent of `scope`.
async fn customer(app: &TestApp, psid: &str, scope: &str, email: Option<&str>) {
    app.user_writes(psid, "hello", None).await;
    let mut body = json!({"recipient": {"psid": psid}, "scope": scope,
        "source": "checkout", "evidence": {"order": "A-1"}});
    if let Some(email) = email {
        body["email"] = json!(email);
    }
    let (status, body) = app.call(Role::Admin, "/v1/consents", body).await;
    assert_eq!(status, 201, "{body}");
}

/// The person blocks the page: Messenger answers 551 from now on.
async fn blocks_the_page(app: &TestApp, psid: &str) {
    app.sandbox_post(&format!("/users/{psid}/block"), json!({}))
        .await;
    app.expect_rejection(551);
}

/// A gateway in its own process and its Messenger stand-in, as a client reaches them.
struct Walk<'a> {
    sandbox: &'a str,
    herald: &'a str,
    token: &'a str,
}

/// The README's walk-through, step 6, over HTTP: `psid` exists in Messenger and consents with
/// `email`, blocks the page, and is sent a receipt for `order` (one tea towel); its message id.
async fn blocked_customer_gets_a_receipt(
    http: &reqwest::Client,
    at: &Walk<'_>,
    (psid, email, order): (&str, &str, &str),
) -> String {
    let (sandbox, herald) = (at.sandbox, at.herald);
    http.post(format!("{sandbox}/sandbox/users"))
        .json(&json!({"psid": psid}))
        .send()
        .await
        .expect("user");
    let consent = http
        .post(format!("{herald}/v1/consents"))
        .bearer_auth(at.token)
        .json(
            &json!({"recipient": {"psid": psid}, "scope": "transactional",
            "source": "checkout_checkbox", "evidence": {"order": order}, "email": email}),
        )
        .send()
        .await
        .expect("consent");
    assert_eq!(consent.status().as_u16(), 201);
    http.post(format!("{sandbox}/sandbox/users/{psid}/block"))
        .send()
        .await
        .expect("block");
    let sent = http
        .post(format!("{herald}/v1/receipts"))
        .bearer_auth(at.token)
        .json(
            &json!({"recipient": {"psid": psid}, "order": {"order_number": order,
            "currency": "EUR", "payment_method": "Visa 4242", "recipient_name": "Ada Lovelace",
            "summary": {"total_cost": 12.5}, "elements": [{"title": "Tea towel", "price": 12.5}]}}),
        )
        .send()
        .await
        .expect("receipt");
    assert_eq!(sent.status().as_u16(), 202);
    sent.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Every send the stand-in answered: taken, refused or failed on purpose.
fn graph_calls(app: &TestApp) -> u64 {
    let stats = app.stats();
    stats.accepted + stats.rejected + stats.injected_faults
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().expect("an id").to_owned()
}

/// The audit entries of message `id` to `psid`, oldest first.
async fn audit_of(app: &TestApp, psid: &str, id: &str) -> Vec<Value> {
    let (status, body) = app
        .read(
            Role::Compliance,
            &format!("/v1/audit?recipient={psid}&limit=200"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["entries"].as_array().cloned().unwrap_or_default();
    entries
        .into_iter()
        .filter(|e| e["message_id"] == json!(id))
        .collect()
}

#[tokio::test]
async fn a_receipt_to_a_person_who_blocked_the_page_arrives_by_email_with_its_order_number() {
    let smtp = SmtpServer::start().await;
    let app = app_with_email(&smtp, None).await;
    customer(&app, "7001", "transactional", Some("ada@example.com")).await;
    blocks_the_page(&app, "7001").await;
    let (status, body) = app.receipt("7001", "A-1001").await;
    assert_eq!(status, 202, "{body}");
    let id = id_of(&body);
    app.drain().await;

    let mail = smtp.wait_for(1, ARRIVAL).await;
    assert_eq!(mail[0].to, ["ada@example.com"]);
    assert_eq!(mail[0].header_from.as_deref(), Some("orders@shop.example"));
    assert!(mail[0].tls, "through STARTTLS");
    assert_eq!(
        mail[0].message_id.as_deref(),
        Some(&*format!("{id}@herald"))
    );
    let subject = mail[0].subject.clone().unwrap_or_default();
    assert!(subject.contains("A-1001"), "{subject}");
    for part in [&mail[0].text, &mail[0].html] {
        let part = part.clone().unwrap_or_default();
        assert!(part.contains("A-1001") && part.contains("Teapot"), "{part}");
        assert!(part.contains("44.50"), "the total: {part}");
    }

    let message = until_message(&app, &id, "was sent", |m| m["status"] == "sent").await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["channel"], "email");
    let attempts = message["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{message}");
    assert_eq!(attempts[0]["graph_error"]["code"], 551);
    assert_eq!(attempts[1]["channel"], "email");
    let reply = attempts[1]["reply"].as_str().unwrap_or_default();
    assert!(
        reply.starts_with("250") && reply.contains(&mail[0].queue_id),
        "the SMTP server's reply with its queue id: {reply}"
    );
    assert_eq!(message["fallback"]["outcome"], "allow");
    assert_eq!(
        message["fallback"]["rule"],
        "policies/default.toml#fallback.email"
    );
    let trace = message["fallback"]["trace"].to_string();
    assert!(trace.contains("Messenger cannot take it"), "{trace}");

    let audit = audit_of(&app, "7001", &id).await;
    let emailed = audit
        .iter()
        .find(|e| e["kind"] == "attempt" && e["channel"] == "email")
        .unwrap_or_else(|| panic!("the email attempt is audited: {audit:?}"));
    assert!(
        emailed["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&mail[0].queue_id)),
        "{emailed}"
    );
    let decided = audit
        .iter()
        .find(|e| e["kind"] == "decision" && e["channel"] == "email")
        .unwrap_or_else(|| panic!("the fallback's decision is audited: {audit:?}"));
    assert_eq!(decided["outcome"], "allow");
    assert!(
        decided["consent_id"].is_string(),
        "it names the consent: {decided}"
    );

    let (status, events) = app.read(Role::Admin, "/v1/events?type=message.sent").await;
    assert_eq!(status, 200, "{events}");
    let sent: Vec<&Value> = events["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["data"]["id"] == json!(id))
        .collect();
    assert_eq!(sent.len(), 1, "{events}");
    assert_eq!(sent[0]["data"]["channel"], "email");
}

#[tokio::test]
async fn erasure_removes_the_address_from_the_record_and_the_audit_log() {
    let smtp = SmtpServer::start().await;
    let app = app_with_email(&smtp, None).await;
    customer(&app, "7002", "transactional", Some("grace@example.com")).await;
    blocks_the_page(&app, "7002").await;
    let (_, body) = app.receipt("7002", "A-1002").await;
    let id = id_of(&body);
    until_message(&app, &id, "was sent", |m| m["status"] == "sent").await;
    smtp.wait_for(1, ARRIVAL).await;
    let before = audit_of(&app, "7002", &id).await;
    assert!(
        before
            .iter()
            .any(|e| e.to_string().contains("grace@example.com")),
        "the address the email went to is on record until erasure: {before:?}"
    );

    let (status, body) = app.erase("7002").await;
    assert_eq!(status, 200, "{body}");
    let after = audit_of(&app, "7002", &id).await;
    assert_eq!(after.len(), before.len());
    assert!(
        !after
            .iter()
            .any(|e| e.to_string().contains("grace@example.com")),
        "{after:?}"
    );
    let (_, person) = app.recipient("7002").await;
    assert!(
        !person.to_string().contains("grace@example.com"),
        "{person}"
    );
    let (status, verified) = app.read(Role::Compliance, "/v1/audit/verify").await;
    assert_eq!((status, &verified["ok"]), (200, &json!(true)), "{verified}");
}

#[tokio::test]
async fn marketing_and_people_without_consent_or_address_or_who_opted_out_never_get_email() {
    let smtp = SmtpServer::start().await;
    // A minute between tries: a message tried once waits until the test moves the clock.
    let app = app_with_email_and(&smtp, None, |s| {
        s.delivery.retry_base_ms = 60_000;
        s.delivery.retry_max_ms = 60_000;
    })
    .await;
    let expect_failed = |message: &Value, reason: &str| {
        assert_eq!(message["status"], "failed", "{message}");
        assert_eq!(message["channel"], "messenger", "{message}");
        assert_eq!(message["fallback"]["outcome"], "deny", "{message}");
        assert_eq!(message["fallback"]["reason"], reason, "{message}");
    };

    // Marketing, to a person with a marketing consent and an address.
    customer(&app, "7010", "marketing", Some("m@example.com")).await;
    blocks_the_page(&app, "7010").await;
    let (status, body) = app
        .call(
            Role::Marketer,
            "/v1/messages",
            json!({"recipient": {"psid": "7010"}, "category": "marketing",
                   "message": {"text": "20% off teapots"}}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let marketing = id_of(&body);

    // A receipt to a person with a consent but no address.
    customer(&app, "7011", "transactional", None).await;
    blocks_the_page(&app, "7011").await;
    let (_, body) = app.receipt("7011", "A-1011").await;
    let no_address = id_of(&body);

    // A receipt whose first try failed transiently; the person opts out of everything and
    // blocks the page before its retry.
    customer(&app, "7012", "transactional", Some("o@example.com")).await;
    app.sandbox_post("/faults", json!({"code": 2, "count": 1, "psid": "7012"}))
        .await;
    let (_, body) = app.receipt("7012", "A-1012").await;
    let opted_out = id_of(&body);
    until_message(&app, &opted_out, "was tried", |m| {
        m["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let r = app
        .http
        .delete(format!("{}/v1/consents/7012?scope=all", app.address))
        .bearer_auth(app.token(Role::Admin))
        .send()
        .await
        .expect("opt out");
    assert!(r.status().is_success(), "{:?}", r.text().await);
    blocks_the_page(&app, "7012").await;
    app.set_time(app.now() + chrono::Duration::minutes(2));

    let failed = |m: &Value| m["status"] == "failed";
    let marketing = until_message(&app, &marketing, "failed", failed).await;
    expect_failed(&marketing, "not_for_email");
    let no_address = until_message(&app, &no_address, "failed", failed).await;
    expect_failed(&no_address, "no_email_address");
    let opted = until_message(&app, &opted_out, "failed", failed).await;
    expect_failed(&opted, "opted_out");
    assert!(smtp.received().is_empty(), "{:?}", smtp.received());
}

#[tokio::test]
async fn an_smtp_server_that_is_down_then_up_loses_nothing_and_sends_once() {
    let smtp = SmtpServer::start().await;
    // A minute between tries (of the test's clock, which runs on): the server stays down for
    // as long as the test wants, and the message waits.
    let app = app_with_email_and(&smtp, None, |s| {
        s.delivery.retry_base_ms = 60_000;
        s.delivery.retry_max_ms = 60_000;
    })
    .await;
    customer(&app, "7020", "transactional", Some("kay@example.com")).await;
    blocks_the_page(&app, "7020").await;
    smtp.close().await;
    let (_, body) = app.receipt("7020", "A-1020").await;
    let id = id_of(&body);
    let waiting = until_message(&app, &id, "was tried by email", |m| {
        m["attempts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["channel"] == "email"))
    })
    .await;
    assert_eq!(
        (&waiting["status"], &waiting["channel"]),
        (&json!("queued"), &json!("email")),
        "{waiting}"
    );
    let tried = waiting["attempts"].as_array().expect("attempts");
    assert_eq!(tried.last().map(|a| &a["outcome"]), Some(&json!("retry")));
    assert!(
        tried
            .last()
            .and_then(|a| a["error"].as_str())
            .is_some_and(|e| e.starts_with("smtp")),
        "{waiting}"
    );

    smtp.open().await;
    app.set_time(app.now() + chrono::Duration::minutes(2));
    until_message(&app, &id, "was sent", |m| m["status"] == "sent").await;
    let mail = smtp.wait_for(1, ARRIVAL).await;
    assert!(mail[0]
        .subject
        .as_deref()
        .unwrap_or_default()
        .contains("A-1020"));
    assert_eq!(smtp.received().len(), 1, "once");
}

#[tokio::test]
async fn a_graph_outage_longer_than_outage_after_goes_by_email_and_the_breaker_closes_when_graph_answers(
) {
    // outage_after 40 s: an open breaker probes every 10 s. Tries a minute apart: nothing is
    // tried again unless the test moves its clock (which otherwise runs on).
    let policy =
        policy_copy(|text| text.replace("outage_after = \"10m\"", "outage_after = \"40s\""));
    let smtp = SmtpServer::start().await;
    let app = app_with_email_and(&smtp, Some(policy.path().to_path_buf()), |s| {
        s.delivery.retry_base_ms = 60_000;
        s.delivery.retry_max_ms = 60_000;
    })
    .await;
    customer(&app, "7030", "transactional", Some("lin@example.com")).await;
    customer(&app, "7031", "transactional", Some("max@example.com")).await;
    app.sandbox_post("/faults", json!({"code": 2, "count": 100_000}))
        .await;

    // Failing, not yet out: tried again later on Messenger.
    let (_, body) = app.receipt("7030", "A-1030").await;
    let first = id_of(&body);
    let tried = until_message(&app, &first, "was tried", |m| {
        m["attempts"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(tried["channel"], "messenger", "{tried}");
    assert_eq!(tried["attempts"][0]["outcome"], "retry", "{tried}");

    // Past outage_after: its retry is the probe, fails, and it goes by email.
    app.set_time(app.now() + chrono::Duration::seconds(61));
    let first_message = until_message(&app, &first, "was emailed", |m| m["status"] == "sent").await;
    assert_eq!(first_message["channel"], "email", "{first_message}");
    assert_eq!(
        first_message["fallback"]["rule"],
        "policies/default.toml#fallback.outage_after"
    );
    let calls = graph_calls(&app);

    // While the page is out, a receipt goes straight to email and a reply waits: Messenger is
    // not called.
    let (_, body) = app.receipt("7031", "A-1031").await;
    let second = id_of(&body);
    let (_, body) = app.respond("7030", "we are looking into it").await;
    let reply = id_of(&body);
    let second_message =
        until_message(&app, &second, "was emailed", |m| m["status"] == "sent").await;
    assert_eq!(second_message["channel"], "email", "{second_message}");
    assert_eq!(
        second_message["attempts"]
            .as_array()
            .map(|a| a.iter().filter(|a| a["channel"] != "email").count()),
        Some(0),
        "no call to an API that is out: {second_message}"
    );
    smtp.wait_for(2, ARRIVAL).await;
    app.drain_now().await;
    let waiting = app.message(&reply).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert_eq!(waiting["channel"], "messenger");
    assert_eq!(graph_calls(&app), calls, "Messenger is left alone");
    assert_eq!(
        metric(&app.http, &app.address, "herald_pages_out").await,
        1.0
    );

    // Messenger recovers: the next probe (the waiting reply) goes through and closes it.
    let cleared = app
        .http
        .delete(format!("{}/sandbox/faults", app.sandbox_url))
        .send()
        .await
        .expect("clear the faults");
    assert!(cleared.status().is_success());
    app.set_time(app.now() + chrono::Duration::seconds(11));
    until_message(&app, &reply, "was sent", |m| m["status"] == "sent").await;
    assert_eq!(
        metric(&app.http, &app.address, "herald_pages_out").await,
        0.0
    );
    let (_, body) = app.receipt("7031", "A-1032").await;
    let third = id_of(&body);
    let third_message = until_message(&app, &third, "was sent", |m| m["status"] == "sent").await;
    assert_eq!(third_message["channel"], "messenger", "{third_message}");
    assert_eq!(smtp.received().len(), 2, "{:?}", smtp.received());
}

#[tokio::test]
async fn kill_dash_nine_between_the_messenger_failure_and_the_email_loses_nothing_and_sends_one_email(
) {
    use secrecy::ExposeSecret;

    let smtp = SmtpServer::start().await;
    smtp.close().await;
    let settings = smtp.settings(FROM);
    let email = format!(
        "[email]\nsmtp_url = \"{}\"\nfrom = \"{FROM}\"\nca_file = \"{}\"\n",
        settings.smtp_url.expose_secret(),
        smtp.ca_file().display()
    );
    let mut launched = crate::crash::launch(&crate::helpers::policy_dir(), &email).await;
    let (http, sandbox) = (reqwest::Client::new(), launched.sandbox.base_url());
    let base = launched.gateway.base.clone();
    let token = crate::crash::backend_token();
    let id = blocked_customer_gets_a_receipt(
        &http,
        &Walk {
            sandbox: &sandbox,
            herald: &base,
            token: &token,
        },
        ("7040", "eve@example.com", "K-7040"),
    )
    .await;

    // Messenger said 551, the message went over to email, and the SMTP server is down: the
    // email is waiting for its next try when the process dies.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m: Value = http
            .get(format!("{base}/v1/messages/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let tried_email = m["attempts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["channel"] == "email"));
        if tried_email {
            // Waiting for its next try, or in it (tries come every 100–200 ms here).
            assert!(m["status"] == "queued" || m["status"] == "sending", "{m}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never tried by email: {m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crate::crash::sigkill(&mut launched.gateway);
    assert!(smtp.received().is_empty());

    smtp.open().await;
    let config = launched.dir.path().join("herald.toml");
    let gateway = crate::crash::start(&config, &launched.log).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    crate::crash::until_sent(&http, &gateway, &token, &id, deadline).await;
    let mail = smtp.wait_for(1, ARRIVAL).await;
    assert_eq!(mail[0].to, ["eve@example.com"]);
    assert_eq!(
        mail[0].message_id.as_deref(),
        Some(&*format!("{id}@herald"))
    );
    assert_eq!(smtp.received().len(), 1, "one email");
    let logs = std::fs::read_to_string(&launched.log).expect("log");
    let encoded =
        percent_encoding::utf8_percent_encode(smtp.password(), percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    for secret in [smtp.password(), encoded.as_str()] {
        assert!(
            !logs.contains(secret),
            "the SMTP password leaked into the logs"
        );
    }
}

/// The README's walk-through, step 6, on the real binary: `serve --sandbox` points the fallback
/// at its SMTP stand-in, and `GET /sandbox/mail` shows the receipt Messenger could not take.
#[tokio::test]
async fn serve_sandbox_emails_a_receipt_messenger_cannot_take_to_its_smtp_stand_in() {
    // The banner's `export HERALD=… SANDBOX=… TOKEN=…` line.
    let (mut child, exports) =
        crate::helpers::serve_sandbox(|l| l.trim_start().starts_with("export HERALD=")).await;
    let outcome = async {
        let exports = exports.expect("an export line in the banner");
        let var = |name: &str| {
            exports
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("{name} in {exports}"))
        };
        let (herald, sandbox, token) = (var("HERALD"), var("SANDBOX"), var("TOKEN"));
        let http = reqwest::Client::new();
        let walk = Walk {
            sandbox: &sandbox,
            herald: &herald,
            token: &token,
        };
        let id =
            blocked_customer_gets_a_receipt(&http, &walk, ("4242", "ada@example.com", "A-1002"))
                .await;
        loop {
            let mail: Value = http
                .get(format!("{sandbox}/sandbox/mail?to=ada@example.com"))
                .send()
                .await
                .expect("mail")
                .json()
                .await
                .expect("json");
            if let Some(first) = mail["data"].as_array().and_then(|m| m.first()) {
                assert!(
                    first["subject"]
                        .as_str()
                        .is_some_and(|s| s.contains("A-1002")),
                    "{mail}"
                );
                assert!(
                    first["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Tea towel")),
                    "{mail}"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The server's 250 comes a moment before Herald records it.
        loop {
            let message: Value = http
                .get(format!("{herald}/v1/messages/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("message")
                .json()
                .await
                .expect("json");
            assert_eq!(message["channel"], "email", "{message}");
            if message["status"] == "sent" {
                break;
            }
            assert_eq!(message["status"], "sending", "{message}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(30), outcome).await;
    let _ = child.kill();
    let _ = child.wait();
    result.expect("the receipt reached the sandbox's mailbox in time");
}
