//! When to try again: exponential backoff with equal jitter (half the step fixed, half random), never
//! sooner than the Graph API asked, never later than the longest delay.

use std::time::Duration;

use rand::Rng;

/// The delay before attempt `attempt + 1` (attempt counts from 1), between half and all of
/// `base * 2^(attempt-1)` capped at `max`, and at least `retry_after` — but never past `max`:
/// `Retry-After` comes from outside, and a hostile or broken answer (10^9 seconds) must not
/// park a message, or a page, for decades.
pub fn retry_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
    let ceiling = exp.min(max);
    // "Equal jitter": keeps a floor so retries of many messages spread out without collapsing
    // to zero.
    let half = ceiling / 2;
    let jitter = rand::thread_rng().gen_range(0..=half.as_millis().max(1) as u64);
    let delay = half.saturating_add(Duration::from_millis(jitter));
    delay.max(retry_after.unwrap_or_default()).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_under_the_cap_and_honour_retry_after() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=12 {
            let d = retry_delay(attempt, base, max, None);
            let ceiling = (base * 2u32.pow(attempt - 1)).min(max);
            assert!(
                d >= ceiling / 2 && d <= ceiling + Duration::from_millis(1),
                "attempt {attempt}: {d:?}"
            );
        }
        let d = retry_delay(1, base, max, Some(Duration::from_secs(30)));
        assert!(d >= Duration::from_secs(30));
    }

    #[test]
    fn retry_after_is_honoured_only_up_to_the_longest_delay() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(900));
        for asked in [901, 1_000_000_000, u64::MAX] {
            let d = retry_delay(1, base, max, Some(Duration::from_secs(asked)));
            assert_eq!(d, max, "Retry-After {asked} s");
        }
        let d = retry_delay(u32::MAX, base, max, None);
        assert!(d <= max);
    }
}
