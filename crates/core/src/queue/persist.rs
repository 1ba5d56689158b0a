//! Durable queue definitions in the broker's definitions journal (kind `Queue`), their
//! restoration at open, and the background upkeep of a durable queue's logs.
//!
//! ```text
//! key:   <vhost> NUL <queue>
//! value: JSON {"auto_delete": bool, "arguments": "<hex of the AMQP field-table encoding>"}
//! files: <data>/queues/<encode_name(vhost)>/<encode_name(queue)>/   (see `store`)
//! ```
//!
//! # Invariants
//! - A definition is written before its declare-ok is sent (the frontend awaits the
//!   journal's sync) and removed before a deleted queue's files go; files are removed only
//!   once the removal is durable, and a queue directory without a definition (a crash in
//!   between) is removed at the next open.
//! - Exclusive queues are never durable (RabbitMQ deletes them on restart), so they are
//!   never written.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrymq_log::FsyncPolicy;
use serde::{Deserialize, Serialize};

use super::{Paging, Queue, QueueArgs, QueueSpec, State, store};
use crate::message::FieldTable;
use crate::message::wire::{decode_table, encode_table};
use crate::store::{Definition, DefinitionStore, Kind};
use crate::{Error, VHost, layout};

#[derive(Debug, Serialize, Deserialize)]
struct QueueDefinition {
    auto_delete: bool,
    /// The arguments' AMQP field-table encoding, hex: every field type survives exactly.
    arguments: String,
}

pub(crate) fn key(vhost: &str, name: &str) -> String {
    format!("{vhost}\0{name}")
}

/// Hex of a table's wire encoding.
pub(crate) fn table_to_hex(table: &FieldTable) -> String {
    let mut out = BytesMut::new();
    encode_table(table, &mut out);
    out.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inverse of [`table_to_hex`].
pub(crate) fn table_from_hex(hex: &str) -> Option<FieldTable> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    decode_table(Bytes::from(bytes?)).ok()
}

/// Runs blocking file work from whatever thread the caller is on without stalling a
/// multi-threaded runtime's worker (other tasks move to another worker meanwhile).
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Removes a deleted durable queue's files once its definition's removal is durable.
pub(crate) fn remove_files_later(dir: PathBuf) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => drop(handle.spawn_blocking(move || store::remove_files(&dir))),
        Err(_) => store::remove_files(&dir),
    }
}

impl VHost {
    /// Records a durable queue's definition (the caller syncs the journal before answering).
    pub(crate) fn save_queue(&self, queue: &Queue) -> Result<(), Error> {
        let def = QueueDefinition {
            auto_delete: queue.spec().auto_delete,
            arguments: table_to_hex(&queue.spec().arguments),
        };
        drop(
            self.definitions()
                .put_json(Kind::Queue, &key(self.name(), queue.name()), &def)?,
        );
        Ok(())
    }

    /// Forgets a deleted durable queue's definition.
    pub(crate) fn forget_queue(&self, queue: &Queue) {
        if let Err(e) = self
            .definitions()
            .remove(Kind::Queue, &key(self.name(), queue.name()))
        {
            tracing::error!(queue = %queue.name(), vhost = %self.name(),
                "could not record the deletion of a durable queue: {e}");
        }
    }

    /// Recreates the durable queues among `recovered` (blocking: opens their logs) and
    /// removes queue directories no definition names.
    pub(crate) fn restore_queues(self: &Arc<Self>, recovered: &[Definition]) -> Result<(), Error> {
        let prefix = key(self.name(), "");
        let mut kept = HashSet::new();
        let mut total = 0u64;
        let started = std::time::Instant::now();
        for def in recovered.iter().filter(|d| d.kind == Kind::Queue) {
            let Some(name) = def.key.strip_prefix(&prefix) else {
                continue;
            };
            let stored: QueueDefinition =
                DefinitionStore::decode_json(Kind::Queue, &def.key, &def.value)?;
            let arguments =
                table_from_hex(&stored.arguments).ok_or_else(|| Error::CorruptDefinition {
                    kind: "queue".to_owned(),
                    key: def.key.clone(),
                    reason: "undecodable arguments".to_owned(),
                })?;
            let spec = QueueSpec {
                name: name.to_owned(),
                durable: true,
                exclusive: false,
                auto_delete: stored.auto_delete,
                arguments,
            };
            let args = QueueArgs::parse(
                &spec.arguments,
                &spec.name,
                self.name(),
                (true, false, spec.auto_delete),
            )?;
            let queue = Queue::open_durable(self, spec, args)?;
            // Files are kept even if the name cannot be registered: nothing is lost silently.
            kept.insert(layout::encode_name(name));
            let count = queue.message_count();
            match self.insert_queue(queue) {
                Ok(()) => total += u64::from(count),
                Err(e) => tracing::error!(vhost = %self.name(), queue = %name,
                    "a durable queue was not restored (its files are kept): {e}"),
            }
        }
        if !kept.is_empty() {
            tracing::info!(vhost = %self.name(), queues = kept.len(), messages = total,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "restored durable queues");
        }
        let dir = layout::queue_dir(&self.storage().data_dir, self.name(), "");
        let dir = dir.parent().map(PathBuf::from).unwrap_or(dir);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if !kept.contains(name) {
                    tracing::warn!(dir = %entry.path().display(),
                        "removing the files of a queue that has no durable definition");
                    store::remove_files(&entry.path());
                }
            }
        }
        Ok(())
    }
}

/// How long a non-durable queue that failed to start paging stays in memory before it tries
/// again.
const PAGING_RETRY: Duration = Duration::from_secs(5);

impl Queue {
    /// Gives a non-durable queue whose messages no longer fit in the message cache a scratch
    /// store under `transient/`, so its backlog pages to disk as a durable queue's does. The
    /// files are created on the blocking pool (inline without a runtime), never under the
    /// queue's lock; meanwhile, or if they cannot be made, the queue keeps its messages in
    /// memory (and tries again later; memory alarms still bound the whole).
    pub(super) fn start_paging(self: &Arc<Self>, st: &mut State) {
        match st.paging {
            Paging::Opening => return,
            Paging::RetryAt(at) if tokio::time::Instant::now() < at => return,
            _ => {}
        }
        let Some(vhost) = self.vhost.upgrade() else {
            return;
        };
        st.paging = Paging::Opening;
        let storage = Arc::clone(vhost.storage());
        let dir = storage.scratch_dir();
        let what = format!("queue '{}' in vhost '{}'", self.name(), self.vhost_name);
        let levels = usize::from(self.args.max_priority.unwrap_or(0)) + 1;
        let open = move || {
            let opened = store::Store::scratch(&storage, &dir, what, levels);
            (opened, dir)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let queue = Arc::clone(self);
                handle.spawn(async move {
                    if let Ok((opened, dir)) = tokio::task::spawn_blocking(open).await {
                        let mut st = queue.lock();
                        queue.paging_opened(&mut st, opened, &dir);
                    }
                });
            }
            Err(_) => {
                let (opened, dir) = open();
                self.paging_opened(st, opened, &dir);
            }
        }
    }

    fn paging_opened(
        self: &Arc<Self>,
        st: &mut State,
        opened: Result<store::Store, Error>,
        dir: &std::path::Path,
    ) {
        match opened {
            Ok(_) if st.deleted => store::remove_files(dir),
            Ok(store) => {
                tracing::info!(vhost = %self.vhost_name, queue = %self.name(),
                    dir = %dir.display(), "non-durable queue pages to disk (message cache full)");
                let from = st.ready.spill_from().unwrap_or(st.next_seq);
                st.ready.attach_store(store, from);
                st.paging = Paging::Idle;
                self.start_maintenance();
            }
            Err(e) => {
                tracing::warn!(vhost = %self.vhost_name, queue = %self.name(),
                    "non-durable queue cannot page to disk, keeps its messages in memory: {e}");
                st.paging = Paging::RetryAt(tokio::time::Instant::now() + PAGING_RETRY);
                store::remove_files(dir);
            }
        }
    }

    /// Starts the upkeep task of a durable queue: compaction checks, and fsyncs under
    /// `fsync = interval`. Does nothing outside a tokio runtime.
    pub(super) fn start_maintenance(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let interval = match self.vhost.upgrade().map(|v| v.storage().fsync) {
            Some(FsyncPolicy::Interval(every)) => every.min(TICK),
            _ => TICK,
        };
        handle.spawn(maintain(Arc::downgrade(self), interval));
    }

    /// Writes buffered index slots and journal items and returns the logs to fsync; used
    /// at shutdown.
    pub(crate) fn flush_store(&self) -> Result<(), Error> {
        let logs = match self.lock().ready.store_mut() {
            Some(store) => store.prepare_close(),
            None => return Ok(()),
        };
        for log in logs {
            log.flush().map_err(|source| Error::Storage {
                what: format!("queue '{}' in vhost '{}'", self.name(), self.vhost_name),
                source,
            })?;
        }
        Ok(())
    }
}

impl Queue {
    /// Runs the periodic compaction check now (tests).
    #[cfg(test)]
    pub(crate) fn compact_now(&self) {
        self.lock().ready.maybe_compact(true);
    }

    /// The end of the entries of the durable store's `log` (see `Store::log_end`; tests).
    #[cfg(test)]
    pub(crate) fn store_log_end(&self, log: &str) -> u64 {
        self.lock().ready.store().map_or(0, |s| s.log_end(log))
    }
}

const TICK: Duration = Duration::from_secs(1);
/// Every this many ticks, look for fully acknowledged segments in the middle of the log.
const THOROUGH_EVERY: u32 = 10;

async fn maintain(queue: Weak<Queue>, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    loop {
        ticker.tick().await;
        let Some(queue) = queue.upgrade() else { return };
        if queue.is_deleted() {
            return;
        }
        ticks = ticks.wrapping_add(1);
        let logs = {
            let mut st = queue.lock();
            if st.deleted {
                return;
            }
            st.ready.maybe_compact(ticks.is_multiple_of(THOROUGH_EVERY));
            st.ready
                .store()
                .filter(|s| matches!(s.policy(), FsyncPolicy::Interval(_)))
                .map(store::Store::logs)
        };
        if let Some(logs) = logs {
            let name = queue.name().to_owned();
            drop(queue);
            let _ = tokio::task::spawn_blocking(move || {
                for log in logs {
                    if let Err(e) = log.flush_if_due(std::time::Instant::now()) {
                        tracing::error!(queue = %name, "interval fsync failed: {e}");
                    }
                }
            })
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::FieldValue;

    #[test]
    fn arguments_survive_as_hex() {
        let mut table = FieldTable::new();
        table.push("x-max-length", FieldValue::I64(10));
        table.push("x-dead-letter-exchange", FieldValue::string("dlx"));
        table.push("x-max-priority", FieldValue::U8(5));
        let hex = table_to_hex(&table);
        assert_eq!(table_from_hex(&hex), Some(table));
        assert_eq!(table_from_hex("0"), None);
        assert_eq!(table_from_hex("zz"), None);
        assert_eq!(table_from_hex("00000005"), None);
    }
}
