//! The data directory's exclusive lock: one broker per data directory.
//!
//! `<data_dir>/LOCK` is locked with `File::try_lock` (an advisory whole-file lock, `flock` on
//! Linux) and holds the owner's PID so a refused second instance can say who holds it.
//!
//! # Invariants
//!
//! - The lock lives exactly as long as [`DataDirLock`]; the OS releases it if the process dies,
//!   so a crashed broker never leaves a stale lock behind.
//! - The LOCK file is never deleted: unlinking it would let a second process lock a fresh file
//!   while the first still holds the old one.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Held for the broker's lifetime; dropping it releases the data directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates `data_dir` if missing and locks it, or says which process holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        // No truncation before the lock is ours: the holder's PID must stay readable.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_pid(&mut file).map_or_else(
                    || "a process whose PID is not recorded yet".to_owned(),
                    |pid| format!("pid {pid}"),
                );
                bail!(
                    "data directory {} is in use by another ferrymq ({holder} holds {})",
                    data_dir.display(),
                    path.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        write_pid(&mut file, std::process::id())
            .with_context(|| format!("cannot write pid to {}", path.display()))?;
        Ok(Self { _file: file, path })
    }

    /// The LOCK file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn write_pid(file: &mut File, pid: u32) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{pid}")?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_directory_and_records_the_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let lock = DataDirLock::acquire(&dir).unwrap();
        let text = fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text, format!("{}\n", std::process::id()));
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(tmp.path()).unwrap();
        let err = DataDirLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&tmp.path().display().to_string()), "{err}");
        drop(first);
        DataDirLock::acquire(tmp.path()).unwrap();
    }

    #[test]
    fn a_stale_pid_from_a_dead_owner_does_not_block() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(LOCK_FILE), "999999999\n").unwrap();
        let lock = DataDirLock::acquire(tmp.path()).unwrap();
        let text = fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }
}
