//! What the API reads and commands: the broker, the users, the Kafka coordinator and request
//! metrics, and facts about this node.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ferrymq_auth::UserStore;
use ferrymq_core::Broker;
use ferrymq_core::group::Coordinator;
use ferrymq_core::metrics::RequestMetrics;
use ferrymq_core::stream::{StreamConfig, StreamDefaults};

use crate::rates::Rates;

/// The product version reported as RabbitMQ's (clients and tools gate features on it; the
/// AMQP listener announces the same).
pub const RABBITMQ_VERSION: &str = "3.13.7";

/// One listener, as `/api/overview` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// RabbitMQ's protocol names: `amqp`, `http`, `prometheus`; ferrymq adds `kafka`.
    pub protocol: String,
    pub ip: String,
    pub port: u16,
}

impl ListenerInfo {
    pub fn new(protocol: &str, addr: std::net::SocketAddr) -> Self {
        Self {
            protocol: protocol.to_owned(),
            ip: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

/// The Kafka frontend's parts the API shows.
#[derive(Debug, Clone)]
pub struct KafkaView {
    pub groups: Arc<Coordinator>,
    pub requests: Arc<RequestMetrics>,
    /// Every topic config of a topic, by Kafka name (the Kafka frontend's table).
    pub configs: fn(&StreamConfig, &StreamDefaults) -> Vec<(String, String)>,
}

/// Shared state of the management API.
#[derive(Debug)]
pub struct AdminContext {
    pub broker: Arc<Broker>,
    pub users: Arc<UserStore>,
    pub kafka: Option<KafkaView>,
    /// `ferrymq@<host>`, as RabbitMQ names nodes.
    pub node: String,
    pub cluster_name: String,
    pub listeners: Vec<ListenerInfo>,
    pub started: Instant,
    pub started_at_ms: u64,
    pub rates: Rates,
    /// Serve `/metrics` per object (one series per queue) instead of aggregated.
    pub per_object_metrics: bool,
    /// The AMQP consumer acknowledgement timeout, reported with each consumer.
    pub consumer_timeout_ms: u64,
}

impl AdminContext {
    pub fn new(broker: Arc<Broker>, users: Arc<UserStore>, node: String) -> Self {
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            broker,
            users,
            kafka: None,
            cluster_name: node.clone(),
            node,
            listeners: Vec::new(),
            started: Instant::now(),
            started_at_ms,
            rates: Rates::default(),
            per_object_metrics: false,
            consumer_timeout_ms: 0,
        }
    }

    pub fn with_kafka(mut self, kafka: KafkaView) -> Self {
        self.kafka = Some(kafka);
        self
    }

    pub fn with_listeners(mut self, listeners: Vec<ListenerInfo>) -> Self {
        self.listeners = listeners;
        self
    }

    /// A connection id for objects the API creates (never a registered connection's).
    pub fn owner(&self) -> u64 {
        self.broker.connections().next_id()
    }
}
