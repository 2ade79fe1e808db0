//! Typed settings: a TOML file, then `HERALD_<SECTION>__<KEY>` environment overrides, validated
//! once at start-up. Secrets are wrapped so they never print.
//!
//! The two layers are merged and read by `figment`. Its own `Env` provider is not used: it
//! reads the process's environment (start-up passes `std::env::vars()`, tests pass their own)
//! and guesses each value's type from its text, which made an app secret of digits a number.

use std::path::Path;
use std::time::Duration;

use figment::providers::Serialized;
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::Category;

mod sections;

pub use sections::{
    AuditSettings, AuthSettings, Backend, DeliverySettings, EmailSettings, EventsSettings,
    MessengerSettings, PageSettings, PolicySettings, ServerSettings, StorageSettings, TtlSettings,
};

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
        self.server.validate()?;
        self.messenger.validate()?;
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
        self.storage.validate()?;
        let pseudonyms = self.audit.pseudonyms()?;
        if mode == Mode::Sandbox {
            return Ok(());
        }
        self.required_to_serve(pseudonyms.is_some())
    }

    /// What `serve` needs and the sandbox makes up: the secrets, a pseudonym key, a page.
    fn required_to_serve(&self, has_pseudonyms: bool) -> Result<(), ConfigError> {
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
        if !has_pseudonyms {
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
mod tests;
