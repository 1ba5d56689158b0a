//! `/api/queues`: classic queues and stream queues (the same streams Kafka sees as topics),
//! declare, delete, purge, get.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferrymq_core::queue::{Queue, QueueCounts, QueueSpec, QueueType};
use ferrymq_core::stream::Stream;
use ferrymq_core::{VHost, interop::QueueDeclared};
use serde_json::{Map, Value, json};

use ferrymq_auth::{Action, ResourceType};

use super::{Request, allow, created, json, no_content, object, require_keys};
use crate::context::AdminContext;
use crate::error::{ApiError, ApiResult};
use crate::json::{json_to_table, properties_to_json, table_to_json};
use crate::rates::Key;
use crate::render::{depths, message_stats, now_ms, timestamp};

fn common(r: &Request, vhost: &str, name: &str, kind: &str, map: &mut Map<String, Value>) {
    map.insert("name".into(), json!(name));
    map.insert("vhost".into(), json!(vhost));
    map.insert("type".into(), json!(kind));
    map.insert("node".into(), json!(r.ctx.node));
    map.insert("state".into(), json!("running"));
    map.insert("policy".into(), Value::Null);
    map.insert("operator_policy".into(), Value::Null);
    map.insert("effective_policy_definition".into(), json!({}));
}

/// A classic (or quorum-compatible) queue as RabbitMQ's API shows it.
pub fn render_queue(r: &Request, queue: &Queue) -> Value {
    let o = queue.overview();
    let spec = queue.spec();
    let kind = match queue.args().queue_type {
        QueueType::Classic => "classic",
        QueueType::Quorum => "quorum",
    };
    let rates = r.ctx.rates.get(&Key::Queue {
        vhost: queue.vhost_name().to_owned(),
        name: queue.name().to_owned(),
    });
    let mut map = Map::new();
    common(r, queue.vhost_name(), queue.name(), kind, &mut map);
    map.insert("durable".into(), json!(queue.is_durable()));
    map.insert("auto_delete".into(), json!(spec.auto_delete));
    map.insert("exclusive".into(), json!(spec.exclusive));
    map.insert("arguments".into(), table_to_json(&spec.arguments));
    map.insert("consumers".into(), json!(o.consumers));
    let capacity = if o.consumers > 0 { 1.0 } else { 0.0 };
    map.insert("consumer_capacity".into(), json!(capacity));
    map.insert("consumer_utilisation".into(), json!(capacity));
    depths(o.ready, o.unacked, &rates, &mut map);
    map.insert("messages_ram".into(), json!(o.ready + o.unacked));
    map.insert("messages_ready_ram".into(), json!(o.ready));
    map.insert("messages_unacknowledged_ram".into(), json!(o.unacked));
    map.insert(
        "message_bytes".into(),
        json!(o.ready_bytes + o.unacked_bytes),
    );
    map.insert("message_bytes_ready".into(), json!(o.ready_bytes));
    map.insert(
        "message_bytes_unacknowledged".into(),
        json!(o.unacked_bytes),
    );
    map.insert("memory".into(), json!(queue.memory()));
    map.insert(
        "message_stats".into(),
        message_stats(&queue.stats().snapshot(), &rates),
    );
    map.insert("head_message_timestamp".into(), Value::Null);
    map.insert("exclusive_consumer_tag".into(), Value::Null);
    map.insert("single_active_consumer_tag".into(), Value::Null);
    if let Some(idle_ms) = o.idle_since_ms {
        map.insert(
            "idle_since".into(),
            json!(timestamp(now_ms().saturating_sub(idle_ms))),
        );
    }
    if let Some(owner) = queue.owner()
        && let Some(c) = r.ctx.broker.connections().get(owner)
    {
        let info = c.info();
        map.insert(
            "owner_pid_details".into(),
            json!({"name": c.name(), "peer_host": info.peer.ip().to_string(),
                   "peer_port": info.peer.port()}),
        );
    }
    Value::Object(map)
}

/// A stream queue: its partitions' records are its messages.
pub fn render_stream(r: &Request, vhost: &str, stream: &Stream) -> Value {
    let rates = r.ctx.rates.get(&Key::Queue {
        vhost: vhost.to_owned(),
        name: stream.name().to_owned(),
    });
    let mut arguments = Map::new();
    arguments.insert("x-queue-type".into(), json!("stream"));
    for arg in &stream.config().queue_arguments {
        arguments.insert(arg.name.clone(), argument_json(&arg.kind, &arg.value));
    }
    let published = stream.appended();
    let counts = QueueCounts {
        publish: published,
        ..QueueCounts::default()
    };
    let mut map = Map::new();
    common(r, vhost, stream.name(), "stream", &mut map);
    map.insert("durable".into(), json!(true));
    map.insert("auto_delete".into(), json!(false));
    map.insert("exclusive".into(), json!(false));
    map.insert("arguments".into(), Value::Object(arguments));
    map.insert("consumers".into(), json!(stream.reader_count()));
    depths(stream.message_count(), 0, &rates, &mut map);
    let bytes: u64 = stream.partitions().iter().map(|p| p.size_bytes()).sum();
    map.insert("message_bytes".into(), json!(bytes));
    map.insert("memory".into(), json!(0));
    map.insert("message_stats".into(), message_stats(&counts, &rates));
    map.insert("leader".into(), json!(r.ctx.node));
    map.insert("members".into(), json!([r.ctx.node]));
    map.insert("online".into(), json!([r.ctx.node]));
    map.insert("partitions".into(), json!(stream.partition_count()));
    Value::Object(map)
}

/// A stored stream queue argument (type letter and text) as JSON.
pub(super) fn argument_json(kind: &str, value: &str) -> Value {
    match kind {
        "t" => json!(value == "true" || value == "1"),
        "b" | "B" | "s" | "u" | "I" | "i" | "l" | "L" | "T" => value
            .parse::<i64>()
            .map_or_else(|_| json!(value), |n| json!(n)),
        "f" | "d" => value
            .parse::<f64>()
            .map_or_else(|_| json!(value), |n| json!(n)),
        _ => json!(value),
    }
}

/// A queue or a stream queue of a listing, rendered only if its page is shown.
enum Listed {
    Queue(Arc<Queue>),
    Stream(String, Arc<Stream>),
}

impl Listed {
    fn name(&self) -> &str {
        match self {
            Self::Queue(q) => q.name(),
            Self::Stream(_, s) => s.name(),
        }
    }

    fn render(&self, r: &Request) -> Value {
        match self {
            Self::Queue(q) => render_queue(r, q),
            Self::Stream(vhost, s) => render_stream(r, vhost, s),
        }
    }
}

fn listed(vhost: &VHost) -> Vec<Listed> {
    let mut items: Vec<Listed> = vhost.queue_list().into_iter().map(Listed::Queue).collect();
    items.extend(
        vhost
            .streams()
            .list()
            .into_iter()
            .map(|s| Listed::Stream(vhost.name().to_owned(), s)),
    );
    items.sort_by(|a, b| a.name().cmp(b.name()));
    items
}

pub fn list(r: &Request, vhost: Option<&str>) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let vhosts = r.listed_vhosts(vhost)?;
    let items: Vec<Listed> = vhosts.iter().flat_map(|v| listed(v)).collect();
    Ok(json(
        r.query
            .apply_lazy(items, Listed::name, |item| item.render(r))?
            .0,
    ))
}

/// A JSON boolean, or the strings RabbitMQ's API also takes.
pub fn flag(body: &Map<String, Value>, key: &str, default: bool) -> ApiResult<bool> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(Value::String(s)) => Err(ApiError::bad_term(json!(["not_boolean", s]))),
        Some(other) => Err(ApiError::bad_term(json!([
            "not_boolean",
            other.to_string()
        ]))),
    }
}

/// Declares queue `name` in `vhost` from a PUT body or a definitions entry.
pub async fn declare(
    ctx: &AdminContext,
    vhost: &Arc<VHost>,
    name: &str,
    body: &Map<String, Value>,
) -> ApiResult<bool> {
    let mut arguments = json_to_table(body.get("arguments"))?;
    let meta = vhost.meta();
    if !arguments.contains_key("x-queue-type") && !meta.default_queue_type.is_empty() {
        arguments.set(
            "x-queue-type",
            ferrymq_core::message::FieldValue::string(meta.default_queue_type),
        );
    }
    let spec = QueueSpec {
        name: name.to_owned(),
        durable: flag(body, "durable", false)?,
        exclusive: false,
        auto_delete: flag(body, "auto_delete", false)?,
        arguments,
    };
    if flag(body, "exclusive", false)? {
        return Err(ApiError::bad_request(
            "exclusive queues belong to a client connection and cannot be declared over HTTP",
        ));
    }
    let owner = ctx.owner();
    let v = Arc::clone(vhost);
    let declared =
        tokio::task::spawn_blocking(move || v.declare_queue_or_stream(spec, false, owner))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
    let created = match declared {
        QueueDeclared::Queue(d) => d.created,
        QueueDeclared::Stream(d) => d.created,
    };
    vhost.definitions().sync_all().durable().await?;
    Ok(created)
}

pub async fn one(r: &Request, vhost_name: &str, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::PUT, Method::DELETE])?;
    match r.method {
        Method::PUT => {
            let vhost = r.writable_vhost(vhost_name)?;
            r.authorize(vhost_name, ResourceType::Queue, name, Action::Configure)?;
            let body = r.json()?;
            Ok(created(declare(&r.ctx, &vhost, name, &body).await?))
        }
        Method::DELETE => {
            let vhost = r.writable_vhost(vhost_name)?;
            r.authorize(vhost_name, ResourceType::Queue, name, Action::Configure)?;
            if vhost.lookup_queue(name).is_none() && vhost.streams().get(name).is_some() {
                let v = Arc::clone(&vhost);
                let owned = name.to_owned();
                tokio::task::spawn_blocking(move || v.delete_stream(&owned))
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))??;
            } else {
                if vhost.lookup_queue(name).is_none() {
                    return Err(ApiError::not_found());
                }
                let if_unused = r.param("if-unused").as_deref() == Some("true");
                let if_empty = r.param("if-empty").as_deref() == Some("true");
                let owner = vhost
                    .lookup_queue(name)
                    .and_then(|q| q.owner())
                    .unwrap_or_else(|| r.ctx.owner());
                vhost.delete_queue(name, if_unused, if_empty, owner)?;
            }
            vhost.definitions().sync_all().durable().await?;
            Ok(no_content())
        }
        _ => {
            let vhost = r.visible_vhost(vhost_name)?;
            if let Some(queue) = vhost.lookup_queue(name) {
                let mut value = render_queue(r, &queue);
                if let Value::Object(map) = &mut value {
                    map.insert(
                        "consumer_details".into(),
                        Value::Array(super::connections::queue_consumers(r, &queue)),
                    );
                    map.insert("deliveries".into(), json!([]));
                    map.insert("incoming".into(), json!([]));
                }
                return Ok(object(r, value));
            }
            let stream = vhost.streams().get(name).ok_or_else(ApiError::not_found)?;
            let mut value = render_stream(r, vhost_name, &stream);
            if let Value::Object(map) = &mut value {
                map.insert("consumer_details".into(), json!([]));
                map.insert("deliveries".into(), json!([]));
                map.insert("incoming".into(), json!([]));
            }
            Ok(object(r, value))
        }
    }
}

fn stream_refusal(what: &str, name: &str, vhost: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{what} not supported by stream queues queue '{name}' in vhost '{vhost}'"
    ))
}

pub fn purge(r: &Request, vhost_name: &str, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::DELETE])?;
    let vhost = r.writable_vhost(vhost_name)?;
    r.authorize(vhost_name, ResourceType::Queue, name, Action::Read)?;
    let Some(queue) = vhost.lookup_queue(name) else {
        if vhost.streams().get(name).is_some() {
            return Err(stream_refusal("queue.purge", name, vhost_name));
        }
        return Err(ApiError::not_found());
    };
    queue.purge()?;
    Ok(no_content())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    AckRequeueTrue,
    AckRequeueFalse,
    RejectRequeueTrue,
    RejectRequeueFalse,
}

pub async fn get(r: &Request, vhost_name: &str, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::POST])?;
    let vhost = r.writable_vhost(vhost_name)?;
    r.authorize(vhost_name, ResourceType::Queue, name, Action::Read)?;
    let body = r.json()?;
    require_keys(&body, &["count", "ackmode", "encoding"])?;
    let count = body
        .get("count")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::bad_request("count must be a non-negative integer"))?;
    let mode = match body.get("ackmode").and_then(Value::as_str) {
        Some("ack_requeue_true") => AckMode::AckRequeueTrue,
        Some("ack_requeue_false") => AckMode::AckRequeueFalse,
        Some("reject_requeue_true") => AckMode::RejectRequeueTrue,
        Some("reject_requeue_false") => AckMode::RejectRequeueFalse,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown ackmode {}",
                other.unwrap_or("(not a string)")
            )));
        }
    };
    let base64 = match body.get("encoding").and_then(Value::as_str) {
        Some("auto") => false,
        Some("base64") => true,
        other => {
            let shown = other.map_or_else(String::new, ToString::to_string);
            return Err(ApiError::bad_term(json!(["unsupported_encoding", shown])));
        }
    };
    let truncate = body
        .get("truncate")
        .and_then(Value::as_u64)
        .and_then(|t| usize::try_from(t).ok());
    let Some(queue) = vhost.lookup_queue(name) else {
        if vhost.streams().get(name).is_some() {
            return Err(stream_refusal("basic.get", name, vhost_name));
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("NOT_FOUND - no queue '{name}' in vhost '{vhost_name}'"),
        ));
    };
    let mut entries = Vec::new();
    let mut items = Vec::new();
    for _ in 0..count {
        let Some((entry, remaining)) = queue.get(false)? else {
            break;
        };
        items.push(render_message(&entry, remaining, base64, truncate));
        entries.push(entry);
    }
    match mode {
        AckMode::AckRequeueFalse => queue.ack(&entries),
        AckMode::RejectRequeueFalse => queue.reject(entries),
        AckMode::AckRequeueTrue | AckMode::RejectRequeueTrue => queue.requeue(entries),
    }
    Ok(json(Value::Array(items)))
}

fn render_message(
    entry: &ferrymq_core::queue::Entry,
    remaining: u32,
    base64: bool,
    truncate: Option<usize>,
) -> Value {
    let m = &entry.message;
    let body = &m.body;
    let shown = truncate.map_or(&body[..], |t| body.get(..t).unwrap_or(&body[..]));
    let (payload, encoding) = match std::str::from_utf8(shown) {
        Ok(text) if !base64 => (text.to_owned(), "string"),
        _ => (STANDARD.encode(shown), "base64"),
    };
    json!({
        "payload_bytes": body.len(),
        "redelivered": entry.redelivered,
        "exchange": m.exchange,
        "routing_key": m.routing_key,
        "message_count": remaining,
        "properties": properties_to_json(&m.properties),
        "payload": payload,
        "payload_encoding": encoding,
    })
}
