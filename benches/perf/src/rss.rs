//! The broker's resident memory and CPU time, read from `/proc/PID/{status,stat}` (Linux).
//!
//! `VmRSS` counts file pages the process has mapped, so a broker that serves reads from
//! memory-mapped log segments shows those pages too; `RssAnon` (heap, stacks) is kept beside
//! it as the figure for memory the broker itself allocated.

use std::sync::atomic::{AtomicU64, Ordering};

/// Resident set size of `pid` in bytes (`VmRSS`), or None if the process is gone or the
/// file is unreadable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kib(&status, "VmRSS:")
}

/// Anonymous resident memory of `pid` in bytes (`RssAnon`).
pub fn anon_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kib(&status, "RssAnon:")
}

fn parse_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line
        .trim_start_matches(key)
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// CPU time (user + system, all threads) `pid` has used so far; `None` is this process.
/// `/proc/PID/stat` counts in USER_HZ ticks, which Linux fixes at 100 per second.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    parse_cpu_seconds(&std::fs::read_to_string(path).ok()?)
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // Fields after the command (which may hold spaces and parentheses): state is field 3,
    // utime field 14, stime field 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Samples of one process's RSS: first, largest and latest, and the largest `RssAnon`.
pub struct RssTracker {
    pid: Option<u32>,
    first: AtomicU64,
    max: AtomicU64,
    last: AtomicU64,
    anon_max: AtomicU64,
}

impl RssTracker {
    pub fn new(pid: Option<u32>) -> Self {
        let t = RssTracker {
            pid,
            first: AtomicU64::new(0),
            max: AtomicU64::new(0),
            last: AtomicU64::new(0),
            anon_max: AtomicU64::new(0),
        };
        if let Some(now) = t.sample() {
            t.first.store(now, Ordering::Relaxed);
        }
        t
    }

    /// Takes a sample; returns it.
    pub fn sample(&self) -> Option<u64> {
        let pid = self.pid?;
        if let Some(anon) = anon_bytes(pid) {
            self.anon_max.fetch_max(anon, Ordering::Relaxed);
        }
        let now = rss_bytes(pid)?;
        self.max.fetch_max(now, Ordering::Relaxed);
        self.last.store(now, Ordering::Relaxed);
        Some(now)
    }

    /// (first, max, last, anon max) in bytes, when a pid was given and readable.
    pub fn figures(&self) -> Option<(u64, u64, u64, u64)> {
        self.pid?;
        let max = self.max.load(Ordering::Relaxed);
        (max > 0).then(|| {
            (
                self.first.load(Ordering::Relaxed),
                max,
                self.last.load(Ordering::Relaxed),
                self.anon_max.load(Ordering::Relaxed),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status =
            "Name:\tferrymq\nVmPeak:\t  9000 kB\nVmRSS:\t    7168 kB\nRssAnon:\t 5000 kB\n";
        assert_eq!(parse_kib(status, "VmRSS:"), Some(7168 * 1024));
        assert_eq!(parse_kib(status, "RssAnon:"), Some(5000 * 1024));
        assert_eq!(parse_kib("Name:\tx\n", "VmRSS:"), None);
    }

    #[test]
    fn parses_cpu_ticks() {
        let stat = "42 (a) b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("42 (x) S 1"), None);
        assert!(cpu_seconds(None).is_some());
    }

    #[test]
    fn reads_own_rss() {
        let me = std::process::id();
        let rss = rss_bytes(me).expect("own /proc status");
        assert!(rss > 1024 * 1024, "rss {rss}");
        let t = RssTracker::new(Some(me));
        let (first, max, last, anon) = t.figures().expect("figures");
        assert!(first > 0 && max >= first && last > 0 && anon > 0 && anon <= max);
        assert!(RssTracker::new(None).figures().is_none());
    }
}
