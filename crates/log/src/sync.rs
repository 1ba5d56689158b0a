//! Durability: group commit, the durable offset, and poisoning.
//!
//! `sync_to` callers elect one leader at a time. The leader reads the committed end and the
//! active file under the state lock, drops the lock, runs one `fdatasync`, and then marks
//! everything up to that end durable and wakes the waiters. Callers that arrived during the
//! sync are covered by it when their offsets were written before it started, and otherwise
//! elect the next leader, so N concurrent appenders cost about one fsync per round, not N.
//! Appends never wait for a sync: the writer lock is not held while it runs.
//!
//! Segments other than the active one are synced by the roll that sealed them (before the
//! next segment's file exists), so syncing the active file covers every committed offset.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::LogError;

struct Poison {
    during: &'static str,
    cause: String,
}

struct State {
    syncing: bool,
    durable: u64,
    file: Arc<File>,
    path: PathBuf,
    last_flush: Instant,
}

pub(crate) struct Durability {
    dir: PathBuf,
    state: Mutex<State>,
    done: Condvar,
    durable: AtomicU64,
    fsyncs: AtomicU64,
    poison: OnceLock<Poison>,
    #[cfg(test)]
    pub(crate) fail_syncs: std::sync::atomic::AtomicBool,
    /// Test hook: stretch every fsync by this many milliseconds.
    #[cfg(test)]
    pub(crate) slow_syncs_ms: AtomicU64,
}

impl Durability {
    /// `durable`: everything below it is on disk (recovery synced it).
    pub(crate) fn new(dir: PathBuf, file: Arc<File>, path: PathBuf, durable: u64) -> Self {
        Durability {
            dir,
            state: Mutex::new(State {
                syncing: false,
                durable,
                file,
                path,
                last_flush: Instant::now(),
            }),
            done: Condvar::new(),
            durable: AtomicU64::new(durable),
            fsyncs: AtomicU64::new(0),
            poison: OnceLock::new(),
            #[cfg(test)]
            fail_syncs: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            slow_syncs_ms: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Fails with `Poisoned` once any write or sync has failed.
    pub(crate) fn check(&self) -> Result<(), LogError> {
        self.poison
            .get()
            .map_or(Ok(()), |poison| Err(self.poisoned(poison)))
    }

    fn poisoned(&self, poison: &Poison) -> LogError {
        LogError::Poisoned {
            dir: self.dir.clone(),
            during: poison.during,
            cause: poison.cause.clone(),
        }
    }

    /// Records the first failure (later ones keep it); every later append and sync fails.
    pub(crate) fn poison(&self, during: &'static str, cause: &dyn std::fmt::Display) -> LogError {
        let poison = self.poison.get_or_init(|| Poison {
            during,
            cause: cause.to_string(),
        });
        // Wake waiters so they see the poison instead of waiting for a sync that never comes.
        drop(self.lock());
        self.done.notify_all();
        self.poisoned(poison)
    }

    /// `fdatasync` on a segment file, counted; a failure poisons the log.
    pub(crate) fn sync_file(&self, file: &File, path: &std::path::Path) -> Result<(), LogError> {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        #[cfg(test)]
        std::thread::sleep(Duration::from_millis(
            self.slow_syncs_ms.load(Ordering::Relaxed),
        ));
        #[cfg(test)]
        if self.fail_syncs.load(Ordering::Relaxed) {
            return Err(self.poison(
                "fsync",
                &std::io::Error::other(format!("injected on {}", path.display())),
            ));
        }
        file.sync_data()
            .map_err(|e| self.poison("fsync", &LogError::io(path, e)))
    }

    pub(crate) fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    pub(crate) fn durable_offset(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    fn mark_durable(&self, state: &mut State, offset: u64) {
        state.durable = state.durable.max(offset);
        state.last_flush = Instant::now();
        self.durable.store(state.durable, Ordering::Release);
    }

    /// The writer sealed a segment (already synced through `sealed_next`) and switched to a
    /// new file. Called before any entry is written to the new file.
    pub(crate) fn rolled(&self, file: Arc<File>, path: PathBuf, sealed_next: u64) {
        let mut state = self.lock();
        state.file = file;
        state.path = path;
        self.mark_durable(&mut state, sealed_next);
    }

    /// Blocks until every offset below `offset` (clamped to the committed end, read from
    /// `next`) is on disk, leading a sync or joining one.
    pub(crate) fn sync_to(&self, offset: u64, next: &AtomicU64) -> Result<(), LogError> {
        self.check()?;
        let mut state = self.lock();
        let offset = offset.min(next.load(Ordering::Acquire));
        loop {
            self.check()?;
            if state.durable >= offset {
                return Ok(());
            }
            if !state.syncing {
                break;
            }
            state = self
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        // Lead. The writer swaps `file` under this lock before writing to a new segment, so
        // the pair read here is consistent: every offset below `target` is in `file` or in a
        // segment its roll already synced.
        state.syncing = true;
        let target = next.load(Ordering::Acquire);
        let (file, path) = (Arc::clone(&state.file), state.path.clone());
        drop(state);
        let result = self.sync_file(&file, &path);
        let mut state = self.lock();
        state.syncing = false;
        if result.is_ok() {
            self.mark_durable(&mut state, target);
        }
        drop(state);
        self.done.notify_all();
        result
    }

    /// Whether an `Interval(every)` flush is due at `now`.
    pub(crate) fn flush_due(&self, now: Instant, every: Duration) -> bool {
        now.saturating_duration_since(self.lock().last_flush) >= every
    }

    /// Records that nothing needed syncing at `now`, so the interval restarts.
    pub(crate) fn touch(&self, now: Instant) {
        let mut state = self.lock();
        state.last_flush = state.last_flush.max(now);
    }
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("durable", &self.durable_offset())
            .field("fsyncs", &self.fsync_count())
            .field("poisoned", &self.poison.get().map(|p| p.during))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn durability(dir: &std::path::Path) -> Durability {
        let path = dir.join("f");
        let file = Arc::new(File::create(&path).unwrap());
        Durability::new(dir.to_path_buf(), file, path, 0)
    }

    #[test]
    fn sync_marks_the_committed_end_durable() {
        let dir = tempfile::tempdir().unwrap();
        let d = durability(dir.path());
        let next = AtomicU64::new(10);
        d.sync_to(4, &next).unwrap();
        assert_eq!(d.durable_offset(), 10, "a sync covers everything committed");
        d.sync_to(10, &next).unwrap();
        assert_eq!(d.fsync_count(), 1, "already durable: no second fsync");
        d.sync_to(50, &next).unwrap();
        assert_eq!(d.fsync_count(), 1, "offsets past the end are clamped");
    }

    #[test]
    fn failed_sync_poisons_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let d = durability(dir.path());
        let next = AtomicU64::new(3);
        d.fail_syncs.store(true, Ordering::Relaxed);
        let err = d.sync_to(3, &next).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::Poisoned {
                    during: "fsync",
                    ..
                }
            ),
            "{err}"
        );
        d.fail_syncs.store(false, Ordering::Relaxed);
        assert!(matches!(
            d.sync_to(3, &next),
            Err(LogError::Poisoned { .. })
        ));
        assert_eq!(
            d.durable_offset(),
            0,
            "nothing claimed durable after a failed fsync"
        );
        let text = d.check().unwrap_err().to_string();
        assert!(
            text.contains("fsync failed earlier") && text.contains("injected"),
            "{text}"
        );
    }
}
