//! A try that failed: when (and whether) to try again, a page's pause, the breaker, the
//! fallback on an outage.

use super::Worker;
use crate::app::Processed;
use crate::delivery::{retry_delay, SendFailure};
use crate::domain::{Attempt, AttemptOutcome, MessageRecord};
use crate::messenger::ErrorClass;
use crate::store::StoreError;

impl Worker {
    /// A try failed: when (and whether) to try again is the delivery settings' and the
    /// answer's (`Retry-After`); a rate limit holds the whole page back; a page that keeps
    /// failing transiently is out (its breaker), and what may go by email goes by email.
    pub(super) async fn failed(
        &self,
        record: &MessageRecord,
        failure: SendFailure,
    ) -> Result<Processed, StoreError> {
        let now = self.now();
        let outage_after = self.herald.policy().outage_after();
        if failure.class == ErrorClass::Transient {
            self.breakers.failed(&record.page_id, now, outage_after);
        } else {
            self.graph_answered(record);
        }
        let attempts = u32::try_from(record.attempts.len()).unwrap_or(u32::MAX) + 1;
        let retryable = matches!(
            failure.class,
            ErrorClass::Transient | ErrorClass::RateLimited
        );
        let retry_at = (retryable && attempts < self.settings.max_attempts).then(|| {
            let delay = retry_delay(
                attempts,
                self.settings.retry_base(),
                self.settings.retry_max(),
                failure.retry_after,
            );
            crate::domain::bounds::later_std(now, delay)
        });
        if let (Some(until), ErrorClass::RateLimited) = (retry_at, failure.class) {
            // The limit is the page's, not this message's: hold back every send to it.
            self.pause_page(record.page_id.as_str(), until).await;
        }
        let attempt = Attempt {
            at: now,
            outcome: if retry_at.is_some() {
                AttemptOutcome::Retry
            } else {
                AttemptOutcome::Failed
            },
            http_status: failure.http_status,
            graph_error: failure.graph_error.as_ref().map(|e| e.record()),
            error: Some(format!("{}: {}", failure.class.as_str(), failure.detail)),
            next_attempt_at: retry_at,
            channel: crate::domain::Channel::Messenger,
            reply: None,
        };
        let out_since = self.breakers.open_since(&record.page_id, now, outage_after);
        if let (Some(since), Some(_)) = (out_since, retry_at) {
            // The page is out: rather than wait for a retry that would likely fail too, the
            // message goes by email if the fallback allows it.
            let attempt = Attempt {
                outcome: AttemptOutcome::Failed,
                next_attempt_at: None,
                ..attempt.clone()
            };
            let fell_back = self
                .herald
                .fall_back_on_outage(record, Some(attempt), since, now);
            if fell_back.await? {
                return Ok(Processed::Retrying);
            }
        }
        if let Some(next) = retry_at {
            // Only retries wake the loop at their time: a campaign's message stepping back
            // from a full page is looked at again with the next finished send, so that it does
            // not contend for the page's capacity with the transactional sends waiting for it;
            // a page's pause is long.
            self.expect_back(next);
            return self.herald.retry_later(record, attempt).await;
        }
        self.herald
            .settle_failure(record, attempt, failure.class)
            .await
    }
}
