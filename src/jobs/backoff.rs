//! Durable jobs: the policy beside the `jobs` table (`archive::jobs` keeps
//! the rows). A failed attempt is retried after an exponential back-off with
//! full jitter (a random wait between zero and the exponential step), so
//! jobs that failed together — a receiver that was down — do not all come
//! back at the same moment.

use std::time::Duration;

use rand::Rng;

/// The wait before attempt `attempt + 1` after `attempt` failures (the
/// first failure is attempt 1): uniform in `[0, min(cap, base · 2^(attempt-1))]`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let step = base
        .checked_mul(1u32 << attempt.saturating_sub(1).min(30))
        .unwrap_or(cap)
        .min(cap);
    let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_up_to_its_cap_and_is_jittered_below_it() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(3600);
        for attempt in 1..40 {
            let limit = (base * 2u32.pow((attempt - 1).min(20))).min(cap);
            let waits: Vec<_> = (0..200).map(|_| backoff(attempt, base, cap)).collect();
            assert!(waits.iter().all(|w| *w <= limit), "attempt {attempt}");
            // Full jitter: the waits spread over the whole range.
            assert!(waits.iter().any(|w| *w < limit / 4), "attempt {attempt}");
            assert!(
                waits.iter().any(|w| *w > limit * 3 / 4),
                "attempt {attempt}"
            );
        }
    }
}
