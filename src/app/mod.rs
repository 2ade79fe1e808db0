//! The application core: typed commands in, typed outcomes out, and no HTTP.
//!
//! Handlers, the CLI, a campaign scheduler or a second wire format call the core the same way:
//! [`Herald::accept`] a [`SendCommand`], [`Herald::cancel`] a message, [`Herald::record_consent`],
//! [`Herald::opt_out`], [`Herald::apply_webhook`], [`Herald::evaluate`],
//! [`Herald::sender_action`]. The core gathers facts, asks the policy engine (once, in
//! [`Herald::decide`]), moves messages through their lifecycle (`domain::lifecycle`) and writes
//! through the store's interfaces ([`Stores`]). Its errors are domain errors
//! ([`SendError`], [`CommandError`], [`WebhookError`]); only `routes/` and `error.rs` turn them
//! into status codes.

mod actions;
mod audit;
mod campaigns;
mod cluster;
mod consent;
mod decide;
mod deliver;
mod errors;
mod events;
mod fallback;
mod feed;
mod messages;
mod pages;
mod send;
mod status;
mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::Notify;

pub use actions::{SenderAction, SenderActionCommand, SenderActionError};
pub use audit::{
    export as export_audit, verify as verify_audit, AuditConfig, DecisionSummary, ErasureReport,
    ExportFormat, Retention, CSV_COLUMNS, DEFAULT_PAGE, MAX_PAGE,
};
pub use campaigns::{Audience, CampaignView, ListKind, NewCampaign};
pub use cluster::CLUSTER_CLIENT;
pub use consent::{ConsentCommand, ConsentView, OptOutScope, RecipientView};
pub(crate) use deliver::Prepared;
pub use deliver::Processed;
pub use errors::{CommandError, SendError, WebhookError};
pub use events::{EndpointHealth, EndpointPatch, EndpointView, NewEndpoint, Replay, TEST_EVENT};
pub use fallback::{EmailSetup, ReadyEmail};
pub use feed::{FeedPage, FeedQuery, FeedStart, FEED_DEFAULT_LIMIT, FEED_MAX_LIMIT};
pub use messages::MessageView;
pub use pages::{Page, Pages};
pub use send::{IdempotencyKey, SendCommand, WhenDeferred};
pub use status::{OperatorStatus, OutboxStatus, RecentDeliveries};
pub use webhook::{WebhookOutcome, WebhookPost};

use crate::clients::{GraphClient, WebhookClient};
use crate::clock::SharedClock;
use crate::configuration::TtlSettings;
use crate::domain::audit::{AuditEntry, AuditKind};
use crate::domain::Client;
use crate::metrics::Metrics;
use crate::policy::PolicySet;
use crate::store::{StoreError, Stores};
use crate::supervisor::{Supervisor, TaskHealth};

/// Shared state of a running Herald.
pub struct Herald {
    /// The store, one interface per kind of use.
    pub store: Stores,
    pub clock: SharedClock,
    policy: RwLock<Arc<PolicySet>>,
    pub pages: Pages,
    /// Where the policy files are read from (and re-read on reload).
    pub policy_dir: PathBuf,
    /// Woken whenever the outbox gains an entry that may be due now.
    pub outbox_wake: Arc<Notify>,
    /// Woken when a campaign is created or resumed, or an opt-out may trip a guard.
    pub campaigns_wake: Arc<Notify>,
    /// Woken when an event endpoint is created, changed or given work (a replay): the event
    /// dispatcher starts, stops or wakes its task.
    pub events_wake: Arc<Notify>,
    /// Posts events to the business's endpoints (the dispatcher's and the test route's).
    pub webhooks: WebhookClient,
    /// One campaign tick at a time (the scheduler's and a test's).
    campaign_ticks: tokio::sync::Mutex<()>,
    /// How long a message of each category may wait before it expires.
    ttl: TtlSettings,
    /// The Send API, for what goes out at once rather than through the outbox (sender
    /// actions).
    graph: GraphClient,
    /// The checkpoint key and the retention of the audit log.
    audit: AuditConfig,
    /// What `GET /metrics` exports; counted where things happen.
    pub metrics: Arc<Metrics>,
    /// The background tasks, restarted when they panic; `GET /readyz` reports them.
    pub tasks: Supervisor,
    /// The last policy reload published through the store that this instance acted on.
    policy_generation: std::sync::atomic::AtomicI64,
    /// A reload made here that the other instances have not been told of yet.
    unpublished: parking_lot::Mutex<Option<String>>,
    /// The email fallback's templates and sender, when `[email]` is configured.
    email: Option<EmailSetup>,
    /// Keys the recipient pseudonyms in logs; random per process, so a log line cannot be
    /// turned back into a PSID by hashing candidate PSIDs.
    log_key: [u8; 32],
}

/// What `GET /readyz` reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, or `not_ready` while a background task is down (then `/readyz` answers 503).
    pub status: &'static str,
    pub policy_version: String,
    pub audit_entries: u64,
    pub outbox: u64,
    /// Each background task and how it is doing.
    #[schema(value_type = Object)]
    pub tasks: std::collections::BTreeMap<&'static str, TaskHealth>,
}

impl Readiness {
    /// Whether every background task is running.
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// What the core is built from, besides the store, the clock and the policy in force.
pub struct CoreParts {
    /// Where the policy files are read from (and re-read on reload).
    pub policy_dir: PathBuf,
    pub pages: Pages,
    /// How long a message of each category may wait before it expires.
    pub ttl: TtlSettings,
    /// The Send API, for what goes out at once (sender actions).
    pub graph: GraphClient,
    /// The checkpoint key and the retention of the audit log.
    pub audit: AuditConfig,
    /// What `GET /metrics` exports.
    pub metrics: Arc<Metrics>,
    /// Posts events to the business's endpoints.
    pub webhooks: WebhookClient,
    /// The email fallback's templates, when `[email]` is configured.
    pub email: Option<EmailSetup>,
}

impl Herald {
    pub fn new(store: Stores, clock: SharedClock, policy: PolicySet, parts: CoreParts) -> Herald {
        let CoreParts {
            policy_dir,
            pages,
            ttl,
            graph,
            audit,
            metrics,
            webhooks,
            email,
        } = parts;
        let tasks = Supervisor::new(metrics.task_restarts.clone());
        Herald {
            tasks,
            policy_generation: std::sync::atomic::AtomicI64::new(0),
            unpublished: parking_lot::Mutex::new(None),
            store,
            clock,
            policy: RwLock::new(Arc::new(policy)),
            pages,
            policy_dir,
            outbox_wake: Arc::new(Notify::new()),
            campaigns_wake: Arc::new(Notify::new()),
            events_wake: Arc::new(Notify::new()),
            webhooks,
            campaign_ticks: tokio::sync::Mutex::new(()),
            ttl,
            graph,
            audit,
            metrics,
            email,
            log_key: rand::random(),
        }
    }

    /// How logs name a recipient: `r_` and 12 hex digits of a keyed hash, the same for the
    /// same person for the life of the process, never the PSID itself.
    pub fn pseudonym(&self, recipient: &crate::domain::Recipient) -> String {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&self.log_key) else {
            return "r_unknown".into();
        };
        mac.update(recipient.key().as_bytes());
        let digest = hex::encode(mac.finalize().into_bytes());
        format!("r_{}", &digest[..12])
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<PolicySet> {
        Arc::clone(&self.policy.read())
    }

    /// Loads the policy files anew and puts them in force, recording which and who asked in
    /// the audit log; a bad file keeps the old policy. Returns the new version. The other
    /// instances sharing the store are told to do the same (now, or at a later round when the
    /// store cannot be reached now: the reload here has happened either way).
    pub async fn reload_policy(&self, client: &Client) -> Result<String, CommandError> {
        let version = self.load_policy(client).await?;
        self.publish_reload(&version).await;
        Ok(version)
    }

    /// Loads the policy files anew and puts them in force, audited under `client`.
    async fn load_policy(&self, client: &Client) -> Result<String, CommandError> {
        let policy = PolicySet::load_dir(&self.policy_dir).map_err(CommandError::Policy)?;
        let version = policy.version().to_owned();
        let entry = AuditEntry {
            at: self.clock.now(),
            kind: AuditKind::Policy,
            client: Some(client.name.clone()),
            policy_version: Some(version.clone()),
            detail: Some(format!("reloaded from {}", self.policy_dir.display())),
            ..AuditEntry::default()
        };
        self.store.audit.append(vec![entry]).await?;
        *self.policy.write() = Arc::new(policy);
        Ok(version)
    }

    /// The store answers and a policy is loaded.
    pub async fn readiness(&self) -> Result<Readiness, StoreError> {
        let down = self.tasks.down();
        Ok(Readiness {
            status: if down.is_empty() {
                "ready"
            } else {
                "not_ready"
            },
            tasks: self.tasks.health(),
            policy_version: self.policy().version().to_owned(),
            audit_entries: self.store.audit.head().await?.seq,
            outbox: self.store.outbox.outbox_len().await?,
        })
    }
}
