//! Kafka topic configs (`retention.ms`, ...): their names, types, defaults and validation,
//! mapped onto the protocol-neutral [`StreamConfig`].
//!
//! Every topic config of Apache Kafka 3.7 is listed. Those with an effect in ferrymq map onto
//! a `StreamConfig` field; the others are validated, stored in `StreamConfig::extra` and
//! reported back, but do not change behaviour (replication, compaction and tiered-storage
//! settings on a single node without compaction; see docs/kafka.md).

use ferrymq_core::stream::{StreamConfig, StreamDefaults, TimestampType};

/// Kafka's config value types (the `ConfigType` of DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// Where a field of `StreamConfig` backs a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    RetentionMs,
    RetentionBytes,
    SegmentBytes,
    SegmentMs,
    MaxMessageBytes,
    TimestampType,
    FlushMessages,
    FlushMs,
    IndexIntervalBytes,
    /// ferrymq's topic -> exchange fan-out.
    FanoutExchange,
    /// Kept in `extra`.
    Extra,
}

/// One topic config.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    pub kind: ConfigType,
    field: Field,
    /// The default when the broker has no say (a literal).
    literal_default: &'static str,
    /// Values accepted beyond the type check, if restricted.
    allowed: &'static [&'static str],
    pub doc: &'static str,
    /// The broker config that supplies the default, if any (its synonym).
    pub broker_synonym: Option<&'static str>,
}

const LONG_MAX: &str = "9223372036854775807";

macro_rules! def {
    ($name:expr, $kind:ident, $field:ident, $default:expr, $allowed:expr, $synonym:expr, $doc:expr) => {
        TopicConfigDef {
            name: $name,
            kind: ConfigType::$kind,
            field: Field::$field,
            literal_default: $default,
            allowed: $allowed,
            doc: $doc,
            broker_synonym: $synonym,
        }
    };
}

/// Every topic config, by name.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!(
        "cleanup.policy",
        List,
        Extra,
        "delete",
        &["delete"],
        Some("log.cleanup.policy"),
        "Only \"delete\": ferrymq does not compact logs."
    ),
    def!(
        "compression.type",
        String,
        Extra,
        "producer",
        &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
        Some("compression.type"),
        "Accepted and reported; batches are always stored as the producer compressed them."
    ),
    def!(
        "delete.retention.ms",
        Long,
        Extra,
        "86400000",
        &[],
        Some("log.cleaner.delete.retention.ms"),
        "No effect (no compaction)."
    ),
    def!(
        "ferrymq.fanout.exchange",
        String,
        FanoutExchange,
        "",
        &[],
        None,
        "ferrymq: every record appended is also published to this exchange of the Kafka \
         vhost, its key as routing key (at-least-once). Unset: no fan-out."
    ),
    def!(
        "file.delete.delay.ms",
        Long,
        Extra,
        "60000",
        &[],
        Some("log.segment.delete.delay.ms"),
        "No effect: segments past retention are deleted at once."
    ),
    def!(
        "flush.messages",
        Long,
        FlushMessages,
        LONG_MAX,
        &[],
        Some("log.flush.interval.messages"),
        "1 makes every append durable before it is acknowledged (fsync policy Always)."
    ),
    def!(
        "flush.ms",
        Long,
        FlushMs,
        LONG_MAX,
        &[],
        Some("log.flush.interval.ms"),
        "fsync at least this often (fsync policy Interval); 0 means every append."
    ),
    def!(
        "follower.replication.throttled.replicas",
        List,
        Extra,
        "",
        &[],
        None,
        "No effect (single node)."
    ),
    def!(
        "index.interval.bytes",
        Int,
        IndexIntervalBytes,
        "4096",
        &[],
        Some("log.index.interval.bytes"),
        "Bytes between offset-index entries."
    ),
    def!(
        "leader.replication.throttled.replicas",
        List,
        Extra,
        "",
        &[],
        None,
        "No effect (single node)."
    ),
    def!(
        "local.retention.bytes",
        Long,
        Extra,
        "-2",
        &[],
        Some("log.local.retention.bytes"),
        "No effect (no tiered storage)."
    ),
    def!(
        "local.retention.ms",
        Long,
        Extra,
        "-2",
        &[],
        Some("log.local.retention.ms"),
        "No effect (no tiered storage)."
    ),
    def!(
        "max.compaction.lag.ms",
        Long,
        Extra,
        LONG_MAX,
        &[],
        Some("log.cleaner.max.compaction.lag.ms"),
        "No effect (no compaction)."
    ),
    def!(
        "max.message.bytes",
        Int,
        MaxMessageBytes,
        "1048588",
        &[],
        Some("message.max.bytes"),
        "Largest record batch accepted (MESSAGE_TOO_LARGE beyond)."
    ),
    def!(
        "message.downconversion.enable",
        Boolean,
        Extra,
        "true",
        &[],
        Some("log.message.downconversion.enable"),
        "No effect: only message format v2 is served."
    ),
    def!(
        "message.format.version",
        String,
        Extra,
        "3.0-IV1",
        &[],
        Some("log.message.format.version"),
        "No effect: only message format v2 is stored."
    ),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        Extra,
        LONG_MAX,
        &[],
        Some("log.message.timestamp.after.max.ms"),
        "CreateTime batches stamped further in the future are refused (INVALID_TIMESTAMP)."
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        Extra,
        LONG_MAX,
        &[],
        Some("log.message.timestamp.before.max.ms"),
        "CreateTime batches stamped further in the past are refused (INVALID_TIMESTAMP)."
    ),
    def!(
        "message.timestamp.difference.max.ms",
        Long,
        Extra,
        LONG_MAX,
        &[],
        Some("log.message.timestamp.difference.max.ms"),
        "CreateTime batches this far from the broker's clock are refused (INVALID_TIMESTAMP)."
    ),
    def!(
        "message.timestamp.type",
        String,
        TimestampType,
        "CreateTime",
        &["CreateTime", "LogAppendTime"],
        Some("log.message.timestamp.type"),
        "Whose clock stamps records: the producer's or the broker's."
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        Extra,
        "0.5",
        &[],
        Some("log.cleaner.min.cleanable.ratio"),
        "No effect (no compaction)."
    ),
    def!(
        "min.compaction.lag.ms",
        Long,
        Extra,
        "0",
        &[],
        Some("log.cleaner.min.compaction.lag.ms"),
        "No effect (no compaction)."
    ),
    def!(
        "min.insync.replicas",
        Int,
        Extra,
        "1",
        &[],
        Some("min.insync.replicas"),
        "Above 1, acks=all produces fail with NOT_ENOUGH_REPLICAS (there is one replica)."
    ),
    def!(
        "preallocate",
        Boolean,
        Extra,
        "false",
        &[],
        Some("log.preallocate"),
        "No effect."
    ),
    def!(
        "remote.storage.enable",
        Boolean,
        Extra,
        "false",
        &["false"],
        None,
        "Only false: no tiered storage."
    ),
    def!(
        "retention.bytes",
        Long,
        RetentionBytes,
        "-1",
        &[],
        Some("log.retention.bytes"),
        "Per partition: oldest segments are deleted while the partition is larger (-1: no limit)."
    ),
    def!(
        "retention.ms",
        Long,
        RetentionMs,
        "604800000",
        &[],
        Some("log.retention.ms"),
        "Segments whose newest record is older are deleted (-1: keep forever)."
    ),
    def!(
        "segment.bytes",
        Int,
        SegmentBytes,
        "1073741824",
        &[],
        Some("log.segment.bytes"),
        "A new segment file is started at this size."
    ),
    def!(
        "segment.index.bytes",
        Int,
        Extra,
        "10485760",
        &[],
        Some("log.index.size.max.bytes"),
        "No effect: indexes grow as needed."
    ),
    def!(
        "segment.jitter.ms",
        Long,
        Extra,
        "0",
        &[],
        Some("log.roll.jitter.ms"),
        "No effect."
    ),
    def!(
        "segment.ms",
        Long,
        SegmentMs,
        "604800000",
        &[],
        Some("log.roll.ms"),
        "A new segment file is started when the active one is this old."
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        Extra,
        "false",
        &[],
        Some("unclean.leader.election.enable"),
        "No effect (single node)."
    ),
];

/// Looks a topic config up by name.
pub fn lookup(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

fn check_type(def: &TopicConfigDef, value: &str) -> Result<(), String> {
    let ok = match def.kind {
        ConfigType::Boolean => matches!(value.to_ascii_lowercase().as_str(), "true" | "false"),
        ConfigType::Int => value.trim().parse::<i32>().is_ok(),
        ConfigType::Long => value.trim().parse::<i64>().is_ok(),
        ConfigType::Double => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
        ConfigType::String | ConfigType::List => true,
    };
    if !ok {
        return Err(format!(
            "Invalid value {value} for configuration {}: not a {:?}",
            def.name, def.kind
        ));
    }
    if def.allowed.is_empty() {
        return Ok(());
    }
    let items: Vec<&str> = match def.kind {
        ConfigType::List => value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        _ => vec![value.trim()],
    };
    match items
        .iter()
        .find(|v| !def.allowed.iter().any(|a| a.eq_ignore_ascii_case(v)))
    {
        Some(bad) => Err(format!(
            "Invalid value {bad} for configuration {}: ferrymq accepts {}",
            def.name,
            def.allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn number<T>(def: &TopicConfigDef, value: &str, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let v: T = value
        .trim()
        .parse()
        .map_err(|_| format!("Invalid value {value} for configuration {}", def.name))?;
    if v < min {
        return Err(format!(
            "Invalid value {value} for configuration {}: must be at least {min}",
            def.name
        ));
    }
    Ok(v)
}

/// Sets (`Some`) or resets (`None`) config `name` on `config`.
pub fn apply(config: &mut StreamConfig, name: &str, value: Option<&str>) -> Result<(), String> {
    let def = lookup(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let Some(value) = value else {
        match def.field {
            Field::RetentionMs => config.retention_ms = None,
            Field::RetentionBytes => config.retention_bytes = None,
            Field::SegmentBytes => config.segment_bytes = None,
            Field::SegmentMs => config.segment_ms = None,
            Field::MaxMessageBytes => config.max_message_bytes = None,
            Field::TimestampType => config.timestamp_type = None,
            Field::FlushMessages => config.flush_messages = None,
            Field::FlushMs => config.flush_ms = None,
            Field::IndexIntervalBytes => config.index_interval_bytes = None,
            Field::FanoutExchange => config.fanout_exchange = None,
            Field::Extra => {
                config.extra.remove(name);
            }
        }
        return Ok(());
    };
    check_type(def, value)?;
    let to_u64 = |v: i64| u64::try_from(v).unwrap_or(0);
    match def.field {
        Field::RetentionMs => config.retention_ms = Some(number(def, value, -1i64)?),
        Field::RetentionBytes => config.retention_bytes = Some(number(def, value, -1i64)?),
        Field::SegmentBytes => config.segment_bytes = Some(to_u64(number(def, value, 14i64)?)),
        Field::SegmentMs => config.segment_ms = Some(to_u64(number(def, value, 1i64)?)),
        Field::MaxMessageBytes => {
            config.max_message_bytes = Some(u32::try_from(number(def, value, 0i32)?).unwrap_or(0));
        }
        Field::TimestampType => {
            config.timestamp_type = Some(if value.trim().eq_ignore_ascii_case("LogAppendTime") {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            });
        }
        Field::FlushMessages => config.flush_messages = Some(to_u64(number(def, value, 1i64)?)),
        Field::FlushMs => config.flush_ms = Some(to_u64(number(def, value, 0i64)?)),
        Field::IndexIntervalBytes => {
            config.index_interval_bytes =
                Some(u32::try_from(number(def, value, 0i32)?).unwrap_or(0));
        }
        Field::FanoutExchange => {
            let exchange = value.trim();
            if exchange.is_empty() || exchange.len() > 255 {
                return Err(format!(
                    "Invalid value {value} for configuration {name}: the name of an exchange \
                     (1 to 255 bytes)"
                ));
            }
            config.fanout_exchange = Some(exchange.to_owned());
        }
        Field::Extra => {
            if name == "min.insync.replicas" {
                number(def, value, 1i32)?;
            }
            config
                .extra
                .insert(name.to_owned(), value.trim().to_owned());
        }
    }
    Ok(())
}

/// The explicitly set value of `def` on `config`, if any.
pub fn explicit(def: &TopicConfigDef, config: &StreamConfig) -> Option<String> {
    fn text(v: Option<impl ToString>) -> Option<String> {
        v.map(|v| v.to_string())
    }
    match def.field {
        Field::RetentionMs => text(config.retention_ms),
        Field::RetentionBytes => text(config.retention_bytes),
        Field::SegmentBytes => text(config.segment_bytes),
        Field::SegmentMs => text(config.segment_ms),
        Field::MaxMessageBytes => text(config.max_message_bytes),
        Field::TimestampType => config
            .timestamp_type
            .map(|t| timestamp_type_name(t).to_owned()),
        Field::FlushMessages => text(config.flush_messages),
        Field::FlushMs => text(config.flush_ms),
        Field::IndexIntervalBytes => text(config.index_interval_bytes),
        Field::FanoutExchange => config.fanout_exchange.clone(),
        Field::Extra => config.extra.get(def.name).cloned(),
    }
}

fn timestamp_type_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// The value `def` has on a topic that does not set it, and whether that comes from the
/// broker's configuration (`true`) or is the built-in default.
pub fn default_value(
    def: &TopicConfigDef,
    defaults: &StreamDefaults,
    builtin: &StreamDefaults,
) -> (String, bool) {
    let flush = |d: &StreamDefaults| match d.fsync {
        ferrymq_core::FsyncMode::Always => ("1".to_owned(), "0".to_owned()),
        ferrymq_core::FsyncMode::Interval => (LONG_MAX.to_owned(), d.fsync_interval_ms.to_string()),
        ferrymq_core::FsyncMode::Never => (LONG_MAX.to_owned(), LONG_MAX.to_owned()),
    };
    let value = |d: &StreamDefaults| -> Option<String> {
        Some(match def.field {
            Field::RetentionMs => d.retention_ms.to_string(),
            Field::RetentionBytes => d.retention_bytes.to_string(),
            Field::SegmentBytes => d.segment_bytes.to_string(),
            Field::SegmentMs => d
                .segment_ms
                .map_or_else(|| LONG_MAX.to_owned(), |v| v.to_string()),
            Field::MaxMessageBytes => d.max_message_bytes.to_string(),
            Field::TimestampType => timestamp_type_name(d.timestamp_type).to_owned(),
            Field::FlushMessages => flush(d).0,
            Field::FlushMs => flush(d).1,
            Field::IndexIntervalBytes => d.index_interval_bytes.to_string(),
            Field::FanoutExchange | Field::Extra => return None,
        })
    };
    match (value(defaults), value(builtin)) {
        (Some(ours), Some(builtin)) => {
            let from_broker = ours != builtin;
            (ours, from_broker)
        }
        _ => (def.literal_default.to_owned(), false),
    }
}

/// Every topic config of a topic with `config` and the listener's `defaults`, as
/// DescribeConfigs reports values (explicit ones, else the default), by name.
pub fn effective(config: &StreamConfig, defaults: &StreamDefaults) -> Vec<(String, String)> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let value =
                explicit(def, config).unwrap_or_else(|| default_value(def, defaults, defaults).0);
            (def.name.to_owned(), value)
        })
        .collect()
}

/// The `min.insync.replicas` a topic asks for.
pub fn min_insync_replicas(config: &StreamConfig) -> i32 {
    config
        .extra
        .get("min.insync.replicas")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A `message.timestamp.*.max.ms` limit of the topic, if set.
pub fn timestamp_limit(config: &StreamConfig, name: &str) -> Option<i64> {
    config
        .extra
        .get(name)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_configs_map_onto_stream_fields() {
        let mut c = StreamConfig::default();
        apply(&mut c, "retention.ms", Some("60000")).unwrap();
        apply(&mut c, "message.timestamp.type", Some("LogAppendTime")).unwrap();
        apply(&mut c, "cleanup.policy", Some("delete")).unwrap();
        assert_eq!(c.retention_ms, Some(60_000));
        assert_eq!(c.timestamp_type, Some(TimestampType::LogAppendTime));
        assert_eq!(
            explicit(lookup("cleanup.policy").unwrap(), &c).as_deref(),
            Some("delete")
        );
        apply(&mut c, "retention.ms", None).unwrap();
        assert_eq!(c.retention_ms, None);
        apply(&mut c, "ferrymq.fanout.exchange", Some("tasks")).unwrap();
        assert_eq!(c.fanout_exchange.as_deref(), Some("tasks"));
        assert_eq!(
            explicit(lookup("ferrymq.fanout.exchange").unwrap(), &c).as_deref(),
            Some("tasks")
        );
        assert!(apply(&mut c, "ferrymq.fanout.exchange", Some(" ")).is_err());
        apply(&mut c, "ferrymq.fanout.exchange", None).unwrap();
        assert_eq!(c.fanout_exchange, None);
    }

    #[test]
    fn bad_names_and_values_are_refused_with_a_reason() {
        let mut c = StreamConfig::default();
        assert!(
            apply(&mut c, "retention.mss", Some("1"))
                .unwrap_err()
                .contains("Unknown")
        );
        assert!(
            apply(&mut c, "retention.ms", Some("soon"))
                .unwrap_err()
                .contains("retention.ms")
        );
        assert!(
            apply(&mut c, "retention.ms", Some("-5"))
                .unwrap_err()
                .contains("at least -1")
        );
        assert!(
            apply(&mut c, "cleanup.policy", Some("compact"))
                .unwrap_err()
                .contains("delete")
        );
        assert!(apply(&mut c, "min.insync.replicas", Some("0")).is_err());
        assert!(apply(&mut c, "preallocate", Some("maybe")).is_err());
        assert_eq!(
            c,
            StreamConfig::default(),
            "a refused value changes nothing"
        );
    }

    #[test]
    fn the_table_is_sorted_and_unique() {
        let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
