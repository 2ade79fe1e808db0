//! `spawn_app()`: the real gateway on port 0 with a temporary store, the Messenger sandbox as
//! its Graph API, and helpers that read like the steps of a test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald::auth::JwtKeys;
use herald::clock::ManualClock;
use herald::configuration::{PageSettings, Settings};
use herald::domain::Role;
use herald::sandbox::{ReceivedMessage, Sandbox, SandboxConfig, SandboxPage, SandboxStats};
use herald::startup::{AppHandle, Application, Dependencies};
use herald::store::Stores;
use reqwest::Response;
use secrecy::SecretString;
use serde_json::{json, Value};

pub const PAGE_ID: &str = "100000000000001";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef";
pub const APP_SECRET: &str = "test-app-secret-fedcba9876543210";
pub const VERIFY_TOKEN: &str = "test-verify-token";
pub const PAGE_TOKEN: &str = "test-page-token-EAAB0123456789";
pub const ISSUER: &str = "herald";
pub const AUDIENCE: &str = "herald-clients";
/// The audit log's checkpoint key (an Ed25519 seed, base64); pseudonyms are derived from it.
pub const SIGNING_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Where every test's clock starts unless the test sets another moment: a Wednesday noon UTC,
/// after Messenger retired the three tags (2026-04-27). Tests never depend on today's date.
pub fn test_moment() -> DateTime<Utc> {
    at("2026-11-25T12:00:00Z")
}

/// An RFC 3339 moment.
pub fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .expect("rfc3339")
        .with_timezone(&Utc)
}

pub struct TestApp {
    pub address: String,
    pub sandbox_url: String,
    /// `None` only while [`TestApp::restart`] swaps the gateway.
    handle: Option<AppHandle>,
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
    pub keys: JwtKeys,
    /// The clock Herald and the Messenger stand-in share; tests set it.
    pub clock: Arc<ManualClock>,
    /// Graph error codes a test expects the stand-in to answer for reasons Herald cannot
    /// know beforehand (a person who blocked the page: 551).
    expected_rejections: std::sync::Mutex<Vec<u32>>,
    /// The gateway's task: done once it has shut down and closed its store.
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    policy_dir: PathBuf,
    /// Holds the store (under `store/`); [`TestApp::stop`] hands it back.
    store_dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database, when the suite runs on it.
    database: Option<String>,
}

/// What a test may change about the gateway it starts.
#[derive(Default)]
pub struct TestOptions {
    /// The moment the clock starts at (default [`test_moment`]).
    pub at: Option<DateTime<Utc>>,
    /// Another policy directory (default the repository's `policies/`).
    pub policy_dir: Option<PathBuf>,
    /// Wraps the test's store (sled, or PostgreSQL with `HERALD_TEST_BACKEND=postgres`).
    pub store: Option<WrapStore>,
    /// A change to the test settings (e.g. slower retries).
    pub settings: Option<ChangeSettings>,
    /// Requests per second one client may make (default the gateway's).
    pub client_quota: Option<u32>,
    /// A stopped gateway's store ([`TestApp::stop`]), to start on it again.
    pub data: Option<StoppedStore>,
    /// `[audit] retain_days`.
    pub retain_days: Option<u32>,
}

/// Changes the settings a test gateway starts with.
pub type ChangeSettings = Box<dyn FnOnce(&mut Settings)>;

/// Wraps the store a test gateway opened (to inject faults): takes its interfaces and returns
/// them, each wrapped or as it was.
pub type WrapStore = Box<dyn FnOnce(Stores) -> Stores>;

/// What a stopped gateway leaves: its directory (the sled store under `store/`), and on
/// PostgreSQL its database.
pub struct StoppedStore {
    pub dir: tempfile::TempDir,
    pub database: Option<String>,
}

impl StoppedStore {
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

/// Whether the integration suite runs on PostgreSQL (`HERALD_TEST_BACKEND=postgres`, as the
/// second pass of `scripts/test` does): every test gateway then gets a fresh database of the
/// server at `HERALD_TEST_POSTGRES_URL`.
pub fn on_postgres() -> bool {
    std::env::var("HERALD_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// The PostgreSQL server the tests may use. `None` when there is none — unless
/// `HERALD_REQUIRE_POSTGRES` is set (`scripts/test` sets it), when its absence fails the test.
pub fn postgres_server() -> Option<String> {
    match std::env::var("HERALD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("HERALD_REQUIRE_POSTGRES").is_none(),
                "HERALD_REQUIRE_POSTGRES is set but HERALD_TEST_POSTGRES_URL is not"
            );
            eprintln!(
                "no PostgreSQL for this test (set HERALD_TEST_POSTGRES_URL, or run scripts/test)"
            );
            None
        }
    }
}

/// A test database made longer ago than this is a past run's, left behind: a run of the
/// suite takes minutes.
pub const LEFT_BEHIND: std::time::Duration = std::time::Duration::from_secs(6 * 60 * 60);

/// Whether this test process has dropped the databases past runs left behind.
static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A fresh, empty database on the server at `server`: its URL. The first one a test process
/// makes drops the test databases made more than [`LEFT_BEHIND`] ago (each test keeps its own
/// to the end, so a server that is not thrown away after a run would keep them all).
pub async fn fresh_database(server: &str) -> String {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL server");
    let connection = tokio::spawn(connection);
    if !SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        drop_left_behind(&client, std::time::SystemTime::now()).await;
    }
    let name = format!(
        "herald_test_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = connection.await;
    database_url(server, &name)
}

/// The URL of the database `name` on the server at `server` (a URL naming another database).
pub fn database_url(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).expect("HERALD_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Drops the test databases on `client`'s server made (their name's ULID says when) more than
/// [`LEFT_BEHIND`] before `now`; one still in use stays.
pub async fn drop_left_behind(client: &tokio_postgres::Client, now: std::time::SystemTime) {
    let Ok(rows) = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'herald\\_test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        // Only a name that is the prefix and a ULID (letters and digits) goes into the SQL.
        let made = name
            .strip_prefix("herald_test_")
            .and_then(|id| ulid::Ulid::from_string(&id.to_uppercase()).ok())
            .map(|id| id.datetime());
        let old =
            made.is_some_and(|made| now.duration_since(made).is_ok_and(|age| age > LEFT_BEHIND));
        if old {
            // One in use (another run's, still going) fails to drop, and stays.
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .await;
        }
    }
}

/// A fresh database when the suite runs on PostgreSQL, else `None` (sled).
pub async fn test_database() -> Option<String> {
    match on_postgres().then(postgres_server).flatten() {
        Some(server) => Some(fresh_database(&server).await),
        None => None,
    }
}

/// Puts `settings` on the PostgreSQL database at `url` (short leases, few partitions, as
/// suits a test), or leaves them on sled.
pub fn use_database(settings: &mut Settings, url: Option<&str>) {
    if let Some(url) = url {
        settings.storage.backend = herald::configuration::Backend::Postgres;
        settings.storage.url = Some(SecretString::from(url.to_owned()));
        settings.storage.pool_size = 8;
        settings.storage.partitions = 8;
        settings.storage.lease_ms = 1_000;
        settings.storage.ca_file = postgres_ca();
    }
}

/// The test server's CA, when it has TLS (`scripts/test`'s cluster does): connections then go
/// over TLS and check its certificate.
pub fn postgres_ca() -> Option<PathBuf> {
    std::env::var_os("HERALD_TEST_POSTGRES_CA").map(PathBuf::from)
}

/// The `[storage]` lines of a configuration file on the database at `url`.
pub fn postgres_storage_toml(url: &str) -> String {
    let ca = postgres_ca().map_or(String::new(), |ca| {
        format!("ca_file = \"{}\"\n", ca.display())
    });
    format!(
        "backend = \"postgres\"\nurl = \"{url}\"\n{ca}partitions = 8\nlease_ms = 1000\npool_size = 8\n"
    )
}

/// Skips a test that reads or alters the sled store's files when the suite runs on
/// PostgreSQL; `tests/api/postgres.rs` holds their PostgreSQL counterparts.
#[macro_export]
macro_rules! sled_only {
    () => {
        if $crate::helpers::on_postgres() {
            eprintln!("this test works on the sled store's files: skipped on PostgreSQL");
            return;
        }
    };
}

pub fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A copy of the repository's policy files, with `edit` applied to `default.toml`.
pub fn policy_copy(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("policy dir");
    write_policy(dir.path(), edit);
    dir
}

pub fn write_policy(dir: &std::path::Path, edit: impl Fn(&str) -> String) {
    for entry in std::fs::read_dir(policy_dir()).expect("policies") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("read policy");
            let text = if path.ends_with("default.toml") {
                edit(&text)
            } else {
                text
            };
            std::fs::write(dir.join(path.file_name().expect("name")), text).expect("write");
        }
    }
}

/// The audit pseudonyms a test gateway's store is opened with (from [`SIGNING_KEY`]).
pub fn test_pseudonyms() -> herald::domain::audit::Pseudonyms {
    let settings = test_settings(std::path::Path::new("unused"), "http://127.0.0.1:1");
    herald::startup::pseudonyms(&settings).expect("pseudonyms")
}

/// Settings for a test gateway: short retry delays, every secret known to the test.
pub fn test_settings(store: &std::path::Path, graph_base_url: &str) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".into();
    s.storage.path = store.to_path_buf();
    s.auth.jwt_secret = Some(SecretString::from(JWT_SECRET));
    s.auth.issuer = Some(ISSUER.into());
    s.auth.audience = Some(AUDIENCE.into());
    s.messenger.graph_base_url = graph_base_url.into();
    s.messenger.app_secret = Some(SecretString::from(APP_SECRET));
    s.messenger.verify_token = Some(SecretString::from(VERIFY_TOKEN));
    s.messenger.pages.insert(
        PAGE_ID.into(),
        PageSettings {
            access_token: SecretString::from(PAGE_TOKEN),
            region: Some("EU".into()),
        },
    );
    s.policy.dir = policy_dir();
    s.audit.signing_key = Some(SecretString::from(SIGNING_KEY));
    s.delivery.retry_base_ms = 5;
    s.delivery.retry_max_ms = 40;
    s
}

/// `GET /metrics` of the gateway at `base`, as text.
pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The value of one series of `GET /metrics` (`name{labels}`), 0 when it is absent.
pub async fn metric(http: &reqwest::Client, base: &str, series: &str) -> f64 {
    metrics_text(http, base)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The version of the policy the gateway at `base` runs (`GET /v1/policy`, as `token`).
pub async fn policy_version(http: &reqwest::Client, base: &str, token: &str) -> String {
    let body: Value = http
        .get(format!("{base}/v1/policy"))
        .bearer_auth(token)
        .send()
        .await
        .expect("policy")
        .json()
        .await
        .expect("json");
    body["version"].as_str().unwrap_or_default().to_owned()
}

/// The Messenger stand-in for the test page, posting webhooks to `webhook_url`.
pub async fn start_sandbox(
    listener: TcpListener,
    webhook_url: Option<String>,
    clock: herald::clock::SharedClock,
) -> Sandbox {
    Sandbox::start(
        SandboxConfig {
            app_secret: APP_SECRET.into(),
            pages: vec![SandboxPage {
                id: PAGE_ID.into(),
                access_token: PAGE_TOKEN.into(),
                region: Some("EU".into()),
            }],
            webhook_url,
            auto_receipts: false,
            rate_per_page_per_second: 300,
            clock,
        },
        listener,
    )
    .await
    .expect("start sandbox")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    let clock = ManualClock::at(options.at.unwrap_or_else(test_moment));
    let (store_dir, database) = match options.data {
        Some(stopped) => (stopped.dir, stopped.database),
        None => (
            tempfile::tempdir().expect("temp dir"),
            test_database().await,
        ),
    };
    let herald_listener = TcpListener::bind("127.0.0.1:0").expect("bind herald");
    let sandbox_listener = TcpListener::bind("127.0.0.1:0").expect("bind sandbox");
    let address = format!(
        "http://127.0.0.1:{}",
        herald_listener.local_addr().expect("addr").port()
    );
    let sandbox_url = format!(
        "http://127.0.0.1:{}",
        sandbox_listener.local_addr().expect("addr").port()
    );
    let mut settings = test_settings(&store_dir.path().join("store"), &sandbox_url);
    use_database(&mut settings, database.as_deref());
    if let Some(dir) = options.policy_dir {
        settings.policy.dir = dir;
    }
    settings.audit.retain_days = options.retain_days.unwrap_or(0);
    if let Some(change) = options.settings {
        change(&mut settings);
    }
    if let Some(quota) = options.client_quota {
        settings.server.client_requests_per_second = quota;
    }
    let store = match options.store {
        Some(wrap) => {
            let opened = herald::startup::open_store(&settings, test_pseudonyms(), true)
                .await
                .expect("open the test store");
            Some(herald::startup::OpenedStore {
                store: wrap(opened.store),
                ..opened
            })
        }
        None => None,
    };
    let deps = Dependencies {
        clock: Some(clock.clone()),
        store,
    };
    let app = Application::build_with(&settings, herald_listener, deps)
        .await
        .expect("build app");
    let handle = app.handle();
    let running = tokio::spawn(app.run_until_stopped());
    let sandbox = start_sandbox(
        sandbox_listener,
        Some(format!("{address}/webhooks/messenger")),
        clock.clone(),
    )
    .await;
    TestApp {
        address,
        sandbox_url,
        handle: Some(handle),
        sandbox,
        http: reqwest::Client::new(),
        keys: JwtKeys::new(
            &SecretString::from(JWT_SECRET),
            Some(ISSUER.into()),
            Some(AUDIENCE.into()),
        ),
        clock,
        expected_rejections: std::sync::Mutex::new(Vec::new()),
        running: Some(running),
        policy_dir: settings.policy.dir.clone(),
        store_dir: Some(store_dir),
        database,
    }
}

impl TestApp {
    /// Shuts the gateway down as SIGTERM would (intake, in-flight sends, the store closed) and
    /// waits until its store lets go of the directory.
    async fn shut_down(&mut self) -> std::path::PathBuf {
        // Every handle on the old gateway goes, so that its store lets go of the directory.
        if let Some(old) = self.handle.take() {
            old.shutdown().await;
        }
        if let Some(running) = self.running.take() {
            running
                .await
                .expect("join")
                .expect("the gateway stopped cleanly");
        }
        let path = self
            .store_dir
            .as_ref()
            .expect("store dir")
            .path()
            .join("store");
        if self.database.is_some() {
            return path;
        }
        // sled's file lock goes with the last handle, which the server's threads may hold a
        // moment longer.
        for _ in 0..200 {
            match sled::Config::new().path(&path).open() {
                Ok(_) => return path,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        panic!("the store at {} stayed locked", path.display());
    }

    /// Stops the gateway and starts it again on the same port and store, with the same clock
    /// and Messenger stand-in.
    pub async fn restart(&mut self) {
        let store = self.shut_down().await;
        let port = self.address.rsplit(':').next().expect("port");
        let listener = TcpListener::bind(format!("127.0.0.1:{port}")).expect("the same port");
        let mut settings = test_settings(&store, &self.sandbox_url);
        use_database(&mut settings, self.database.as_deref());
        settings.policy.dir = self.policy_dir.clone();
        let deps = Dependencies {
            clock: Some(self.clock.clone()),
            store: None,
        };
        let app = Application::build_with(&settings, listener, deps)
            .await
            .expect("build app again");
        self.handle = Some(app.handle());
        self.running = Some(tokio::spawn(app.run_until_stopped()));
    }

    /// The running gateway's handle: its core and its worker.
    pub fn handle(&self) -> &AppHandle {
        self.handle.as_ref().expect("the gateway is running")
    }

    /// Hands over what is due now, and nothing that falls due later.
    pub async fn drain_now(&self) {
        self.handle()
            .worker
            .drain(Duration::ZERO)
            .await
            .expect("drain");
    }

    /// Moves campaigns along once, as the scheduler does every 100 ms.
    pub async fn tick(&self) {
        self.handle()
            .herald
            .campaigns_tick()
            .await
            .expect("campaign tick");
    }

    /// Shuts the gateway down as an operator would, closes its store and hands back the
    /// directory, for a test to look at the files or start a gateway on them again
    /// ([`TestOptions::data`]).
    pub async fn stop(mut self) -> StoppedStore {
        self.shut_down().await;
        StoppedStore {
            dir: self.store_dir.take().expect("store dir"),
            database: self.database.take(),
        }
    }

    /// Now, by the clock Herald and the stand-in share.
    pub fn now(&self) -> DateTime<Utc> {
        use herald::clock::Clock;
        self.clock.now()
    }

    /// Sets the shared clock.
    pub fn set_time(&self, at: DateTime<Utc>) {
        self.clock.set(at);
    }

    /// How many entries the audit log holds.
    pub async fn audit_head(&self) -> u64 {
        self.handle()
            .herald
            .store
            .audit
            .head()
            .await
            .expect("audit head")
            .seq
    }

    pub fn token(&self, role: Role) -> String {
        self.keys
            .issue(&format!("test-{role}"), role, Duration::from_secs(600))
            .expect("token")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut req = self.http.post(format!("{}{path}", self.address)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// `GET path` as `role`; returns status and JSON body.
    pub async fn read(&self, role: Role, path: &str) -> (u16, Value) {
        let r = self.get(path, Some(&self.token(role))).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.http.get(format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// `POST path` as `role`; returns status and JSON body.
    pub async fn call(&self, role: Role, path: &str, body: Value) -> (u16, Value) {
        let r = self.post(path, Some(&self.token(role)), &body).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, body: Value) -> (u16, Value) {
        self.call(Role::Backend, "/v1/messages", body).await
    }

    pub async fn respond(&self, psid: &str, text: &str) -> (u16, Value) {
        self.send(
            json!({"recipient": {"psid": psid}, "category": "response", "message": {"text": text}}),
        )
        .await
    }

    /// What a response to `psid` would be decided now, without sending it.
    pub async fn evaluate_response(&self, psid: &str) -> (u16, Value) {
        self.call(
            Role::Backend,
            "/v1/policy/evaluate",
            json!({"recipient": {"psid": psid}, "category": "response", "message": {"text": "hi"}}),
        )
        .await
    }

    pub async fn receipt(&self, psid: &str, order_number: &str) -> (u16, Value) {
        self.call(
            Role::Backend,
            "/v1/receipts",
            json!({
                "recipient": {"psid": psid},
                "order": {
                    "order_number": order_number, "currency": "EUR", "payment_method": "Visa 4242",
                    "recipient_name": "Ada Lovelace",
                    "summary": {"subtotal": 40, "shipping_cost": 4.5, "total_cost": 44.5},
                    "elements": [{"title": "Teapot", "price": 40, "quantity": 1}]
                }
            }),
        )
        .await
    }

    pub async fn consent(&self, psid: &str, scope: &str, timezone: Option<&str>) {
        let mut body = json!({"recipient": {"psid": psid}, "scope": scope,
            "source": "checkout_checkbox", "evidence": {"order": "A-1", "ip": "203.0.113.9"}});
        if let Some(tz) = timezone {
            body["timezone"] = json!(tz);
        }
        let (status, body) = self.call(Role::Backend, "/v1/consents", body).await;
        assert_eq!(status, 201, "recording consent: {body}");
    }

    /// The message as `GET /v1/messages/{id}` shows it.
    pub async fn message(&self, id: &str) -> Value {
        let r = self
            .get(
                &format!("/v1/messages/{id}"),
                Some(&self.token(Role::Compliance)),
            )
            .await;
        assert_eq!(r.status().as_u16(), 200, "GET message {id}");
        r.json().await.expect("json")
    }

    pub async fn recipient(&self, psid: &str) -> (u16, Value) {
        let r = self
            .get(
                &format!("/v1/recipients/{psid}"),
                Some(&self.token(Role::Compliance)),
            )
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Hands everything due (and retries due within a few seconds) to the sandbox.
    pub async fn drain(&self) {
        self.handle()
            .worker
            .drain(Duration::from_secs(5))
            .await
            .expect("drain");
    }

    /// Plays the user: `POST /sandbox/...` on the stand-in, which signs and sends the webhook.
    /// `DELETE /v1/recipients/{psid}` as an admin.
    pub async fn erase(&self, psid: &str) -> (u16, Value) {
        let r = self
            .http
            .delete(format!("{}/v1/recipients/{psid}", self.address))
            .bearer_auth(self.token(Role::Admin))
            .send()
            .await
            .expect("erase");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn sandbox_post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/sandbox{path}", self.sandbox_url))
            .json(&body)
            .send()
            .await
            .expect("sandbox request");
        assert!(r.status().is_success(), "sandbox {path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    pub async fn create_user(&self, psid: &str) {
        self.sandbox_post("/users", json!({"psid": psid})).await;
    }

    /// The user writes to the page at `at` (default now); Herald gets the webhook.
    pub async fn user_writes(&self, psid: &str, text: &str, at: Option<DateTime<Utc>>) -> Value {
        let mut body = json!({"text": text});
        if let Some(at) = at {
            body["at"] = json!(at.to_rfc3339());
        }
        let answer = self
            .sandbox_post(&format!("/users/{psid}/messages"), body)
            .await;
        assert_eq!(
            answer["webhook_status"], 200,
            "Herald took the webhook: {answer}"
        );
        answer
    }

    pub fn inbox(&self, psid: &str) -> Vec<ReceivedMessage> {
        self.sandbox.inbox(psid)
    }

    pub fn stats(&self) -> SandboxStats {
        self.sandbox.stats()
    }

    /// The stand-in will refuse one send with `code` for a reason Herald could not know
    /// before sending (the person blocked the page).
    pub fn expect_rejection(&self, code: u32) {
        self.expected_rejections
            .lock()
            .expect("expected rejections")
            .push(code);
    }

    /// Herald allowed nothing that Messenger's rules would refuse, but what the test said it
    /// expects. Every test app checks this when it is dropped; a test may also check it at a
    /// point of its own.
    pub fn assert_no_rejections(&self) {
        let stats = self.stats();
        let mut codes: Vec<u32> = stats.rejections.iter().map(|r| r.code).collect();
        let mut expected = self
            .expected_rejections
            .lock()
            .expect("expected rejections")
            .clone();
        codes.sort_unstable();
        expected.sort_unstable();
        assert_eq!(
            (stats.rejected, codes),
            (expected.len() as u64, expected),
            "the Messenger stand-in rejected sends Herald allowed: {:?}",
            stats.rejections
        );
    }
}

impl Drop for TestApp {
    /// Every integration test ends with the stand-in having rejected nothing Herald allowed
    /// (unless the test failed already: one panic is enough).
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_no_rejections();
        }
    }
}

/// `herald serve --sandbox` as a user starts it (no configuration file, a port of its own), and
/// the first line of its banner that `wanted` picks. The caller kills the child.
pub async fn serve_sandbox(wanted: fn(&str) -> bool) -> (std::process::Child, Option<String>) {
    serve_sandbox_with(&[], wanted).await
}

/// As [`serve_sandbox`], with `envs` set for the gateway.
pub async fn serve_sandbox_with(
    envs: &[(&str, &std::path::Path)],
    wanted: fn(&str) -> bool,
) -> (std::process::Child, Option<String>) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--sandbox", "--config", "no-such-herald.toml"])
        .envs(envs.iter().copied())
        .env("RUST_LOG", "warn")
        .env("HERALD_SERVER__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start herald serve --sandbox");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.by_ref().map_while(Result::ok).find(|l| wanted(l));
        // The rest of the banner and the logs are read and dropped, so the child never blocks
        // on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        line
    })
    .await
    .expect("banner");
    (child, line)
}
