//! The application core between the HTTP handlers and the store: it gathers facts, asks the
//! policy engine, and writes the outcome. Handlers parse and answer; this module decides.

mod consent;
mod facts;
mod pages;
mod send;
mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;

use parking_lot::RwLock;
use tokio::sync::Notify;

pub use consent::{push_consent, ConsentRequest, OptOutScope};
pub use pages::{Page, Pages};
pub use send::{Accepted, SendRequest};
pub use webhook::WebhookOutcome;

use crate::policy::PolicySet;
use crate::store::{AuditEntry, AuditKind, Store, StoreError};

/// Shared state of a running Herald.
pub struct Herald {
    pub store: Arc<Store>,
    policy: RwLock<Arc<PolicySet>>,
    pub pages: Pages,
    /// Where the policy files are read from (and re-read on reload).
    pub policy_dir: PathBuf,
    /// Woken whenever the outbox gains an entry that may be due now.
    pub outbox_wake: Arc<Notify>,
}

impl Herald {
    pub fn new(store: Arc<Store>, policy: PolicySet, policy_dir: PathBuf, pages: Pages) -> Herald {
        Herald {
            store,
            policy: RwLock::new(Arc::new(policy)),
            pages,
            policy_dir,
            outbox_wake: Arc::new(Notify::new()),
        }
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<PolicySet> {
        Arc::clone(&self.policy.read())
    }

    /// Puts a new policy in force and records which, and who asked, in the audit log.
    pub async fn reload_policy(&self, policy: PolicySet, client: &str) -> Result<(), StoreError> {
        let entry = AuditEntry {
            at: Utc::now(),
            kind: AuditKind::Policy,
            client: Some(client.to_owned()),
            policy_version: Some(policy.version().to_owned()),
            detail: Some(format!("reloaded from {}", self.policy_dir.display())),
            ..AuditEntry::default()
        };
        self.store.append_audit(vec![entry]).await?;
        *self.policy.write() = Arc::new(policy);
        Ok(())
    }
}
