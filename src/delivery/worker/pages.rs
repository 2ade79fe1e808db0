//! Each page's pace and pauses: the governor limiter that follows the policy's rate, the pages
//! Messenger asked to wait (kept in the store), and the count of pages whose breaker is open.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use super::Worker;
use crate::domain::MessageRecord;

/// The pages held back, and when the store was last asked.
#[derive(Default)]
pub(super) struct PausedPages {
    until: HashMap<String, DateTime<Utc>>,
    read_at: Option<std::time::Instant>,
}

/// How often the pauses are read again from the store: another instance may have paused a
/// page this one took over.
const PAUSES_REFRESH: Duration = Duration::from_secs(1);

/// Each page's pace, following the policy in force: when `[send_rate] per_page` changes (a
/// policy reload), the limiter is built anew at the new rate.
pub(super) struct Pacer {
    current: Mutex<(u32, Arc<DefaultKeyedRateLimiter<crate::domain::PageId>>)>,
}

impl Pacer {
    pub(super) fn new(per_second: u32) -> Pacer {
        Pacer {
            current: Mutex::new((
                per_second,
                Arc::new(RateLimiter::keyed(page_quota(per_second))),
            )),
        }
    }

    /// The limiter for `per_second`, the rate the policy in force asks for.
    pub(super) fn limiter(
        &self,
        per_second: u32,
    ) -> Arc<DefaultKeyedRateLimiter<crate::domain::PageId>> {
        let mut current = self.current.lock();
        if current.0 != per_second {
            tracing::info!(per_second, "page send rate changed");
            *current = (
                per_second,
                Arc::new(RateLimiter::keyed(page_quota(per_second))),
            );
        }
        Arc::clone(&current.1)
    }
}

/// Each page's pace: `per_second` on average, in bursts of at most a tenth of a second's worth.
/// Messenger counts its 300/s on arrival; a full second's burst, sent at once, reaches it
/// bunched by the network and the connection pool and is refused (613).
fn page_quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second / 10).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Worker {
    /// When the pause of `page` ends, if it is paused at `now`.
    pub(super) fn paused_until(&self, page: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.paused_pages.lock().until.get(page).copied();
        until.filter(|u| *u > now)
    }

    /// Reads the pages' pauses from the store when the copy in memory is older than
    /// [`PAUSES_REFRESH`]. A store that does not answer leaves the copy as it is.
    pub(super) async fn read_pauses(&self) {
        let stale = self
            .paused_pages
            .lock()
            .read_at
            .is_none_or(|at| at.elapsed() >= PAUSES_REFRESH);
        if !stale {
            return;
        }
        match self.herald.store.pauses.paused_pages(self.now()).await {
            Ok(pauses) => {
                let mut paused = self.paused_pages.lock();
                for (page, until) in pauses {
                    let held = paused.until.entry(page).or_insert(until);
                    *held = (*held).max(until);
                }
                paused.read_at = Some(std::time::Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, "reading the pages' pauses failed"),
        }
    }

    /// Holds every send to `page` back until `until`, here and in the store.
    pub(super) async fn pause_page(&self, page: &str, until: DateTime<Utc>) {
        {
            let mut paused = self.paused_pages.lock();
            let held = paused.until.entry(page.to_owned()).or_insert(until);
            *held = (*held).max(until);
        }
        if let Err(e) = self.herald.store.pauses.pause_page(page, until).await {
            // This instance still holds the page back; only a restart would forget it.
            tracing::warn!(page, error = %e, "storing a page's pause failed");
        }
        tracing::warn!(page, until = %until, "Graph rate limit: pausing the page");
    }

    /// The Graph API answered a send to the record's page (even with a refusal): it is up.
    pub(super) fn graph_answered(&self, record: &MessageRecord) {
        if self.breakers.answered(&record.page_id) {
            tracing::info!(page = %record.page_id, "the page's Graph API answers again");
            self.count_pages_out(self.now());
        }
    }

    /// Sets the metric of pages whose breaker is open.
    pub(super) fn count_pages_out(&self, now: DateTime<Utc>) {
        let outage_after = self.herald.policy().outage_after();
        let out = self.breakers.open_pages(now, outage_after);
        self.herald
            .metrics
            .pages_out
            .set(i64::try_from(out).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_paced_in_bursts_of_a_tenth_of_its_rate() {
        let limiter = RateLimiter::direct(page_quota(300));
        let at_once = (0..300).filter(|_| limiter.check().is_ok()).count();
        assert_eq!(at_once, 30, "a burst is a tenth of a second's sends");
        let slow = RateLimiter::direct(page_quota(5));
        assert_eq!((0..5).filter(|_| slow.check().is_ok()).count(), 1);
    }

    #[test]
    fn the_pace_follows_the_rate_asked_for() {
        let pacer = Pacer::new(300);
        let first = pacer.limiter(300);
        assert!(
            Arc::ptr_eq(&first, &pacer.limiter(300)),
            "same rate, same limiter"
        );
        let slower = pacer.limiter(20);
        let page = crate::domain::PageId::parse("1").expect("a page id");
        let at_once = (0..20).filter(|_| slower.check_key(&page).is_ok()).count();
        assert_eq!(at_once, 2, "a burst of a tenth of the new rate");
    }
}
