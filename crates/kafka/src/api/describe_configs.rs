//! DescribeConfigs (key 32): every topic config (with where its value comes from) and every
//! broker config ferrymq has.
//!
//! Sources follow Kafka: `DYNAMIC_TOPIC_CONFIG` (1) for a value set on the topic,
//! `STATIC_BROKER_CONFIG` (4) for one inherited from a broker setting that differs from the
//! built-in default, `DEFAULT_CONFIG` (5) otherwise. Broker configs are read-only (they come
//! from ferrymq.toml, flags and environment; AlterConfigs on the broker is refused).

use std::sync::Arc;

use ferrymq_core::StorageConfig;
use ferrymq_core::stream::{Stream, StreamDefaults};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::s;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::Reply;
use crate::topic_config::{self, ConfigType, TOPIC_CONFIGS};
use crate::{Ctx, KafkaConfig};

pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;
const RESOURCE_BROKER_LOGGER: i8 = 8;
pub(crate) const SOURCE_TOPIC: i8 = 1;
pub(crate) const SOURCE_STATIC_BROKER: i8 = 4;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

/// One described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub read_only: bool,
    pub kind: ConfigType,
    pub doc: &'static str,
    /// (name, value, source), most specific first.
    pub synonyms: Vec<(String, String, i8)>,
}

fn builtin_defaults(ctx: &Ctx) -> StreamDefaults {
    let storage = StorageConfig::default();
    let mut builtin = crate::ctx::stream_defaults(ctx.broker(), &KafkaConfig::default());
    builtin.segment_bytes = storage.segment_bytes;
    builtin.fsync = storage.stream_fsync;
    builtin.fsync_interval_ms = storage.stream_fsync_interval_ms;
    builtin
}

/// Every topic config of `stream`.
pub(crate) fn topic_entries(ctx: &Ctx, stream: &Stream) -> Vec<ConfigEntry> {
    let config = stream.config();
    let defaults = ctx.streams.defaults();
    let builtin = builtin_defaults(ctx);
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (default, from_broker) = topic_config::default_value(def, &defaults, &builtin);
            let broker_source = if from_broker {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            };
            let explicit = topic_config::explicit(def, &config);
            let mut synonyms = Vec::new();
            if let Some(v) = &explicit {
                synonyms.push((def.name.to_owned(), v.clone(), SOURCE_TOPIC));
            }
            if let Some(broker) = def.broker_synonym {
                synonyms.push((broker.to_owned(), default.clone(), broker_source));
            }
            let (value, source) = match explicit {
                Some(v) => (v, SOURCE_TOPIC),
                None => (default, broker_source),
            };
            ConfigEntry {
                name: def.name.to_owned(),
                value,
                source,
                read_only: false,
                kind: def.kind,
                doc: def.doc,
                synonyms,
            }
        })
        .collect()
}

/// Every broker config.
pub(crate) fn broker_entries(ctx: &Ctx) -> Vec<ConfigEntry> {
    let c = &ctx.config;
    let d = KafkaConfig::default();
    let storage = &ctx.broker().config().storage;
    let ds = StorageConfig::default();
    let (flush_messages, flush_ms) = match storage.stream_fsync {
        ferrymq_core::FsyncMode::Always => ("1".to_owned(), "0".to_owned()),
        ferrymq_core::FsyncMode::Interval => (
            i64::MAX.to_string(),
            storage.stream_fsync_interval_ms.to_string(),
        ),
        ferrymq_core::FsyncMode::Never => (i64::MAX.to_string(), i64::MAX.to_string()),
    };
    let storage_changed = storage.stream_fsync != ds.stream_fsync
        || storage.stream_fsync_interval_ms != ds.stream_fsync_interval_ms;
    let listener = format!("PLAINTEXT://{}", c.listen);
    let advertised = format!(
        "PLAINTEXT://{}:{}",
        ctx.advertised_host, ctx.advertised_port
    );
    let data_dir = ctx
        .broker()
        .config()
        .data_dir
        .join("streams")
        .display()
        .to_string();
    let e = |name: &str, value: String, changed: bool, kind: ConfigType| ConfigEntry {
        name: name.to_owned(),
        value: value.clone(),
        source: if changed {
            SOURCE_STATIC_BROKER
        } else {
            SOURCE_DEFAULT
        },
        read_only: true,
        kind,
        doc: "",
        synonyms: vec![(
            name.to_owned(),
            value,
            if changed {
                SOURCE_STATIC_BROKER
            } else {
                SOURCE_DEFAULT
            },
        )],
    };
    use ConfigType::{Boolean, Int, List, Long, String as Str};
    vec![
        e("advertised.listeners", advertised, true, Str),
        e(
            "auto.create.topics.enable",
            c.auto_create_topics_enable.to_string(),
            c.auto_create_topics_enable != d.auto_create_topics_enable,
            Boolean,
        ),
        e(
            "broker.id",
            c.node_id.to_string(),
            c.node_id != d.node_id,
            Int,
        ),
        e("compression.type", "producer".into(), false, Str),
        e("default.replication.factor", "1".into(), false, Int),
        e("delete.topic.enable", "true".into(), false, Boolean),
        e(
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay_ms.to_string(),
            c.group_initial_rebalance_delay_ms != d.group_initial_rebalance_delay_ms,
            Int,
        ),
        e(
            "group.max.session.timeout.ms",
            c.group_max_session_timeout_ms.to_string(),
            c.group_max_session_timeout_ms != d.group_max_session_timeout_ms,
            Int,
        ),
        e(
            "group.min.session.timeout.ms",
            c.group_min_session_timeout_ms.to_string(),
            c.group_min_session_timeout_ms != d.group_min_session_timeout_ms,
            Int,
        ),
        e("listeners", listener, true, List),
        e("log.cleanup.policy", "delete".into(), false, List),
        e("log.dirs", data_dir, true, Str),
        e(
            "log.flush.interval.messages",
            flush_messages,
            storage_changed,
            Long,
        ),
        e("log.flush.interval.ms", flush_ms, storage_changed, Long),
        e("log.index.interval.bytes", "4096".into(), false, Int),
        e(
            "log.message.timestamp.type",
            "CreateTime".into(),
            false,
            Str,
        ),
        e(
            "log.retention.bytes",
            c.log_retention_bytes.to_string(),
            c.log_retention_bytes != d.log_retention_bytes,
            Long,
        ),
        e(
            "log.retention.check.interval.ms",
            c.log_retention_check_interval_ms.to_string(),
            c.log_retention_check_interval_ms != d.log_retention_check_interval_ms,
            Long,
        ),
        e(
            "log.retention.ms",
            c.log_retention_ms.to_string(),
            c.log_retention_ms != d.log_retention_ms,
            Long,
        ),
        e("log.roll.ms", "604800000".into(), false, Long),
        e(
            "log.segment.bytes",
            storage.segment_bytes.to_string(),
            storage.segment_bytes != ds.segment_bytes,
            Int,
        ),
        e(
            "max.connections.per.ip",
            c.max_connections_per_ip.to_string(),
            c.max_connections_per_ip != d.max_connections_per_ip,
            Int,
        ),
        e(
            "message.max.bytes",
            c.message_max_bytes.to_string(),
            c.message_max_bytes != d.message_max_bytes,
            Int,
        ),
        e("min.insync.replicas", "1".into(), false, Int),
        e(
            "node.id",
            c.node_id.to_string(),
            c.node_id != d.node_id,
            Int,
        ),
        e(
            "num.partitions",
            c.num_partitions.to_string(),
            c.num_partitions != d.num_partitions,
            Int,
        ),
        e("offset.metadata.max.bytes", "4096".into(), false, Int),
        e(
            "offsets.retention.minutes",
            c.offsets_retention_minutes.to_string(),
            c.offsets_retention_minutes != d.offsets_retention_minutes,
            Int,
        ),
        e("offsets.topic.replication.factor", "1".into(), false, Int),
        e(
            "socket.request.max.bytes",
            c.max_request_bytes.to_string(),
            c.max_request_bytes != d.max_request_bytes,
            Int,
        ),
        e(
            "unclean.leader.election.enable",
            "false".into(),
            false,
            Boolean,
        ),
    ]
}

fn describe(entry: ConfigEntry, synonyms: bool, docs: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(s(entry.name))
        .with_value(Some(s(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(entry.source)
        .with_is_sensitive(false)
        .with_config_type(entry.kind as i8)
        .with_documentation(docs.then(|| s(entry.doc)))
        .with_synonyms(if synonyms {
            entry
                .synonyms
                .into_iter()
                .map(|(n, v, src)| {
                    DescribeConfigsSynonym::default()
                        .with_name(s(n))
                        .with_value(Some(s(v)))
                        .with_source(src)
                })
                .collect()
        } else {
            Vec::new()
        })
}

pub(super) fn handle(ctx: &Arc<Ctx>, request: &DescribeConfigsRequest, _version: i16) -> Reply {
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match ctx.streams.get(&resource.resource_name) {
                    Some(stream) => topic_entries(ctx, &stream),
                    None => {
                        return base
                            .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                            .with_error_message(Some(s(format!(
                                "Topic '{}' does not exist",
                                &*resource.resource_name
                            ))));
                    }
                },
                RESOURCE_BROKER
                    if resource.resource_name.is_empty()
                        || resource.resource_name.as_str() == ctx.config.node_id.to_string() =>
                {
                    broker_entries(ctx)
                }
                RESOURCE_BROKER_LOGGER => Vec::new(),
                _ => {
                    return base
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(s("unknown resource type or broker id")));
                }
            };
            let keys = resource.configuration_keys.as_ref();
            let configs = entries
                .into_iter()
                .filter(|e| {
                    keys.is_none_or(|keys| {
                        keys.is_empty() || keys.iter().any(|k| k.as_str() == e.name)
                    })
                })
                .map(|e| describe(e, request.include_synonyms, request.include_documentation))
                .collect();
            base.with_configs(configs)
        })
        .collect();
    Reply::Now(ResponseBody::DescribeConfigs(
        DescribeConfigsResponse::default().with_results(results),
    ))
}
