//! Failed authentications per client address: after
//! [`AuthFailures::per_minute`] failures (`JOBS_AUTH_FAILURES_PER_MINUTE`),
//! the address gets 429 for every request that needs a token, without any
//! lookup, until the rate allows one more failure (one per 60/N seconds).
//!
//! A blocked address gets no answer about any token, a right one included:
//! otherwise the refusals would tell a right guess from a wrong one, and
//! the limit would not slow a guesser down. Other addresses are not
//! affected. IPv6 addresses count by their /64, which one client usually
//! holds whole.
//!
//! The budget is a GCRA (the algorithm of [`crate::rate_limit`]) per
//! address, kept here because it must be read without being spent. At most
//! [`MAX_ADDRESSES`] addresses are tracked; those whose budget is full
//! again are forgotten first.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::error::ApiError;

/// Failed authentications per minute and address, by default.
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 30;
/// The most addresses tracked at once.
pub const MAX_ADDRESSES: usize = 65_536;

pub struct AuthFailures {
    per_minute: NonZeroU32,
    /// The theoretical arrival time of each address's next failure.
    addresses: Mutex<HashMap<IpAddr, Instant>>,
}

impl AuthFailures {
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            per_minute,
            addresses: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_minute(&self) -> NonZeroU32 {
        self.per_minute
    }

    fn interval(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute.get()
    }

    /// How far ahead of now an address may be before it is blocked.
    fn tolerance(&self) -> Duration {
        self.interval() * (self.per_minute.get() - 1)
    }

    /// 429 `rate_limited` if `address` has used up its failures, with the
    /// seconds until it may try again.
    pub fn check(&self, address: IpAddr) -> Result<(), ApiError> {
        self.check_at(address, Instant::now())
    }

    fn check_at(&self, address: IpAddr, now: Instant) -> Result<(), ApiError> {
        let key = key(address);
        let next = self
            .addresses
            .lock()
            .expect("auth failures lock")
            .get(&key)
            .copied();
        let Some(next) = next else {
            return Ok(());
        };
        let ahead = next.saturating_duration_since(now);
        if ahead <= self.tolerance() {
            return Ok(());
        }
        let wait = ahead - self.tolerance();
        Err(ApiError::TooManyRequests {
            code: "rate_limited",
            message: format!(
                "too many failed authentications from this address: the limit is {} a \
                 minute (JOBS_AUTH_FAILURES_PER_MINUTE); retry in {} s",
                self.per_minute,
                wait.as_secs() + 1
            ),
            retry_after: Some(wait.as_secs() + 1),
        })
    }

    /// Counts a failed authentication of `address`.
    pub fn failed(&self, address: IpAddr) {
        self.failed_at(address, Instant::now());
    }

    fn failed_at(&self, address: IpAddr, now: Instant) {
        let key = key(address);
        let mut addresses = self.addresses.lock().expect("auth failures lock");
        if addresses.len() >= MAX_ADDRESSES && !addresses.contains_key(&key) {
            // Forget the addresses whose budget is full again: the same as
            // never having seen them.
            addresses.retain(|_, next| *next > now);
            if addresses.len() >= MAX_ADDRESSES {
                tracing::warn!(
                    limit = MAX_ADDRESSES,
                    "too many addresses with failed authentications to track one more"
                );
                return;
            }
        }
        let next = addresses.entry(key).or_insert(now);
        *next = (*next).max(now) + self.interval();
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.addresses.lock().expect("auth failures lock").len()
    }
}

/// IPv4 as is (also when mapped into IPv6); IPv6 by its /64.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_minute: u32) -> AuthFailures {
        AuthFailures::new(NonZeroU32::new(per_minute).unwrap())
    }

    #[test]
    fn n_failures_then_429_until_the_rate_allows_one_more() {
        let limiter = limiter(6);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let start = Instant::now();
        for _ in 0..6 {
            limiter.check_at(address, start).unwrap();
            limiter.failed_at(address, start);
        }
        let refused = limiter.check_at(address, start).unwrap_err();
        assert_eq!(refused.status().as_u16(), 429);
        assert!(
            refused
                .to_string()
                .contains("the limit is 6 a minute (JOBS_AUTH_FAILURES_PER_MINUTE)"),
            "{refused}"
        );
        // Another address is not affected.
        limiter
            .check_at("192.0.2.2".parse().unwrap(), start)
            .unwrap();
        // One failure more is allowed every 10 s.
        limiter
            .check_at(address, start + Duration::from_secs(9))
            .unwrap_err();
        limiter
            .check_at(address, start + Duration::from_secs(10))
            .unwrap();
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let limiter = limiter(1);
        let start = Instant::now();
        limiter.failed_at("2001:db8::1".parse().unwrap(), start);
        limiter
            .check_at("2001:db8::ffff:2".parse().unwrap(), start)
            .unwrap_err();
        limiter
            .check_at("2001:db8:0:1::1".parse().unwrap(), start)
            .unwrap();
        limiter.failed_at("::ffff:192.0.2.9".parse().unwrap(), start);
        limiter
            .check_at("192.0.2.9".parse().unwrap(), start)
            .unwrap_err();
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = limiter(1);
        let start = Instant::now();
        for index in 0..(MAX_ADDRESSES as u32 + 10) {
            limiter.failed_at(IpAddr::V4(index.into()), start);
        }
        assert_eq!(limiter.tracked(), MAX_ADDRESSES);
        // Once their budgets are full again, they make room.
        let later = start + Duration::from_secs(61);
        limiter.failed_at("192.0.2.1".parse().unwrap(), later);
        assert_eq!(limiter.tracked(), 1);
    }
}
