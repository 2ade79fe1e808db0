//! `spawn_app()`: the real gateway on port 0 with a temporary store, the Messenger sandbox as
//! its Graph API, and helpers that read like the steps of a test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use herald::auth::JwtKeys;
use herald::configuration::{PageSettings, Settings};
use herald::domain::Role;
use herald::sandbox::{ReceivedMessage, Sandbox, SandboxConfig, SandboxPage, SandboxStats};
use herald::startup::{AppHandle, Application};
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

pub struct TestApp {
    pub address: String,
    pub sandbox_url: String,
    pub handle: AppHandle,
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
    pub keys: JwtKeys,
    _store_dir: tempfile::TempDir,
}

pub fn policy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
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
    s.delivery.retry_base_ms = 5;
    s.delivery.retry_max_ms = 40;
    s
}

/// The Messenger stand-in for the test page, posting webhooks to `webhook_url`.
pub async fn start_sandbox(listener: TcpListener, webhook_url: Option<String>) -> Sandbox {
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
        },
        listener,
    )
    .await
    .expect("start sandbox")
}

pub async fn spawn_app() -> TestApp {
    let store_dir = tempfile::tempdir().expect("temp dir");
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
    let settings = test_settings(&store_dir.path().join("store"), &sandbox_url);
    let app = Application::build_with_listener(&settings, herald_listener)
        .await
        .expect("build app");
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let sandbox = start_sandbox(
        sandbox_listener,
        Some(format!("{address}/webhooks/messenger")),
    )
    .await;
    TestApp {
        address,
        sandbox_url,
        handle,
        sandbox,
        http: reqwest::Client::new(),
        keys: JwtKeys::new(
            &SecretString::from(JWT_SECRET),
            Some(ISSUER.into()),
            Some(AUDIENCE.into()),
        ),
        _store_dir: store_dir,
    }
}

/// A fixed-offset zone where the local hour is in `hours` (e.g. 9..20 or 22..24) now and for
/// the next ten minutes, so a test cannot race the clock across an hour's edge.
pub fn zone_where_local_hour_in(hours: std::ops::Range<u32>) -> String {
    let now = Utc::now();
    let soon = now + chrono::Duration::minutes(10);
    let local_hour = |t: DateTime<Utc>, offset: i32| {
        (i64::from(t.hour()) + i64::from(offset)).rem_euclid(24) as u32
    };
    let offset = (-12i32..=14)
        .find(|o| hours.contains(&local_hour(now, *o)) && hours.contains(&local_hour(soon, *o)))
        .unwrap_or_else(|| panic!("no zone has local hours {hours:?} for the next ten minutes"));
    // IANA's Etc/GMT zones have inverted signs: Etc/GMT-3 is UTC+3.
    match offset {
        0 => "Etc/GMT".into(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

impl TestApp {
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
        self.handle
            .worker
            .drain(Duration::from_secs(5))
            .await
            .expect("drain");
    }

    /// Plays the user: `POST /sandbox/...` on the stand-in, which signs and sends the webhook.
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

    /// Herald allowed nothing that Messenger's rules would refuse.
    pub fn assert_no_rejections(&self) {
        let stats = self.stats();
        assert_eq!(
            stats.rejected, 0,
            "the Messenger stand-in rejected sends Herald allowed: {:?}",
            stats.rejections
        );
    }
}
