//! Rate limiting of failed logins per client address, for every protocol: after
//! [`MAX_FAILURES`] failures within [`WINDOW`], an address's next attempts are refused
//! without checking credentials until the window has passed. Other addresses are not
//! affected, and a refused attempt costs no password hashing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures an address may have within [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(10);
/// Addresses remembered at most (the oldest windows are forgotten first).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Default)]
pub struct FailureLimiter {
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// Whether `peer` may try to log in now.
    pub fn allows(&self, peer: IpAddr) -> bool {
        self.allows_at(peer, Instant::now())
    }

    /// Counts a failed login of `peer`.
    pub fn failed(&self, peer: IpAddr) {
        self.failed_at(peer, Instant::now());
    }

    fn allows_at(&self, peer: IpAddr, now: Instant) -> bool {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.get(&peer).is_none_or(|(since, count)| {
            *count < MAX_FAILURES || now.duration_since(*since) >= WINDOW
        })
    }

    fn failed_at(&self, peer: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        }
        let entry = failures.entry(peer).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_too_many_failures_until_the_window_passes() {
        let limiter = FailureLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(limiter.allows_at(a, t0));
            limiter.failed_at(a, t0);
        }
        assert!(!limiter.allows_at(a, t0 + Duration::from_secs(1)));
        assert!(limiter.allows_at(b, t0), "other addresses are not affected");
        assert!(limiter.allows_at(a, t0 + WINDOW));
        limiter.failed_at(a, t0 + WINDOW);
        assert!(
            limiter.allows_at(a, t0 + WINDOW),
            "a new window starts counting at one"
        );
    }
}
