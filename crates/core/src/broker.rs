//! The broker: the root every frontend connection holds an `Arc` of.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::queue::store::{Cache, StorageContext};
use crate::store::{Definition, DefinitionStore, Kind};
use crate::stream::{StreamDefaults, Streams};
use crate::{BrokerConfig, Error, VHost, layout};

/// Shared state of one ferrymq process.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    definitions: Arc<DefinitionStore>,
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
        let storage = Arc::new(StorageContext {
            data_dir: config.data_dir.clone(),
            fsync: config.storage.fsync_policy(),
            segment_bytes: config.storage.segment_bytes,
            cache: Arc::new(Cache::new(config.storage.queue_cache_bytes)),
        });
        let mut vhosts = HashMap::new();
        let stream_defaults = StreamDefaults::from_storage(&config.storage);
        for name in config
            .vhosts
            .iter()
            .chain([&"/".to_owned(), &config.kafka_vhost])
        {
            if vhosts.contains_key(name) {
                continue;
            }
            let streams = Streams::open(
                &config.data_dir,
                name,
                stream_defaults,
                Arc::clone(&definitions),
                &recovered,
            )?;
            vhosts.insert(
                name.clone(),
                Arc::new(VHost::new(
                    name.clone(),
                    Arc::new(streams),
                    Arc::clone(&storage),
                    Arc::clone(&definitions),
                )),
            );
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
        }))
    }

    /// Starts the broker's background work on the current runtime: stream maintenance
    /// (retention every `retention_every`, interval fsyncs) for vhosts nobody started it for,
    /// and each vhost's topic -> exchange fan-out. Call once, after the frontends are set up.
    pub fn start_background(&self, retention_every: std::time::Duration) {
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
                .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Every vhost (a snapshot).
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
