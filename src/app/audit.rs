//! The audit log as evidence: query, export, verify, checkpoint, retention and erasure.
//!
//! The functions that need only the store ([`export`], [`verify`]) take one, so that the CLI
//! runs them offline on a stopped gateway's store exactly as the HTTP API runs them.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, Stream};
use serde::Serialize;

use super::{CommandError, Herald};
use crate::domain::audit::{AuditEntry, AuditKind, ChainPoint, Verification};
use crate::domain::checkpoint::{Checkpoint, CheckpointSigner};
use crate::domain::lifecycle;
use crate::domain::recipient::{self, Change};
use crate::domain::Client;
use crate::domain::{MessageId, Psid};
use crate::store::{AuditCursor, AuditFilter, AuditLog, AuditOrder, AuditPage, StoreError};

/// Entries per page when none is asked for, and the most one page may hold.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1_000;

/// Entries read from the store per chunk of an export: the export holds one chunk at a time.
const EXPORT_CHUNK: usize = 1_000;

/// How many of a recipient's last decisions the recipient view shows.
const LAST_DECISIONS: usize = 10;

/// What the core knows about the audit log beyond the store: the keys and the retention.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// Signs checkpoints; `None`: checkpoints are not available.
    pub signer: Option<CheckpointSigner>,
    /// Entries older than this are pruned; `None`: kept forever.
    pub retention: Option<chrono::Duration>,
}

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(ExportFormat::Csv),
            "jsonl" => Ok(ExportFormat::Jsonl),
            _ => Err("must be csv or jsonl".into()),
        }
    }
}

impl ExportFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Jsonl => "application/jsonl",
        }
    }
}

/// The CSV columns, in their fixed order (documented in the README). Values that an entry does
/// not have are empty; erased values are empty and `erased` is `true`.
pub const CSV_COLUMNS: [&str; 29] = [
    "seq",
    "at",
    "kind",
    "message_id",
    "page_id",
    "recipient",
    "recipient_pseudonym",
    "client",
    "category",
    "outcome",
    "reason",
    "rule",
    "policy_version",
    "messaging_type",
    "tag",
    "graph_message_id",
    "graph_error_code",
    "graph_error_subcode",
    "content_sha256",
    "campaign",
    "status",
    "consent_id",
    "consent_source",
    "detail",
    "erased",
    "prev_hash",
    "hash",
    // The entry's chain when the store keeps several (PostgreSQL); empty with one.
    "chain",
    // `email` for the email fallback's decisions, tries and statuses; empty for Messenger.
    "channel",
];

fn csv_row(e: &AuditEntry) -> [String; 29] {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        e.seq.to_string(),
        e.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        e.kind.as_str().to_owned(),
        o(&e.message_id),
        o(&e.page_id),
        e.recipient().unwrap_or_default().to_owned(),
        o(&e.recipient_pseudonym),
        o(&e.client),
        e.category
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
        o(&e.outcome),
        o(&e.reason),
        o(&e.rule),
        o(&e.policy_version),
        o(&e.messaging_type),
        o(&e.tag),
        o(&e.graph_message_id),
        e.graph_error
            .as_ref()
            .map(|g| g.code.to_string())
            .unwrap_or_default(),
        e.graph_error
            .as_ref()
            .and_then(|g| g.subcode)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        o(&e.content_sha256),
        o(&e.campaign),
        e.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        o(&e.consent_id),
        o(&e.consent_source),
        o(&e.detail),
        e.erased().to_string(),
        e.prev_hash.clone(),
        e.hash.clone(),
        e.chain.map(|c| c.to_string()).unwrap_or_default(),
        o(&e.channel),
    ]
}

/// A cell a spreadsheet would read as a formula (`=HYPERLINK(…)` in a campaign's name, a
/// client's or a person's text) starts with a single quote instead, as OWASP recommends for CSV
/// injection: the export is opened by compliance officers, in spreadsheets.
fn neutralised(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// One chunk of an export, encoded; the CSV header goes with the first.
fn encode(
    entries: &[AuditEntry],
    format: ExportFormat,
    first: bool,
) -> Result<Vec<u8>, StoreError> {
    let encoding = |source: serde_json::Error| StoreError::Encode {
        what: "audit export",
        source: Arc::new(source),
    };
    match format {
        ExportFormat::Jsonl => {
            let mut out = Vec::with_capacity(entries.len() * 600);
            for e in entries {
                serde_json::to_writer(&mut out, &e.view()).map_err(encoding)?;
                out.push(b'\n');
            }
            Ok(out)
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::with_capacity(entries.len() * 500));
            let csv_error = |e: csv::Error| encoding(serde::ser::Error::custom(e.to_string()));
            if first {
                w.write_record(CSV_COLUMNS).map_err(csv_error)?;
            }
            for e in entries {
                w.write_record(csv_row(e).map(neutralised))
                    .map_err(csv_error)?;
            }
            w.into_inner()
                .map_err(|e| encoding(serde::ser::Error::custom(e.to_string())))
        }
    }
}

/// The entries matching `filter`, oldest first, as a stream of encoded chunks: one page is read
/// from the store per chunk, so memory stays flat however long the log.
pub fn export(
    log: Arc<dyn AuditLog>,
    filter: AuditFilter,
    format: ExportFormat,
) -> impl Stream<Item = Result<Vec<u8>, StoreError>> {
    struct State {
        log: Arc<dyn AuditLog>,
        filter: AuditFilter,
        cursor: Option<AuditCursor>,
        first: bool,
        done: bool,
    }
    let state = State {
        log,
        filter,
        cursor: None,
        first: true,
        done: false,
    };
    stream::try_unfold(state, move |mut s| async move {
        // A page may come back empty with a cursor (the walk's budget ran out): read on.
        while !s.done {
            let page = s
                .log
                .query(
                    &s.filter,
                    AuditOrder::OldestFirst,
                    s.cursor.as_ref(),
                    EXPORT_CHUNK,
                )
                .await?;
            s.done = page.next.is_none();
            s.cursor = page.next;
            if !page.entries.is_empty() || (s.first && s.done) {
                let chunk = encode(&page.entries, format, s.first)?;
                s.first = false;
                return Ok(Some((chunk, s)));
            }
        }
        Ok(None)
    })
}

/// Walks the chain; with `point`, also checks that the log still extends it.
pub async fn verify(
    log: &dyn AuditLog,
    point: Option<&ChainPoint>,
) -> Result<Verification, StoreError> {
    let mut v = log.verify().await?;
    if let Some(point) = point {
        let found = log.hash_at(point).await?;
        v.against(point, found.as_deref());
    }
    Ok(v)
}

/// One of a recipient's last decisions, as the recipient view shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionSummary {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub message_id: Option<String>,
    pub category: Option<crate::domain::Category>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub rule: Option<String>,
    pub policy_version: Option<String>,
    /// The consent that permitted it.
    pub consent_id: Option<String>,
    pub consent_source: Option<String>,
}

impl From<AuditEntry> for DecisionSummary {
    fn from(e: AuditEntry) -> Self {
        DecisionSummary {
            seq: e.seq,
            at: e.at,
            message_id: e.message_id,
            category: e.category,
            outcome: e.outcome,
            reason: e.reason,
            rule: e.rule,
            policy_version: e.policy_version,
            consent_id: e.consent_id,
            consent_source: e.consent_source,
        }
    }
}

/// What `DELETE /v1/recipients/{psid}` erased.
#[derive(Debug, Clone, Serialize)]
pub struct ErasureReport {
    pub psid: Psid,
    pub erased_at: DateTime<Utc>,
    /// The kinds of data erased.
    pub erased: Vec<&'static str>,
    /// Consent events whose evidence was erased (the events stay, as history).
    pub consents: usize,
    /// Messages whose content was erased; waiting ones among them were cancelled.
    pub messages: usize,
    /// Audit entries whose erasable values went; the chain still verifies.
    pub audit_entries: u64,
}

/// What retention pruned, as the retention entry records it.
#[derive(Debug, Clone, Serialize)]
pub struct Retention {
    pub pruned: u64,
    /// The chain now starts after this entry.
    pub through_seq: u64,
    pub through_hash: String,
}

impl Herald {
    /// The entries matching `filter`, encoded as `format`, a page at a time (see [`export`]).
    pub fn export_audit(
        &self,
        filter: AuditFilter,
        format: ExportFormat,
    ) -> impl Stream<Item = Result<Vec<u8>, StoreError>> {
        export(Arc::clone(&self.store.audit), filter, format)
    }

    /// Walks the audit chain, and checks it against a checkpoint when one is given (see
    /// [`verify`]).
    pub async fn verify_audit(
        &self,
        point: Option<&ChainPoint>,
    ) -> Result<Verification, StoreError> {
        verify(self.store.audit.as_ref(), point).await
    }

    /// A page of the audit log, in `order`.
    pub async fn audit(
        &self,
        filter: &AuditFilter,
        order: AuditOrder,
        cursor: Option<&AuditCursor>,
        limit: Option<usize>,
    ) -> Result<AuditPage, CommandError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        Ok(self.store.audit.query(filter, order, cursor, limit).await?)
    }

    /// The chain's head, signed.
    pub async fn checkpoint(&self) -> Result<Checkpoint, CommandError> {
        let signer = self.audit.signer.as_ref().ok_or_else(|| {
            CommandError::NotConfigured("audit.signing_key is not configured".into())
        })?;
        let head = self.store.audit.head().await?;
        Ok(signer.sign(&head, self.clock.now()))
    }

    /// The recipient's last decisions, newest first.
    pub(super) async fn last_decisions(
        &self,
        key: &str,
    ) -> Result<Vec<DecisionSummary>, StoreError> {
        let filter = AuditFilter {
            recipient: Some(key.to_owned()),
            kind: Some(AuditKind::Decision),
            ..AuditFilter::default()
        };
        let page = self
            .store
            .audit
            .query(&filter, AuditOrder::NewestFirst, None, LAST_DECISIONS)
            .await?;
        Ok(page
            .entries
            .into_iter()
            .map(DecisionSummary::from)
            .collect())
    }

    /// Prunes entries older than the retention, if one is configured, and records it in the
    /// chain. `None` when nothing was old enough.
    pub async fn apply_retention(&self) -> Result<Option<Retention>, StoreError> {
        let Some(keep) = self.audit.retention else {
            return Ok(None);
        };
        let now = self.clock.now();
        let Some(pruned) = self.store.audit.prune(now - keep).await? else {
            return Ok(None);
        };
        let retention = Retention {
            pruned: pruned.entries,
            through_seq: pruned.through.seq,
            through_hash: pruned.through.hash,
        };
        let entry = AuditEntry {
            at: now,
            kind: AuditKind::Retention,
            detail: Some(format!(
                "pruned {} entries older than {} days; the chain now starts after entry {} (hash {})",
                retention.pruned,
                keep.num_days(),
                retention.through_seq,
                retention.through_hash
            )),
            ..AuditEntry::default()
        };
        self.store.audit.append(vec![entry]).await?;
        Ok(Some(retention))
    }

    /// Drops the parked webhook events (kept for a retry) sent by or to `psid`.
    async fn forget_parked_events(&self, psid: &str) -> Result<(), StoreError> {
        /// Parked events are few (events whose first application failed): one read covers them.
        const PARKED_READ: usize = 100_000;
        for (id, parked) in self.store.recipients.parked_events(PARKED_READ).await? {
            let party = |side: &str| parked["event"][side]["id"].as_str() == Some(psid);
            if party("sender") || party("recipient") {
                self.store.recipients.unpark_event(id).await?;
            }
        }
        Ok(())
    }

    /// Erases the person's personal data: consent evidence, email, time zone, locale, tokens,
    /// message content (also in the answers kept for `Idempotency-Key` replays), and the
    /// erasable values of their audit entries. Their consents no
    /// longer count, so nothing is sent to them until a new one; waiting messages are
    /// cancelled. Each step can run again, so a failed erasure is finished by asking again.
    pub async fn erase_recipient(
        &self,
        client: &Client,
        psid: &Psid,
    ) -> Result<ErasureReport, CommandError> {
        let key = psid.as_str().to_owned();
        let record = self
            .store
            .recipients
            .recipient(&key)
            .await?
            .ok_or_else(|| CommandError::NotFound(format!("no recipient {psid}")))?;
        let now = self.clock.now();
        // First the consents: from here on nothing is decided to go to them.
        let erased = recipient::Event::Erased {
            client: client.name.clone(),
        };
        self.change_recipient(Change::of(key.as_str(), now, erased), None)
            .await?;
        let ids = self.message_ids_of(&key).await?;
        let messages = ids.len();
        self.store
            .messages
            .update_messages(
                ids.clone(),
                Box::new(move |m| Some(lifecycle::erase(m, now))),
            )
            .await?;
        // A replay of a send must not hand back what was just erased from the message.
        self.store.messages.erase_idempotency_answers(&ids).await?;
        // Webhook events of theirs kept for a retry (their words, their ids) go: applied later,
        // they would write the person back.
        self.forget_parked_events(psid.as_str()).await?;
        let audit_entries = self.store.audit.erase_personal(&key).await?;
        Ok(ErasureReport {
            psid: psid.clone(),
            erased_at: now,
            erased: vec![
                "consent_evidence",
                "email",
                "timezone",
                "locale",
                "marketing_token",
                "referral_refs",
                "message_content",
                "idempotency_answers",
                "parked_webhook_events",
                "audit_personal_values",
            ],
            consents: record.consents.len(),
            messages,
            audit_entries,
        })
    }

    /// Every message the audit log names for the recipient `key`.
    async fn message_ids_of(&self, key: &str) -> Result<Vec<MessageId>, StoreError> {
        let filter = AuditFilter {
            recipient: Some(key.to_owned()),
            ..AuditFilter::default()
        };
        let mut ids = BTreeSet::new();
        let mut cursor = None;
        loop {
            let page = self
                .store
                .audit
                .query(&filter, AuditOrder::OldestFirst, cursor.as_ref(), MAX_PAGE)
                .await?;
            ids.extend(
                page.entries
                    .iter()
                    .filter_map(|e| e.message_id.as_deref().and_then(MessageId::parse)),
            );
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(ids.into_iter().collect()),
            }
        }
    }
}
