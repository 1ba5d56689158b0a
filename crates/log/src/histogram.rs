//! A lock-free latency histogram with fixed buckets, for the fsync latency this crate
//! measures and for the request latencies the crates above it measure.
//!
//! Observing is three relaxed atomic adds; a reader takes a [`HistogramSnapshot`] whose
//! buckets are cumulative, as Prometheus' exposition format wants them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (one more bucket, `+Inf`, follows).
pub const BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Bucket bounds in nanoseconds, for observing without floating point.
const BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Durations observed, by bucket.
#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; 17],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// A histogram's state at one moment: cumulative counts per bucket of [`BUCKETS`] and then
/// `+Inf`, the sum in seconds and the total count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub cumulative: [u64; 17],
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; 17],
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS
            .iter()
            .position(|bound| ns <= *bound)
            .unwrap_or(BOUNDS_NS.len());
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0u64; 17];
        let mut running = 0;
        for (out, count) in cumulative.iter_mut().zip(&self.counts) {
            running += count.load(Ordering::Relaxed);
            *out = running;
        }
        HistogramSnapshot {
            cumulative,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: running,
        }
    }
}

/// Every `fdatasync` any log of this process ran, by duration.
pub static FSYNC_LATENCY: Histogram = Histogram::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1); // <= 100 us
        assert_eq!(s.cumulative[4], 1); // <= 2.5 ms
        assert_eq!(s.cumulative[5], 2); // <= 5 ms
        assert_eq!(s.cumulative[15], 2); // <= 10 s
        assert_eq!(s.cumulative[16], 3); // +Inf
        assert!((s.sum_seconds - 60.003_05).abs() < 1e-9);
    }
}
