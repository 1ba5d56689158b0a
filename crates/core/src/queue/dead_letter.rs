//! Dead-lettering: the message a queue republishes to its `x-dead-letter-exchange`, with the
//! `x-death` history RabbitMQ builds, and the cycle rule that drops a message going round.
//!
//! ```text
//! x-death: array, most recent first, one table per (queue, reason):
//!   count (long), reason (longstr), queue (longstr), time (timestamp, first death),
//!   exchange (longstr), routing-keys (array of longstr), original-expiration (longstr,
//!   when the message had a per-message TTL; the expiration property is removed)
//! x-first-death-reason / -queue / -exchange   set once, at the first death
//! x-last-death-reason  / -queue / -exchange   updated at every death
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use crate::message::{FieldTable, FieldValue, Message};

/// Why a message was dead-lettered (the `reason` field of `x-death`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    MaxLen,
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::MaxLen => "maxlen",
            Self::DeliveryLimit => "delivery_limit",
        }
    }
}

fn text(value: &str) -> FieldValue {
    FieldValue::string(value)
}

fn table_str<'a>(table: &'a FieldTable, key: &str) -> Option<&'a str> {
    table.get(key).and_then(FieldValue::as_str)
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The message `queue` republishes to `dlx` after `reason`.
pub(crate) fn dead_lettered(
    message: &Message,
    reason: DeathReason,
    queue: &str,
    dlx: &str,
    dlrk: Option<&str>,
    now: u64,
) -> Message {
    let mut props = message.properties.clone();
    let mut headers = props.headers.take().unwrap_or_default();
    // Routing keys recorded: the published key and CC entries (BCC never shows).
    let mut keys = vec![text(&message.routing_key)];
    if let Some(FieldValue::Array(cc)) = headers.get("CC") {
        keys.extend(cc.iter().filter(|v| v.as_str().is_some()).cloned());
    }
    let mut deaths = match headers.remove("x-death") {
        Some(FieldValue::Array(items)) => items,
        _ => Vec::new(),
    };
    if deaths.is_empty() {
        headers.set("x-first-death-reason", text(reason.as_str()));
        headers.set("x-first-death-queue", text(queue));
        headers.set("x-first-death-exchange", text(&message.exchange));
    }
    let existing = deaths.iter().position(|d| match d {
        FieldValue::Table(t) => {
            table_str(t, "queue") == Some(queue) && table_str(t, "reason") == Some(reason.as_str())
        }
        _ => false,
    });
    let record = match existing.map(|i| deaths.remove(i)) {
        Some(FieldValue::Table(mut t)) => {
            let count = t.get("count").and_then(FieldValue::as_i64).unwrap_or(0);
            t.set("count", FieldValue::I64(count + 1));
            t
        }
        _ => {
            let mut t = FieldTable::new();
            if let Some(expiration) = &props.expiration {
                t.push("original-expiration", text(expiration));
            }
            t.push("count", FieldValue::I64(1));
            t.push("reason", text(reason.as_str()));
            t.push("queue", text(queue));
            t.push("time", FieldValue::Timestamp(now));
            t.push("exchange", text(&message.exchange));
            t.push("routing-keys", FieldValue::Array(keys));
            t
        }
    };
    deaths.insert(0, FieldValue::Table(record));
    headers.set("x-death", FieldValue::Array(deaths));
    headers.set("x-last-death-reason", text(reason.as_str()));
    headers.set("x-last-death-queue", text(queue));
    headers.set("x-last-death-exchange", text(&message.exchange));
    if dlrk.is_some() {
        headers.remove("CC");
    }
    headers.sort_by_key();
    props.headers = Some(headers);
    props.expiration = None;
    Message {
        exchange: dlx.to_owned(),
        routing_key: dlrk.unwrap_or(&message.routing_key).to_owned(),
        properties: props,
        encoded_properties: None,
        body: message.body.clone(),
    }
}

/// Whether delivering a dead-lettered `message` to `target` would close a fully automatic
/// loop: `target` appears in its `x-death` history and no death since (inclusive) was a
/// rejection. Such deliveries are dropped, as RabbitMQ drops them.
pub(crate) fn is_cycle(message: &Message, target: &str) -> bool {
    let Some(FieldValue::Array(deaths)) = message
        .properties
        .headers
        .as_ref()
        .and_then(|h| h.get("x-death"))
    else {
        return false;
    };
    let mut rejected = false;
    for death in deaths {
        let FieldValue::Table(t) = death else {
            return false;
        };
        rejected |= table_str(t, "reason") == Some("rejected");
        if table_str(t, "queue") == Some(target) {
            return !rejected;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::Properties;

    fn death_table(msg: &Message, index: usize) -> FieldTable {
        match msg.properties.headers.as_ref().unwrap().get("x-death") {
            Some(FieldValue::Array(items)) => match &items[index] {
                FieldValue::Table(t) => t.clone(),
                other => panic!("not a table: {other:?}"),
            },
            other => panic!("no x-death: {other:?}"),
        }
    }

    #[test]
    fn first_death_builds_the_rabbitmq_shape() {
        let mut headers = FieldTable::new();
        headers.push("z", FieldValue::I32(1));
        headers.push("CC", FieldValue::Array(vec![text("cc1")]));
        let msg = Message::new(
            "orders",
            "rk",
            Properties {
                headers: Some(headers),
                expiration: Some("500".into()),
                ..Properties::default()
            },
            Bytes::from_static(b"b"),
        );
        let dead = dead_lettered(&msg, DeathReason::Expired, "q1", "dlx", None, 1_700_000_000);
        assert_eq!(dead.exchange, "dlx");
        assert_eq!(dead.routing_key, "rk");
        assert_eq!(dead.properties.expiration, None);
        let h = dead.properties.headers.as_ref().unwrap();
        let keys: Vec<&str> = h.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "CC",
                "x-death",
                "x-first-death-exchange",
                "x-first-death-queue",
                "x-first-death-reason",
                "x-last-death-exchange",
                "x-last-death-queue",
                "x-last-death-reason",
                "z"
            ]
        );
        let d = death_table(&dead, 0);
        assert_eq!(d.get("count"), Some(&FieldValue::I64(1)));
        assert_eq!(table_str(&d, "reason"), Some("expired"));
        assert_eq!(table_str(&d, "queue"), Some("q1"));
        assert_eq!(table_str(&d, "exchange"), Some("orders"));
        assert_eq!(table_str(&d, "original-expiration"), Some("500"));
        assert_eq!(d.get("time"), Some(&FieldValue::Timestamp(1_700_000_000)));
        assert_eq!(
            d.get("routing-keys"),
            Some(&FieldValue::Array(vec![text("rk"), text("cc1")]))
        );
    }

    #[test]
    fn repeated_deaths_count_up_and_move_to_front() {
        let msg = Message::new("x", "k", Properties::default(), Bytes::new());
        let a = dead_lettered(&msg, DeathReason::Rejected, "q1", "dlx", Some("k2"), 1);
        let b = dead_lettered(&a, DeathReason::Expired, "q2", "back", None, 2);
        let c = dead_lettered(&b, DeathReason::Rejected, "q1", "dlx", Some("k2"), 3);
        let first = death_table(&c, 0);
        assert_eq!(table_str(&first, "queue"), Some("q1"));
        assert_eq!(first.get("count"), Some(&FieldValue::I64(2)));
        assert_eq!(first.get("time"), Some(&FieldValue::Timestamp(1)));
        assert_eq!(table_str(&death_table(&c, 1), "queue"), Some("q2"));
        let h = c.properties.headers.as_ref().unwrap();
        assert_eq!(
            h.get("x-first-death-queue").and_then(FieldValue::as_str),
            Some("q1")
        );
        assert_eq!(
            h.get("x-last-death-reason").and_then(FieldValue::as_str),
            Some("rejected")
        );
        assert_eq!(
            h.get("x-first-death-exchange").and_then(FieldValue::as_str),
            Some("x")
        );
        assert_eq!(
            h.get("x-last-death-exchange").and_then(FieldValue::as_str),
            Some("back")
        );
    }

    #[test]
    fn automatic_cycles_are_detected_but_not_through_a_rejection() {
        let msg = Message::new("x", "k", Properties::default(), Bytes::new());
        let expired = dead_lettered(&msg, DeathReason::Expired, "q1", "dlx", None, 1);
        assert!(is_cycle(&expired, "q1"));
        assert!(!is_cycle(&expired, "q2"));
        let rejected = dead_lettered(&msg, DeathReason::Rejected, "q1", "dlx", None, 1);
        assert!(!is_cycle(&rejected, "q1"));
        let then_expired = dead_lettered(&rejected, DeathReason::Expired, "q2", "dlx", None, 1);
        assert!(!is_cycle(&then_expired, "q1"));
        assert!(is_cycle(&then_expired, "q2"));
    }
}
