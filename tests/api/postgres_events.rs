//! Events for business systems on PostgreSQL (issue 19): event endpoints and where their
//! delivery stands, kept per audit chain and written only by the owner of the chain's partition
//! (fencing). These tests speak to the store of gateways sharing one database; the whole
//! delivery across instances, one killed, is `three_gateways_one_killed_deliver_every_event`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use herald::domain::audit::{AuditEntry, AuditKind};
use herald::domain::endpoint::{
    AttemptStatus, DeliveryAttempt, DeliveryRound, EndpointRecord, EventRefRecord, PendingDelivery,
};
use herald::domain::event::TypeFilter;
use herald::store::{AuditLog, Engine, EventEndpoints, PgStore, StoreError};

use crate::helpers::{
    fresh_database, postgres_server, test_pseudonyms, test_settings, use_database,
};
use crate::postgres::sql;

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
    let deadline = Instant::now() + Duration::from_secs(20);
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
