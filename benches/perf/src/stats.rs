//! Counters and latency histograms that client tasks update, and the payload time stamp.
//!
//! ```text
//! payload: [0..8) send time, ns since the Unix epoch, u64 little endian | filler (0x2e)
//! ```
//! The stamp uses the wall clock so that a producer and a consumer in different processes on
//! one host agree. Payloads shorter than 8 bytes carry no stamp and give no latency.
//!
//! # Invariants
//! Counters are monotonic; the run driver takes snapshots at the edges of the measured window
//! and reports differences. Latency is recorded only inside the window (`measuring`). Each
//! consumer owns one `Latency` behind its own mutex, so consumers never contend with each
//! other; the progress reader is the only other party.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// Latency is kept in microseconds, from 1 µs to one hour, to 3 significant digits.
const MAX_LATENCY_US: u64 = 3_600_000_000;

pub const STAMP_LEN: usize = 8;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Writes the current time into the first 8 bytes of `payload` (if it has room).
pub fn stamp(payload: &mut [u8]) {
    if let Some(head) = payload.get_mut(..STAMP_LEN) {
        head.copy_from_slice(&now_ns().to_le_bytes());
    }
}

/// A payload of `size` bytes: stamp space then filler.
pub fn payload(size: usize) -> Vec<u8> {
    vec![b'.'; size]
}

/// Microseconds since the stamp in `payload`, if it has one.
fn age_us(payload: &[u8]) -> Option<u64> {
    let head: [u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
    let sent = u64::from_le_bytes(head);
    Some(now_ns().saturating_sub(sent) / 1000)
}

fn histogram() -> Histogram<u64> {
    // 1..=MAX with 3 digits is a valid configuration; the constructor only fails on bad bounds.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits is valid"))
    })
}

/// One consumer's latency: since the window opened, and since the last progress line.
pub struct Latency {
    total: Histogram<u64>,
    interval: Histogram<u64>,
}

/// A consumer's handle: records deliveries into the shared counters and its own histogram.
#[derive(Clone)]
pub struct Recorder {
    stats: Arc<Stats>,
    latency: Arc<Mutex<Latency>>,
}

impl Recorder {
    /// One message received with this payload.
    pub fn received(&self, payload: &[u8]) {
        self.stats.consumed.fetch_add(1, Ordering::Relaxed);
        self.stats
            .consumed_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
        self.stats.first_consume.get_or_init(Instant::now);
        if !self.stats.measuring.load(Ordering::Relaxed) {
            return;
        }
        if let Some(us) = age_us(payload) {
            let mut l = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
            l.total.saturating_record(us.max(1));
            l.interval.saturating_record(us.max(1));
        }
    }
}

#[derive(Clone, Copy, Default, Debug)]
pub struct Counts {
    pub published: u64,
    pub published_bytes: u64,
    pub consumed: u64,
    pub consumed_bytes: u64,
    pub errors: u64,
}

impl Counts {
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            published: self.published.saturating_sub(earlier.published),
            published_bytes: self.published_bytes.saturating_sub(earlier.published_bytes),
            consumed: self.consumed.saturating_sub(earlier.consumed),
            consumed_bytes: self.consumed_bytes.saturating_sub(earlier.consumed_bytes),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }
}

/// Shared by every client task of one run.
#[derive(Default)]
pub struct Stats {
    /// Messages the broker accepted: confirmed (AMQP confirms, Kafka delivery reports) or,
    /// without confirms, written to the socket.
    pub published: AtomicU64,
    pub published_bytes: AtomicU64,
    pub consumed: AtomicU64,
    pub consumed_bytes: AtomicU64,
    /// Nacks, failed deliveries, consumer errors.
    pub errors: AtomicU64,
    measuring: AtomicBool,
    first_consume: OnceLock<Instant>,
    latencies: Mutex<Vec<Arc<Mutex<Latency>>>>,
}

impl Stats {
    pub fn recorder(self: &Arc<Self>) -> Recorder {
        let latency = Arc::new(Mutex::new(Latency {
            total: histogram(),
            interval: histogram(),
        }));
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&latency));
        Recorder {
            stats: Arc::clone(self),
            latency,
        }
    }

    pub fn published(&self, messages: u64, bytes: u64) {
        self.published.fetch_add(messages, Ordering::Relaxed);
        self.published_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            published: self.published.load(Ordering::Relaxed),
            published_bytes: self.published_bytes.load(Ordering::Relaxed),
            consumed: self.consumed.load(Ordering::Relaxed),
            consumed_bytes: self.consumed_bytes.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    pub fn first_consume(&self) -> Option<Instant> {
        self.first_consume.get().copied()
    }

    /// Opens (or closes) the measured window for latency; clears what warm-up recorded.
    pub fn set_measuring(&self, on: bool) {
        if on {
            for l in self.each_latency() {
                let mut l = l.lock().unwrap_or_else(PoisonError::into_inner);
                l.total.reset();
                l.interval.reset();
            }
        }
        self.measuring.store(on, Ordering::Relaxed);
    }

    fn each_latency(&self) -> Vec<Arc<Mutex<Latency>>> {
        self.latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// All consumers' latency since the window opened.
    pub fn total_latency(&self) -> Histogram<u64> {
        let mut all = histogram();
        for l in self.each_latency() {
            let l = l.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds everywhere, so adding cannot fail.
            let _ = all.add(&l.total);
        }
        all
    }

    /// All consumers' latency since the previous call (for the progress line).
    pub fn take_interval_latency(&self) -> Histogram<u64> {
        let mut all = histogram();
        for l in self.each_latency() {
            let mut l = l.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = all.add(&l.interval);
            l.interval.reset();
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_to_a_small_age() {
        let mut p = payload(16);
        stamp(&mut p);
        let age = age_us(&p).unwrap_or(u64::MAX);
        assert!(age < 1_000_000, "age {age} us");
        assert_eq!(&p[8..], b"........");
    }

    #[test]
    fn short_payloads_carry_no_stamp() {
        let mut p = payload(4);
        stamp(&mut p);
        assert_eq!(p, b"....");
        assert_eq!(age_us(&p), None);
    }

    #[test]
    fn latency_counts_only_inside_the_window() {
        let stats = Arc::new(Stats::default());
        let r = stats.recorder();
        let mut p = payload(16);
        stamp(&mut p);
        r.received(&p);
        assert_eq!(stats.total_latency().len(), 0);
        stats.set_measuring(true);
        r.received(&p);
        r.received(&p);
        assert_eq!(stats.total_latency().len(), 2);
        assert_eq!(stats.take_interval_latency().len(), 2);
        assert_eq!(stats.take_interval_latency().len(), 0);
        assert_eq!(stats.counts().consumed, 3);
        assert_eq!(stats.counts().consumed_bytes, 48);
    }
}
