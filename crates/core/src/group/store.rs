//! The `meta/offsets` log: committed offsets and group metadata, replayed on open and
//! compacted when superseded records dominate.
//!
//! ```text
//! <data>/meta/offsets/          the live log (records: see `codec`)
//! <data>/meta/offsets.compact/  a rewrite in progress; becomes the live log by rename
//! <data>/meta/offsets.old/      the previous live log during the swap; removed after it
//! ```
//!
//! # Invariants
//! - A compaction writes every live record to a new log, fsyncs it, then swaps directories by
//!   rename: a crash at any point leaves exactly one complete log, which [`MetaStore::open`]
//!   picks (a finished `offsets.compact` without `offsets` is the new live log).
//! - Appends hold the store's read lock only for the in-memory append; fsyncs run without
//!   it. A compaction holds the write lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use ferrymq_log::{Entry, FsyncPolicy, Log, LogConfig};

use super::codec::{self, CommittedOffset, MetaRecord, StoredGroup};
use crate::Error;

/// Offsets by group, then (topic, partition).
pub type OffsetMap = HashMap<String, HashMap<(String, i32), CommittedOffset>>;

/// What the log held when opened.
#[derive(Debug, Default)]
pub struct Loaded {
    pub offsets: OffsetMap,
    pub groups: HashMap<String, StoredGroup>,
}

impl Loaded {
    fn apply(&mut self, record: MetaRecord) {
        match record {
            MetaRecord::Commit {
                group,
                topic,
                partition,
                value,
            } => {
                self.offsets
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), value);
            }
            MetaRecord::DeleteOffset {
                group,
                topic,
                partition,
            } => {
                if let Some(offsets) = self.offsets.get_mut(&group) {
                    offsets.remove(&(topic, partition));
                    if offsets.is_empty() {
                        self.offsets.remove(&group);
                    }
                }
            }
            MetaRecord::Group { group, value } => {
                self.groups.insert(group, value);
            }
            MetaRecord::DeleteGroup { group } => {
                self.groups.remove(&group);
                self.offsets.remove(&group);
            }
        }
    }

    fn live_records(&self) -> Vec<MetaRecord> {
        let mut out = Vec::new();
        for (group, value) in &self.groups {
            out.push(MetaRecord::Group {
                group: group.clone(),
                value: value.clone(),
            });
        }
        for (group, offsets) in &self.offsets {
            for ((topic, partition), value) in offsets {
                out.push(MetaRecord::Commit {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: value.clone(),
                });
            }
        }
        out
    }
}

fn worth_compacting(records: u64, live: usize) -> bool {
    let live = u64::try_from(live).unwrap_or(u64::MAX);
    records > COMPACT_MIN_RECORDS && records > COMPACT_RATIO.saturating_mul(live)
}

/// Replays `log`: the state it holds and how many records it took.
fn replay(log: &Log, dir: &Path) -> Result<(Loaded, u64), Error> {
    let mut loaded = Loaded::default();
    let mut records = 0u64;
    let mut at = log.start_offset();
    while at < log.next_offset() {
        let entries = log.read(at, 16 << 20).map_err(|e| storage(dir, e))?;
        let Some(last) = entries.last() else { break };
        at = last.offset + u64::from(last.span);
        for entry in entries {
            records += 1;
            match codec::decode(&entry.payload) {
                Ok(record) => loaded.apply(record),
                Err(e) => tracing::error!(
                    offset = entry.offset,
                    "offsets log: skipping undecodable record: {e}"
                ),
            }
        }
    }
    Ok((loaded, records))
}

/// The offsets log.
#[derive(Debug)]
pub struct MetaStore {
    dir: PathBuf,
    policy: FsyncPolicy,
    log: RwLock<Arc<Log>>,
}

fn storage(dir: &Path, source: ferrymq_log::LogError) -> Error {
    Error::Storage {
        what: format!("offsets log {}", dir.display()),
        source,
    }
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

fn config(policy: FsyncPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        segment_age: None,
        retention_bytes: None,
        retention_age: None,
        max_entry_bytes: 64 << 20,
        fsync: policy,
        ..LogConfig::default()
    }
}

/// Compact on open when superseded records outnumber live ones by this factor (and there
/// are enough of them to matter).
const COMPACT_RATIO: u64 = 2;
const COMPACT_MIN_RECORDS: u64 = 10_000;

impl MetaStore {
    /// Opens `<data_dir>/meta/offsets`, replays it, and compacts it if worthwhile.
    pub fn open(data_dir: &Path, policy: FsyncPolicy) -> Result<(Self, Loaded), Error> {
        let meta = data_dir.join("meta");
        let dir = meta.join("offsets");
        let compact = meta.join("offsets.compact");
        let old = meta.join("offsets.old");
        if compact.exists() && !dir.exists() {
            std::fs::rename(&compact, &dir).map_err(|e| io(&dir, e))?;
        }
        for leftover in [&compact, &old] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover).map_err(|e| io(leftover, e))?;
            }
        }
        let (log, recovery) = Log::open(&dir, config(policy)).map_err(|e| storage(&dir, e))?;
        if let Some(t) = &recovery.truncated {
            tracing::warn!(path = %t.path.display(), bytes = t.bytes_dropped, "offsets log: torn tail truncated");
        }
        let (loaded, records) = replay(&log, &dir)?;
        let store = Self {
            dir,
            policy,
            log: RwLock::new(Arc::new(log)),
        };
        let live = loaded.live_records();
        if worth_compacting(records, live.len()) {
            let mut guard = store.log.write().unwrap_or_else(PoisonError::into_inner);
            store.rewrite(&mut guard, &live)?;
            tracing::info!(records, live = live.len(), "offsets log compacted");
        }
        Ok((store, loaded))
    }

    fn current(&self) -> Arc<Log> {
        Arc::clone(&self.log.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Appends records (one entry each); returns the offset to sync to.
    pub fn append(&self, records: &[MetaRecord]) -> Result<u64, Error> {
        let encoded = records
            .iter()
            .map(codec::encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::Group(super::GroupError::Unstorable {
                    reason: e.to_string(),
                })
            })?;
        let now = super::now_ms();
        let parts: Vec<[&[u8]; 1]> = encoded.iter().map(|e| [e.as_slice()]).collect();
        let entries: Vec<Entry<'_>> = parts
            .iter()
            .map(|p| Entry {
                timestamp: now,
                span: 1,
                parts: p,
            })
            .collect();
        let guard = self.log.read().unwrap_or_else(PoisonError::into_inner);
        let appended = guard.append(&entries).map_err(|e| storage(&self.dir, e))?;
        Ok(appended.next_offset)
    }

    /// Blocks until records below `end` are durable (per the policy; immediate for
    /// interval/never).
    pub fn sync_to(&self, end: u64) -> Result<(), Error> {
        if self.policy != FsyncPolicy::Always {
            return Ok(());
        }
        let log = self.current();
        log.sync_to(end.min(log.next_offset()))
            .map_err(|e| storage(&self.dir, e))
    }

    pub fn size_bytes(&self) -> u64 {
        self.current().size_bytes()
    }

    /// Compacts the log if it has grown past `threshold` bytes and mostly holds superseded
    /// records (blocking; appends wait meanwhile). Returns whether it rewrote.
    pub fn compact_if_large(&self, threshold: u64) -> Result<bool, Error> {
        if self.size_bytes() < threshold {
            return Ok(false);
        }
        let mut guard = self.log.write().unwrap_or_else(PoisonError::into_inner);
        let (loaded, records) = replay(&guard, &self.dir)?;
        let live = loaded.live_records();
        if !worth_compacting(records, live.len()) {
            return Ok(false);
        }
        self.rewrite(&mut guard, &live)?;
        tracing::info!(records, live = live.len(), "offsets log compacted");
        Ok(true)
    }

    /// Replaces the log with one holding only `live` (blocking; the caller holds the lock).
    fn rewrite(&self, guard: &mut Arc<Log>, live: &[MetaRecord]) -> Result<(), Error> {
        let meta = self.dir.parent().unwrap_or(&self.dir).to_path_buf();
        let compact = meta.join("offsets.compact");
        let old = meta.join("offsets.old");
        if compact.exists() {
            std::fs::remove_dir_all(&compact).map_err(|e| io(&compact, e))?;
        }
        let (fresh, _) =
            Log::open(&compact, config(self.policy)).map_err(|e| storage(&compact, e))?;
        for chunk in live.chunks(1024) {
            let encoded = chunk
                .iter()
                .map(codec::encode)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error::Group(super::GroupError::Unstorable {
                        reason: e.to_string(),
                    })
                })?;
            let parts: Vec<[&[u8]; 1]> = encoded.iter().map(|e| [e.as_slice()]).collect();
            let entries: Vec<Entry<'_>> = parts
                .iter()
                .map(|p| Entry {
                    timestamp: super::now_ms(),
                    span: 1,
                    parts: p,
                })
                .collect();
            fresh.append(&entries).map_err(|e| storage(&compact, e))?;
        }
        fresh.close().map_err(|e| storage(&compact, e))?;
        guard.flush().map_err(|e| storage(&self.dir, e))?;
        std::fs::rename(&self.dir, &old).map_err(|e| io(&old, e))?;
        std::fs::rename(&compact, &self.dir).map_err(|e| io(&self.dir, e))?;
        std::fs::File::open(&meta)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&meta, e))?;
        let (reopened, _) =
            Log::open(&self.dir, config(self.policy)).map_err(|e| storage(&self.dir, e))?;
        *guard = Arc::new(reopened);
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))
    }

    /// Fsyncs everything (shutdown; blocking).
    pub fn flush(&self) -> Result<(), Error> {
        self.current().flush().map_err(|e| storage(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(group: &str, partition: i32, offset: i64) -> MetaRecord {
        MetaRecord::Commit {
            group: group.into(),
            topic: "t".into(),
            partition,
            value: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: None,
                commit_ms: 1,
            },
        }
    }

    #[test]
    fn replays_the_latest_value_and_honours_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, loaded) = MetaStore::open(dir.path(), FsyncPolicy::Always).unwrap();
            assert!(loaded.offsets.is_empty());
            let end = store
                .append(&[commit("a", 0, 1), commit("a", 0, 5), commit("b", 1, 9)])
                .unwrap();
            store
                .append(&[MetaRecord::DeleteGroup { group: "b".into() }])
                .unwrap();
            store.sync_to(end).unwrap();
            store.flush().unwrap();
        }
        let (_, loaded) = MetaStore::open(dir.path(), FsyncPolicy::Always).unwrap();
        assert_eq!(loaded.offsets["a"][&("t".to_owned(), 0)].offset, 5);
        assert!(!loaded.offsets.contains_key("b"));
    }

    #[test]
    fn compaction_keeps_live_records_only() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = MetaStore::open(dir.path(), FsyncPolicy::Never).unwrap();
            for i in 0..(COMPACT_MIN_RECORDS + 10) {
                store
                    .append(&[commit("g", 0, i64::try_from(i).unwrap())])
                    .unwrap();
            }
            store.flush().unwrap();
        }
        let (store, loaded) = MetaStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(loaded.offsets["g"][&("t".to_owned(), 0)].offset, 10_009);
        assert_eq!(store.current().next_offset(), 1, "one live record remains");
        assert!(!dir.path().join("meta/offsets.old").exists());
        // At run time too, once the log is large and mostly superseded.
        for i in 0..(COMPACT_MIN_RECORDS + 10) {
            store
                .append(&[commit("g", 1, i64::try_from(i).unwrap())])
                .unwrap();
        }
        assert!(!store.compact_if_large(u64::MAX).unwrap());
        assert!(store.compact_if_large(0).unwrap());
        assert_eq!(store.current().next_offset(), 2);
        drop(store);
        let (_, loaded) = MetaStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(loaded.offsets["g"][&("t".to_owned(), 1)].offset, 10_009);
    }

    #[test]
    fn a_finished_rewrite_without_the_live_log_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = MetaStore::open(dir.path(), FsyncPolicy::Never).unwrap();
            store.append(&[commit("g", 2, 3)]).unwrap();
            store.flush().unwrap();
        }
        let meta = dir.path().join("meta");
        std::fs::rename(meta.join("offsets"), meta.join("offsets.compact")).unwrap();
        let (_, loaded) = MetaStore::open(dir.path(), FsyncPolicy::Never).unwrap();
        assert_eq!(loaded.offsets["g"][&("t".to_owned(), 2)].offset, 3);
    }
}
