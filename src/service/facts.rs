//! Gathering the [`Facts`] the policy engine decides from.

use chrono::{DateTime, Utc};

use super::Herald;
use crate::domain::{ConsentScope, Recipient, Role};
use crate::policy::{Facts, MarketingToken, PolicySet};
use crate::store::{RecipientRecord, StoreError, TokenStatus};

impl Herald {
    /// Everything the store knows about `recipient` that bears on a send from `page_id`.
    pub fn facts(
        &self,
        policy: &PolicySet,
        recipient: &Recipient,
        page_region: Option<&str>,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Facts, StoreError> {
        let key = recipient.key();
        let record = self.store.recipient(&key)?.unwrap_or_default();
        let since = now - policy.longest_frequency_window();
        let recent_sends = self.store.recent_sends(&key, since)?;
        Ok(facts_from(&record, recent_sends, page_region, role, now))
    }
}

/// The pure part: a recipient record seen as facts.
pub fn facts_from(
    record: &RecipientRecord,
    recent_sends: Vec<crate::policy::RecentSend>,
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
