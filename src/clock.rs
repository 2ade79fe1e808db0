//! The one place Herald reads the time.
//!
//! Everything that needs "now" — the accept path, the worker, webhook bookkeeping, the sandbox —
//! asks the [`Clock`] it was given. Production passes [`SystemClock`]; tests pass a
//! [`ManualClock`] set to the moment they are about (a night in Berlin, a day before the tags
//! were retired) instead of searching for a time zone where it happens to be night.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use parking_lot::Mutex;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current moment.
    fn now(&self) -> DateTime<Utc>;
}

/// The clock every part of a running Herald shares.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl SystemClock {
    /// The wall clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

/// A clock a test sets. It reads the moment last set plus the real time elapsed since, so
/// retries, timeouts and pacing still fall due as they would, while the date, the hour in a
/// recipient's time zone and the policy entries in force are the test's to choose.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<(DateTime<Utc>, Instant)>,
}

impl ManualClock {
    /// A clock that reads `at` now.
    pub fn at(at: DateTime<Utc>) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            state: Mutex::new((at, Instant::now())),
        })
    }

    /// A clock that starts at the wall clock's time.
    pub fn starting_now() -> Arc<ManualClock> {
        Self::at(Utc::now())
    }

    /// Jumps to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.state.lock() = (at, Instant::now());
    }

    /// Jumps forward (or back, for a negative `by`).
    pub fn advance(&self, by: Duration) {
        let now = self.now();
        self.set(now + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let (at, since) = *self.state.lock();
        crate::domain::bounds::later_std(at, since.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_reads_what_was_set_and_moves_on_from_there() {
        let at = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let clock = ManualClock::at(at);
        let read = clock.now();
        assert!(read >= at && read < at + Duration::seconds(5), "{read}");
        clock.advance(Duration::hours(2));
        let later = clock.now();
        assert!(later >= at + Duration::hours(2), "{later}");
        clock.set(at);
        assert!(clock.now() < later);
    }
}
