//! Resource alarms (memory, disk): raised by whoever watches the resource, read by every
//! frontend and the management API.
//!
//! A flag per resource, so checking it on the publish path is one relaxed load.

use std::sync::atomic::{AtomicBool, Ordering};

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
}

/// The alarms of one broker.
#[derive(Debug, Default)]
pub struct Alarms {
    memory: AtomicBool,
    disk: AtomicBool,
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
        self.flag(resource).swap(on, Ordering::Relaxed) != on
    }

    pub fn is_set(&self, resource: Resource) -> bool {
        self.flag(resource).load(Ordering::Relaxed)
    }

    /// Alarms in effect.
    pub fn active(&self) -> Vec<Resource> {
        [Resource::Memory, Resource::Disk]
            .into_iter()
            .filter(|r| self.is_set(*r))
            .collect()
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
        assert!(alarms.set(Resource::Memory, false));
        assert!(alarms.active().is_empty());
    }
}
