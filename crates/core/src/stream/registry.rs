//! The streams of one vhost: create, look up, reconfigure, repartition, delete, recover.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::config::{StreamConfig, StreamDefaults};
use super::partition::{Partition, lock};
use super::producer::Producers;
use super::{MAX_PARTITIONS, StreamDefinition, StreamId, persist};
use crate::interop::fanout;
use crate::namespace::{NameKind, Namespace};
use crate::store::{Definition, DefinitionStore};
use crate::{Error, layout};

/// One stream: its identity, settings and partitions.
#[derive(Debug)]
pub struct Stream {
    name: String,
    id: StreamId,
    dir: PathBuf,
    config: RwLock<Arc<StreamConfig>>,
    partitions: RwLock<Arc<Vec<Arc<Partition>>>>,
    deleted: AtomicBool,
    /// Round-robin position for records without a key.
    unkeyed: AtomicU32,
    /// Woken when any partition's high watermark moves, partitions are added or the stream
    /// is deleted.
    changed: Arc<tokio::sync::Notify>,
    /// AMQP consumers reading the stream (for queue.declare-ok).
    readers: AtomicU32,
}

impl Stream {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The stream's settings (a shared snapshot: cheap to take on every append).
    pub fn config(&self) -> Arc<StreamConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn partition_count(&self) -> u32 {
        u32::try_from(self.partitions().len()).unwrap_or(u32::MAX)
    }

    /// A snapshot of the partitions.
    pub fn partitions(&self) -> Arc<Vec<Arc<Partition>>> {
        Arc::clone(
            &self
                .partitions
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub fn partition(&self, index: u32) -> Option<Arc<Partition>> {
        self.partitions().get(usize::try_from(index).ok()?).cloned()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// AMQP consumers reading the stream.
    pub fn reader_count(&self) -> u32 {
        self.readers.load(Ordering::Relaxed)
    }

    pub(crate) fn add_reader(&self, delta: i32) {
        if delta >= 0 {
            self.readers
                .fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            let _ = self
                .readers
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(delta.unsigned_abs()))
                });
        }
    }

    /// Records visible to readers, over every partition (queue.declare-ok's message count).
    pub fn message_count(&self) -> u64 {
        self.partitions()
            .iter()
            .map(|p| p.high_watermark().saturating_sub(p.log_start_offset()))
            .sum()
    }

    /// Records ever appended, over every partition (the sum of their log end offsets).
    pub fn appended(&self) -> u64 {
        self.partitions().iter().map(|p| p.log_end_offset()).sum()
    }

    /// The next partition for a record without a key (round-robin).
    pub fn next_unkeyed_partition(&self) -> u32 {
        let n = self.partition_count().max(1);
        self.unkeyed.fetch_add(1, Ordering::Relaxed) % n
    }

    /// A future that completes when any partition's high watermark moves, partitions are
    /// added or the stream is deleted. Create it (and `enable` it) before looking, so no
    /// change is missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn definition(&self) -> StreamDefinition {
        StreamDefinition {
            id: self.id,
            partitions: self.partition_count(),
            config: StreamConfig::clone(&self.config()),
        }
    }

    fn producers_path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{index}.producers"))
    }

    fn open_partition(
        &self,
        index: u32,
        defaults: &StreamDefaults,
    ) -> Result<Arc<Partition>, Error> {
        let effective = self.config().resolve(defaults);
        let snapshot_path = self.producers_path(index);
        let snapshot = std::fs::read(&snapshot_path)
            .ok()
            .and_then(|b| Producers::decode(&b));
        let dir = self.dir.join(index.to_string());
        let (partition, recovery) = Partition::open(
            &self.name,
            index,
            &dir,
            effective,
            Producers::default(),
            Arc::clone(&self.changed),
        )?;
        if recovery.truncated.is_some() || !recovery.indexes_rebuilt.is_empty() {
            tracing::warn!(stream = %self.name, partition = index, ?recovery, "partition log recovered");
        }
        let partition = Arc::new(partition);
        partition.restore_producers(snapshot)?;
        Ok(partition)
    }
}

/// The streams of one vhost.
#[derive(Debug)]
pub struct Streams {
    vhost: String,
    dir: PathBuf,
    definitions: Arc<DefinitionStore>,
    namespace: Arc<Namespace>,
    defaults: RwLock<StreamDefaults>,
    map: RwLock<HashMap<String, Arc<Stream>>>,
    admin: Mutex<()>,
    pub(crate) maintenance: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Bumped after every create, delete, repartition and reconfiguration.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Streams {
    /// Opens the streams of `vhost` under `data_dir`: those `recovered` from the definitions
    /// journal, each partition log recovered in turn (blocking).
    pub fn open(
        data_dir: &Path,
        vhost: &str,
        defaults: StreamDefaults,
        definitions: Arc<DefinitionStore>,
        recovered: &[Definition],
    ) -> Result<Self, Error> {
        let dir = data_dir.join("streams").join(layout::encode_name(vhost));
        let known = persist::load(recovered, vhost)?;
        persist::remove_orphans(&dir, &known)?;
        let namespace = Arc::new(Namespace::new(vhost));
        let mut map = HashMap::new();
        for (name, def) in known {
            namespace.claim(&name, NameKind::Stream)?;
            let stream = Stream {
                name: name.clone(),
                id: def.id,
                dir: dir.join(layout::encode_name(&name)),
                config: RwLock::new(Arc::new(def.config)),
                partitions: RwLock::new(Arc::new(Vec::new())),
                deleted: AtomicBool::new(false),
                unkeyed: AtomicU32::new(0),
                changed: Arc::new(tokio::sync::Notify::new()),
                readers: AtomicU32::new(0),
            };
            let partitions = (0..def.partitions)
                .map(|p| stream.open_partition(p, &defaults))
                .collect::<Result<Vec<_>, _>>()?;
            *stream
                .partitions
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::new(partitions);
            tracing::info!(vhost, stream = %name, partitions = def.partitions, "stream recovered");
            map.insert(name, Arc::new(stream));
        }
        Ok(Self {
            vhost: vhost.to_owned(),
            dir,
            definitions,
            namespace,
            defaults: RwLock::new(defaults),
            map: RwLock::new(map),
            admin: Mutex::new(()),
            maintenance: Mutex::new(None),
            changes: tokio::sync::watch::Sender::new(0),
        })
    }

    pub fn vhost(&self) -> &str {
        &self.vhost
    }

    /// Changes whenever a stream is created, deleted, repartitioned or reconfigured.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The definitions journal the streams persist to.
    pub(crate) fn definitions(&self) -> &Arc<DefinitionStore> {
        &self.definitions
    }

    /// The name space the vhost's streams share with its classic queues.
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.namespace
    }

    pub fn defaults(&self) -> StreamDefaults {
        *self.defaults.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the defaults and reapplies them to every stream.
    pub fn set_defaults(&self, defaults: StreamDefaults) -> Result<(), Error> {
        *self
            .defaults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = defaults;
        for stream in self.list() {
            let effective = stream.config().resolve(&defaults);
            for partition in stream.partitions().iter() {
                partition.apply_settings(effective.clone())?;
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub fn get_by_id(&self, id: StreamId) -> Option<Arc<Stream>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.values().find(|s| s.id == id).cloned()
    }

    /// Every stream, by name.
    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut all: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Checks what [`Self::create`] would check, without creating anything.
    pub fn validate_create(&self, name: &str, partitions: u32) -> Result<(), Error> {
        if name.is_empty() || name.len() > 255 {
            return Err(Error::InvalidStreamName {
                name: name.to_owned(),
                reason: "must be 1 to 255 bytes".to_owned(),
            });
        }
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::InvalidPartitionCount {
                requested: i64::from(partitions),
                reason: format!("must be between 1 and {MAX_PARTITIONS}"),
            });
        }
        if self.get(name).is_some() {
            return Err(Error::StreamExists {
                stream: name.to_owned(),
            });
        }
        if self.namespace.holder(name) == Some(NameKind::Queue) {
            return Err(Error::NameInUse {
                name: name.to_owned(),
                vhost: self.vhost.clone(),
                holder: NameKind::Queue,
            });
        }
        Ok(())
    }

    /// Creates a stream (blocking file I/O).
    pub fn create(
        &self,
        name: &str,
        partitions: u32,
        config: StreamConfig,
    ) -> Result<Arc<Stream>, Error> {
        let _admin = lock(&self.admin);
        self.validate_create(name, partitions)?;
        // Claimed before anything is visible; given back if creation fails.
        self.namespace.claim_new(name, NameKind::Stream)?;
        let created = self.create_claimed(name, partitions, config);
        if created.is_err() {
            self.namespace.release(name, NameKind::Stream);
        }
        created
    }

    fn create_claimed(
        &self,
        name: &str,
        partitions: u32,
        config: StreamConfig,
    ) -> Result<Arc<Stream>, Error> {
        let dir = self.dir.join(layout::encode_name(name));
        // Leftovers of a stream deleted while the broker crashed.
        persist::remove_files(&dir)?;
        let def = StreamDefinition {
            id: StreamId::random(),
            partitions,
            config,
        };
        if def.config.fanout_exchange.is_some() {
            // Created with a fan-out: every record from the first one on is published.
            for p in 0..partitions {
                fanout::record_start(&self.definitions, &self.vhost, name, def.id, p, 0)?;
            }
        }
        persist::save(&self.definitions, &self.vhost, name, &def)?;
        let stream = Stream {
            name: name.to_owned(),
            id: def.id,
            dir,
            config: RwLock::new(Arc::new(def.config)),
            partitions: RwLock::new(Arc::new(Vec::new())),
            deleted: AtomicBool::new(false),
            unkeyed: AtomicU32::new(0),
            changed: Arc::new(tokio::sync::Notify::new()),
            readers: AtomicU32::new(0),
        };
        let defaults = self.defaults();
        let opened = (0..partitions)
            .map(|p| stream.open_partition(p, &defaults))
            .collect::<Result<Vec<_>, _>>();
        let opened = match opened {
            Ok(opened) => opened,
            Err(e) => {
                let _ = persist::remove(&self.definitions, &self.vhost, name);
                let _ = persist::remove_files(&stream.dir);
                return Err(e);
            }
        };
        *stream
            .partitions
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(opened);
        let stream = Arc::new(stream);
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Arc::clone(&stream));
        tracing::info!(vhost = %self.vhost, stream = name, partitions, "stream created");
        self.changed();
        Ok(stream)
    }

    /// Deletes a stream and its data (blocking file I/O). Readers and writers holding its
    /// partitions get `StreamNotFound` from then on.
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        let _admin = lock(&self.admin);
        let stream = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
            .ok_or_else(|| Error::StreamNotFound {
                stream: name.to_owned(),
            })?;
        stream.deleted.store(true, Ordering::Release);
        for partition in stream.partitions().iter() {
            partition.mark_deleted();
        }
        stream.changed.notify_waiters();
        let removed = persist::remove(&self.definitions, &self.vhost, name)
            .and_then(|()| persist::remove_files(&stream.dir));
        self.namespace.release(name, NameKind::Stream);
        removed?;
        tracing::info!(vhost = %self.vhost, stream = name, "stream deleted");
        self.changed();
        Ok(())
    }

    /// Grows `stream` to `total` partitions (blocking file I/O).
    pub fn add_partitions(&self, stream: &Stream, total: u32) -> Result<(), Error> {
        let _admin = lock(&self.admin);
        let current = stream.partition_count();
        if stream.is_deleted() {
            return Err(Error::StreamNotFound {
                stream: stream.name.clone(),
            });
        }
        if total <= current || total > MAX_PARTITIONS {
            return Err(Error::InvalidPartitionCount {
                requested: i64::from(total),
                reason: format!(
                    "the stream has {current} partitions; the count can only grow, up to {MAX_PARTITIONS}"
                ),
            });
        }
        let defaults = self.defaults();
        let mut partitions = stream.partitions().as_ref().clone();
        for p in current..total {
            partitions.push(stream.open_partition(p, &defaults)?);
        }
        let def = StreamDefinition {
            partitions: total,
            ..stream.definition()
        };
        if def.config.fanout_exchange.is_some() {
            for p in current..total {
                fanout::record_start(&self.definitions, &self.vhost, &stream.name, def.id, p, 0)?;
            }
        }
        persist::save(&self.definitions, &self.vhost, &stream.name, &def)?;
        *stream
            .partitions
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(partitions);
        stream.changed.notify_waiters();
        self.changed();
        Ok(())
    }

    /// Replaces the settings of `stream` (blocking file I/O).
    pub fn set_config(&self, stream: &Stream, config: StreamConfig) -> Result<(), Error> {
        let _admin = lock(&self.admin);
        let def = StreamDefinition {
            config: config.clone(),
            ..stream.definition()
        };
        persist::save(&self.definitions, &self.vhost, &stream.name, &def)?;
        let effective = config.resolve(&self.defaults());
        let fanout_starts =
            stream.config().fanout_exchange.is_none() && config.fanout_exchange.is_some();
        *stream
            .config
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        if fanout_starts {
            // Fan-out switched on: it covers what is appended from now on. Stored after the
            // config changed (the fan-out manager forgets positions of streams without one).
            for partition in stream.partitions().iter() {
                fanout::record_start(
                    &self.definitions,
                    &self.vhost,
                    &stream.name,
                    stream.id,
                    partition.index(),
                    partition.high_watermark(),
                )?;
            }
            self.definitions.flush()?;
        }
        self.changed();
        for partition in stream.partitions().iter() {
            partition.apply_settings(effective.clone())?;
        }
        Ok(())
    }

    /// Flushes every partition and snapshots producer state (blocking; clean shutdown).
    pub fn close(&self) -> Result<(), Error> {
        if let Some(task) = lock(&self.maintenance).take() {
            task.abort();
        }
        let mut first_error = None;
        for stream in self.list() {
            for partition in stream.partitions().iter() {
                let result = partition
                    .flush()
                    .and_then(|()| save_producers(&stream, partition));
                if let Err(e) = result {
                    tracing::error!(stream = %stream.name, partition = partition.index(), "close: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Writes the producer snapshot of `partition` (atomically).
pub(crate) fn save_producers(stream: &Stream, partition: &Partition) -> Result<(), Error> {
    let (producers, covers_to) = partition.producers_snapshot();
    if partition.snapshot_is_current(covers_to) {
        return Ok(());
    }
    let path = stream.producers_path(partition.index());
    let tmp = path.with_extension("producers.tmp");
    let io = |e| Error::DataDir {
        path: path.clone(),
        source: e,
    };
    std::fs::write(&tmp, producers.encode(covers_to)).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    partition.snapshot_written(covers_to);
    Ok(())
}
