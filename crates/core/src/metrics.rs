//! Request counters and latency histograms of a frontend, by operation.
//!
//! A frontend creates one [`RequestMetrics`] with its operation names (Kafka: one per API
//! key) and observes each request when its response is ready; the management API renders
//! them. Observing touches only the operation's own atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::{Histogram, HistogramSnapshot};

#[derive(Debug)]
struct Operation {
    name: String,
    requests: AtomicU64,
    latency: Histogram,
}

/// Counts and latencies of one frontend's requests.
#[derive(Debug)]
pub struct RequestMetrics {
    /// Indexed by operation number; `None` where the number names nothing.
    operations: Vec<Option<Operation>>,
}

/// One operation's figures.
#[derive(Debug, Clone)]
pub struct OperationSnapshot {
    pub name: String,
    pub requests: u64,
    pub latency: HistogramSnapshot,
}

impl RequestMetrics {
    /// `names` pairs operation numbers (Kafka API keys) with their names.
    pub fn new(names: impl IntoIterator<Item = (usize, String)>) -> Self {
        let mut operations: Vec<Option<Operation>> = Vec::new();
        for (index, name) in names {
            if operations.len() <= index {
                operations.resize_with(index + 1, || None);
            }
            if let Some(slot) = operations.get_mut(index) {
                *slot = Some(Operation {
                    name,
                    requests: AtomicU64::new(0),
                    latency: Histogram::new(),
                });
            }
        }
        Self { operations }
    }

    /// Records one request of operation `index` that took `elapsed`.
    pub fn observe(&self, index: usize, elapsed: Duration) {
        if let Some(Some(op)) = self.operations.get(index) {
            op.requests.fetch_add(1, Ordering::Relaxed);
            op.latency.observe(elapsed);
        }
    }

    /// Operations that saw at least one request.
    pub fn snapshot(&self) -> Vec<OperationSnapshot> {
        self.operations
            .iter()
            .flatten()
            .filter_map(|op| {
                let requests = op.requests.load(Ordering::Relaxed);
                (requests > 0).then(|| OperationSnapshot {
                    name: op.name.clone(),
                    requests,
                    latency: op.latency.snapshot(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_observed_operations_are_reported() {
        let m = RequestMetrics::new([(0, "Produce".to_owned()), (3, "Metadata".to_owned())]);
        m.observe(3, Duration::from_millis(2));
        m.observe(3, Duration::from_millis(4));
        m.observe(7, Duration::from_millis(1)); // unknown: ignored
        let s = m.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].name.as_str(), s[0].requests), ("Metadata", 2));
        assert_eq!(s[0].latency.count, 2);
    }
}
