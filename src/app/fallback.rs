//! The core's side of the email fallback (API.md, "Email fallback"): when Messenger cannot take a
//! message — the person is unreachable, it refused the message for good, or the page's Graph
//! API is out — the policy's `[fallback]` decides whether it goes by email; if so the message
//! stays queued on channel email and the worker hands it to the SMTP server.
//!
//! ```text
//!   Graph answer, final ──► fall_back_or_fail ──► evaluate_fallback ── allow ─► FallBack (queued, email)
//!   breaker open ─────────► fall_back_on_outage ─┘                  └─ deny ──► NoFallback (failed)
//!   worker claims it ─────► prepare_email (address, opt-out, render) ──► SMTP ──► emailed / email_failed
//! ```
//!
//! The switch to email is one durable write with the Messenger try that caused it, so a crash
//! after it sends the email on restart, once; before it, Messenger is tried again.

use chrono::{DateTime, Utc};

use super::decide::facts_from;
use super::deliver::{Prepared, Processed};
use super::Herald;
use crate::domain::lifecycle::Event;
use crate::domain::{
    Attempt, AttemptOutcome, Channel, ConsentRef, ConsentScope, MessageRecord, RecipientRecord,
};
use crate::email::{EmailContext, EmailTemplates, OutgoingEmail};
use crate::policy::{evaluate_fallback, Decision, FallbackCause, Outcome};
use crate::store::StoreError;

/// What the core needs to write an email: the templates and how the sender signs.
pub struct EmailSetup {
    pub templates: EmailTemplates,
    /// The display name of `[email] from` (`Shop` in `Shop <orders@shop.example>`).
    pub sender_name: Option<String>,
}

/// An email ready to hand to the SMTP server.
pub struct ReadyEmail {
    pub record: MessageRecord,
    pub email: OutgoingEmail,
}

impl Herald {
    /// Whether `[email]` is configured: without it nothing goes by email.
    pub fn email_configured(&self) -> bool {
        self.email.is_some()
    }

    /// The fallback's decision for `record`, which Messenger cannot take because of `cause`;
    /// `None` when email is not configured.
    async fn fallback_decision(
        &self,
        record: &MessageRecord,
        cause: &FallbackCause,
        at: DateTime<Utc>,
    ) -> Result<Option<Decision>, StoreError> {
        if self.email.is_none() {
            return Ok(None);
        }
        let person = self
            .store
            .recipients
            .recipient(&record.recipient.key())
            .await?
            .unwrap_or_default();
        let region = self
            .pages
            .get(&record.page_id)
            .and_then(|p| p.region.clone());
        let facts = facts_from(&person, Vec::new(), region.as_deref(), record.role, at);
        let policy = self.policy();
        let address = person.email.is_some();
        // Not counted with the send decisions (`herald_decisions_total`): the deliveries'
        // `fallback` result counts the switches.
        let mut decision = evaluate_fallback(&policy, record.category, &facts, address, cause);
        if decision.outcome == Outcome::Allow {
            decision.consent = person
                .permitting(ConsentScope::Transactional)
                .map(ConsentRef::from);
        }
        Ok(Some(decision))
    }

    /// Messenger answered `attempt` for good: the message goes by email if the fallback allows
    /// it, and fails otherwise (saying why not, when email is configured).
    pub(super) async fn fall_back_or_fail(
        &self,
        record: &MessageRecord,
        attempt: Attempt,
    ) -> Result<Processed, StoreError> {
        let at = attempt.at;
        let said = attempt.error.clone().unwrap_or_else(|| "no answer".into());
        let cause = FallbackCause::Refused(said);
        let event = match self.fallback_decision(record, &cause, at).await? {
            Some(decision) if decision.outcome == Outcome::Allow => Event::FallBack {
                attempt: Some(attempt),
                decision,
            },
            Some(decision) => Event::NoFallback { attempt, decision },
            None => Event::AttemptFailed(attempt),
        };
        let fell_back = matches!(event, Event::FallBack { .. });
        self.change_message(&record.id, event, at).await?;
        if fell_back {
            self.metrics.delivery("fallback", None);
            self.outbox_wake.notify_one();
            return Ok(Processed::Retrying);
        }
        Ok(Processed::Failed)
    }

    /// The page's Graph API has failed since `since`, for longer than the policy's
    /// `outage_after`: the message goes by email if the fallback allows it (with `attempt`, the
    /// try that just failed, if any). Returns whether it did; if not, nothing was written.
    pub(crate) async fn fall_back_on_outage(
        &self,
        record: &MessageRecord,
        attempt: Option<Attempt>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let cause = FallbackCause::Outage { since };
        let Some(decision) = self.fallback_decision(record, &cause, now).await? else {
            return Ok(false);
        };
        if decision.outcome != Outcome::Allow {
            return Ok(false);
        }
        let event = Event::FallBack { attempt, decision };
        let changed = self.change_message(&record.id, event, now).await?;
        if changed.is_some() {
            self.metrics.delivery("fallback", None);
            self.outbox_wake.notify_one();
        }
        Ok(changed.is_some())
    }

    /// The email for a claimed message on channel email: to the address on the person's
    /// consent, unless they opted out or were erased since the switch.
    pub(super) async fn prepare_email(
        &self,
        record: MessageRecord,
        now: DateTime<Utc>,
    ) -> Result<Prepared, StoreError> {
        let person: RecipientRecord = self
            .store
            .recipients
            .recipient(&record.recipient.key())
            .await?
            .unwrap_or_default();
        let ready = match (&self.email, person.email.clone()) {
            (None, _) => Err("email is no longer configured ([email])"),
            (_, None) => Err("no email address is on the person's consent any more"),
            _ if person.opted_out(ConsentScope::Transactional) => {
                Err("the person opted out of transactional messages before the email went")
            }
            (Some(setup), Some(to)) => Ok((setup, to)),
        };
        let (setup, to) = match ready {
            Ok(ready) => ready,
            Err(why) => return self.fail_for(&record, now, why).await.map(Prepared::Done),
        };
        let id = record.id.to_string();
        let rendered = setup.templates.render(&EmailContext {
            content: &record.content,
            category: record.category,
            message_id: &id,
            sender_name: setup.sender_name.as_deref(),
        });
        let rendered = match rendered {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "an email template failed");
                let why = format!("the email could not be written: {e}");
                return self.fail_for(&record, now, &why).await.map(Prepared::Done);
            }
        };
        let email = OutgoingEmail {
            to,
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            message_id: format!("{id}@herald"),
        };
        Ok(Prepared::Email(Box::new(ReadyEmail { record, email })))
    }

    /// The SMTP server took the email.
    pub(crate) async fn emailed(
        &self,
        ready: &ReadyEmail,
        reply: String,
        now: DateTime<Utc>,
    ) -> Result<Processed, StoreError> {
        let attempt = Attempt {
            reply: Some(reply),
            ..Attempt::by(Channel::Email, now, AttemptOutcome::Sent)
        };
        let to = ready.email.to.clone();
        // The claim goes with the record of the send, as for Messenger.
        self.store
            .messages
            .update_and_release(
                &ready.record.id,
                Box::new(move |r| {
                    crate::domain::lifecycle::apply(r, Event::Emailed { attempt, to }, now).ok()
                }),
            )
            .await?;
        self.metrics.delivery("emailed", None);
        Ok(Processed::Sent)
    }

    /// A try at the SMTP server failed: again at `attempt.next_attempt_at`, or for good.
    pub(crate) async fn email_failed(
        &self,
        record: &MessageRecord,
        attempt: Attempt,
    ) -> Result<Processed, StoreError> {
        let at = attempt.at;
        let retry = attempt.outcome == AttemptOutcome::Retry;
        self.change_message(&record.id, Event::AttemptFailed(attempt), at)
            .await?;
        self.metrics
            .delivery(if retry { "retry" } else { "failed" }, None);
        Ok(if retry {
            Processed::Retrying
        } else {
            Processed::Failed
        })
    }
}
