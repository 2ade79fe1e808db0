//! Herald on PostgreSQL: several gateways on one database. The rest of the integration suite
//! runs on PostgreSQL too (`HERALD_TEST_BACKEND=postgres`, the second pass of `scripts/test`);
//! these tests are about what several instances add, and run whenever a server is given
//! (`HERALD_TEST_POSTGRES_URL`).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use herald::clock::SystemClock;
use herald::domain::lifecycle::{self, Event};
use herald::domain::{MessageId, Role};
use herald::messenger::sign;
use herald::sandbox::{Sandbox, SandboxConfig, SandboxPage};
use herald::store::{packing, StoreError, Stores};
use serde_json::{json, Value};

use crate::crash::{backend_token, client_token, customer, start, Gateway, TestGateway};
use crate::helpers::{
    database_url, drop_left_behind, fresh_database, policy_copy, postgres_server, spawn_app_with,
    test_pseudonyms, test_settings, use_database, StoppedStore, TestApp, TestOptions, APP_SECRET,
    PAGE_TOKEN,
};

/// Each page's pace in these tests (the policy's `per_page` and the stand-in's limit).
const PER_PAGE: u32 = 20;
/// Sends each gateway keeps in flight: at most this many can be in flight at a kill.
const CONCURRENCY: usize = 8;

fn pages(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("2000000000000{i:02}")).collect()
}

/// One Messenger stand-in for every gateway, on the wall clock, counting each page's sends
/// against `PER_PAGE` a second.
async fn shared_sandbox(pages: &[String]) -> Sandbox {
    Sandbox::start(
        SandboxConfig {
            app_secret: APP_SECRET.into(),
            pages: pages
                .iter()
                .map(|id| SandboxPage {
                    id: id.clone(),
                    access_token: PAGE_TOKEN.into(),
                    region: Some("EU".into()),
                })
                .collect(),
            webhook_url: None,
            auto_receipts: false,
            rate_per_page_per_second: PER_PAGE,
            clock: SystemClock::shared(),
        },
        TcpListener::bind("127.0.0.1:0").expect("bind"),
    )
    .await
    .expect("sandbox")
}

/// A gateway's configuration on `database`, sending for `pages` at `PER_PAGE` each.
fn config(
    dir: &Path,
    name: &str,
    database: &str,
    sandbox: &str,
    pages: &[String],
    more: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    TestGateway {
        database: Some(database),
        store: &dir.join(name),
        sandbox_url: sandbox,
        listen: "127.0.0.1:0",
        policy: &dir.join("policies"),
        pages: &pages,
        delivery: &format!("concurrency = {CONCURRENCY}\n{more}"),
    }
    .write(&path);
    path
}

/// The policy, paced at `PER_PAGE`, copied into `dir/policies`.
fn paced_policy(dir: &Path) {
    let copy =
        policy_copy(|text| text.replace("per_page = 300", &format!("per_page = {PER_PAGE}")));
    let to = dir.join("policies");
    std::fs::create_dir_all(&to).expect("policy dir");
    for entry in std::fs::read_dir(copy.path()).expect("read") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}

/// The store on `database`, opened as a tool (it takes no partitions).
pub(crate) async fn tool_store(database: &str) -> Stores {
    let mut settings = test_settings(Path::new("unused"), "http://127.0.0.1:1");
    use_database(&mut settings, Some(database));
    herald::startup::open_store(&settings, test_pseudonyms(), false)
        .await
        .expect("open the database")
        .store
}

pub(crate) async fn sql(database: &str, statement: &str) -> Vec<tokio_postgres::Row> {
    connect(database)
        .await
        .query(statement, &[])
        .await
        .expect("sql")
}

/// A client of `database`, its connection driven in the background.
async fn connect(database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Sends a shipping update from `page` to `psid` through `gateway`: the message id.
async fn ship(http: &reqwest::Client, gateway: &str, page: &str, psid: &str) -> String {
    let r = http
        .post(format!("{gateway}/v1/shipping-updates"))
        .bearer_auth(backend_token())
        .json(&json!({"page_id": page, "recipient": {"psid": psid},
                      "order_number": format!("o-{psid}"), "status": "shipped"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 202);
    let body: Value = r.json().await.expect("json");
    body["id"].as_str().expect("id").to_owned()
}

async fn status(http: &reqwest::Client, gateway: &str, id: &str) -> String {
    let m: Value = http
        .get(format!("{gateway}/v1/messages/{id}"))
        .bearer_auth(client_token("ops", Role::Admin))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    m["status"].as_str().unwrap_or_default().to_owned()
}

/// The most sends of one page in any one-second window, by the stand-in's clock.
fn busiest_second(times: &mut [DateTime<Utc>]) -> usize {
    times.sort();
    let mut most = 0;
    let mut from = 0;
    for to in 0..times.len() {
        while times[to] - times[from] >= chrono::Duration::seconds(1) {
            from += 1;
        }
        most = most.max(to - from + 1);
    }
    most
}

/// Gateways as processes of their own on one fresh database, sending for pages paced at
/// `PER_PAGE` through one Messenger stand-in.
pub(crate) struct Fleet {
    pub(crate) database: String,
    dir: tempfile::TempDir,
    pub(crate) pages: Vec<String>,
    pub(crate) sandbox: Sandbox,
    pub(crate) http: reqwest::Client,
}

impl Fleet {
    /// `None` when there is no PostgreSQL server for the tests.
    pub(crate) async fn new(pages: usize) -> Option<Fleet> {
        let server = postgres_server()?;
        let dir = tempfile::tempdir().expect("dir");
        paced_policy(dir.path());
        let pages = self::pages(pages);
        Some(Fleet {
            database: fresh_database(&server).await,
            sandbox: shared_sandbox(&pages).await,
            dir,
            pages,
            http: reqwest::Client::new(),
        })
    }

    pub(crate) async fn start(&self, name: &str) -> Gateway {
        self.start_with(name, "").await
    }

    /// A gateway whose configuration ends with `more` (after its `[delivery]` lines).
    pub(crate) async fn start_with(&self, name: &str, more: &str) -> Gateway {
        let config = config(
            self.dir.path(),
            name,
            &self.database,
            &self.sandbox.base_url(),
            &self.pages,
            more,
        );
        start(&config, &self.dir.path().join(format!("{name}.log"))).await
    }

    /// People the stand-in knows, their consent recorded through the gateways in turn.
    pub(crate) async fn customers(&self, gateways: &[&Gateway], psids: &[String]) {
        for (i, psid) in psids.iter().enumerate() {
            let gateway = &gateways[i % gateways.len()].base;
            let (sandbox, token) = (self.sandbox.base_url(), backend_token());
            customer(&self.http, &sandbox, gateway, &token, psid, "transactional").await;
        }
    }

    /// A shipping update to each of `psids`, all at once, through the gateways and from the
    /// pages in turn: each one's message id.
    pub(crate) async fn ship_all(&self, gateways: &[&Gateway], psids: &[String]) -> Vec<String> {
        let sends = psids.iter().enumerate().map(|(i, psid)| {
            let gateway = gateways[i % gateways.len()].base.clone();
            let page = &self.pages[i % self.pages.len()];
            async move { ship(&self.http, &gateway, page, psid).await }
        });
        futures_util::future::join_all(sends).await
    }

    /// Waits until every message of `ids` is sent, as `gateway` tells; a lost one fails at once.
    pub(crate) async fn until_sent(&self, gateway: &Gateway, ids: &[String], within: Duration) {
        let deadline = Instant::now() + within;
        for id in ids {
            loop {
                let s = status(&self.http, &gateway.base, id).await;
                if s == "sent" {
                    break;
                }
                assert_ne!(s, "", "{id} was lost");
                assert!(
                    Instant::now() < deadline,
                    "{id} never went out (status {s})"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Waits until `n` instances hold partitions.
    async fn until_owners(&self, n: i64, within: Duration) {
        let deadline = Instant::now() + within;
        while owners(&self.database).await != n {
            assert!(
                Instant::now() < deadline,
                "the partitions never spread over {n} gateways"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_the_pages_and_a_kill_dash_nine_loses_nothing() {
    let Some(fleet) = Fleet::new(4).await else {
        return;
    };
    let mut gateways = vec![
        fleet.start("a").await,
        fleet.start("b").await,
        fleet.start("c").await,
    ];
    fleet.until_owners(3, Duration::from_secs(15)).await;

    // 40 messages a page, twice what a page may send in a second, accepted by all three.
    let psids: Vec<String> = (0..160).map(|i| format!("3000000000{i:04}")).collect();
    let all: Vec<&Gateway> = gateways.iter().collect();
    fleet.customers(&all, &psids).await;
    let ids = fleet.ship_all(&all, &psids).await;

    // Mid-load, one gateway dies without a word.
    let mut killed = gateways.remove(0);
    killed.child.kill().expect("kill -9");
    let _ = killed.child.wait();
    fleet
        .until_sent(&gateways[0], &ids, Duration::from_secs(60))
        .await;

    // Every accepted message reached its customer; twice only if it was in flight at the kill.
    let mut duplicates = 0;
    let mut by_page: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    for psid in &psids {
        let inbox = fleet.sandbox.inbox(psid);
        assert!(!inbox.is_empty(), "{psid} got nothing");
        duplicates += inbox.len() - 1;
        for m in inbox {
            by_page.entry(m.page_id).or_default().push(m.received_at);
        }
    }
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} sent twice; at most {CONCURRENCY} were in flight at the kill"
    );
    // No page over its pace in any second, as the stand-in counts (613 otherwise).
    let stats = fleet.sandbox.stats();
    assert_eq!(stats.rejected, 0, "{:?}", stats.rejections);
    for (page, times) in &mut by_page {
        let most = busiest_second(times);
        // The pacer allows a tenth of a second's burst on top of the rate.
        assert!(
            most <= (PER_PAGE + PER_PAGE / 10) as usize,
            "page {page} sent {most} in one second"
        );
    }

    drop(gateways);
    let store = tool_store(&fleet.database).await;
    let verified = store.audit.verify().await.expect("verify");
    assert!(verified.ok, "{verified:?}");
    assert!(
        verified.chains.len() > 1,
        "the pages' entries are in several chains: {verified:?}"
    );
    store.engine.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_waits_one_pacing_window_before_it_sends_a_taken_over_page() {
    let Some(fleet) = Fleet::new(1).await else {
        return;
    };
    let mut first = fleet.start("first").await;
    let psids: Vec<String> = (0..40).map(|i| format!("4000000000{i:04}")).collect();
    fleet.customers(&[&first], &psids).await;
    let ids = fleet.ship_all(&[&first], &psids).await;
    let second = fleet.start("second").await;

    // The first lets go of every partition as it stops; the second takes them over.
    let pid = first.child.id().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let _ = first.child.wait();
    fleet
        .until_sent(&second, &ids, Duration::from_secs(30))
        .await;

    let mut times: Vec<DateTime<Utc>> = psids
        .iter()
        .flat_map(|p| fleet.sandbox.inbox(p))
        .map(|m| m.received_at)
        .collect();
    times.sort();
    let longest = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .expect("two sends at least");
    assert!(
        longest >= chrono::Duration::seconds(1),
        "the page's sends under two owners are {longest} apart at most: the new owner did not wait"
    );
    assert_eq!(fleet.sandbox.stats().rejected, 0);
    assert!(
        psids.iter().all(|p| fleet.sandbox.inbox(p).len() == 1),
        "a clean handover sends nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_joins_mid_load_takes_its_share_and_nothing_goes_twice() {
    let Some(fleet) = Fleet::new(4).await else {
        return;
    };
    let first = fleet.start("first").await;
    let psids: Vec<String> = (0..240).map(|i| format!("8000000000{i:04}")).collect();
    fleet.customers(&[&first], &psids).await;
    let ids = fleet.ship_all(&[&first], &psids).await;
    // 60 a page at 20 a second: the first is still sending when the second joins.
    let second = fleet.start("second").await;
    fleet
        .until_sent(&second, &ids, Duration::from_secs(30))
        .await;
    fleet.until_owners(2, Duration::from_secs(10)).await;
    for psid in &psids {
        assert_eq!(
            fleet.sandbox.inbox(psid).len(),
            1,
            "{psid}: a handover sends nothing twice"
        );
    }
    assert_eq!(fleet.sandbox.stats().rejected, 0);
    drop((first, second));
}

#[tokio::test]
async fn a_write_under_a_stale_epoch_is_refused() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let app = on_database(&database).await;
    let later = app.now() + chrono::Duration::hours(1);
    let id = shipping_update_at(&app, crate::helpers::PAGE_ID, "5001", later).await;
    let store = &app.handle().herald.store;
    let claimed = store
        .outbox
        .claim_due(later, 10, chrono::Duration::minutes(5))
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&id],
        "this gateway owns the page's partition"
    );
    let record = claimed[0]
        .record
        .as_ref()
        .expect("the claim reads the record");
    assert_eq!(
        (&record.id, record.recipient.key()),
        (&id, "5001".to_owned()),
        "the record the claim read is the message's"
    );

    // Another instance takes the partition over: its epoch moves on.
    sql(
        &database,
        "UPDATE partitions SET owner = 'another', epoch = epoch + 1",
    )
    .await;
    // The old owner, unaware, records what its send did (a retry for later).
    let retry_at = later + chrono::Duration::minutes(1);
    let sent = store
        .messages
        .update_message(&id, retry_later(retry_at, later))
        .await;
    assert!(
        matches!(sent, Err(StoreError::Fenced { .. })),
        "the old owner's write is refused: {sent:?}"
    );
    let record = store
        .messages
        .message(&id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        record.not_before.map(|t| t.timestamp()),
        Some(later.timestamp()),
        "nothing was written"
    );
    assert_eq!(
        store.outbox.outbox_len().await.expect("len"),
        1,
        "the message waits for the new owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_is_handed_over_only_once_its_send_in_flight_is_recorded() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    // As many partitions as put the test page in the last one: the first gateway lets go of
    // its last partitions when a second joins.
    let partitions = (4..64)
        .find(|n| herald::store::partition_of(crate::helpers::PAGE_ID, *n) == n - 1)
        .expect("a partition count");
    let app = on_database_with(
        &database,
        Some(Box::new(move |s| s.storage.partitions = partitions)),
    )
    .await;
    let later = app.now() + chrono::Duration::hours(1);
    let id = shipping_update_at(&app, crate::helpers::PAGE_ID, "9001", later).await;
    let first = &app.handle().herald.store;
    // The first gateway's send is in flight.
    let claimed = first
        .outbox
        .claim_due(later, 10, chrono::Duration::minutes(5))
        .await
        .expect("claim");
    assert_eq!(claimed.iter().map(|c| &c.id).collect::<Vec<_>>(), vec![&id]);

    // A second gateway joins: the first lets go of its last partitions — but not the one
    // whose send is in flight.
    let mut settings = test_settings(Path::new("unused"), "http://127.0.0.1:1");
    use_database(&mut settings, Some(&database));
    settings.storage.partitions = partitions;
    let second = herald::startup::open_store(&settings, test_pseudonyms(), true)
        .await
        .expect("a second gateway's store")
        .store;
    // Its lease rounds, as a gateway runs them.
    let _rounds =
        herald::store::spawn_upkeep(std::sync::Arc::clone(&second.engine)).map(AbortOnDrop);
    let deadline = Instant::now() + Duration::from_secs(10);
    while owners(&database).await != 2 {
        assert!(
            Instant::now() < deadline,
            "the second gateway never got partitions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first gateway's lease rounds go on (each moves its heartbeat); three more of them
    // are more than it needs to let go of an idle partition.
    let first_id: String = sql(
        &database,
        &format!(
            "SELECT owner FROM partitions WHERE partition = {}",
            partitions - 1
        ),
    )
    .await[0]
        .get(0);
    until_rounds(&database, &first_id, 3).await;
    assert!(
        !second.engine.runs_page(crate::helpers::PAGE_ID),
        "the partition went over with a send in flight"
    );

    // The send is recorded under the first gateway's epoch, then handed over.
    let retry_at = later + chrono::Duration::minutes(1);
    let recorded = first
        .messages
        .update_message(&id, retry_later(retry_at, later))
        .await;
    assert!(matches!(recorded, Ok(Some(_))), "{recorded:?}");
    first.outbox.release(&id).await.expect("release");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !second.engine.runs_page(crate::helpers::PAGE_ID) {
        assert!(
            Instant::now() < deadline,
            "the partition was never handed over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    second.engine.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_batch_of_recorded_sends_only_those_of_a_taken_over_partition_are_refused() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    const OTHER_PAGE: &str = "100000000000002";
    // Enough partitions that the two pages fall into different ones.
    let partitions = (2..64)
        .find(|n| {
            herald::store::partition_of(crate::helpers::PAGE_ID, *n)
                != herald::store::partition_of(OTHER_PAGE, *n)
        })
        .expect("a partition count");
    let app = on_database_with(
        &database,
        Some(Box::new(move |s| {
            s.storage.partitions = partitions;
            s.messenger.pages.insert(
                OTHER_PAGE.into(),
                herald::configuration::PageSettings {
                    access_token: secrecy::SecretString::from("other-page-token"),
                    region: Some("EU".into()),
                },
            );
        })),
    )
    .await;
    let later = app.now() + chrono::Duration::hours(1);
    let mut ids = Vec::new();
    for i in 0..20 {
        let page = if i % 2 == 0 {
            crate::helpers::PAGE_ID
        } else {
            OTHER_PAGE
        };
        let psid = format!("91000000{i:04}");
        ids.push((page, shipping_update_at(&app, page, &psid, later).await));
    }
    let store = &app.handle().herald.store;
    let claimed = store
        .outbox
        .claim_due(later, 100, chrono::Duration::minutes(5))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 20);
    // The other page's partition is taken over while the sends are in flight.
    let taken = herald::store::partition_of(OTHER_PAGE, partitions);
    sql(
        &database,
        &format!(
            "UPDATE partitions SET owner = 'another', epoch = epoch + 1 WHERE partition = {taken}"
        ),
    )
    .await;
    let retry_at = later + chrono::Duration::minutes(1);
    let writes = ids.iter().map(|(page, id)| async move {
        let written = store
            .messages
            .update_message(id, retry_later(retry_at, later))
            .await;
        (*page, written)
    });
    for (page, written) in futures_util::future::join_all(writes).await {
        if page == OTHER_PAGE {
            assert!(
                matches!(written, Err(StoreError::Fenced { partition, .. }) if partition == taken),
                "{written:?}"
            );
        } else {
            assert!(matches!(written, Ok(Some(_))), "{written:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_of_its_pages_partition_moves_a_campaign_along() {
    use crate::campaigns::{campaign, create, offer, run, subscriber};
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let (one, two) = (on_database(&database).await, on_database(&database).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    while owners(&database).await != 2 {
        assert!(
            Instant::now() < deadline,
            "the partitions were never shared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = crate::helpers::PAGE_ID;
    let (owner, other) = if one.handle().herald.store.engine.runs_page(page) {
        (&one, &two)
    } else {
        (&two, &one)
    };
    assert!(!other.handle().herald.store.engine.runs_page(page));
    subscriber(owner, "9201", "Europe/Berlin").await;
    // Created through the instance that does not own the page, to start in an hour.
    let start = owner.now() + chrono::Duration::hours(1);
    let mut body = offer(&["9201"]);
    body["send_at"] = json!(start.to_rfc3339());
    let created = create(other, body).await;
    let id = created["id"].as_str().expect("id");

    // Its hour comes for the other instance first: it leaves the campaign alone.
    other.set_time(start + chrono::Duration::seconds(1));
    for _ in 0..3 {
        other.tick().await;
    }
    assert_eq!(campaign(other, id).await["status"], "scheduled");

    // The owner runs it.
    owner.set_time(start + chrono::Duration::seconds(1));
    let done = run(owner, id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(owner.inbox("9201").len(), 1);
}

/// Waits until `instance` has run `rounds` more lease rounds: each one moves its heartbeat.
async fn until_rounds(database: &str, instance: &str, rounds: usize) {
    let heartbeat = || async {
        sql(
            database,
            &format!("SELECT heartbeat_until::text FROM instances WHERE id = '{instance}'"),
        )
        .await[0]
            .get::<_, String>(0)
    };
    let mut last = heartbeat().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for _ in 0..rounds {
        loop {
            let now = heartbeat().await;
            if now != last {
                last = now;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{instance} stopped its lease rounds"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Ends a task when the test ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How many instances hold partitions now.
async fn owners(database: &str) -> i64 {
    sql(
        database,
        "SELECT count(DISTINCT owner) FROM partitions WHERE lease_until > now()",
    )
    .await[0]
        .get(0)
}

/// A test gateway on `database` (in this process, on the test clock).
async fn on_database(database: &str) -> TestApp {
    on_database_with(database, None).await
}

async fn on_database_with(
    database: &str,
    settings: Option<crate::helpers::ChangeSettings>,
) -> TestApp {
    spawn_app_with(TestOptions {
        data: Some(StoppedStore {
            dir: tempfile::tempdir().expect("dir"),
            database: Some(database.to_owned()),
        }),
        settings,
        ..TestOptions::default()
    })
    .await
}

#[tokio::test]
async fn a_claim_takes_one_message_per_person_and_none_while_one_is_in_flight_or_waits_for_a_retry()
{
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let app = on_database(&database).await;
    // Due an hour ahead, on the test's clock: the gateway's own worker leaves them be.
    let later = app.now() + chrono::Duration::hours(1);
    let page = crate::helpers::PAGE_ID;
    let a1 = shipping_update_at(&app, page, "7301", later).await;
    let a2 = shipping_update_at(&app, page, "7301", later).await;
    let a3 = shipping_update_at(&app, page, "7301", later).await;
    let b1 = shipping_update_at(&app, page, "7302", later).await;
    let store = &app.handle().herald.store;
    let lease = chrono::Duration::minutes(5);
    let claim = |now: DateTime<Utc>, limit: usize| async move {
        store
            .outbox
            .claim_due(now, limit, lease)
            .await
            .expect("claim")
            .into_iter()
            .map(|claimed| claimed.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        claim(later, 10).await,
        vec![a1.clone(), b1.clone()],
        "one per person, the earliest"
    );
    assert!(claim(later, 10).await.is_empty(), "a1 is in flight");

    // a1's send fails for now: it waits for its retry, and holds 7301's later messages back.
    let retry_at = later + chrono::Duration::minutes(1);
    store
        .messages
        .update_message(
            &a1,
            Box::new(move |r| {
                r.status = herald::domain::MessageStatus::Queued;
                let attempt = herald::domain::Attempt {
                    at: later,
                    outcome: herald::domain::AttemptOutcome::Retry,
                    http_status: Some(500),
                    graph_error: None,
                    error: Some("transient".into()),
                    next_attempt_at: Some(retry_at),
                    channel: Default::default(),
                    reply: None,
                };
                lifecycle::apply(r, Event::AttemptFailed(attempt), later).ok()
            }),
        )
        .await
        .expect("retry")
        .expect("changed");
    store.outbox.release(&a1).await.expect("release");
    assert!(claim(later, 10).await.is_empty(), "a2 waits for a1's retry");
    assert_eq!(claim(retry_at, 10).await, vec![a1.clone()]);
    let sent = Event::Sent {
        graph_message_id: "m_a1".into(),
    };
    store
        .messages
        .update_message(
            &a1,
            Box::new(move |r| lifecycle::apply(r, sent, retry_at).ok()),
        )
        .await
        .expect("sent")
        .expect("changed");
    store.outbox.release(&a1).await.expect("release");
    // a2 and a3 are deferred messages (`send_at`): each is claimed on its own.
    assert_eq!(claim(retry_at, 10).await, vec![a2.clone()]);
    store.outbox.release(&a2).await.expect("release");
    assert_eq!(
        claim(retry_at, 1).await,
        vec![a2.clone()],
        "let go of without an outcome: a2 is still first"
    );
    assert!(
        claim(retry_at, 10).await.is_empty(),
        "a3 waits for a2, in flight"
    );
    drop(a3);
}

/// A shipping update from `page` to a consenting `psid`, due at `at`: its id.
async fn shipping_update_at(app: &TestApp, page: &str, psid: &str, at: DateTime<Utc>) -> MessageId {
    app.consent(psid, "transactional", None).await;
    let (status, body) = app
        .call(
            Role::Backend,
            "/v1/shipping-updates",
            json!({"page_id": page, "recipient": {"psid": psid}, "order_number": "o",
                   "status": "shipped", "send_at": at.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    MessageId::parse(body["id"].as_str().expect("id")).expect("id")
}

/// What the worker records when a send must be tried again at `retry_at`.
fn retry_later(retry_at: DateTime<Utc>, now: DateTime<Utc>) -> herald::store::MessageChange {
    Box::new(move |r| lifecycle::apply(r, Event::Postpone(retry_at), now).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_request_and_a_redelivered_webhook_count_once_across_instances() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let (one, two) = (on_database(&database).await, on_database(&database).await);
    one.consent("6001", "transactional", None).await;
    one.create_user("6001").await;
    let body = json!({"recipient": {"psid": "6001"}, "order_number": "o-6", "status": "shipped"});
    let send = |app: &TestApp| {
        app.http
            .post(format!("{}/v1/shipping-updates", app.address))
            .bearer_auth(app.token(Role::Backend))
            .header("Idempotency-Key", "order-6-shipped")
            .json(&body)
            .send()
    };
    let first: Value = send(&one).await.expect("send").json().await.expect("json");
    let again = send(&two).await.expect("send");
    assert_eq!(again.status().as_u16(), 202);
    let again: Value = again.json().await.expect("json");
    assert_eq!(
        again["id"], first["id"],
        "the other instance gives the first answer"
    );

    // One stop keyword, delivered by Messenger to each instance.
    let event = json!({"object": "page", "entry": [{"id": crate::helpers::PAGE_ID, "time": 1,
        "messaging": [{"sender": {"id": "6001"}, "recipient": {"id": crate::helpers::PAGE_ID},
        "timestamp": one.now().timestamp_millis(),
        "message": {"mid": "m_stop_once", "text": "STOP"}}]}]});
    let bytes = serde_json::to_vec(&event).expect("json");
    let consents = |recipient: &Value| recipient["consents"].as_array().map_or(0, Vec::len);
    let before = consents(&two.recipient("6001").await.1);
    let mut after_first = None;
    for app in [&one, &two, &one] {
        let r = app
            .http
            .post(format!("{}/webhooks/messenger", app.address))
            .header("X-Hub-Signature-256", sign(APP_SECRET.as_bytes(), &bytes))
            .body(bytes.clone())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
        let now = consents(&two.recipient("6001").await.1);
        assert_eq!(
            *after_first.get_or_insert(now),
            now,
            "a redelivery changed something"
        );
    }
    assert!(after_first > Some(before), "the stop keyword was applied");
}

/// Runs `herald migrate` on `database`; its standard output, once it succeeded.
fn herald_migrate(database: &str) -> String {
    let out = herald_migrate_output(database);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What `herald migrate` on `database` did, succeeding or not.
fn herald_migrate_output(database: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\n{}",
            crate::helpers::postgres_storage_toml(database)
        ),
    )
    .expect("config");
    std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["migrate", "--config"])
        .arg(&config)
        .output()
        .expect("run herald migrate")
}

#[tokio::test]
async fn migrations_applied_twice_are_a_no_op() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    assert_eq!(
        herald_migrate(&database),
        "applied migrations: 1, 2, 3, 4, 5, 6, 7, 8, 9"
    );
    let tables = sql(
        &database,
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'outbox'",
    )
    .await;
    assert_eq!(tables[0].get::<_, i64>(0), 1);
    assert_eq!(herald_migrate(&database), "the database is up to date");
}

/// Migration 7: an audit log written while the erasable values had a table of their own keeps
/// them, now in the entries' rows.
#[tokio::test]
async fn erasable_values_kept_beside_the_entries_move_into_their_rows() {
    let Some(server) = postgres_server() else {
        return;
    };
    // The log as version 6 kept it: the values in `audit_personal`, migration 7 not applied.
    let (database, stopped) = one_answer_in_an_older_layout(
        &server,
        "7102",
        "CREATE TABLE audit_personal (
                 chain    integer NOT NULL,
                 seq      bigint NOT NULL,
                 personal text NOT NULL,
                 PRIMARY KEY (chain, seq));
             INSERT INTO audit_personal
                 SELECT chain, seq, personal FROM audit WHERE personal IS NOT NULL;
             ALTER TABLE audit DROP COLUMN personal;
             DELETE FROM herald_migrations WHERE version = 7;",
    )
    .await;
    let kept: i64 = sql(&database, "SELECT count(*) FROM audit_personal").await[0].get(0);
    assert!(
        kept >= 3,
        "the decision, attempt and status entries' values"
    );
    assert_eq!(herald_migrate(&database), "applied migrations: 7");
    let moved: i64 = sql(
        &database,
        "SELECT count(*) FROM audit WHERE personal IS NOT NULL",
    )
    .await[0]
        .get(0);
    assert_eq!(moved, kept);
    let (_, entries) = reopened_with_the_recipients_entries(stopped, "7102").await;
    assert!(
        entries.iter().all(|e| e.get("erased").is_none()),
        "{entries:?}"
    );
}

/// Migration 8: the pseudonyms of an audit log written while they were text become their 16
/// bytes; the recipient's entries are still found by them and erased through them. A value that
/// is not a pseudonym stops the migration and changes nothing.
#[tokio::test]
async fn pseudonyms_kept_as_text_become_their_sixteen_bytes() {
    let Some(server) = postgres_server() else {
        return;
    };
    // The log as version 7 kept it: `psn_` and 32 hex digits, migration 8 not applied.
    let (database, stopped) = one_answer_in_an_older_layout(
        &server,
        "7103",
        "ALTER TABLE audit ALTER COLUMN pseudonym TYPE text
             USING 'psn_' || encode(pseudonym, 'hex');
         DELETE FROM herald_migrations WHERE version = 8;",
    )
    .await;
    let client = connect(&database).await;
    let pseudonyms = "SELECT count(*) FROM audit WHERE pseudonym IS NOT NULL";
    let kept: i64 = sql(&database, pseudonyms).await[0].get(0);
    assert!(kept >= 3, "the decision, attempt and status entries");
    // One that Herald did not make: the migration stops, nothing changes.
    client
        .batch_execute(
            "UPDATE audit SET pseudonym = pseudonym || '-not-hex'
             WHERE id = (SELECT max(id) FROM audit WHERE pseudonym IS NOT NULL)",
        )
        .await
        .expect("a value that is not a pseudonym");
    let refused = herald_migrate_output(&database);
    assert!(!refused.status.success(), "{refused:?}");
    let still_text: String = sql(
        &database,
        "SELECT data_type FROM information_schema.columns
         WHERE table_name = 'audit' AND column_name = 'pseudonym'",
    )
    .await[0]
        .get(0);
    assert_eq!(still_text, "text");
    client
        .batch_execute(
            "UPDATE audit SET pseudonym = left(pseudonym, 36) WHERE pseudonym LIKE '%-not-hex'",
        )
        .await
        .expect("the pseudonym put back");

    assert_eq!(herald_migrate(&database), "applied migrations: 8");
    let sixteen: i64 = sql(
        &database,
        "SELECT count(*) FROM audit WHERE octet_length(pseudonym) = 16",
    )
    .await[0]
        .get(0);
    assert_eq!(sixteen, kept, "every pseudonym is its 16 bytes");
    let (app, entries) = reopened_with_the_recipients_entries(stopped, "7103").await;
    let (status, _) = app.erase("7103").await;
    assert_eq!(status, 200);
    let erased = app
        .read(Role::Compliance, "/v1/audit?recipient=7103")
        .await
        .1;
    let erased = erased["entries"].as_array().expect("entries");
    assert!(erased.len() > entries.len(), "the erasure's own entry too");
    assert!(erased.iter().all(|e| e["erased"] == true), "{erased:?}");
}

/// Migration 9: a waiting message's record is in its outbox row, and `messages` gets it once,
/// when the message leaves the outbox; a message an earlier version left waiting (its record in
/// `messages`, none in its outbox row) is read, sent and kept as before.
#[tokio::test]
async fn a_waiting_messages_record_is_in_its_outbox_row_and_messages_gets_it_when_it_leaves() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let app = on_database(&database).await;
    let at = app.now() + chrono::Duration::minutes(10);
    let mut ids = Vec::new();
    for psid in ["7104", "7105"] {
        app.user_writes(psid, "hi", None).await;
        let (status, body) = app
            .send(json!({"recipient": {"psid": psid}, "category": "response",
                         "message": {"text": "later"}, "send_at": at.to_rfc3339()}))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let client = connect(&database).await;
    let count = |statement: &'static str| {
        let (client, ids) = (&client, &ids);
        async move {
            let row = client.query_one(statement, &[ids]).await.expect("count");
            row.get::<_, i64>(0)
        }
    };
    let in_outbox = "SELECT count(*) FROM outbox WHERE message_id = ANY($1) AND record IS NOT NULL";
    let in_messages = "SELECT count(*) FROM messages WHERE id = ANY($1)";
    assert_eq!(
        count(in_outbox).await,
        2,
        "waiting: in the outbox with its record"
    );
    assert_eq!(count(in_messages).await, 0, "not written to messages yet");
    // The second as an earlier version left it waiting.
    client
        .execute(
            "INSERT INTO messages (id, record)
                 SELECT message_id, record FROM outbox WHERE message_id = $1",
            &[&ids[1]],
        )
        .await
        .expect("the record in messages");
    client
        .execute(
            "UPDATE outbox SET record = NULL WHERE message_id = $1",
            &[&ids[1]],
        )
        .await
        .expect("none in the outbox row");
    for id in &ids {
        assert_eq!(app.message(id).await["status"], "deferred");
    }
    app.set_time(at + chrono::Duration::seconds(1));
    app.drain().await;
    for id in &ids {
        let message = app.message(id).await;
        assert_eq!(message["status"], "sent", "{message}");
    }
    assert_eq!(
        count(in_messages).await,
        2,
        "in messages once it left the outbox"
    );
    let left = "SELECT count(*) FROM outbox WHERE message_id = ANY($1)";
    assert_eq!(count(left).await, 0);
}

#[tokio::test]
async fn the_database_is_reached_over_tls_and_its_certificate_is_checked() {
    let Some(server) = postgres_server() else {
        return;
    };
    let Some(ca) = crate::helpers::postgres_ca() else {
        eprintln!("this PostgreSQL server has no TLS for the tests: set HERALD_TEST_POSTGRES_CA");
        return;
    };
    // `sslmode=require`: TLS or nothing.
    let url = format!("{}?sslmode=require", fresh_database(&server).await);
    let dir = tempfile::tempdir().expect("dir");
    let migrate = |ca_file: Option<&Path>| {
        let config = dir.path().join("herald.toml");
        let ca_line = ca_file.map_or(String::new(), |ca| {
            format!("ca_file = \"{}\"\n", ca.display())
        });
        std::fs::write(
            &config,
            format!("[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n{ca_line}"),
        )
        .expect("config");
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["migrate", "--config"])
            .arg(&config)
            .output()
            .expect("run herald migrate")
    };
    // A server whose certificate no one vouched for is refused.
    let untrusted = migrate(None);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(!untrusted.status.success());
    assert!(
        stderr.contains("storage.url") && stderr.contains("certificate"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    // With the CA that signed it, the same URL works: over TLS, as `require` allows no other.
    let trusted = migrate(Some(&ca));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&trusted.stdout).trim(),
        "applied migrations: 1, 2, 3, 4, 5, 6, 7, 8, 9"
    );
}

#[tokio::test]
async fn a_bad_url_or_a_database_that_is_down_is_one_line_naming_storage_url() {
    let dir = tempfile::tempdir().expect("dir");
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let cases = [
        (
            format!("postgres://herald:s3cret-pass-77@127.0.0.1:{closed_port}/herald"),
            "cannot connect to PostgreSQL at storage.url postgres://herald:***@127.0.0.1",
        ),
        (
            "mysql://herald:s3cret-pass-77@127.0.0.1/herald".to_owned(),
            "storage.url is not a PostgreSQL URL",
        ),
    ];
    for (url, expected) in cases {
        let config = crate::crash::write_config(
            Some(url.as_str()),
            dir.path(),
            "http://127.0.0.1:1",
            "127.0.0.1:0",
            &crate::helpers::policy_dir(),
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "off")
            .output()
            .expect("run herald");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains("s3cret-pass-77"),
            "the password leaked: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

/// A fresh database with a gateway on it that has answered `psid` once (a decision, an
/// attempt and a status entry in its log) and drained: the database, the gateway, the answer.
async fn one_answer_on_a_fresh_database(server: &str, psid: &str) -> (String, TestApp, Value) {
    let database = fresh_database(server).await;
    let app = on_database(&database).await;
    app.user_writes(psid, "hello", None).await;
    let (status, sent) = app.respond(psid, "hi there").await;
    assert_eq!(status, 202, "{sent}");
    app.drain().await;
    (database, app, sent)
}

/// One answered message to `psid` on a fresh database, the gateway stopped, and `layout` (SQL
/// that puts the database back as an older version kept it) run on it.
async fn one_answer_in_an_older_layout(
    server: &str,
    psid: &str,
    layout: &str,
) -> (String, StoppedStore) {
    let (database, app, _) = one_answer_on_a_fresh_database(server, psid).await;
    let stopped = app.stop().await;
    connect(&database)
        .await
        .batch_execute(layout)
        .await
        .expect("the older layout");
    (database, stopped)
}

/// A gateway on `stopped` again: its audit log verifies, and `psid`'s decision, attempt and
/// status entries are found by their recipient and show it. The recipient's entries.
async fn reopened_with_the_recipients_entries(
    stopped: StoppedStore,
    psid: &str,
) -> (TestApp, Vec<Value>) {
    let app = spawn_app_with(TestOptions {
        data: Some(stopped),
        ..TestOptions::default()
    })
    .await;
    let verified = app.read(Role::Compliance, "/v1/audit/verify").await.1;
    assert_eq!(verified["ok"], true, "{verified}");
    let (status, found) = app
        .read(Role::Compliance, &format!("/v1/audit?recipient={psid}"))
        .await;
    assert_eq!(status, 200, "{found}");
    let entries = found["entries"].as_array().cloned().unwrap_or_default();
    for kind in ["decision", "attempt", "status"] {
        let entry = entries
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} in {found}"));
        assert_eq!(entry["recipient"], psid, "{entry}");
    }
    (app, entries)
}

/// Records and audit entries are stored packed; rows written before migration 6 hold their
/// JSON as it is (the migration turned the text into its UTF-8 bytes), and read the same.
#[tokio::test]
async fn records_and_entries_are_packed_and_rows_stored_plain_still_read() {
    let Some(server) = postgres_server() else {
        return;
    };
    let (database, app, sent) = one_answer_on_a_fresh_database(&server, "7101").await;
    let id = sent["id"].as_str().expect("id");
    let before = app.message(id).await;
    let client = connect(&database).await;
    for row in sql(&database, "SELECT id, record FROM messages").await {
        let id: &str = row.get(0);
        client
            .execute(
                "UPDATE messages SET record = $2 WHERE id = $1",
                &[&id, &plain(row.get(1))],
            )
            .await
            .expect("store the record plain");
    }
    for row in sql(&database, "SELECT chain, seq, entry FROM audit").await {
        let (chain, seq): (i32, i64) = (row.get(0), row.get(1));
        client
            .execute(
                "UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2",
                &[&chain, &seq, &plain(row.get(2))],
            )
            .await
            .expect("store the entry plain");
    }
    assert_eq!(app.message(id).await, before);
    let verified = app.read(Role::Compliance, "/v1/audit/verify").await.1;
    assert_eq!(verified["ok"], true, "{verified}");
    let (status, found) = app.read(Role::Compliance, "/v1/audit?recipient=7101").await;
    assert_eq!(status, 200, "{found}");
    let kinds: Vec<&str> = found["entries"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["kind"].as_str()).collect())
        .unwrap_or_default();
    for kind in ["decision", "attempt", "status"] {
        assert!(kinds.contains(&kind), "{kind} in {found}");
    }
}

/// The JSON a packed value holds, after checking that it was packed.
fn plain(stored: &[u8]) -> Vec<u8> {
    let json = packing::unpack(stored).expect("unpack").into_owned();
    assert!(
        stored[0] != b'{' && stored.len() < json.len(),
        "{} bytes stored for {} of JSON",
        stored.len(),
        json.len()
    );
    json
}

#[tokio::test]
async fn verify_names_the_chain_and_entry_of_an_altered_row_and_a_checkpoint_catches_a_rewrite() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let app = on_database(&database).await;
    for psid in ["7001", "7002", "7003"] {
        app.user_writes(psid, "hello", None).await;
        app.respond(psid, "hi there").await;
    }
    // Nothing more is written while the test alters the rows.
    app.drain().await;
    let checkpoint = app.read(Role::Compliance, "/v1/audit/checkpoint").await.1;
    assert!(
        checkpoint["chains"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{checkpoint}"
    );
    let good = app.read(Role::Compliance, "/v1/audit/verify").await.1;
    assert_eq!(good["ok"], true, "{good}");
    assert_eq!(
        good["head"], checkpoint["head"],
        "verify and the checkpoint name one head"
    );

    // Someone with the database flips a letter of one entry.
    let (chain, seq) = first_entry_holding(&database, ALLOWED).await;
    edit_entry(&database, chain, seq, ALLOWED, ALTERED).await;
    let bad = app.read(Role::Compliance, "/v1/audit/verify").await.1;
    assert_eq!(
        (&bad["ok"], &bad["first_bad_chain"], &bad["first_bad_seq"]),
        (&json!(false), &json!(chain), &json!(seq)),
        "{bad}"
    );

    // Put back the letter, then rewrite that chain consistently from the entry on: it verifies
    // again, but no longer extends the checkpoint.
    edit_entry(&database, chain, seq, ALTERED, ALLOWED).await;
    rewrite_chain(&database, chain, seq).await;
    let rewritten = app.read(Role::Compliance, "/v1/audit/verify").await.1;
    assert_eq!(
        rewritten["ok"], true,
        "a consistent rewrite verifies alone: {rewritten}"
    );
    let store = &app.handle().herald.store;
    let cp: herald::domain::checkpoint::Checkpoint =
        serde_json::from_value(checkpoint).expect("checkpoint");
    let against = herald::app::verify_audit(store.audit.as_ref(), Some(&cp.point()))
        .await
        .expect("verify");
    assert!(!against.ok, "{against:?}");
    assert_eq!(
        against.checkpoint.as_ref().map(|c| c.ok),
        Some(false),
        "{against:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_longer_than_one_read_verifies_across_its_chunks() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let app = on_database(&database).await;
    let store = &app.handle().herald.store;
    // Entries about no page: all in chain 0, past one verification chunk (10,000).
    let entries: Vec<herald::domain::audit::AuditEntry> = (0..25_000)
        .map(|i| herald::domain::audit::AuditEntry {
            at: app.now(),
            message_id: Some(format!("msg_{i}")),
            outcome: Some("allow".into()),
            ..Default::default()
        })
        .collect();
    store.audit.append(entries).await.expect("append");
    let v = store.audit.verify().await.expect("verify");
    assert!(v.ok, "{v:?}");
    assert!(v.entries >= 25_000, "{v:?}");
    let chain0 = v.chains.iter().find(|c| c.chain == 0).expect("chain 0");
    assert_eq!((chain0.first_seq, chain0.ok), (1, true), "{chain0:?}");

    // A letter changed in the second chunk is named there.
    edit_entry(&database, 0, 15_000, ALLOWED, ALTERED).await;
    let bad = store.audit.verify().await.expect("verify");
    assert_eq!(
        (bad.ok, bad.first_bad_chain, bad.first_bad_seq),
        (false, Some(0), Some(15_000)),
        "{bad:?}"
    );
}

const ALLOWED: &str = r#""outcome":"allow""#;
const ALTERED: &str = r#""outcome":"allov""#;

/// The first entry, in the order written, whose JSON holds `needle`: (chain, seq).
async fn first_entry_holding(database: &str, needle: &str) -> (i32, i64) {
    let rows = sql(database, "SELECT chain, seq, entry FROM audit ORDER BY id").await;
    let row = rows
        .iter()
        .find(|row| {
            let json = packing::unpack(row.get::<_, &[u8]>(2)).expect("unpack");
            String::from_utf8_lossy(&json).contains(needle)
        })
        .expect("an entry holding it");
    (row.get(0), row.get(1))
}

/// Replaces `from` with `to` in the stored entry (`chain`, `seq`), as someone with the database
/// might, packing it again as Herald stores it.
async fn edit_entry(database: &str, chain: i32, seq: i64, from: &str, to: &str) {
    let rows = sql(
        database,
        &format!("SELECT entry FROM audit WHERE chain = {chain} AND seq = {seq}"),
    )
    .await;
    let json = packing::unpack(rows[0].get::<_, &[u8]>(0)).expect("unpack");
    let edited = String::from_utf8_lossy(&json).replace(from, to);
    assert_ne!(edited.as_bytes(), json.as_ref(), "{from} is in the entry");
    store_entry(database, chain, seq, edited.as_bytes()).await;
}

/// Stores `json` as the entry (`chain`, `seq`), packed.
async fn store_entry(database: &str, chain: i32, seq: i64, json: &[u8]) {
    let client = connect(database).await;
    client
        .execute(
            "UPDATE audit SET entry = $3 WHERE chain = $1 AND seq = $2",
            &[&chain, &seq, &packing::pack(json).expect("pack")],
        )
        .await
        .expect("store the entry");
}

/// Rewrites chain `chain` from `from` on, every hash recomputed and the head moved: what a
/// bare hash chain cannot catch.
async fn rewrite_chain(database: &str, chain: i32, from: i64) {
    let rows = sql(
        database,
        &format!("SELECT seq, entry FROM audit WHERE chain = {chain} ORDER BY seq"),
    )
    .await;
    let mut prev = String::new();
    for row in rows {
        let seq: i64 = row.get(0);
        let json = packing::unpack(row.get::<_, &[u8]>(1)).expect("unpack");
        let mut entry: herald::domain::audit::AuditEntry =
            serde_json::from_slice(&json).expect("entry");
        if seq < from {
            prev = entry.hash.clone();
            continue;
        }
        if seq == from {
            entry.outcome = Some("allow, rewritten".into());
        }
        let sealed = entry.seal(entry.seq, &prev).expect("seal");
        store_entry(database, chain, seq, &sealed).await;
        prev = entry.hash.clone();
    }
    let client = connect(database).await;
    client
        .execute(
            "UPDATE audit_chains SET hash = $2 WHERE chain = $1",
            &[&chain, &prev],
        )
        .await
        .expect("move the head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_on_one_instance_reaches_every_instance() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    // Each instance reads its own copy of the files, as on separate machines.
    let dirs = [policy_copy(|t| t.to_owned()), policy_copy(|t| t.to_owned())];
    let mut gateways = Vec::new();
    for dir in &dirs {
        let path = dir.path().to_path_buf();
        gateways
            .push(on_database_with(&database, Some(Box::new(move |s| s.policy.dir = path))).await);
    }
    let version = |app: &TestApp| {
        let (http, base, token) = (
            app.http.clone(),
            app.address.clone(),
            app.token(Role::Admin),
        );
        async move { crate::helpers::policy_version(&http, &base, &token).await }
    };
    let before = version(&gateways[1]).await;

    // New files reach both machines; the operator reloads one instance.
    for dir in &dirs {
        crate::helpers::write_policy(dir.path(), |t| format!("{t}\n# the second version\n"));
    }
    let (status, body) = gateways[0]
        .call(Role::Admin, "/v1/policy/reload", json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let after = body["policy_version"].as_str().expect("version").to_owned();
    assert_ne!(after, before);

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = gateways[1].read(Role::Admin, "/v1/status").await;
        let instances = status["instances"].as_array().cloned().unwrap_or_default();
        let all_new = instances.len() == 2
            && instances
                .iter()
                .all(|i| i["policy_version"].as_str() == Some(after.as_str()));
        if version(&gateways[1]).await == after && all_new {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other instance never reloaded: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The other instance's reload is audited, under the client "cluster".
    let (_, audit) = gateways[1]
        .read(Role::Compliance, "/v1/audit?client=cluster&limit=10")
        .await;
    assert!(
        audit["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["policy_version"] == after.as_str())),
        "{audit}"
    );
}

/// A TCP proxy in front of the PostgreSQL server that a test takes down — every connection cut,
/// new ones closed at once — and brings back: the database restarting, as Herald sees it.
struct Outage {
    url: String,
    up: tokio::sync::watch::Sender<bool>,
}

impl Outage {
    /// A proxy to the server of `database`; its `url` names the same database through it.
    async fn before(database: &str) -> Outage {
        let mut url = url::Url::parse(database).expect("url");
        let target = format!(
            "{}:{}",
            url.host_str().expect("host"),
            url.port().expect("port")
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        url.set_port(Some(listener.local_addr().expect("addr").port()))
            .expect("port");
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut state = watch.clone();
                if !*state.borrow() {
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Outage {
            url: url.to_string(),
            up,
        }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_under_load_answers_503_and_loses_nothing() {
    let Some(server) = postgres_server() else {
        return;
    };
    let database = fresh_database(&server).await;
    let outage = Outage::before(&database).await;
    let app = on_database(&outage.url).await;
    const N: usize = 40;
    let psids: Vec<String> = (0..N).map(|i| format!("66{i:02}")).collect();
    for psid in &psids {
        app.consent(psid, "transactional", None).await;
        app.create_user(psid).await;
    }
    // A backend that posts each update with an idempotency key, and tries a refused one again.
    let post = |i: usize| {
        let (http, base, token) = (
            app.http.clone(),
            app.address.clone(),
            app.token(Role::Backend),
        );
        let psid = psids[i].clone();
        async move {
            http.post(format!("{base}/v1/shipping-updates"))
                .bearer_auth(token)
                .header("Idempotency-Key", format!("update-{i}"))
                .json(
                    &json!({"recipient": {"psid": psid}, "order_number": format!("O-{i}"),
                              "status": "shipped"}),
                )
                .send()
                .await
                .expect("post")
                .status()
                .as_u16()
        }
    };
    let mut refused = Vec::new();
    for i in 0..N {
        if i == N / 3 {
            outage.set_up(false);
        }
        if i == 2 * N / 3 {
            let (status, body) = app.read(Role::Admin, "/readyz").await;
            assert_eq!(status, 503, "ready while the database is gone: {body}");
            outage.set_up(true);
        }
        match post(i).await {
            202 => {}
            503 => refused.push(i),
            other => panic!("update {i}: {other}, not 202 or 503"),
        }
    }
    assert!(
        refused.len() >= N / 3 - 1,
        "the outage was not seen: {refused:?}"
    );

    // Herald recovers by itself; the backend's retries are taken once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.read(Role::Admin, "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "Herald did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in refused {
        let status = post(i).await;
        assert_eq!(status, 202, "update {i} after the database came back");
    }
    loop {
        let missing: Vec<&String> = psids.iter().filter(|p| app.inbox(p).is_empty()).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "accepted and never sent: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Twice only what a lost connection allows: a send whose outcome could not be recorded.
    let twice: usize = psids.iter().map(|p| app.inbox(p).len() - 1).sum();
    assert!(
        twice <= herald::configuration::DeliverySettings::default().concurrency,
        "{twice} sent twice"
    );
}

/// A test database whose name says it was made more than six hours ago is dropped by the first
/// fresh database of a test process; a newer one, and an old one still in use, stay.
#[tokio::test]
async fn test_databases_a_past_run_left_behind_are_dropped_and_others_kept() {
    let Some(server) = postgres_server() else {
        return;
    };
    let admin = connect(&server).await;
    let now = std::time::SystemTime::now();
    let hours_ago = |h: u64| {
        let made = now - Duration::from_secs(h * 60 * 60);
        format!(
            "herald_test_{}",
            ulid::Ulid::from_datetime(made).to_string().to_lowercase()
        )
    };
    let (old, in_use, recent) = (hours_ago(7), hours_ago(8), hours_ago(1));
    for name in [&old, &in_use, &recent] {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create");
    }
    let user = connect(&database_url(&server, &in_use)).await;

    // Another test's first database may sweep as well: what is asserted is what remains.
    drop_left_behind(&admin, now).await;

    let exists = |name: String| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "SELECT count(*) FROM pg_database WHERE datname = $1",
                    &[&name],
                )
                .await
                .expect("count")
                .get::<_, i64>(0)
                == 1
        }
    };
    assert!(!exists(old.clone()).await, "{old} was left behind");
    assert!(exists(in_use.clone()).await, "{in_use} is in use");
    assert!(exists(recent.clone()).await, "{recent} is this run's");
    drop(user);
    for name in [&in_use, &recent] {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop");
    }
}
