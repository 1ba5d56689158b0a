//! `/api/vhosts`: list, show, create or update (administrators), delete (administrators).

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use ferrymq_auth::Patterns;
use ferrymq_core::queue::QueueCounts;
use ferrymq_core::{VHost, VhostMeta};
use serde_json::{Map, Value, json};

use super::{Request, allow, created, json, no_content, object};
use crate::context::AdminContext;
use crate::error::{ApiError, ApiResult};
use crate::rates::Key;
use crate::render::{depths, details, message_stats};

pub fn render(r: &Request, vhost: &VHost) -> Value {
    let (mut counts, mut ready, mut unacked) = (QueueCounts::default(), 0, 0);
    for queue in vhost.queue_list() {
        let o = queue.overview();
        counts.add(&queue.stats().snapshot());
        ready += o.ready;
        unacked += o.unacked;
    }
    for stream in vhost.streams().list() {
        ready += stream.message_count();
        counts.publish += stream.appended();
    }
    let (mut recv, mut send) = (0u64, 0u64);
    let (mut recv_rate, mut send_rate) = (0.0, 0.0);
    for c in r.ctx.broker.connections().list() {
        if c.info().vhost == vhost.name() {
            use std::sync::atomic::Ordering::Relaxed;
            recv += c.counters.recv_oct.load(Relaxed);
            send += c.counters.send_oct.load(Relaxed);
            let rates = r.ctx.rates.get(&Key::Connection(c.id()));
            recv_rate += rates.recv_oct;
            send_rate += rates.send_oct;
        }
    }
    let rates = r.ctx.rates.get(&Key::Vhost(vhost.name().to_owned()));
    let meta = vhost.meta();
    // RabbitMQ 3.10-3.13 say "undefined" for a vhost created without one.
    let queue_type = if meta.default_queue_type.is_empty() {
        "undefined".to_owned()
    } else {
        meta.default_queue_type.clone()
    };
    let mut map = Map::new();
    map.insert("name".into(), json!(vhost.name()));
    map.insert("description".into(), json!(meta.description));
    map.insert("tags".into(), json!(meta.tags));
    map.insert("default_queue_type".into(), json!(queue_type));
    map.insert(
        "metadata".into(),
        json!({"description": meta.description, "tags": meta.tags, "default_queue_type": queue_type}),
    );
    map.insert("tracing".into(), json!(false));
    map.insert(
        "cluster_state".into(),
        json!({ r.ctx.node.clone(): "running" }),
    );
    depths(ready, unacked, &rates, &mut map);
    map.insert("message_stats".into(), message_stats(&counts, &rates));
    map.insert("recv_oct".into(), json!(recv));
    map.insert("recv_oct_details".into(), details(recv_rate));
    map.insert("send_oct".into(), json!(send));
    map.insert("send_oct_details".into(), details(send_rate));
    Value::Object(map)
}

pub fn list(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let mut vhosts = r.ctx.broker.vhosts();
    vhosts.sort_by(|a, b| a.name().cmp(b.name()));
    let items = vhosts
        .iter()
        .filter(|v| r.user.can_see(v.name()))
        .map(|v| render(r, v))
        .collect();
    Ok(json(r.query.apply(items)?.0))
}

/// RabbitMQ takes tags as a list or a comma-separated string.
pub fn parse_tags(value: Option<&Value>) -> ApiResult<Vec<String>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::bad_request("tags must be strings"))
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request("tags must be a list or a string")),
    }
}

/// Creates or updates a vhost from a PUT body or a definitions entry. Returns whether it was
/// created.
pub async fn apply(ctx: &AdminContext, name: &str, body: &Map<String, Value>) -> ApiResult<bool> {
    let metadata = body.get("metadata").and_then(Value::as_object);
    let field = |key: &str| body.get(key).or_else(|| metadata.and_then(|m| m.get(key)));
    let meta = VhostMeta {
        description: field("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        tags: parse_tags(field("tags"))?,
        default_queue_type: field("default_queue_type")
            .and_then(Value::as_str)
            .filter(|t| *t != "undefined")
            .unwrap_or("")
            .to_owned(),
        // Limits have their own endpoint; an update of the vhost keeps them.
        limits: ctx
            .broker
            .vhost(name)
            .map(|v| v.meta().limits)
            .unwrap_or_default(),
    };
    let broker = Arc::clone(&ctx.broker);
    let owned = name.to_owned();
    let (_, created, pending) = tokio::task::spawn_blocking(move || broker.put_vhost(&owned, meta))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    pending.durable().await?;
    Ok(created)
}

/// PUT: [`apply`], and a new vhost's creator gets full permissions on it (as RabbitMQ).
async fn put(r: &Request, name: &str, body: &Map<String, Value>) -> ApiResult<bool> {
    let created = apply(&r.ctx, name, body).await?;
    if created
        && r.ctx.users.permission(name, r.user.name()).is_none()
        && let (_, Some(p)) = r
            .ctx
            .users
            .set_permission(name, r.user.name(), Patterns::all())?
    {
        p.durable().await?;
    }
    Ok(created)
}

pub async fn one(r: &Request, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::PUT, Method::DELETE])?;
    match r.method {
        Method::PUT => {
            r.user.require_admin()?;
            let body = r.json()?;
            Ok(created(put(r, name, &body).await?))
        }
        Method::DELETE => {
            r.user.require_admin()?;
            if name == r.ctx.broker.config().kafka_vhost {
                return Err(ApiError::bad_request(format!(
                    "vhost '{name}' is the Kafka listener's (kafka.vhost) and cannot be deleted"
                )));
            }
            let broker = Arc::clone(&r.ctx.broker);
            let owned = name.to_owned();
            let deleted = tokio::task::spawn_blocking(move || broker.delete_vhost(&owned))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            if deleted.is_none() {
                return Err(ApiError::not_found());
            }
            r.ctx.users.clear_vhost(name)?;
            // One sync covers the vhost's removal and its permissions'.
            r.ctx.broker.definitions().sync_all().durable().await?;
            Ok(no_content())
        }
        _ => {
            let vhost = r.vhost(name)?;
            r.user.require_visible(name)?;
            Ok(object(r, render(r, &vhost)))
        }
    }
}
