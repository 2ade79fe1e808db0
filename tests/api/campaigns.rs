//! Campaigns: only opted-in customers get them, decided at the moment of sending, at the pace
//! asked, staged, guarded, paused, resumed, cancelled, and surviving a restart.

use chrono::Duration;
use herald::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{at, policy_copy, spawn_app, spawn_app_with, TestApp, TestOptions};

/// Someone who opted in to marketing on the page, living in `timezone`.
pub(crate) async fn subscriber(app: &TestApp, psid: &str, timezone: &str) {
    app.user_writes(psid, "hi", None).await;
    app.sandbox_post(
        &format!("/users/{psid}/marketing-optin"),
        json!({"timezone": timezone, "title": "Deals"}),
    )
    .await;
}

pub(crate) fn offer(psids: &[&str]) -> Value {
    json!({"name": "Winter teas", "message": {"text": "20% off winter teas"},
           "audience": {"psids": psids}, "rate_per_second": 50})
}

pub(crate) async fn create(app: &TestApp, body: Value) -> Value {
    let (status, campaign) = app.call(Role::Marketer, "/v1/campaigns", body).await;
    assert_eq!(status, 201, "{campaign}");
    assert_eq!(campaign["status"], "scheduled", "{campaign}");
    campaign
}

pub(crate) async fn campaign(app: &TestApp, id: &str) -> Value {
    let r = app
        .get(
            &format!("/v1/campaigns/{id}"),
            Some(&app.token(Role::Marketer)),
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

/// Moves the campaign along and delivers what falls due, as the scheduler and the worker do.
pub(crate) async fn run(app: &TestApp, id: &str) -> Value {
    for _ in 0..4 {
        app.tick().await;
        app.drain().await;
    }
    app.tick().await;
    campaign(app, id).await
}

/// Moves the campaign along and delivers only what is due now: for campaigns paced slowly,
/// whose later slots the test reaches by setting the clock.
async fn step(app: &TestApp, id: &str) -> Value {
    app.tick().await;
    app.drain_now().await;
    app.tick().await;
    campaign(app, id).await
}

async fn control(app: &TestApp, id: &str, action: &str) -> (u16, Value) {
    app.call(
        Role::Marketer,
        &format!("/v1/campaigns/{id}/{action}"),
        json!({}),
    )
    .await
}

#[tokio::test]
async fn only_the_opted_in_recipient_gets_the_campaign_and_each_refusal_is_counted() {
    let app = spawn_app().await;
    subscriber(&app, "9001", "Europe/Berlin").await;
    app.user_writes("9002", "hi", None).await; // wrote, never opted in to marketing
    subscriber(&app, "9003", "Europe/Berlin").await;
    app.user_writes("9003", "STOP", None).await;

    let created = create(&app, offer(&["9001", "9002", "9003"])).await;
    let id = created["id"].as_str().expect("id");
    assert_eq!(created["counts"]["audience"], 3);
    let done = run(&app, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let counts = &done["counts"];
    assert_eq!(counts["sent"], 1, "{counts}");
    assert_eq!(counts["pending"], 0, "{counts}");
    assert_eq!(
        counts["denied"],
        json!({"no_consent": 1, "opted_out": 1}),
        "{counts}"
    );
    assert_eq!(app.inbox("9001").len(), 1);
    assert!(app.inbox("9002").is_empty() && app.inbox("9003").is_empty());

    // Deliveries and reads arrive by webhook and move the counts.
    app.sandbox_post("/users/9001/reads", json!({})).await;
    let read = campaign(&app, id).await;
    assert_eq!(
        (
            read["counts"]["read"].as_u64(),
            read["counts"]["sent"].as_u64()
        ),
        (Some(1), Some(0)),
        "{read}"
    );

    // Every decision of the campaign is in the audit log with the campaign's id.
    let entries = app
        .handle()
        .herald
        .store
        .audit
        .entries(1, 10_000)
        .await
        .expect("audit");
    let decisions = entries
        .iter()
        .filter_map(|item| match item {
            herald::domain::audit::ChainItem::Entry(e) => Some(e),
            _ => None,
        })
        .filter(|e| e.campaign.as_deref() == Some(id))
        .filter(|e| e.kind == herald::domain::audit::AuditKind::Decision)
        .count();
    assert_eq!(decisions, 3, "one decision per recipient");
}

#[tokio::test]
async fn quiet_hours_defer_each_recipient_to_their_own_morning() {
    let app = spawn_app().await;
    // 22:30 UTC: 23:30 in Berlin and 07:30 in Tokyo (both quiet), 17:30 in New York.
    app.set_time(at("2026-11-25T22:30:00Z"));
    subscriber(&app, "9101", "Europe/Berlin").await;
    subscriber(&app, "9102", "Asia/Tokyo").await;
    subscriber(&app, "9103", "America/New_York").await;
    let created = create(&app, offer(&["9101", "9102", "9103"])).await;
    let id = created["id"].as_str().expect("id");

    let now = run(&app, id).await;
    assert_eq!(now["status"], "running", "{now}");
    assert_eq!(
        (
            now["counts"]["sent"].as_u64(),
            now["counts"]["deferred"].as_u64()
        ),
        (Some(1), Some(2)),
        "{now}"
    );
    assert_eq!(app.inbox("9103").len(), 1, "New York's afternoon");

    app.set_time(at("2026-11-25T23:00:01Z"));
    run(&app, id).await;
    assert_eq!(app.inbox("9102").len(), 1, "08:00 in Tokyo");
    assert!(app.inbox("9101").is_empty(), "still night in Berlin");

    app.set_time(at("2026-11-26T07:00:01Z"));
    let done = run(&app, id).await;
    assert_eq!(app.inbox("9101").len(), 1, "08:00 in Berlin");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["counts"]["sent"], 3);
}

#[tokio::test]
async fn a_rollout_sends_to_its_first_part_then_holds() {
    let app = spawn_app().await;
    let psids: Vec<String> = (0..10).map(|i| format!("92{i:02}")).collect();
    for p in &psids {
        subscriber(&app, p, "Europe/Berlin").await;
    }
    let mut body = offer(&psids.iter().map(String::as_str).collect::<Vec<_>>());
    body["rollout"] = json!({"first_percent": 20, "hold": "1h"});
    let id = create(&app, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let first = run(&app, &id).await;
    assert_eq!(
        (
            first["counts"]["sent"].as_u64(),
            first["counts"]["pending"].as_u64()
        ),
        (Some(2), Some(8)),
        "{first}"
    );
    app.set_time(app.now() + Duration::minutes(59));
    let held = run(&app, &id).await;
    assert_eq!(held["counts"]["sent"], 2, "held for the hour: {held}");

    app.set_time(app.now() + Duration::minutes(2));
    let done = run(&app, &id).await;
    assert_eq!(done["counts"]["sent"], 10, "{done}");
    assert_eq!(done["status"], "completed");
}

/// A campaign of ten subscribers (PSIDs `{prefix}00`…) at one a second, guarded at 40 % from
/// two sends, paused by its guard after everyone it reached wrote STOP: its id, the audience and
/// who it reached.
async fn paused_by_its_guard(app: &TestApp, prefix: &str) -> (String, Vec<String>, Vec<String>) {
    let psids: Vec<String> = (0..10).map(|i| format!("{prefix}{i:02}")).collect();
    for p in &psids {
        subscriber(app, p, "Europe/Berlin").await;
    }
    let mut body = offer(&psids.iter().map(String::as_str).collect::<Vec<_>>());
    body["rate_per_second"] = json!(1);
    body["guard"] = json!({"max_opt_out_percent": 40, "min_sends": 2});
    let id = create(app, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    step(app, &id).await;
    app.set_time(app.now() + Duration::seconds(1));
    let started = step(app, &id).await;
    let reached: Vec<String> = psids
        .iter()
        .filter(|p| !app.inbox(p).is_empty())
        .cloned()
        .collect();
    assert!(reached.len() >= 2 && reached.len() < 10, "{started}");
    for p in &reached {
        app.user_writes(p, "STOP", None).await;
    }
    let paused = step(app, &id).await;
    assert_eq!(paused["status"], "paused", "{paused}");
    assert_eq!(paused["paused_reason"], "opt_out_rate");
    assert_eq!(paused["counts"]["opt_outs"], reached.len());
    (id, psids, reached)
}

#[tokio::test]
async fn the_guard_pauses_a_campaign_whose_recipients_write_stop() {
    let app = spawn_app().await;
    let (id, psids, _) = paused_by_its_guard(&app, "93").await;
    let sent_when_paused = psids.iter().filter(|p| !app.inbox(p).is_empty()).count();
    app.set_time(app.now() + Duration::minutes(5));
    step(&app, &id).await;
    let sent_later = psids.iter().filter(|p| !app.inbox(p).is_empty()).count();
    assert_eq!(
        sent_later, sent_when_paused,
        "a paused campaign sends nothing more"
    );
}

#[tokio::test]
async fn resuming_a_campaign_its_guard_paused_counts_the_guard_afresh_and_says_so() {
    let app = spawn_app().await;
    let (id, psids, reached) = paused_by_its_guard(&app, "95").await;

    // The marketer looked and goes on: the opt-outs so far no longer trip the guard.
    let (status, resumed) = control(&app, &id, "resume").await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "running");
    assert_eq!(
        resumed["guard_counts_from"]["opt_outs"],
        reached.len(),
        "{resumed}"
    );
    for _ in 0..4 {
        app.set_time(app.now() + Duration::seconds(1));
        let now = step(&app, &id).await;
        assert_eq!(now["status"], "running", "paused again at once: {now}");
    }
    let sent = psids.iter().filter(|p| !app.inbox(p).is_empty()).count();
    assert!(
        sent > reached.len(),
        "the resumed campaign sent nothing more"
    );
    let (_, audit) = app
        .read(
            Role::Compliance,
            &format!("/v1/audit?campaign={id}&limit=100"),
        )
        .await;
    let resume = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["outcome"] == "resumed")
        .cloned()
        .unwrap_or_default();
    assert!(
        resume["detail"]
            .as_str()
            .is_some_and(|d| d.contains("guard counts again")),
        "the resume says what it did to the guard: {resume}"
    );
}

#[tokio::test]
async fn a_campaign_can_be_paused_resumed_and_cancelled() {
    let app = spawn_app().await;
    let psids: Vec<String> = (0..10).map(|i| format!("94{i:02}")).collect();
    for p in &psids {
        subscriber(&app, p, "Europe/Berlin").await;
    }
    let mut body = offer(&psids.iter().map(String::as_str).collect::<Vec<_>>());
    body["rate_per_second"] = json!(1);
    let id = create(&app, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let sent = |app: &TestApp| psids.iter().filter(|p| !app.inbox(p).is_empty()).count();

    step(&app, &id).await;
    let (status, paused) = control(&app, &id, "pause").await;
    assert_eq!(
        (status, paused["status"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );
    let before = sent(&app);
    assert!(before >= 1, "the first slot went: {paused}");
    app.set_time(app.now() + Duration::minutes(1));
    step(&app, &id).await;
    assert_eq!(sent(&app), before, "nothing goes while paused");

    let (status, resumed) = control(&app, &id, "resume").await;
    assert_eq!(
        (status, resumed["status"].as_str()),
        (200, Some("running")),
        "{resumed}"
    );
    step(&app, &id).await;
    let after_resume = sent(&app);
    assert!(after_resume > before, "it carries on where it stopped");

    let (status, cancelled) = control(&app, &id, "cancel").await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled")),
        "{cancelled}"
    );
    app.set_time(app.now() + Duration::minutes(1));
    step(&app, &id).await;
    assert_eq!(sent(&app), after_resume, "nobody else gets it");
    let (status, _) = control(&app, &id, "resume").await;
    assert_eq!(status, 409, "a cancelled campaign stays cancelled");
}

#[tokio::test]
async fn a_campaign_scheduled_for_later_starts_on_time_after_a_restart() {
    let mut app = spawn_app().await;
    subscriber(&app, "9501", "Europe/Berlin").await;
    let mut body = offer(&["9501"]);
    body["send_at"] = json!("2026-11-25T15:00:00Z");
    let id = create(&app, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    run(&app, &id).await;
    assert!(app.inbox("9501").is_empty(), "not before send_at");

    app.restart().await;
    assert_eq!(campaign(&app, &id).await["status"], "scheduled");
    app.set_time(at("2026-11-25T15:00:01Z"));
    let done = run(&app, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(app.inbox("9501").len(), 1);
}

#[tokio::test]
async fn the_campaign_keeps_its_pace_within_five_percent() {
    let app = spawn_app().await;
    let (psids, id) = paced_campaign(&app, "96", 121, 40, None).await;
    run_to_completion(&app, &id, 121).await;
    let mut arrivals: Vec<_> = psids.iter().map(|p| app.inbox(p)[0].received_at).collect();
    arrivals.sort();
    // The pace is the slope of arrival time against place in line (least squares), so that one
    // send held up by a busy machine, and the next catching up, does not read as a change of
    // pace: 120 intervals at 40 per second are 3,000 ms.
    let ms: Vec<f64> = arrivals
        .iter()
        .map(|a| (*a - arrivals[0]).num_milliseconds() as f64)
        .collect();
    let n = ms.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = ms.iter().sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for (i, y) in ms.iter().enumerate() {
        let dx = i as f64 - mean_x;
        cov += dx * (y - mean_y);
        var += dx * dx;
    }
    let paced = cov / var * 120.0;
    let span = ms.last().copied().unwrap_or_default();
    assert!(
        (2_850.0..=3_150.0).contains(&paced),
        "121 sends at 40/s went at a pace of {paced:.0} ms for 120 intervals (first to last {span} ms)"
    );
}

/// `count` subscribers and a campaign to them at `rate` a second, from `send_at` or now: their
/// PSIDs and its id.
async fn paced_campaign(
    app: &TestApp,
    prefix: &str,
    count: usize,
    rate: u32,
    send_at: Option<chrono::DateTime<chrono::Utc>>,
) -> (Vec<String>, String) {
    let psids: Vec<String> = (0..count).map(|i| format!("{prefix}{i:03}")).collect();
    for p in &psids {
        subscriber(app, p, "Europe/Berlin").await;
    }
    let mut body = offer(&psids.iter().map(String::as_str).collect::<Vec<_>>());
    body["rate_per_second"] = json!(rate);
    if let Some(send_at) = send_at {
        body["send_at"] = json!(send_at.to_rfc3339());
    }
    let id = create(app, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    (psids, id)
}

/// Runs the campaign until it completes; every recipient got it.
async fn run_to_completion(app: &TestApp, id: &str, count: usize) {
    let mut done = Value::Null;
    for _ in 0..20 {
        done = run(app, id).await;
        if done["status"] == "completed" {
            break;
        }
    }
    assert_eq!(done["counts"]["sent"], count, "{done}");
}

/// Milliseconds from the first of `psids` to get their message to the last.
fn arrival_span_ms(app: &TestApp, psids: &[String]) -> i64 {
    let arrivals: Vec<_> = psids.iter().map(|p| app.inbox(p)[0].received_at).collect();
    let (first, last) = (arrivals.iter().min(), arrivals.iter().max());
    match (first, last) {
        (Some(first), Some(last)) => (*last - *first).num_milliseconds(),
        _ => 0,
    }
}

#[tokio::test]
async fn a_campaign_held_up_goes_on_at_its_rate_and_does_not_catch_up() {
    let app = spawn_app().await;
    let (psids, id) = paced_campaign(&app, "97", 60, 20, None).await;
    // The first tick hands over the first second's recipients (at most 21 at 20 a second)…
    app.tick().await;
    // …then the machine stalls for a minute: no tick, the later slots all pass.
    app.set_time(app.now() + Duration::minutes(1));
    run_to_completion(&app, &id, 60).await;
    // The last 30 were handed over after the stall: at 20 a second, 29 intervals of 50 ms,
    // not all at once to make up for the minute lost.
    let span = arrival_span_ms(&app, &psids[30..]);
    assert!(
        span >= 1_300,
        "30 recipients at 20/s after a stall arrived within {span} ms"
    );
}

#[tokio::test]
async fn a_campaign_started_late_goes_at_its_rate_from_when_it_starts() {
    let app = spawn_app().await;
    let send_at = app.now() + Duration::minutes(1);
    let (psids, id) = paced_campaign(&app, "98", 20, 20, Some(send_at)).await;
    // Herald was not running at the campaign's send_at; it starts ten minutes later.
    app.set_time(send_at + Duration::minutes(10));
    run_to_completion(&app, &id, 20).await;
    let span = arrival_span_ms(&app, &psids);
    assert!(
        span >= 850,
        "20 recipients at 20/s, ten minutes after their send_at, arrived within {span} ms"
    );
}

/// A campaign whose audience is `csv`, uploaded as `token`.
fn upload_csv(
    app: &TestApp,
    token: &str,
    csv: &'static str,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
    app.http
        .post(format!(
            "{}/v1/campaigns?name=Teas&message=%7B%22text%22%3A%22hi%22%7D",
            app.address
        ))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
}

#[tokio::test]
async fn bad_audiences_are_refused_naming_the_line() {
    let app = spawn_app().await;
    let token = app.token(Role::Marketer);
    let upload = |csv: &'static str| upload_csv(&app, &token, csv);
    let cases = [
        ("name,email\nAda,ada@example.com\n", "line 1"),
        ("psid,name\n9701,Ada\nnot a psid,Bob\n", "line 3"),
        ("psid\n9701\n9702\n9701\n", "line 4"),
        ("psid\n", "audience"),
        ("psid\n9701\n\n9702\n", "line 3"),
    ];
    for (csv, field) in cases {
        let r = upload(csv).await.expect("upload");
        assert_eq!(r.status().as_u16(), 400, "{csv:?}");
        let problem: Value = r.json().await.expect("json");
        assert_eq!(problem["errors"][0]["field"], field, "{csv:?}: {problem}");
    }
    let r = upload("psid,name\n9701,\"Lovelace, Ada\"\n9702,Bob\n\n")
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["counts"]["audience"], 2, "{created}");

    // A large upload, read as it arrives (lines across chunk boundaries, a body far over 64 KiB).
    let mut big = String::from("psid,note\n");
    for i in 0..10_000 {
        big.push_str(&format!("{},\"customer, number {i}\"\n", 500_000 + i));
    }
    let r = app
        .http
        .post(format!(
            "{}/v1/campaigns?name=Big&message=%7B%22text%22%3A%22hi%22%7D&send_at=2027-01-01T00:00:00Z",
            app.address
        ))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(big)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["counts"]["audience"], 10_000, "{created}");

    let mut repeated = offer(&["9801", "9802", "9801"]);
    let (status, problem) = app
        .call(Role::Marketer, "/v1/campaigns", repeated.clone())
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (400, Some("audience.psids[2]")),
        "{problem}"
    );
    repeated["audience"] = json!({"segment": "everyone"});
    let (status, problem) = app
        .call(Role::Marketer, "/v1/campaigns", repeated.clone())
        .await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (400, Some("audience.segment")),
        "{problem}"
    );
    repeated["audience"] = json!({"psids": []});
    let (status, problem) = app.call(Role::Marketer, "/v1/campaigns", repeated).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (400, Some("audience")),
        "{problem}"
    );
}

#[tokio::test]
async fn the_segment_is_everyone_opted_in_to_marketing_and_not_opted_out() {
    let app = spawn_app().await;
    subscriber(&app, "9901", "Europe/Berlin").await;
    subscriber(&app, "9902", "Europe/Berlin").await;
    app.user_writes("9902", "STOP", None).await;
    app.user_writes("9903", "hi", None).await;
    let mut body = offer(&[]);
    body["audience"] = json!({"segment": "marketing_opted_in"});
    let created = create(&app, body).await;
    assert_eq!(created["counts"]["audience"], 1, "{created}");
    let done = run(&app, created["id"].as_str().expect("id")).await;
    assert_eq!(done["counts"]["sent"], 1);
    assert_eq!(app.inbox("9901").len(), 1);
}

#[tokio::test]
async fn only_marketers_and_admins_touch_campaigns() {
    let app = spawn_app().await;
    subscriber(&app, "9911", "Europe/Berlin").await;
    for (role, expected) in [
        (Role::Backend, 403),
        (Role::Compliance, 403),
        (Role::Marketer, 201),
        (Role::Admin, 201),
    ] {
        let (status, body) = app.call(role, "/v1/campaigns", offer(&["9911"])).await;
        assert_eq!(status, expected, "{role}: {body}");
    }
    let r = app
        .get("/v1/campaigns", Some(&app.token(Role::Backend)))
        .await;
    assert_eq!(r.status().as_u16(), 403);
    let r = app
        .get("/v1/campaigns", Some(&app.token(Role::Marketer)))
        .await;
    let list: Value = r.json().await.expect("json");
    assert_eq!(list["campaigns"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn transactional_messages_go_ahead_of_a_campaign_that_fills_the_page() {
    // The page may take 10 sends a second, and the campaign asks for all of them.
    let dir = policy_copy(|text| {
        text.replace("[send_rate]\nper_page = 300", "[send_rate]\nper_page = 10")
    });
    let app = spawn_app_with(TestOptions {
        policy_dir: Some(dir.path().to_path_buf()),
        ..TestOptions::default()
    })
    .await;
    let psids: Vec<String> = (0..30).map(|i| format!("97{i:02}")).collect();
    for p in &psids {
        subscriber(&app, p, "Europe/Berlin").await;
    }
    let support: Vec<String> = (0..8).map(|i| format!("98{i:02}")).collect();
    for p in &support {
        app.user_writes(p, "where is my order?", None).await;
    }
    let mut body = offer(&psids.iter().map(String::as_str).collect::<Vec<_>>());
    body["rate_per_second"] = json!(10);
    let id = create(&app, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.tick().await;
    // Eight replies at once, while the campaign has the page's whole pace.
    for p in &support {
        let (status, answer) = app.respond(p, "It ships today.").await;
        assert_eq!(status, 202, "{answer}");
    }
    let mut done = Value::Null;
    for _ in 0..20 {
        done = run(&app, &id).await;
        if done["status"] == "completed" {
            break;
        }
    }
    assert_eq!(done["counts"]["sent"], 30, "{done}");
    let replies: Vec<_> = support
        .iter()
        .map(|p| app.inbox(p)[0].received_at)
        .collect();
    let (first, last) = (
        *replies.iter().min().expect("first"),
        *replies.iter().max().expect("last"),
    );
    let interleaved = psids
        .iter()
        .map(|p| app.inbox(p)[0].received_at)
        .filter(|t| *t > first && *t < last)
        .count();
    assert!(
        interleaved <= 2,
        "the replies took the page's capacity first, yet {interleaved} campaign sends came between them"
    );
}

/// `herald campaign watch` as a user runs it, against `app`.
async fn watch(app: &TestApp, id: &str) -> std::process::Output {
    let (address, token, id) = (
        app.address.clone(),
        app.token(Role::Marketer),
        id.to_owned(),
    );
    // The gateway runs on this test's runtime: wait for the command on another thread.
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["campaign", "watch", &id, "--url", &address])
            .env("HERALD_TOKEN", token)
            .output()
            .expect("run herald campaign watch")
    })
    .await
    .expect("watch")
}

#[tokio::test]
async fn campaign_watch_follows_a_campaign_until_it_completes() {
    let app = spawn_app().await;
    subscriber(&app, "9951", "Europe/Berlin").await;
    app.user_writes("9952", "hi", None).await;
    let id = create(&app, offer(&["9951", "9952"])).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The gateway's own scheduler and worker carry the campaign while the command watches.
    let out = watch(&app, &id).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&id), "{stdout}");
    assert!(stdout.contains("completed"), "{stdout}");
    assert!(stdout.contains("sent 1"), "{stdout}");
    assert!(stdout.contains("denied no_consent=1"), "{stdout}");

    let out = watch(&app, "cmp_01J0000000000000000000000").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}

#[tokio::test]
async fn a_csv_audience_reads_any_line_ending_and_quoted_line_breaks_and_names_the_bad_line() {
    let app = spawn_app().await;
    let token = app.token(Role::Marketer);
    let upload = |csv: &'static str| upload_csv(&app, &token, csv);
    let good = [
        ("psid,name\r9701,Ada\r9702,Bob\r", 2),
        ("psid,name\r\n9701,Ada\r\n9702,Bob", 2),
        (
            "name,psid\n\"Lovelace,\nAda\",9701\n\"Bob \"\"B\"\"\",9702\n",
            2,
        ),
        ("\u{feff}psid\n9701\n", 1),
    ];
    for (csv, members) in good {
        let r = upload(csv).await.expect("upload");
        let status = r.status().as_u16();
        let created: Value = r.json().await.expect("json");
        assert_eq!(status, 201, "{csv:?}: {created}");
        assert_eq!(created["counts"]["audience"], members, "{csv:?}: {created}");
    }
    let bad = [
        ("psid,name\r9701,Ada\rnot a psid,Bob\r", "line 3"),
        ("name,psid\n\"two\nlines\",9701\nBob,not a psid\n", "line 4"),
        ("psid\r9701\r\r9702\r", "line 3"),
    ];
    for (csv, field) in bad {
        let r = upload(csv).await.expect("upload");
        assert_eq!(r.status().as_u16(), 400, "{csv:?}");
        let problem: Value = r.json().await.expect("json");
        assert_eq!(problem["errors"][0]["field"], field, "{csv:?}: {problem}");
    }
}

#[tokio::test]
async fn one_tick_hands_its_recipients_over_together_each_with_its_own_decision() {
    let app = spawn_app().await;
    let subscribed = ["9301", "9302", "9303"];
    for psid in subscribed {
        subscriber(&app, psid, "Europe/Berlin").await;
    }
    // 40 recipients at 50/s: every slot within the scheduler's look-ahead, so one tick takes
    // them all, accepted side by side; 37 never opted in and are each refused on record.
    let audience: Vec<String> = (0..40).map(|i| format!("{}", 9301 + i)).collect();
    let psids: Vec<&str> = audience.iter().map(String::as_str).collect();
    let created = create(&app, offer(&psids)).await;
    let id = created["id"].as_str().expect("id");
    app.tick().await;
    app.tick().await;

    let (status, audit) = app
        .read(
            Role::Compliance,
            &format!("/v1/audit?campaign={id}&kind=decision&limit=100"),
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    // A recipient whose slot is still ahead is deferred to it and decided again then: one
    // message each, with one decision or two.
    let messages: std::collections::BTreeSet<(String, String)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| {
            Some((
                e["recipient"].as_str()?.into(),
                e["message_id"].as_str()?.into(),
            ))
        })
        .collect();
    let decided: Vec<String> = messages.into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        decided, audience,
        "one message for each recipient, none twice"
    );
    let counts = campaign(&app, id).await["counts"].clone();
    assert_eq!(counts["denied"], json!({"no_consent": 37}), "{counts}");
    let done = run(&app, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["counts"]["sent"], 3, "{done}");
    for psid in subscribed {
        assert_eq!(app.inbox(psid).len(), 1, "{psid}");
    }
}
