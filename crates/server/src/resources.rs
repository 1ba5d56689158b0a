//! The resource monitor: samples memory and the data directory's free disk space, and raises
//! or clears the broker's alarms (RabbitMQ's `vm_memory_high_watermark` and
//! `disk_free_limit`).
//!
//! Memory is what the allocator has handed out and not had back (jemalloc's
//! `stats.allocated`, RabbitMQ's `allocated` strategy): message bodies, queues, buffers. The
//! page cache behind the mmap-backed logs is not counted, as the kernel reclaims it, and
//! freed memory counts as freed at once rather than when jemalloc returns it to the OS. A
//! relative watermark is a share of the machine's memory, or of the cgroup's limit where that
//! is lower (a container).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferrymq_core::Broker;
use ferrymq_core::alarms::{Resource, Usage};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// `[resources]`: when publishers are blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesConfig {
    /// Publishers are blocked while the broker uses more memory than this: a share of the
    /// machine's (or the cgroup's) memory (`"0.4"`, `"40%"`) or a size (`"2GiB"`, `"512MB"`,
    /// bytes).
    pub memory_high_watermark: String,
    /// Publishers are blocked while the data directory's file system has less free space
    /// than this size (`"50MB"`, `"1GiB"`, bytes; `"0"`: never).
    pub disk_free_limit: String,
    /// How often memory and disk are sampled.
    pub check_interval_ms: u64,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        Self {
            memory_high_watermark: "0.4".to_owned(),
            disk_free_limit: "50MB".to_owned(),
            check_interval_ms: 100,
        }
    }
}

/// A watermark as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Watermark {
    /// A share of the memory available to the process.
    Relative(f64),
    Absolute(u64),
}

impl Watermark {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            let share = percent
                .trim()
                .parse::<f64>()
                .map_err(|_| format!("{text:?} is not a percentage"))?;
            return Self::relative(share / 100.0, text);
        }
        if text.contains('.') && !text.chars().any(char::is_alphabetic) {
            let share = text
                .parse::<f64>()
                .map_err(|_| format!("{text:?} is not a number"))?;
            return Self::relative(share, text);
        }
        parse_size(text).map(Self::Absolute)
    }

    fn relative(share: f64, text: &str) -> Result<Self, String> {
        if share > 0.0 && share <= 1.0 {
            Ok(Self::Relative(share))
        } else {
            Err(format!("{text:?}: a share of memory lies in (0, 1]"))
        }
    }

    /// The watermark in bytes, given the memory the process may use.
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "a share in (0, 1] of a byte count fits in u64"
    )]
    pub fn bytes(self, available: u64) -> u64 {
        match self {
            Self::Relative(share) => (available as f64 * share) as u64,
            Self::Absolute(bytes) => bytes,
        }
    }
}

/// Parses `"50MB"`, `"1GiB"`, `"4096"` (RabbitMQ's size units: kB/MB/GB are powers of 1000,
/// KiB/MiB/GiB of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (for example 512MiB, 2GB or 4096)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        other => return Err(format!("{text:?}: unknown unit {other:?}")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// What the monitor compares its samples with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub memory_high_watermark: u64,
    pub disk_free_limit: u64,
}

impl Limits {
    /// Resolves the configuration against this machine.
    pub fn resolve(config: &ResourcesConfig) -> Result<Self, String> {
        let watermark = Watermark::parse(&config.memory_high_watermark)
            .map_err(|e| format!("resources.memory_high_watermark: {e}"))?;
        let disk = parse_size(&config.disk_free_limit)
            .map_err(|e| format!("resources.disk_free_limit: {e}"))?;
        Ok(Self {
            memory_high_watermark: watermark.bytes(available_memory()),
            disk_free_limit: disk,
        })
    }
}

/// The memory this process may use: the machine's, or its cgroup's limit where lower.
pub fn available_memory() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let kib = text
                .lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(1 << 32);
    cgroup_limit().map_or(total, |limit| limit.min(total))
}

/// The memory limit of this process's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`).
fn cgroup_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut candidates = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            candidates.push(
                PathBuf::from("/sys/fs/cgroup")
                    .join(path)
                    .join("memory.max"),
            );
        } else if controllers.split(',').any(|c| c == "memory") {
            let v1 = PathBuf::from("/sys/fs/cgroup/memory");
            candidates.push(v1.join(path).join("memory.limit_in_bytes"));
        }
    }
    // Inside a container the cgroup path may not be mounted under its own name.
    candidates.push(PathBuf::from("/sys/fs/cgroup/memory.max"));
    candidates.iter().find_map(|file| {
        std::fs::read_to_string(file)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    })
}

/// Bytes the allocator has handed out and not had back (0 if the allocator cannot say).
pub fn memory_used() -> u64 {
    // The statistics are a snapshot taken when the epoch advances.
    if tikv_jemalloc_ctl::epoch::advance().is_err() {
        return 0;
    }
    tikv_jemalloc_ctl::stats::allocated::read().map_or(0, |n| n as u64)
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn disk_free(path: &std::path::Path) -> Option<u64> {
    rustix::fs::statvfs(path)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// Samples every `interval` until `shutdown`, raising and clearing the broker's alarms.
pub async fn monitor(
    broker: Arc<Broker>,
    limits: Limits,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        sample(&broker, limits);
    }
}

/// Measures memory and disk once, records the reading and raises or clears the alarms (run
/// once before the listeners accept, so the first client already meets the alarms).
pub fn sample(broker: &Broker, limits: Limits) {
    let data_dir = &broker.config().data_dir;
    let used = memory_used();
    let free = disk_free(data_dir);
    let alarms = broker.alarms();
    alarms.record(Usage {
        memory_used: used,
        memory_limit: limits.memory_high_watermark,
        disk_free: free.unwrap_or(0),
        disk_free_limit: limits.disk_free_limit,
    });
    let memory_over = used > limits.memory_high_watermark;
    if alarms.set(Resource::Memory, memory_over) {
        if memory_over {
            tracing::warn!(
                used,
                watermark = limits.memory_high_watermark,
                "memory alarm set: publishers are blocked"
            );
        } else {
            tracing::info!(
                used,
                watermark = limits.memory_high_watermark,
                "memory alarm cleared"
            );
        }
    }
    // A file system that cannot be read keeps the alarm as it was.
    if let Some(free) = free {
        let disk_low = free < limits.disk_free_limit;
        if alarms.set(Resource::Disk, disk_low) {
            if disk_low {
                tracing::warn!(
                    free,
                    limit = limits.disk_free_limit,
                    dir = %data_dir.display(),
                    "disk alarm set: publishers are blocked"
                );
            } else {
                tracing::info!(free, limit = limits.disk_free_limit, "disk alarm cleared");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_are_shares_or_sizes() {
        assert_eq!(Watermark::parse("0.4"), Ok(Watermark::Relative(0.4)));
        assert_eq!(Watermark::parse("40%"), Ok(Watermark::Relative(0.4)));
        assert_eq!(Watermark::parse("2GiB"), Ok(Watermark::Absolute(2 << 30)));
        assert_eq!(
            Watermark::parse("512MB"),
            Ok(Watermark::Absolute(512_000_000))
        );
        assert_eq!(Watermark::parse("4096"), Ok(Watermark::Absolute(4096)));
        assert!(Watermark::parse("1.5").is_err());
        assert!(Watermark::parse("0%").is_err());
        assert!(Watermark::parse("lots").is_err());
        assert!(Watermark::parse("12XB").is_err());
        assert_eq!(Watermark::Relative(0.5).bytes(1000), 500);
        assert_eq!(Watermark::Absolute(7).bytes(1000), 7);
    }

    #[test]
    fn sizes_follow_rabbitmqs_units() {
        assert_eq!(parse_size("50MB"), Ok(50_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size(" 3 kB "), Ok(3_000));
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999TB").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn this_process_is_measured() {
        assert!(available_memory() > 0);
        assert!(disk_free(std::path::Path::new("/")).is_some());
        let defaults = Limits::resolve(&ResourcesConfig::default()).expect("defaults resolve");
        assert_eq!(defaults.disk_free_limit, 50_000_000);
        assert!(defaults.memory_high_watermark <= available_memory());
    }

    #[tokio::test]
    async fn the_monitor_raises_and_clears_the_disk_alarm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ferrymq_core::BrokerConfig::with_data_dir(dir.path());
        let broker = tokio::task::spawn_blocking(move || Broker::open(config))
            .await
            .expect("joined")
            .expect("opened");
        let shutdown = CancellationToken::new();
        let limits = Limits {
            memory_high_watermark: u64::MAX,
            disk_free_limit: u64::MAX,
        };
        let task = tokio::spawn(monitor(
            Arc::clone(&broker),
            limits,
            Duration::from_millis(10),
            shutdown.clone(),
        ));
        let mut changes = broker.alarms().subscribe();
        tokio::time::timeout(Duration::from_secs(10), async {
            while !broker.alarms().is_set(Resource::Disk) {
                changes.changed().await.expect("alarms live");
            }
        })
        .await
        .expect("no file system has u64::MAX bytes free");
        assert!(!broker.alarms().is_set(Resource::Memory));
        assert!(broker.alarms().usage().disk_free > 0);
        shutdown.cancel();
        task.await.expect("monitor ends on shutdown");
    }
}
