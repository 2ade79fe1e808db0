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

/// How far ahead of now a moment a client asks about may lie: a policy evaluation's `at`, an
/// audit query's `from` and `to`. Nothing can be sent later than `send_at` allows.
pub const QUERY_AHEAD: TimeDelta = SEND_AT_AHEAD;

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

/// `send_at` lies at most [`SEND_AT_AHEAD`] after `now`. One in the past means now, but not one
/// before [`earliest_event`]: a year 0 is a bug in the caller, not a schedule.
pub fn check_send_at(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if at < earliest_event() {
        return Err(format!(
            "must not be before {} (leave it out to send now)",
            earliest_event().format("%Y-%m-%d")
        ));
    }
    if at > later(now, SEND_AT_AHEAD) {
        return Err(format!(
            "must be at most {} days ahead",
            SEND_AT_AHEAD.num_days()
        ));
    }
    Ok(())
}

/// `expires_at` lies after now and at most [`EXPIRES_WITHIN`] after the moment the message is
/// due: `send_at` when that is later than now (as the default time-to-live counts).
pub fn check_expires_at(
    at: DateTime<Utc>,
    now: DateTime<Utc>,
    send_at: Option<DateTime<Utc>>,
) -> Result<(), String> {
    let due = send_at.filter(|s| *s > now).unwrap_or(now);
    if at <= now {
        return Err("must be later than now".into());
    }
    if at > later(due, EXPIRES_WITHIN) {
        return Err(format!(
            "must be at most {} days after the message is due",
            EXPIRES_WITHIN.num_days()
        ));
    }
    Ok(())
}

/// A moment a client asks about (`at`, `from`, `to`) lies between [`earliest_event`] and
/// [`QUERY_AHEAD`] after now.
pub fn check_moment(at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if at < earliest_event() || at > later(now, QUERY_AHEAD) {
        return Err(format!(
            "must lie between {} and {} days from now",
            earliest_event().format("%Y-%m-%d"),
            QUERY_AHEAD.num_days()
        ));
    }
    Ok(())
}

/// A rollout's `hold` is at most [`ROLLOUT_HOLD_MAX`].
pub fn check_hold(hold: std::time::Duration) -> Result<(), String> {
    if delta(hold) > ROLLOUT_HOLD_MAX {
        return Err(format!(
            "must be at most {} days",
            ROLLOUT_HOLD_MAX.num_days()
        ));
    }
    Ok(())
}

/// A number within one of the ranges above.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    value: T,
    range: &RangeInclusive<T>,
) -> Result<(), String> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(format!("must be from {} to {}", range.start(), range.end()))
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
    fn each_bound_takes_its_edge_and_refuses_one_past_it() {
        let now = Utc::now();
        let second = TimeDelta::seconds(1);
        assert!(check_send_at(later(now, SEND_AT_AHEAD), now).is_ok());
        assert!(check_send_at(later(now, SEND_AT_AHEAD + second), now).is_err());
        assert!(check_send_at(earliest_event(), now).is_ok());
        assert!(check_send_at(DateTime::<Utc>::MIN_UTC, now).is_err());
        assert!(check_expires_at(later(now, EXPIRES_WITHIN), now, None).is_ok());
        assert!(check_expires_at(later(now, EXPIRES_WITHIN + second), now, None).is_err());
        assert!(check_expires_at(now, now, None).is_err());
        let due = later(now, TimeDelta::days(100));
        assert!(check_expires_at(later(due, EXPIRES_WITHIN), now, Some(due)).is_ok());
        assert!(check_hold(std::time::Duration::from_secs(30 * 86_400)).is_ok());
        assert!(check_hold(std::time::Duration::from_secs(30 * 86_400 + 1)).is_err());
        assert!(check_hold(std::time::Duration::MAX).is_err());
        assert!(check_range(300, &CAMPAIGN_RATE).is_ok());
        assert!(check_range(0, &CAMPAIGN_RATE).is_err());
        assert!(check_moment(earliest_event(), now).is_ok());
        assert!(check_moment(earlier(earliest_event(), second), now).is_err());
        assert!(check_moment(DateTime::<Utc>::MAX_UTC, now).is_err());
    }

    #[test]
    fn the_earliest_event_is_before_any_real_one() {
        assert!(earliest_event() < Utc::now());
        assert_eq!(earliest_event().timestamp(), 1_293_840_000);
    }

    /// The lint for this module's rule: date arithmetic with a duration written in place goes
    /// through [`later`] and [`earlier`], never `+`/`-` (which panic on overflow). Test code is
    /// exempt; so is this file.
    #[test]
    fn no_unchecked_date_arithmetic_outside_tests() {
        let patterns = [
            "+ Duration::",
            "- Duration::",
            "+ chrono::Duration::",
            "- chrono::Duration::",
            "+ TimeDelta::",
            "- TimeDelta::",
        ];
        let mut found = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if !name.ends_with(".rs") || ["bounds.rs", "tests.rs", "hostile.rs"].contains(&name)
                {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (n, line) in code.lines().enumerate() {
                    let line = line.split("//").next().unwrap_or_default();
                    if patterns.iter().any(|p| line.contains(p)) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "use bounds::later / earlier:\n{}",
            found.join("\n")
        );
    }
}
