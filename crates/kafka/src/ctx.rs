//! What every Kafka connection shares: the broker's Kafka vhost streams, the group
//! coordinator, producer ids, and the identity the listener advertises.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferrymq_core::group::{Coordinator, GroupConfig};
use ferrymq_core::metrics::RequestMetrics;
use ferrymq_core::stream::{ProducerIds, StreamDefaults, Streams, TimestampType};
use ferrymq_core::transactions::TransactionCoordinator;
use ferrymq_core::{Broker, Error, VHost};
use kafka_protocol::messages::ApiKey;

use crate::KafkaConfig;
use crate::listeners::KafkaListener;
use ferrymq_auth::UserStore;

/// Shared state of the Kafka frontend; one per listener, behind an `Arc`.
#[derive(Debug)]
pub struct Ctx {
    pub(crate) broker: Arc<Broker>,
    pub(crate) config: KafkaConfig,
    pub(crate) vhost: Arc<VHost>,
    pub(crate) streams: Arc<Streams>,
    pub(crate) groups: Arc<Coordinator>,
    pub(crate) producer_ids: Arc<ProducerIds>,
    pub(crate) txns: Arc<TransactionCoordinator>,
    pub(crate) advertised_host: String,
    pub(crate) advertised_port: i32,
    pub(crate) cluster_id: String,
    /// Requests and their latency, per API key.
    pub(crate) metrics: Arc<RequestMetrics>,
    /// The broker's users (SASL logins, SCRAM credentials).
    pub(crate) users: Arc<UserStore>,
}

/// `segment.ms` default: Kafka's `log.roll.hours` = 168.
const DEFAULT_SEGMENT_MS: u64 = 7 * 24 * 3600 * 1000;

/// Topic defaults from the `[kafka]` section and the broker's storage settings.
pub(crate) fn stream_defaults(broker: &Broker, config: &KafkaConfig) -> StreamDefaults {
    let storage = &broker.config().storage;
    StreamDefaults {
        retention_ms: config.log_retention_ms,
        retention_bytes: config.log_retention_bytes,
        segment_bytes: storage.segment_bytes,
        segment_ms: Some(DEFAULT_SEGMENT_MS),
        max_message_bytes: config.message_max_bytes,
        timestamp_type: TimestampType::CreateTime,
        fsync: storage.stream_fsync,
        fsync_interval_ms: storage.stream_fsync_interval_ms,
        index_interval_bytes: 4096,
    }
}

/// The cluster id, created once and kept in `<data>/meta/kafka-cluster-id`: 22 characters
/// of URL-safe base64 of 16 random bytes, like Kafka's.
fn cluster_id(data_dir: &Path) -> Result<String, Error> {
    let path = data_dir.join("meta").join("kafka-cluster-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(Error::DataDir { path, source }),
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = ferrymq_core::stream::StreamId::random().0;
    let mut bits: u128 = u128::from_be_bytes(bytes);
    let mut id = String::with_capacity(22);
    for _ in 0..22 {
        id.push(char::from(ALPHABET[(bits & 63) as usize]));
        bits >>= 6;
    }
    let io = |source| Error::DataDir {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n")).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(id)
}

impl Ctx {
    /// Builds the frontend state and starts its background work (retention, interval
    /// fsyncs, group session expiry). `advertised_host`/`advertised_port` are what Metadata
    /// and FindCoordinator tell clients (the server resolves them from `kafka.advertised`
    /// or the bound address). Blocking: it may open logs; call it before serving.
    pub fn new(
        broker: Arc<Broker>,
        config: KafkaConfig,
        advertised_host: impl Into<String>,
        advertised_port: u16,
    ) -> Result<Arc<Self>, Error> {
        // Tests and embedders without a user store: RabbitMQ's default user.
        let guest = ferrymq_auth::UserConfig::new("guest", "guest", &["*"]);
        let users =
            UserStore::in_memory(&[guest], &["guest".to_owned()]).map_err(|e| Error::Internal {
                reason: format!("default user: {e}"),
            })?;
        Self::with_users(
            broker,
            config,
            advertised_host,
            advertised_port,
            Arc::new(users),
        )
    }

    /// [`Ctx::new`] over the broker's user store. `advertised_host`/`advertised_port` are
    /// the default listener's (connections served without a listener of their own).
    pub fn with_users(
        broker: Arc<Broker>,
        config: KafkaConfig,
        advertised_host: impl Into<String>,
        advertised_port: u16,
        users: Arc<UserStore>,
    ) -> Result<Arc<Self>, Error> {
        let vhost = broker.kafka_vhost()?;
        let streams = Arc::clone(vhost.streams());
        streams.set_defaults(stream_defaults(&broker, &config))?;
        streams.start_maintenance(Duration::from_millis(
            config.log_retention_check_interval_ms.max(100),
        ));
        let data_dir = broker.config().data_dir.clone();
        let group_config = GroupConfig {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention: Duration::from_secs(
                config.offsets_retention_minutes.saturating_mul(60),
            ),
            offset_metadata_max_bytes: 4096,
            ..GroupConfig::default()
        };
        let groups = Coordinator::open(
            &data_dir,
            broker.config().storage.fsync_policy(),
            group_config,
        )?;
        groups.start();
        let producer_ids = Arc::new(ProducerIds::open(Arc::clone(broker.definitions()))?);
        let txns = TransactionCoordinator::open(
            &data_dir.join("meta").join("transactions"),
            &broker.config().storage.metadata_log_config(),
            Arc::clone(&streams),
            Arc::clone(&producer_ids),
            Arc::clone(&groups),
            config.transaction_max_timeout_ms,
        )?;
        txns.start();
        let cluster_id = cluster_id(&data_dir)?;
        Ok(Arc::new(Self {
            broker,
            config,
            vhost,
            streams,
            groups,
            producer_ids,
            txns,
            advertised_host: advertised_host.into(),
            advertised_port: i32::from(advertised_port),
            cluster_id,
            metrics: Arc::new(request_metrics()),
            users,
        }))
    }

    /// Stops the group coordinator (pending joins and syncs are answered) and flushes the
    /// offsets log (blocking; call once the connections have closed, before
    /// `Broker::shutdown`, which flushes the topics).
    pub fn shutdown(&self) -> Result<(), Error> {
        self.groups.shutdown()
    }

    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    pub(crate) fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The listener connections served without one are taken to arrive on: PLAINTEXT at the
    /// advertised address given to [`Ctx::new`].
    pub fn default_listener(&self) -> Arc<KafkaListener> {
        Arc::new(KafkaListener {
            name: "PLAINTEXT".to_owned(),
            security: crate::SecurityProtocol::Plaintext,
            advertised_host: self.advertised_host.clone(),
            advertised_port: self.advertised_port,
        })
    }

    /// The consumer-group coordinator (for the management API's view of groups).
    pub fn groups(&self) -> &Arc<Coordinator> {
        &self.groups
    }

    /// Request counts and latencies per API key.
    pub fn metrics(&self) -> &Arc<RequestMetrics> {
        &self.metrics
    }
}

/// One operation per API key, named as Kafka's request metrics name them (`Produce`, ...).
fn request_metrics() -> RequestMetrics {
    RequestMetrics::new(ApiKey::iter().filter_map(|key| {
        usize::try_from(key as i16)
            .ok()
            .map(|index| (index, format!("{key:?}")))
    }))
}
