//! Resource alarms (memory, disk): raised by whoever watches the resource (the server's
//! resource monitor), read by every frontend and the management API.
//!
//! A flag per resource, so checking it on the publish path is one relaxed load, and a
//! `watch` channel that wakes whoever waits for an alarm to change (a blocked AMQP
//! connection, a throttled Kafka produce) without polling.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::watch;

/// A watched resource, as RabbitMQ names its alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    Disk,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Disk => "disk",
        }
    }

    /// The reason RabbitMQ gives in `connection.blocked`.
    pub fn blocked_reason(self) -> &'static str {
        match self {
            Self::Memory => "low on memory",
            Self::Disk => "low on disk",
        }
    }
}

/// The latest reading of both resources and their limits (0: not measured yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of memory in use, as the monitor measures it.
    pub memory_used: u64,
    /// The memory high watermark in bytes.
    pub memory_limit: u64,
    /// Bytes free on the data directory's file system.
    pub disk_free: u64,
    /// The free-space limit below which the disk alarm is raised.
    pub disk_free_limit: u64,
}

/// The alarms of one broker.
#[derive(Debug)]
pub struct Alarms {
    memory: AtomicBool,
    disk: AtomicBool,
    memory_used: AtomicU64,
    memory_limit: AtomicU64,
    disk_free: AtomicU64,
    disk_free_limit: AtomicU64,
    /// Bumped on every change of an alarm.
    changes: watch::Sender<u64>,
}

impl Default for Alarms {
    fn default() -> Self {
        Self {
            memory: AtomicBool::new(false),
            disk: AtomicBool::new(false),
            memory_used: AtomicU64::new(0),
            memory_limit: AtomicU64::new(0),
            disk_free: AtomicU64::new(0),
            disk_free_limit: AtomicU64::new(0),
            changes: watch::Sender::new(0),
        }
    }
}

impl Alarms {
    fn flag(&self, resource: Resource) -> &AtomicBool {
        match resource {
            Resource::Memory => &self.memory,
            Resource::Disk => &self.disk,
        }
    }

    /// Raises or clears the alarm of `resource`; returns whether that changed it.
    pub fn set(&self, resource: Resource, on: bool) -> bool {
        let changed = self.flag(resource).swap(on, Ordering::Relaxed) != on;
        if changed {
            self.changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        changed
    }

    pub fn is_set(&self, resource: Resource) -> bool {
        self.flag(resource).load(Ordering::Relaxed)
    }

    /// Whether any alarm is in effect (publishers are blocked).
    pub fn any(&self) -> bool {
        self.memory.load(Ordering::Relaxed) || self.disk.load(Ordering::Relaxed)
    }

    /// Alarms in effect.
    pub fn active(&self) -> Vec<Resource> {
        [Resource::Memory, Resource::Disk]
            .into_iter()
            .filter(|r| self.is_set(*r))
            .collect()
    }

    /// A receiver that sees a change whenever an alarm is raised or cleared.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Records the monitor's latest reading.
    pub fn record(&self, usage: Usage) {
        self.memory_used.store(usage.memory_used, Ordering::Relaxed);
        self.memory_limit
            .store(usage.memory_limit, Ordering::Relaxed);
        self.disk_free.store(usage.disk_free, Ordering::Relaxed);
        self.disk_free_limit
            .store(usage.disk_free_limit, Ordering::Relaxed);
    }

    /// The monitor's latest reading.
    pub fn usage(&self) -> Usage {
        Usage {
            memory_used: self.memory_used.load(Ordering::Relaxed),
            memory_limit: self.memory_limit.load(Ordering::Relaxed),
            disk_free: self.disk_free.load(Ordering::Relaxed),
            disk_free_limit: self.disk_free_limit.load(Ordering::Relaxed),
        }
    }

    /// Waits until no alarm is in effect.
    pub async fn cleared(&self) {
        let mut changes = self.subscribe();
        while self.any() {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarms_report_changes_and_what_is_active() {
        let alarms = Alarms::default();
        assert!(alarms.active().is_empty());
        assert!(alarms.set(Resource::Memory, true));
        assert!(!alarms.set(Resource::Memory, true));
        assert_eq!(alarms.active(), vec![Resource::Memory]);
        assert!(alarms.any());
        assert!(alarms.set(Resource::Memory, false));
        assert!(alarms.active().is_empty());
        assert!(!alarms.any());
    }

    #[tokio::test]
    async fn waiters_wake_when_the_last_alarm_clears() {
        let alarms = std::sync::Arc::new(Alarms::default());
        alarms.set(Resource::Memory, true);
        alarms.set(Resource::Disk, true);
        let waiter = tokio::spawn({
            let alarms = std::sync::Arc::clone(&alarms);
            async move { alarms.cleared().await }
        });
        alarms.set(Resource::Memory, false);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the disk alarm is still in effect");
        alarms.set(Resource::Disk, false);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
    }
}
