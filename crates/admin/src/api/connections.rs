//! `/api/connections`, `/api/channels`, `/api/consumers`: who is connected, and closing a
//! connection.
//!
//! Monitors and administrators see every connection; management users see their own.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::http::Method;
use axum::response::Response;
use ferrymq_core::connections::{ChannelSnapshot, Connection, Protocol};
use ferrymq_core::queue::Queue;
use serde_json::{Value, json};

use super::{Request, allow, json, no_content, object};
use crate::error::{ApiError, ApiResult};
use crate::json::table_to_json;
use crate::rates::Key;
use crate::render::details;

/// What the client is told when no `X-Reason` header is given (RabbitMQ's text).
const DEFAULT_REASON: &str = "Closed via management plugin";

fn visible(r: &Request, c: &Connection) -> bool {
    r.user.is_monitor() || c.info().user == r.user.name()
}

fn connections(r: &Request, vhost: Option<&str>) -> Vec<Arc<Connection>> {
    r.ctx
        .broker
        .connections()
        .list()
        .into_iter()
        .filter(|c| visible(r, c))
        .filter(|c| vhost.is_none_or(|v| c.info().vhost == v))
        .collect()
}

pub fn render(r: &Request, c: &Connection) -> Value {
    let info = c.info();
    let rates = r.ctx.rates.get(&Key::Connection(c.id()));
    let counters = &c.counters;
    let tls = info.tls.as_ref();
    let peer_cert = tls.and_then(|t| t.peer.as_ref());
    let mut value = json!({
        "name": c.name(),
        "node": r.ctx.node,
        "type": "network",
        "user": info.user,
        "user_who_performed_action": info.user,
        "vhost": info.vhost,
        "protocol": info.protocol.as_str(),
        "auth_mechanism": info.auth_mechanism,
        "host": info.local.ip().to_string(),
        "port": info.local.port(),
        "peer_host": info.peer.ip().to_string(),
        "peer_port": info.peer.port(),
        "ssl": info.tls.is_some(),
        "ssl_protocol": tls.map(|t| t.protocol.as_str()),
        "ssl_key_exchange": null,
        "ssl_cipher": tls.map(|t| t.cipher.as_str()),
        "ssl_hash": null,
        "peer_cert_subject": peer_cert.map(|p| p.subject.as_str()),
        "peer_cert_issuer": peer_cert.map(|p| p.issuer.as_str()),
        "peer_cert_validity": peer_cert.map(|p| p.validity.as_str()),
        "state": if c.is_blocked() { "blocked" } else { "running" },
        "channels": c.channel_count(),
        "channel_max": info.channel_max,
        "frame_max": info.frame_max,
        "timeout": info.heartbeat,
        "client_properties": table_to_json(&info.client_properties),
        "connected_at": c.connected_at_ms(),
        "recv_oct": counters.recv_oct.load(Relaxed),
        "recv_oct_details": details(rates.recv_oct),
        "recv_cnt": counters.recv_cnt.load(Relaxed),
        "send_oct": counters.send_oct.load(Relaxed),
        "send_oct_details": details(rates.send_oct),
        "send_cnt": counters.send_cnt.load(Relaxed),
        "send_pend": 0,
    });
    if let (Some(name), Value::Object(map)) = (info.user_provided_name, &mut value) {
        map.insert("user_provided_name".into(), json!(name));
    }
    value
}

pub fn list(r: &Request, vhost: Option<&str>) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    if let Some(v) = vhost {
        r.user.require_visible(v)?;
    }
    let items = connections(r, vhost).iter().map(|c| render(r, c)).collect();
    Ok(json(r.query.apply(items)?.0))
}

fn close(c: &Connection, reason: &str) {
    tracing::info!(connection = %c.name(), %reason, "closing a connection on request");
    c.request_close(reason);
}

fn reason(r: &Request) -> String {
    r.headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_REASON)
        .to_owned()
}

/// The connection named `name`, if the caller may see it.
fn find(r: &Request, name: &str) -> ApiResult<Arc<Connection>> {
    r.ctx
        .broker
        .connections()
        .by_name(name)
        .filter(|c| visible(r, c))
        .ok_or_else(ApiError::not_found)
}

pub fn one(r: &Request, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::DELETE])?;
    let c = find(r, name)?;
    if r.method == Method::DELETE {
        if !r.user.is_admin() && c.info().user != r.user.name() {
            r.user.require_admin()?;
        }
        close(&c, &reason(r));
        return Ok(no_content());
    }
    Ok(object(r, render(r, &c)))
}

/// `/api/connections/username/{user}`: GET lists, DELETE closes them all.
pub fn of_user(r: &Request, user: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::DELETE])?;
    let list: Vec<Arc<Connection>> = connections(r, None)
        .into_iter()
        .filter(|c| c.info().user == user)
        .collect();
    if r.method == Method::DELETE {
        if user != r.user.name() {
            r.user.require_admin()?;
        }
        let reason = reason(r);
        for c in &list {
            close(c, &reason);
        }
        return Ok(no_content());
    }
    let items = list.iter().map(|c| render(r, c)).collect();
    Ok(json(r.query.apply(items)?.0))
}

fn render_channel(r: &Request, c: &Connection, ch: &ChannelSnapshot) -> Value {
    let info = c.info();
    json!({
        "name": format!("{} ({})", c.name(), ch.number),
        "number": ch.number,
        "node": r.ctx.node,
        "user": info.user,
        "user_who_performed_action": info.user,
        "vhost": info.vhost,
        "connection_details": {
            "name": c.name(),
            "peer_host": info.peer.ip().to_string(),
            "peer_port": info.peer.port(),
        },
        "state": if ch.flow_blocked { "flow" } else { "running" },
        "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count,
        "messages_unacknowledged": ch.messages_unacknowledged,
        "messages_unconfirmed": ch.messages_unconfirmed,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        "pending_raft_commands": 0,
        "consumer_count": ch.consumer_count,
        "confirm": ch.confirm,
        "transactional": ch.transactional,
    })
}

fn channel_rows(r: &Request, list: &[Arc<Connection>]) -> Vec<Value> {
    list.iter()
        .filter(|c| c.info().protocol == Protocol::Amqp091)
        .flat_map(|c| {
            c.channels()
                .iter()
                .map(|ch| render_channel(r, c, ch))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn channels(r: &Request, vhost: Option<&str>) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    if let Some(v) = vhost {
        r.user.require_visible(v)?;
    }
    let items = channel_rows(r, &connections(r, vhost));
    Ok(json(r.query.apply(items)?.0))
}

pub fn channels_of(r: &Request, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let c = find(r, name)?;
    let items = channel_rows(r, &[c]);
    Ok(json(r.query.apply(items)?.0))
}

/// `/api/channels/{connection name} ({number})`.
pub fn channel(r: &Request, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let (connection, number) = name
        .strip_suffix(')')
        .and_then(|rest| rest.rsplit_once(" ("))
        .and_then(|(c, n)| Some((c, n.parse::<u16>().ok()?)))
        .ok_or_else(ApiError::not_found)?;
    let c = find(r, connection)?;
    let ch = c
        .channels()
        .into_iter()
        .find(|ch| ch.number == number)
        .ok_or_else(ApiError::not_found)?;
    Ok(object(r, render_channel(r, &c, &ch)))
}

/// The consumers of `queue` as `consumer_details` lists them.
pub fn queue_consumers(r: &Request, queue: &Queue) -> Vec<Value> {
    queue
        .consumers()
        .iter()
        .map(|consumer| {
            let spec = &consumer.spec;
            let connection = r.ctx.broker.connections().get(spec.owner);
            let channel_details = connection.map_or(Value::Null, |c| {
                let info = c.info();
                json!({
                    "name": format!("{} ({})", c.name(), spec.channel),
                    "number": spec.channel,
                    "connection_name": c.name(),
                    "node": r.ctx.node,
                    "peer_host": info.peer.ip().to_string(),
                    "peer_port": info.peer.port(),
                    "user": info.user,
                })
            });
            json!({
                "consumer_tag": spec.tag,
                "queue": {"name": queue.name(), "vhost": queue.vhost_name()},
                "channel_details": channel_details,
                "ack_required": !spec.no_ack,
                "exclusive": spec.exclusive,
                "prefetch_count": consumer.own.limit(),
                "arguments": table_to_json(&spec.arguments),
                "active": true,
                "activity_status": "up",
                "consumer_timeout": r.ctx.consumer_timeout_ms,
            })
        })
        .collect()
}

pub fn consumers(r: &Request, vhost: Option<&str>) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let vhosts = r.listed_vhosts(vhost)?;
    let mut items = Vec::new();
    for v in &vhosts {
        let mut queues = v.queue_list();
        queues.sort_by(|a, b| a.name().cmp(b.name()));
        for q in &queues {
            items.extend(queue_consumers(r, q));
        }
    }
    Ok(json(r.query.apply(items)?.0))
}
