//! A virtual host: one namespace of exchanges, queues and streams.

use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

use crate::exchange::Exchanges;
use crate::namespace::Namespace;
use crate::queue::Queues;
use crate::queue::store::StorageContext;
use crate::store::DefinitionStore;
use crate::stream::Streams;
use crate::{Error, layout};

/// What an operator says about a vhost (RabbitMQ's vhost metadata); recorded with vhosts
/// created at runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VhostMeta {
    pub description: String,
    pub tags: Vec<String>,
    /// `x-queue-type` for queues declared without one ("classic" when empty).
    pub default_queue_type: String,
    /// RabbitMQ's vhost limits: `max-connections` and `max-queues` (queues and streams, so
    /// Kafka topics too). A negative value is no limit, as in RabbitMQ.
    pub limits: std::collections::BTreeMap<String, i64>,
}

/// The vhost limits ferrymq knows (RabbitMQ's names).
pub const LIMIT_NAMES: [&str; 2] = ["max-connections", "max-queues"];

impl VhostMeta {
    /// What a vhost has before anyone describes it (`/` is RabbitMQ's "Default virtual host").
    pub fn default_for(name: &str) -> Self {
        Self {
            description: if name == "/" {
                "Default virtual host".to_owned()
            } else {
                String::new()
            },
            ..Self::default()
        }
    }

    /// The limit `name` in effect (`None`: no limit).
    pub fn limit(&self, name: &str) -> Option<u64> {
        self.limits
            .get(name)
            .and_then(|value| u64::try_from(*value).ok())
    }
}

/// One namespace. Exchanges, queues and streams of different vhosts never see each other.
#[derive(Debug)]
pub struct VHost {
    name: String,
    streams: Arc<Streams>,
    /// Names of queues and streams (one name space for both).
    namespace: Arc<Namespace>,
    /// Exchanges and their bindings (see `exchange`).
    pub(crate) exchanges: Exchanges,
    /// Classic queues (see `queue`).
    pub(crate) queues: Queues,
    /// Where durable queues keep their logs, and the broker's message cache.
    storage: Arc<StorageContext>,
    /// Durable exchanges, queues and bindings are recorded here.
    definitions: Arc<DefinitionStore>,
    meta: RwLock<VhostMeta>,
}

impl VHost {
    pub(crate) fn new(
        name: String,
        streams: Arc<Streams>,
        storage: Arc<StorageContext>,
        definitions: Arc<DefinitionStore>,
    ) -> Self {
        Self {
            exchanges: Exchanges::with_defaults(&name),
            queues: Queues::default(),
            namespace: Arc::clone(streams.namespace()),
            name,
            streams,
            storage,
            definitions,
            meta: RwLock::new(VhostMeta::default()),
        }
    }

    /// The name space classic queues and streams share.
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.namespace
    }

    pub(crate) fn storage(&self) -> &Arc<StorageContext> {
        &self.storage
    }

    /// The broker's definitions journal: a frontend awaits its `sync_all()` before answering
    /// a declaration, deletion or binding of durable objects.
    pub fn definitions(&self) -> &Arc<DefinitionStore> {
        &self.definitions
    }

    /// The vhost's streams (for the Kafka vhost: its topics).
    pub fn streams(&self) -> &Arc<Streams> {
        &self.streams
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn meta(&self) -> VhostMeta {
        self.meta
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_meta(&self, meta: VhostMeta) {
        self.namespace.set_limit(meta.limit("max-queues"));
        *self.meta.write().unwrap_or_else(PoisonError::into_inner) = meta;
    }

    /// Deletes everything the vhost holds, files included (the vhost is being deleted and is
    /// no longer reachable by name). Blocking.
    pub(crate) fn destroy(&self) -> Result<(), Error> {
        for queue in self.queue_list() {
            self.remove_queue(&queue);
        }
        for exchange in self.exchange_list() {
            if !exchange.is_default() && !exchange.name().starts_with("amq.") {
                self.delete_exchange(exchange.name(), false)?;
            }
        }
        let mut result = Ok(());
        for stream in self.streams.list() {
            result = result.and(self.streams.delete(stream.name()));
        }
        let _ = self.streams.close();
        // The definitions' removal reaches disk before the files go: a crash in between
        // must not recover definitions whose files are gone.
        self.definitions.flush()?;
        let data_dir = &self.storage.data_dir;
        for dir in [
            layout::vhost_streams_dir(data_dir, &self.name),
            layout::vhost_queues_dir(data_dir, &self.name),
        ] {
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), "cannot remove a deleted vhost's files: {e}");
            }
        }
        result
    }
}
