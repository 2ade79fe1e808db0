use herald::messenger::sign;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp, APP_SECRET, VERIFY_TOKEN};

#[tokio::test]
async fn the_subscription_handshake_echoes_the_challenge_only_for_the_right_token() {
    let app = spawn_app().await;
    let url = |token: &str| {
        format!("{}/webhooks/messenger?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444", app.address)
    };
    let ok = app.http.get(url(VERIFY_TOKEN)).send().await.expect("get");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.expect("text"), "1158201444");
    let bad = app.http.get(url("guess")).send().await.expect("get");
    assert_eq!(bad.status().as_u16(), 403);
}

fn user_message(app: &TestApp, psid: &str, mid: &str) -> serde_json::Value {
    json!({"object": "page", "entry": [{"id": crate::helpers::PAGE_ID, "time": 1, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": crate::helpers::PAGE_ID},
        "timestamp": app.now().timestamp_millis(),
        "message": {"mid": mid, "text": "let me in"}}]}]})
}

#[tokio::test]
async fn a_forged_webhook_changes_nothing() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&user_message(&app, "4001", "m_forged")).expect("json");
    let post = |signature: Option<String>| {
        let mut req = app
            .http
            .post(format!("{}/webhooks/messenger", app.address))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(s) = signature {
            req = req.header("X-Hub-Signature-256", s);
        }
        req.send()
    };
    for signature in [
        None,
        Some(sign(b"not-the-app-secret", &body)),
        Some("sha256=00".into()),
    ] {
        let r = post(signature.clone()).await.expect("post");
        assert_eq!(r.status().as_u16(), 403, "{signature:?}");
    }
    let (status, _) = app.recipient("4001").await;
    assert_eq!(status, 404, "no recipient was created");
    app.consent("4001", "transactional", None).await;
    let (status, answer) = app.respond("4001", "hello?").await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (422, Some("outside_window"))
    );
    // The same body, signed with the app secret, is accepted and opens the window.
    let r = post(Some(sign(APP_SECRET.as_bytes(), &body)))
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let (_, recipient) = app.recipient("4001").await;
    assert_eq!(recipient["window"]["open"], true, "{recipient}");
    let (status, answer) = app.evaluate_response("4001").await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("allow")),
        "{answer}"
    );
}

#[tokio::test]
async fn a_redelivered_event_is_applied_once() {
    let app = spawn_app().await;
    let body = serde_json::to_vec(&user_message(&app, "4002", "m_once")).expect("json");
    for _ in 0..3 {
        let r = app
            .http
            .post(format!("{}/webhooks/messenger", app.address))
            .header("X-Hub-Signature-256", sign(APP_SECRET.as_bytes(), &body))
            .body(body.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }
    let (_, recipient) = app.recipient("4002").await;
    assert_eq!(
        recipient["consents"].as_array().map(Vec::len),
        Some(1),
        "{recipient}"
    );
}

#[tokio::test]
async fn deliveries_and_reads_advance_the_message_status() {
    let app = spawn_app().await;
    app.user_writes("4003", "hi", None).await;
    let (_, body) = app.respond("4003", "hello").await;
    let id = body["id"].as_str().expect("id").to_owned();
    app.drain().await;
    assert_eq!(app.message(&id).await["status"], "sent");
    app.sandbox_post("/users/4003/deliveries", json!({})).await;
    assert_eq!(app.message(&id).await["status"], "delivered");
    app.sandbox_post("/users/4003/reads", json!({})).await;
    let message = app.message(&id).await;
    assert_eq!(message["status"], "read");
    let history: Vec<&str> = message["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["queued", "sent", "delivered", "read"]);
}

#[tokio::test]
async fn a_parked_event_is_applied_when_retried() {
    let app = spawn_app().await;
    let event = json!({"page_id": crate::helpers::PAGE_ID, "event": {
        "sender": {"id": "4004"}, "recipient": {"id": crate::helpers::PAGE_ID},
        "timestamp": app.now().timestamp_millis(),
        "message": {"mid": "m_parked", "text": "I was parked"}}});
    app.handle()
        .herald
        .store
        .recipients
        .park_event(&event)
        .await
        .expect("park");
    let (status, _) = app.recipient("4004").await;
    assert_eq!(status, 404, "not applied yet");
    let applied = app
        .handle()
        .herald
        .retry_parked_events()
        .await
        .expect("retry");
    assert_eq!(applied, 1);
    let (_, recipient) = app.recipient("4004").await;
    assert_eq!(recipient["window"]["open"], true, "{recipient}");
    assert!(app
        .handle()
        .herald
        .store
        .recipients
        .parked_events(10)
        .await
        .expect("parked")
        .is_empty());
}

#[tokio::test]
async fn a_referral_is_kept_as_attribution_and_opens_the_window() {
    let app = spawn_app().await;
    app.sandbox_post(
        "/users/4005/referrals",
        json!({"ref": "spring-sale", "source": "SHORTLINK"}),
    )
    .await;
    let (_, recipient) = app.recipient("4005").await;
    assert_eq!(
        recipient["attributions"][0]["ref"], "spring-sale",
        "{recipient}"
    );
    assert_eq!(recipient["attributions"][0]["source"], "SHORTLINK");
    assert_eq!(recipient["window"]["open"], true);
    let (status, body) = app.respond("4005", "Welcome!").await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_checkbox_opt_in_lets_the_shop_send_the_receipt_to_the_user_ref() {
    let app = spawn_app().await;
    receipt_after_a_checkbox(&app, "cart-7781").await;
    app.drain().await;
    let inbox = app.inbox("cart-7781");
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].body["recipient"]["user_ref"], "cart-7781");
    app.assert_no_rejections();
}

/// A person ticks the checkbox at checkout as `user_ref`, and the shop sends them the order's
/// receipt: its message id.
async fn receipt_after_a_checkbox(app: &TestApp, user_ref: &str) -> String {
    let answer = app
        .sandbox_post(
            "/checkbox",
            json!({"user_ref": user_ref, "ref": "checkout"}),
        )
        .await;
    assert_eq!(answer["webhook_status"], 200, "{answer}");
    let (status, body) = app
        .call(
            herald::domain::Role::Backend,
            "/v1/receipts",
            json!({
                "recipient": {"user_ref": user_ref},
                "order": {"order_number": "C-1", "currency": "USD", "payment_method": "Visa",
                          "recipient_name": "Grace", "summary": {"total_cost": 10}}
            }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// A delivery from `psid` naming `mid`, with a watermark before anything was sent: only the
/// `mid` can match a message.
fn delivery_naming(psid: &str, mid: &str) -> serde_json::Value {
    envelope(
        crate::helpers::PAGE_ID,
        json!({"sender": {"id": psid}, "recipient": {"id": crate::helpers::PAGE_ID},
               "timestamp": 1, "delivery": {"mids": [mid], "watermark": 1}}),
    )
}

/// Receipts find a message by its Graph id: a message to a PSID among that PSID's latest sends
/// (its Graph id is not indexed), a message to a `user_ref` through the index of Graph ids, as
/// its receipts come from the PSID Messenger gave the person.
#[tokio::test]
async fn a_delivery_naming_its_mid_moves_a_message_to_a_psid_and_one_to_a_user_ref() {
    let app = spawn_app().await;
    app.user_writes("4004", "hi", None).await;
    let (_, body) = app.respond("4004", "hello").await;
    let to_psid = body["id"].as_str().expect("id").to_owned();
    let to_user_ref = receipt_after_a_checkbox(&app, "cart-7782").await;
    app.drain().await;
    for (id, sender) in [(&to_psid, "4004"), (&to_user_ref, "5502")] {
        let message = app.message(id).await;
        assert_eq!(message["status"], "sent", "{message}");
        let mid = message["graph_message_id"].as_str().expect("graph id");
        let status = post_signed(&app.http, &app.address, &delivery_naming(sender, mid)).await;
        assert_eq!(status, 200);
        let message = app.message(id).await;
        assert_eq!(message["status"], "delivered", "{message}");
    }
}

/// Posts `body` to the webhook, signed with the app secret; returns the status.
async fn post_signed(http: &reqwest::Client, base: &str, body: &serde_json::Value) -> u16 {
    let bytes = serde_json::to_vec(body).expect("json");
    http.post(format!("{base}/webhooks/messenger"))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", sign(APP_SECRET.as_bytes(), &bytes))
        .body(bytes)
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16()
}

/// One event of `page` from `psid`, in a page envelope.
fn envelope(page: &str, event: serde_json::Value) -> serde_json::Value {
    json!({"object": "page", "entry": [{"id": page, "time": 1, "messaging": [event]}]})
}

/// The year 262142 in milliseconds: a moment chrono can hold but no arithmetic can move.
const YEAR_262142: i64 = 8_210_266_876_799_999;

/// Once, a signed webhook from the year 262142 made every later read of the person and every
/// send to them panic (the connection dropped), in the real binary.
#[tokio::test]
async fn a_webhook_from_the_year_262142_is_taken_as_received_and_the_person_stays_reachable() {
    use crate::crash::{backend_token, client_token, launch, Launched};
    use herald::domain::Role;
    // The directory (the store, the log) lives as long as the test.
    let Launched {
        dir: _dir,
        sandbox,
        gateway,
        log,
    } = launch(&crate::helpers::policy_dir(), "").await;
    let http = reqwest::Client::new();
    let psid = "4101";
    http.post(format!("{}/sandbox/users", sandbox.base_url()))
        .json(&json!({"psid": psid}))
        .send()
        .await
        .expect("user");
    let page = crate::helpers::PAGE_ID;
    let before = chrono::Utc::now();
    let status = post_signed(
        &http,
        &gateway.base,
        &envelope(
            page,
            json!({
        "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": YEAR_262142,
        "message": {"mid": "m_far", "text": "hello from the future"}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let status = post_signed(
        &http,
        &gateway.base,
        &envelope(
            page,
            json!({
        "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": YEAR_262142,
        "optin": {"type": "notification_messages", "notification_messages_token": "tok-far",
            "token_expiry_timestamp": YEAR_262142}}),
        ),
    )
    .await;
    assert_eq!(status, 200);

    let r = http
        .get(format!("{}/v1/recipients/{psid}", gateway.base))
        .bearer_auth(client_token("auditor", Role::Compliance))
        .send()
        .await
        .expect("the recipient is read, the connection stays");
    assert_eq!(r.status().as_u16(), 200);
    let recipient: serde_json::Value = r.json().await.expect("json");
    let last = recipient["window"]["last_user_interaction_at"]
        .as_str()
        .expect("an interaction");
    let last = crate::helpers::at(last);
    assert!(
        last >= before - chrono::TimeDelta::seconds(1) && last <= chrono::Utc::now(),
        "taken as the receive time: {recipient}"
    );
    assert_eq!(recipient["window"]["open"], true);
    assert_eq!(
        recipient["marketing_token"]["expires_at"], "9999-12-31T23:59:59Z",
        "a token expiry past year 9999 is clamped there: {recipient}"
    );

    let r = http
        .post(format!("{}/v1/messages", gateway.base))
        .bearer_auth(backend_token())
        .json(&json!({"recipient": {"psid": psid}, "category": "response",
            "message": {"text": "Hello, present day"}}))
        .send()
        .await
        .expect("the send is answered, the connection stays");
    assert_eq!(r.status().as_u16(), 202);

    let metrics = crate::helpers::metrics_text(&http, &gateway.base).await;
    for line in [
        r#"herald_webhook_moments_out_of_range_total{field="timestamp"} 2"#,
        r#"herald_webhook_moments_out_of_range_total{field="token_expiry_timestamp"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }

    // Another page's event is logged (at debug, as this gateway logs) without the person.
    let stranger = "4109876543210";
    let status = post_signed(
        &http,
        &gateway.base,
        &envelope(
            "999999999999999",
            json!({
        "sender": {"id": stranger}, "recipient": {"id": "999999999999999"},
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "message": {"mid": "m_other_page", "text": "hi"}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("not in [messenger.pages] ignored"), "{text}");
    assert!(
        !text.contains(stranger),
        "the PSID stays out of the log:\n{text}"
    );
}

/// A far date that reached the store before the edge bounded them must not fail a read.
#[tokio::test]
async fn a_far_date_already_stored_does_not_fail_the_recipients_view() {
    let app = spawn_app().await;
    app.consent("4102", "transactional", None).await;
    let far = chrono::DateTime::from_timestamp_millis(YEAR_262142).expect("a chrono date");
    app.handle()
        .herald
        .store
        .recipients
        .update_recipient(
            "4102",
            None,
            Box::new(move |r| {
                r.last_user_interaction_at = Some(far);
                Vec::new()
            }),
        )
        .await
        .expect("stored");
    let (status, recipient) = app.recipient("4102").await;
    assert_eq!(status, 200, "{recipient}");
    assert_eq!(recipient["window"]["open"], true);
}

#[tokio::test]
async fn events_for_a_page_that_is_not_configured_record_nothing_and_are_counted() {
    let app = spawn_app().await;
    let page = crate::helpers::PAGE_ID;
    let other = "999999999999999";
    let message = |psid: &str, mid: &str, to: &str| {
        json!({"sender": {"id": psid}, "recipient": {"id": to},
            "timestamp": app.now().timestamp_millis(), "message": {"mid": mid, "text": "hi"}})
    };
    // Another page's entry; and our page's entry naming another page as the recipient.
    for (entry, to, psid) in [(other, other, "4201"), (page, other, "4202")] {
        let status = post_signed(
            &app.http,
            &app.address,
            &envelope(entry, message(psid, psid, to)),
        )
        .await;
        assert_eq!(status, 200, "Messenger is not made to redeliver");
        let (status, body) = app.recipient(psid).await;
        assert_eq!(status, 404, "nothing recorded for {psid}: {body}");
    }
    let status = post_signed(
        &app.http,
        &app.address,
        &envelope(
            other,
            json!({"sender": {"id": "4201"}, "recipient": {"id": other},
            "timestamp": app.now().timestamp_millis(),
            "optin": {"type": "notification_messages", "notification_messages_token": "t"}}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.recipient("4201").await.0,
        404,
        "no marketing opt-in either"
    );

    // The same event for the configured page is applied.
    let status = post_signed(
        &app.http,
        &app.address,
        &envelope(page, message("4203", "m3", page)),
    )
    .await;
    assert_eq!(status, 200);
    let (status, recipient) = app.recipient("4203").await;
    assert_eq!((status, &recipient["window"]["open"]), (200, &json!(true)));

    let text = app
        .get("/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    for line in [
        r#"herald_webhook_events_ignored_total{reason="unknown_page",type="message"} 2"#,
        r#"herald_webhook_events_ignored_total{reason="unknown_page",type="optin"} 1"#,
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn a_full_width_or_zero_width_stop_keyword_opts_out_of_marketing() {
    let app = spawn_app().await;
    let page = crate::helpers::PAGE_ID;
    for (psid, text) in [
        ("4301", "ＳＴＯＰ"),
        ("4302", "S\u{200B}TOP"),
        ("4303", "\u{FEFF}ｓｔｏｐ\u{2060}"),
    ] {
        app.consent(psid, "marketing", None).await;
        let event = json!({"sender": {"id": psid}, "recipient": {"id": page},
            "timestamp": app.now().timestamp_millis(),
            "message": {"mid": format!("m_{psid}"), "text": text}});
        assert_eq!(
            post_signed(&app.http, &app.address, &envelope(page, event)).await,
            200
        );
        let (_, recipient) = app.recipient(psid).await;
        assert_eq!(
            (
                &recipient["opt_outs"]["marketing"],
                &recipient["consent"]["marketing"]
            ),
            (&json!(true), &json!(false)),
            "{text:?} is a stop keyword: {recipient}"
        );
    }
}
