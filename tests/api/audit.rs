//! The audit log as evidence (issue 8): queries by every filter, pagination, export, verify on
//! a good, a tampered and a consistently rewritten store, signed checkpoints, the consent each
//! decision rests on, erasure, retention, and who may read it.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use herald::app::CSV_COLUMNS;
use herald::domain::audit::{AuditEntry, AuditHead, AuditKind, Personal};
use herald::domain::checkpoint::Checkpoint;
use herald::domain::{Category, Role};
use herald::store::packing;
use serde_json::{json, Value};

use crate::cli::herald;
use crate::helpers::{spawn_app, spawn_app_with, TestApp, TestOptions, SIGNING_KEY};

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Entry `i` of the synthetic log: every indexed field varies with its own period, so each
/// filter (and each pair) picks a different set.
fn synthetic(i: usize, base: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        at: base + Duration::minutes(i as i64),
        kind: if i % 6 == 0 {
            AuditKind::Consent
        } else {
            AuditKind::Decision
        },
        message_id: Some(format!("msg_{i}")),
        page_id: Some(["p1", "p2"][i % 2].into()),
        category: Some([Category::Response, Category::Receipt, Category::Marketing][i % 3]),
        outcome: Some(["allow", "deny", "defer", "allow"][i % 4].into()),
        reason: Some(["ok", "no_consent", "quiet_hours", "ok", "outside_window"][i % 5].into()),
        campaign: (i % 7 != 0).then(|| format!("cmp_{}", i % 2)),
        client: Some(["shop", "crm", "ops"][(i / 2) % 3].into()),
        // A value CSV must quote: a comma, a quote and a line break.
        detail: Some(format!("n{i}, said \"hi\"\nthen left")),
        personal: Some(Personal::of(format!("{}", 1000 + i % 4))),
        ..AuditEntry::default()
    }
}

const SYNTHETIC: usize = 60;

/// A gateway whose log holds the synthetic entries; returns it and their first moment.
async fn seeded() -> (TestApp, DateTime<Utc>) {
    let app = spawn_app().await;
    assert_eq!(app.audit_head().await, 0, "a fresh log");
    let base = app.now();
    let entries = (0..SYNTHETIC).map(|i| synthetic(i, base)).collect();
    app.handle()
        .herald
        .store
        .audit
        .append(entries)
        .await
        .expect("append");
    (app, base)
}

/// Which synthetic entry an API entry is.
fn index_of(entry: &Value) -> usize {
    let detail = entry["detail"].as_str().expect("detail");
    detail[1..detail.find(',').expect("comma")]
        .parse()
        .expect("index")
}

/// Every entry `GET /v1/audit?{query}` returns, page by page.
async fn query_all(app: &TestApp, query: &str, limit: usize) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/v1/audit?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = app.read(Role::Compliance, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        entries.extend(body["entries"].as_array().expect("entries").iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return entries,
        }
    }
    panic!("{query}: the cursor never ended");
}

/// Which synthetic entries a query should return.
type Wanted = Box<dyn Fn(usize) -> bool>;

#[tokio::test]
async fn every_filter_finds_exactly_the_entries_that_match() {
    let (app, base) = seeded().await;
    let (from, to) = (
        stamp(base + Duration::minutes(10)),
        stamp(base + Duration::minutes(20)),
    );
    let cases: Vec<(String, Wanted)> = vec![
        ("recipient=1001".into(), Box::new(|i| i % 4 == 1)),
        ("page_id=p2".into(), Box::new(|i| i % 2 == 1)),
        ("category=marketing".into(), Box::new(|i| i % 3 == 2)),
        ("outcome=deny".into(), Box::new(|i| i % 4 == 1)),
        ("reason=quiet_hours".into(), Box::new(|i| i % 5 == 2)),
        (
            "campaign=cmp_1".into(),
            Box::new(|i| i % 7 != 0 && i % 2 == 1),
        ),
        ("client=crm".into(), Box::new(|i| (i / 2) % 3 == 1)),
        ("kind=consent".into(), Box::new(|i| i % 6 == 0)),
        (
            format!("from={from}&to={to}"),
            Box::new(|i| (10..20).contains(&i)),
        ),
        (format!("from={to}"), Box::new(|i| i >= 20)),
        (
            format!("recipient=1000&outcome=allow&to={to}"),
            Box::new(|i| i % 4 == 0 && i < 20),
        ),
        (
            "client=shop&category=response&page_id=p1".into(),
            Box::new(|i| (i / 2) % 3 == 0 && i % 3 == 0 && i % 2 == 0),
        ),
    ];
    for (query, wanted) in cases {
        let found: Vec<usize> = query_all(&app, &query, 1000)
            .await
            .iter()
            .map(index_of)
            .collect();
        let expected: Vec<usize> = (0..SYNTHETIC).filter(|i| wanted(*i)).collect();
        assert!(
            !expected.is_empty(),
            "{query}: a case that selects something"
        );
        assert_eq!(found, expected, "GET /v1/audit?{query}");
    }
    let (status, body) = app
        .read(Role::Compliance, "/v1/audit?category=sms&from=yesterday")
        .await;
    assert_eq!(status, 400, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("category") && detail.contains("from"),
        "{body}"
    );
}

#[tokio::test]
async fn pages_follow_each_other_with_no_entry_lost_or_repeated_newest_last() {
    let (app, _) = seeded().await;
    for (query, limit) in [("", 7), ("recipient=1002", 4), ("outcome=allow", 1)] {
        let all = query_all(&app, query, limit).await;
        let seqs: Vec<u64> = all
            .iter()
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect();
        let unique: BTreeSet<u64> = seqs.iter().copied().collect();
        assert_eq!(unique.len(), seqs.len(), "{query}: no entry twice");
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{query}: newest last");
        let whole = query_all(&app, query, 1000).await;
        assert_eq!(all, whole, "{query}: pages of {limit} add up to the whole");
    }
    let (status, _) = app.read(Role::Compliance, "/v1/audit?cursor=zz").await;
    assert_eq!(status, 400, "a cursor the store did not hand out");
}

#[tokio::test]
async fn the_export_is_quoted_csv_with_fixed_columns_or_one_json_object_a_line() {
    let (app, _) = seeded().await;
    let token = app.token(Role::Compliance);
    let csv_body = app
        .get("/v1/audit/export?format=csv&page_id=p1", Some(&token))
        .await;
    assert_eq!(csv_body.status().as_u16(), 200);
    assert!(csv_body.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv_body.text().await.expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    assert_eq!(header, CSV_COLUMNS.to_vec());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), SYNTHETIC / 2);
    let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).expect("column");
    assert_eq!(&rows[0][col("detail")], "n0, said \"hi\"\nthen left");
    assert_eq!(&rows[0][col("recipient")], "1000");
    assert_eq!(&rows[0][col("page_id")], "p1");
    assert!(rows[0][col("recipient_pseudonym")].starts_with("psn_"));
    assert_eq!(rows[0][col("hash")].len(), 64);

    let jsonl = app
        .get("/v1/audit/export?format=jsonl", Some(&token))
        .await
        .text()
        .await
        .expect("jsonl");
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), SYNTHETIC);
    assert_eq!(
        lines,
        query_all(&app, "", 1000).await,
        "the same entries as the query"
    );
    assert_eq!(lines[5]["recipient"], "1001");

    let (status, _) = app
        .read(Role::Compliance, "/v1/audit/export?format=xml")
        .await;
    assert_eq!(status, 400);
    let empty = app
        .get("/v1/audit/export?format=csv&client=nobody", Some(&token))
        .await
        .text()
        .await
        .expect("csv");
    assert_eq!(empty.lines().count(), 1, "the header alone: {empty}");
}

/// Flips one byte of the stored entry `seq` (a letter of its outcome), as someone with the
/// disk might.
fn flip_a_byte(store: &std::path::Path, seq: u64) {
    let db = sled::open(store).expect("open sled");
    let audit = db.open_tree("audit").expect("tree");
    let stored = audit.get(seq.to_be_bytes()).expect("read").expect("entry");
    let mut bytes = packing::unpack(&stored).expect("unpack").into_owned();
    let at = find(&bytes, b"\"outcome\":\"") + 11;
    bytes[at] ^= 0x01;
    let stored = packing::pack(&bytes).expect("pack");
    audit.insert(seq.to_be_bytes(), stored).expect("write");
    db.flush().expect("flush");
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("found")
}

/// Rewrites the whole chain consistently from entry `from` on: one entry's outcome changed,
/// every hash after it recomputed, the head moved — what a bare hash chain cannot catch.
fn rewrite_consistently(store: &std::path::Path, from: u64) {
    let db = sled::open(store).expect("open sled");
    let audit = db.open_tree("audit").expect("tree");
    let mut prev = String::new();
    let mut head = AuditHead::default();
    for item in audit.iter() {
        let (key, value) = item.expect("read");
        let json = packing::unpack(&value).expect("unpack");
        // The sealed entry, then (after a NUL) its erasable values, which the hash leaves out.
        let (sealed, beside) =
            json.split_at(json.iter().position(|&b| b == 0).unwrap_or(json.len()));
        let mut entry: AuditEntry = serde_json::from_slice(sealed).expect("entry");
        if entry.seq < from {
            prev = entry.hash.clone();
            continue;
        }
        if entry.seq == from {
            entry.outcome = Some("allow, rewritten".into());
        }
        let mut stored = entry.seal(entry.seq, &prev).expect("seal");
        stored.extend_from_slice(beside);
        audit
            .insert(key, packing::pack(&stored).expect("pack"))
            .expect("write");
        prev = entry.hash.clone();
        head = AuditHead::at(entry.seq, entry.hash);
    }
    let meta = db.open_tree("meta").expect("meta");
    meta.insert("audit_head", serde_json::to_vec(&head).expect("head"))
        .expect("head");
    db.flush().expect("flush");
}

/// `herald audit verify` on a stopped gateway's store, against a checkpoint file.
fn verify_offline(data: &str, config: &str, checkpoint: &std::path::Path) -> std::process::Output {
    let checkpoint = checkpoint.to_str().expect("path");
    herald(
        &[
            "audit",
            "verify",
            "--data",
            data,
            "--config",
            config,
            "--checkpoint",
            checkpoint,
        ],
        &[],
    )
}

async fn verify(app: &TestApp, query: &str) -> Value {
    let (status, body) = app
        .read(Role::Compliance, &format!("/v1/audit/verify{query}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn config_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("herald.toml");
    std::fs::write(&path, format!("[audit]\nsigning_key = \"{SIGNING_KEY}\"\n")).expect("config");
    path
}

#[tokio::test]
async fn verify_names_the_one_flipped_byte_online_and_offline() {
    crate::sled_only!();
    let (app, _) = seeded().await;
    let good = verify(&app, "").await;
    assert_eq!(
        (&good["ok"], &good["entries"], &good["first_seq"]),
        (&json!(true), &json!(SYNTHETIC), &json!(1))
    );
    let dir = app.stop().await;
    let store = dir.path().join("store");
    let out = herald(&["audit", "verify", "--data", store.to_str().unwrap()], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    flip_a_byte(&store, 23);
    let out = herald(&["audit", "verify", "--data", store.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("entry 23"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["first_bad_seq"], 23);

    let app = spawn_app_with(TestOptions {
        data: Some(dir),
        ..TestOptions::default()
    })
    .await;
    let bad = verify(&app, "").await;
    assert_eq!(
        (&bad["ok"], &bad["first_bad_seq"]),
        (&json!(false), &json!(23))
    );
    assert_eq!(bad["entries"], 22, "the good entries before it");
}

#[tokio::test]
async fn a_signed_checkpoint_catches_a_chain_rewritten_consistently() {
    crate::sled_only!();
    let (app, _) = seeded().await;
    let (status, cp) = app.read(Role::Compliance, "/v1/audit/checkpoint").await;
    assert_eq!(status, 200, "{cp}");
    let checkpoint: Checkpoint = serde_json::from_value(cp.clone()).expect("checkpoint");
    assert_eq!(checkpoint.check_signature(), Ok(()));
    assert_eq!(checkpoint.seq, SYNTHETIC as u64);
    let mut forged = checkpoint.clone();
    forged.head = "0".repeat(64);
    assert!(
        forged.check_signature().is_err(),
        "a changed head breaks the signature"
    );

    let query = format!(
        "?checkpoint_seq={}&checkpoint_head={}",
        checkpoint.seq, checkpoint.head
    );
    assert_eq!(verify(&app, &query).await["ok"], true);
    app.consent("4242", "transactional", None).await;
    assert_eq!(verify(&app, &query).await["ok"], true, "appending keeps it");

    let dir = app.stop().await;
    let store = dir.path().join("store");
    rewrite_consistently(&store, 10);
    let cp_file = dir.path().join("checkpoint.json");
    std::fs::write(&cp_file, cp.to_string()).expect("write");
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, serde_json::to_string(&forged).unwrap()).expect("write");
    let config = config_file(dir.path());
    let data = store.to_str().unwrap();
    let config = config.to_str().unwrap();

    let plain = herald(
        &["audit", "verify", "--data", data, "--config", config],
        &[],
    );
    assert_eq!(
        plain.status.code(),
        Some(0),
        "the rewritten chain is whole in itself"
    );
    let with_cp = verify_offline(data, config, &cp_file);
    assert_eq!(with_cp.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&with_cp.stdout).expect("json");
    assert_eq!(report["checkpoint"]["ok"], false, "{report}");
    let forged_out = herald(
        &[
            "audit",
            "verify",
            "--data",
            data,
            "--checkpoint",
            forged_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(forged_out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&forged_out.stderr).contains("signature"));

    let app = spawn_app_with(TestOptions {
        data: Some(dir),
        ..TestOptions::default()
    })
    .await;
    assert_eq!(verify(&app, "").await["ok"], true);
    let caught = verify(&app, &query).await;
    assert_eq!(
        (&caught["ok"], &caught["checkpoint"]["ok"]),
        (&json!(false), &json!(false)),
        "{caught}"
    );
}

#[tokio::test]
async fn each_allowed_decision_names_the_consent_that_permitted_it() {
    let app = spawn_app().await;
    app.create_user("4242").await;
    app.consent("4242", "transactional", None).await;
    app.user_writes("4242", "where is my order?", None).await;
    let (status, body) = app.respond("4242", "On its way").await;
    assert_eq!(status, 202, "{body}");
    let consent = &body["decision"]["consent"];
    let id = consent["id"].as_str().expect("consent id");
    assert!(id.starts_with("cns_"), "{body}");
    assert_eq!(consent["source"], "api");

    let (_, recipient) = app.recipient("4242").await;
    let recorded = recipient["consents"]
        .as_array()
        .expect("consents")
        .iter()
        .find(|c| c["id"] == id)
        .expect("the consent is on the recipient's record");
    assert_eq!(recorded["evidence"]["evidence"]["ip"], "203.0.113.9");
    assert_eq!(recipient["last_decisions"][0]["consent_id"], id);
    assert_eq!(recipient["last_decisions"][0]["outcome"], "allow");

    let decisions = query_all(&app, "recipient=4242&kind=decision", 100).await;
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["consent_id"], id);
    assert_eq!(decisions[0]["consent_source"], "api");
    assert_eq!(decisions[0]["recipient"], "4242");
    let consents = query_all(&app, "recipient=4242&kind=consent", 100).await;
    let entry = consents
        .iter()
        .find(|e| e["consent_id"] == id)
        .expect("the consent's own entry");
    assert_eq!(entry["consent_evidence"]["evidence"]["order"], "A-1");

    let (status, denied) = app.respond("5555", "hello?").await;
    assert_eq!(status, 422);
    assert!(denied["decision"].get("consent").is_none(), "{denied}");
}

#[tokio::test]
async fn erasure_keeps_the_chain_verifiable_and_the_entries_findable_without_the_data() {
    let app = spawn_app().await;
    app.create_user("4242").await;
    let (status, _) = app
        .call(
            Role::Backend,
            "/v1/consents",
            json!({"recipient": {"psid": "4242"}, "scope": "transactional", "source": "checkout_checkbox",
                   "evidence": {"ip": "203.0.113.9"}, "email": "ada@example.com",
                   "timezone": "Europe/Berlin", "locale": "de_DE"}),
        )
        .await;
    assert_eq!(status, 201);
    app.user_writes("4242", "hi", None).await;
    let (status, sent) = app.respond("4242", "Your code is 918273").await;
    assert_eq!(status, 202, "{sent}");
    app.drain().await;
    let later = stamp(app.now() + Duration::hours(1));
    let (status, waiting) = app
        .send(
            json!({"recipient": {"psid": "4242"}, "category": "response",
                     "message": {"text": "later"}, "send_at": later}),
        )
        .await;
    assert_eq!(status, 202, "{waiting}");
    let before = query_all(&app, "recipient=4242", 100).await.len();

    let path = "/v1/recipients/4242";
    for role in [Role::Compliance, Role::Backend, Role::Marketer] {
        let r = app
            .http
            .delete(format!("{}{path}", app.address))
            .bearer_auth(app.token(role))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 403, "{role} may not erase");
    }
    let r = app
        .http
        .delete(format!("{}{path}", app.address))
        .bearer_auth(app.token(Role::Admin))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["messages"], 2, "{report}");

    assert_eq!(
        verify(&app, "").await["ok"],
        true,
        "the chain still verifies"
    );
    let entries = query_all(&app, "recipient=4242", 100).await;
    assert_eq!(
        entries.len(),
        before + 2,
        "found by pseudonym, plus the waiting message's cancellation and the erasure's own"
    );
    assert!(entries.iter().all(|e| e["erased"] == true), "{entries:?}");
    assert!(entries.iter().any(|e| e["kind"] == "erasure"));
    let token = app.token(Role::Compliance);
    for path in [
        "/v1/audit?recipient=4242",
        "/v1/audit/export?format=jsonl&recipient=4242",
        "/v1/audit/export?format=csv",
        "/v1/recipients/4242",
    ] {
        let text = app
            .get(path, Some(&token))
            .await
            .text()
            .await
            .expect("text");
        for personal in [
            "203.0.113.9",
            "ada@example.com",
            "Europe/Berlin",
            "de_DE",
            "\"recipient\":\"4242\"",
            ",4242,",
            "918273",
        ] {
            assert!(
                !text.contains(personal),
                "{path} still shows {personal}: {text}"
            );
        }
    }
    let (_, recipient) = app.recipient("4242").await;
    assert!(recipient["erased_at"].is_string());
    assert!(recipient["consents"][0]["evidence"].is_null());
    let waiting = app.message(waiting["id"].as_str().unwrap()).await;
    assert_eq!(
        waiting["status"], "cancelled",
        "a waiting message does not go"
    );

    let (status, denied) = app.respond("4242", "still there?").await;
    assert_eq!(
        (status, &denied["reason"]),
        (422, &json!("no_consent")),
        "{denied}"
    );
    app.consent("4242", "transactional", None).await;
    let (status, again) = app.respond("4242", "welcome back").await;
    assert_eq!(status, 202, "a new consent: {again}");
    app.drain().await;
}

#[tokio::test]
async fn retention_prunes_behind_a_recorded_start_and_verify_says_where_the_chain_starts() {
    let app = spawn_app_with(TestOptions {
        retain_days: Some(30),
        ..TestOptions::default()
    })
    .await;
    let base = app.now() - Duration::days(40);
    let old: Vec<AuditEntry> = (0..12).map(|i| synthetic(i, base)).collect();
    let recent: Vec<AuditEntry> = (12..20).map(|i| synthetic(i, app.now())).collect();
    let store = &app.handle().herald.store;
    store.audit.append(old).await.expect("append");
    let (_, cp) = app.read(Role::Compliance, "/v1/audit/checkpoint").await;
    store.audit.append(recent).await.expect("append");

    let retention = app
        .handle()
        .herald
        .apply_retention()
        .await
        .expect("retention")
        .expect("pruned");
    assert_eq!((retention.pruned, retention.through_seq), (12, 12));
    let v = verify(&app, "").await;
    // With several chains (PostgreSQL) each starts where its own pruning left it.
    let starts = match v["chains"].as_array() {
        Some(chains) => chains.iter().filter_map(|c| c["first_seq"].as_u64()).max(),
        None => v["first_seq"].as_u64(),
    };
    assert_eq!(
        (&v["ok"], starts, &v["entries"]),
        (&json!(true), Some(13), &json!(9)),
        "{v}"
    );
    let left = query_all(&app, "", 100).await;
    assert_eq!(left.first().map(|e| e["seq"].clone()), Some(json!(13)));
    assert_eq!(left.last().expect("last")["kind"], "retention");
    assert!(query_all(&app, "recipient=1000", 100)
        .await
        .iter()
        .all(|e| e["seq"].as_u64() > Some(12)));
    // A checkpoint on PostgreSQL names each chain's head as well.
    let chains = |seq: Option<u64>, hash: Option<&str>| -> String {
        let heads: Vec<String> = cp["chains"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}:{}:{}",
                    c["chain"],
                    seq.unwrap_or(c["seq"].as_u64().unwrap()),
                    hash.unwrap_or(c["hash"].as_str().unwrap())
                )
            })
            .collect();
        format!("&checkpoint_chains={}", heads.join(","))
    };
    let at_start = format!(
        "?checkpoint_seq={}&checkpoint_head={}{}",
        cp["seq"],
        cp["head"].as_str().unwrap(),
        chains(None, None)
    );
    assert_eq!(
        verify(&app, &at_start).await["ok"],
        true,
        "the checkpoint at the start"
    );
    // A well-formed hash (64 hex characters), of an entry pruned since.
    let gone = "abc0".repeat(16);
    let pruned_away = verify(
        &app,
        &format!(
            "?checkpoint_seq=3&checkpoint_head={gone}{}",
            chains(Some(3), Some(&gone))
        ),
    )
    .await;
    assert_eq!(pruned_away["ok"], false);
    assert!(pruned_away["checkpoint"]["problem"]
        .as_str()
        .unwrap_or_default()
        .contains("pruned"));
    assert!(app
        .handle()
        .herald
        .apply_retention()
        .await
        .expect("again")
        .is_none());
}

#[tokio::test]
async fn compliance_and_admin_read_the_audit_log_and_others_may_not() {
    let app = spawn_app().await;
    for path in [
        "/v1/audit",
        "/v1/audit/export?format=csv",
        "/v1/audit/verify",
        "/v1/audit/checkpoint",
    ] {
        assert_eq!(app.get(path, None).await.status().as_u16(), 401, "{path}");
        for (role, status) in [
            (Role::Backend, 403),
            (Role::Marketer, 403),
            (Role::Compliance, 200),
            (Role::Admin, 200),
        ] {
            let got = app
                .get(path, Some(&app.token(role)))
                .await
                .status()
                .as_u16();
            assert_eq!(got, status, "{role} GET {path}");
        }
    }
    let (status, _) = app.erase("9999").await;
    assert_eq!(status, 404, "an unknown recipient");
}

#[tokio::test]
async fn the_cli_exports_and_signs_a_stopped_gateways_log() {
    crate::sled_only!();
    let (app, _) = seeded().await;
    let dir = app.stop().await;
    let data = dir.path().join("store");
    let config = config_file(dir.path());
    let (data, config) = (data.to_str().unwrap(), config.to_str().unwrap());

    let out = herald(
        &[
            "audit",
            "export",
            "--data",
            data,
            "--config",
            config,
            "--format",
            "csv",
            "--recipient",
            "1003",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    assert_eq!(reader.headers().expect("header").len(), CSV_COLUMNS.len());
    assert_eq!(reader.records().count(), SYNTHETIC / 4);

    let out = herald(
        &["audit", "export", "--data", data, "--format", "jsonl"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        SYNTHETIC
    );

    let out = herald(
        &["audit", "checkpoint", "--data", data, "--config", config],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cp: Checkpoint = serde_json::from_slice(&out.stdout).expect("checkpoint");
    assert_eq!((cp.seq, cp.check_signature()), (SYNTHETIC as u64, Ok(())));
    let cp_file = dir.path().join("cp.json");
    std::fs::write(&cp_file, &out.stdout).expect("write");
    let out = verify_offline(data, config, &cp_file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let missing = herald(&["audit", "verify", "--data", "/nonexistent/store"], &[]);
    assert_eq!(missing.status.code(), Some(1));
}

/// Erasure reaches every copy: the answer kept under an `Idempotency-Key` too, which a replay
/// would otherwise hand back with the name in the template's parameters. (Runs on the store the
/// suite runs on: sled, or PostgreSQL with HERALD_TEST_BACKEND=postgres.)
#[tokio::test]
async fn erasure_reaches_the_answer_kept_for_an_idempotency_key_and_every_other_copy() {
    let app = spawn_app().await;
    let psid = "4343";
    app.create_user(psid).await;
    app.consent(psid, "transactional", None).await;
    let body = json!({
        "recipient": {"psid": psid},
        "order": {
            "order_number": "A-77", "currency": "EUR", "payment_method": "Visa 4242",
            "recipient_name": "Ada SECRETNAME",
            "summary": {"subtotal": 40, "shipping_cost": 4.5, "total_cost": 44.5},
            "elements": [{"title": "Teapot", "price": 40, "quantity": 1}]
        }
    });
    let send = || {
        app.http
            .post(format!("{}/v1/receipts", app.address))
            .bearer_auth(app.token(Role::Backend))
            .header("Idempotency-Key", "receipt-A-77")
            .json(&body)
            .send()
    };
    // Someone else's receipt, whose kept answer must keep their name.
    app.create_user("4344").await;
    app.consent("4344", "transactional", None).await;
    let mut other = body.clone();
    other["recipient"]["psid"] = json!("4344");
    other["order"]["recipient_name"] = json!("Grace KEPTNAME");
    let send_other = || {
        app.http
            .post(format!("{}/v1/receipts", app.address))
            .bearer_auth(app.token(Role::Backend))
            .header("Idempotency-Key", "receipt-B-78")
            .json(&other)
            .send()
    };
    let kept = send_other().await.expect("send");
    assert_eq!(kept.status().as_u16(), 202);
    let kept: Value = kept.json().await.expect("json");
    let first = send().await.expect("send");
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.expect("json");
    assert!(
        first.to_string().contains("SECRETNAME"),
        "the first answer names the person (else this test proves nothing): {first}"
    );
    let id = first["id"].as_str().expect("id").to_owned();
    app.drain().await;
    assert_eq!(app.inbox(psid).len(), 1);
    assert_eq!(app.inbox("4344").len(), 1);
    // Webhook events kept for a retry: the person's, and another's.
    let store = &app.handle().herald.store;
    for (who, text) in [(psid, "SECRETNAME wrote this"), ("4344", "someone else")] {
        let event = json!({"page_id": crate::helpers::PAGE_ID, "event": {
            "sender": {"id": who}, "recipient": {"id": crate::helpers::PAGE_ID},
            "timestamp": 1_764_000_000_000_i64, "message": {"mid": format!("m.{who}"), "text": text}}});
        store.recipients.park_event(&event).await.expect("park");
    }

    let (status, _) = app.erase(psid).await;
    assert_eq!(status, 200);

    let parked = store.recipients.parked_events(100).await.expect("parked");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(!format!("{parked:?}").contains("SECRETNAME"), "{parked:?}");

    let replay = send().await.expect("replay");
    assert_eq!(
        replay.status().as_u16(),
        202,
        "the same answer, as Stripe gives"
    );
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay["id"], first["id"], "{replay}");
    assert_eq!(replay["status"], first["status"]);
    assert!(replay["decision"]["utility_template"].is_null(), "{replay}");
    assert_eq!(
        replay["decision"]["trace"],
        json!([]),
        "a trace can name the person's time zone: {replay}"
    );
    app.drain().await;
    assert_eq!(app.inbox(psid).len(), 1, "the replay sent nothing");
    let other_replay: Value = send_other()
        .await
        .expect("replay")
        .json()
        .await
        .expect("json");
    assert_eq!(
        other_replay, kept,
        "another person's kept answer is untouched"
    );
    assert!(kept.to_string().contains("KEPTNAME"));

    let token = app.token(Role::Compliance);
    for (path, text) in [
        ("replay", replay.to_string()),
        ("message", app.message(&id).await.to_string()),
        ("recipient", app.recipient(psid).await.1.to_string()),
    ] {
        assert!(
            !text.contains("SECRETNAME"),
            "{path} shows the name: {text}"
        );
    }
    for path in [
        format!("/v1/audit?recipient={psid}"),
        "/v1/audit/export?format=jsonl".to_owned(),
        "/v1/audit/export?format=csv".to_owned(),
    ] {
        let text = app
            .get(&path, Some(&token))
            .await
            .text()
            .await
            .expect("text");
        assert!(
            !text.contains("SECRETNAME"),
            "{path} shows the name: {text}"
        );
    }

    // Asking again finds nothing left and changes nothing.
    let (status, _) = app.erase(psid).await;
    assert_eq!(status, 200);
    let again: Value = send().await.expect("replay").json().await.expect("json");
    assert_eq!(again, replay);
}

#[tokio::test]
async fn a_csv_export_never_starts_a_cell_with_a_formula() {
    let app = spawn_app().await;
    let name = "=HYPERLINK(\"https://evil.example\",\"click\")";
    let (status, created) = app
        .call(
            Role::Marketer,
            "/v1/campaigns",
            json!({"name": name, "message": {"text": "hi"}, "audience": {"psids": ["4242"]}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let hostile = ["+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\t=1", "\r=1"];
    let entries = hostile
        .iter()
        .map(|detail| AuditEntry {
            at: app.now(),
            kind: AuditKind::Decision,
            detail: Some((*detail).to_owned()),
            client: Some((*detail).to_owned()),
            ..AuditEntry::default()
        })
        .collect();
    app.handle()
        .herald
        .store
        .audit
        .append(entries)
        .await
        .expect("append");
    let text = app
        .get(
            "/v1/audit/export?format=csv",
            Some(&app.token(Role::Compliance)),
        )
        .await
        .text()
        .await
        .expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let col = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).expect("column");
    let details: Vec<&str> = rows.iter().map(|r| &r[col("detail")]).collect();
    assert!(
        details.iter().any(|d| d.starts_with("'=HYPERLINK(")),
        "the campaign's name is kept, made inert: {details:?}"
    );
    for detail in hostile {
        assert!(
            details.contains(&format!("'{detail}").as_str()),
            "{details:?}"
        );
    }
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a cell a spreadsheet would run: {cell:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_malformed_checkpoint_is_a_400_naming_the_parameter_and_a_head_in_capitals_verifies() {
    let (app, _) = seeded().await;
    let (_, cp) = app.read(Role::Compliance, "/v1/audit/checkpoint").await;
    let (seq, head) = (
        cp["seq"].as_u64().expect("seq"),
        cp["head"].as_str().expect("head"),
    );
    let chains = |upper: bool| -> String {
        let heads: Vec<String> = cp["chains"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let hash = c["hash"].as_str().expect("hash");
                let hash = if upper {
                    hash.to_uppercase()
                } else {
                    hash.to_owned()
                };
                format!("{}:{}:{hash}", c["chain"], c["seq"])
            })
            .collect();
        if heads.is_empty() {
            String::new()
        } else {
            format!("&checkpoint_chains={}", heads.join(","))
        }
    };
    let upper = verify(
        &app,
        &format!(
            "?checkpoint_seq={seq}&checkpoint_head={}{}",
            head.to_uppercase(),
            chains(true)
        ),
    )
    .await;
    assert_eq!(
        (&upper["ok"], &upper["checkpoint"]["ok"]),
        (&json!(true), &json!(true)),
        "{upper}"
    );
    let good = "ab".repeat(32);
    let cases = [
        (
            format!("checkpoint_seq=0&checkpoint_head={head}"),
            "checkpoint_seq",
        ),
        (
            format!("checkpoint_seq=-1&checkpoint_head={head}"),
            "checkpoint_seq",
        ),
        (
            format!("checkpoint_seq=many&checkpoint_head={head}"),
            "checkpoint_seq",
        ),
        (
            format!("checkpoint_seq={seq}&checkpoint_head=abc"),
            "checkpoint_head",
        ),
        (
            format!("checkpoint_seq={seq}&checkpoint_head={}", "g".repeat(64)),
            "checkpoint_head",
        ),
        (
            format!("checkpoint_seq={seq}&checkpoint_head={good}0"),
            "checkpoint_head",
        ),
        (format!("checkpoint_head={head}"), "checkpoint_seq"),
        (
            format!("checkpoint_seq={seq}&checkpoint_head={head}&checkpoint_chains=1:2"),
            "checkpoint_chains",
        ),
        (
            format!("checkpoint_seq={seq}&checkpoint_head={head}&checkpoint_chains=1:2:abc"),
            "checkpoint_chains",
        ),
        (
            format!("checkpoint_seq={seq}&checkpoint_head={head}&checkpoint_chains=x:2:{good}"),
            "checkpoint_chains",
        ),
    ];
    for (query, field) in cases {
        let (status, answer) = app
            .read(Role::Compliance, &format!("/v1/audit/verify?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["errors"][0]["field"], field, "{query}: {answer}");
        assert!(
            !answer.to_string().contains("rewritten"),
            "a bad checkpoint is not evidence of a rewrite: {answer}"
        );
    }
    // A well-formed checkpoint that the log does not hold is still caught.
    let other = verify(
        &app,
        &format!(
            "?checkpoint_seq={seq}&checkpoint_head={good}{}",
            chains(false)
        ),
    )
    .await;
    assert_eq!(other["ok"], false, "{other}");
    // So is one past the head: the log lost its tail, or it is another log's checkpoint.
    for past in [seq + 1, u64::MAX] {
        let beyond = verify(
            &app,
            &format!(
                "?checkpoint_seq={past}&checkpoint_head={head}{}",
                chains(false)
            ),
        )
        .await;
        assert_eq!(beyond["ok"], false, "{past}: {beyond}");
    }
}

#[tokio::test]
async fn the_latest_entries_come_first_with_order_newest_and_page_back_in_time() {
    let (app, _) = seeded().await;
    let seqs = |page: &Value| -> Vec<u64> {
        page["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .collect()
    };
    let (status, first) = app
        .read(Role::Compliance, "/v1/audit?order=newest&limit=25")
        .await;
    assert_eq!(status, 200, "{first}");
    let first_seqs = seqs(&first);
    assert_eq!(first_seqs.len(), 25);
    assert_eq!(first_seqs[0], app.audit_head().await, "the newest first");
    assert!(first_seqs.windows(2).all(|w| w[0] > w[1]), "{first_seqs:?}");
    let cursor = first["next_cursor"].as_str().expect("more, further back");
    let (_, second) = app
        .read(
            Role::Compliance,
            &format!("/v1/audit?order=newest&limit=25&cursor={cursor}"),
        )
        .await;
    let second_seqs = seqs(&second);
    assert_eq!(
        second_seqs[0] + 1,
        first_seqs[24],
        "the next page goes on back in time"
    );

    let (status, problem) = app.read(Role::Compliance, "/v1/audit?order=sideways").await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "order", "{problem}");
}
