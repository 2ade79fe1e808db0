//! Bounded values: every date and duration that comes from outside (a request, a webhook, a
//! policy file, a Graph answer) is checked against a sane range at the edge, and date arithmetic
//! inside is checked, so that no value anyone can send makes `DateTime + TimeDelta` overflow and
//! panic a background task.
//!
//! The ranges are the contract's ("Bounded values" in docs/api.md). Arithmetic on dates goes
//! through [`later`] and [`earlier`], which saturate at the ends of chrono's range instead of
//! panicking: with every input bounded they never reach those ends, and if a new input is
//! forgotten the worst outcome is a date far away, never a dead task.

use std::ops::RangeInclusive;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

/// `send_at` may lie at most this far ahead.
pub const SEND_AT_AHEAD: TimeDelta = TimeDelta::days(365);

/// `expires_at` must lie after now and at most this far ahead.
pub const EXPIRES_WITHIN: TimeDelta = TimeDelta::days(30);

/// A campaign's `rollout.hold` may be at most this long.
pub const ROLLOUT_HOLD_MAX: TimeDelta = TimeDelta::days(30);

/// A campaign's `rate_per_second`: at least one, at most Messenger's page limit.
pub const CAMPAIGN_RATE: RangeInclusive<u32> = 1..=300;

/// A rollout's `first_percent`.
pub const FIRST_PERCENT: RangeInclusive<u32> = 1..=99;

/// An audit query's `limit`.
pub const AUDIT_LIMIT: RangeInclusive<usize> = 1..=1000;

/// How far ahead of Herald's clock a moment reported by Messenger (a webhook event's
/// `timestamp`, a read's `watermark`) may lie: clocks drift, a little.
pub const EVENT_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// How long Herald waits at most when the Graph API asks it to (`Retry-After`, a page's
/// `estimated_time_to_regain_access`), whatever it asks: a day.
pub const GRAPH_WAIT_MAX: TimeDelta = TimeDelta::days(1);

/// The earliest moment an event from Messenger can carry (the platform is younger).
pub fn earliest_event() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2011, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest expiry accepted from outside (a Marketing Messages token's): the end of year 9999,
/// the last moment RFC 3339 can write.
pub fn latest_expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at + by`, saturating at the end of chrono's range instead of panicking.
pub fn later(at: DateTime<Utc>, by: TimeDelta) -> DateTime<Utc> {
    at.checked_add_signed(by)
        .unwrap_or(if by < TimeDelta::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// `at - by`, saturating at the end of chrono's range instead of panicking.
pub fn earlier(at: DateTime<Utc>, by: TimeDelta) -> DateTime<Utc> {
    at.checked_sub_signed(by)
        .unwrap_or(if by < TimeDelta::zero() {
            DateTime::<Utc>::MAX_UTC
        } else {
            DateTime::<Utc>::MIN_UTC
        })
}

/// `at + by` for a standard-library duration (a timeout, a retry delay), saturating.
pub fn later_std(at: DateTime<Utc>, by: std::time::Duration) -> DateTime<Utc> {
    later(at, TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX))
}

/// A standard-library duration as a chrono one, saturating at chrono's largest.
pub fn delta(by: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        let now = Utc::now();
        assert_eq!(later(now, TimeDelta::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(later(now, TimeDelta::MIN), DateTime::<Utc>::MIN_UTC);
        assert_eq!(earlier(now, TimeDelta::MAX), DateTime::<Utc>::MIN_UTC);
        assert_eq!(earlier(now, TimeDelta::MIN), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            later_std(now, std::time::Duration::from_secs(u64::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(later(now, TimeDelta::hours(1)), now + TimeDelta::hours(1));
        assert_eq!(earlier(now, TimeDelta::hours(1)), now - TimeDelta::hours(1));
    }

    #[test]
    fn the_earliest_event_is_before_any_real_one() {
        assert!(earliest_event() < Utc::now());
        assert_eq!(earliest_event().timestamp(), 1_293_840_000);
    }
}
