//! Background work on a vhost's streams: retention, interval fsyncs and producer snapshots.
//!
//! One task per [`Streams`] ticks every [`FLUSH_TICK`]; each tick it hands the due work to the
//! blocking pool (file deletion and fsync never run on an async worker). The task holds only
//! a `Weak` reference and ends when the streams are dropped or closed.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::partition::lock;
use super::registry::{Streams, save_producers};

/// How often interval-policy partitions are checked for a due fsync.
pub const FLUSH_TICK: Duration = Duration::from_millis(100);
/// How often producer state is snapshotted (bounds replay after a crash).
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Streams {
    /// Starts (or restarts) the maintenance task; retention runs every `retention_every`.
    /// Does nothing outside a tokio runtime.
    pub fn start_maintenance(self: &Arc<Self>, retention_every: Duration) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let task = handle.spawn(run(weak, retention_every.max(FLUSH_TICK)));
        if let Some(old) = lock(&self.maintenance).replace(task) {
            old.abort();
        }
    }

    /// Starts the maintenance task unless one runs already (the Kafka frontend starts its
    /// vhost's with its own retention interval).
    pub fn ensure_maintenance(self: &Arc<Self>, retention_every: Duration) {
        if lock(&self.maintenance).is_none() {
            self.start_maintenance(retention_every);
        }
    }

    /// One retention pass over every partition (blocking). Returns bytes deleted.
    pub fn apply_retention(&self) -> u64 {
        let now = now_ms();
        let mut deleted = 0;
        for stream in self.list() {
            for partition in stream.partitions().iter() {
                match partition.apply_retention(now) {
                    Ok(bytes) => deleted += bytes,
                    Err(e) => tracing::error!(
                        stream = stream.name(),
                        partition = partition.index(),
                        "retention failed: {e}"
                    ),
                }
            }
        }
        deleted
    }

    fn flush_due(&self) {
        for stream in self.list() {
            for partition in stream.partitions().iter() {
                if let Err(e) = partition.flush_if_due() {
                    tracing::error!(
                        stream = stream.name(),
                        partition = partition.index(),
                        "interval fsync failed: {e}"
                    );
                }
            }
        }
    }

    fn snapshot_producers(&self) {
        for stream in self.list() {
            for partition in stream.partitions().iter() {
                if let Err(e) = save_producers(&stream, partition) {
                    tracing::warn!(
                        stream = stream.name(),
                        partition = partition.index(),
                        "producer snapshot failed: {e}"
                    );
                }
            }
        }
    }
}

async fn run(weak: Weak<Streams>, retention_every: Duration) {
    let mut ticker = tokio::time::interval(FLUSH_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_retention = Instant::now() + retention_every;
    let mut next_snapshot = Instant::now() + SNAPSHOT_EVERY;
    loop {
        ticker.tick().await;
        let Some(streams) = weak.upgrade() else {
            return;
        };
        let now = Instant::now();
        let retention = now >= next_retention;
        let snapshot = now >= next_snapshot;
        if retention {
            next_retention = now + retention_every;
        }
        if snapshot {
            next_snapshot = now + SNAPSHOT_EVERY;
        }
        let work = tokio::task::spawn_blocking(move || {
            streams.flush_due();
            if retention {
                streams.apply_retention();
            }
            if snapshot {
                streams.snapshot_producers();
            }
        });
        if let Err(e) = work.await {
            tracing::error!("stream maintenance failed: {e}");
        }
    }
}
