//! `[kafka]`: the Kafka listener and the broker-level Kafka settings.
//!
//! Names follow Apache Kafka's broker configs with `.` replaced by `_` where one exists
//! (`auto_create_topics_enable` is `auto.create.topics.enable`); DescribeConfigs reports
//! them under Kafka's names. Per-topic overrides are topic configs (`retention.ms`, ...).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Kafka frontend configuration; the server composes it as the `[kafka]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Address the Kafka listener binds.
    pub listen: SocketAddr,
    /// `HOST:PORT` or `HOST` that Metadata and FindCoordinator tell clients to connect to.
    /// Empty: derived from the bound address by the server.
    pub advertised: String,
    /// Kafka's `listeners`: `NAME://HOST:PORT` entries, each a listener with the security
    /// protocol `listener_security_protocol_map` gives its name (a name that is a protocol
    /// needs no entry). Empty: one PLAINTEXT listener on `listen`.
    pub listeners: Vec<String>,
    /// Kafka's `advertised.listeners`: `NAME://HOST:PORT` per listener; a listener without
    /// one advertises its bound address (or `advertised` with `listeners` empty).
    pub advertised_listeners: Vec<String>,
    /// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL` (PLAINTEXT, SSL,
    /// SASL_PLAINTEXT, SASL_SSL).
    pub listener_security_protocol_map: Vec<String>,
    /// `sasl.enabled.mechanisms` of SASL listeners: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// `connections.max.reauth.ms` (KIP-368): a SASL session lasts this long, then the client
    /// must authenticate again on the same connection or is disconnected; 0: forever.
    pub connections_max_reauth_ms: u64,
    /// A client on a SASL listener that has not authenticated this long after connecting is
    /// disconnected.
    pub authentication_timeout_ms: u64,
    /// Kafka's `allow.everyone.if.no.acl.found`, for principals that are no user of the
    /// broker (ANONYMOUS on PLAINTEXT listeners, unknown certificate subjects): whether a
    /// resource no ACL names is open to them.
    pub allow_everyone_if_no_acl_found: bool,
    /// Kafka's `super.users` (`User:alice`): allowed everything. Users tagged
    /// `administrator` are too.
    pub super_users: Vec<String>,
    /// Connections beyond this wait in the kernel's accept backlog (per listener).
    pub max_connections: usize,
    /// `max.connections.per.ip`: a client address's further connections to a Kafka listener
    /// are closed as soon as they are accepted.
    pub max_connections_per_ip: usize,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a transactional
    /// producer may ask for (InitProducerId beyond it: INVALID_TRANSACTION_TIMEOUT).
    pub transaction_max_timeout_ms: i32,
    /// The virtual host whose streams are this listener's topics (its AMQP stream queues and
    /// Kafka topics are the same logs). Created at startup if missing.
    pub vhost: String,
    /// `socket.request.max.bytes`: larger requests are refused from their size prefix,
    /// before any of their bytes are buffered, and the connection is closed.
    pub max_request_bytes: u32,
    /// `node.id` reported in Metadata, FindCoordinator and DescribeCluster.
    pub node_id: i32,
    /// `auto.create.topics.enable`: Metadata and Produce create unknown topics.
    pub auto_create_topics_enable: bool,
    /// `num.partitions`: partitions of an auto-created topic, and of CreateTopics with -1.
    pub num_partitions: u32,
    /// `message.max.bytes`: largest record batch a topic accepts unless it sets
    /// `max.message.bytes`.
    pub message_max_bytes: u32,
    /// `log.retention.ms` (-1: unlimited) for topics without `retention.ms`.
    pub log_retention_ms: i64,
    /// `log.retention.bytes` per partition (-1: unlimited) for topics without
    /// `retention.bytes`.
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub log_retention_check_interval_ms: u64,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members to join.
    pub group_initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: u32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: u32,
    /// `offsets.retention.minutes`: committed offsets of an empty group expire after this.
    pub offsets_retention_minutes: u64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9092)),
            advertised: String::new(),
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: Vec::new(),
            sasl_enabled_mechanisms: vec![
                "PLAIN".to_owned(),
                "SCRAM-SHA-256".to_owned(),
                "SCRAM-SHA-512".to_owned(),
            ],
            connections_max_reauth_ms: 0,
            authentication_timeout_ms: 10_000,
            allow_everyone_if_no_acl_found: true,
            super_users: Vec::new(),
            max_connections: 10_000,
            max_connections_per_ip: 2_147_483_647,
            transaction_max_timeout_ms: 900_000,
            vhost: "/".to_owned(),
            max_request_bytes: 100 * 1024 * 1024,
            node_id: 0,
            auto_create_topics_enable: true,
            num_partitions: 1,
            message_max_bytes: 1_048_588,
            log_retention_ms: 7 * 24 * 60 * 60 * 1000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 5 * 60 * 1000,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 7 * 24 * 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let c = KafkaConfig::default();
        assert_eq!(c.max_request_bytes, 104_857_600);
        assert!(c.auto_create_topics_enable);
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.log_retention_ms, 604_800_000);
        assert_eq!(c.group_initial_rebalance_delay_ms, 3_000);
    }
}
