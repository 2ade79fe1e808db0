//! One type per section of the configuration file, with its defaults: `[server]`, `[storage]`,
//! `[audit]`, `[auth]`, `[messenger]`, `[policy]`, `[delivery]` (and its `ttl`), `[events]`,
//! `[email]`, and the checks that need only their own section. How they are read and checked
//! together is `mod.rs`'s. (Ten sections of plain fields and defaults: a little over the house's
//! 500 lines, and easier to read in one place than split by section.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ConfigError;
use crate::domain::audit::Pseudonyms;
use crate::domain::checkpoint::CheckpointSigner;
use crate::domain::Category;

/// `[email]`: the fallback channel for transactional messages (API.md, "Email fallback").
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// `smtp://user:password@host:587` (STARTTLS when the server offers it; add `?tls=required`
    /// to refuse a server that does not) or `smtps://…:465` (implicit TLS). A secret: it holds
    /// the password.
    pub smtp_url: SecretString,
    /// The sender, `Shop <orders@shop.example>` or a bare address.
    pub from: String,
    /// Root certificates (PEM) to trust besides the public ones: for a relay inside the
    /// business's network signed by its own authority.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A folder whose templates replace the built-in ones, file by file (see `templates/email`).
    #[serde(default)]
    pub templates: Option<PathBuf>,
    /// How long one SMTP conversation may take, in milliseconds.
    #[serde(default = "default_smtp_timeout_ms")]
    pub timeout_ms: u64,
}

impl EmailSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The checks that need no network; the SMTP client reads the URL in full when it is
    /// built. Never repeats the URL: it holds the password.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(self.smtp_url.expose_secret()).map_err(|_| {
            ConfigError::key(
                "email.smtp_url",
                "must be a URL such as smtp://user:password@smtp.example.com:587",
            )
        })?;
        if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::key(
                "email.smtp_url",
                "must be smtp://host[:port] (STARTTLS) or smtps://host[:port] (implicit TLS)",
            ));
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::key(
                "email.from",
                "must be an address, such as \"Shop <orders@shop.example>\"",
            ));
        }
        if !(100..=300_000).contains(&self.timeout_ms) {
            return Err(ConfigError::key(
                "email.timeout_ms",
                "must be from 100 to 300000",
            ));
        }
        Ok(())
    }
}

fn default_smtp_timeout_ms() -> u64 {
    15_000
}

/// `[events]`: delivering events to the business's own systems (API.md, "Events for business
/// systems").
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EventsSettings {
    /// Allow endpoint URLs on loopback, private, link-local or other internal addresses
    /// (refused by default: a gateway must not become a way into the private network).
    /// `serve --sandbox` allows them.
    #[serde(default)]
    pub allow_private_networks: bool,
    /// Requests in flight at once to one endpoint.
    #[serde(default = "default_events_concurrency")]
    pub concurrency: usize,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            allow_private_networks: false,
            concurrency: default_events_concurrency(),
        }
    }
}

fn default_events_concurrency() -> usize {
    8
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Requests per second one client (JWT `sub`) may make on the sending endpoints; beyond it
    /// Herald answers 429 (613 on the Graph-compatible endpoint).
    #[serde(default = "default_client_requests_per_second")]
    pub client_requests_per_second: u32,
    /// The largest request body Herald reads, in bytes; a larger one is refused with 413 before
    /// it is parsed. Campaign audiences larger than this go as a streamed `text/csv` upload.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            client_requests_per_second: default_client_requests_per_second(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

impl ServerSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.listen.parse::<std::net::SocketAddr>().map_err(|_| {
            ConfigError::key("server.listen", "must be an address such as 127.0.0.1:8080")
        })?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::key(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        Ok(())
    }
}

fn default_client_requests_per_second() -> u32 {
    20_000
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `sled` (the default: embedded, one instance) or `postgres` (several instances).
    #[serde(default)]
    pub backend: Backend,
    /// The sled directory; created when missing.
    #[serde(default = "default_storage")]
    pub path: PathBuf,
    /// PostgreSQL: the connection URL, `postgres://user:password@host:port/database` (a
    /// secret: it holds the password; `HERALD_STORAGE__URL` overrides it).
    pub url: Option<SecretString>,
    /// PostgreSQL: certificates (PEM) to trust for the server's TLS certificate besides the
    /// public roots — a private CA's. TLS itself is the URL's `sslmode` (`require` for always).
    pub ca_file: Option<PathBuf>,
    /// PostgreSQL: connections in the pool.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// PostgreSQL: how many partitions pages hash into. Fixed when the database is first
    /// used: every instance must say the same.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// PostgreSQL: how long an instance holds a partition without renewing it (ms). A dead
    /// instance's partitions are taken over this long after its last renewal.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
}

/// Which engine keeps Herald's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sled,
    Postgres,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            path: default_storage(),
            url: None,
            ca_file: None,
            pool_size: default_pool_size(),
            partitions: default_partitions(),
            lease_ms: default_lease_ms(),
        }
    }
}

impl StorageSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.backend != Backend::Postgres {
            return Ok(());
        }
        if self.url.is_none() {
            return Err(ConfigError::key(
                "storage.url",
                "is required with backend = \"postgres\" (or set HERALD_STORAGE__URL)",
            ));
        }
        if self.pool_size < 2 || self.partitions == 0 {
            return Err(ConfigError::key(
                "storage",
                "pool_size must be at least 2 and partitions at least 1",
            ));
        }
        if self.lease_ms < 500 {
            return Err(ConfigError::key("storage.lease_ms", "must be at least 500"));
        }
        Ok(())
    }

    /// How long a partition's lease lasts.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }
}

fn default_pool_size() -> usize {
    16
}

fn default_partitions() -> u32 {
    64
}

fn default_lease_ms() -> u64 {
    10_000
}

fn default_storage() -> PathBuf {
    PathBuf::from("./herald-data")
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Days an entry is kept; 0 keeps everything. Older entries are pruned from the start of
    /// the chain, behind a recorded checkpoint (the last pruned entry's seq and hash).
    #[serde(default)]
    pub retain_days: u32,
    /// Ed25519 seed (32 bytes, base64) that signs checkpoints; `--sandbox` makes one. Without
    /// it, `GET /v1/audit/checkpoint` answers 409.
    pub signing_key: Option<SecretString>,
    /// Key of the recipients' pseudonyms in the audit log (at least 16 characters); derived
    /// from `signing_key` when not set. It must stay the same for the life of the store:
    /// entries are found by PSID through it.
    pub pseudonym_key: Option<SecretString>,
}

impl AuditSettings {
    /// The checkpoint signer, if a key is configured.
    pub fn signer(&self) -> Result<Option<CheckpointSigner>, ConfigError> {
        self.signing_key
            .as_ref()
            .map(|k| {
                CheckpointSigner::from_base64(k.expose_secret())
                    .map_err(|e| ConfigError::key("audit.signing_key", e))
            })
            .transpose()
    }

    /// The pseudonym key: `pseudonym_key`, or one derived from `signing_key`.
    pub fn pseudonyms(&self) -> Result<Option<Pseudonyms>, ConfigError> {
        if let Some(key) = &self.pseudonym_key {
            if key.expose_secret().len() < 16 {
                return Err(ConfigError::key(
                    "audit.pseudonym_key",
                    "must be at least 16 characters",
                ));
            }
            return Ok(Some(Pseudonyms::new(key.expose_secret().as_bytes())));
        }
        Ok(self.signer()?.map(|s| Pseudonyms::new(&s.pseudonym_key())))
    }

    /// How long entries are kept, if not forever.
    pub fn retention(&self) -> Option<chrono::Duration> {
        (self.retain_days > 0).then(|| chrono::Duration::days(i64::from(self.retain_days)))
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret that signs client JWTs; required outside `--sandbox`.
    pub jwt_secret: Option<SecretString>,
    /// Checked against the token's `iss` when set.
    pub issuer: Option<String>,
    /// Checked against the token's `aud` when set.
    pub audience: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessengerSettings {
    /// Base URL of the Graph API (the sandbox's URL under `--sandbox`).
    #[serde(default = "default_graph_base_url")]
    pub graph_base_url: String,
    /// Graph API version used in request paths, such as `v21.0`.
    #[serde(default = "default_graph_version")]
    pub graph_version: String,
    /// The app secret: verifies `X-Hub-Signature-256` on webhooks.
    pub app_secret: Option<SecretString>,
    /// Answers the webhook subscription handshake.
    pub verify_token: Option<SecretString>,
    /// The pages Herald sends as, by page id.
    #[serde(default)]
    pub pages: BTreeMap<String, PageSettings>,
}

impl Default for MessengerSettings {
    fn default() -> Self {
        Self {
            graph_base_url: default_graph_base_url(),
            graph_version: default_graph_version(),
            app_secret: None,
            verify_token: None,
            pages: BTreeMap::new(),
        }
    }
}

impl MessengerSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        url::Url::parse(&self.graph_base_url)
            .map_err(|_| ConfigError::key("messenger.graph_base_url", "must be an absolute URL"))?;
        let version_ok = self
            .graph_version
            .strip_prefix('v')
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !version_ok {
            return Err(ConfigError::key(
                "messenger.graph_version",
                "must look like v21.0",
            ));
        }
        for (id, page) in &self.pages {
            crate::domain::PageId::parse(id)
                .map_err(|e| ConfigError::key(format!("messenger.pages.{id}"), e))?;
            if page.access_token.expose_secret().trim().is_empty() {
                return Err(ConfigError::key(
                    format!("messenger.pages.{id}.access_token"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

fn default_graph_base_url() -> String {
    "https://graph.facebook.com".into()
}

fn default_graph_version() -> String {
    "v21.0".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSettings {
    /// Page access token used to send as this page.
    pub access_token: SecretString,
    /// The page's region (`EU`, `UK`, `US`, …): decides whether Marketing Messages tokens work.
    pub region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Directory holding the policy files (`*.toml`) and their `tests/`.
    #[serde(default = "default_policy_dir")]
    pub dir: PathBuf,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            dir: default_policy_dir(),
        }
    }
}

fn default_policy_dir() -> PathBuf {
    PathBuf::from("./policies")
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// First retry delay after a transient Graph error, in milliseconds; doubles per attempt.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Longest delay between two attempts, in milliseconds.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Attempts before a message that keeps failing transiently is marked `failed`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Sends in flight at once across all pages.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Timeout of one Graph API call, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long a message may wait to be sent before it expires, per category, when the send
    /// names no `expires_at` of its own.
    #[serde(default)]
    pub ttl: TtlSettings,
}

/// Default time-to-live per category (`"48h"`, `"7d"`): a message not sent by then is
/// `expired`, never sent late. A shipping update two days late is worse than none.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TtlSettings {
    /// A reply to something the person wrote; the window closes after 24 hours anyway.
    #[serde(default = "ttl_24h", deserialize_with = "de_duration")]
    pub response: Duration,
    /// An order confirmation.
    #[serde(default = "ttl_7d", deserialize_with = "de_duration")]
    pub receipt: Duration,
    /// A shipment's status.
    #[serde(default = "ttl_48h", deserialize_with = "de_duration")]
    pub shipping_update: Duration,
    /// A change to the person's account.
    #[serde(default = "ttl_7d", deserialize_with = "de_duration")]
    pub account_update: Duration,
    /// A reminder or change for an event.
    #[serde(default = "ttl_48h", deserialize_with = "de_duration")]
    pub event_update: Duration,
    /// A reply typed by a human agent; the human-agent window is 7 days.
    #[serde(default = "ttl_7d", deserialize_with = "de_duration")]
    pub agent_reply: Duration,
    /// Promotions and offers.
    #[serde(default = "ttl_72h", deserialize_with = "de_duration")]
    pub marketing: Duration,
}

impl Default for TtlSettings {
    fn default() -> Self {
        Self {
            response: ttl_24h(),
            receipt: ttl_7d(),
            shipping_update: ttl_48h(),
            account_update: ttl_7d(),
            event_update: ttl_48h(),
            agent_reply: ttl_7d(),
            marketing: ttl_72h(),
        }
    }
}

impl TtlSettings {
    /// How long a message of `category` may wait.
    pub fn of(&self, category: Category) -> Duration {
        match category {
            Category::Response => self.response,
            Category::Receipt => self.receipt,
            Category::ShippingUpdate => self.shipping_update,
            Category::AccountUpdate => self.account_update,
            Category::EventUpdate => self.event_update,
            Category::AgentReply => self.agent_reply,
            Category::Marketing => self.marketing,
        }
    }
}

const HOUR: u64 = 3_600;

fn ttl_24h() -> Duration {
    Duration::from_secs(24 * HOUR)
}
fn ttl_48h() -> Duration {
    Duration::from_secs(48 * HOUR)
}
fn ttl_72h() -> Duration {
    Duration::from_secs(72 * HOUR)
}
fn ttl_7d() -> Duration {
    Duration::from_secs(7 * 24 * HOUR)
}

/// A duration written as `"90m"`, `"48h"`, `"7d"`.
fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| serde::de::Error::custom("must be a duration such as \"48h\" or \"7d\""))
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry_base_ms: default_retry_base_ms(),
            retry_max_ms: default_retry_max_ms(),
            max_attempts: default_max_attempts(),
            concurrency: default_concurrency(),
            request_timeout_ms: default_request_timeout_ms(),
            ttl: TtlSettings::default(),
        }
    }
}

fn default_retry_base_ms() -> u64 {
    1_000
}
fn default_retry_max_ms() -> u64 {
    15 * 60 * 1_000
}
fn default_max_attempts() -> u32 {
    10
}
fn default_concurrency() -> usize {
    128
}
fn default_request_timeout_ms() -> u64 {
    10_000
}

impl DeliverySettings {
    pub fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry_base_ms)
    }
    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}
