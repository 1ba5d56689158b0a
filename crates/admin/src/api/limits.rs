//! `/api/vhost-limits`: RabbitMQ's per-vhost limits, `max-connections` and `max-queues`.
//!
//! Stored with the vhost's metadata (durable, applied at once); enforced by the core
//! (`max-queues` counts queues and streams, so Kafka topics too) and by the AMQP frontend
//! at `connection.open`.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use ferrymq_core::vhost::LIMIT_NAMES;
use serde_json::{Map, Value, json};

use super::{Request, allow, json, no_content};
use crate::error::{ApiError, ApiResult};

pub async fn route(r: &Request, segs: &[&str]) -> ApiResult<Response> {
    match segs {
        [] => {
            allow(&r.method, &[Method::GET])?;
            let mut vhosts = r.ctx.broker.vhosts();
            vhosts.sort_by(|a, b| a.name().cmp(b.name()));
            let rows: Vec<Value> = vhosts
                .iter()
                .filter(|v| r.user.can_see(v.name()))
                .filter_map(|v| row(v.name(), &v.meta().limits))
                .collect();
            Ok(json(Value::Array(rows)))
        }
        [vhost] => {
            allow(&r.method, &[Method::GET])?;
            r.user.require_visible(vhost)?;
            let found = r.ctx.broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
            let rows: Vec<Value> = row(vhost, &found.meta().limits).into_iter().collect();
            Ok(json(Value::Array(rows)))
        }
        [vhost, name] => {
            allow(&r.method, &[Method::PUT, Method::DELETE])?;
            r.user.require_admin()?;
            let value = if r.method == Method::PUT {
                Some(parse_value(&r.json()?)?)
            } else {
                None
            };
            set(r, vhost, name, value).await?;
            Ok(no_content())
        }
        _ => Err(ApiError::not_found()),
    }
}

fn row(vhost: &str, limits: &std::collections::BTreeMap<String, i64>) -> Option<Value> {
    (!limits.is_empty()).then(|| json!({ "vhost": vhost, "value": limits }))
}

/// `{"value": N}`: an integer, negative for no limit.
fn parse_value(body: &Map<String, Value>) -> ApiResult<i64> {
    body.get("value")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("Validation failed\n\nvalue must be an integer"))
}

async fn set(r: &Request, vhost: &str, name: &str, value: Option<i64>) -> ApiResult<()> {
    if !LIMIT_NAMES.contains(&name) {
        return Err(ApiError::bad_request(format!(
            "Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{}}}] in limits",
            value.unwrap_or(0)
        )));
    }
    let found = r.ctx.broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
    let mut meta = found.meta();
    match value {
        Some(v) => {
            meta.limits.insert(name.to_owned(), v);
        }
        None if meta.limits.remove(name).is_none() => return Err(ApiError::not_found()),
        None => {}
    }
    let broker = Arc::clone(&r.ctx.broker);
    let owned = vhost.to_owned();
    let (_, _, pending) = tokio::task::spawn_blocking(move || broker.put_vhost(&owned, meta))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    pending.durable().await?;
    Ok(())
}
