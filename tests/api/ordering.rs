//! Order per person: messages to one person from one page reach Messenger in the order they
//! were accepted, among those due — through a stand-in whose answers overtake each other
//! (`POST /sandbox/latency`), across a retry, and past a deferred message, which holds nothing
//! back.

use chrono::Duration;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};

/// The longest the stand-in waits before it takes a send: sends made side by side land in any
/// order, and so would a person's messages if they were sent side by side.
const LATENCY_MS: u64 = 20;

async fn with_latency(app: &TestApp) {
    app.sandbox_post("/latency", json!({ "max_ms": LATENCY_MS }))
        .await;
}

/// Each of `psids` writes to the page (which opens the window and counts as consent).
async fn people(app: &TestApp, psids: &[String]) {
    for psid in psids {
        app.user_writes(psid, "hi", None).await;
    }
}

/// `n` responses to `psid`, accepted one after the other: "1", "2", … Their ids.
async fn in_a_row(app: &TestApp, psid: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 1..=n {
        let (status, body) = app.respond(psid, &i.to_string()).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    ids
}

/// Drains until none of `ids` is waiting any more. One drain is enough on sled; on PostgreSQL a
/// drain also ends when the instance holds no partition at that moment, and on a loaded machine
/// the tests' one-second lease lapses now and then for a moment (a renewal more than 800 ms
/// late) with messages still due: then it drains again once the lease is back.
async fn until_all_sent<'a>(app: &TestApp, ids: impl Iterator<Item = &'a String> + Clone) {
    for _ in 0..50 {
        app.drain().await;
        let mut waiting = false;
        for id in ids.clone() {
            let status = app.message(id).await["status"].clone();
            waiting |= status == "queued" || status == "sending";
        }
        if !waiting {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("messages still waiting after 50 drains");
}

/// The texts in the person's inbox, in the order Messenger took them.
fn received(app: &TestApp, psid: &str) -> Vec<String> {
    app.inbox(psid)
        .iter()
        .filter_map(|m| m.body["message"]["text"].as_str().map(str::to_owned))
        .collect()
}

fn one_to(n: usize) -> Vec<String> {
    (1..=n).map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_messages_to_each_of_twenty_people_arrive_in_the_order_they_were_accepted() {
    let app = spawn_app().await;
    with_latency(&app).await;
    let psids: Vec<String> = (0..20).map(|i| format!("70000{i:02}")).collect();
    people(&app, &psids).await;
    // Everyone's messages are accepted at once, each person's one after the other, while the
    // worker sends.
    let sends = psids.iter().map(|psid| in_a_row(&app, psid, 5));
    let ids = futures_util::future::join_all(sends).await;
    until_all_sent(&app, ids.iter().flatten()).await;
    for psid in &psids {
        assert_eq!(
            received(&app, psid),
            one_to(5),
            "{psid}'s messages in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waiting_for_its_retry_is_not_overtaken_by_the_next_one() {
    let app = spawn_app().await;
    with_latency(&app).await;
    let psids: Vec<String> = (0..4).map(|i| format!("71000{i:02}")).collect();
    people(&app, &psids).await;
    // The first send to each person fails once with a transient error (2, then 1200).
    for (i, psid) in psids.iter().enumerate() {
        let code = if i % 2 == 0 { 2 } else { 1200 };
        app.sandbox_post("/faults", json!({"code": code, "count": 1, "psid": psid}))
            .await;
    }
    let sends = psids.iter().map(|psid| in_a_row(&app, psid, 5));
    let ids = futures_util::future::join_all(sends).await;
    until_all_sent(&app, ids.iter().flatten()).await;
    for (psid, ids) in psids.iter().zip(&ids) {
        assert_eq!(
            received(&app, psid),
            one_to(5),
            "{psid}'s later messages waited for the first one's retry"
        );
        let first = app.message(&ids[0]).await;
        let outcomes: Vec<&str> = first["attempts"]
            .as_array()
            .expect("attempts")
            .iter()
            .filter_map(|a| a["outcome"].as_str())
            .collect();
        assert_eq!(outcomes, ["retry", "sent"], "{first}");
    }
    assert_eq!(app.stats().injected_faults, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_message_holds_nothing_back_and_goes_at_its_own_time() {
    let app = spawn_app().await;
    with_latency(&app).await;
    let psid = "7200001";
    app.user_writes(psid, "hi", None).await;
    let later = app.now() + Duration::hours(1);
    let (status, body) = app
        .send(json!({"recipient": {"psid": psid}, "category": "response",
                     "message": {"text": "later"}, "send_at": later.to_rfc3339()}))
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("deferred")),
        "{body}"
    );
    let deferred = body["id"].as_str().expect("id").to_owned();
    in_a_row(&app, psid, 3).await;
    app.drain().await;
    assert_eq!(
        received(&app, psid),
        one_to(3),
        "the messages accepted after the deferred one went without waiting for it"
    );
    assert_eq!(app.message(&deferred).await["status"], "deferred");

    app.set_time(later + Duration::seconds(1));
    app.drain().await;
    assert_eq!(received(&app, psid), ["1", "2", "3", "later"]);
}
