//! `/api/definitions[/{vhost}]`: export and import in RabbitMQ's format, and the same import
//! at boot (`server.load_definitions`).
//!
//! ```text
//! {rabbit_version, rabbitmq_version, product_name, product_version,
//!  users, vhosts, permissions, topic_permissions, parameters, global_parameters, policies,
//!  queues, exchanges, bindings}
//! ```
//! Import applies users, vhosts, permissions, exchanges, queues, then bindings; an object that
//! exists already is updated (users, vhosts, permissions) or must be equivalent (queues,
//! exchanges), as a redeclaration. Policies and runtime parameters are not applied by ferrymq
//! (a warning names them).

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use ferrymq_core::{ResourceKind, VHost};
use serde_json::{Map, Value, json};

use super::bindings::properties_key;
use super::{Request, allow, json, no_content, users};
use crate::context::{AdminContext, RABBITMQ_VERSION};
use crate::error::{ApiError, ApiResult};
use crate::json::{json_to_table, table_to_json};

fn header() -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("rabbit_version".into(), json!(RABBITMQ_VERSION));
    map.insert("rabbitmq_version".into(), json!(RABBITMQ_VERSION));
    map.insert("product_name".into(), json!("ferrymq"));
    map.insert("product_version".into(), json!(env!("CARGO_PKG_VERSION")));
    map
}

/// Queues, exchanges and bindings of `vhost`; `with_vhost` adds the `vhost` key to each.
fn objects(vhost: &VHost, with_vhost: bool) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let tag = |mut v: Value| {
        if with_vhost && let Value::Object(map) = &mut v {
            map.insert("vhost".into(), json!(vhost.name()));
        }
        v
    };
    let mut queues: Vec<(String, Value)> = vhost
        .queue_list()
        .iter()
        .filter(|q| !q.spec().exclusive)
        .map(|q| {
            let spec = q.spec();
            (
                spec.name.clone(),
                json!({"name": spec.name, "durable": spec.durable, "auto_delete": spec.auto_delete,
                       "arguments": table_to_json(&spec.arguments)}),
            )
        })
        .collect();
    for stream in vhost.streams().list() {
        let mut arguments = Map::new();
        arguments.insert("x-queue-type".into(), json!("stream"));
        for arg in &stream.config().queue_arguments {
            if arg.name != "x-queue-type" {
                arguments.insert(
                    arg.name.clone(),
                    super::queues::argument_json(&arg.kind, &arg.value),
                );
            }
        }
        queues.push((
            stream.name().to_owned(),
            json!({"name": stream.name(), "durable": true, "auto_delete": false,
                   "arguments": arguments}),
        ));
    }
    queues.sort_by(|a, b| a.0.cmp(&b.0));
    let mut exchanges: Vec<_> = vhost
        .exchange_list()
        .into_iter()
        .filter(|x| !x.is_default() && !x.name().starts_with("amq."))
        .collect();
    exchanges.sort_by(|a, b| a.name().cmp(b.name()));
    let mut bindings = Vec::new();
    for x in vhost.exchange_list().iter().filter(|x| !x.is_default()) {
        for b in x.bindings() {
            let kind = match b.destination {
                ferrymq_core::exchange::Destination::Exchange(_) => "exchange",
                _ => "queue",
            };
            let skip_exclusive = matches!(&b.destination,
                ferrymq_core::exchange::Destination::Queue(q) if q.spec().exclusive);
            if skip_exclusive {
                continue;
            }
            bindings.push(json!({
                "source": x.name(), "destination": b.destination.name(),
                "destination_type": kind, "routing_key": b.routing_key,
                "arguments": table_to_json(&b.arguments),
            }));
        }
    }
    bindings.sort_by_key(|b| b.to_string());
    (
        queues.into_iter().map(|(_, q)| tag(q)).collect(),
        exchanges
            .iter()
            .map(|x| {
                let spec = x.spec();
                tag(
                    json!({"name": spec.name, "type": x.kind().as_str(), "durable": spec.durable,
                           "auto_delete": spec.auto_delete, "internal": spec.internal,
                           "arguments": table_to_json(&spec.arguments)}),
                )
            })
            .collect(),
        bindings.into_iter().map(tag).collect(),
    )
}

/// The whole broker's definitions.
pub fn export(ctx: &AdminContext) -> Value {
    let mut map = header();
    let users: Vec<Value> = ctx
        .users
        .users()
        .iter()
        .map(|u| users::render_user(u))
        .collect();
    let mut vhosts = ctx.broker.vhosts();
    vhosts.sort_by(|a, b| a.name().cmp(b.name()));
    let vhost_list: Vec<Value> = vhosts
        .iter()
        .map(|v| {
            let meta = v.meta();
            json!({"name": v.name(), "description": meta.description, "tags": meta.tags,
                   "metadata": {"description": meta.description, "tags": meta.tags}})
        })
        .collect();
    let permissions: Vec<Value> = ctx
        .users
        .permissions()
        .iter()
        .map(|p| users::render_permission(p))
        .collect();
    let (mut queues, mut exchanges, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    for v in &vhosts {
        let (q, x, b) = objects(v, true);
        queues.extend(q);
        exchanges.extend(x);
        bindings.extend(b);
    }
    map.insert("users".into(), Value::Array(users));
    map.insert("vhosts".into(), Value::Array(vhost_list));
    map.insert("permissions".into(), Value::Array(permissions));
    let topics: Vec<Value> = ctx
        .users
        .topic_permissions()
        .iter()
        .map(|p| users::render_topic_permission(p))
        .collect();
    map.insert("topic_permissions".into(), Value::Array(topics));
    map.insert("parameters".into(), json!([]));
    map.insert(
        "global_parameters".into(),
        json!([{"name": "cluster_name", "value": ctx.cluster_name}]),
    );
    map.insert("policies".into(), json!([]));
    map.insert("queues".into(), Value::Array(queues));
    map.insert("exchanges".into(), Value::Array(exchanges));
    map.insert("bindings".into(), Value::Array(bindings));
    Value::Object(map)
}

fn list<'a>(defs: &'a Map<String, Value>, key: &str) -> ApiResult<Vec<&'a Map<String, Value>>> {
    match defs.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_object()
                    .ok_or_else(|| ApiError::bad_request(format!("{key}: entries must be objects")))
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a list"))),
    }
}

fn text<'a>(entry: &'a Map<String, Value>, key: &str, what: &str) -> ApiResult<&'a str> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("{what}: missing '{key}'")))
}

/// Wraps an error with the object it happened on.
fn on(what: String) -> impl Fn(ApiError) -> ApiError {
    move |e| ApiError {
        reason: format!("{what}: {}", e.reason),
        ..e
    }
}

fn vhost_of(ctx: &AdminContext, name: &str) -> ApiResult<Arc<VHost>> {
    ctx.broker
        .vhost(name)
        .ok_or_else(|| ApiError::bad_request(format!("vhost '{name}' does not exist")))
}

/// Applies queues, exchanges and bindings of one vhost's entries.
async fn import_objects(
    ctx: &AdminContext,
    defs: &Map<String, Value>,
    only_vhost: Option<&str>,
) -> ApiResult<()> {
    let vhost_name = |entry: &Map<String, Value>, what: &str| -> ApiResult<String> {
        match only_vhost {
            Some(v) => Ok(v.to_owned()),
            None => text(entry, "vhost", what).map(str::to_owned),
        }
    };
    for x in list(defs, "exchanges")? {
        let name = text(x, "name", "exchange")?;
        let vhost = vhost_of(ctx, &vhost_name(x, "exchange")?)?;
        super::exchanges::declare(&vhost, name, x)
            .await
            .map_err(on(format!("exchange '{name}'")))?;
    }
    for q in list(defs, "queues")? {
        let name = text(q, "name", "queue")?;
        let vhost = vhost_of(ctx, &vhost_name(q, "queue")?)?;
        super::queues::declare(ctx, &vhost, name, q)
            .await
            .map_err(on(format!("queue '{name}'")))?;
    }
    for b in list(defs, "bindings")? {
        let source = text(b, "source", "binding")?;
        let destination = text(b, "destination", "binding")?;
        let kind = match text(b, "destination_type", "binding")? {
            "queue" => ResourceKind::Queue,
            "exchange" => ResourceKind::Exchange,
            other => {
                return Err(ApiError::bad_request(format!(
                    "binding: unknown destination_type '{other}'"
                )));
            }
        };
        let routing_key = b.get("routing_key").and_then(Value::as_str).unwrap_or("");
        let arguments = json_to_table(b.get("arguments"))?;
        let vhost = vhost_of(ctx, &vhost_name(b, "binding")?)?;
        vhost
            .bind(
                source,
                destination,
                kind,
                routing_key,
                &arguments,
                ctx.owner(),
            )
            .map_err(ApiError::from)
            .map_err(on(format!(
                "binding {source} -> {destination} ({})",
                properties_key(routing_key, &arguments)
            )))?;
    }
    for key in ["policies", "parameters"] {
        let n = list(defs, key)?.len();
        if n > 0 {
            tracing::warn!(
                count = n,
                "definitions import: {key} are not applied by ferrymq"
            );
        }
    }
    Ok(())
}

/// Imports a whole-broker definitions document. `creator` (the API caller) gets full
/// permissions on the vhosts the import creates, as RabbitMQ grants them; the file's own
/// permissions are applied after.
pub async fn import(
    ctx: &AdminContext,
    defs: &Map<String, Value>,
    creator: Option<&str>,
) -> ApiResult<()> {
    for u in list(defs, "users")? {
        let name = text(u, "name", "user")?;
        let mut entry = u.clone();
        entry.entry("tags").or_insert_with(|| json!([]));
        let _ = users::put_user(ctx, name, &entry).map_err(on(format!("user '{name}'")))?;
    }
    for v in list(defs, "vhosts")? {
        let name = text(v, "name", "vhost")?;
        if ctx.broker.vhost(name).is_none() {
            super::vhosts::apply(ctx, name, v)
                .await
                .map_err(on(format!("vhost '{name}'")))?;
            if let Some(user) = creator.filter(|u| ctx.users.user(u).is_some()) {
                let _ = ctx
                    .users
                    .set_permission(name, user, ferrymq_auth::Patterns::all())?;
            }
        }
    }
    for p in list(defs, "permissions")? {
        let user = text(p, "user", "permission")?;
        let vhost = text(p, "vhost", "permission")?;
        let _ = users::put_permission(ctx, vhost, user, p)
            .map_err(on(format!("permission of '{user}' on '{vhost}'")))?;
    }
    for p in list(defs, "topic_permissions")? {
        let user = text(p, "user", "topic permission")?;
        let vhost = text(p, "vhost", "topic permission")?;
        let _ = users::put_topic_permission(ctx, vhost, user, p)
            .map_err(on(format!("topic permission of '{user}' on '{vhost}'")))?;
    }
    import_objects(ctx, defs, None).await?;
    ctx.broker.definitions().sync_all().durable().await?;
    Ok(())
}

fn body_object(r: &Request) -> ApiResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::bad_request("failed_to_parse_json")),
    }
}

pub async fn all(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::POST])?;
    r.user.require_admin()?;
    if r.method == Method::POST {
        import(&r.ctx, &body_object(r)?, Some(r.user.name())).await?;
        return Ok(no_content());
    }
    Ok(json(export(&r.ctx)))
}

pub async fn of_vhost(r: &Request, vhost_name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::POST])?;
    r.user.require_admin()?;
    let vhost = r.vhost(vhost_name)?;
    if r.method == Method::POST {
        import_objects(&r.ctx, &body_object(r)?, Some(vhost_name)).await?;
        r.ctx.broker.definitions().sync_all().durable().await?;
        return Ok(no_content());
    }
    let mut map = header();
    let (queues, exchanges, bindings) = objects(&vhost, false);
    map.insert("parameters".into(), json!([]));
    map.insert("policies".into(), json!([]));
    map.insert("queues".into(), Value::Array(queues));
    map.insert("exchanges".into(), Value::Array(exchanges));
    map.insert("bindings".into(), Value::Array(bindings));
    Ok(json(Value::Object(map)))
}
