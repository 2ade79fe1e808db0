//! The worker's email: a message on channel email goes to the SMTP server, and a failure is
//! tried again as a Graph failure would be (see `app/fallback.rs` for when a message goes by
//! email).

use super::Worker;
use crate::app::{Processed, ReadyEmail};
use crate::clients::SmtpFailure;
use crate::delivery::retry_delay;
use crate::domain::{Attempt, AttemptOutcome, Channel};
use crate::store::StoreError;

impl Worker {
    /// Hands a message on channel email to the SMTP server; a failure is tried again like a
    /// Graph failure (the delivery settings' back-off and `max_attempts`, counting email tries).
    pub(super) async fn email(&self, ready: &ReadyEmail) -> Result<Processed, StoreError> {
        let failure = match &self.mailer {
            Some(mailer) => match mailer.send(&ready.email).await {
                Ok(accepted) => {
                    return self.herald.emailed(ready, accepted.reply, self.now()).await
                }
                Err(failure) => failure,
            },
            None => SmtpFailure {
                transient: false,
                code: None,
                detail: "no SMTP server is configured ([email])".into(),
            },
        };
        let now = self.now();
        let record = &ready.record;
        let tries = record
            .attempts
            .iter()
            .filter(|a| a.channel == Channel::Email)
            .count();
        let tries = u32::try_from(tries).unwrap_or(u32::MAX).saturating_add(1);
        let retry_at = (failure.transient && tries < self.settings.max_attempts).then(|| {
            let delay = retry_delay(
                tries,
                self.settings.retry_base(),
                self.settings.retry_max(),
                None,
            );
            crate::domain::bounds::later_std(now, delay)
        });
        let code = failure.code.map(|c| format!(" {c}")).unwrap_or_default();
        let attempt = Attempt {
            error: Some(format!("smtp{code}: {}", failure.detail)),
            next_attempt_at: retry_at,
            ..Attempt::by(
                Channel::Email,
                now,
                if retry_at.is_some() {
                    AttemptOutcome::Retry
                } else {
                    AttemptOutcome::Failed
                },
            )
        };
        if let Some(next) = retry_at {
            self.expect_back(next);
        }
        tracing::warn!(message_id = %record.id, error = ?attempt.error, "the SMTP server did not take an email");
        self.herald.email_failed(record, attempt).await
    }
}
