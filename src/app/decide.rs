//! Facts → decision, written once: the accept path, `POST /v1/policy/evaluate` and the worker's
//! decision at send time all come through [`Herald::decide`].

use chrono::{DateTime, Utc};

use super::{Herald, Page};
use crate::domain::{
    ConsentRef, ConsentScope, ConsentSource, OutboundMessage, Recipient, RecipientRecord, Role,
    TokenStatus,
};
use crate::policy::{evaluate, Decision, Facts, MarketingToken, Outcome, PolicySet, RecentSend};
use crate::store::StoreError;

impl Herald {
    /// What the policy in force decides for `message`, sent by `role` as `page`, at `at`; a
    /// decision that lets the message go names the consent it rests on.
    pub async fn decide(
        &self,
        message: &OutboundMessage,
        page: &Page,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<Decision, StoreError> {
        let policy = self.policy();
        let (facts, record) = self
            .recipient_facts(&policy, &message.recipient, page, role, at)
            .await?;
        let mut decision = evaluate(&policy, message, &facts);
        self.metrics
            .decision(decision.outcome.as_str(), decision.reason.as_str());
        if decision.outcome != Outcome::Deny {
            let scope = if message.category.is_transactional() {
                ConsentScope::Transactional
            } else {
                ConsentScope::Marketing
            };
            decision.consent = record.permitting(scope).map(ConsentRef::from);
        }
        Ok(decision)
    }

    /// Everything the store knows about `recipient` that bears on what `role` may send them:
    /// the facts the policy reads, and the record they were read from.
    pub(super) async fn recipient_facts(
        &self,
        policy: &PolicySet,
        recipient: &Recipient,
        page: &Page,
        role: Role,
        at: DateTime<Utc>,
    ) -> Result<(Facts, RecipientRecord), StoreError> {
        let key = recipient.key();
        let since = crate::domain::bounds::earlier(at, policy.longest_frequency_window());
        let (record, recent_sends) = self
            .store
            .recipients
            .recipient_with_sends(&key, since)
            .await?;
        let record = record.unwrap_or_default();
        let facts = facts_from(&record, recent_sends, page.region.as_deref(), role, at);
        Ok((facts, record))
    }
}

/// The pure part: a recipient record seen as facts.
pub(super) fn facts_from(
    record: &RecipientRecord,
    recent_sends: Vec<RecentSend>,
    page_region: Option<&str>,
    role: Role,
    now: DateTime<Utc>,
) -> Facts {
    Facts {
        now,
        role,
        // "Consent on record" and "opted out since" are separate rules (consent comes first in
        // the rule order), so a withdrawn consent reads as opted_out, not as no_consent.
        transactional_consent: record.ever_granted(ConsentScope::Transactional),
        marketing_consent: record.ever_granted(ConsentScope::Marketing),
        transactional_consent_by_api: record
            .ever_granted_by(ConsentScope::Transactional, &ConsentSource::Api),
        marketing_consent_by_api: record
            .ever_granted_by(ConsentScope::Marketing, &ConsentSource::Api),
        transactional_opted_out: record.opted_out(ConsentScope::Transactional),
        marketing_opted_out: record.opted_out(ConsentScope::Marketing),
        unreachable: record.unreachable_since.is_some(),
        last_user_interaction_at: record.last_user_interaction_at,
        user_ref_optin_at: record.user_ref_optin_at,
        marketing_token: record.marketing_token.as_ref().map(|t| MarketingToken {
            stopped: t.status == TokenStatus::Stopped,
            last_sent_at: t.last_sent_at,
        }),
        page_region: page_region.map(str::to_owned),
        timezone: record.timezone.as_deref().and_then(|tz| tz.parse().ok()),
        recent_sends,
    }
}

impl Herald {
    /// `POST /v1/policy/evaluate`: the decision `message` would get from `role` at `at` (now,
    /// when not given), with its trace. Changes nothing, writes nothing.
    pub async fn evaluate(
        &self,
        message: &OutboundMessage,
        role: Role,
        at: Option<DateTime<Utc>>,
    ) -> Result<Decision, super::CommandError> {
        let page = self
            .resolve_page(message)
            .map_err(super::CommandError::Invalid)?;
        let at = at.unwrap_or_else(|| self.clock.now());
        Ok(self.decide(message, page, role, at).await?)
    }
}
