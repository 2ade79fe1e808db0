//! Applying Messenger webhook events to what Herald knows about recipients and messages.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{Herald, WebhookError};
use crate::domain::lifecycle::{self, Event as LifecycleEvent, MessageStatus, Receipt};
use crate::domain::recipient::{self, Change};
use crate::domain::{Attribution, ConsentSource, PageId, Psid};
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

/// A webhook POST as Messenger made it: the body's bytes and its `X-Hub-Signature-256`. The
/// first inbound entry written for the POST keeps them (with `post_types`, the inbound event
/// types the POST holds), so that a `format: "messenger"` endpoint is sent the very body
/// Messenger signed.
#[derive(Debug, Clone, Copy)]
pub struct WebhookPost<'a> {
    pub body: &'a [u8],
    pub signature: Option<&'a str>,
}

/// What the first inbound entry of a POST carries besides its own event: `raw`, `signature`,
/// `post_types`. Empty once an entry took it.
fn post_values(
    post: WebhookPost<'_>,
    events: &[Event],
    for_page: impl Fn(&Event) -> bool,
) -> Map<String, Value> {
    let mut types: Vec<String> = Vec::new();
    for event in events.iter().filter(|e| for_page(e)) {
        if let Some((what, _)) = event.inbound() {
            let name = format!("inbound.{}", what.as_str());
            if !types.contains(&name) {
                types.push(name);
            }
        }
    }
    let mut values = Map::new();
    if types.is_empty() {
        return values;
    }
    // JSON is UTF-8 (the body parsed as JSON before it came here).
    values.insert(
        "raw".to_owned(),
        Value::String(String::from_utf8_lossy(post.body).into_owned()),
    );
    if let Some(signature) = post.signature {
        values.insert("signature".to_owned(), Value::String(signature.to_owned()));
    }
    values.insert("post_types".to_owned(), json!(types));
    values
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
    /// Messenger redelivers. Each message, postback, reaction and referral of a person is
    /// recorded (audit kind `inbound`) in the transaction of what it changes; with `post`, the
    /// first of them keeps the POST's bytes and signature (see [`WebhookPost`]).
    pub async fn apply_webhook(
        &self,
        body: &Value,
        post: Option<WebhookPost<'_>>,
    ) -> Result<WebhookOutcome, WebhookError> {
        let events = parse_envelope(body, self.clock.now())?;
        let mut outcome = WebhookOutcome::default();
        let mut post = post
            .map(|p| post_values(p, &events, |e| self.for_configured_page(e)))
            .filter(|values| !values.is_empty());
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
            match self.apply_event(&event, &mut post).await {
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
                // Parked, the POST's bytes are gone: the entry is written without them.
                ok &= self.apply_event(event, &mut None).await.is_ok();
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
    /// of a page Herald does not serve). `post`: what the first inbound entry of the POST
    /// keeps ([`post_values`]); taken by the entry that keeps it.
    async fn apply_event(
        &self,
        event: &Event,
        post: &mut Option<Map<String, Value>>,
    ) -> Result<bool, StoreError> {
        if !self.for_configured_page(event) {
            self.ignore_unknown_page(event);
            return Ok(false);
        }
        let page = Some(event.page_id.clone());
        if let EventKind::Optin(Optin::Checkbox {
            user_ref,
            reference,
        }) = &event.kind
        {
            let evidence = json!({"ref": reference, "user_ref": user_ref});
            let change = Change::of(
                format!("user_ref:{user_ref}"),
                event.timestamp,
                recipient::Event::CheckboxOptin { evidence },
            );
            self.change_recipient(change.on_page(page), None).await?;
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
            kind => self.apply_action(event, kind, key, post).await,
        }
    }

    /// Whoever holds the app secret of another page (or a page removed from the configuration)
    /// records no consent and opens no window here: the event is counted and dropped.
    fn ignore_unknown_page(&self, event: &Event) {
        self.metrics
            .webhook_ignored
            .with_label_values(&[event.kind.name(), "unknown_page"])
            .inc();
        tracing::debug!(
            kind = event.kind.name(),
            page = %event.page_id,
            "webhook event for a page not in [messenger.pages] ignored"
        );
    }

    /// A person's own action (a message, a postback, an opt-in, a referral…): what it is, for
    /// their record, and what it changes (the window, consents, opt-outs, tokens).
    async fn apply_action(
        &self,
        event: &Event,
        kind: &EventKind,
        key: &str,
        post: &mut Option<Map<String, Value>>,
    ) -> Result<bool, StoreError> {
        let policy = self.policy();
        let opts_out = opts_out_of_marketing(kind, &policy);
        let dedup_key = event.dedup_key();
        let seen = dedup_key.as_deref().map(|mid| SeenMid {
            mid,
            at: self.clock.now(),
        });
        let mut events = person_events(kind, event.timestamp, &policy);
        let mut keeps_post = false;
        if let Some((what, mut carried)) = event.inbound() {
            if let (Some(values), Value::Object(map)) = (post.as_ref(), &mut carried) {
                map.extend(values.clone());
                keeps_post = true;
            }
            // What they did first, then what it changed.
            events.insert(0, recipient::Event::Inbound { what, carried });
        }
        let change = Change {
            events,
            ..Change::new(key, event.timestamp).on_page(Some(event.page_id.clone()))
        };
        let applied = self.change_recipient(change, seen).await?;
        if applied && keeps_post {
            *post = None;
        }
        if applied && opts_out {
            // Counts against the campaign that reached them, for its opt-out guard.
            self.note_opt_out(key).await?;
        }
        Ok(applied)
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

/// What a user's own action is, for their record: the events it makes happen to them.
fn person_events(kind: &EventKind, at: DateTime<Utc>, policy: &PolicySet) -> Vec<recipient::Event> {
    let mut events = Vec::new();
    if kind.opens_window() {
        let source = match kind {
            EventKind::Optin(_) => ConsentSource::Plugin,
            EventKind::Referral(_) => ConsentSource::Referral,
            _ => ConsentSource::UserMessage,
        };
        events.push(recipient::Event::Acted {
            source,
            what: event_name(kind),
        });
    }
    match kind {
        EventKind::Message {
            text,
            referral,
            mid,
        } => {
            if let Some(text) = text {
                let keyword = keyword_form(text);
                if policy.is_stop_keyword(&keyword) {
                    events.push(recipient::Event::StopKeyword {
                        text: text.clone(),
                        mid: mid.clone(),
                    });
                }
                if policy.is_resume_keyword(&keyword) {
                    events.push(recipient::Event::ResumeKeyword {
                        text: text.clone(),
                        mid: mid.clone(),
                    });
                }
            }
            if let Some(referral) = referral {
                events.push(recipient::Event::Attributed(attribution(referral, at)));
            }
        }
        EventKind::Postback {
            referral: Some(referral),
            ..
        }
        | EventKind::Referral(referral) => {
            events.push(recipient::Event::Attributed(attribution(referral, at)));
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
            let evidence = json!({"title": title, "payload": payload, "status": status.map(|s| format!("{s:?}"))});
            let timezone = timezone.clone();
            events.push(match status {
                Some(status) => recipient::Event::Notifications {
                    stop: *status == NotificationStatus::Stop,
                    timezone,
                    evidence,
                },
                None => recipient::Event::MarketingOptin {
                    token: token.clone(),
                    expires_at: *expires_at,
                    frequency: frequency.clone(),
                    timezone,
                    evidence,
                },
            });
        }
        _ => {}
    }
    events
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
