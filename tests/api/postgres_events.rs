//! Events for business systems on PostgreSQL (issue 19): event endpoints and where their
//! delivery stands, kept per audit chain and written only by the owner of the chain's partition
//! (fencing). These tests speak to the store of gateways sharing one database; the whole
//! delivery across instances, one killed, is `three_gateways_one_killed_deliver_every_event`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use herald::domain::audit::{AuditEntry, AuditKind};
use herald::domain::endpoint::{
    AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointRecord, EventRefRecord, PendingDelivery,
};
use herald::domain::event::{events_of, EventRef, TypeFilter};
use herald::domain::Role;
use herald::store::{AuditLog, Engine, EventEndpoints, PgStore, StoreError};

use crate::crash::client_token;
use crate::helpers::{
    fresh_database, postgres_server, test_pseudonyms, test_settings, use_database,
};
use crate::postgres::{sql, tool_store, Fleet};

/// The partitions (and so audit chains) of the test databases (`use_database`).
const PARTITIONS: u32 = 8;

/// A gateway's store on `database`: it takes its share of partitions and keeps its leases
/// (lease rounds) until dropped.
struct Instance {
    store: Arc<PgStore>,
    rounds: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.rounds.abort();
    }
}

async fn instance(database: &str) -> Instance {
    let mut settings = test_settings(Path::new("unused"), "http://127.0.0.1:1");
    use_database(&mut settings, Some(database));
    let options = herald::startup::pg_options(&settings, true).expect("options");
    let store = PgStore::open(&options, test_pseudonyms())
        .await
        .expect("open the database");
    let engine: Arc<dyn Engine> = store.clone();
    let rounds = herald::store::spawn_upkeep(engine).expect("a gateway runs lease rounds");
    Instance { store, rounds }
}

fn at(second: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + second, 0)
        .single()
        .expect("a time")
}

fn endpoint(id: &str, created: DateTime<Utc>) -> EndpointRecord {
    EndpointRecord {
        id: id.into(),
        url: "https://crm.example/herald".into(),
        events: TypeFilter::all(),
        format: Default::default(),
        description: None,
        secret: "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=".into(),
        previous_secret: None,
        disabled: false,
        failing_since: None,
        created_at: created,
        updated_at: created,
    }
}

fn endpoint_entry(id: &str, outcome: &str, when: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        kind: AuditKind::Endpoint,
        outcome: Some(outcome.into()),
        detail: Some(id.into()),
        at: when,
        ..AuditEntry::default()
    }
}

fn attempt(id: &str, status: AttemptStatus, when: DateTime<Utc>) -> DeliveryAttempt {
    DeliveryAttempt {
        id: id.into(),
        event_id: "evt_3_8_0".into(),
        event_type: "message.sent".into(),
        at: when,
        status,
        http_status: Some(if status == AttemptStatus::Succeeded {
            200
        } else {
            503
        }),
        error: None,
        duration_ms: 12,
        attempt: 1,
        next_attempt_at: None,
    }
}

fn event(chain: u32, seq: u64, index: u8) -> EventRefRecord {
    EventRefRecord { chain, seq, index }
}

fn pending(event: EventRefRecord, due: DateTime<Utc>) -> PendingDelivery {
    PendingDelivery {
        event,
        due,
        attempts: 1,
    }
}

async fn count(database: &str, statement: &str) -> i64 {
    sql(database, statement).await[0].get(0)
}

/// A fresh database with one gateway's store on it; `None` without a PostgreSQL server.
async fn one_instance() -> Option<(String, Instance)> {
    let database = fresh_database(&postgres_server()?).await;
    let one = instance(&database).await;
    Some((database, one))
}

/// The attempts' ids, as listed.
fn ids(attempts: &[DeliveryAttempt]) -> Vec<&str> {
    attempts.iter().map(|a| a.id.as_str()).collect()
}

#[tokio::test]
async fn an_endpoint_keeps_its_cursors_retries_and_attempts_and_takes_them_when_deleted() {
    let Some((database, one)) = one_instance().await else {
        return;
    };
    let store = &one.store;

    store
        .create_endpoint(
            &endpoint("ep_1", at(0)),
            &[(0, 5), (3, 7)],
            vec![endpoint_entry("ep_1", "created", at(0))],
        )
        .await
        .expect("create");
    assert_eq!(
        store.endpoint("ep_1").await.expect("read"),
        Some(endpoint("ep_1", at(0)))
    );
    assert_eq!(store.cursor("ep_1", 0).await.expect("cursor"), 5);
    assert_eq!(store.cursor("ep_1", 3).await.expect("cursor"), 7);
    assert_eq!(
        store.cursor("ep_1", 1).await.expect("cursor"),
        0,
        "a chain with no cursor starts at its beginning"
    );
    // Its creation is in the audit log, in the transaction that made it (chain 0: no page).
    let written = store.read_chain(0, 0, 10).await.expect("read the chain");
    let created = written.last().expect("an entry");
    assert_eq!(
        (
            created.kind,
            created.outcome.as_deref(),
            created.detail.as_deref()
        ),
        (AuditKind::Endpoint, Some("created"), Some("ep_1"))
    );

    // A round: one event delivered, one to be retried in 5 s, the cursor moved.
    store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                cursor: Some((3, 9)),
                attempts: vec![
                    attempt("att_0001", AttemptStatus::Succeeded, at(1)),
                    attempt("att_0002", AttemptStatus::Retrying, at(1)),
                ],
                pending: vec![pending(event(3, 8, 0), at(6))],
                done: vec![],
            },
        )
        .await
        .expect("record a round");
    assert_eq!(store.cursor("ep_1", 3).await.expect("cursor"), 9);
    assert_eq!(
        store.due_deliveries("ep_1", at(5), 10).await.expect("due"),
        vec![],
        "not due yet"
    );
    assert_eq!(
        store.due_deliveries("ep_1", at(6), 10).await.expect("due"),
        vec![pending(event(3, 8, 0), at(6))]
    );
    assert_eq!(
        store.next_delivery_due("ep_1").await.expect("next"),
        Some(at(6))
    );

    // The retry goes through: the delivery is done.
    store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                cursor: None,
                attempts: vec![attempt("att_0003", AttemptStatus::Succeeded, at(6))],
                pending: vec![],
                done: vec![event(3, 8, 0)],
            },
        )
        .await
        .expect("record the retry");
    assert_eq!(
        store.due_deliveries("ep_1", at(60), 10).await.expect("due"),
        vec![]
    );
    assert_eq!(store.next_delivery_due("ep_1").await.expect("next"), None);

    // Attempts, newest first; by status; before one.
    let all = store.attempts("ep_1", None, None, 10).await.expect("list");
    assert_eq!(ids(&all), ["att_0003", "att_0002", "att_0001"]);
    assert_eq!(all[1], attempt("att_0002", AttemptStatus::Retrying, at(1)));
    let retrying = store
        .attempts("ep_1", Some(AttemptStatus::Retrying), None, 10)
        .await
        .expect("list");
    assert_eq!(ids(&retrying), ["att_0002"]);
    let succeeded = store
        .attempts("ep_1", Some(AttemptStatus::Succeeded), None, 10)
        .await
        .expect("list");
    assert_eq!(ids(&succeeded), ["att_0003", "att_0001"]);
    let page = store
        .attempts("ep_1", None, Some("att_0003"), 1)
        .await
        .expect("list");
    assert_eq!(ids(&page), ["att_0002"]);

    // A change, with its audit entry; one that leaves it alone writes nothing.
    let changed = store
        .update_endpoint(
            "ep_1",
            Box::new(|e| {
                e.disabled = true;
                Some(vec![endpoint_entry("ep_1", "disabled", at(7))])
            }),
        )
        .await
        .expect("update");
    assert!(changed.is_some_and(|e| e.disabled));
    let unchanged = store
        .update_endpoint(
            "ep_1",
            Box::new(|e| {
                e.url = "https://elsewhere.example/".into();
                None
            }),
        )
        .await
        .expect("update");
    assert!(unchanged.is_none());
    let stored = store.endpoint("ep_1").await.expect("read").expect("stored");
    assert!(stored.disabled);
    assert_eq!(stored.url, "https://crm.example/herald");
    assert!(store
        .update_endpoint("ep_none", Box::new(|_| Some(vec![])))
        .await
        .expect("update")
        .is_none());
    let written = store.read_chain(0, 0, 10).await.expect("read the chain");
    assert_eq!(
        written.last().and_then(|e| e.outcome.as_deref()),
        Some("disabled")
    );

    // Listed oldest first.
    store
        .create_endpoint(&endpoint("ep_2", at(10)), &[], vec![])
        .await
        .expect("create");
    let listed: Vec<String> = store
        .endpoints()
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, ["ep_1", "ep_2"]);

    // Deleted with everything it had, and its audit entry.
    store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                pending: vec![pending(event(0, 6, 0), at(70))],
                ..DeliveryRound::default()
            },
        )
        .await
        .expect("record");
    assert!(store
        .delete_endpoint("ep_1", vec![endpoint_entry("ep_1", "deleted", at(80))])
        .await
        .expect("delete"));
    assert_eq!(store.endpoint("ep_1").await.expect("read"), None);
    for table in ["event_cursors", "event_pending", "event_attempts"] {
        assert_eq!(
            count(
                &database,
                &format!("SELECT count(*) FROM {table} WHERE endpoint = 'ep_1'")
            )
            .await,
            0,
            "{table} keeps nothing of a deleted endpoint"
        );
    }
    let written = store.read_chain(0, 0, 10).await.expect("read the chain");
    assert_eq!(
        written.last().and_then(|e| e.outcome.as_deref()),
        Some("deleted")
    );
    assert!(!store
        .delete_endpoint("ep_1", vec![endpoint_entry("ep_1", "deleted", at(81))])
        .await
        .expect("delete"));
    let after = store.read_chain(0, 0, 10).await.expect("read the chain");
    assert_eq!(
        after.len(),
        written.len(),
        "nothing deleted, nothing audited"
    );
    // A round of an endpoint deleted meanwhile has nowhere to go, and is no error.
    store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                cursor: Some((0, 9)),
                ..DeliveryRound::default()
            },
        )
        .await
        .expect("a late round");
    assert_eq!(
        count(
            &database,
            "SELECT count(*) FROM event_cursors WHERE endpoint = 'ep_1'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_round_touching_a_chain_whose_partition_was_taken_over_is_refused_whole() {
    let Some((database, one)) = one_instance().await else {
        return;
    };
    let store = &one.store;
    store
        .create_endpoint(&endpoint("ep_1", at(0)), &[], vec![])
        .await
        .expect("create");
    store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                cursor: Some((1, 4)),
                attempts: vec![attempt("att_0001", AttemptStatus::Succeeded, at(1))],
                ..DeliveryRound::default()
            },
        )
        .await
        .expect("a round on chains this instance owns");

    // Another instance takes partition 2 over: its epoch moves on.
    sql(
        &database,
        "UPDATE partitions SET owner = 'another', epoch = epoch + 1 WHERE partition = 2",
    )
    .await;
    // A round that touches chains 1 and 2 (a retry in chain 2) is refused, chain 1's part too.
    let refused = store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                cursor: Some((1, 6)),
                attempts: vec![attempt("att_0002", AttemptStatus::Retrying, at(2))],
                pending: vec![pending(event(2, 3, 0), at(7))],
                done: vec![],
            },
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { partition: 2, .. })),
        "{refused:?}"
    );
    assert_eq!(store.cursor("ep_1", 1).await.expect("cursor"), 4);
    assert_eq!(
        ids(&store.attempts("ep_1", None, None, 10).await.expect("list")),
        ["att_0001"]
    );
    assert_eq!(
        count(&database, "SELECT count(*) FROM event_pending").await,
        0
    );
    // Done deliveries of a chain taken over are refused too: the new owner retries them.
    let refused = store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                done: vec![event(2, 1, 0)],
                ..DeliveryRound::default()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );

    // A replay queues deliveries from any instance: the chain's owner delivers them.
    store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                pending: vec![pending(event(2, 1, 0), at(3))],
                ..DeliveryRound::default()
            },
        )
        .await
        .expect("a replay touches no one's progress");
    assert_eq!(
        count(
            &database,
            "SELECT count(*) FROM event_pending WHERE chain = 2"
        )
        .await,
        1
    );

    // A round on chain 1 alone still goes through.
    store
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                cursor: Some((1, 6)),
                ..DeliveryRound::default()
            },
        )
        .await
        .expect("chain 1 is still ours");
    assert_eq!(store.cursor("ep_1", 1).await.expect("cursor"), 6);
}

/// Waits until the partitions are shared by `n` owners, as evenly as they go.
async fn until_shared(database: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let even = i64::from(PARTITIONS) / n;
    loop {
        let owners = count(
            database,
            "SELECT count(DISTINCT owner) FROM partitions WHERE lease_until > now()",
        )
        .await;
        let fewest = count(
            database,
            "SELECT coalesce(min(n), 0) FROM (SELECT count(*) AS n FROM partitions
             WHERE lease_until > now() GROUP BY owner) AS o",
        )
        .await;
        if owners == n && fewest == even {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the partitions were never shared by {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_retries_only_the_events_of_the_chains_it_runs() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let a = instance(&database).await;
    let b = instance(&database).await;
    until_shared(&database, 2).await;
    let (a, b) = (&a.store, &b.store);
    a.create_endpoint(&endpoint("ep_1", at(0)), &[], vec![])
        .await
        .expect("create");
    let of_a: Vec<u32> = (0..PARTITIONS).filter(|c| a.runs_chain(*c)).collect();
    let of_b: Vec<u32> = (0..PARTITIONS).filter(|c| b.runs_chain(*c)).collect();
    assert_eq!(
        of_a.len() + of_b.len(),
        PARTITIONS as usize,
        "{of_a:?} {of_b:?}"
    );
    assert!(of_a.iter().all(|c| !of_b.contains(c)));

    // Each records a retry in each of its chains.
    for (store, chains) in [(a, &of_a), (b, &of_b)] {
        let round = DeliveryRound {
            pending: chains
                .iter()
                .map(|c| pending(event(*c, 1, 0), at(i64::from(*c))))
                .collect(),
            ..DeliveryRound::default()
        };
        store
            .record_deliveries("ep_1", round)
            .await
            .expect("record");
    }
    // Each is handed only its own.
    for (store, chains) in [(a, &of_a), (b, &of_b)] {
        let due: Vec<u32> = store
            .due_deliveries("ep_1", at(100), 100)
            .await
            .expect("due")
            .iter()
            .map(|p| p.event.chain)
            .collect();
        assert_eq!(&due, chains);
        assert_eq!(
            store.next_delivery_due("ep_1").await.expect("next"),
            Some(at(i64::from(chains[0])))
        );
    }
    // And cannot record the other's.
    let refused = a
        .record_deliveries(
            "ep_1",
            DeliveryRound {
                done: vec![event(of_b[0], 1, 0)],
                ..DeliveryRound::default()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
}

/// An endpoint's receiver on port 0: answers 200 to every POST, a little slowly (so that a
/// gateway killed mid-delivery has events in flight), and keeps each one's `webhook-id` and
/// event type, in the order they came.
struct Receiver {
    url: String,
    got: Arc<parking_lot::Mutex<Vec<(String, String)>>>,
    server: actix_web::dev::ServerHandle,
}

impl Receiver {
    async fn start() -> Receiver {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let got: Arc<parking_lot::Mutex<Vec<(String, String)>>> = Arc::default();
        let kept = Arc::clone(&got);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/events", listener.local_addr().expect("addr"));
        let server = HttpServer::new(move || {
            let kept = Arc::clone(&kept);
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let kept = Arc::clone(&kept);
                async move {
                    let id = req
                        .headers()
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let kind = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["type"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    kept.lock().push((id, kind));
                    HttpResponse::Ok().finish()
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url,
            got,
            server: handle,
        }
    }

    /// How many times each `webhook-id` came.
    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (id, _) in self.got.lock().iter() {
            *counts.entry(id.clone()).or_default() += 1;
        }
        counts
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

/// Each partition's epoch now.
async fn epochs(database: &str) -> HashMap<i32, i64> {
    sql(database, "SELECT partition, epoch FROM partitions")
        .await
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Waits until the partitions are shared by `n` gateways, none holding more than its share and
/// none being handed over: no rebalance is left to come.
async fn until_settled(database: &str, n: i64) {
    let share = (i64::from(PARTITIONS) + n - 1) / n;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = sql(
            database,
            "SELECT count(*) FROM partitions WHERE owner IS NOT NULL AND lease_until > now()
             GROUP BY owner",
        )
        .await;
        let held: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        if held.len() as i64 == n
            && held.iter().sum::<i64>() == i64::from(PARTITIONS)
            && held.iter().all(|h| *h <= share)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the partitions never settled over {n} gateways: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ids of the `message.*` events in the audit log (every chain, every entry).
async fn message_events(database: &str) -> BTreeSet<String> {
    let store = tool_store(database).await;
    let mut ids = BTreeSet::new();
    for (chain, last) in store.audit.chains().await.expect("chains") {
        let mut after = 0;
        while after < last {
            let entries = store
                .audit
                .read_chain(chain, after, 1000)
                .await
                .expect("read a chain");
            let Some(end) = entries.last().map(|e| e.seq) else {
                break;
            };
            for entry in &entries {
                ids.extend(
                    events_of(entry)
                        .into_iter()
                        .filter(|e| e.kind.starts_with("message."))
                        .map(|e| e.id),
                );
            }
            after = end;
        }
    }
    store.engine.close().await.expect("close");
    ids
}

/// Three gateways on one database deliver the events of messages sent across many pages (so
/// across the partitions each runs) to one endpoint; one is killed with SIGKILL mid-delivery.
/// Every event is delivered, and the only ones delivered twice are of chains the killed one ran
/// (taken over by the others: their epoch moved on): those it may have sent without recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_one_killed_deliver_every_event_and_none_twice_but_across_the_kill() {
    let Some(fleet) = Fleet::new(12).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let events = "[events]\nallow_private_networks = true\n";
    let mut gateways = vec![
        fleet.start_with("a", events).await,
        fleet.start_with("b", events).await,
        fleet.start_with("c", events).await,
    ];
    until_settled(&fleet.database, 3).await;

    let admin = client_token("ops", Role::Admin);
    let created = fleet
        .http
        .post(format!("{}/v1/event-endpoints", gateways[1].base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"url": receiver.url, "events": ["message.*"]}))
        .send()
        .await
        .expect("create an endpoint");
    assert_eq!(created.status().as_u16(), 201, "{:?}", created.text().await);

    // 20 messages a page over 12 pages, accepted by all three: a queued and a sent event each.
    let psids: Vec<String> = (0..240).map(|i| format!("7000000000{i:04}")).collect();
    let all: Vec<&crate::crash::Gateway> = gateways.iter().collect();
    fleet.customers(&all, &psids).await;
    let ids = fleet.ship_all(&all, &psids).await;

    // Mid-delivery, one gateway dies without a word.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.counts().len() < 100 {
        assert!(Instant::now() < deadline, "events never started to arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = epochs(&fleet.database).await;
    let mut killed = gateways.remove(0);
    killed.child.kill().expect("kill -9");
    let _ = killed.child.wait();
    let at_kill = receiver.got.lock().len();
    fleet
        .until_sent(&gateways[0], &ids, Duration::from_secs(60))
        .await;

    // Every message event the audit log holds reaches the endpoint.
    let expected = message_events(&fleet.database).await;
    assert!(
        expected.len() >= 2 * ids.len(),
        "{} events for {} messages",
        expected.len(),
        ids.len()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = receiver.counts();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|e| !counts.contains_key(*e))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} events never arrived, such as {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Settle: whatever is still to come, comes.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let counts = receiver.counts();
    let after = epochs(&fleet.database).await;
    let taken_over: BTreeSet<u32> = after
        .iter()
        .filter(|(p, epoch)| before.get(p) != Some(epoch))
        .map(|(p, _)| u32::try_from(*p).expect("a partition"))
        .collect();
    assert!(
        !taken_over.is_empty(),
        "the killed gateway's partitions were taken over"
    );
    let unexpected: Vec<&String> = counts.keys().filter(|id| !expected.contains(*id)).collect();
    assert!(
        unexpected.is_empty(),
        "events not in the log: {unexpected:?}"
    );
    // The others took the killed one's chains up where it had recorded its last round.
    let taken_up = receiver.got.lock()[at_kill..]
        .iter()
        .filter_map(|(id, _)| EventRef::parse(id))
        .filter(|e| taken_over.contains(&e.chain))
        .count();
    assert!(
        taken_up > 0,
        "no event of the killed gateway's chains came after the kill: it was not mid-delivery"
    );
    let twice: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    for (id, n) in &twice {
        let event = EventRef::parse(id).expect("an event id");
        assert!(
            taken_over.contains(&event.chain),
            "{id} came {n} times, and its chain was not the killed gateway's ({taken_over:?})"
        );
    }
    eprintln!(
        "{} events delivered, {} of them more than once; {taken_up} deliveries of the chains \
         taken over ({taken_over:?}) after the kill",
        counts.len(),
        twice.len()
    );
    drop(gateways);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_events_were_just_being_delivered_is_handed_over_only_later() {
    let Some((database, a)) = one_instance().await else {
        return;
    };
    // The first gateway holds every chain, and has just started a delivery round on each.
    assert!((0..PARTITIONS).all(|c| a.store.runs_chain(c)));
    let joined = Instant::now();
    let b = instance(&database).await;
    // Its rounds could still be in flight: for a while, it hands nothing over.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        (0..PARTITIONS).all(|c| !b.store.runs_chain(c)),
        "a chain went over while a delivery round on it could be in flight"
    );
    // Then it lets go of its surplus (the rounds' 15 s and a margin have passed).
    until_shared(&database, 2).await;
    assert!(joined.elapsed() >= Duration::from_secs(15));
}
