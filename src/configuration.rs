//! Typed settings: a TOML file, then `HERALD_<SECTION>__<KEY>` environment overrides, validated
//! once at start-up. Secrets are wrapped so they never print.
//!
//! The two layers are merged and read by `figment`. Its own `Env` provider is not used: it
//! reads the process's environment (start-up passes `std::env::vars()`, tests pass their own)
//! and guesses each value's type from its text, which made an app secret of digits a number.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::Serialized;
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::audit::Pseudonyms;
use crate::domain::checkpoint::CheckpointSigner;
use crate::domain::Category;

/// Everything Herald reads at start-up.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The HTTP listener.
    #[serde(default)]
    pub server: ServerSettings,
    /// Where the sled store lives.
    #[serde(default)]
    pub storage: StorageSettings,
    /// The audit log: retention, the checkpoint signing key, the pseudonym key.
    #[serde(default)]
    pub audit: AuditSettings,
    /// How client JWTs are checked.
    #[serde(default)]
    pub auth: AuthSettings,
    /// The Graph API, webhooks and the pages Herald sends as.
    #[serde(default)]
    pub messenger: MessengerSettings,
    /// Where the policy files are.
    #[serde(default)]
    pub policy: PolicySettings,
    /// How the delivery worker retries and how many sends it keeps in flight.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Event endpoints: the business's systems Herald tells of what happened.
    #[serde(default)]
    pub events: EventsSettings,
    /// The email fallback's SMTP server and sender; without it nothing goes by email.
    #[serde(default)]
    pub email: Option<EmailSettings>,
}

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
    fn validate(&self) -> Result<(), ConfigError> {
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

/// A configuration problem, phrased as the one line start-up prints.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("configuration file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("configuration key `{key}`: {message}")]
    Key { key: String, message: String },
}

impl ConfigError {
    fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The first problem figment found, named by its key and worded as serde words it. A
    /// value of the wrong type is not repeated, only its type: it may be a secret.
    fn from_figment(e: figment::Error) -> Self {
        use figment::error::Kind;
        use serde::de::value::Error as SerdeError;
        use serde::de::Error as _;
        let message = match &e.kind {
            Kind::InvalidType(found, expected) => {
                format!("invalid type: {}, expected {expected}", type_of(found))
            }
            Kind::InvalidValue(found, expected) => {
                format!("invalid value: {found}, expected {expected}")
            }
            Kind::UnknownField(name, expected) => {
                SerdeError::unknown_field(name, expected).to_string()
            }
            Kind::UnknownVariant(name, expected) => {
                SerdeError::unknown_variant(name, expected).to_string()
            }
            kind => kind.to_string(),
        };
        ConfigError::key(e.path.join("."), message)
    }
}

/// What kind of value `found` is, without the value.
fn type_of(found: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match found {
        Actual::Bool(_) => "a boolean".into(),
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer".into(),
        Actual::Float(_) => "a float".into(),
        Actual::Char(_) | Actual::Str(_) => "a string".into(),
        Actual::Bytes(_) => "bytes".into(),
        Actual::Other(_) => "another type".into(),
        other => other.to_string(),
    }
}

/// Whether the settings must be complete for talking to the real Graph API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Production,
    /// `--sandbox`: secrets and pages are filled in by the sandbox.
    Sandbox,
}

impl Settings {
    /// Reads `path` (a missing file is fine when `required` is false), applies the environment
    /// overrides from `env`, and validates the result.
    pub fn load(
        path: &Path,
        required: bool,
        env: impl IntoIterator<Item = (String, String)>,
        mode: Mode,
    ) -> Result<Settings, ConfigError> {
        let file = read_file(path, required)?;
        // The file's values are typed by TOML; the environment's are text, typed by the
        // setting they land on (`extract_lossy` reads "30" as a number only where a number is
        // expected), so a secret made of digits stays a string. (A quoted number in the file is
        // read as that number too.)
        let settings: Settings = env_overrides(env)
            .fold(
                Figment::from(Serialized::defaults(file)),
                |figment, (key, value)| figment.merge(Serialized::default(&key, value)),
            )
            .extract_lossy()
            .map_err(ConfigError::from_figment)?;
        settings.validate(mode)?;
        Ok(settings)
    }

    fn validate(&self, mode: Mode) -> Result<(), ConfigError> {
        self.server.listen.parse::<SocketAddr>().map_err(|_| {
            ConfigError::key("server.listen", "must be an address such as 127.0.0.1:8080")
        })?;
        if self.server.max_body_bytes < 1024 {
            return Err(ConfigError::key(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        url::Url::parse(&self.messenger.graph_base_url)
            .map_err(|_| ConfigError::key("messenger.graph_base_url", "must be an absolute URL"))?;
        let version_ok = self
            .messenger
            .graph_version
            .strip_prefix('v')
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !version_ok {
            return Err(ConfigError::key(
                "messenger.graph_version",
                "must look like v21.0",
            ));
        }
        for (id, page) in &self.messenger.pages {
            crate::domain::PageId::parse(id)
                .map_err(|e| ConfigError::key(format!("messenger.pages.{id}"), e))?;
            if page.access_token.expose_secret().trim().is_empty() {
                return Err(ConfigError::key(
                    format!("messenger.pages.{id}.access_token"),
                    "must not be empty",
                ));
            }
        }
        self.check_bounds()?;
        if self.delivery.max_attempts == 0 || self.delivery.concurrency == 0 {
            return Err(ConfigError::key(
                "delivery",
                "max_attempts and concurrency must be at least 1",
            ));
        }
        if !(1..=256).contains(&self.events.concurrency) {
            return Err(ConfigError::key(
                "events.concurrency",
                "must be from 1 to 256",
            ));
        }
        if let Some(email) = &self.email {
            email.validate()?;
        }
        if self.storage.backend == Backend::Postgres {
            if self.storage.url.is_none() {
                return Err(ConfigError::key(
                    "storage.url",
                    "is required with backend = \"postgres\" (or set HERALD_STORAGE__URL)",
                ));
            }
            if self.storage.pool_size < 2 || self.storage.partitions == 0 {
                return Err(ConfigError::key(
                    "storage",
                    "pool_size must be at least 2 and partitions at least 1",
                ));
            }
            if self.storage.lease_ms < 500 {
                return Err(ConfigError::key("storage.lease_ms", "must be at least 500"));
            }
        }
        let pseudonyms = self.audit.pseudonyms()?;
        if mode == Mode::Sandbox {
            return Ok(());
        }
        let required: [(&str, &Option<SecretString>); 3] = [
            ("auth.jwt_secret", &self.auth.jwt_secret),
            ("messenger.app_secret", &self.messenger.app_secret),
            ("messenger.verify_token", &self.messenger.verify_token),
        ];
        for (key, value) in required {
            match value {
                None => {
                    let env = format!("HERALD_{}", key.to_uppercase().replace('.', "__"));
                    return Err(ConfigError::key(
                        key,
                        format!("is required (set it in the config file or in {env})"),
                    ));
                }
                Some(s) if s.expose_secret().len() < 16 && key == "auth.jwt_secret" => {
                    return Err(ConfigError::key(key, "must be at least 16 characters"));
                }
                Some(_) => {}
            }
        }
        if pseudonyms.is_none() {
            return Err(ConfigError::key(
                "audit.signing_key",
                "is required (or audit.pseudonym_key): the audit log names recipients by a keyed pseudonym",
            ));
        }
        if self.messenger.pages.is_empty() {
            return Err(ConfigError::key(
                "messenger.pages",
                "configure at least one page: [messenger.pages.\"PAGE_ID\"] access_token = \"…\"",
            ));
        }
        Ok(())
    }
}

/// The longest value each duration setting may have: past these, nothing useful happens, and a
/// large enough one would overflow the date arithmetic of the task that uses it.
const RETAIN_DAYS_MAX: u32 = 36_500;
const RETRY_MAX_MS_MAX: u64 = 24 * 3_600_000;
const REQUEST_TIMEOUT_MS_MAX: u64 = 600_000;
const LEASE_MS_MAX: u64 = 3_600_000;

impl Settings {
    /// Every duration setting within its range (bounded values, as requests are).
    fn check_bounds(&self) -> Result<(), ConfigError> {
        let too_long =
            |key: &str, most: String| Err(ConfigError::key(key, format!("must be at most {most}")));
        if self.audit.retain_days > RETAIN_DAYS_MAX {
            return too_long("audit.retain_days", RETAIN_DAYS_MAX.to_string());
        }
        let delivery = &self.delivery;
        if delivery.retry_max_ms > RETRY_MAX_MS_MAX {
            return too_long(
                "delivery.retry_max_ms",
                format!("{RETRY_MAX_MS_MAX} (a day)"),
            );
        }
        if delivery.retry_base_ms > delivery.retry_max_ms {
            return too_long("delivery.retry_base_ms", "delivery.retry_max_ms".to_owned());
        }
        if delivery.request_timeout_ms > REQUEST_TIMEOUT_MS_MAX {
            return too_long(
                "delivery.request_timeout_ms",
                format!("{REQUEST_TIMEOUT_MS_MAX} (ten minutes)"),
            );
        }
        if self.storage.lease_ms > LEASE_MS_MAX {
            return too_long("storage.lease_ms", format!("{LEASE_MS_MAX} (an hour)"));
        }
        let most = crate::domain::bounds::EXPIRES_WITHIN
            .to_std()
            .unwrap_or(Duration::MAX);
        for category in Category::ALL {
            if delivery.ttl.of(category) > most {
                return too_long(
                    &format!("delivery.ttl.{}", category.as_str()),
                    "30 days (a message's expires_at may lie at most that far ahead)".to_owned(),
                );
            }
        }
        Ok(())
    }
}

/// The file at `path` as a TOML table; a missing one is empty unless `required`.
fn read_file(path: &Path, required: bool) -> Result<toml::Table, ConfigError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Syntax {
                path: shown,
                message: e.message().to_owned() + &line_of(&text, e.span()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(toml::Table::new()),
        Err(source) => Err(ConfigError::Read {
            path: shown,
            source,
        }),
    }
}

/// The settings the environment overrides: `HERALD_AUTH__JWT_SECRET=x` is (`auth.jwt_secret`,
/// `x`), each level lowercased. A name of one level (`HERALD_TOKEN`, `HERALD_LOG_FORMAT`) is not
/// a setting: it belongs to the command line or the logger. The value stays text.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> impl Iterator<Item = (String, String)> {
    env.into_iter().filter_map(|(name, value)| {
        let levels: Vec<String> = name
            .strip_prefix("HERALD_")?
            .split("__")
            .map(str::to_lowercase)
            .collect();
        // A `.` would make a level of its own in the key path.
        let setting = levels.len() >= 2 && levels.iter().all(|l| !l.is_empty() && !l.contains('.'));
        setting.then(|| (levels.join("."), value))
    })
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
        format!(" (line {line})")
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    const COMPLETE: &str = r#"
[audit]
signing_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
[auth]
jwt_secret = "0123456789abcdef0123"
[messenger]
app_secret = "app-secret-value"
verify_token = "verify"
[messenger.pages."1001"]
access_token = "page-token"
region = "EU"
"#;

    #[test]
    fn environment_overrides_the_file() {
        let f = file(COMPLETE);
        let env = vec![
            (
                "HERALD_SERVER__LISTEN".to_owned(),
                "127.0.0.1:9999".to_owned(),
            ),
            (
                "HERALD_MESSENGER__PAGES__1001__REGION".to_owned(),
                "UK".to_owned(),
            ),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let s = Settings::load(f.path(), true, env, Mode::Production).expect("valid");
        assert_eq!(s.server.listen, "127.0.0.1:9999");
        assert_eq!(s.messenger.pages["1001"].region.as_deref(), Some("UK"));
    }

    #[test]
    fn a_secret_of_digits_given_through_the_environment_loads_as_that_text() {
        let f = file("[audit]\nsigning_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n");
        let env: Vec<(String, String)> = [
            ("HERALD_AUTH__JWT_SECRET", "0012345678901234567"),
            (
                "HERALD_MESSENGER__APP_SECRET",
                "98765432109876543210987654321",
            ),
            ("HERALD_MESSENGER__VERIFY_TOKEN", "4711"),
            ("HERALD_MESSENGER__PAGES__1001__ACCESS_TOKEN", "000777"),
            ("HERALD_AUDIT__PSEUDONYM_KEY", "1234567890123456"),
            // One level: the command line's and the logger's, not settings.
            ("HERALD_TOKEN", "x"),
            ("HERALD_LOG_FORMAT", "json"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = Settings::load(f.path(), true, env, Mode::Production).expect("valid");
        let shown =
            |secret: &Option<SecretString>| secret.as_ref().map(|s| s.expose_secret().to_owned());
        assert_eq!(
            shown(&s.auth.jwt_secret).as_deref(),
            Some("0012345678901234567")
        );
        assert_eq!(
            shown(&s.messenger.app_secret).as_deref(),
            Some("98765432109876543210987654321")
        );
        assert_eq!(shown(&s.messenger.verify_token).as_deref(), Some("4711"));
        assert_eq!(
            shown(&s.audit.pseudonym_key).as_deref(),
            Some("1234567890123456")
        );
        assert_eq!(
            s.messenger.pages["1001"].access_token.expose_secret(),
            "000777"
        );
        let debug = format!("{s:?}");
        for secret in [
            "0012345678901234567",
            "98765432109876543210987654321",
            "000777",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
    }

    #[test]
    fn a_number_from_the_environment_must_read_as_the_number_its_setting_is() {
        let env = vec![("HERALD_DELIVERY__MAX_ATTEMPTS".to_owned(), "7".to_owned())];
        let s = Settings::load(file("").path(), true, env, Mode::Sandbox).expect("valid");
        assert_eq!(s.delivery.max_attempts, 7);
        let env = vec![(
            "HERALD_DELIVERY__MAX_ATTEMPTS".to_owned(),
            "many".to_owned(),
        )];
        let err = Settings::load(file("").path(), true, env, Mode::Sandbox)
            .expect_err("not a number")
            .to_string();
        assert!(err.contains("delivery.max_attempts"), "{err}");
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_named_but_not_repeated() {
        let f = file("[auth]\njwt_secret = 8675309867530986753\n");
        let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
            .expect_err("a number is not a secret string in the file")
            .to_string();
        assert!(err.contains("auth.jwt_secret"), "{err}");
        assert!(!err.contains("8675309867530986753"), "{err}");
    }

    #[test]
    fn the_database_url_comes_from_the_environment_and_never_prints() {
        let f = file("[storage]\nbackend = \"postgres\"\n");
        let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
            .expect_err("postgres needs a URL")
            .to_string();
        assert!(err.contains("storage.url"), "{err}");
        let env = vec![(
            "HERALD_STORAGE__URL".to_owned(),
            "postgres://herald:pw-4711-secret@db:5432/herald".to_owned(),
        )];
        let s = Settings::load(f.path(), true, env, Mode::Sandbox).expect("valid");
        assert_eq!(s.storage.backend, Backend::Postgres);
        assert_eq!(
            s.storage.url.as_ref().map(|u| u.expose_secret().to_owned()),
            Some("postgres://herald:pw-4711-secret@db:5432/herald".to_owned())
        );
        assert!(!format!("{s:?}").contains("pw-4711-secret"));
    }

    #[test]
    fn a_missing_secret_names_its_key() {
        let f = file("[messenger]\napp_secret = \"x\"\n");
        let err = Settings::load(f.path(), true, vec![], Mode::Production)
            .expect_err("incomplete")
            .to_string();
        assert!(err.contains("auth.jwt_secret"), "{err}");
        assert!(err.contains("HERALD_AUTH__JWT_SECRET"), "{err}");
    }

    #[test]
    fn a_duration_setting_past_its_range_is_refused_naming_the_key() {
        for (text, key) in [
            ("[audit]\nretain_days = 4000000000\n", "audit.retain_days"),
            (
                "[delivery]\nretry_max_ms = 100000000000\n",
                "delivery.retry_max_ms",
            ),
            (
                "[delivery]\nretry_base_ms = 5000\nretry_max_ms = 1000\n",
                "delivery.retry_base_ms",
            ),
            (
                "[delivery]\nrequest_timeout_ms = 99999999999\n",
                "delivery.request_timeout_ms",
            ),
            ("[storage]\nlease_ms = 99999999999\n", "storage.lease_ms"),
            (
                "[delivery.ttl]\nmarketing = \"1000000y\"\n",
                "delivery.ttl.marketing",
            ),
        ] {
            let f = file(text);
            let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
                .expect_err(key)
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let f = file("[audit]\nretain_days = 3650\n[delivery.ttl]\nreceipt = \"30d\"\n");
        assert!(Settings::load(f.path(), true, vec![], Mode::Sandbox).is_ok());
    }

    #[test]
    fn an_unknown_or_mistyped_key_is_named() {
        let f = file("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
        let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        let f = file("[delivery]\nmax_attempts = \"many\"\n");
        let err = Settings::load(f.path(), true, vec![], Mode::Sandbox)
            .expect_err("bad type")
            .to_string();
        assert!(err.contains("delivery.max_attempts"), "{err}");
    }

    #[test]
    fn a_bad_audit_key_is_named() {
        let f = file(&COMPLETE.replace("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "short"));
        let err = Settings::load(f.path(), true, vec![], Mode::Production)
            .expect_err("bad key")
            .to_string();
        assert!(err.contains("audit.signing_key"), "{err}");
        let env = vec![("HERALD_AUDIT__PSEUDONYM_KEY".to_owned(), "tiny".to_owned())];
        let err = Settings::load(file(COMPLETE).path(), true, env, Mode::Production)
            .expect_err("short key")
            .to_string();
        assert!(err.contains("audit.pseudonym_key"), "{err}");
        let f = file(&COMPLETE.replace(
            "[audit]\nsigning_key = \"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"\n",
            "",
        ));
        let err = Settings::load(f.path(), true, vec![], Mode::Production)
            .expect_err("no audit key")
            .to_string();
        assert!(err.contains("audit.signing_key"), "{err}");
        let env = vec![("HERALD_AUDIT__RETAIN_DAYS".to_owned(), "30".to_owned())];
        let s = Settings::load(file(COMPLETE).path(), true, env, Mode::Production).expect("ok");
        assert_eq!(s.audit.retain_days, 30);
    }

    #[test]
    fn secrets_do_not_print() {
        let f = file(COMPLETE);
        let s = Settings::load(f.path(), true, vec![], Mode::Production).expect("valid");
        let shown = format!("{s:?}");
        for secret in [
            "0123456789abcdef0123",
            "app-secret-value",
            "page-token",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
    }

    #[test]
    fn a_missing_required_file_is_an_error_and_an_optional_one_is_not() {
        let path = Path::new("/nonexistent/herald.toml");
        assert!(Settings::load(path, true, vec![], Mode::Sandbox).is_err());
        assert!(Settings::load(path, false, vec![], Mode::Sandbox).is_ok());
    }
}
