use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_receipt_to_someone_without_consent_is_denied_and_nothing_reaches_messenger() {
    let app = spawn_app().await;
    app.create_user("1001").await;
    let (status, body) = app.receipt("1001", "A-1").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["reason"], "no_consent");
    assert!(
        body["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("policies/")),
        "{body}"
    );
    let id = body["message_id"]
        .as_str()
        .expect("message_id of the audit record");
    app.drain().await;
    assert_eq!(app.message(id).await["status"], "denied");
    assert!(app.inbox("1001").is_empty());
    assert_eq!(app.stats().accepted, 0);
}

#[tokio::test]
async fn a_receipt_outside_the_window_goes_as_a_utility_template() {
    let app = spawn_app().await;
    app.create_user("1002").await;
    app.consent("1002", "transactional", None).await;
    let (status, body) = app.receipt("1002", "A-2").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["decision"]["messaging_type"], "UTILITY");
    app.drain().await;
    let inbox = app.inbox("1002");
    assert_eq!(inbox.len(), 1);
    let sent = &inbox[0].body;
    assert_eq!(sent["messaging_type"], "UTILITY");
    assert!(
        sent.get("tag").is_none(),
        "retired tags are never sent: {sent}"
    );
    let params = &sent["message"]["template"]["components"][0]["parameters"];
    let texts: Vec<&str> = params
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"A-2"),
        "the order number fills a parameter: {texts:?}"
    );
    let id = body["id"].as_str().expect("id");
    let message = app.message(id).await;
    assert_eq!(message["status"], "sent");
    assert_eq!(message["graph_message_id"], inbox[0].message_id.as_str());
    assert_eq!(
        message["decision"], body["decision"],
        "GET shows the decision as answered, trace included"
    );
    assert!(message["decision"]["trace"]
        .as_array()
        .is_some_and(|t| t.len() > 3));
    app.assert_no_rejections();
}

#[tokio::test]
async fn a_receipt_inside_the_window_goes_as_a_receipt_template_with_update() {
    let app = spawn_app().await;
    app.user_writes("1003", "where is my order?", None).await;
    let (status, body) = app.receipt("1003", "A-3").await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    let inbox = app.inbox("1003");
    assert_eq!(inbox.len(), 1);
    let sent = &inbox[0].body;
    assert_eq!(sent["messaging_type"], "UPDATE");
    let payload = &sent["message"]["attachment"]["payload"];
    assert_eq!(payload["template_type"], "receipt");
    assert_eq!(payload["order_number"], "A-3");
    assert_eq!(payload["summary"]["total_cost"], 44.5);
    app.assert_no_rejections();
}

#[tokio::test]
async fn a_shipping_update_with_a_tracking_url_carries_a_button() {
    let app = spawn_app().await;
    app.user_writes("1004", "hello", None).await;
    let (status, body) = app
        .call(Role::Backend, "/v1/shipping-updates", json!({
            "recipient": {"psid": "1004"}, "order_number": "A-4", "status": "out_for_delivery",
            "carrier": "DHL", "tracking_number": "JD014600", "tracking_url": "https://track.example/JD014600"
        }))
        .await;
    assert_eq!(status, 202, "{body}");
    app.drain().await;
    let sent = &app.inbox("1004")[0].body;
    let payload = &sent["message"]["attachment"]["payload"];
    assert_eq!(payload["template_type"], "button");
    assert_eq!(
        payload["buttons"][0]["url"],
        "https://track.example/JD014600"
    );
    assert!(payload["text"]
        .as_str()
        .is_some_and(|t| t.contains("A-4") && t.contains("out for delivery")));
    app.assert_no_rejections();
}

#[tokio::test]
async fn invalid_bodies_get_400_naming_each_bad_field() {
    let app = spawn_app().await;
    // Messenger wants a text under 2,000 characters: exactly 2,000 is refused.
    let long = "x".repeat(2000);
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "/v1/messages",
            json!({"recipient": {"psid": "1"}, "category": "response", "message": {"text": long}}),
            vec!["message.text"],
        ),
        (
            "/v1/messages",
            json!({"recipient": {"psid": "1"}, "category": "response", "message": {}}),
            vec!["message"],
        ),
        (
            "/v1/messages",
            json!({"recipient": {"psid": "1"}, "category": "newsletter", "message": {"text": "x"}}),
            vec!["category"],
        ),
        (
            "/v1/messages",
            json!({"category": "response", "message": {"text": "x"}}),
            vec!["recipient"],
        ),
        (
            "/v1/receipts",
            json!({"recipient": {"psid": "1"}, "order": {
            "order_number": "A", "currency": "EUR", "payment_method": "Visa", "recipient_name": "A",
            "summary": {}, "elements": [{"title": "t"}]}}),
            vec!["order.elements[0].price", "order.summary.total_cost"],
        ),
        (
            "/v1/receipts",
            json!({"recipient": {"psid": "1"}, "order": {
            "order_number": "A", "currency": "EUR", "payment_method": "Visa", "recipient_name": "A",
            "summary": {"total_cost": 1}, "elements": vec![json!({"title": "t", "price": 1}); 101]}}),
            vec!["order.elements"],
        ),
        (
            "/v1/shipping-updates",
            json!({"recipient": {"psid": "1"}, "order_number": "A", "status": "teleported"}),
            vec!["status"],
        ),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = app.call(Role::Backend, path, body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        let mut fields: Vec<&str> = answer["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        fields.sort();
        assert_eq!(fields, expected, "{path}: {answer}");
    }
    let r = app
        .http
        .post(format!("{}/v1/messages", app.address))
        .bearer_auth(app.token(Role::Backend))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = spawn_app().await;
    app.user_writes("1005", "hi", None).await;
    let token = app.token(Role::Backend);
    let body =
        json!({"recipient": {"psid": "1005"}, "category": "response", "message": {"text": "once"}});
    let post = |body: Value| {
        app.http
            .post(format!("{}/v1/messages", app.address))
            .bearer_auth(&token)
            .header("Idempotency-Key", "order-A-5-reply")
            .json(&body)
            .send()
    };
    let first = post(body.clone()).await.expect("first");
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.expect("json");
    let again = post(body.clone()).await.expect("again");
    assert_eq!(again.status().as_u16(), 202);
    let again: Value = again.json().await.expect("json");
    assert_eq!(first["id"], again["id"]);
    let other = post(json!({"recipient": {"psid": "1005"}, "category": "response", "message": {"text": "twice"}}))
        .await
        .expect("other");
    assert_eq!(other.status().as_u16(), 409);
    app.drain().await;
    assert_eq!(app.inbox("1005").len(), 1, "sent once");
}

#[tokio::test]
async fn a_message_with_send_at_waits_and_then_goes() {
    let app = spawn_app().await;
    app.user_writes("1006", "hi", None).await;
    let at = app.now() + chrono::Duration::minutes(10);
    let (status, body) = app
        .send(
            json!({"recipient": {"psid": "1006"}, "category": "response",
                     "message": {"text": "later"}, "send_at": at.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "deferred");
    let id = body["id"].as_str().expect("id");
    app.drain().await;
    assert!(app.inbox("1006").is_empty(), "not before send_at");
    app.set_time(at + chrono::Duration::seconds(1));
    app.drain().await;
    let message = app.message(id).await;
    assert_eq!(message["status"], "sent", "{message}");
    assert!(
        message["decision"]["trace"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "the decision taken at send time keeps its trace: {message}"
    );
    let sent_at = message["history"][1]["at"].as_str().expect("sent at");
    let sent_at = chrono::DateTime::parse_from_rfc3339(sent_at).expect("time");
    assert!(sent_at >= at, "not before send_at: {sent_at} < {at}");
    app.assert_no_rejections();
}

#[tokio::test]
async fn a_recipient_named_two_ways_or_with_unknown_keys_is_refused_naming_recipient() {
    let app = spawn_app().await;
    let recipients = [
        json!({"psid": "1006", "id": "1007"}),
        json!({"psid": "1006", "user_ref": "ref-1"}),
        json!({"id": "1006", "user_ref": "ref-1"}),
        json!({"psid": "1006", "phone_number": "+15551234567"}),
        json!({"psid": "1006", "name": {"first_name": "Ada"}}),
        json!({}),
    ];
    for recipient in recipients {
        for (path, body) in [
            (
                "/v1/messages",
                json!({"recipient": recipient, "category": "response", "message": {"text": "x"}}),
            ),
            (
                "/v1/shipping-updates",
                json!({"recipient": recipient, "order_number": "A", "status": "shipped"}),
            ),
            (
                "/v1/consents",
                json!({"recipient": recipient, "scope": "transactional", "source": "checkout",
                       "evidence": {"order": "A-1"}}),
            ),
        ] {
            let (status, answer) = app.call(Role::Backend, path, body).await;
            assert_eq!(status, 400, "{path} {recipient}: {answer}");
            let fields: Vec<&str> = answer["errors"]
                .as_array()
                .expect("errors")
                .iter()
                .filter_map(|e| e["field"].as_str())
                .collect();
            assert_eq!(fields, ["recipient"], "{path} {recipient}: {answer}");
        }
    }
    // Unknown top-level keys are refused by name on every body, as unknown parameters are.
    for (path, body) in [
        (
            "/v1/messages",
            json!({"recipient": {"psid": "1006"}, "category": "response",
                   "message": {"text": "x"}, "priority": "high"}),
        ),
        (
            "/v1/consents",
            json!({"recipient": {"psid": "1006"}, "scope": "transactional", "source": "checkout",
                   "evidence": {"order": "A-1"}, "priority": "high"}),
        ),
        (
            "/v1/policy/evaluate",
            json!({"recipient": {"psid": "1006"}, "category": "response",
                   "message": {"text": "x"}, "priority": "high"}),
        ),
    ] {
        let (status, answer) = app.call(Role::Backend, path, body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(
            answer["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["field"] == "priority")),
            "{path}: {answer}"
        );
    }
}

#[tokio::test]
async fn the_decisions_one_read_of_a_recipient_gives_its_record_and_its_recent_sends() {
    let app = spawn_app().await;
    app.create_user("4242").await;
    app.consent("4242", "transactional", Some("Europe/Berlin"))
        .await;
    app.user_writes("4242", "hi", None).await;
    for text in ["one", "two"] {
        let (status, body) = app.respond("4242", text).await;
        assert_eq!(status, 202, "{body}");
    }
    let store = &app.handle().herald.store;
    let since = app.now() - chrono::Duration::hours(1);
    let (record, sends) = store
        .recipients
        .recipient_with_sends("4242", since)
        .await
        .expect("one read");
    assert!(record.is_some(), "the record is read");
    as_read_alone(&app, "4242", since, &record, &sends).await;
    assert_eq!(sends.len(), 2, "{sends:?}");

    let (nobody, none) = store
        .recipients
        .recipient_with_sends("5555", since)
        .await
        .expect("one read");
    assert!(nobody.is_none() && none.is_empty(), "an unknown recipient");
}

#[tokio::test]
async fn decisions_reading_together_each_get_their_own_recipient_and_sends() {
    let app = spawn_app().await;
    // Four people with none to three recent sends each, and one Herald never heard of.
    let people = ["4301", "4302", "4303", "4304"];
    for (n, psid) in people.iter().enumerate() {
        app.create_user(psid).await;
        app.consent(psid, "transactional", Some("Europe/Berlin"))
            .await;
        app.user_writes(psid, "hi", None).await;
        for i in 0..n {
            let (status, body) = app.respond(psid, &format!("answer {i}")).await;
            assert_eq!(status, 202, "{body}");
        }
    }
    let store = &app.handle().herald.store;
    let since = app.now() - chrono::Duration::hours(1);
    // Asked at once (PostgreSQL reads what queues together in one statement), one key twice.
    let asked = ["4304", "5555", "4301", "4303", "4302", "4304"];
    let together = futures_util::future::join_all(
        asked
            .iter()
            .map(|key| store.recipients.recipient_with_sends(key, since)),
    )
    .await;
    for (key, read) in asked.iter().zip(together) {
        let (record, sends) = read.expect("read together");
        as_read_alone(&app, key, since, &record, &sends).await;
    }
    let counts: Vec<usize> = futures_util::future::join_all(
        asked
            .iter()
            .map(|key| store.recipients.recipient_with_sends(key, since)),
    )
    .await
    .into_iter()
    .map(|read| read.map_or(usize::MAX, |(_, sends)| sends.len()))
    .collect();
    assert_eq!(
        counts,
        vec![3, 0, 0, 2, 1, 3],
        "each one's own number of sends"
    );
}

/// Asserts that a decision's read of `key` gave the record and the sends (newest first) that
/// reading each alone gives.
async fn as_read_alone(
    app: &crate::helpers::TestApp,
    key: &str,
    since: chrono::DateTime<chrono::Utc>,
    record: &Option<herald::domain::RecipientRecord>,
    sends: &[herald::domain::facts::RecentSend],
) {
    let store = &app.handle().herald.store;
    let alone = store.recipients.recipient(key).await.expect("recipient");
    assert_eq!(
        serde_json::to_value(record).expect("json"),
        serde_json::to_value(&alone).expect("json"),
        "{key}: the same record as read alone"
    );
    assert_eq!(
        sends,
        store
            .recipients
            .recent_sends(key, since)
            .await
            .expect("sends"),
        "{key}: the same sends, newest first"
    );
}
