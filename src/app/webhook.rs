//! Applying Messenger webhook events to what Herald knows about recipients and messages.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::consent::push_consent;
use super::{Herald, WebhookError};
use crate::domain::audit::AuditEntry;
use crate::domain::lifecycle::{self, Event as LifecycleEvent, MessageStatus, Receipt};
use crate::domain::{
    Attribution, ConsentAction, ConsentEvent, ConsentScope, ConsentSource, PageId, Psid,
    RecipientRecord, TokenRecord, TokenStatus,
};
use crate::messenger::{
    keyword_form, parse_envelope, Event, EventKind, NotificationStatus, Optin, Referral,
};
use crate::policy::PolicySet;
use crate::store::{SeenMid, StoreError};

/// How many of a recipient's latest messages a watermark receipt may move.
const RECEIPT_CANDIDATES: usize = 500;

/// What became of one webhook delivery.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WebhookOutcome {
    pub applied: usize,
    /// Already seen (same `mid`) or nothing to do.
    pub skipped: usize,
    /// Failed to apply, kept for a retry.
    pub parked: usize,
}

fn grant(
    scope: ConsentScope,
    source: ConsentSource,
    evidence: Value,
    at: DateTime<Utc>,
) -> ConsentEvent {
    ConsentEvent {
        id: ConsentEvent::new_id(),
        scope,
        action: ConsentAction::Grant,
        source,
        evidence,
        at,
        client: None,
    }
}

fn opt_out(
    scope: ConsentScope,
    source: ConsentSource,
    evidence: Value,
    at: DateTime<Utc>,
) -> ConsentEvent {
    ConsentEvent {
        action: ConsentAction::OptOut,
        ..grant(scope, source, evidence, at)
    }
}

fn attribution(r: &Referral, at: DateTime<Utc>) -> Attribution {
    Attribution {
        reference: r.reference.clone(),
        source: r.source.clone(),
        ad_id: r.ad_id.clone(),
        at,
    }
}

impl Herald {
    /// Applies every event of a verified webhook body. An event that fails to apply is parked
    /// in the store for a retry; only if parking fails too is the whole call an error, so that
    /// Messenger redelivers.
    pub async fn apply_webhook(&self, body: &Value) -> Result<WebhookOutcome, WebhookError> {
        let events = parse_envelope(body, self.clock.now())?;
        let mut outcome = WebhookOutcome::default();
        for event in events {
            self.metrics
                .webhook_events
                .with_label_values(&[event.kind.name()])
                .inc();
            for field in &event.out_of_range {
                self.metrics
                    .webhook_moments_out_of_range
                    .with_label_values(&[field])
                    .inc();
                tracing::warn!(
                    field,
                    kind = event.kind.name(),
                    page = %event.page_id,
                    "a webhook event reported a moment out of range; bounded (see docs/api.md, webhooks)"
                );
            }
            match self.apply_event(&event).await {
                Ok(true) => outcome.applied += 1,
                Ok(false) => outcome.skipped += 1,
                Err(e) => {
                    tracing::warn!(error = %e, page = %event.page_id, "webhook event parked for retry");
                    let parked = json!({"page_id": event.page_id, "event": event.raw});
                    self.store.recipients.park_event(&parked).await?;
                    outcome.parked += 1;
                }
            }
        }
        Ok(outcome)
    }

    /// Retries parked events; returns how many applied.
    pub async fn retry_parked_events(&self) -> Result<usize, StoreError> {
        let mut applied = 0;
        for (id, parked) in self.store.recipients.parked_events(100).await? {
            let page_id = parked
                .get("page_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let body = json!({"object": "page", "entry": [{"id": page_id, "messaging": [parked["event"]]}]});
            let Ok(events) = parse_envelope(&body, self.clock.now()) else {
                self.store.recipients.unpark_event(id).await?;
                continue;
            };
            let mut ok = true;
            for event in &events {
                ok &= self.apply_event(event).await.is_ok();
            }
            if ok {
                self.store.recipients.unpark_event(id).await?;
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// Whether the event is for a page of `[messenger.pages]`: its entry's page and, but on an
    /// echo (which the page sends), the page it was sent to.
    fn for_configured_page(&self, event: &Event) -> bool {
        let configured = |id: &str| PageId::parse(id).is_ok_and(|id| self.pages.get(&id).is_some());
        let to_page = match (&event.kind, event.recipient.as_deref()) {
            (EventKind::Echo { .. }, _) | (_, None) => true,
            (_, Some(recipient)) => configured(recipient),
        };
        configured(&event.page_id) && to_page
    }

    /// Applies one event; `Ok(false)` when it changed nothing (a redelivery, an echo, an event
    /// of a page Herald does not serve).
    async fn apply_event(&self, event: &Event) -> Result<bool, StoreError> {
        if !self.for_configured_page(event) {
            // Whoever holds the app secret of another page (or a page removed from the
            // configuration) records no consent and opens no window here.
            self.metrics
                .webhook_ignored
                .with_label_values(&[event.kind.name(), "unknown_page"])
                .inc();
            tracing::debug!(
                kind = event.kind.name(),
                page = %event.page_id,
                "webhook event for a page not in [messenger.pages] ignored"
            );
            return Ok(false);
        }
        let at = event.timestamp;
        let page = Some(event.page_id.as_str());
        if let EventKind::Optin(Optin::Checkbox {
            user_ref,
            reference,
        }) = &event.kind
        {
            let key = format!("user_ref:{user_ref}");
            let evidence = json!({"ref": reference, "user_ref": user_ref});
            let (entry_key, page) = (key.clone(), page.map(str::to_owned));
            self.store
                .recipients
                .update_recipient(
                    &key,
                    None,
                    Box::new(move |r| {
                        r.user_ref_optin_at = Some(r.user_ref_optin_at.map_or(at, |t| t.max(at)));
                        let e = grant(
                            ConsentScope::Transactional,
                            ConsentSource::Plugin,
                            evidence,
                            at,
                        );
                        vec![push_consent(r, &entry_key, e, page.as_deref())]
                    }),
                )
                .await?;
            return Ok(true);
        }
        let Some(psid) = event.sender.as_deref().and_then(|s| Psid::parse(s).ok()) else {
            return Ok(false);
        };
        let key = psid.as_str();
        match &event.kind {
            EventKind::Delivery { mids, watermark } => {
                let receipt = Receipt {
                    status: MessageStatus::Delivered,
                    mids: mids.clone(),
                    watermark: *watermark,
                };
                Ok(self.apply_receipt(key, receipt).await? > 0)
            }
            EventKind::Read { watermark } => {
                let receipt = Receipt {
                    status: MessageStatus::Read,
                    mids: Vec::new(),
                    watermark: *watermark,
                };
                Ok(self.apply_receipt(key, receipt).await? > 0)
            }
            EventKind::Echo { .. } | EventKind::Other(_) | EventKind::Optin(Optin::Other(_)) => {
                Ok(false)
            }
            kind => {
                let policy = self.policy();
                let opts_out = opts_out_of_marketing(kind, &policy);
                let seen = kind.mid().map(|mid| SeenMid {
                    mid,
                    at: self.clock.now(),
                });
                let (entry_key, kind, page) =
                    (key.to_owned(), kind.clone(), page.map(str::to_owned));
                let applied = self
                    .store
                    .recipients
                    .update_recipient(
                        key,
                        seen,
                        Box::new(move |r| {
                            user_event(r, &entry_key, &kind, at, page.as_deref(), &policy)
                        }),
                    )
                    .await?;
                if applied && opts_out {
                    // Counts against the campaign that reached them, for its opt-out guard.
                    self.note_opt_out(key).await?;
                }
                Ok(applied)
            }
        }
    }

    /// Moves the messages a delivery or read receipt covers: those it names, and the
    /// recipient's latest ones sent at or before its watermark. Returns how many moved.
    async fn apply_receipt(&self, key: &str, receipt: Receipt) -> Result<usize, StoreError> {
        let mut candidates = self
            .store
            .recipients
            .recent_message_ids(key, RECEIPT_CANDIDATES)
            .await?;
        candidates.extend(
            self.store
                .messages
                .messages_by_graph_ids(&receipt.mids)
                .await?,
        );
        candidates.sort();
        candidates.dedup();
        let at = self.clock.now();
        self.store
            .messages
            .update_messages(
                candidates,
                Box::new(move |record| {
                    lifecycle::apply(record, LifecycleEvent::Receipt(receipt.clone()), at).ok()
                }),
            )
            .await
    }
}

/// How a user's own action changes their record; returns the audit entries it produces.
fn user_event(
    r: &mut RecipientRecord,
    key: &str,
    kind: &EventKind,
    at: DateTime<Utc>,
    page: Option<&str>,
    policy: &Arc<PolicySet>,
) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    if kind.opens_window() {
        // Measured from Messenger's own timestamp; an older, late event never moves it back.
        r.last_user_interaction_at = Some(r.last_user_interaction_at.map_or(at, |t| t.max(at)));
        r.unreachable_since = None;
        if !r.has_consent(ConsentScope::Transactional) && !r.opted_out(ConsentScope::Transactional)
        {
            let source = match kind {
                EventKind::Optin(_) => ConsentSource::Plugin,
                EventKind::Referral(_) => ConsentSource::Referral,
                _ => ConsentSource::UserMessage,
            };
            let e = grant(
                ConsentScope::Transactional,
                source,
                json!({"event": event_name(kind)}),
                at,
            );
            entries.push(push_consent(r, key, e, page));
        }
    }
    match kind {
        EventKind::Message {
            text,
            referral,
            mid,
        } => {
            let keyword = text.as_deref().map(keyword_form);
            let keyword = keyword.as_deref();
            if let Some(text) = text
                .as_deref()
                .filter(|_| keyword.is_some_and(|k| policy.is_stop_keyword(k)))
            {
                let e = opt_out(
                    ConsentScope::Marketing,
                    ConsentSource::StopKeyword,
                    json!({"keyword": text.trim(), "mid": mid}),
                    at,
                );
                entries.push(push_consent(r, key, e, page));
            }
            let resumes = keyword.is_some_and(|k| policy.is_resume_keyword(k));
            // A resume keyword lifts an opt-out made by a stop keyword, and only that: it does
            // not invent a marketing consent that was never given.
            let stopped_by_keyword = r
                .consents
                .iter()
                .rev()
                .find(|c| c.scope == ConsentScope::Marketing)
                .is_some_and(|c| {
                    c.action == ConsentAction::OptOut && c.source == ConsentSource::StopKeyword
                });
            if resumes && stopped_by_keyword && r.ever_granted(ConsentScope::Marketing) {
                let e = grant(
                    ConsentScope::Marketing,
                    ConsentSource::StopKeyword,
                    json!({"resume_keyword": text.as_deref().map(str::trim), "mid": mid}),
                    at,
                );
                entries.push(push_consent(r, key, e, page));
            }
            if let Some(referral) = referral {
                r.attributions.push(attribution(referral, at));
            }
        }
        EventKind::Postback {
            referral: Some(referral),
            ..
        }
        | EventKind::Referral(referral) => {
            r.attributions.push(attribution(referral, at));
        }
        EventKind::Optin(Optin::Marketing {
            token,
            status,
            timezone,
            frequency,
            expires_at,
            title,
            payload,
        }) => {
            if let Some(tz) = timezone
                .as_ref()
                .filter(|tz| tz.parse::<chrono_tz::Tz>().is_ok())
            {
                r.timezone = Some(tz.clone());
            }
            let evidence = json!({"title": title, "payload": payload, "status": status.map(|s| format!("{s:?}"))});
            match status {
                Some(status) => {
                    let (token_status, action) = match status {
                        NotificationStatus::Stop => (TokenStatus::Stopped, ConsentAction::OptOut),
                        NotificationStatus::Resume => (TokenStatus::Active, ConsentAction::Grant),
                    };
                    if let Some(t) = r.marketing_token.as_mut() {
                        t.status = token_status;
                    }
                    let e = ConsentEvent {
                        action,
                        ..grant(
                            ConsentScope::Marketing,
                            ConsentSource::NotificationSettings,
                            evidence,
                            at,
                        )
                    };
                    entries.push(push_consent(r, key, e, page));
                }
                None => {
                    if let Some(token) = token {
                        r.marketing_token = Some(TokenRecord {
                            token: token.clone(),
                            status: TokenStatus::Active,
                            page_id: page.unwrap_or_default().to_owned(),
                            created_at: at,
                            expires_at: *expires_at,
                            frequency: frequency.clone(),
                            last_sent_at: None,
                        });
                    }
                    let e = grant(
                        ConsentScope::Marketing,
                        ConsentSource::MarketingOptin,
                        evidence,
                        at,
                    );
                    entries.push(push_consent(r, key, e, page));
                }
            }
        }
        _ => {}
    }
    entries
}

/// A stop keyword, or "Stop notifications" on a Marketing Messages token.
fn opts_out_of_marketing(kind: &EventKind, policy: &PolicySet) -> bool {
    match kind {
        EventKind::Message {
            text: Some(text), ..
        } => policy.is_stop_keyword(&keyword_form(text)),
        EventKind::Optin(Optin::Marketing { status, .. }) => {
            *status == Some(NotificationStatus::Stop)
        }
        _ => false,
    }
}

fn event_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Message { .. } => "message",
        EventKind::Postback { .. } => "postback",
        EventKind::Reaction { .. } => "reaction",
        EventKind::Referral(_) => "referral",
        EventKind::Optin(_) => "optin",
        _ => "other",
    }
}
