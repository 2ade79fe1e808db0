//! The Graph-compatible endpoint, driven with the requests real Messenger client libraries make:
//!
//! - npm `messaging-api-messenger` (bottender): `POST {origin}/v{version}/me/messages?access_token=…
//!   &appsecret_proof=…` with a JSON body, `messaging_type` defaulting to `UPDATE`;
//! - PyPI `pymessenger`: `POST {graph_url}/me/messages` with `access_token` (and
//!   `appsecret_proof`) as query parameters, a JSON body with `notification_type: REGULAR` and no
//!   `messaging_type`;
//! - Meta's own curl example: form-encoded fields holding JSON strings, the token a form field;
//! - the newer Marketing Messages pages and fbmessenger's sessions: `Authorization: Bearer`.

use herald::domain::Role;
use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestOptions, APP_SECRET};

/// What a Node client built with `origin: <herald>/graph` and the default version calls.
const ME_MESSAGES: &str = "/graph/v6.0/me/messages";

fn proof(token: &str) -> String {
    herald::messenger::sign(APP_SECRET.as_bytes(), token.as_bytes())
        .trim_start_matches("sha256=")
        .to_owned()
}

impl TestApp {
    /// messaging-api-messenger: token and proof in the query, JSON body.
    async fn graph_query_token(&self, role: Role, body: &Value) -> Response {
        let token = self.token(role);
        self.http
            .post(format!("{}{ME_MESSAGES}", self.address))
            .query(&[
                ("access_token", &token),
                ("appsecret_proof", &proof(&token)),
            ])
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Newer Graph examples: `Authorization: Bearer`, JSON body, to `/{page_id}/messages`.
    async fn graph_bearer(&self, role: Role, path: &str, body: &Value) -> Response {
        self.http
            .post(format!("{}{path}", self.address))
            .bearer_auth(self.token(role))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Meta's curl example and form-mode clients: every field a form value, objects as JSON.
    async fn graph_form(&self, fields: &[(&str, String)]) -> Response {
        self.http
            .post(format!("{}{ME_MESSAGES}", self.address))
            .form(fields)
            .send()
            .await
            .expect("request")
    }
}

async fn json_of(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Sends a request built by hand; its status and JSON body.
async fn answered(r: reqwest::RequestBuilder) -> (u16, Value) {
    json_of(r.send().await.expect("request")).await
}

/// The answer is exactly this Graph error, with this HTTP status.
fn assert_refused(
    status: u16,
    answer: &Value,
    expected_status: u16,
    message: &str,
    code: u32,
    subcode: Option<u32>,
) {
    assert_eq!(status, expected_status, "{answer}");
    assert_eq!(*answer, graph_error(answer, message, code, subcode));
}

/// The Graph error's `message` ("" when the answer is no Graph error).
fn error_message(answer: &Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or_default()
}

/// A Graph error body with the trace id taken from the answer (it is random, or Herald's id).
fn graph_error(body: &Value, message: &str, code: u32, subcode: Option<u32>) -> Value {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": body["error"]["fbtrace_id"],
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    json!({ "error": error })
}

#[tokio::test]
async fn a_messaging_api_messenger_send_is_answered_as_graph_and_followed_by_herald_id() {
    let app = spawn_app().await;
    app.user_writes("7001", "where is my order?", None).await;
    let body = json!({"messaging_type": "RESPONSE", "recipient": {"id": "7001"},
                      "message": {"text": "It left the warehouse today."}});
    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();
    assert!(id.starts_with("msg_"), "Herald's id: {answer}");
    assert_eq!(answer, json!({"recipient_id": "7001", "message_id": id}));

    app.drain().await;
    let inbox = app.inbox("7001");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].body["messaging_type"], "RESPONSE");
    assert_eq!(
        inbox[0].body["message"]["text"],
        "It left the warehouse today."
    );
    let message = app.message(&id).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert_eq!(message["category"], "response");
    assert_eq!(message["graph_message_id"], json!(inbox[0].message_id));
}

#[tokio::test]
async fn a_pymessenger_send_without_messaging_type_is_a_response() {
    let app = spawn_app().await;
    app.user_writes("7002", "hi", None).await;
    let body = json!({"recipient": {"id": "7002"}, "message": {"text": "Hello!"},
                      "notification_type": "REGULAR"});
    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    app.drain().await;
    let inbox = app.inbox("7002");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].body["messaging_type"], "RESPONSE");
}

#[tokio::test]
async fn form_encoded_fields_holding_json_and_a_bearer_token_are_taken() {
    let app = spawn_app().await;
    app.user_writes("7003", "hi", None).await;
    let token = app.token(Role::Backend);
    let (status, answer) = json_of(
        app.graph_form(&[
            ("recipient", r#"{"id":"7003"}"#.to_owned()),
            ("messaging_type", "RESPONSE".to_owned()),
            ("message", r#"{"text":"Sent as a form"}"#.to_owned()),
            ("access_token", token.clone()),
            ("appsecret_proof", proof(&token)),
        ])
        .await,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["recipient_id"], "7003");

    let path = format!("/graph/v25.0/{}/messages", crate::helpers::PAGE_ID);
    let body = json!({"recipient": {"id": "7003"}, "messaging_type": "RESPONSE",
                      "message": {"text": "Sent with a bearer token"}});
    let (status, answer) = json_of(app.graph_bearer(Role::Backend, &path, &body).await).await;
    assert_eq!(status, 200, "{answer}");

    app.drain().await;
    // Both went out (in either order: the worker sends what is due side by side).
    let mut texts: Vec<String> = app
        .inbox("7003")
        .iter()
        .filter_map(|m| m.body["message"]["text"].as_str().map(str::to_owned))
        .collect();
    texts.sort();
    assert_eq!(texts, ["Sent as a form", "Sent with a bearer token"]);
}

#[tokio::test]
async fn a_missing_or_bad_token_is_oauth_error_190() {
    let app = spawn_app().await;
    let body = json!({"recipient": {"id": "7004"}, "message": {"text": "hi"}});
    let r = app
        .http
        .post(format!("{}{ME_MESSAGES}", app.address))
        .json(&body);
    let (status, answer) = answered(r).await;
    assert_refused(
        status,
        &answer,
        401,
        "Invalid OAuth access token - missing bearer token",
        190,
        None,
    );

    let r = app
        .http
        .post(format!(
            "{}{ME_MESSAGES}?access_token=EAAB-a-page-token",
            app.address
        ))
        .json(&body);
    let (status, answer) = answered(r).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], 190, "{answer}");
    assert_eq!(answer["error"]["type"], "OAuthException");
    assert!(
        error_message(&answer).starts_with("Invalid OAuth access token - invalid token"),
        "{answer}"
    );
}

#[tokio::test]
async fn outside_the_window_a_reply_is_refused_with_messengers_10_2018278() {
    let app = spawn_app().await;
    app.consent("7005", "transactional", None).await;
    let body = json!({"messaging_type": "RESPONSE", "recipient": {"id": "7005"},
                      "message": {"text": "Are you still there?"}});
    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
    assert_eq!(status, 400);
    let id = answer["error"]["fbtrace_id"]
        .as_str()
        .expect("trace id")
        .to_owned();
    assert_eq!(
        answer,
        graph_error(
            &answer,
            &format!("(#10) This message is sent outside of allowed window. Herald: outside_window by policies/default.toml#response.outside_window (message {id})."),
            10,
            Some(2018278)
        )
    );
    let message = app.message(&id).await;
    assert_eq!(message["status"], "denied", "the refusal is on record");
    app.drain().await;
    assert!(app.inbox("7005").is_empty());
}

#[tokio::test]
async fn a_retired_tag_goes_out_as_the_utility_template_never_as_the_dead_tag() {
    let app = spawn_app().await;
    app.create_user("7006").await;
    app.consent("7006", "transactional", None).await;
    let receipt = json!({"attachment": {"type": "template", "payload": {
        "template_type": "receipt", "recipient_name": "Ada Lovelace", "order_number": "A-77",
        "currency": "EUR", "payment_method": "Visa 4242",
        "summary": {"total_cost": 42.5},
        "elements": [{"title": "Teapot", "price": 42.5}]}}});
    let body = json!({"messaging_type": "MESSAGE_TAG", "tag": "POST_PURCHASE_UPDATE",
                      "recipient": {"id": "7006"}, "message": receipt});
    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    app.drain().await;
    let inbox = app.inbox("7006");
    assert_eq!(inbox.len(), 1);
    let sent = &inbox[0].body;
    assert_eq!(sent["messaging_type"], "UTILITY", "{sent}");
    assert!(sent.get("tag").is_none(), "no dead tag: {sent}");
    assert_eq!(sent["message"]["template"]["name"], "herald_order_receipt");
    let message = app
        .message(answer["message_id"].as_str().expect("id"))
        .await;
    assert_eq!(message["category"], "receipt");

    // A free-form ACCOUNT_UPDATE has no template to go as: refused like Messenger's window.
    let body = json!({"messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE",
                      "recipient": {"id": "7006"}, "message": {"text": "Your password changed"}});
    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
    assert_eq!(
        (
            status,
            &answer["error"]["code"],
            &answer["error"]["error_subcode"]
        ),
        (400, &json!(10), &json!(2018278)),
        "{answer}"
    );
    assert!(
        error_message(&answer).contains("template_required"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_utility_request_takes_the_category_whose_policy_names_the_template() {
    let app = spawn_app().await;
    app.create_user("7007").await;
    app.consent("7007", "transactional", None).await;
    let body = json!({"messaging_type": "UTILITY", "recipient": {"id": "7007"},
        "message": {"template": {"name": "herald_shipping_update", "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [
                {"type": "text", "text": "A-78"}, {"type": "text", "text": "has shipped"},
                {"type": "text", "text": "JD0001"}]}]}}});
    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    let message = app
        .message(answer["message_id"].as_str().expect("id"))
        .await;
    assert_eq!(message["category"], "shipping_update");
    app.drain().await;
    let inbox = app.inbox("7007");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].body["messaging_type"], "UTILITY");
    assert_eq!(
        inbox[0].body["message"]["template"]["components"][0]["parameters"][2]["text"],
        "JD0001"
    );

    // Inside the window too, a template goes as UTILITY: it has no other form.
    app.user_writes("7007", "thanks", None).await;
    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    app.drain().await;
    assert_eq!(app.inbox("7007")[1].body["messaging_type"], "UTILITY");
}

#[tokio::test]
async fn update_is_marketing_unless_x_herald_category_names_a_transactional_one() {
    let app = spawn_app().await;
    app.user_writes("7008", "hi", None).await;
    let body = json!({"messaging_type": "UPDATE", "recipient": {"id": "7008"},
                      "message": {"text": "Your address was changed"}});
    // The Node library's default: UPDATE. A backend may not send marketing.
    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], 10, "{answer}");
    assert!(answer["error"].get("error_subcode").is_none(), "{answer}");

    let r = app
        .http
        .post(format!("{}{ME_MESSAGES}", app.address))
        .bearer_auth(app.token(Role::Backend))
        .header("X-Herald-Category", "account_update")
        .json(&body);
    let (status, answer) = answered(r).await;
    assert_eq!(status, 200, "{answer}");
    let message = app
        .message(answer["message_id"].as_str().expect("id"))
        .await;
    assert_eq!(message["category"], "account_update");
    app.drain().await;
    assert_eq!(app.inbox("7008")[0].body["messaging_type"], "UPDATE");
}

#[tokio::test]
async fn token_sends_are_marketing_and_answer_messengers_token_errors() {
    let app = spawn_app().await;
    let optin = app
        .sandbox_post(
            "/users/7009/marketing-optin",
            json!({"timezone": "Europe/Berlin", "title": "Deals"}),
        )
        .await;
    let token = optin["token"].as_str().expect("token").to_owned();
    let body = json!({"recipient": {"notification_messages_token": token},
                      "message": {"text": "20% off teapots"}});

    let (status, answer) = json_of(app.graph_query_token(Role::Marketer, &body).await).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["recipient_id"], "7009");
    app.drain().await;
    let inbox = app.inbox("7009");
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        inbox[0].body["recipient"]["notification_messages_token"],
        json!(token)
    );

    // Within the token's 48 h cooldown: Messenger's 4/2018354, and nothing is kept for later.
    let (status, answer) = json_of(app.graph_query_token(Role::Marketer, &body).await).await;
    assert_eq!(status, 400);
    let id = answer["error"]["fbtrace_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        answer,
        graph_error(
            &answer,
            &format!("(#4) The minimum delay between 2 notifications has not passed. Herald: marketing_token_cooldown by policies/default.toml#marketing.token_cooldown (message {id})."),
            4,
            Some(2018354)
        )
    );
    assert_eq!(app.message(&id).await["status"], "denied");

    // The person stops the notifications: Messenger's 10/1893015.
    app.sandbox_post("/users/7009/stop-notifications", json!({}))
        .await;
    let (status, answer) = json_of(app.graph_query_token(Role::Marketer, &body).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        (&answer["error"]["code"], &answer["error"]["error_subcode"]),
        (&json!(10), &json!(1893015)),
        "{answer}"
    );

    // A token Herald never saw: Messenger's 100.
    let unknown = json!({"recipient": {"notification_messages_token": "nope"},
                         "message": {"text": "x"}});
    let (status, answer) = json_of(app.graph_query_token(Role::Marketer, &unknown).await).await;
    assert_refused(
        status,
        &answer,
        400,
        "(#100) Param recipient[notification_messages_token] is invalid or has expired",
        100,
        None,
    );
    app.drain().await;
    assert_eq!(app.inbox("7009").len(), 1, "nothing more went out");
}

#[tokio::test]
async fn bad_requests_are_error_100_naming_the_parameter() {
    let app = spawn_app().await;
    app.user_writes("7010", "hi", None).await;
    let cases = [
        (
            json!({"recipient": {"id": "7010"}, "messaging_type": "RESPONSE", "message": {"text": "x".repeat(2000)}}),
            "(#100) Param message[text] must be under 2,000 characters (Messenger's limit)",
        ),
        (
            json!({"recipient": {"id": "7010"}, "messaging_type": "RESPONSE"}),
            "(#100) Param message is required (or sender_action)",
        ),
        (
            json!({"recipient": {"id": "7010"}, "messaging_type": "SOMETIMES", "message": {"text": "x"}}),
            "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG, UTILITY}",
        ),
        (
            json!({"recipient": {"id": "7010"}, "messaging_type": "RESPONSE",
                   "message": {"attachment": {"type": "image", "payload": {"url": "https://cdn.example/t.png", "is_reusable": true}}}}),
            "(#100) Param message[attachment][payload][is_reusable] is not supported. Herald does not upload or store files: send attachments by `payload.url` (without is_reusable) or by an `attachment_id` uploaded to Messenger directly",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer, graph_error(&answer, message, 100, None), "{body}");
    }

    // The Attachment Upload API is refused the same way, naming what is supported.
    let r = app
        .http
        .post(format!(
            "{}/graph/v6.0/me/message_attachments",
            app.address
        ))
        .bearer_auth(app.token(Role::Backend))
        .json(&json!({"message": {"attachment": {"type": "image", "payload": {"is_reusable": true}}}}));
    let (status, answer) = answered(r).await;
    assert_refused(status, &answer, 400, "(#100) Param filedata is not supported. Herald does not upload or store files: send attachments by `payload.url` (without is_reusable) or by an `attachment_id` uploaded to Messenger directly", 100, None);
    app.drain().await;
    assert!(app.inbox("7010").is_empty());
}

#[tokio::test]
async fn over_its_quota_a_client_gets_613_with_retry_after() {
    let app = spawn_app_with(TestOptions {
        client_quota: Some(1),
        ..TestOptions::default()
    })
    .await;
    app.user_writes("7011", "hi", None).await;
    let body = json!({"recipient": {"id": "7011"}, "messaging_type": "RESPONSE", "message": {"text": "one"}});
    let first = app.graph_query_token(Role::Backend, &body).await;
    assert_eq!(first.status().as_u16(), 200);
    let second = app.graph_query_token(Role::Backend, &body).await;
    assert_eq!(second.status().as_u16(), 400);
    assert_eq!(
        second
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let (_, answer) = json_of(second).await;
    assert_eq!(
        answer,
        graph_error(
            &answer,
            "(#613) Calls to this api have exceeded the rate limit.",
            613,
            None
        )
    );
}

#[tokio::test]
async fn sender_actions_pass_through_only_while_the_window_is_open() {
    let app = spawn_app().await;
    app.consent("7012", "transactional", None).await;
    let typing = json!({"recipient": {"id": "7012"}, "sender_action": "typing_on"});
    let before = app.stats().accepted;

    let (status, answer) = json_of(app.graph_query_token(Role::Backend, &typing).await).await;
    assert_refused(
        status,
        &answer,
        400,
        "(#10) This message is sent outside of allowed window.",
        10,
        Some(2018278),
    );
    assert_eq!(app.stats().accepted, before, "Messenger was not called");

    app.user_writes("7012", "hello?", None).await;
    for action in ["typing_on", "mark_seen", "typing_off"] {
        let body = json!({"recipient": {"id": "7012"}, "sender_action": action});
        let (status, answer) = json_of(app.graph_query_token(Role::Backend, &body).await).await;
        assert_eq!(status, 200, "{action}: {answer}");
        assert_eq!(answer, json!({"recipient_id": "7012"}), "{action}");
    }
    assert_eq!(app.stats().accepted, before + 3, "each went to Messenger");
    assert!(app.inbox("7012").is_empty(), "no message was sent");
}
