//! The node: overview, whoami, nodes, extensions, health checks, aliveness test.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ferrymq_core::message::{Message, Properties};
use ferrymq_core::queue::{QueueCounts, QueueSpec};
use serde_json::{Map, Value, json};

use super::{Request, allow, json, object};
use crate::context::RABBITMQ_VERSION;
use crate::error::{ApiError, ApiResult};
use crate::process;
use crate::rates::Key;
use crate::render::{depths, message_stats};

const EXCHANGE_TYPES: [(&str, &str); 4] = [
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
];

fn exchange_types() -> Value {
    Value::Array(
        EXCHANGE_TYPES
            .iter()
            .map(|(name, description)| json!({"name": name, "description": description, "enabled": true}))
            .collect(),
    )
}

fn listeners(r: &Request) -> Value {
    Value::Array(
        r.ctx
            .listeners
            .iter()
            .map(|l| {
                json!({"node": r.ctx.node, "protocol": l.protocol, "ip_address": l.ip,
                       "port": l.port, "socket_opts": {}})
            })
            .collect(),
    )
}

pub fn overview(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let ctx = &r.ctx;
    let (mut counts, mut ready, mut unacked) = (QueueCounts::default(), 0, 0);
    let (mut queues, mut exchanges, mut consumers) = (0u64, 0u64, 0u64);
    let visible: Vec<_> = ctx
        .broker
        .vhosts()
        .into_iter()
        .filter(|v| r.user.can_see(v.name()))
        .collect();
    for vhost in &visible {
        for queue in vhost.queue_list() {
            let o = queue.overview();
            counts.add(&queue.stats().snapshot());
            ready += o.ready;
            unacked += o.unacked;
            consumers += u64::from(o.consumers);
            queues += 1;
        }
        for stream in vhost.streams().list() {
            ready += stream.message_count();
            consumers += u64::from(stream.reader_count());
            counts.publish += stream.appended();
            queues += 1;
        }
        exchanges += vhost.exchange_list().len() as u64;
    }
    let connections: Vec<_> = ctx
        .broker
        .connections()
        .list()
        .into_iter()
        .filter(|c| r.user.is_monitor() || c.info().user == r.user.name())
        .collect();
    let channels: usize = connections.iter().map(|c| c.channel_count()).sum();
    let rates = ctx.rates.get(&Key::Overall);
    let mut totals = Map::new();
    depths(ready, unacked, &rates, &mut totals);
    Ok(object(
        r,
        json!({
            "management_version": RABBITMQ_VERSION,
            "rates_mode": "basic",
            "sample_retention_policies": {"global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600]},
            "exchange_types": exchange_types(),
            "product_version": env!("CARGO_PKG_VERSION"),
            "product_name": "ferrymq",
            "rabbitmq_version": RABBITMQ_VERSION,
            "cluster_name": ctx.cluster_name,
            "erlang_version": "none (ferrymq is written in Rust)",
            "erlang_full_version": "none (ferrymq is written in Rust)",
            "disable_stats": false,
            "enable_queue_totals": true,
            "message_stats": message_stats(&counts, &rates),
            "queue_totals": totals,
            "object_totals": {
                "channels": channels,
                "connections": connections.len(),
                "consumers": consumers,
                "exchanges": exchanges,
                "queues": queues,
            },
            "statistics_db_event_queue": 0,
            "node": ctx.node,
            "listeners": listeners(r),
            "contexts": [],
        }),
    ))
}

pub fn whoami(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    Ok(json(json!({
        "name": r.user.name(),
        "tags": r.user.user.tags.as_slice(),
        "is_internal_user": true,
    })))
}

pub fn cluster_name(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    Ok(json(json!({ "name": r.ctx.cluster_name })))
}

fn node_json(r: &Request) -> Value {
    let ctx = &r.ctx;
    let data_dir = &ctx.broker.config().data_dir;
    let alarms = ctx.broker.alarms();
    let usage = alarms.usage();
    let uptime = u64::try_from(ctx.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let connections = ctx.broker.connections().len();
    json!({
        "name": ctx.node,
        "type": "disc",
        "running": true,
        "being_drained": false,
        "os_pid": std::process::id().to_string(),
        "mem_used": usage.memory_used,
        "mem_limit": usage.memory_limit,
        "mem_alarm": alarms.is_set(ferrymq_core::alarms::Resource::Memory),
        "mem_calculation_strategy": "allocated",
        "disk_free": process::disk_free(data_dir),
        "disk_free_limit": usage.disk_free_limit,
        "disk_free_alarm": alarms.is_set(ferrymq_core::alarms::Resource::Disk),
        "fd_used": process::open_fds(),
        "fd_total": process::max_fds(),
        "sockets_used": connections,
        "sockets_total": process::max_fds(),
        "proc_used": 0,
        "proc_total": 0,
        "run_queue": 0,
        "processors": process::processors(),
        "uptime": uptime,
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
        ],
        "applications": [{"name": "ferrymq", "description": "ferrymq", "version": env!("CARGO_PKG_VERSION")}],
        "enabled_plugins": ["rabbitmq_management", "rabbitmq_prometheus"],
        "contexts": [],
        "log_files": ["<stderr>"],
        "db_dir": data_dir.display().to_string(),
        "config_files": [],
        "net_ticktime": 60,
        "partitions": [],
        "cluster_links": [],
        "rabbitmq_version": RABBITMQ_VERSION,
    })
}

pub fn nodes(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    r.user.require_monitor()?;
    Ok(json(json!([node_json(r)])))
}

pub fn node(r: &Request, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    r.user.require_monitor()?;
    if name != r.ctx.node {
        return Err(ApiError::not_found());
    }
    Ok(object(r, node_json(r)))
}

pub fn extensions(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    Ok(json(json!([])))
}

/// Lists of objects ferrymq does not have (policies, runtime parameters, limits, feature
/// flags): empty, so tools that list them work.
pub fn empty_list(r: &Request, segs: &[&str]) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    if let Some(vhost) = segs.get(1)
        && segs.first() != Some(&"parameters")
    {
        r.user.require_visible(vhost)?;
    }
    Ok(json(json!([])))
}

fn healthy(extra: Value) -> Response {
    let mut body = json!({"status": "ok"});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    json(body)
}

fn failed(reason: &str, extra: Value) -> Response {
    let mut body = json!({"status": "failed", "reason": reason});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// `/api/health/checks/...`: 200 `{"status":"ok"}` or 503 `{"status":"failed",...}`.
pub fn health(r: &Request, rest: &[&str]) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let ctx = &r.ctx;
    match rest {
        ["alarms"] | ["local-alarms"] => {
            let active = ctx.broker.alarms().active();
            if active.is_empty() {
                Ok(healthy(json!({})))
            } else {
                let alarms: Vec<Value> = active
                    .iter()
                    .map(|a| json!({"node": ctx.node, "resource": a.as_str()}))
                    .collect();
                Ok(failed(
                    "There are alarms in effect in the cluster",
                    json!({ "alarms": alarms }),
                ))
            }
        }
        ["port-listener", port] => {
            let port: u16 = port
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid port '{port}'")))?;
            let ports: Vec<u16> = ctx.listeners.iter().map(|l| l.port).collect();
            if ports.contains(&port) {
                Ok(healthy(json!({ "port": port })))
            } else {
                Ok(failed(
                    "No active listener",
                    json!({"missing": port, "ports": ports}),
                ))
            }
        }
        ["protocol-listener", protocol] => {
            let protocols: Vec<&str> = ctx.listeners.iter().map(|l| l.protocol.as_str()).collect();
            if protocols.contains(protocol) {
                Ok(healthy(json!({ "protocol": protocol })))
            } else {
                Ok(failed(
                    "No active listener",
                    json!({"missing": protocol, "protocols": protocols}),
                ))
            }
        }
        ["virtual-hosts"] => Ok(healthy(json!({}))),
        // ferrymq's own: logs that refuse writes since a write or fsync failed.
        ["storage"] => {
            let failed_logs = ferrymq_log::failed_logs();
            if failed_logs.is_empty() {
                return Ok(healthy(json!({})));
            }
            let logs: Vec<Value> = failed_logs
                .iter()
                .map(|log| {
                    let since = log
                        .since
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                    json!({
                        "node": ctx.node,
                        "dir": log.dir.display().to_string(),
                        "during": log.during,
                        "cause": log.cause,
                        "since": since,
                    })
                })
                .collect();
            Ok(failed(
                "Logs refuse writes after an I/O error (restart the node to recover them)",
                json!({ "logs": logs }),
            ))
        }
        // One node, no replicated queues: nothing can lose its quorum.
        ["node-is-quorum-critical"] | ["node-is-mirror-sync-critical"] => Ok(healthy(json!({}))),
        _ => Err(ApiError::not_found()),
    }
}

/// Declares `aliveness-test` in `vhost`, publishes a message to it and gets it back.
pub async fn aliveness(r: &Request, vhost_name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let vhost = r.writable_vhost(vhost_name)?;
    let owner = r.ctx.owner();
    let v = Arc::clone(&vhost);
    let declared = tokio::task::spawn_blocking(move || {
        v.declare_queue(QueueSpec::new("aliveness-test"), false, owner)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let exchange = vhost.exchange("")?;
    let message = Arc::new(Message::new(
        "",
        "aliveness-test",
        Properties::default(),
        Bytes::from_static(b"test_message"),
    ));
    let routed = vhost.route(&exchange, &message);
    let (rejected, _) = routed.enqueue(&message);
    let got = declared.queue.get(true)?;
    match got {
        Some((entry, _)) if !rejected && entry.message.body == message.body => {
            Ok(healthy(json!({})))
        }
        _ => Ok(failed("the test message did not come back", json!({}))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_bodies_are_rabbitmqs() {
        let ok = healthy(json!({"port": 5672}));
        assert_eq!(ok.status(), StatusCode::OK);
        let bad = failed("No active listener", json!({"missing": 1}));
        assert_eq!(bad.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
