//! `/api/kafka/...`: ferrymq's extension for the Kafka side: topics with their partitions'
//! offsets and sizes, consumer groups with members, committed offsets and lag.
//!
//! A topic is a stream of the Kafka vhost: the same numbers appear for it as a stream queue
//! under `/api/queues`.

use axum::http::Method;
use axum::response::Response;
use ferrymq_core::group::GroupDescription;
use ferrymq_core::stream::Stream;
use serde_json::{Map, Value, json};

use super::{Request, allow, json, object};
use crate::error::{ApiError, ApiResult};
use crate::rates::Key;
use crate::render::{details, message_stats};

fn render_topic(r: &Request, vhost: &str, stream: &Stream) -> Value {
    let partitions: Vec<Value> = stream
        .partitions()
        .iter()
        .map(|p| {
            json!({
                "partition": p.index(),
                "log_start_offset": p.log_start_offset(),
                "log_end_offset": p.log_end_offset(),
                "high_watermark": p.high_watermark(),
                "bytes": p.size_bytes(),
            })
        })
        .collect();
    let bytes: u64 = stream.partitions().iter().map(|p| p.size_bytes()).sum();
    let configs: Map<String, Value> = match &r.ctx.kafka {
        Some(k) => (k.configs)(&stream.config(), &stream_defaults(r))
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect(),
        None => Map::new(),
    };
    let rates = r.ctx.rates.get(&Key::Queue {
        vhost: vhost.to_owned(),
        name: stream.name().to_owned(),
    });
    let published = stream.appended();
    let mut stats = message_stats(
        &ferrymq_core::queue::QueueCounts {
            publish: published,
            ..Default::default()
        },
        &rates,
    );
    if let Value::Object(map) = &mut stats {
        map.retain(|k, _| k.starts_with("publish"));
        map.insert("publish_details".into(), details(rates.publish));
    }
    json!({
        "name": stream.name(),
        "vhost": vhost,
        "id": stream.id().to_hex(),
        "partitions": stream.partition_count(),
        "messages": stream.message_count(),
        "bytes": bytes,
        "configs": configs,
        "partition_details": partitions,
        "message_stats": stats,
    })
}

fn stream_defaults(r: &Request) -> ferrymq_core::stream::StreamDefaults {
    r.ctx.broker.kafka_vhost().map_or_else(
        |_| ferrymq_core::stream::StreamDefaults::from_storage(&r.ctx.broker.config().storage),
        |v| v.streams().defaults(),
    )
}

pub fn topics(r: &Request, name: Option<&str>) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let vhost = r.ctx.broker.kafka_vhost()?;
    r.user.require_visible(vhost.name())?;
    match name {
        Some(name) => {
            let stream = vhost.streams().get(name).ok_or_else(ApiError::not_found)?;
            Ok(object(r, render_topic(r, vhost.name(), &stream)))
        }
        None => {
            let mut streams = vhost.streams().list();
            streams.sort_by(|a, b| a.name().cmp(b.name()));
            let items = streams
                .iter()
                .map(|s| render_topic(r, vhost.name(), s))
                .collect();
            Ok(json(r.query.apply(items)?.0))
        }
    }
}

/// Topics and partitions of a classic consumer protocol assignment (`ConsumerProtocol
/// Assignment`: version i16, [topic string, [partition i32]], user data); empty for anything
/// else (another protocol type, or bytes that do not parse).
pub fn assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (buf.get(..n)?, buf.get(n..)?);
        *buf = tail;
        Some(head)
    }
    fn parse(mut buf: &[u8]) -> Option<Vec<(String, i32)>> {
        let buf = &mut buf;
        let _version = take(buf, 2)?;
        let topics = i32::from_be_bytes(take(buf, 4)?.try_into().ok()?);
        let mut out = Vec::new();
        for _ in 0..topics.max(0) {
            let len = i16::from_be_bytes(take(buf, 2)?.try_into().ok()?);
            let name = String::from_utf8(take(buf, usize::try_from(len).ok()?)?.to_vec()).ok()?;
            let count = i32::from_be_bytes(take(buf, 4)?.try_into().ok()?);
            if usize::try_from(count).ok()? > buf.len() / 4 {
                return None;
            }
            for _ in 0..count {
                let p = i32::from_be_bytes(take(buf, 4)?.try_into().ok()?);
                out.push((name.clone(), p));
            }
        }
        Some(out)
    }
    parse(bytes).unwrap_or_default()
}

fn render_group(r: &Request, vhost: &ferrymq_core::VHost, g: &GroupDescription) -> Value {
    let Some(kafka) = &r.ctx.kafka else {
        return Value::Null;
    };
    let members: Vec<Value> = g
        .members
        .iter()
        .map(|m| {
            let assignments: Vec<Value> = if g.protocol_type == "consumer" {
                assignment(&m.assignment)
                    .into_iter()
                    .map(|(topic, partition)| json!({"topic": topic, "partition": partition}))
                    .collect()
            } else {
                Vec::new()
            };
            json!({
                "member_id": m.member_id,
                "group_instance_id": m.instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignments": assignments,
            })
        })
        .collect();
    let mut total_lag: u64 = 0;
    let offsets: Vec<Value> = kafka
        .groups
        .fetch_offsets(&g.group_id, None)
        .into_iter()
        .filter_map(|(topic, partition, committed)| {
            let committed = committed?;
            let end = vhost
                .streams()
                .get(&topic)
                .and_then(|s| s.partition(u32::try_from(partition).ok()?))
                .map(|p| p.high_watermark());
            let lag =
                end.map(|end| end.saturating_sub(u64::try_from(committed.offset).unwrap_or(0)));
            total_lag += lag.unwrap_or(0);
            Some(json!({
                "topic": topic,
                "partition": partition,
                "committed_offset": committed.offset,
                "log_end_offset": end,
                "lag": lag,
                "metadata": committed.metadata,
            }))
        })
        .collect();
    json!({
        "group_id": g.group_id,
        "state": g.state.name(),
        "protocol_type": g.protocol_type,
        "protocol": g.protocol,
        "members": members,
        "offsets": offsets,
        "lag": total_lag,
    })
}

pub fn groups(r: &Request, id: Option<&str>) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let vhost = r.ctx.broker.kafka_vhost()?;
    r.user.require_visible(vhost.name())?;
    let Some(kafka) = &r.ctx.kafka else {
        return Err(ApiError::not_found());
    };
    match id {
        Some(id) => {
            let g = kafka.groups.describe(id);
            if g.state == ferrymq_core::group::GroupState::Dead {
                return Err(ApiError::not_found());
            }
            Ok(object(r, render_group(r, &vhost, &g)))
        }
        None => {
            let items = kafka
                .groups
                .list()
                .iter()
                .map(|g| render_group(r, &vhost, &kafka.groups.describe(&g.group_id)))
                .collect();
            Ok(json(r.query.apply(items)?.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_parse_and_garbage_gives_nothing() {
        let mut bytes = vec![0, 1, 0, 0, 0, 1, 0, 6];
        bytes.extend_from_slice(b"events");
        bytes.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2]);
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            assignment(&bytes),
            vec![("events".to_owned(), 0), ("events".to_owned(), 2)]
        );
        assert!(assignment(&[0, 1, 0, 0, 0, 9]).is_empty());
        assert!(assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_empty());
        for cut in 0..bytes.len() - 4 {
            let _ = assignment(&bytes[..cut]);
        }
    }
}
