//! Figures about this process and its machine, read from `/proc` and `statvfs`.

use std::path::Path;

/// Resident set size in bytes (`VmRSS`), 0 when unknown.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let kib = line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?;
                kib.trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kib| kib * 1024)
}

/// Open file descriptors, 0 when unknown.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

/// The soft limit on open file descriptors, 0 when unknown.
pub fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits.lines().find_map(|line| {
                let rest = line.strip_prefix("Max open files")?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
        })
        .unwrap_or(0)
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn disk_free(path: &Path) -> u64 {
    rustix::fs::statvfs(path).map_or(0, |s| s.f_bavail.saturating_mul(s.f_frsize))
}

/// CPU cores this process may run on.
pub fn processors() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_descriptors() {
        assert!(rss_bytes() > 0);
        assert!(open_fds() > 0);
        assert!(max_fds() >= open_fds());
        assert!(disk_free(Path::new("/")) > 0);
        assert!(processors() >= 1);
    }
}
