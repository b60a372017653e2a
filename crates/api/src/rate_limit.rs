//! The request rate per token: a token bucket (GCRA, from `governor`) per
//! caller, keyed by the SHA-256 of the presented token, so that the
//! bootstrap admin token and every API token each have their own bucket.
//!
//! Only requests that authenticated are counted: an unknown token gets its
//! 401 without creating a bucket, so memory grows with real tokens only.
//! `/healthz`, `/readyz` and `/metrics` are outside `/v1` and never limited.

use std::{num::NonZeroU32, time::Duration};

use governor::{Quota, RateLimiter, clock::Clock, clock::DefaultClock};

use crate::error::ApiError;

/// Requests per second each token may make, on average.
pub const DEFAULT_RATE_PER_SECOND: u32 = 50;
/// How many requests a token may make at once before the rate applies.
pub const DEFAULT_RATE_BURST: u32 = 100;

/// Forgets idle buckets once this many exist; a bucket idle long enough is
/// full again, so forgetting it changes nothing.
const RETAIN_ABOVE_KEYS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: NonZeroU32::new(DEFAULT_RATE_PER_SECOND).expect("not zero"),
            burst: NonZeroU32::new(DEFAULT_RATE_BURST).expect("not zero"),
        }
    }
}

/// One bucket per token.
pub struct RequestLimiter {
    limit: RateLimit,
    buckets: governor::DefaultKeyedRateLimiter<Vec<u8>>,
}

impl RequestLimiter {
    pub fn new(limit: RateLimit) -> Self {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        Self {
            limit,
            buckets: RateLimiter::keyed(quota),
        }
    }

    /// Takes one request from the bucket of `key`, or refuses with 429
    /// `rate_limited` and the seconds until one is allowed again.
    pub fn check(&self, key: &[u8]) -> Result<(), ApiError> {
        if self.buckets.len() > RETAIN_ABOVE_KEYS {
            self.buckets.retain_recent();
        }
        let Err(not_until) = self.buckets.check_key(&key.to_vec()) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Err(ApiError::TooManyRequests {
            code: "rate_limited",
            message: format!(
                "too many requests with this token: the limit is {} per second \
                 (bursts of {}); retry in {} ms",
                self.limit.per_second,
                self.limit.burst,
                wait.as_millis().max(1)
            ),
            retry_after: Some(retry_after_seconds(wait)),
        })
    }
}

/// `Retry-After` is whole seconds: rounded up, at least 1.
fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0 || wait.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32) -> RequestLimiter {
        RequestLimiter::new(RateLimit {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        })
    }

    #[test]
    fn a_burst_passes_then_429_then_it_recovers() {
        let limiter = limiter(20, 3);
        for _ in 0..3 {
            limiter.check(b"a").unwrap();
        }
        let refused = limiter.check(b"a").unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(refused.status().as_u16(), 429);
        // Another token has its own bucket.
        limiter.check(b"b").unwrap();
        // Recovers: poll with a deadline, no fixed sleep as synchronisation.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while limiter.check(b"a").is_err() {
            assert!(std::time::Instant::now() < deadline, "never recovered");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(20)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }
}
