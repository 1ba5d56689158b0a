//! The definitions journal: every durable definition (vhosts, users, exchanges, queues,
//! bindings, streams and their configs, broker settings) as a compacted key-value journal on a
//! `ferrymq-log` log under `<data_dir>/meta/definitions/`.
//!
//! A change appends one small record (see `record`) instead of rewriting everything, and a
//! caller that must not answer before the change is on disk awaits [`Pending::durable`].
//! Values are opaque bytes owned by the subsystem of their [`Kind`] (JSON by convention, via
//! [`DefinitionStore::put_json`]).
//!
//! # Invariants
//! - Journal order equals the order in which changes were applied to the in-memory map: both
//!   happen under one short lock, so replay rebuilds exactly the state callers saw.
//! - Compaction appends the whole live set as puts and, once that is durable, moves the log's
//!   start past everything older. Replaying old records followed by a (possibly partial)
//!   snapshot yields the same state, so a crash at any point of a compaction loses nothing.
//! - fsyncs run on blocking threads, never on a runtime worker.

mod record;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use ferrymq_log::{Entry, Log, LogConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use record::Kind;
use record::Record;

use crate::Error;

/// Compact once the journal holds this many more records than live definitions.
const COMPACT_SLACK: u64 = 1024;
const READ_CHUNK: usize = 1 << 20;

/// The durable definitions of one broker.
#[derive(Debug)]
pub struct DefinitionStore {
    log: Arc<Log>,
    live: Mutex<BTreeMap<(Kind, String), Bytes>>,
    compacting: Arc<AtomicBool>,
}

/// One live definition, as recovered at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub kind: Kind,
    pub key: String,
    pub value: Bytes,
}

/// A recorded change; await [`Pending::durable`] before acknowledging it to a client.
#[derive(Debug)]
#[must_use = "a definition change is only durable once `durable()` returns"]
pub struct Pending {
    log: Arc<Log>,
    offset: u64,
}

impl Pending {
    /// Waits until the change is on disk (per the store's fsync policy), off the runtime.
    pub async fn durable(self) -> Result<(), Error> {
        let Pending { log, offset } = self;
        tokio::task::spawn_blocking(move || log.sync_to(offset))
            .await
            .map_err(|join| Error::Internal {
                reason: format!("definitions sync task: {join}"),
            })?
            .map_err(|source| Error::Storage {
                what: "definitions journal".to_owned(),
                source,
            })
    }
}

impl DefinitionStore {
    /// Opens the journal in `dir` (creating it) and replays it. Returns the store and every
    /// live definition, in kind order, then key order.
    pub fn open(dir: &Path, config: &LogConfig) -> Result<(Self, Vec<Definition>), Error> {
        let config = LogConfig {
            retention_bytes: None,
            retention_age: None,
            segment_age: None,
            ..config.clone()
        };
        let (log, recovery) = Log::open(dir, config).map_err(|source| Error::Storage {
            what: format!("definitions journal {}", dir.display()),
            source,
        })?;
        if let Some(cut) = &recovery.truncated {
            tracing::warn!(
                file = %cut.path.display(),
                position = cut.position,
                bytes_dropped = cut.bytes_dropped,
                "definitions journal: dropped a torn tail"
            );
        }
        let live = replay(&log)?;
        let store = Self {
            log: Arc::new(log),
            live: Mutex::new(live),
            compacting: Arc::new(AtomicBool::new(false)),
        };
        if store.wants_compaction() {
            store.compact()?;
        }
        let definitions = store
            .lock()
            .iter()
            .map(|((kind, key), value)| Definition {
                kind: *kind,
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        Ok((store, definitions))
    }

    /// Records `value` as the definition `kind`/`key`, replacing any previous one.
    pub fn put(&self, kind: Kind, key: &str, value: Bytes) -> Result<Pending, Error> {
        let header = record::header(true, kind, key).ok_or_else(|| key_too_long(key))?;
        let offset = {
            let mut live = self.lock();
            let appended = self.append(&[&header, key.as_bytes(), &value])?;
            live.insert((kind, key.to_owned()), value);
            appended
        };
        self.maybe_compact();
        Ok(self.pending(offset))
    }

    /// Serializes `value` as JSON and [`put`](Self::put)s it.
    pub fn put_json<T: Serialize>(
        &self,
        kind: Kind,
        key: &str,
        value: &T,
    ) -> Result<Pending, Error> {
        let json = serde_json::to_vec(value).map_err(|err| Error::Internal {
            reason: format!("encoding definition {kind:?} {key:?}: {err}"),
        })?;
        self.put(kind, key, Bytes::from(json))
    }

    /// Removes the definition `kind`/`key`; `None` if there was none (nothing is written).
    pub fn remove(&self, kind: Kind, key: &str) -> Result<Option<Pending>, Error> {
        let header = record::header(false, kind, key).ok_or_else(|| key_too_long(key))?;
        let offset = {
            let mut live = self.lock();
            if !live.contains_key(&(kind, key.to_owned())) {
                return Ok(None);
            }
            let appended = self.append(&[&header, key.as_bytes()])?;
            live.remove(&(kind, key.to_owned()));
            appended
        };
        self.maybe_compact();
        Ok(Some(self.pending(offset)))
    }

    /// Where the journal ends: it moves with every recorded change (a frontend compares it
    /// before and after a request to know whether to await [`Self::sync_all`]).
    pub fn end(&self) -> u64 {
        self.log.next_offset()
    }

    /// A wait covering every change recorded so far (a frontend awaits it before answering
    /// a request that changed definitions).
    pub fn sync_all(&self) -> Pending {
        self.pending(self.log.next_offset())
    }

    /// The current value of `kind`/`key`.
    pub fn get(&self, kind: Kind, key: &str) -> Option<Bytes> {
        self.lock().get(&(kind, key.to_owned())).cloned()
    }

    /// The keys of every live definition of `kind`, in order.
    pub fn keys(&self, kind: Kind) -> Vec<String> {
        self.lock()
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// Decodes a JSON value written by [`put_json`](Self::put_json).
    pub fn decode_json<T: DeserializeOwned>(
        kind: Kind,
        key: &str,
        value: &[u8],
    ) -> Result<T, Error> {
        serde_json::from_slice(value).map_err(|err| Error::CorruptDefinition {
            kind: format!("{kind:?}"),
            key: key.to_owned(),
            reason: err.to_string(),
        })
    }

    /// Records currently in the journal, live or superseded (for metrics and tests).
    pub fn journal_len(&self) -> u64 {
        self.log.next_offset() - self.log.start_offset()
    }

    /// Live definitions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forces everything to disk (shutdown).
    pub fn flush(&self) -> Result<(), Error> {
        self.log.flush().map_err(|source| Error::Storage {
            what: "definitions journal".to_owned(),
            source,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Kind, String), Bytes>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn append(&self, parts: &[&[u8]]) -> Result<u64, Error> {
        let entry = Entry {
            timestamp: now_ms(),
            span: 1,
            parts,
        };
        let appended = self.log.append(&[entry]).map_err(|source| Error::Storage {
            what: "definitions journal".to_owned(),
            source,
        })?;
        Ok(appended.next_offset)
    }

    fn pending(&self, offset: u64) -> Pending {
        Pending {
            log: Arc::clone(&self.log),
            offset,
        }
    }

    fn wants_compaction(&self) -> bool {
        let live = self.lock().len() as u64;
        self.journal_len() > 2 * live + COMPACT_SLACK
    }

    /// Compacts on a blocking thread if the journal has grown enough and none is running.
    fn maybe_compact(&self) {
        if !self.wants_compaction() || self.compacting.swap(true, Ordering::AcqRel) {
            return;
        }
        // The snapshot is appended here, under the map's lock; only the fsync and the
        // start move run on a blocking thread.
        let Some((end, first)) = self.snapshot_entries() else {
            self.compacting.store(false, Ordering::Release);
            return;
        };
        let log = Arc::clone(&self.log);
        let compacting = Arc::clone(&self.compacting);
        let run = move || {
            if let Err(err) = finish_compaction(&log, end, first) {
                tracing::error!(error = %err, "definitions journal compaction failed");
            }
            compacting.store(false, Ordering::Release);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(run)),
            Err(_) => run(),
        }
    }

    /// Appends the live set as puts under the lock; returns (its end, its first offset).
    fn snapshot_entries(&self) -> Option<(u64, u64)> {
        let live = self.lock();
        let first = self.log.next_offset();
        let mut buffers = Vec::with_capacity(live.len());
        for ((kind, key), value) in live.iter() {
            let header = record::header(true, *kind, key)?;
            buffers.push((header, key.as_bytes(), value.as_ref()));
        }
        let parts: Vec<[&[u8]; 3]> = buffers
            .iter()
            .map(|(header, key, value)| [&header[..], *key, *value])
            .collect();
        let timestamp = now_ms();
        let entries: Vec<Entry<'_>> = parts
            .iter()
            .map(|parts| Entry {
                timestamp,
                span: 1,
                parts,
            })
            .collect();
        if entries.is_empty() {
            return Some((first, first));
        }
        match self.log.append(&entries) {
            Ok(appended) => Some((appended.next_offset, first)),
            Err(err) => {
                tracing::error!(error = %err, "definitions journal: snapshot append failed");
                None
            }
        }
    }

    /// Synchronous compaction (at open).
    fn compact(&self) -> Result<(), Error> {
        match self.snapshot_entries() {
            Some((end, first)) => finish_compaction(&self.log, end, first),
            None => Err(Error::Internal {
                reason: "definitions journal: snapshot failed".to_owned(),
            }),
        }
    }
}

/// Makes the snapshot ending at `end` durable, then drops everything before `first`.
fn finish_compaction(log: &Log, end: u64, first: u64) -> Result<(), Error> {
    let storage = |source| Error::Storage {
        what: "definitions journal compaction".to_owned(),
        source,
    };
    log.sync_to(end).map_err(storage)?;
    log.advance_start(first).map_err(storage)?;
    tracing::debug!(records = end - first, "definitions journal compacted");
    Ok(())
}

fn replay(log: &Log) -> Result<BTreeMap<(Kind, String), Bytes>, Error> {
    let mut live = BTreeMap::new();
    let mut offset = log.start_offset();
    while offset < log.next_offset() {
        let entries = log
            .read(offset, READ_CHUNK)
            .map_err(|source| Error::Storage {
                what: "definitions journal replay".to_owned(),
                source,
            })?;
        let Some(last) = entries.last() else { break };
        offset = last.offset + u64::from(last.span);
        for entry in entries {
            match record::decode(&entry.payload) {
                Some(Record::Put { kind, key, value }) => {
                    live.insert((kind, key), value);
                }
                Some(Record::Remove { kind, key }) => {
                    live.remove(&(kind, key));
                }
                None => {
                    return Err(Error::CorruptDefinition {
                        kind: "record".to_owned(),
                        key: format!("offset {}", entry.offset),
                        reason: "not a definition record this build understands".to_owned(),
                    });
                }
            }
        }
    }
    Ok(live)
}

fn key_too_long(key: &str) -> Error {
    Error::Internal {
        reason: format!("definition key of {} bytes exceeds 65535", key.len()),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
