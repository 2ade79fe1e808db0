//! The embedded Messenger sandbox over real HTTP: the Send API's rules and errors, the control
//! API, and signed webhooks delivered to a recording receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Duration;
use herald::clock::{Clock, ManualClock};
use herald::sandbox::{Sandbox, SandboxConfig, SandboxPage};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

const APP_SECRET: &str = "sandbox-app-secret";
const PAGE: &str = "1001";
const PAGE_TOKEN: &str = "page-token-1001";
/// A second page, outside the regions where Marketing Messages tokens still work.
const US_PAGE: &str = "2002";
const US_PAGE_TOKEN: &str = "page-token-2002";

/// A webhook the receiver got.
#[derive(Clone, Debug)]
struct Hook {
    signature: Option<String>,
    body: Vec<u8>,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook bodies are JSON")
    }

    /// The single event of a single-entry envelope.
    fn event(&self) -> Value {
        self.json()["entry"][0]["messaging"][0].clone()
    }
}

/// Stands in for Herald's `POST /webhooks/messenger`: records every call and answers 200.
struct WebhookReceiver {
    url: String,
    hooks: Arc<Mutex<Vec<Hook>>>,
    server: ServerHandle,
}

impl WebhookReceiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/webhooks/messenger",
            listener.local_addr().unwrap()
        );
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let recorded = web::Data::new(Arc::clone(&hooks));
        let server = HttpServer::new(move || {
            App::new().app_data(recorded.clone()).route(
                "/webhooks/messenger",
                web::post().to(
                    |request: HttpRequest,
                     body: web::Bytes,
                     hooks: web::Data<Arc<Mutex<Vec<Hook>>>>| async move {
                        let signature = request
                            .headers()
                            .get("X-Hub-Signature-256")
                            .map(|value| value.to_str().unwrap().to_owned());
                        hooks.lock().unwrap().push(Hook {
                            signature,
                            body: body.to_vec(),
                        });
                        HttpResponse::Ok().finish()
                    },
                ),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url,
            hooks,
            server: handle,
        }
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    fn last(&self) -> Hook {
        self.hooks().pop().expect("a webhook was received")
    }
}

struct TestSandbox {
    sandbox: Sandbox,
    clock: std::sync::Arc<ManualClock>,
    receiver: WebhookReceiver,
    http: reqwest::Client,
}

async fn spawn_sandbox() -> TestSandbox {
    spawn_sandbox_with_rate(300).await
}

async fn spawn_sandbox_with_rate(rate_per_page_per_second: u32) -> TestSandbox {
    let receiver = WebhookReceiver::start().await;
    let clock = ManualClock::at(crate::helpers::test_moment());
    let config = SandboxConfig {
        app_secret: APP_SECRET.to_owned(),
        pages: vec![
            SandboxPage {
                id: PAGE.to_owned(),
                access_token: PAGE_TOKEN.to_owned(),
                region: Some("eu".to_owned()),
            },
            SandboxPage {
                id: US_PAGE.to_owned(),
                access_token: US_PAGE_TOKEN.to_owned(),
                region: Some("US".to_owned()),
            },
        ],
        webhook_url: Some(receiver.url.clone()),
        auto_receipts: false,
        rate_per_page_per_second,
        clock: clock.clone(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let sandbox = Sandbox::start(config, listener).await.unwrap();
    TestSandbox {
        sandbox,
        clock,
        receiver,
        http: reqwest::Client::new(),
    }
}

impl TestSandbox {
    async fn stop(self) {
        self.sandbox.stop().await;
        self.receiver.server.stop(true).await;
    }

    /// A control call; answers the status and the JSON body.
    async fn control(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/sandbox{path}", self.sandbox.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// A new person.
    async fn user(&self) -> String {
        let (status, body) = self.control("/users", json!({})).await;
        assert_eq!(status, StatusCode::CREATED);
        body["psid"].as_str().unwrap().to_owned()
    }

    /// A new person whose last message to `PAGE` was `hours_ago` hours ago.
    async fn user_who_wrote(&self, hours_ago: i64) -> String {
        let psid = self.user().await;
        let at = self.clock.now() - Duration::hours(hours_ago);
        let (status, body) = self
            .control(
                &format!("/users/{psid}/messages"),
                json!({"text": "hello", "at": at.to_rfc3339()}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        psid
    }

    /// A JSON Send API call to `/v21.0/me/messages` with `PAGE`'s token.
    async fn send(&self, body: Value) -> (StatusCode, Value) {
        self.send_as(PAGE_TOKEN, "me", body).await
    }

    async fn send_as(&self, token: &str, node: &str, body: Value) -> (StatusCode, Value) {
        let url = format!("{}/v21.0/{node}/messages", self.sandbox.base_url());
        let response = self
            .http
            .post(url)
            .query(&[("access_token", token)])
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }
}

fn text_to(psid: &str, messaging_type: &str) -> Value {
    json!({"recipient": {"id": psid}, "messaging_type": messaging_type, "message": {"text": "Hi!"}})
}

fn tagged(psid: &str, tag: &str) -> Value {
    json!({"recipient": {"id": psid}, "messaging_type": "MESSAGE_TAG", "tag": tag,
           "message": {"text": "An update"}})
}

/// `(code, subcode)` of a Graph error body.
fn graph_error(body: &Value) -> (u64, Option<u64>) {
    let code = body["error"]["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("not a Graph error: {body}"));
    (code, body["error"]["error_subcode"].as_u64())
}

#[tokio::test]
async fn a_send_to_an_unknown_psid_finds_no_matching_user() {
    let app = spawn_sandbox().await;

    let (status, body) = app.send(text_to("4242424242424242", "RESPONSE")).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(graph_error(&body), (100, Some(2018001)), "{body}");
    assert_eq!(body["error"]["type"], "OAuthException");
    assert!(body["error"]["fbtrace_id"].is_string());
    let stats = app.sandbox.stats();
    assert_eq!((stats.accepted, stats.rejected), (0, 1));
    assert_eq!(
        stats.rejections[0].psid.as_deref(),
        Some("4242424242424242")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_message_opens_the_window_and_the_response_lands_in_the_inbox() {
    let app = spawn_sandbox().await;
    let psid = app.user().await;

    let (status, body) = app
        .control(
            &format!("/users/{psid}/messages"),
            json!({"text": "Where is my order?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["webhook_status"], 200, "Herald's answer is reported");
    let (status, body) = app.send(text_to(&psid, "RESPONSE")).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["recipient_id"], psid.as_str());
    let message_id = body["message_id"].as_str().unwrap();
    assert!(message_id.starts_with("m_"), "{message_id}");
    let inbox = app.sandbox.inbox(&psid);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].message_id, message_id);
    assert_eq!(inbox[0].page_id, PAGE);
    assert_eq!(inbox[0].body["message"]["text"], "Hi!");
    assert!(
        inbox[0].body.get("access_token").is_none(),
        "credentials are not kept"
    );
    let over_http: Value = app
        .http
        .get(format!(
            "{}/sandbox/users/{psid}/inbox",
            app.sandbox.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http[0]["message_id"], message_id);
    let stats = app.sandbox.stats();
    assert_eq!(
        (stats.accepted, stats.rejected, stats.injected_faults),
        (1, 0, 0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_message_25_hours_old_leaves_the_window_closed() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(25).await;

    for messaging_type in ["RESPONSE", "UPDATE"] {
        let (status, body) = app.send(text_to(&psid, messaging_type)).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{messaging_type}");
        assert_eq!(graph_error(&body), (10, Some(2018278)), "{messaging_type}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("(#10) This message is sent outside of allowed window."));
    }
    assert!(app.sandbox.inbox(&psid).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn postbacks_reactions_and_referrals_open_the_window_too() {
    let app = spawn_sandbox().await;
    let actions = [
        ("postbacks", json!({"payload": "GET_STARTED"}), "postback"),
        ("reactions", json!({"reaction": "like"}), "reaction"),
        ("referrals", json!({"ref": "summer-sale"}), "referral"),
    ];
    for (action, request, kind) in actions {
        let psid = app.user().await;
        let (status, body) = app
            .control(&format!("/users/{psid}/{action}"), request)
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
        assert!(
            app.receiver.last().event().get(kind).is_some(),
            "{action} webhook"
        );

        let (status, body) = app.send(text_to(&psid, "UPDATE")).await;

        assert_eq!(status, StatusCode::OK, "{action} opens the window: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn human_agent_may_answer_3_days_later_but_not_8() {
    let app = spawn_sandbox().await;
    let cases = [(72, None), (192, Some((10, Some(2018278))))];
    for (hours_ago, expected) in cases {
        let psid = app.user_who_wrote(hours_ago).await;

        let (_, body) = app.send(tagged(&psid, "HUMAN_AGENT")).await;

        let got = body.get("error").map(|_| graph_error(&body));
        assert_eq!(
            got, expected,
            "{hours_ago} h after the last message: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn post_purchase_update_is_retired_even_inside_the_window() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(1).await;

    let (status, body) = app.send(tagged(&psid, "POST_PURCHASE_UPDATE")).await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(graph_error(&body), (100, None), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_utility_template_is_accepted_outside_the_window() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(24 * 30).await;
    let template = json!({"name": "order_shipped", "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]}]});

    let (status, body) = app
        .send(
            json!({"recipient": {"id": psid}, "messaging_type": "UTILITY",
                     "message": {"template": template}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = app
        .send(
            json!({"recipient": {"id": psid}, "messaging_type": "UTILITY",
                     "message": {"text": "no template"}}),
        )
        .await;
    assert_eq!(graph_error(&body), (100, None), "UTILITY needs a template");
    app.stop().await;
}

#[tokio::test]
async fn a_marketing_token_allows_one_send_per_48_hours_and_stops_when_the_person_stops() {
    let app = spawn_sandbox().await;
    let psid = app.user().await;
    let (status, body) = app
        .control(
            &format!("/users/{psid}/marketing-optin"),
            json!({"title": "Deals"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["token"].as_str().unwrap().to_owned();
    let optin = app.receiver.last().event()["optin"].clone();
    assert_eq!(optin["type"], "notification_messages");
    assert_eq!(optin["notification_messages_token"], token.as_str());
    let to_token = |token: &str| json!({"recipient": {"notification_messages_token": token}, "message": {"text": "Sale!"}});

    let (status, body) = app.send(to_token(&token)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "outside the window a token works: {body}"
    );
    assert_eq!(body["recipient_id"], psid.as_str());
    let (_, body) = app.send(to_token(&token)).await;
    assert_eq!(
        graph_error(&body),
        (4, Some(2018354)),
        "second send within 48 h"
    );

    let (_, body) = app
        .control(&format!("/users/{psid}/marketing-optin"), json!({}))
        .await;
    let fresh = body["token"].as_str().unwrap().to_owned();
    let (status, _) = app
        .control(
            &format!("/users/{psid}/stop-notifications"),
            json!({"token": fresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stop = app.receiver.last().event()["optin"].clone();
    assert_eq!(stop["notification_messages_status"], "STOP NOTIFICATIONS");
    let (_, body) = app.send(to_token(&fresh)).await;
    assert_eq!(graph_error(&body), (10, Some(1893015)), "stopped token");

    let (_, body) = app.send(to_token("never-issued")).await;
    assert_eq!(graph_error(&body), (100, None), "unknown token");
    app.stop().await;
}

#[tokio::test]
async fn marketing_tokens_no_longer_work_for_a_page_outside_the_allowed_regions() {
    let app = spawn_sandbox().await;
    let psid = app.user().await;
    let (_, body) = app
        .control(
            &format!("/users/{psid}/marketing-optin"),
            json!({"page_id": US_PAGE}),
        )
        .await;
    let token = body["token"].as_str().unwrap();

    let (_, body) = app
        .send_as(
            US_PAGE_TOKEN,
            US_PAGE,
            json!({"recipient": {"notification_messages_token": token}, "message": {"text": "Sale!"}}),
        )
        .await;

    assert_eq!(graph_error(&body), (10, None), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_person_who_blocked_the_page_is_unavailable() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(1).await;
    let (status, _) = app
        .control(&format!("/users/{psid}/block"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (_, body) = app.send(text_to(&psid, "RESPONSE")).await;
    assert_eq!(graph_error(&body), (551, Some(1545041)), "{body}");
    assert_eq!(
        body["error"]["message"],
        "(#551) This person isn't available right now."
    );

    app.control(&format!("/users/{psid}/unblock"), json!({}))
        .await;
    let (status, _) = app.send(text_to(&psid, "RESPONSE")).await;
    assert_eq!(status, StatusCode::OK, "unblocked");
    app.stop().await;
}

#[tokio::test]
async fn a_token_that_is_not_the_pages_is_refused_with_190() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(1).await;
    let cases = [
        ("unknown token on /me", "nope", "me"),
        ("another page's token", US_PAGE_TOKEN, PAGE),
        ("unknown page", PAGE_TOKEN, "3003"),
    ];
    for (case, token, node) in cases {
        let (status, body) = app.send_as(token, node, text_to(&psid, "RESPONSE")).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(graph_error(&body), (190, None), "{case}");
    }
    let response = app
        .http
        .post(format!("{}/v21.0/{PAGE}/messages", app.sandbox.base_url()))
        .bearer_auth(PAGE_TOKEN)
        .json(&text_to(&psid, "RESPONSE"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "Authorization: Bearer works"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_injected_fault_fails_one_send_and_is_not_a_rule_rejection() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(1).await;
    let (status, _) = app
        .control(
            "/faults",
            json!({"code": 1200, "subcode": 2018024, "count": 1, "psid": psid, "retry_after": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let response = app
        .http
        .post(format!("{}/v21.0/me/messages", app.sandbox.base_url()))
        .query(&[("access_token", PAGE_TOKEN)])
        .json(&text_to(&psid, "RESPONSE"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(graph_error(&body), (1200, Some(2018024)));
    let (status, body) = app.send(text_to(&psid, "RESPONSE")).await;
    assert_eq!(status, StatusCode::OK, "the fault is used once: {body}");

    let stats = app.sandbox.stats();
    assert_eq!(
        (stats.accepted, stats.rejected, stats.injected_faults),
        (1, 0, 1)
    );
    assert!(stats.rejections.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn webhooks_are_signed_with_the_app_secret_over_the_raw_body() {
    let app = spawn_sandbox().await;
    let psid = app.user().await;
    let at = app.clock.now() - Duration::hours(2);
    let (_, body) = app
        .control(
            &format!("/users/{psid}/messages"),
            json!({"text": "hi", "at": at.to_rfc3339(), "mid": "m_fixed"}),
        )
        .await;
    assert_eq!(body["mid"], "m_fixed");

    let hook = app.receiver.last();
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).unwrap();
    mac.update(&hook.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hook.signature.as_deref(), Some(expected.as_str()));
    let envelope = hook.json();
    assert_eq!(envelope["object"], "page");
    assert_eq!(envelope["entry"][0]["id"], PAGE);
    let event = hook.event();
    assert_eq!(event["sender"]["id"], psid.as_str());
    assert_eq!(event["recipient"]["id"], PAGE);
    assert_eq!(event["timestamp"], at.timestamp_millis());
    assert_eq!(event["message"], json!({"mid": "m_fixed", "text": "hi"}));
    app.stop().await;
}

#[tokio::test]
async fn a_form_encoded_send_is_accepted() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(1).await;
    let recipient = json!({"id": psid}).to_string();
    let message = json!({"text": "from curl"}).to_string();

    let response = app
        .http
        .post(format!("{}/v25.0/{PAGE}/messages", app.sandbox.base_url()))
        .form(&[
            ("recipient", recipient.as_str()),
            ("messaging_type", "RESPONSE"),
            ("message", message.as_str()),
            ("access_token", PAGE_TOKEN),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let inbox = app.sandbox.inbox(&psid);
    assert_eq!(inbox[0].body["message"]["text"], "from curl");
    app.stop().await;
}

#[tokio::test]
async fn a_checkbox_user_ref_may_be_messaged_for_24_hours_after_opting_in() {
    let app = spawn_sandbox().await;
    let (_, body) = app
        .control("/checkbox", json!({"ref": "signup-form"}))
        .await;
    let user_ref = body["user_ref"].as_str().unwrap().to_owned();
    let event = app.receiver.last().event();
    assert!(
        event.get("sender").is_none(),
        "checkbox opt-ins have no sender"
    );
    assert_eq!(event["optin"]["user_ref"], user_ref.as_str());
    let to_user_ref = |user_ref: &str| {
        json!({"recipient": {"user_ref": user_ref}, "messaging_type": "UPDATE",
               "message": {"text": "Thanks for signing up"}})
    };

    let (status, body) = app.send(to_user_ref(&user_ref)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.get("recipient_id").is_none(),
        "no recipient_id for user_ref"
    );
    assert!(body["message_id"].is_string());
    assert_eq!(app.sandbox.inbox(&user_ref).len(), 1);

    let old = (app.clock.now() - Duration::hours(25)).to_rfc3339();
    let (_, body) = app
        .control("/checkbox", json!({"user_ref": "stale", "at": old}))
        .await;
    assert_eq!(body["user_ref"], "stale");
    let (_, body) = app.send(to_user_ref("stale")).await;
    assert_eq!(graph_error(&body), (10, Some(2018278)));
    app.stop().await;
}

#[tokio::test]
async fn shape_errors_answer_code_100() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(1).await;
    let cases = [
        (
            "message and sender_action",
            json!({"recipient": {"id": psid}, "message": {"text": "x"}, "sender_action": "typing_on"}),
            (100, Some(2018014)),
        ),
        (
            "text of 2000 characters",
            json!({"recipient": {"id": psid}, "messaging_type": "RESPONSE",
                   "message": {"text": "x".repeat(2000)}}),
            (100, None),
        ),
        (
            "receipt without summary",
            json!({"recipient": {"id": psid}, "messaging_type": "UPDATE", "message": {"attachment": {
                "type": "template", "payload": {"template_type": "receipt", "recipient_name": "Ada",
                "order_number": "1", "currency": "EUR", "payment_method": "Visa"}}}}),
            (100, None),
        ),
    ];
    for (case, request, expected) in cases {
        let (status, body) = app.send(request).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(graph_error(&body), expected, "{case}");
    }
    assert_eq!(app.sandbox.stats().rejected, 3);
    app.stop().await;
}

#[tokio::test]
async fn sends_over_the_page_rate_answer_613_with_a_usage_header() {
    // One send per second: the second of two back-to-back sends is over the limit.
    let app = spawn_sandbox_with_rate(1).await;
    let psid = app.user_who_wrote(1).await;
    let (status, _) = app.send(text_to(&psid, "RESPONSE")).await;
    assert_eq!(status, StatusCode::OK);

    let response = app
        .http
        .post(format!("{}/v21.0/me/messages", app.sandbox.base_url()))
        .query(&[("access_token", PAGE_TOKEN)])
        .json(&text_to(&psid, "RESPONSE"))
        .send()
        .await
        .unwrap();

    let usage = response.headers()["x-business-use-case-usage"]
        .to_str()
        .unwrap()
        .to_owned();
    let usage: Value = serde_json::from_str(&usage).unwrap();
    assert_eq!(usage[PAGE][0]["type"], "pages");
    let body: Value = response.json().await.unwrap();
    assert_eq!(graph_error(&body), (613, None));
    assert_eq!(
        body["error"]["message"],
        "(#613) Calls to this api have exceeded the rate limit."
    );
    app.stop().await;
}

#[tokio::test]
async fn deliveries_and_reads_report_the_pages_messages() {
    let app = spawn_sandbox().await;
    let psid = app.user_who_wrote(1).await;
    let (_, sent) = app.send(text_to(&psid, "RESPONSE")).await;

    let (status, body) = app
        .control(&format!("/users/{psid}/deliveries"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let delivery = app.receiver.last().event()["delivery"].clone();
    assert_eq!(delivery["mids"], json!([sent["message_id"]]));
    assert_eq!(delivery["watermark"], body["watermark"]);
    app.control(
        &format!("/users/{psid}/reads"),
        json!({"watermark": 1_700_000_000_000_i64}),
    )
    .await;
    let read = app.receiver.last().event()["read"].clone();
    assert_eq!(read, json!({"watermark": 1_700_000_000_000_i64}));
    assert_eq!(app.receiver.hooks().len(), 3, "message, delivery, read");
    app.stop().await;
}

#[tokio::test]
async fn control_errors_are_problem_documents() {
    let app = spawn_sandbox().await;
    let cases = [
        ("/users/1/messages", "{not json"),
        ("/users/1/messages", r#"{"page_id": "1001"}"#),
        ("/users/1/messages", r#"{"text": "hi", "page_id": "9999"}"#),
        ("/faults", r#"{"code": 1200, "count": 0}"#),
    ];
    for (path, body) in cases {
        let response = app
            .http
            .post(format!("{}/sandbox{path}", app.sandbox.base_url()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path} {body}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 400);
        assert!(problem["detail"].is_string());
    }
    app.stop().await;
}

/// `herald serve --sandbox` keeps its store where `HERALD_STORAGE__PATH` says, and the store
/// outlives the run (without it, the store is a throwaway one).
#[tokio::test]
async fn serve_sandbox_keeps_its_store_where_herald_storage_path_says() {
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().join("store");
    let (mut child, line) =
        crate::helpers::serve_sandbox_with(&[("HERALD_STORAGE__PATH", &store)], |l| {
            l.trim_start().starts_with("store ")
        })
        .await;
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a store line in the banner");
    assert_eq!(
        line.trim_start().strip_prefix("store").map(str::trim),
        store.to_str(),
        "{line}"
    );
    assert!(store.is_dir(), "the store outlives the run");
}
