//! A circuit breaker per page: while a page's Graph API keeps failing (5xx, timeouts, refused
//! connections, Graph's transient codes), Herald stops hammering it. Pure bookkeeping: the
//! worker reports each answer and asks before each send; the times come in, no clock is read,
//! and every sum of a time and a duration saturates (`bounds::later`): a far-off time never panics.
//!
//! ```text
//!            transient failure                    failing for outage_after
//!   closed ────────────────────► failing (since) ──────────────────────────► open
//!     ▲  any other answer (Graph is up) │                                     │ every probe interval
//!     └─────────────────────────────────┴──────── the probe got an answer ◄── probe: one send
//! ```
//!
//! While it is open, a message the email fallback allows goes by email; any other waits for the
//! next probe. One message at a time is let through as the probe; its answer closes the breaker
//! (Graph answered, even with a refusal: the API is up) or keeps it open until the next probe.
//! A probe whose answer never comes back (the task died) is replaced after a probe interval.
//!
//! Each instance keeps its own breakers: with several instances on PostgreSQL each notices an
//! outage from its own sends, which is what the outage looks like from where it sends.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

use crate::domain::bounds::later;
use crate::domain::PageId;

/// The shortest and longest time between two probes of an open breaker: a quarter of
/// `outage_after` within these.
const PROBE_MIN_SECONDS: i64 = 1;
const PROBE_MAX_SECONDS: i64 = 60;

/// What the worker may do with a send to a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send as usual.
    Closed,
    /// Send: this message is the probe of an open breaker.
    Probe,
    /// The page is out (failing since `since`): do not call the Graph API before `next_probe`.
    Open {
        since: DateTime<Utc>,
        next_probe: DateTime<Utc>,
    },
}

/// One page's health, from the answers to its sends.
#[derive(Debug, Clone, Copy)]
struct Health {
    /// The first transient failure since the last answer that was not one.
    failing_since: DateTime<Utc>,
    /// When the next probe may go (while open).
    next_probe: Option<DateTime<Utc>>,
}

/// Every page's breaker.
#[derive(Default)]
pub struct Breakers {
    pages: Mutex<HashMap<PageId, Health>>,
}

impl Breakers {
    /// Whether a send to `page` may call the Graph API at `now`, with the policy's
    /// `outage_after`. Letting a probe through is recorded: the next probe waits a probe
    /// interval.
    pub fn gate(&self, page: &PageId, now: DateTime<Utc>, outage_after: Duration) -> Gate {
        let mut pages = self.pages.lock();
        let Some(health) = pages.get_mut(page) else {
            return Gate::Closed;
        };
        if now < later(health.failing_since, outage_after) {
            return Gate::Closed;
        }
        match health.next_probe {
            Some(next_probe) if now < next_probe => Gate::Open {
                since: health.failing_since,
                next_probe,
            },
            _ => {
                health.next_probe = Some(later(now, probe_interval(outage_after)));
                Gate::Probe
            }
        }
    }

    /// Whether `page`'s breaker is open at `now`, and since when the page has failed.
    pub fn open_since(
        &self,
        page: &PageId,
        now: DateTime<Utc>,
        outage_after: Duration,
    ) -> Option<DateTime<Utc>> {
        let pages = self.pages.lock();
        let health = pages.get(page)?;
        (now >= later(health.failing_since, outage_after)).then_some(health.failing_since)
    }

    /// A send to `page` failed transiently at `at`. While the breaker is open, any send that
    /// failed (a probe, or one already in flight when it opened) counts as a probe: the next
    /// waits a probe interval from now.
    pub fn failed(&self, page: &PageId, at: DateTime<Utc>, outage_after: Duration) {
        let mut pages = self.pages.lock();
        let health = pages.entry(page.clone()).or_insert(Health {
            failing_since: at,
            next_probe: None,
        });
        if at >= later(health.failing_since, outage_after) {
            let next = later(at, probe_interval(outage_after));
            health.next_probe = Some(health.next_probe.map_or(next, |n| n.max(next)));
        }
    }

    /// The Graph API answered a send to `page` with something other than a transient failure:
    /// it is up. Returns whether the page had been failing.
    pub fn answered(&self, page: &PageId) -> bool {
        self.pages.lock().remove(page).is_some()
    }

    /// How many pages are out at `now` (for the metrics).
    pub fn open_pages(&self, now: DateTime<Utc>, outage_after: Duration) -> usize {
        self.pages
            .lock()
            .values()
            .filter(|h| now >= later(h.failing_since, outage_after))
            .count()
    }
}

/// How long an open breaker waits between probes: a quarter of `outage_after`, within
/// [`PROBE_MIN_SECONDS`] and [`PROBE_MAX_SECONDS`].
fn probe_interval(outage_after: Duration) -> Duration {
    (outage_after / 4).clamp(
        Duration::seconds(PROBE_MIN_SECONDS),
        Duration::seconds(PROBE_MAX_SECONDS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> PageId {
        PageId::parse("1").expect("a page id")
    }

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a time")
    }

    #[test]
    fn a_page_is_out_only_once_it_has_failed_for_outage_after() {
        let b = Breakers::default();
        let after = Duration::minutes(10);
        assert_eq!(b.gate(&page(), t(0), after), Gate::Closed);
        b.failed(&page(), t(0), after);
        b.failed(&page(), t(300), after);
        assert_eq!(b.gate(&page(), t(599), after), Gate::Closed, "not yet");
        assert_eq!(b.open_since(&page(), t(599), after), None);
        assert_eq!(
            b.gate(&page(), t(600), after),
            Gate::Probe,
            "the first probe"
        );
        assert_eq!(b.open_since(&page(), t(600), after), Some(t(0)));
        assert_eq!(
            b.gate(&page(), t(601), after),
            Gate::Open {
                since: t(0),
                next_probe: t(660)
            },
            "one probe per interval (a quarter of outage_after, at most a minute)"
        );
        assert_eq!(b.gate(&page(), t(660), after), Gate::Probe);
        assert_eq!(b.open_pages(t(661), after), 1);
        b.failed(&page(), t(700), after);
        assert_eq!(
            b.gate(&page(), t(720), after),
            Gate::Open {
                since: t(0),
                next_probe: t(760)
            },
            "a send that fails while it is open counts as a probe"
        );
    }

    #[test]
    fn any_answer_that_is_not_a_transient_failure_closes_it() {
        let b = Breakers::default();
        let after = Duration::seconds(2);
        b.failed(&page(), t(0), after);
        assert_eq!(b.gate(&page(), t(2), after), Gate::Probe);
        assert!(b.answered(&page()), "it had been failing");
        assert_eq!(b.gate(&page(), t(3), after), Gate::Closed);
        assert!(!b.answered(&page()), "already closed");
        b.failed(&page(), t(10), after);
        assert_eq!(
            b.gate(&page(), t(11), after),
            Gate::Closed,
            "a new outage counts from its own first failure"
        );
    }

    #[test]
    fn other_pages_are_not_held_back() {
        let b = Breakers::default();
        let other = PageId::parse("2").expect("a page id");
        b.failed(&page(), t(0), Duration::seconds(1));
        assert_eq!(b.gate(&other, t(100), Duration::seconds(1)), Gate::Closed);
    }

    #[test]
    fn probes_come_at_least_a_second_and_at_most_a_minute_apart() {
        assert_eq!(probe_interval(Duration::seconds(2)), Duration::seconds(1));
        assert_eq!(probe_interval(Duration::seconds(40)), Duration::seconds(10));
        assert_eq!(probe_interval(Duration::hours(1)), Duration::seconds(60));
    }
}
