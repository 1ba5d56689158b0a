//! A virtual host: one namespace of exchanges, queues and streams.

use std::sync::Arc;

use crate::exchange::Exchanges;
use crate::namespace::Namespace;
use crate::queue::Queues;
use crate::queue::store::StorageContext;
use crate::store::DefinitionStore;
use crate::stream::Streams;

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
        }
    }

    /// The name space classic queues and streams share.
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.namespace
    }

    pub(crate) fn storage(&self) -> &StorageContext {
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
}
