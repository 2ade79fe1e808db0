//! The core's side of delivering one message. The delivery worker paces pages and calls the
//! Graph API; what it sends and everything that changes state is decided here: before a send,
//! whether the message still goes (settled, expired, its campaign cancelled or paused, its page
//! gone, decided again if it was deferred) and what exactly goes (the decision, the token, the
//! rendered body); after it, what the answer means for the message (`domain::lifecycle`), for
//! the person (`domain::recipient`) and for the campaign's opt-out guard.
//!
//! ```text
//!   worker ── prepare_delivery ──► Ready (record, body, token) ──► pace, Graph API
//!     │                                                              │
//!     └── sent / retry_later / settle_failure ◄──────────────────────┘
//!                                   └─ Messenger cannot take it: email? (`fallback.rs`)
//! ```

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};

use super::fallback::ReadyEmail;
use super::Herald;
use crate::domain::campaign::CampaignStatus;
use crate::domain::lifecycle::{self, Event};
use crate::domain::recipient::{self, Change};
use crate::domain::{
    bounds, Attempt, AttemptOutcome, Channel, MessageId, MessageRecord, MessageStatus,
    OutboundMessage, TokenStatus,
};
use crate::messenger::{render, ErrorClass, RenderTarget};
use crate::policy::{Outcome, Via};
use crate::store::{Claimed, StoreError};

/// What processing one outbox entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    Sent,
    /// A transient failure or a paused page: back in the outbox for later.
    Retrying,
    Failed,
    /// Decided again and deferred again.
    Deferred,
    /// Decided again and denied.
    Denied,
    /// Its time ran out before it could be sent.
    Expired,
    /// Nothing to do (already handled, or gone).
    Skipped,
}

/// How often a message of a paused campaign is looked at again.
const PAUSED_CAMPAIGN_RECHECK_SECONDS: i64 = 5;

/// A message ready to be handed to the Graph API.
pub struct Ready {
    pub record: MessageRecord,
    /// The page's access token.
    pub access_token: SecretString,
    /// The Send API request body.
    pub body: Value,
    /// Sent on the person's Marketing Messages token, not to their PSID.
    pub via_token: bool,
}

/// What the worker does with a claimed message.
pub enum Prepared {
    Send(Box<Ready>),
    /// It goes by email (Messenger could not take it).
    Email(Box<ReadyEmail>),
    /// Nothing to send: what became of it.
    Done(Processed),
}

impl Herald {
    /// Applies a lifecycle event to the stored message, durably; `None` when the message is
    /// unknown or the event does not apply to it.
    pub(crate) async fn change_message(
        &self,
        id: &MessageId,
        event: Event,
        at: DateTime<Utc>,
    ) -> Result<Option<MessageRecord>, StoreError> {
        self.store
            .messages
            .update_message(id, Box::new(move |r| lifecycle::apply(r, event, at).ok()))
            .await
    }

    /// Whether and what to send of the claimed message, as of `now` (its record read with the
    /// claim, or read here).
    pub(crate) async fn prepare_delivery(
        &self,
        claimed: Claimed,
        now: DateTime<Utc>,
    ) -> Result<Prepared, StoreError> {
        let Claimed { id, record } = claimed;
        let id = &id;
        let record = match record {
            Some(record) => record,
            None => match self.store.messages.message(id).await? {
                Some(record) => record,
                None => return Ok(Prepared::Done(Processed::Skipped)),
            },
        };
        let span = tracing::Span::current();
        span.record("page", record.page_id.as_str());
        span.record("recipient", self.pseudonym(&record.recipient).as_str());
        if !record.status.is_pending() {
            // Already settled: only the outbox entry is left to tidy.
            self.store
                .messages
                .update_message(id, Box::new(|r| lifecycle::tidy(r)))
                .await?;
            return Ok(Prepared::Done(Processed::Skipped));
        }
        if lifecycle::is_expired(&record, now) {
            self.change_message(id, Event::Expire, now).await?;
            self.metrics.delivery("expired", None);
            return Ok(Prepared::Done(Processed::Expired));
        }
        let respect_quiet_hours = match self.campaign_gate(&record, now).await? {
            Ok(respect) => respect,
            Err(done) => return Ok(done),
        };
        if record.channel == Channel::Email {
            return self.prepare_email(record, now).await;
        }
        let Some(page) = self.pages.get(&record.page_id) else {
            let failed = self.fail_for(&record, now, "the page is no longer configured");
            return failed.await.map(Prepared::Done);
        };
        let decision = if record.status == MessageStatus::Deferred {
            match self
                .decide_again(&record, page, respect_quiet_hours, now)
                .await?
            {
                Ok(decision) => decision,
                Err(done) => return Ok(done),
            }
        } else {
            record.decision.clone()
        };
        let token = match decision.via {
            Via::Recipient => None,
            Via::MarketingToken => match self.active_token(&record).await? {
                Some(token) => Some(token),
                None => {
                    let failed = self.fail_for(&record, now, "no active Marketing Messages token");
                    return failed.await.map(Prepared::Done);
                }
            },
        };
        let target = match &token {
            Some(t) => RenderTarget::MarketingToken(t),
            None => RenderTarget::Recipient(&record.recipient),
        };
        let body = render(&record.content, &decision, target);
        Ok(Prepared::Send(Box::new(Ready {
            access_token: page.access_token.clone(),
            body,
            via_token: token.is_some(),
            record,
        })))
    }

    /// What the message's campaign says: cancelled (the message is too), paused (it steps
    /// aside), or go on, respecting quiet hours or not (`Ok`). A message of no campaign goes on.
    async fn campaign_gate(
        &self,
        record: &MessageRecord,
        now: DateTime<Utc>,
    ) -> Result<Result<bool, Prepared>, StoreError> {
        let Some(campaign) = &record.campaign else {
            return Ok(Ok(true));
        };
        let id = &record.id;
        match self.store.campaigns.campaign(campaign).await? {
            Some(c) if c.status == CampaignStatus::Cancelled => {
                self.change_message(id, Event::Cancel, now).await?;
                Ok(Err(Prepared::Done(Processed::Skipped)))
            }
            Some(c) if c.status == CampaignStatus::Paused => {
                let seconds = chrono::Duration::seconds(PAUSED_CAMPAIGN_RECHECK_SECONDS);
                let later = bounds::later(now, seconds);
                // Not its turn: the person's other messages go meanwhile.
                self.change_message(id, Event::SetAside(later), now).await?;
                Ok(Err(Prepared::Done(Processed::Retrying)))
            }
            Some(c) => Ok(Ok(c.respect_quiet_hours)),
            None => Ok(Ok(true)),
        }
    }

    /// A deferred message's moment has come: the policy decides again with today's facts. The
    /// decision when it allows the message now (`Ok`), else what became of it.
    async fn decide_again(
        &self,
        record: &MessageRecord,
        page: &super::Page,
        respect_quiet_hours: bool,
        now: DateTime<Utc>,
    ) -> Result<Result<crate::policy::Decision, Prepared>, StoreError> {
        let message = OutboundMessage {
            page_id: Some(page.id.clone()),
            recipient: record.recipient.clone(),
            category: record.category,
            content: record.content.clone(),
            utility_template: record.utility_template.clone(),
            send_at: None,
            expires_at: record.expires_at,
            respect_quiet_hours,
        };
        let decision = self.decide(&message, page, record.role, now).await?;
        let outcome = decision.outcome;
        let decided = self.change_message(&record.id, Event::Decided(decision), now);
        let Some(updated) = decided.await? else {
            return Ok(Err(Prepared::Done(Processed::Skipped)));
        };
        Ok(match outcome {
            Outcome::Allow => Ok(updated.decision),
            Outcome::Deny => Err(Prepared::Done(Processed::Denied)),
            Outcome::Defer => Err(Prepared::Done(Processed::Deferred)),
        })
    }

    /// The person's Marketing Messages token, if it is active.
    async fn active_token(&self, record: &MessageRecord) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .recipients
            .recipient(&record.recipient.key())
            .await?
            .and_then(|r| r.marketing_token)
            .filter(|t| t.status == TokenStatus::Active)
            .map(|t| t.token))
    }

    /// Not now (the page is paused or busy, the campaign is paused): looked at again `until`.
    pub(crate) async fn postpone(
        &self,
        id: &MessageId,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Processed, StoreError> {
        self.change_message(id, Event::Postpone(until), now).await?;
        Ok(Processed::Retrying)
    }

    /// The Graph API took the message.
    pub(crate) async fn sent(
        &self,
        ready: &Ready,
        graph_message_id: String,
        now: DateTime<Utc>,
    ) -> Result<Processed, StoreError> {
        let record = &ready.record;
        let event = Event::Sent { graph_message_id };
        // The claim goes with the record of the send: the worker does not release it after.
        self.store
            .messages
            .update_and_release(
                &record.id,
                Box::new(move |r| lifecycle::apply(r, event, now).ok()),
            )
            .await?;
        self.metrics.delivery("sent", None);
        if ready.via_token {
            let used = Change::of(record.recipient.key(), now, recipient::Event::TokenUsed);
            self.change_recipient(used, None).await?;
        }
        Ok(Processed::Sent)
    }

    /// A try failed and will be made again at `attempt.next_attempt_at`.
    pub(crate) async fn retry_later(
        &self,
        record: &MessageRecord,
        attempt: Attempt,
    ) -> Result<Processed, StoreError> {
        let code = attempt.graph_error.as_ref().map(|e| e.code);
        self.change_message(
            &record.id,
            Event::AttemptFailed(attempt.clone()),
            attempt.at,
        )
        .await?;
        self.metrics.delivery("retry", code);
        self.metrics.retries.inc();
        Ok(Processed::Retrying)
    }

    /// Fails a message for a reason of Herald's own (nothing was sent), on its channel.
    pub(crate) async fn fail_for(
        &self,
        record: &MessageRecord,
        now: DateTime<Utc>,
        why: &str,
    ) -> Result<Processed, StoreError> {
        let attempt = Attempt {
            error: Some(why.to_owned()),
            ..Attempt::by(record.channel, now, AttemptOutcome::Failed)
        };
        self.change_message(&record.id, Event::AttemptFailed(attempt), now)
            .await?;
        self.metrics.delivery("failed", None);
        Ok(Processed::Failed)
    }

    /// Messenger's answer was final: the message goes by email if the fallback allows it, and
    /// fails otherwise; either way Herald learns what the error says about the recipient.
    pub(crate) async fn settle_failure(
        &self,
        record: &MessageRecord,
        attempt: Attempt,
        class: ErrorClass,
    ) -> Result<Processed, StoreError> {
        let now = attempt.at;
        if class == ErrorClass::Auth {
            tracing::error!(page = %record.page_id, error = ?attempt.error, "the Graph API refused the page's credentials or permissions");
        }
        let code = attempt.graph_error.as_ref().map(|e| e.code);
        let error = attempt.graph_error.clone();
        let processed = self.fall_back_or_fail(record, attempt).await?;
        if processed == Processed::Failed {
            self.metrics.delivery("failed", code);
        }
        let key = record.recipient.key();
        match class {
            ErrorClass::Unreachable => {
                let unreachable = recipient::Event::Unreachable { error };
                let change = Change::of(key.as_str(), now, unreachable)
                    .on_page(Some(record.page_id.to_string()));
                self.change_recipient(change, None).await?;
                // A block counts against a campaign's opt-out guard: this message's, or the
                // one that reached the person last.
                match &record.campaign {
                    Some(campaign) => self.count_opt_out(campaign).await?,
                    None => self.note_opt_out(&key).await?,
                }
            }
            ErrorClass::TokenStopped => {
                let stopped = recipient::Event::TokenStopped {
                    evidence: json!({"graph_error": "10/1893015", "message_id": record.id}),
                };
                let change =
                    Change::of(key, now, stopped).on_page(Some(record.page_id.to_string()));
                self.change_recipient(change, None).await?;
            }
            _ => {}
        }
        Ok(processed)
    }
}
