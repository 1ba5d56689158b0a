//! Durability: group commit, the durable offset, and poisoning.
//!
//! `sync_to` callers elect one leader at a time. The leader reads the committed end and the
//! active file under the state lock, drops the lock, runs one `fdatasync`, and then marks
//! everything up to that end durable. Callers arriving during that sync either are covered by
//! it (their offsets were committed before it started) or wait for the next one, so N
//! concurrent appenders cost about one fsync per round, not N. Appends never wait for a sync:
//! the writer lock is not held while it runs.
//!
//! Wake-ups are targeted, which matters with many appenders on few cores: syncs are numbered,
//! waiters sleep on the condvar of the sync that will cover them (two alternate), a finished
//! sync wakes only its own waiters, and exactly one waiter of the next round to lead it.
//!
//! Segments other than the active one are synced by the roll that sealed them (before the
//! next segment's file exists), so syncing the active file covers every committed offset.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::LogError;
use crate::failed::{FailedLog, Listing};

struct Poison {
    during: &'static str,
    cause: String,
}

struct State {
    /// Whether sync number `round` is running.
    syncing: bool,
    /// Number of the running (or, when idle, the next) sync.
    round: u64,
    /// Committed end the running sync covers.
    target: u64,
    /// Callers waiting for the sync after the running one.
    queued: usize,
    durable: u64,
    file: Arc<File>,
    path: PathBuf,
    last_flush: Instant,
}

pub(crate) struct Durability {
    dir: PathBuf,
    state: Mutex<State>,
    /// Waiters of even and odd rounds.
    rounds: [Condvar; 2],
    durable: AtomicU64,
    fsyncs: AtomicU64,
    poison: OnceLock<Poison>,
    listing: Listing,
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
                round: 0,
                target: durable,
                queued: 0,
                durable,
                file,
                path,
                last_flush: Instant::now(),
            }),
            rounds: [Condvar::new(), Condvar::new()],
            durable: AtomicU64::new(durable),
            fsyncs: AtomicU64::new(0),
            poison: OnceLock::new(),
            listing: Listing::new(),
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
        let poison = self.poison.get_or_init(|| {
            let cause = cause.to_string();
            self.listing.list(FailedLog {
                dir: self.dir.clone(),
                during,
                cause: cause.clone(),
                since: std::time::SystemTime::now(),
            });
            Poison { during, cause }
        });
        // Wake waiters so they see the poison instead of waiting for a sync that never comes.
        drop(self.lock());
        self.rounds.iter().for_each(Condvar::notify_all);
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
        let started = Instant::now();
        let result = file.sync_data();
        crate::histogram::FSYNC_LATENCY.observe(started.elapsed());
        result.map_err(|e| self.poison("fsync", &LogError::io(path, e)))
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
                if !state.syncing && state.queued > 0 {
                    // This thread may have been woken to lead the next round but needs no
                    // sync (a roll made it durable): pass the turn on, or the queue stalls.
                    self.condvar(state.round).notify_one();
                }
                return Ok(());
            }
            if !state.syncing {
                break;
            }
            // Covered by the running sync, or queued for the one after it.
            let covered = offset <= state.target;
            let round = if covered {
                state.round
            } else {
                state.round + 1
            };
            state.queued += usize::from(!covered);
            let condvar = self.condvar(round);
            state = condvar.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.queued -= usize::from(!covered);
        }
        // Lead. The writer swaps `file` under this lock before writing to a new segment, so
        // the pair read here is consistent: every offset below `target` is in `file` or in a
        // segment its roll already synced.
        state.syncing = true;
        state.target = next.load(Ordering::Acquire);
        let (file, path) = (Arc::clone(&state.file), state.path.clone());
        drop(state);
        let result = self.sync_file(&file, &path);
        let mut state = self.lock();
        let round = state.round;
        state.syncing = false;
        state.round += 1;
        if result.is_ok() {
            let target = state.target;
            self.mark_durable(&mut state, target);
        }
        let queued = state.queued > 0;
        drop(state);
        if queued {
            // One of them leads the next round (woken first, so the disk idles least); the
            // rest sleep until it finishes.
            self.condvar(round + 1).notify_one();
        }
        self.condvar(round).notify_all();
        result
    }

    fn condvar(&self, round: u64) -> &Condvar {
        &self.rounds[usize::from(round % 2 == 1)]
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

    #[test]
    fn a_woken_waiter_made_durable_by_a_roll_passes_the_turn_on() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(durability(dir.path()));
        let next = Arc::new(AtomicU64::new(1));
        d.slow_syncs_ms.store(150, Ordering::Relaxed);
        let (done, finished) = std::sync::mpsc::channel();
        // Detached threads: a stalled one must fail the test, not hang it.
        let waiter = |offset: u64| {
            let (d, next, done) = (Arc::clone(&d), Arc::clone(&next), done.clone());
            std::thread::spawn(move || {
                d.sync_to(offset, &next).unwrap();
                done.send(offset).unwrap();
            });
        };
        waiter(1); // leads a slow round covering offset 1
        std::thread::sleep(Duration::from_millis(30));
        next.store(3, Ordering::Release);
        waiter(2); // queued behind the running round, first in line
        std::thread::sleep(Duration::from_millis(20));
        waiter(3); // queued too
        std::thread::sleep(Duration::from_millis(20));
        // A roll synced through offset 2 meanwhile: the first queued waiter, woken to lead the
        // next round, finds itself durable.
        let file = Arc::new(File::open(dir.path().join("f")).unwrap());
        d.rolled(file, dir.path().join("f"), 2);
        for _ in 0..3 {
            finished
                .recv_timeout(Duration::from_secs(10))
                .expect("queued waiter stalled");
        }
        assert_eq!(d.durable_offset(), 3);
    }
}
