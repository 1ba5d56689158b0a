//! Every poisoned log of the process, for health checks and metrics.
//!
//! A log is listed from its first failed write or fsync until it is dropped (closed, deleted,
//! or reopened: a reopened log recovers and starts clean), so what an operator sees is what
//! still refuses appends now.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

/// A log that refuses appends and syncs since a write or fsync failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedLog {
    pub dir: PathBuf,
    /// The operation that failed ("write", "fsync", ...).
    pub during: &'static str,
    pub cause: String,
    pub since: SystemTime,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static FAILED: Mutex<BTreeMap<u64, FailedLog>> = Mutex::new(BTreeMap::new());

fn failed() -> MutexGuard<'static, BTreeMap<u64, FailedLog>> {
    FAILED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The logs of this process that are poisoned now, oldest failure first.
pub fn failed_logs() -> Vec<FailedLog> {
    let mut logs: Vec<FailedLog> = failed().values().cloned().collect();
    logs.sort_by_key(|log| log.since);
    logs
}

/// A log's place in the registry; unlisted when dropped.
#[derive(Debug)]
pub(crate) struct Listing {
    id: u64,
}

impl Listing {
    pub(crate) fn new() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub(crate) fn list(&self, log: FailedLog) {
        failed().insert(self.id, log);
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        failed().remove(&self.id);
    }
}
