//! Queue arguments (`x-message-ttl`, `x-max-length`, ...): validation as RabbitMQ does it,
//! the parsed form the queue runs on, and the equivalence check of a redeclaration.

use crate::Error;
use crate::error::ResourceKind;
use crate::message::{FieldTable, FieldValue, MAX_TTL_MS};

/// What happens when a queue with a length limit is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest ready message.
    #[default]
    DropHead,
    /// Refuse the new message (nack to a confirming publisher).
    RejectPublish,
    /// Refuse it and dead-letter it.
    RejectPublishDlx,
}

/// `x-queue-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Classic,
    /// Accepted for compatibility and run as a durable classic queue (see docs/amqp.md).
    Quorum,
}

/// The arguments a queue runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueArgs {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    pub queue_type: QueueType,
    /// Quorum queues only: dead-letter a message redelivered more than this many times.
    pub delivery_limit: Option<u64>,
}

/// Arguments RabbitMQ compares when a classic queue is declared again.
const CLASSIC_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
];

const QUORUM_ARGS: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-overflow",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-message-ttl",
];

/// Arguments of some queue type; using one that the declared type lacks is an error.
const ALL_TYPE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

fn int_arg(value: &FieldValue) -> Result<i64, String> {
    match value {
        FieldValue::Timestamp(_) => Err(format!("expected integer, got {}", value.type_name())),
        other => other
            .as_i64()
            .ok_or_else(|| format!("expected integer, got {}", other.type_name())),
    }
}

fn non_neg(value: &FieldValue) -> Result<u64, String> {
    let n = int_arg(value)?;
    u64::try_from(n).map_err(|_| format!("{{value_negative,{n}}}"))
}

fn expiry(value: &FieldValue) -> Result<u64, String> {
    let n = non_neg(value)?;
    if n > MAX_TTL_MS {
        return Err(format!("{{value_too_large,{n}}}"));
    }
    Ok(n)
}

fn string_arg(value: &FieldValue) -> Result<String, String> {
    match value {
        FieldValue::LongString(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        other => Err(format!("{{unacceptable_type,{}}}", other.type_name())),
    }
}

impl QueueArgs {
    /// Validates and parses declare arguments. `durable`/`exclusive`/`auto_delete` matter for
    /// quorum queues, which must be durable and neither exclusive nor auto-delete.
    pub fn parse(
        args: &FieldTable,
        queue: &str,
        vhost: &str,
        flags: (bool, bool, bool),
    ) -> Result<Self, Error> {
        let invalid = |arg: &str, reason: String| Error::InvalidArgument {
            kind: ResourceKind::Queue,
            name: queue.to_owned(),
            vhost: vhost.to_owned(),
            arg: arg.to_owned(),
            reason,
        };
        let mut parsed = Self::default();
        if let Some(value) = args.get("x-queue-type") {
            parsed.queue_type = match value.as_str() {
                Some("classic") => QueueType::Classic,
                Some("quorum") => QueueType::Quorum,
                Some("stream") => {
                    return Err(Error::Unsupported {
                        feature: "x-queue-type 'stream' (stream queues)".to_owned(),
                    });
                }
                _ => {
                    return Err(invalid(
                        "x-queue-type",
                        format!("{{unacceptable_value,{value}}}"),
                    ));
                }
            };
        }
        let allowed = match parsed.queue_type {
            QueueType::Classic => CLASSIC_ARGS,
            QueueType::Quorum => QUORUM_ARGS,
        };
        for (key, _) in args.iter() {
            if ALL_TYPE_ARGS.contains(&key) && !allowed.contains(&key) {
                let type_name = match parsed.queue_type {
                    QueueType::Classic => "rabbit_classic_queue",
                    QueueType::Quorum => "rabbit_quorum_queue",
                };
                return Err(Error::PreconditionFailed {
                    reason: format!(
                        "invalid arg '{key}' for queue '{queue}' in vhost '{vhost}' of queue type {type_name}"
                    ),
                });
            }
        }
        if parsed.queue_type == QueueType::Quorum {
            let (durable, exclusive, auto_delete) = flags;
            let bad = if !durable {
                Some("non-durable")
            } else if exclusive {
                Some("exclusive")
            } else if auto_delete {
                Some("auto-delete")
            } else {
                None
            };
            if let Some(property) = bad {
                return Err(Error::PreconditionFailed {
                    reason: format!(
                        "invalid property '{property}' for queue '{queue}' in vhost '{vhost}'"
                    ),
                });
            }
        }
        for (key, value) in args.iter() {
            let result: Result<(), String> = match key {
                "x-message-ttl" => expiry(value).map(|v| parsed.message_ttl = Some(v)),
                "x-expires" => expiry(value).and_then(|v| {
                    if v == 0 {
                        Err("{value_zero,0}".to_owned())
                    } else {
                        parsed.expires = Some(v);
                        Ok(())
                    }
                }),
                "x-max-length" => non_neg(value).map(|v| parsed.max_length = Some(v)),
                "x-max-length-bytes" => non_neg(value).map(|v| parsed.max_length_bytes = Some(v)),
                "x-delivery-limit" => non_neg(value).map(|v| parsed.delivery_limit = Some(v)),
                "x-max-priority" => non_neg(value).and_then(|v| match u8::try_from(v) {
                    Ok(p) => {
                        parsed.max_priority = (p > 0).then_some(p);
                        Ok(())
                    }
                    Err(_) => Err(format!("{{max_value_exceeded,{v}}}")),
                }),
                "x-overflow" => match value.as_str() {
                    Some("drop-head") => {
                        parsed.overflow = Overflow::DropHead;
                        Ok(())
                    }
                    Some("reject-publish") => {
                        parsed.overflow = Overflow::RejectPublish;
                        Ok(())
                    }
                    Some("reject-publish-dlx") => {
                        parsed.overflow = Overflow::RejectPublishDlx;
                        Ok(())
                    }
                    Some(_) => Err("invalid_overflow".to_owned()),
                    None => Err(format!("{{unacceptable_type,{}}}", value.type_name())),
                },
                "x-dead-letter-exchange" => {
                    string_arg(value).map(|v| parsed.dead_letter_exchange = Some(v))
                }
                "x-dead-letter-routing-key" => string_arg(value).and_then(|v| {
                    if args.contains_key("x-dead-letter-exchange") {
                        parsed.dead_letter_routing_key = Some(v);
                        Ok(())
                    } else {
                        Err("routing_key_but_no_dlx_defined".to_owned())
                    }
                }),
                "x-single-active-consumer" => match value {
                    FieldValue::Bool(b) => {
                        parsed.single_active_consumer = *b;
                        Ok(())
                    }
                    other => Err(format!("{{unacceptable_type,{}}}", other.type_name())),
                },
                "x-queue-mode" => match value.as_str() {
                    Some("default" | "lazy") => Ok(()),
                    _ => Err("{unacceptable_value,x-queue-mode}".to_owned()),
                },
                "x-queue-version" => match int_arg(value) {
                    Ok(1 | 2) => Ok(()),
                    Ok(n) => Err(format!("{{unsupported_value,{n}}}")),
                    Err(e) => Err(e),
                },
                _ => Ok(()),
            };
            result.map_err(|reason| invalid(key, reason))?;
        }
        Ok(parsed)
    }

    /// Checks a redeclaration's arguments against the queue's, key by key, the way
    /// RabbitMQ does: integer types compare by value, a missing `x-queue-type` equals
    /// `classic`, keys outside the queue type's list are not compared.
    pub fn assert_equivalent(
        &self,
        current: &FieldTable,
        requested: &FieldTable,
        queue: &str,
        vhost: &str,
    ) -> Result<(), Error> {
        let keys = match self.queue_type {
            QueueType::Classic => CLASSIC_ARGS,
            QueueType::Quorum => QUORUM_ARGS,
        };
        for key in keys {
            let (old, new) = (current.get(key), requested.get(key));
            if same_arg(key, old, new) {
                continue;
            }
            let (received, current) = describe_mismatch(new, old);
            return Err(Error::Inequivalent {
                kind: ResourceKind::Queue,
                name: queue.to_owned(),
                vhost: vhost.to_owned(),
                mismatch: Box::new(crate::error::Mismatch {
                    arg: (*key).to_owned(),
                    received,
                    current,
                }),
            });
        }
        Ok(())
    }
}

fn type_class(value: &FieldValue) -> &'static str {
    match value {
        FieldValue::F32(_) | FieldValue::F64(_) => "float",
        other if other.as_i64().is_some() && !matches!(other, FieldValue::Timestamp(_)) => "int",
        other => other.type_name(),
    }
}

fn same_arg(key: &str, old: Option<&FieldValue>, new: Option<&FieldValue>) -> bool {
    match (old, new) {
        (None, None) => true,
        (Some(a), Some(b)) => type_class(a) == type_class(b) && a.loosely_eq(b),
        (None, Some(v)) | (Some(v), None) => key == "x-queue-type" && v.as_str() == Some("classic"),
    }
}

/// RabbitMQ's wording for an argument value in an equivalence error.
pub(crate) fn describe(value: Option<&FieldValue>) -> String {
    match value {
        None => "none".to_owned(),
        Some(v) => format!("the value '{v}' of type '{}'", v.type_name()),
    }
}

/// RabbitMQ's wording of both sides of a mismatch: bare values when both sides have one
/// (whatever their types), else [`describe`] of each ("none", "the value '..' of type '..'").
pub(crate) fn describe_mismatch(
    received: Option<&FieldValue>,
    current: Option<&FieldValue>,
) -> (String, String) {
    match (received, current) {
        (Some(r), Some(c)) => (format!("'{r}'"), format!("'{c}'")),
        _ => (describe(received), describe(current)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn parse(entries: &[(&str, FieldValue)]) -> Result<QueueArgs, Error> {
        QueueArgs::parse(&table(entries), "q", "/", (false, false, false))
    }

    #[test]
    fn valid_arguments_parse() {
        let args = parse(&[
            ("x-message-ttl", FieldValue::I32(100)),
            ("x-expires", FieldValue::I64(5000)),
            ("x-max-length", FieldValue::U16(3)),
            ("x-max-length-bytes", FieldValue::I32(1000)),
            ("x-overflow", FieldValue::string("reject-publish-dlx")),
            ("x-dead-letter-exchange", FieldValue::string("dlx")),
            ("x-dead-letter-routing-key", FieldValue::string("dead")),
            ("x-max-priority", FieldValue::U8(10)),
            ("x-single-active-consumer", FieldValue::Bool(true)),
            ("x-custom", FieldValue::string("ignored")),
        ])
        .unwrap();
        assert_eq!(args.message_ttl, Some(100));
        assert_eq!(args.expires, Some(5000));
        assert_eq!(args.max_length, Some(3));
        assert_eq!(args.max_length_bytes, Some(1000));
        assert_eq!(args.overflow, Overflow::RejectPublishDlx);
        assert_eq!(args.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(args.dead_letter_routing_key.as_deref(), Some("dead"));
        assert_eq!(args.max_priority, Some(10));
        assert!(args.single_active_consumer);
    }

    #[test]
    fn invalid_arguments_are_refused_with_rabbitmq_reasons() {
        let cases: &[(&str, FieldValue, &str)] = &[
            ("x-message-ttl", FieldValue::I32(-1), "{value_negative,-1}"),
            (
                "x-message-ttl",
                FieldValue::string("1"),
                "expected integer, got longstr",
            ),
            ("x-expires", FieldValue::I32(0), "{value_zero,0}"),
            (
                "x-max-priority",
                FieldValue::I32(256),
                "{max_value_exceeded,256}",
            ),
            (
                "x-overflow",
                FieldValue::string("drop-tail"),
                "invalid_overflow",
            ),
            (
                "x-dead-letter-routing-key",
                FieldValue::string("k"),
                "routing_key_but_no_dlx_defined",
            ),
            (
                "x-single-active-consumer",
                FieldValue::I8(1),
                "{unacceptable_type,byte}",
            ),
        ];
        for (key, value, reason) in cases {
            let err = parse(&[(key, value.clone())]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid arg '{key}' for queue 'q' in vhost '/': {reason}")
            );
        }
        assert!(parse(&[("x-max-age", FieldValue::string("1D"))]).is_err());
        assert!(matches!(
            parse(&[("x-queue-type", FieldValue::string("stream"))]),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn quorum_queues_must_be_durable() {
        let args = table(&[("x-queue-type", FieldValue::string("quorum"))]);
        assert!(QueueArgs::parse(&args, "q", "/", (false, false, false)).is_err());
        assert!(QueueArgs::parse(&args, "q", "/", (true, true, false)).is_err());
        let ok = QueueArgs::parse(&args, "q", "/", (true, false, false)).unwrap();
        assert_eq!(ok.queue_type, QueueType::Quorum);
        let prio = table(&[
            ("x-queue-type", FieldValue::string("quorum")),
            ("x-max-priority", FieldValue::I32(5)),
        ]);
        assert!(QueueArgs::parse(&prio, "q", "/", (true, false, false)).is_err());
    }

    #[test]
    fn equivalence_compares_by_value_and_type_class() {
        let args = QueueArgs::default();
        let a = table(&[
            ("x-max-length", FieldValue::I32(10)),
            ("x-other", FieldValue::I8(1)),
        ]);
        let b = table(&[("x-max-length", FieldValue::I64(10))]);
        assert!(args.assert_equivalent(&a, &b, "q", "/").is_ok());
        let c = table(&[("x-max-length", FieldValue::I64(11))]);
        let err = args.assert_equivalent(&a, &c, "q", "/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received '11' but \
             current is '10'"
        );
        assert!(
            args.assert_equivalent(&a, &FieldTable::new(), "q", "/")
                .is_err()
        );
        let classic = table(&[("x-queue-type", FieldValue::string("classic"))]);
        assert!(
            args.assert_equivalent(&FieldTable::new(), &classic, "q", "/")
                .is_ok()
        );
    }
}
