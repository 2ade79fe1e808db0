//! When to try again: exponential backoff with equal jitter (half the step fixed, half random), never
//! sooner than the Graph API asked, never later than the longest delay.
//!
//! Equal jitter, not AWS's "full jitter" (a delay anywhere between zero and the step): full
//! jitter minimises the total work of many clients racing for one lock, where an early try is
//! cheap. A Messenger send is not that: a transient Graph error (1200, 2, a rate limit) says
//! Graph or the page is already struggling, and every try counts against `max_attempts`. A try
//! a few milliseconds after the last one would hammer the page and spend an attempt for nothing.
//! Equal jitter keeps a floor, half the step, so attempt n+1 never comes sooner than
//! `base * 2^(n-2)`, and still spreads a burst of failures over the other half of the step.

use std::time::Duration;

use rand::Rng;

/// The delay before attempt `attempt + 1` (attempt counts from 1): the step `base *
/// 2^(attempt-1)` capped at `cap`, then half of it fixed and the other half drawn from `rng`
/// (whole milliseconds). Pure apart from `rng`, so any retry schedule can reuse it, and a test
/// can pass a seeded or constant generator.
pub fn backoff<R: Rng + ?Sized>(
    attempt: u32,
    base: Duration,
    cap: Duration,
    rng: &mut R,
) -> Duration {
    let step = base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
    let ceiling = step.min(cap);
    let half = ceiling / 2;
    let half_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half.saturating_add(Duration::from_millis(rng.gen_range(0..=half_ms)))
}

/// The delay before attempt `attempt + 1` of a send: [`backoff`] from `base` up to `max`, and
/// at least `retry_after` — but never past `max`: `Retry-After` comes from outside, and a
/// hostile or broken answer (10^9 seconds) must not park a message, or a page, for decades.
pub fn retry_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    backoff(attempt, base, max, &mut rand::thread_rng())
        .max(retry_after.unwrap_or_default())
        .min(max)
}

#[cfg(test)]
mod tests {
    use rand::rngs::mock::StepRng;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    /// The step of `attempt` from a 1 s base, capped at a minute.
    fn ceiling(attempt: u32) -> Duration {
        (Duration::from_secs(1) * 2u32.pow(attempt - 1)).min(Duration::from_secs(60))
    }

    #[test]
    fn the_lowest_draw_still_waits_half_the_step_which_full_jitter_would_not() {
        // A generator that always draws 0 gives the shortest delay the schedule allows: half
        // the step under equal jitter, zero under full jitter.
        let mut lowest = StepRng::new(0, 0);
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempt in 1..=12 {
            let d = backoff(attempt, base, cap, &mut lowest);
            assert_eq!(d, ceiling(attempt) / 2, "attempt {attempt}");
        }
    }

    #[test]
    fn delays_spread_over_the_upper_half_of_the_step_and_stay_under_it() {
        let mut rng = StdRng::seed_from_u64(21);
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempt in 1..=12 {
            let draws: Vec<Duration> = (0..200)
                .map(|_| backoff(attempt, base, cap, &mut rng))
                .collect();
            let (low, high) = (ceiling(attempt) / 2, ceiling(attempt));
            assert!(
                draws.iter().all(|d| (low..=high).contains(d)),
                "attempt {attempt}: a delay outside {low:?}..={high:?}"
            );
            let (min, max) = (draws.iter().min(), draws.iter().max());
            assert!(
                min < Some(&(low + low / 5)) && max > Some(&(high - low / 5)),
                "attempt {attempt}: delays {min:?}..{max:?} do not spread over the half"
            );
        }
    }

    #[test]
    fn delays_grow_stay_under_the_cap_and_honour_retry_after() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=12 {
            let d = retry_delay(attempt, base, max, None);
            assert!(
                d >= ceiling(attempt) / 2 && d <= ceiling(attempt),
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
        let d = backoff(
            u32::MAX,
            Duration::MAX,
            Duration::MAX,
            &mut StepRng::new(0, 0),
        );
        assert_eq!(d, Duration::MAX / 2, "saturates instead of overflowing");
    }
}
