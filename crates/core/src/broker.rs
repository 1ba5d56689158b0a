//! The broker: the root every frontend connection holds an `Arc` of.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::store::{Definition, DefinitionStore, Kind};
use crate::{BrokerConfig, Error, VHost, layout};

/// Shared state of one ferrymq process.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    definitions: DefinitionStore,
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
        let mut vhosts = HashMap::new();
        for name in config
            .vhosts
            .iter()
            .chain([&"/".to_owned(), &config.kafka_vhost])
        {
            vhosts
                .entry(name.clone())
                .or_insert_with(|| Arc::new(VHost::new(name.clone())));
        }
        Ok(Arc::new(Self {
            config,
            vhosts: RwLock::new(vhosts),
            definitions,
        }))
    }

    /// The durable definitions journal.
    pub fn definitions(&self) -> &DefinitionStore {
        &self.definitions
    }

    /// Flushes and fsyncs everything the broker persists; called once at shutdown, after
    /// connections have closed.
    pub async fn shutdown(self: &Arc<Self>) -> Result<(), Error> {
        let broker = Arc::clone(self);
        // Blocking fsyncs run off the runtime's workers.
        tokio::task::spawn_blocking(move || broker.definitions.flush())
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
