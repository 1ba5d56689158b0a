//! Streams seen as AMQP queues: `queue.declare` with `x-queue-type=stream`, redeclaration,
//! passive declares of any stream (a Kafka topic included), and deletion; with RabbitMQ's
//! argument validation and error wording.
//!
//! ```text
//! argument                          stream setting
//! x-max-age ("7D", "12h", ...)      retention_ms   (absent: keep forever, as RabbitMQ)
//! x-max-length-bytes                retention_bytes (absent: no limit)
//! x-stream-max-segment-size-bytes   segment_bytes  (absent: the broker's storage default)
//! x-ferrymq-fanout-exchange         fanout_exchange (see `fanout`)
//! x-initial-cluster-size, x-queue-leader-locator   accepted, no effect on one node
//! ```
//! Units of `x-max-age`: `Y` (365 days), `M` (30 days), `D`, `h`, `m`, `s`, after a positive
//! integer.

use std::sync::Arc;

use bytes::Bytes;

use super::header_value;
use crate::error::{Mismatch, ResourceKind};
use crate::message::{FieldTable, FieldValue};
use crate::queue::{Declared, OwnerId, QueueSpec, describe_arg, describe_mismatch};
use crate::stream::{QueueArgument, Stream, StreamConfig};
use crate::{Error, VHost};

/// The stream queue argument naming the fan-out exchange.
pub const FANOUT_ARG: &str = "x-ferrymq-fanout-exchange";

/// Arguments a stream queue accepts and compares on redeclaration.
const STREAM_ARGS: &[&str] = &[
    "x-queue-type",
    "x-max-length-bytes",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
    FANOUT_ARG,
];

/// Arguments of other queue types: declaring a stream with one is an error.
const OTHER_TYPE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-master-locator",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
];

/// Largest `x-stream-max-segment-size-bytes` RabbitMQ accepts.
const MAX_SEGMENT_SIZE: u64 = 3_000_000_000;

/// What queue.declare answers for a stream.
#[derive(Debug, Clone)]
pub struct StreamDeclared {
    pub stream: Arc<Stream>,
    pub message_count: u32,
    pub consumer_count: u32,
    /// False when the stream existed already.
    pub created: bool,
}

/// The outcome of a queue.declare of any queue type.
#[derive(Debug, Clone)]
pub enum QueueDeclared {
    Queue(Declared),
    Stream(StreamDeclared),
}

/// Whether `args` ask for a stream queue.
pub fn wants_stream(args: &FieldTable) -> bool {
    args.get("x-queue-type").and_then(FieldValue::as_str) == Some("stream")
}

/// `x-max-age` (and interval `x-stream-offset`) in milliseconds: a positive integer and a
/// unit, `Y`, `M`, `D`, `h`, `m` or `s`.
pub fn parse_max_age(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let unit_ms: u64 = match unit {
        "Y" => 365 * 24 * 3600 * 1000,
        "M" => 30 * 24 * 3600 * 1000,
        "D" => 24 * 3600 * 1000,
        "h" => 3600 * 1000,
        "m" => 60 * 1000,
        "s" => 1000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

fn integer(value: &FieldValue) -> Result<i64, String> {
    match value {
        FieldValue::Timestamp(_) => None,
        other => other.as_i64(),
    }
    .ok_or_else(|| format!("\"expected integer, got {}\"", value.type_name()))
}

fn non_negative(value: &FieldValue) -> Result<u64, String> {
    let n = integer(value)?;
    u64::try_from(n).map_err(|_| format!("{{value_negative,{n}}}"))
}

/// Runs blocking work (file I/O, fsync) from a synchronous handler on a runtime worker:
/// on a multi-threaded runtime the worker hands its other tasks away first.
pub(crate) fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

fn stored(name: &str, value: &FieldValue) -> QueueArgument {
    let bytes = header_value::encode(value).unwrap_or_default();
    QueueArgument {
        name: name.to_owned(),
        kind: char::from(header_value::letter(value)).to_string(),
        value: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn restored(arg: &QueueArgument) -> Option<FieldValue> {
    let letter = *arg.kind.as_bytes().first()?;
    let bytes = (letter != b'V').then(|| Bytes::from(arg.value.clone().into_bytes()));
    header_value::decode(letter, bytes.as_ref())
}

impl VHost {
    fn invalid_stream_arg(&self, queue: &str, arg: &str, reason: String) -> Error {
        Error::InvalidArgument {
            kind: ResourceKind::Queue,
            name: queue.to_owned(),
            vhost: self.name().to_owned(),
            arg: arg.to_owned(),
            reason,
        }
    }

    fn inequivalent(&self, queue: &str, arg: &str, received: String, current: String) -> Error {
        Error::Inequivalent {
            kind: ResourceKind::Queue,
            name: queue.to_owned(),
            vhost: self.name().to_owned(),
            mismatch: Box::new(Mismatch {
                arg: arg.to_owned(),
                received,
                current,
            }),
        }
    }

    /// Validates the arguments and flags of a new stream queue, as RabbitMQ does, and turns
    /// them into the stream's settings.
    fn stream_config(&self, spec: &QueueSpec) -> Result<StreamConfig, Error> {
        let name = spec.name.as_str();
        for (key, _) in spec.arguments.iter() {
            if OTHER_TYPE_ARGS.contains(&key) {
                return Err(Error::PreconditionFailed {
                    reason: format!(
                        "invalid arg '{key}' for queue '{name}' in vhost '{}' of queue type \
                         rabbit_stream_queue",
                        self.name()
                    ),
                });
            }
        }
        // Kept forever unless limited, as RabbitMQ streams are (not Kafka's 7-day default).
        let mut config = StreamConfig {
            retention_ms: Some(-1),
            retention_bytes: Some(-1),
            ..StreamConfig::default()
        };
        let mut segment_size = None;
        for (key, value) in spec.arguments.iter() {
            let invalid = |reason: String| self.invalid_stream_arg(name, key, reason);
            match key {
                "x-max-length-bytes" => {
                    let bytes = non_negative(value).map_err(invalid)?;
                    config.retention_bytes = Some(i64::try_from(bytes).unwrap_or(i64::MAX));
                }
                "x-max-age" => {
                    let FieldValue::LongString(text) = value else {
                        return Err(invalid(format!(
                            "{{unacceptable_type,{}}}",
                            value.type_name()
                        )));
                    };
                    let ms = std::str::from_utf8(text)
                        .ok()
                        .and_then(parse_max_age)
                        .ok_or_else(|| invalid("invalid_max_age".to_owned()))?;
                    config.retention_ms = Some(i64::try_from(ms).unwrap_or(i64::MAX));
                }
                "x-stream-max-segment-size-bytes" => {
                    segment_size = Some(non_negative(value).map_err(invalid)?);
                }
                FANOUT_ARG => match value.as_str() {
                    Some(exchange) if !exchange.is_empty() && exchange.len() <= 255 => {
                        config.fanout_exchange = Some(exchange.to_owned());
                    }
                    _ => {
                        return Err(invalid(
                            "expected the name of an exchange (a string of 1 to 255 bytes)"
                                .to_owned(),
                        ));
                    }
                },
                _ => {}
            }
        }
        let bad_flag = if spec.auto_delete {
            Some("auto-delete")
        } else if spec.exclusive {
            Some("exclusive-owner")
        } else if !spec.durable {
            Some("non-durable")
        } else {
            None
        };
        if let Some(flag) = bad_flag {
            return Err(Error::PreconditionFailed {
                reason: format!(
                    "invalid property '{flag}' for queue '{name}' in vhost '{}'",
                    self.name()
                ),
            });
        }
        if let Some(size) = segment_size {
            if size > MAX_SEGMENT_SIZE {
                return Err(Error::PreconditionFailed {
                    reason: "Exceeded max value for x-stream-max-segment-size-bytes".to_owned(),
                });
            }
            config.segment_bytes = Some(size);
        }
        config.queue_arguments = spec
            .arguments
            .iter()
            .filter(|(key, _)| STREAM_ARGS.contains(key))
            .map(|(key, value)| stored(key, value))
            .collect();
        Ok(config)
    }

    /// Checks a redeclaration of an existing stream, in RabbitMQ's order: exclusivity,
    /// durable, auto-delete, queue type, then the stream arguments.
    fn check_stream_equivalent(&self, stream: &Stream, spec: &QueueSpec) -> Result<(), Error> {
        let name = stream.name();
        if spec.exclusive {
            return Err(Error::ResourceLocked {
                name: name.to_owned(),
                vhost: self.name().to_owned(),
            });
        }
        if !spec.durable {
            return Err(self.inequivalent(name, "durable", "'false'".into(), "'true'".into()));
        }
        if spec.auto_delete {
            return Err(self.inequivalent(name, "auto_delete", "'true'".into(), "'false'".into()));
        }
        let queue_type = spec.arguments.get("x-queue-type");
        if queue_type.and_then(FieldValue::as_str) != Some("stream") {
            let (received, current) =
                describe_mismatch(queue_type, Some(&FieldValue::string("stream")));
            return Err(self.inequivalent(name, "x-queue-type", received, current));
        }
        let config = stream.config();
        for key in STREAM_ARGS.iter().filter(|k| **k != "x-queue-type") {
            let current = config
                .queue_arguments
                .iter()
                .find(|a| a.name == *key)
                .and_then(restored);
            let requested = spec.arguments.get(key);
            let same = match (current.as_ref(), requested) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    a.loosely_eq(b) && (a.as_i64().is_some() == b.as_i64().is_some())
                }
                _ => false,
            };
            if !same {
                let (received, current) = describe_mismatch(requested, current.as_ref());
                return Err(self.inequivalent(name, key, received, current));
            }
        }
        Ok(())
    }

    fn stream_declared(stream: Arc<Stream>, created: bool) -> QueueDeclared {
        QueueDeclared::Stream(StreamDeclared {
            message_count: u32::try_from(stream.message_count()).unwrap_or(u32::MAX),
            consumer_count: stream.reader_count(),
            stream,
            created,
        })
    }

    /// queue.declare for every queue type: a stream queue (`x-queue-type=stream`, or any
    /// existing stream of that name, a Kafka topic included) or a classic/quorum queue
    /// ([`VHost::declare_queue`]). Creating a stream does file I/O and an fsync.
    pub fn declare_queue_or_stream(
        self: &Arc<Self>,
        spec: QueueSpec,
        passive: bool,
        owner: OwnerId,
    ) -> Result<QueueDeclared, Error> {
        if let Some(stream) = self.streams().get(&spec.name) {
            if !passive {
                self.check_stream_equivalent(&stream, &spec)?;
            }
            return Ok(Self::stream_declared(stream, false));
        }
        if passive || !wants_stream(&spec.arguments) || self.lookup_queue(&spec.name).is_some() {
            // Classic and quorum queues, and a stream declared over an existing classic
            // queue (whose equivalence check reports the type mismatch).
            return self
                .declare_queue(spec, passive, owner)
                .map(QueueDeclared::Queue);
        }
        if spec.name.is_empty() {
            return Err(Error::PreconditionFailed {
                reason: "Cannot declare a server-named queue for type rabbit_stream_queue"
                    .to_owned(),
            });
        }
        if spec.name.starts_with("amq.") {
            return Err(Error::ReservedName {
                kind: ResourceKind::Queue,
                name: spec.name,
            });
        }
        let config = self.stream_config(&spec)?;
        let streams = Arc::clone(self.streams());
        match blocking(|| streams.create(&spec.name, 1, config)) {
            Ok(stream) => Ok(Self::stream_declared(stream, true)),
            // Declared concurrently (AMQP or Kafka): a redeclaration.
            Err(Error::StreamExists { .. }) => match self.streams().get(&spec.name) {
                Some(stream) => {
                    self.check_stream_equivalent(&stream, &spec)?;
                    Ok(Self::stream_declared(stream, false))
                }
                None => Err(Error::StreamNotFound { stream: spec.name }),
            },
            Err(Error::NameInUse { .. }) => Err(self.inequivalent(
                &spec.name,
                "x-queue-type",
                describe_arg(spec.arguments.get("x-queue-type")),
                "none".to_owned(),
            )),
            Err(other) => Err(other),
        }
    }

    /// queue.delete of a stream queue (or DeleteTopics): the stream and its data go, its
    /// bindings are removed, and its AMQP consumers are cancelled (they see it deleted).
    /// Blocking file I/O.
    pub fn delete_stream(&self, name: &str) -> Result<(), Error> {
        let stream = self
            .streams()
            .get(name)
            .ok_or_else(|| Error::StreamNotFound {
                stream: name.to_owned(),
            })?;
        let streams = Arc::clone(self.streams());
        blocking(|| streams.delete(name))?;
        self.remove_stream_bindings(&stream);
        Ok(())
    }

    /// Removes the bindings that lead to `stream` (once it is deleted).
    pub fn remove_stream_bindings(&self, stream: &Arc<Stream>) {
        self.remove_bindings_to(&crate::exchange::Destination::Stream(Arc::clone(stream)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Broker, BrokerConfig};

    fn vhost() -> (tempfile::TempDir, Arc<VHost>) {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let vhost = broker.vhost("/").unwrap();
        (dir, vhost)
    }

    fn spec(name: &str, args: &[(&str, FieldValue)]) -> QueueSpec {
        let mut spec = QueueSpec::new(name);
        spec.durable = true;
        spec.arguments
            .push("x-queue-type", FieldValue::string("stream"));
        for (k, v) in args {
            spec.arguments.push(*k, v.clone());
        }
        spec
    }

    fn declare(vhost: &Arc<VHost>, spec: QueueSpec) -> Result<QueueDeclared, String> {
        vhost
            .declare_queue_or_stream(spec, false, 1)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn max_age_units_follow_rabbitmq() {
        assert_eq!(parse_max_age("7D"), Some(7 * 24 * 3600 * 1000));
        assert_eq!(parse_max_age("12h"), Some(12 * 3600 * 1000));
        assert_eq!(parse_max_age("30m"), Some(30 * 60 * 1000));
        assert_eq!(parse_max_age("45s"), Some(45_000));
        assert_eq!(parse_max_age("1M"), Some(30 * 24 * 3600 * 1000));
        assert_eq!(parse_max_age("10Y"), Some(10 * 365 * 24 * 3600 * 1000));
        for bad in ["0s", "1h30m", "D", "", "5", "-1D", "1d"] {
            assert_eq!(parse_max_age(bad), None, "{bad}");
        }
    }

    #[test]
    fn arguments_map_onto_the_stream_and_are_validated_like_rabbitmq() {
        let (_dir, vh) = vhost();
        let declared = declare(
            &vh,
            spec(
                "s",
                &[
                    ("x-max-age", FieldValue::string("7D")),
                    ("x-max-length-bytes", FieldValue::I64(1 << 30)),
                    ("x-stream-max-segment-size-bytes", FieldValue::I32(1 << 20)),
                    (FANOUT_ARG, FieldValue::string("events")),
                ],
            ),
        )
        .unwrap();
        let QueueDeclared::Stream(d) = declared else {
            panic!("{declared:?}")
        };
        assert!(d.created);
        let config = d.stream.config();
        assert_eq!(config.retention_ms, Some(7 * 24 * 3600 * 1000));
        assert_eq!(config.retention_bytes, Some(1 << 30));
        assert_eq!(config.segment_bytes, Some(1 << 20));
        assert_eq!(config.fanout_exchange.as_deref(), Some("events"));
        assert_eq!(d.stream.partition_count(), 1);

        let plain = declare(&vh, spec("plain", &[])).unwrap();
        let QueueDeclared::Stream(plain) = plain else {
            panic!()
        };
        assert_eq!(plain.stream.config().retention_ms, Some(-1), "kept forever");

        let cases: &[(&str, FieldValue, &str)] = &[
            ("x-max-age", FieldValue::string("0s"), "invalid_max_age"),
            (
                "x-max-age",
                FieldValue::I32(5),
                "{unacceptable_type,signedint}",
            ),
            (
                "x-max-length-bytes",
                FieldValue::string("5"),
                "\"expected integer, got longstr\"",
            ),
            (
                "x-max-length-bytes",
                FieldValue::I32(-5),
                "{value_negative,-5}",
            ),
        ];
        for (i, (key, value, reason)) in cases.iter().enumerate() {
            let name = format!("bad{i}");
            let err = declare(&vh, spec(&name, &[(key, value.clone())])).unwrap_err();
            assert_eq!(
                err,
                format!("invalid arg '{key}' for queue '{name}' in vhost '/': {reason}")
            );
        }
        let err = declare(&vh, spec("t", &[("x-message-ttl", FieldValue::I32(5))])).unwrap_err();
        assert_eq!(
            err,
            "invalid arg 'x-message-ttl' for queue 't' in vhost '/' of queue type \
             rabbit_stream_queue"
        );
        let err = declare(
            &vh,
            spec(
                "t",
                &[(
                    "x-stream-max-segment-size-bytes",
                    FieldValue::I64(3_000_000_001),
                )],
            ),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "Exceeded max value for x-stream-max-segment-size-bytes"
        );
        let mut transient = spec("t", &[]);
        transient.durable = false;
        assert_eq!(
            declare(&vh, transient).unwrap_err(),
            "invalid property 'non-durable' for queue 't' in vhost '/'"
        );
        let mut unnamed = spec("", &[]);
        unnamed.durable = true;
        assert!(declare(&vh, unnamed).unwrap_err().contains("server-named"));
        assert!(vh.streams().get("t").is_none(), "nothing was created");
    }

    #[test]
    fn redeclarations_compare_like_rabbitmq() {
        let (_dir, vh) = vhost();
        declare(&vh, spec("s", &[("x-max-age", FieldValue::string("1D"))])).unwrap();
        let again = declare(&vh, spec("s", &[("x-max-age", FieldValue::string("1D"))])).unwrap();
        assert!(matches!(
            again,
            QueueDeclared::Stream(StreamDeclared { created: false, .. })
        ));
        // Arguments of no stream meaning are not compared.
        let mut custom = spec("s", &[("x-max-age", FieldValue::string("1D"))]);
        custom.arguments.push("x-custom", FieldValue::I8(1));
        declare(&vh, custom).unwrap();

        let err = declare(&vh, spec("s", &[])).unwrap_err();
        assert_eq!(
            err,
            "inequivalent arg 'x-max-age' for queue 's' in vhost '/': received none but current \
             is the value '1D' of type 'longstr'"
        );
        // Both present: bare values, whatever their types (RabbitMQ 3.10's wording).
        let err = declare(&vh, spec("s", &[("x-max-age", FieldValue::string("2D"))])).unwrap_err();
        assert_eq!(
            err,
            "inequivalent arg 'x-max-age' for queue 's' in vhost '/': received '2D' but current \
             is '1D'"
        );
        let err = declare(&vh, spec("s", &[("x-max-age", FieldValue::I32(5))])).unwrap_err();
        assert!(err.ends_with("received '5' but current is '1D'"), "{err}");
        let mut classic = QueueSpec::new("s");
        classic.durable = true;
        assert_eq!(
            declare(&vh, classic.clone()).unwrap_err(),
            "inequivalent arg 'x-queue-type' for queue 's' in vhost '/': received none but \
             current is the value 'stream' of type 'longstr'"
        );
        classic
            .arguments
            .push("x-queue-type", FieldValue::string("quorum"));
        assert_eq!(
            declare(&vh, classic).unwrap_err(),
            "inequivalent arg 'x-queue-type' for queue 's' in vhost '/': received 'quorum' but \
             current is 'stream'"
        );
        let mut transient = spec("s", &[]);
        transient.durable = false;
        assert_eq!(
            declare(&vh, transient).unwrap_err(),
            "inequivalent arg 'durable' for queue 's' in vhost '/': received 'false' but \
             current is 'true'"
        );
        let mut exclusive = spec("s", &[]);
        exclusive.exclusive = true;
        assert!(matches!(
            vh.declare_queue_or_stream(exclusive, false, 1),
            Err(Error::ResourceLocked { .. })
        ));
        // Passive declares succeed whatever they say.
        assert!(
            vh.declare_queue_or_stream(QueueSpec::new("s"), true, 1)
                .is_ok()
        );
    }

    #[test]
    fn kafka_topics_are_stream_queues_and_classic_queues_keep_their_names() {
        let (_dir, vh) = vhost();
        vh.streams()
            .create("topic", 3, StreamConfig::default())
            .unwrap();
        let declared = vh
            .declare_queue_or_stream(QueueSpec::new("topic"), true, 1)
            .unwrap();
        assert!(matches!(declared, QueueDeclared::Stream(_)));
        declare(&vh, spec("topic", &[])).unwrap();

        let mut classic = QueueSpec::new("work");
        classic.durable = true;
        declare(&vh, classic).unwrap();
        let err = declare(&vh, spec("work", &[])).unwrap_err();
        assert_eq!(
            err,
            "inequivalent arg 'x-queue-type' for queue 'work' in vhost '/': received the value \
             'stream' of type 'longstr' but current is none"
        );

        vh.delete_stream("topic").unwrap();
        assert!(vh.streams().get("topic").is_none());
        assert!(matches!(
            vh.declare_queue_or_stream(QueueSpec::new("topic"), true, 1),
            Err(Error::NotFound { .. })
        ));
    }
}
