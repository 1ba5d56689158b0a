//! JSON pieces several endpoints share: `message_stats`, `*_details`, queue totals.

use ferrymq_core::queue::QueueCounts;
use serde_json::{Map, Value, json};

use crate::rates::RateSet;

/// `{"rate": r}`, rounded as RabbitMQ prints rates (one decimal).
pub fn details(rate: f64) -> Value {
    json!({ "rate": (rate * 10.0).round() / 10.0 })
}

/// RabbitMQ's `message_stats` of a queue, vhost or the node.
pub fn message_stats(c: &QueueCounts, r: &RateSet) -> Value {
    let mut map = Map::new();
    let mut put = |name: &str, count: u64, rate: f64| {
        map.insert(name.to_owned(), Value::from(count));
        map.insert(format!("{name}_details"), details(rate));
    };
    put("publish", c.publish, r.publish);
    put("deliver", c.deliver, r.deliver);
    put("deliver_no_ack", c.deliver_no_ack, r.deliver_no_ack);
    put("get", c.get, r.get);
    put("get_no_ack", c.get_no_ack, r.get_no_ack);
    put("get_empty", c.get_empty, r.get_empty);
    put("deliver_get", c.deliver_get(), r.deliver_get);
    put("redeliver", c.redeliver, r.redeliver);
    put("ack", c.ack, r.ack);
    Value::Object(map)
}

/// Depth figures of a queue or a sum of queues, with their rates.
pub fn depths(ready: u64, unacked: u64, r: &RateSet, into: &mut Map<String, Value>) {
    into.insert("messages".into(), Value::from(ready + unacked));
    into.insert("messages_details".into(), details(r.messages));
    into.insert("messages_ready".into(), Value::from(ready));
    into.insert("messages_ready_details".into(), details(r.ready));
    into.insert("messages_unacknowledged".into(), Value::from(unacked));
    into.insert("messages_unacknowledged_details".into(), details(r.unacked));
}

/// RFC 3339 in UTC with milliseconds, as RabbitMQ writes `idle_since`.
pub fn timestamp(ms_since_epoch: u64) -> String {
    let secs = ms_since_epoch / 1000;
    let millis = ms_since_epoch % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rabbitmqs_format() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000+00:00");
        // 2026-12-02T17:25:15.246Z
        assert_eq!(
            timestamp(1_796_232_315_246),
            "2026-12-02T17:25:15.246+00:00"
        );
        assert_eq!(timestamp(951_782_400_000), "2000-02-29T00:00:00.000+00:00");
    }

    #[test]
    fn message_stats_pair_counts_with_rates() {
        let counts = QueueCounts {
            publish: 3,
            get: 1,
            deliver: 1,
            ..QueueCounts::default()
        };
        let rates = RateSet {
            publish: 1.25,
            ..RateSet::default()
        };
        let v = message_stats(&counts, &rates);
        assert_eq!(v["publish"], 3);
        assert_eq!(v["publish_details"]["rate"], 1.3);
        assert_eq!(v["deliver_get"], 2);
    }
}
