//! The broker: the root every frontend connection holds an `Arc` of.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use crate::alarms::Alarms;
use crate::connections::Connections;
use crate::queue::store::StorageContext;
use crate::store::{Definition, DefinitionStore, Kind, Pending};
use crate::stream::{StreamDefaults, Streams};
use crate::vhost::VhostMeta;
use crate::{BrokerConfig, Error, VHost, layout};

/// Shared state of one ferrymq process.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    definitions: Arc<DefinitionStore>,
    storage: Arc<StorageContext>,
    stream_defaults: StreamDefaults,
    connections: Arc<Connections>,
    alarms: Alarms,
    /// Set by [`Broker::start_background`]: vhosts created later start the same work.
    retention_every: OnceLock<Duration>,
    /// Serializes vhost creation and deletion (file system work happens under it).
    admin: Mutex<()>,
}

impl Broker {
    /// Opens (creating or recovering) the broker's state under `config.data_dir`. Blocking:
    /// call it before the runtime serves connections, or on a blocking thread.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, Error> {
        layout::prepare(&config.data_dir)?;
        let (definitions, recovered) = DefinitionStore::open(
            &layout::definitions_dir(&config.data_dir),
            &config.storage.metadata_log_config(),
        )?;
        log_recovered(&recovered);
        let definitions = Arc::new(definitions);
        let storage = Arc::new(StorageContext::new(
            config.data_dir.clone(),
            config.storage.fsync_policy(),
            config.storage.segment_bytes,
            config.storage.queue_cache_bytes,
        ));
        let mut vhosts = HashMap::new();
        let stream_defaults = StreamDefaults::from_storage(&config.storage);
        // Configured vhosts always exist; the others were created at runtime and recorded.
        let mut names: Vec<(String, VhostMeta)> = config
            .vhosts
            .iter()
            .chain([&"/".to_owned(), &config.kafka_vhost])
            .map(|name| (name.clone(), VhostMeta::default_for(name)))
            .collect();
        for d in recovered.iter().filter(|d| d.kind == Kind::Vhost) {
            let meta = DefinitionStore::decode_json(Kind::Vhost, &d.key, &d.value)?;
            names.retain(|(name, _)| *name != d.key);
            names.push((d.key.clone(), meta));
        }
        for (name, meta) in names {
            if vhosts.contains_key(&name) {
                continue;
            }
            let streams = Streams::open(
                &config.data_dir,
                &name,
                stream_defaults,
                Arc::clone(&definitions),
                &recovered,
            )?;
            let vhost = VHost::new(
                name.clone(),
                Arc::new(streams),
                Arc::clone(&storage),
                Arc::clone(&definitions),
            );
            vhost.set_meta(meta);
            vhosts.insert(name, Arc::new(vhost));
        }
        // Durable AMQP objects: exchanges and queues first, then the bindings between them.
        for vhost in vhosts.values() {
            vhost.restore_exchanges(&recovered)?;
            vhost.restore_queues(&recovered)?;
        }
        for vhost in vhosts.values() {
            vhost.restore_bindings(&recovered);
        }
        Ok(Arc::new(Self {
            config,
            vhosts: RwLock::new(vhosts),
            definitions,
            storage,
            stream_defaults,
            connections: Arc::new(Connections::default()),
            alarms: Alarms::default(),
            retention_every: OnceLock::new(),
            admin: Mutex::new(()),
        }))
    }

    /// Resource alarms in effect.
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    /// Every client connection, of every protocol.
    pub fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    /// Creates vhost `name` (recorded durably) or updates its description and tags if it
    /// exists. Returns the vhost, whether it was created, and the journal write to await.
    /// Blocking (creates directories).
    pub fn put_vhost(
        &self,
        name: &str,
        meta: VhostMeta,
    ) -> Result<(Arc<VHost>, bool, Pending), Error> {
        if name.is_empty() {
            return Err(Error::PreconditionFailed {
                reason: "a vhost name must not be empty".to_owned(),
            });
        }
        let _admin = self.admin.lock().unwrap_or_else(PoisonError::into_inner);
        let pending = self.definitions.put_json(Kind::Vhost, name, &meta)?;
        if let Some(existing) = self.vhost(name) {
            existing.set_meta(meta);
            return Ok((existing, false, pending));
        }
        let streams = Streams::open(
            &self.config.data_dir,
            name,
            self.stream_defaults,
            Arc::clone(&self.definitions),
            &[],
        )?;
        let vhost = Arc::new(VHost::new(
            name.to_owned(),
            Arc::new(streams),
            Arc::clone(&self.storage),
            Arc::clone(&self.definitions),
        ));
        vhost.set_meta(meta);
        if let Some(every) = self.retention_every.get()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            vhost.streams().ensure_maintenance(*every);
            vhost.start_fanout();
        }
        self.vhosts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Arc::clone(&vhost));
        tracing::info!(vhost = name, "vhost created");
        Ok((vhost, true, pending))
    }

    /// Deletes vhost `name` with everything in it: connections on it are asked to close,
    /// its queues, exchanges and streams are deleted with their files. `Ok(None)` if there
    /// is no such vhost. Blocking.
    pub fn delete_vhost(&self, name: &str) -> Result<Option<Pending>, Error> {
        if name == self.config.kafka_vhost {
            return Err(Error::AccessRefused {
                reason: format!("vhost '{name}' is the Kafka listener's and cannot be deleted"),
            });
        }
        let _admin = self.admin.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(vhost) = self
            .vhosts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name)
        else {
            return Ok(None);
        };
        self.connections
            .close_vhost(name, &format!("vhost '{name}' is deleted"));
        vhost.destroy()?;
        // Removing a configured vhost's record writes nothing: it was never recorded.
        let pending = self
            .definitions
            .remove(Kind::Vhost, name)?
            .unwrap_or_else(|| self.definitions.sync_all());
        tracing::info!(vhost = name, "vhost deleted");
        Ok(Some(pending))
    }

    /// Starts the broker's background work on the current runtime: stream maintenance
    /// (retention every `retention_every`, interval fsyncs) for vhosts nobody started it for,
    /// and each vhost's topic -> exchange fan-out. Call once, after the frontends are set up.
    pub fn start_background(&self, retention_every: Duration) {
        let _ = self.retention_every.set(retention_every);
        for vhost in self.vhosts() {
            vhost.streams().ensure_maintenance(retention_every);
            vhost.start_fanout();
        }
    }

    /// The durable definitions journal.
    pub fn definitions(&self) -> &Arc<DefinitionStore> {
        &self.definitions
    }

    /// Flushes and fsyncs everything the broker persists; called once at shutdown, after
    /// connections have closed.
    pub async fn shutdown(self: &Arc<Self>) -> Result<(), Error> {
        let broker = Arc::clone(self);
        // Blocking fsyncs run off the runtime's workers.
        tokio::task::spawn_blocking(move || {
            let mut result = broker.definitions.flush();
            for vhost in broker
                .vhosts
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .values()
            {
                let closed = vhost.streams().close();
                result = result.and(closed);
                for queue in vhost.queue_list() {
                    result = result.and(queue.flush_store());
                }
            }
            result
        })
        .await
        .map_err(|join| Error::Internal {
            reason: format!("shutdown flush task: {join}"),
        })?
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The vhost named `name`, if configured.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Every vhost (a snapshot).
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The vhost whose streams the Kafka listener serves.
    pub fn kafka_vhost(&self) -> Result<Arc<VHost>, Error> {
        self.vhost(&self.config.kafka_vhost)
            .ok_or_else(|| Error::UnknownVhost {
                vhost: self.config.kafka_vhost.clone(),
            })
    }
}

fn log_recovered(recovered: &[Definition]) {
    for kind in Kind::ALL {
        let count = recovered.iter().filter(|d| d.kind == kind).count();
        if count > 0 {
            tracing::info!(kind = ?kind, count, "recovered durable definitions");
        }
    }
}
