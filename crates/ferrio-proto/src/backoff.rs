//! Reconnection delays: exponential backoff with jitter, as the official client computes them.
//!
//! Pure: the caller passes the random number, so a test can fix it.

use std::time::Duration;

/// Exponential backoff (`reconnection_delay`, `reconnection_delay_max`, `randomization_factor`).
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    factor: u32,
    jitter: f64,
    attempts: u32,
}

impl Backoff {
    /// A backoff starting at `min`, doubling up to `max`, randomized by `jitter` (0 to 1).
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Self {
        Backoff {
            min,
            max,
            factor: 2,
            jitter: jitter.clamp(0.0, 1.0),
            attempts: 0,
        }
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Back to the first delay (after a successful connection).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The delay before the next attempt, counting it. `random` is uniform in `[0, 1)`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let base =
            self.min.as_millis() as f64 * f64::from(self.factor).powi(self.attempts.min(64) as i32);
        self.attempts = self.attempts.saturating_add(1);
        let mut ms = base;
        if self.jitter > 0.0 {
            let deviation = (random * self.jitter * base).floor();
            // Whether the deviation adds or subtracts is taken from the same random draw, as the
            // official client does (`Math.floor(rand * 10) & 1`).
            ms = if ((random * 10.0).floor() as u64) & 1 == 0 {
                base - deviation
            } else {
                base + deviation
            };
        }
        let max = self.max.as_millis() as f64;
        Duration::from_millis(ms.clamp(0.0, max) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_max_without_jitter() {
        let mut b = Backoff::new(1000 * MS, 5000 * MS, 0.0);
        let delays: Vec<_> = (0..6).map(|_| b.next_delay(0.3)).collect();
        assert_eq!(
            delays,
            [
                1000 * MS,
                2000 * MS,
                4000 * MS,
                5000 * MS,
                5000 * MS,
                5000 * MS
            ]
        );
        assert_eq!(b.attempts(), 6);
        b.reset();
        assert_eq!(b.next_delay(0.3), 1000 * MS);
    }

    #[test]
    fn jitter_stays_within_the_factor() {
        let mut b = Backoff::new(1000 * MS, 5000 * MS, 0.5);
        // random 0.25: floor(2.5) = 2, even: subtract 0.25 * 0.5 * 1000 = 125.
        assert_eq!(b.next_delay(0.25), 875 * MS);
        // random 0.35: floor(3.5) = 3, odd: add floor(0.35 * 0.5 * 2000) = 350.
        assert_eq!(b.next_delay(0.35), 2350 * MS);
        for i in 0..1000 {
            let r = f64::from(i) / 1000.0;
            let mut b = Backoff::new(1000 * MS, 5000 * MS, 0.5);
            let d = b.next_delay(r);
            assert!(d >= 500 * MS && d <= 1500 * MS, "{d:?} for {r}");
        }
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(1000 * MS, 5000 * MS, 0.5);
        for _ in 0..10_000 {
            assert!(b.next_delay(0.99) <= 5000 * MS);
        }
    }
}
