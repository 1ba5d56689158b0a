//! How a log rolls, retains and syncs.

use std::time::Duration;

use crate::LogError;
use crate::entry::{ENTRY_HEADER_LEN, SEGMENT_HEADER_LEN};

/// When appended data is forced to disk, and what an acknowledged append then promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// An append is durable (survives power loss) once [`Log::sync_to`](crate::Log::sync_to)
    /// for its end offset returns. Concurrent callers share one `fdatasync` (group commit): a
    /// leader syncs everything written so far while the others wait for it.
    Always,
    /// Data reaches disk within this interval: whoever owns the log calls
    /// [`Log::flush_if_due`](crate::Log::flush_if_due) from a ticker. Appends are acknowledged
    /// before they are on disk, so a power loss may drop up to one interval of them.
    Interval(Duration),
    /// Never synced except by [`Log::flush`](crate::Log::flush), `close` and segment rolls.
    /// Survives a process crash (the data is in the page cache), not a power loss.
    Never,
}

/// A log's tunables. [`LogConfig::default`] mirrors Kafka's topic defaults where Kafka has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would grow past this many bytes. Clamped to
    /// `u32::MAX` (the indexes store 32-bit positions).
    pub segment_bytes: u64,
    /// Roll when the active segment received its first entry longer ago than this.
    pub segment_age: Option<Duration>,
    /// Delete head segments as long as what remains is still at least this many bytes (Kafka's
    /// `retention.bytes`: the log holds between this and this plus one segment).
    pub retention_bytes: Option<u64>,
    /// Delete head segments whose newest entry timestamp is older than this.
    pub retention_age: Option<Duration>,
    /// Bytes of entries between two sparse index points.
    pub index_interval_bytes: u32,
    /// Largest payload one entry may carry; larger ones fail with `EntryTooLarge`.
    pub max_entry_bytes: u32,
    /// Durability policy.
    pub fsync: FsyncPolicy,
}

impl Default for LogConfig {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        LogConfig {
            segment_bytes: 1 << 30,
            segment_age: Some(7 * DAY),
            retention_bytes: None,
            retention_age: Some(7 * DAY),
            index_interval_bytes: 4096,
            // Kafka's message.max.bytes default.
            max_entry_bytes: 1_048_588,
            fsync: FsyncPolicy::Always,
        }
    }
}

/// Smallest segment size accepted: a header and one small entry.
pub(crate) const MIN_SEGMENT_BYTES: u64 = (SEGMENT_HEADER_LEN + ENTRY_HEADER_LEN) as u64 + 1;

impl LogConfig {
    pub(crate) fn validate(&self) -> Result<(), LogError> {
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(LogError::InvalidConfig {
                reason: "segment_bytes must hold a header and one entry (at least 45 bytes)",
            });
        }
        if self.index_interval_bytes == 0 {
            return Err(LogError::InvalidConfig {
                reason: "index_interval_bytes must be > 0",
            });
        }
        if self.max_entry_bytes == 0 {
            return Err(LogError::InvalidConfig {
                reason: "max_entry_bytes must be > 0",
            });
        }
        if u64::from(self.max_entry_bytes) + MIN_SEGMENT_BYTES > u64::from(u32::MAX) {
            return Err(LogError::InvalidConfig {
                reason: "max_entry_bytes must leave room for the segment and entry headers",
            });
        }
        if self.segment_age.is_some_and(|age| age.is_zero()) {
            return Err(LogError::InvalidConfig {
                reason: "segment_age must be > 0",
            });
        }
        if let FsyncPolicy::Interval(every) = self.fsync
            && every.is_zero()
        {
            return Err(LogError::InvalidConfig {
                reason: "fsync interval must be > 0",
            });
        }
        Ok(())
    }

    /// The size at which the active segment rolls.
    pub(crate) fn roll_bytes(&self) -> u64 {
        self.segment_bytes.min(u64::from(u32::MAX))
    }

    /// How much address space a new active segment maps: enough for `segment_bytes`, or for
    /// one maximal entry in an otherwise empty segment, whichever is larger.
    pub(crate) fn segment_capacity(&self) -> u64 {
        let one_entry =
            (SEGMENT_HEADER_LEN + ENTRY_HEADER_LEN) as u64 + u64::from(self.max_entry_bytes);
        self.roll_bytes().max(one_entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(LogConfig::default().validate().is_ok());
    }

    #[test]
    fn rejects_unusable_values() {
        let bad = [
            LogConfig {
                segment_bytes: 10,
                ..LogConfig::default()
            },
            LogConfig {
                index_interval_bytes: 0,
                ..LogConfig::default()
            },
            LogConfig {
                max_entry_bytes: 0,
                ..LogConfig::default()
            },
            LogConfig {
                max_entry_bytes: u32::MAX,
                ..LogConfig::default()
            },
            LogConfig {
                segment_age: Some(Duration::ZERO),
                ..LogConfig::default()
            },
            LogConfig {
                fsync: FsyncPolicy::Interval(Duration::ZERO),
                ..LogConfig::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(LogError::InvalidConfig { .. })),
                "{config:?} accepted"
            );
        }
    }

    #[test]
    fn capacity_fits_one_maximal_entry() {
        let config = LogConfig {
            segment_bytes: 1024,
            max_entry_bytes: 4096,
            ..LogConfig::default()
        };
        assert_eq!(config.roll_bytes(), 1024);
        assert_eq!(config.segment_capacity(), 16 + 28 + 4096);
        let big = LogConfig {
            segment_bytes: u64::MAX,
            ..LogConfig::default()
        };
        assert_eq!(big.roll_bytes(), u64::from(u32::MAX));
    }
}
