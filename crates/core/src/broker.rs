//! The broker: the root every frontend connection holds an `Arc` of.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::{BrokerConfig, Error, VHost, layout};

/// Shared state of one ferrymq process.
#[derive(Debug)]
pub struct Broker {
    config: BrokerConfig,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
}

impl Broker {
    /// Opens (creating or recovering) the broker's state under `config.data_dir`.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, Error> {
        layout::prepare(&config.data_dir)?;
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
        }))
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
