//! The events feed `GET /v1/events` and the inbound events it tells: read from the audit log,
//! oldest first, a cursor that neither loses nor repeats, filters, the roles' views.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald::domain::audit::AuditKind;
use herald::domain::Role;
use herald::messenger::sign;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, APP_SECRET, PAGE_ID};

/// `GET /v1/events?<query>` with `token`: status and body.
async fn feed_with(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    let r = app.get(&format!("/v1/events?{query}"), Some(token)).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every event `role` sees with `query`, page after page (`limit` each) until an empty page.
async fn all_events(app: &TestApp, role: Role, query: &str, limit: usize) -> Vec<Value> {
    all_events_with(app, &app.token(role), query, limit).await
}

async fn all_events_with(app: &TestApp, token: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = String::new();
    for _ in 0..10_000 {
        let (status, page) = feed_with(app, token, &format!("{query}&limit={limit}{after}")).await;
        assert_eq!(status, 200, "{page}");
        let got = page["events"].as_array().expect("events").clone();
        assert!(
            got.len() <= limit,
            "a page of {} for limit {limit}",
            got.len()
        );
        let cursor = page["next_cursor"].as_str().expect("a cursor").to_owned();
        after = format!("&after={cursor}");
        if got.is_empty() {
            return events;
        }
        events.extend(got);
    }
    panic!("the feed never ended");
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Posts `body` to the webhook as Messenger would: the bytes, signed with the app secret.
async fn post_signed(app: &TestApp, bytes: &[u8]) -> u16 {
    app.http
        .post(format!("{}/webhooks/messenger", app.address))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", sign(APP_SECRET.as_bytes(), bytes))
        .body(bytes.to_vec())
        .send()
        .await
        .expect("webhook")
        .status()
        .as_u16()
}

fn envelope(events: Vec<Value>) -> Value {
    json!({"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": events}]})
}

fn from_person(app: &TestApp, psid: &str, ms_later: i64, what: (&str, Value)) -> Value {
    let mut event = json!({"sender": {"id": psid}, "recipient": {"id": PAGE_ID},
        "timestamp": app.now().timestamp_millis() + ms_later});
    event[what.0] = what.1;
    event
}

#[tokio::test]
async fn a_message_is_told_queued_sent_delivered_read_in_order() {
    let app = spawn_app().await;
    app.user_writes("7001", "hi", None).await;
    let (status, body) = app.respond("7001", "your parcel left").await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    app.drain().await;
    app.sandbox_post("/users/7001/deliveries", json!({})).await;
    app.sandbox_post("/users/7001/reads", json!({})).await;
    let events = all_events(&app, Role::Compliance, "type=message.*", 100).await;
    assert_eq!(
        types(&events),
        [
            "message.queued",
            "message.sent",
            "message.delivered",
            "message.read"
        ]
    );
    let graph_id = app.message(&id).await["graph_message_id"].clone();
    for (event, status) in events.iter().zip(["queued", "sent", "delivered", "read"]) {
        let data = &event["data"];
        assert_eq!(data["id"], id.as_str(), "{event}");
        assert_eq!(data["status"], status);
        assert_eq!(data["recipient"]["id"], "7001");
        assert_eq!(data["page_id"], PAGE_ID);
        assert_eq!(data["category"], "response");
        assert_eq!(data["client"], "test-backend");
        assert!(event["id"].as_str().is_some_and(|i| i.starts_with("evt_")));
    }
    assert_eq!(events[1]["data"]["graph_message_id"], graph_id);
    let at = |i: usize| events[i]["at"].as_str().expect("at").to_owned();
    assert!(at(0) <= at(1) && at(1) <= at(2) && at(2) <= at(3));
}

#[tokio::test]
async fn a_denial_is_told_with_its_reason() {
    let app = spawn_app().await;
    app.consent("7002", "transactional", None).await;
    let (status, body) = app.respond("7002", "hello?").await;
    assert_eq!(status, 422, "{body}");
    let events = all_events(&app, Role::Admin, "type=message.*", 100).await;
    assert_eq!(types(&events), ["message.denied"]);
    let data = &events[0]["data"];
    assert_eq!(data["reason"], "outside_window");
    assert_eq!(data["id"], body["message_id"]);
    assert_eq!(data["recipient"]["id"], "7002");
}

#[tokio::test]
async fn what_a_customer_does_is_told_as_inbound_events_with_what_it_carried() {
    let app = spawn_app().await;
    app.user_writes("7003", "where is my parcel?", None).await;
    app.sandbox_post(
        "/users/7003/postbacks",
        json!({"payload": "GET_STARTED", "title": "Start", "ref": "spring-sale"}),
    )
    .await;
    app.sandbox_post(
        "/users/7003/reactions",
        json!({"reaction": "love", "mid": "m_ours"}),
    )
    .await;
    app.sandbox_post(
        "/users/7003/referrals",
        json!({"ref": "summer", "source": "SHORTLINK"}),
    )
    .await;
    let photo = envelope(vec![from_person(
        &app,
        "7003",
        1,
        (
            "message",
            json!({"mid": "m_photo", "attachments": [
                {"type": "image", "payload": {"url": "https://cdn.example/p.jpg"}}]}),
        ),
    )]);
    assert_eq!(
        post_signed(&app, &serde_json::to_vec(&photo).expect("json")).await,
        200
    );

    let events = all_events(&app, Role::Compliance, "type=inbound.*", 100).await;
    assert_eq!(
        types(&events),
        [
            "inbound.message",
            "inbound.postback",
            "inbound.reaction",
            "inbound.referral",
            "inbound.message"
        ]
    );
    for e in &events {
        assert_eq!(e["data"]["psid"], "7003", "{e}");
        assert_eq!(e["data"]["page_id"], PAGE_ID);
        for kept_for_messenger_format in ["raw", "signature", "post_types"] {
            assert!(e["data"].get(kept_for_messenger_format).is_none(), "{e}");
        }
    }
    assert_eq!(events[0]["data"]["text"], "where is my parcel?");
    assert!(events[0]["data"]["mid"].as_str().is_some());
    assert_eq!(events[1]["data"]["payload"], "GET_STARTED");
    assert_eq!(events[1]["data"]["title"], "Start");
    assert_eq!(events[1]["data"]["ref"], "spring-sale");
    assert_eq!(events[2]["data"]["reaction"], "love");
    assert_eq!(events[2]["data"]["action"], "react");
    assert_eq!(events[2]["data"]["mid"], "m_ours");
    assert!(events[2]["data"]["emoji"].as_str().is_some());
    assert_eq!(events[3]["data"]["ref"], "summer");
    assert_eq!(events[3]["data"]["source"], "SHORTLINK");
    assert_eq!(
        events[4]["data"]["attachments"],
        json!([{"type": "image", "url": "https://cdn.example/p.jpg"}])
    );

    // The audit log's readers know the new kind.
    let (status, audit) = app.read(Role::Compliance, "/v1/audit?kind=inbound").await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["kind"], "inbound");
    assert_eq!(entries[0]["outcome"], "message");
    assert_eq!(entries[0]["event"]["text"], "where is my parcel?");
    assert!(entries[0]["event"].get("raw").is_none(), "{}", entries[0]);
    assert!(entries[0]["event"].get("post_types").is_none());
    let (status, verify) = app.read(Role::Compliance, "/v1/audit/verify").await;
    assert_eq!((status, &verify["ok"]), (200, &json!(true)), "{verify}");
    let export = app
        .get(
            "/v1/audit/export?format=jsonl&kind=inbound",
            Some(&app.token(Role::Compliance)),
        )
        .await
        .text()
        .await
        .expect("export");
    assert_eq!(export.lines().count(), 5, "{export}");
    assert!(export.contains("where is my parcel?"));
}

/// A webhook is Messenger's, signed, and may hold a whole batch of events: a customer's text
/// with U+0000 (which PostgreSQL cannot store) is taken, told with U+FFFD in its place.
#[tokio::test]
async fn a_customers_text_with_u0000_is_taken_and_told_with_a_replacement_character() {
    let app = spawn_app().await;
    app.user_writes("7010", "where\u{0}is it?", None).await;
    let events = all_events(&app, Role::Compliance, "type=inbound.message", 100).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["text"], "where\u{FFFD}is it?");
    let (status, body) = app.respond("7010", "it is on its way").await;
    assert_eq!(status, 202, "the window opened: {body}");
}

#[tokio::test]
async fn the_first_inbound_entry_of_a_post_keeps_its_bytes_and_signature() {
    let app = spawn_app().await;
    let body = envelope(vec![
        from_person(
            &app,
            "7004",
            0,
            ("message", json!({"mid": "m_a", "text": "one"})),
        ),
        from_person(
            &app,
            "7004",
            1,
            (
                "reaction",
                json!({"mid": "m_a", "reaction": "like", "action": "react"}),
            ),
        ),
    ]);
    // Messenger's bytes, spaced as it spaces them: kept as posted, not as re-encoded.
    let bytes = serde_json::to_vec_pretty(&body).expect("json");
    assert_eq!(post_signed(&app, &bytes).await, 200);
    // On PostgreSQL an entry about a page is in its partition's chain.
    let audit = &app.handle().herald.store.audit;
    let mut entries = Vec::new();
    for (chain, _) in audit.chains().await.expect("chains") {
        entries.extend(audit.read_chain(chain, 0, 100).await.expect("read"));
    }
    let inbound: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == AuditKind::Inbound)
        .collect();
    assert_eq!(inbound.len(), 2);
    let first = inbound[0].personal.as_ref().and_then(|p| p.event.clone());
    let first = first.expect("what it carried");
    assert_eq!(
        first["raw"].as_str().map(str::as_bytes),
        Some(bytes.as_slice())
    );
    assert_eq!(first["signature"], sign(APP_SECRET.as_bytes(), &bytes));
    assert_eq!(
        first["post_types"],
        json!(["inbound.message", "inbound.reaction"])
    );
    let second = inbound[1].personal.as_ref().and_then(|p| p.event.clone());
    assert!(
        second.expect("carried").get("raw").is_none(),
        "once per POST"
    );
}

#[tokio::test]
async fn a_redelivered_webhook_writes_no_second_inbound_event_but_two_reactions_are_two() {
    let app = spawn_app().await;
    let react = |reaction: &str, later: i64| {
        from_person(
            &app,
            "7005",
            later,
            (
                "reaction",
                json!({"mid": "m_x", "reaction": reaction, "action": "react"}),
            ),
        )
    };
    let message = from_person(
        &app,
        "7005",
        0,
        ("message", json!({"mid": "m_1", "text": "hi"})),
    );
    let postback = from_person(
        &app,
        "7005",
        1,
        ("postback", json!({"mid": "m_2", "payload": "P"})),
    );
    let referral = from_person(&app, "7005", 2, ("referral", json!({"ref": "r1"})));
    let posts = [
        envelope(vec![message, postback, referral]),
        envelope(vec![react("love", 3)]),
        envelope(vec![react("like", 4)]),
    ];
    for _ in 0..3 {
        for body in &posts {
            let bytes = serde_json::to_vec(body).expect("json");
            assert_eq!(post_signed(&app, &bytes).await, 200);
        }
    }
    let events = all_events(&app, Role::Compliance, "type=inbound.*", 100).await;
    assert_eq!(
        types(&events),
        [
            "inbound.message",
            "inbound.postback",
            "inbound.referral",
            "inbound.reaction",
            "inbound.reaction"
        ]
    );
    assert_eq!(events[3]["data"]["reaction"], "love");
    assert_eq!(events[4]["data"]["reaction"], "like");
}

#[tokio::test]
async fn consents_are_told_with_their_source() {
    let app = spawn_app().await;
    app.consent("7006", "marketing", None).await;
    app.user_writes("7006", "STOP", None).await;
    let events = all_events(&app, Role::Compliance, "type=consent.*", 100).await;
    let told: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default(),
                e["data"]["source"].as_str().unwrap_or_default(),
                e["data"]["scope"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        told,
        [
            ("consent.granted", "api", "marketing"),
            ("consent.granted", "user_message", "transactional"),
            ("consent.opted_out", "stop_keyword", "marketing"),
        ]
    );
    assert!(events.iter().all(|e| e["data"]["psid"] == "7006"));
    let stop = all_events(&app, Role::Compliance, "type=inbound.message", 100).await;
    assert_eq!(stop[0]["data"]["text"], "STOP");
}

#[tokio::test]
async fn after_erasure_the_persons_events_carry_no_psid_nor_text() {
    let app = spawn_app().await;
    app.user_writes("7007", "my address is 1 Main St", None)
        .await;
    app.user_writes("7008", "someone else", None).await;
    let (status, body) = app.erase("7007").await;
    assert_eq!(status, 200, "{body}");
    let events = all_events(&app, Role::Compliance, "recipient=7007", 100).await;
    assert!(types(&events).contains(&"inbound.message"), "{events:?}");
    assert!(types(&events).contains(&"recipient.erased"), "{events:?}");
    let text = serde_json::to_string(&events).expect("json");
    assert!(!text.contains("7007"), "{text}");
    assert!(!text.contains("Main St"), "{text}");
    let everything =
        serde_json::to_string(&all_events(&app, Role::Admin, "", 100).await).expect("json");
    assert!(!everything.contains("7007") && !everything.contains("Main St"));
    assert!(
        everything.contains("someone else"),
        "only that person's values go"
    );
}

#[tokio::test]
async fn a_cursor_neither_loses_nor_repeats_while_events_are_written() {
    let app = spawn_app().await;
    for i in 0..5 {
        app.consent(&format!("71{i:02}"), "transactional", None)
            .await;
    }
    let done = AtomicBool::new(false);
    let writer = async {
        for i in 5..45 {
            app.consent(&format!("71{i:02}"), "transactional", None)
                .await;
            if i % 10 == 0 {
                app.user_writes(&format!("71{i:02}"), "hi", None).await;
            }
        }
        done.store(true, Ordering::SeqCst);
    };
    let reader = async {
        let token = app.token(Role::Compliance);
        let mut seen = Vec::new();
        let mut after = String::new();
        let mut empty_after_done = false;
        let mut pages_while_writing = 0;
        while !empty_after_done {
            let finished = done.load(Ordering::SeqCst);
            let (status, page) = feed_with(&app, &token, &format!("limit=2{after}")).await;
            assert_eq!(status, 200, "{page}");
            let got = page["events"].as_array().expect("events").clone();
            after = format!("&after={}", page["next_cursor"].as_str().expect("cursor"));
            empty_after_done = finished && got.is_empty();
            if !finished && !got.is_empty() {
                pages_while_writing += 1;
            }
            seen.extend(got);
            if !finished {
                tokio::task::yield_now().await;
            }
        }
        (seen, pages_while_writing)
    };
    let ((), (seen, pages_while_writing)) = tokio::join!(writer, reader);
    assert!(
        pages_while_writing > 3,
        "the reader read while events were written"
    );
    let whole = all_events(&app, Role::Compliance, "", 1000).await;
    assert_eq!(whole.len(), 45 + 4, "{:?}", types(&whole));
    let seen_ids = ids(&seen);
    assert_eq!(
        seen_ids.iter().collect::<HashSet<_>>().len(),
        seen_ids.len(),
        "nothing repeated"
    );
    assert_eq!(seen_ids, ids(&whole), "nothing lost, in the same order");
}

#[tokio::test]
async fn types_filter_exactly_or_by_family() {
    let app = spawn_app().await;
    app.user_writes("7009", "hi", None).await;
    app.respond("7009", "hello").await;
    app.drain().await;
    let by_family = all_events(&app, Role::Admin, "type=message.*", 100).await;
    assert_eq!(types(&by_family), ["message.queued", "message.sent"]);
    let exact = all_events(&app, Role::Admin, "type=message.sent,inbound.message", 100).await;
    assert_eq!(types(&exact), ["inbound.message", "message.sent"]);
    let all = all_events(&app, Role::Admin, "type=*", 100).await;
    assert_eq!(
        types(&all),
        [
            "inbound.message",
            "consent.granted",
            "message.queued",
            "message.sent"
        ]
    );
    let (status, body) = feed_with(&app, &app.token(Role::Admin), "type=message.sending").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_recipient_filter_tells_that_persons_events_and_follows_them() {
    let app = spawn_app().await;
    app.user_writes("7010", "first", None).await;
    app.user_writes("7011", "not them", None).await;
    app.user_writes("7010", "second", None).await;
    let token = app.token(Role::Compliance);
    let (_, page) = feed_with(&app, &token, "recipient=7010&type=inbound.*&limit=1").await;
    assert_eq!(page["events"][0]["data"]["text"], "first");
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let (_, page) = feed_with(
        &app,
        &token,
        &format!("recipient=7010&type=inbound.*&limit=1&after={cursor}"),
    )
    .await;
    assert_eq!(page["events"][0]["data"]["text"], "second");
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let next = format!("recipient=7010&type=inbound.*&after={cursor}");
    let (_, page) = feed_with(&app, &token, &next).await;
    assert_eq!(page["events"], json!([]), "the end, for now");
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    app.user_writes("7011", "still not them", None).await;
    app.user_writes("7010", "third", None).await;
    let (_, page) = feed_with(
        &app,
        &token,
        &format!("recipient=7010&type=inbound.*&after={cursor}"),
    )
    .await;
    let texts: Vec<&Value> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["data"]["text"])
        .collect();
    assert_eq!(texts, [&json!("third")]);
    let all = all_events(&app, Role::Compliance, "recipient=7010", 1).await;
    assert!(all.iter().all(|e| e["data"]["psid"] == "7010"), "{all:?}");
    assert_eq!(
        all.len(),
        4,
        "three messages and a consent: {:?}",
        types(&all)
    );
    // A cursor of one recipient's feed is not another's.
    let (status, _) = feed_with(&app, &token, &format!("recipient=7011&after={cursor}")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn each_role_sees_what_it_may() {
    let app = spawn_app().await;
    app.user_writes("7012", "hi", None).await;
    let (status, _) = app.respond("7012", "from the shop").await;
    assert_eq!(status, 202);
    let other = app
        .keys
        .issue("other-shop", Role::Backend, Duration::from_secs(600))
        .expect("token");
    let status = app
        .post(
            "/v1/messages",
            Some(&other),
            &json!({"recipient": {"psid": "7012"}, "category": "response",
                "message": {"text": "from the other shop"}}),
        )
        .await
        .status()
        .as_u16();
    assert_eq!(status, 202);
    app.drain().await;
    let everything = all_events(&app, Role::Admin, "", 100).await;
    assert_eq!(everything.len(), 2 + 2 * 2, "{:?}", types(&everything));
    assert_eq!(
        all_events(&app, Role::Compliance, "", 100).await,
        everything
    );
    let mine = all_events(&app, Role::Backend, "", 100).await;
    assert_eq!(types(&mine), ["message.queued", "message.sent"]);
    assert!(mine.iter().all(|e| e["data"]["client"] == "test-backend"));
    let theirs = all_events_with(&app, &other, "", 100).await;
    assert_eq!(types(&theirs), ["message.queued", "message.sent"]);
    assert!(theirs.iter().all(|e| e["data"]["client"] == "other-shop"));
    let (status, body) = app.read(Role::Marketer, "/v1/events").await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = feed_with(&app, "not-a-token", "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_bad_cursor_or_limit_is_a_problem() {
    let app = spawn_app().await;
    let token = app.token(Role::Admin);
    for query in [
        "after=nonsense",
        "after=c1_bm90IGpzb24",
        "limit=0",
        "limit=1001",
        "limit=ten",
        "recipient=",
    ] {
        let r = app.get(&format!("/v1/events?{query}"), Some(&token)).await;
        assert_eq!(r.status().as_u16(), 400, "{query}");
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/problem+json"),
            "{query}: {content_type}"
        );
    }
}

#[tokio::test]
async fn from_the_end_a_feed_tells_only_what_happens_next() {
    let app = spawn_app().await;
    app.user_writes("7013", "before", None).await;
    let token = app.token(Role::Compliance);
    let (status, page) = feed_with(&app, &token, "after=end").await;
    assert_eq!((status, &page["events"]), (200, &json!([])), "{page}");
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    app.user_writes("7013", "after", None).await;
    let (_, page) = feed_with(&app, &token, &format!("after={cursor}")).await;
    assert_eq!(
        types(page["events"].as_array().expect("events")),
        ["inbound.message"]
    );
    assert_eq!(page["events"][0]["data"]["text"], "after");
}

#[tokio::test]
async fn a_person_who_cannot_be_reached_is_told_as_unreachable_once() {
    let app = spawn_app().await;
    app.user_writes("7014", "hi", None).await;
    app.sandbox_post("/users/7014/block", json!({})).await;
    app.expect_rejection(551);
    let (status, _) = app.respond("7014", "are you there?").await;
    assert_eq!(status, 202);
    app.drain().await;
    let events = all_events(&app, Role::Compliance, "type=recipient.*", 100).await;
    assert_eq!(types(&events), ["recipient.unreachable"]);
    let data = &events[0]["data"];
    assert_eq!(data["psid"], "7014");
    assert_eq!(data["page_id"], PAGE_ID);
    assert_eq!(data["error"]["code"], 551);
    // Not an opt-out: Messenger does not say the person blocked the page (MESSENGER.md §8).
    let opted_out = all_events(&app, Role::Compliance, "type=consent.opted_out", 100).await;
    assert!(opted_out.is_empty(), "{opted_out:?}");
    let failed = all_events(&app, Role::Compliance, "type=message.failed", 100).await;
    assert_eq!(failed[0]["data"]["error"]["code"], 551);
}

#[tokio::test]
async fn the_feed_is_in_the_openapi_document_with_its_parameters() {
    let app = spawn_app().await;
    let doc: Value = app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    let op = &doc["paths"]["/v1/events"]["get"];
    let params: Vec<&str> = op["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in ["type", "recipient", "after", "limit"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    assert!(op["responses"]["200"].is_object(), "{op}");
    assert!(op["responses"]["400"].is_object(), "{op}");
}

/// `herald events tail` against the running test gateway, its stdout read line by line.
struct Tail {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Tail {
    fn start(app: &TestApp, args: &[&str]) -> Tail {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["events", "tail", "--url", &app.address])
            .args(args)
            .env("HERALD_TOKEN", app.token(Role::Compliance))
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn herald events tail");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tail { child, lines }
    }

    /// The next line printed within `wait`, as JSON.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        let line = tokio::time::timeout(wait, self.lines.recv()).await.ok()??;
        Some(serde_json::from_str(&line).expect("each line is one JSON event"))
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn herald_events_tail_prints_events_as_they_happen_and_stops_on_ctrl_c() {
    let app = spawn_app().await;
    app.user_writes("7015", "before the tail", None).await;
    let mut tail = Tail::start(&app, &["--type", "inbound.*"]);
    // It starts at the end of the log: until it has read where that is, what is written may
    // come before it. Write until something is printed; the first thing is not from before.
    let mut first = None;
    for i in 0..100 {
        app.user_writes("7015", &format!("live {i}"), None).await;
        if let Some(event) = tail.next(Duration::from_millis(300)).await {
            first = Some(event);
            break;
        }
    }
    let first = first.expect("the tail printed a live event");
    assert_eq!(first["type"], "inbound.message", "{first}");
    let text = first["data"]["text"].as_str().expect("text").to_owned();
    assert!(text.starts_with("live "), "{first}");
    app.user_writes("7015", "one more", None).await;
    app.consent("7016", "marketing", None).await;
    app.user_writes("7016", "and another", None).await;
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("and another") {
        let event = tail
            .next(Duration::from_secs(10))
            .await
            .expect("the tail goes on printing");
        assert_eq!(event["type"], "inbound.message", "only what --type asks");
        texts.push(event["data"]["text"].as_str().expect("text").to_owned());
    }
    assert_eq!(texts.last().map(String::as_str), Some("and another"));
    assert!(texts.contains(&"one more".to_owned()), "{texts:?}");
    assert!(!texts.contains(&"before the tail".to_owned()));

    // Ctrl-C: it stops, successfully.
    let pid = tail.child.id().to_string();
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = tail.child.wait().expect("wait");
        drop(tail);
        status
    })
    .await
    .expect("join");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn herald_events_tail_from_start_prints_what_happened_before() {
    let app = spawn_app().await;
    app.user_writes("7017", "long ago", None).await;
    let mut tail = Tail::start(&app, &["--from-start", "--recipient", "7017"]);
    let event = tail.next(Duration::from_secs(10)).await.expect("a line");
    assert_eq!(event["type"], "inbound.message");
    assert_eq!(event["data"]["text"], "long ago");
    let event = tail.next(Duration::from_secs(10)).await.expect("a line");
    assert_eq!(event["type"], "consent.granted");
}

#[tokio::test]
async fn a_parked_event_is_told_once_when_it_finally_applies() {
    let app = spawn_app().await;
    let parked = json!({"page_id": PAGE_ID, "event": from_person(
        &app, "7018", 0, ("message", json!({"mid": "m_parked", "text": "I waited"})))});
    let recipients = &app.handle().herald.store.recipients;
    // Parked twice (two instances, or a retry that failed after applying): applied once.
    recipients.park_event(&parked).await.expect("park");
    recipients.park_event(&parked).await.expect("park");
    app.handle()
        .herald
        .retry_parked_events()
        .await
        .expect("retry");
    let events = all_events(&app, Role::Compliance, "type=inbound.*", 100).await;
    assert_eq!(types(&events), ["inbound.message"]);
    assert_eq!(events[0]["data"]["text"], "I waited");
}
