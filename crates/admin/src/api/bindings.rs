//! `/api/bindings`: queue and exchange-to-exchange bindings, listed, created, deleted.
//!
//! A binding is named in paths by its `properties_key`: the routing key percent-encoded
//! (`~` for an empty key), and when it has arguments `~` and a short hash of them. Tools
//! read it from a listing and send it back to delete that binding.

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ferrymq_auth::{Action, ResourceType};
use ferrymq_core::exchange::{Binding, Destination};
use ferrymq_core::message::FieldTable;
use ferrymq_core::{Error as CoreError, ResourceKind, VHost};
use serde_json::{Value, json};

use super::{Request, allow, encode, json, no_content, object};
use crate::error::{ApiError, ApiResult};
use crate::json::{json_to_table, table_to_json};

/// RabbitMQ's `properties_key` of a binding.
pub fn properties_key(routing_key: &str, arguments: &FieldTable) -> String {
    let mut key = if routing_key.is_empty() {
        String::from("~")
    } else {
        let mut out = String::new();
        for b in routing_key.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    if !arguments.is_empty() {
        let mut sorted = arguments.clone();
        sorted.sort_by_key();
        let canonical = table_to_json(&sorted).to_string();
        let hash = crc32fast::hash(canonical.as_bytes());
        if !key.ends_with('~') {
            key.push('~');
        }
        key.push_str(&URL_SAFE_NO_PAD.encode(hash.to_be_bytes()));
    }
    key
}

/// One binding as a row: (source, destination type, destination, binding).
struct Row {
    source: String,
    kind: &'static str,
    destination: String,
    routing_key: String,
    arguments: FieldTable,
}

impl Row {
    fn render(&self, vhost: &str) -> Value {
        json!({
            "source": self.source,
            "vhost": vhost,
            "destination": self.destination,
            "destination_type": self.kind,
            "routing_key": self.routing_key,
            "arguments": table_to_json(&self.arguments),
            "properties_key": properties_key(&self.routing_key, &self.arguments),
        })
    }
}

fn row(source: &str, b: &Binding) -> Row {
    let kind = match b.destination {
        Destination::Exchange(_) => "exchange",
        Destination::Queue(_) | Destination::Stream(_) => "queue",
    };
    Row {
        source: source.to_owned(),
        kind,
        destination: b.destination.name().to_owned(),
        routing_key: b.routing_key.clone(),
        arguments: b.arguments.clone(),
    }
}

/// Every binding of `vhost`, the default exchange's implicit ones first, in RabbitMQ's
/// order (source, destination type, destination, key).
fn rows(vhost: &VHost) -> Vec<Row> {
    let mut queues: Vec<String> = vhost
        .queue_list()
        .iter()
        .map(|q| q.name().to_owned())
        .collect();
    queues.extend(vhost.streams().list().iter().map(|s| s.name().to_owned()));
    queues.sort();
    let mut rows: Vec<Row> = queues
        .into_iter()
        .map(|q| Row {
            source: String::new(),
            kind: "queue",
            destination: q.clone(),
            routing_key: q,
            arguments: FieldTable::new(),
        })
        .collect();
    let mut explicit: Vec<Row> = vhost
        .exchange_list()
        .iter()
        .filter(|x| !x.is_default())
        .flat_map(|x| {
            let name = x.name().to_owned();
            x.bindings()
                .iter()
                .map(|b| row(&name, b))
                .collect::<Vec<_>>()
        })
        .collect();
    explicit.sort_by(|a, b| {
        (&a.source, a.kind, &a.destination, &a.routing_key).cmp(&(
            &b.source,
            b.kind,
            &b.destination,
            &b.routing_key,
        ))
    });
    rows.extend(explicit);
    rows
}

fn respond(r: &Request, vhost: &VHost, keep: impl Fn(&Row) -> bool) -> ApiResult<Response> {
    let items = rows(vhost)
        .iter()
        .filter(|row| keep(row))
        .map(|row| row.render(vhost.name()))
        .collect();
    Ok(json(r.query.apply(items)?.0))
}

pub fn list(r: &Request, vhost: Option<&str>) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let items = r
        .listed_vhosts(vhost)?
        .iter()
        .flat_map(|v| {
            rows(v)
                .iter()
                .map(|row| row.render(v.name()))
                .collect::<Vec<_>>()
        })
        .collect();
    Ok(json(r.query.apply(items)?.0))
}

pub fn of_queue(r: &Request, vhost_name: &str, queue: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let vhost = r.visible_vhost(vhost_name)?;
    if vhost.lookup_queue(queue).is_none() && vhost.streams().get(queue).is_none() {
        return Err(ApiError::not_found());
    }
    respond(r, &vhost, |row| {
        row.kind == "queue" && row.destination == queue
    })
}

pub fn of_exchange(r: &Request, vhost_name: &str, name: &str, side: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let vhost = r.visible_vhost(vhost_name)?;
    let name = if name == "amq.default" { "" } else { name };
    vhost.exchange(name).map_err(|_| ApiError::not_found())?;
    if side == "source" {
        respond(r, &vhost, |row| row.source == name)
    } else {
        respond(r, &vhost, |row| {
            row.kind == "exchange" && row.destination == name
        })
    }
}

fn kind_of(kind: &str) -> (ResourceKind, &'static str) {
    if kind == "q" {
        (ResourceKind::Queue, "queue")
    } else {
        (ResourceKind::Exchange, "exchange")
    }
}

/// Missing ends are 404 with RabbitMQ's reason (`no exchange 'x' in vhost '/'`).
fn end_error(e: CoreError) -> ApiError {
    match e {
        CoreError::NotFound { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        other => other.into(),
    }
}

fn check_ends(vhost: &VHost, source: &str, kind: &str, destination: &str) -> ApiResult<()> {
    vhost.exchange(source).map_err(end_error)?;
    if kind == "q" {
        if vhost.lookup_queue(destination).is_none() && vhost.streams().get(destination).is_none() {
            return Err(end_error(CoreError::NotFound {
                kind: ResourceKind::Queue,
                name: destination.to_owned(),
                vhost: vhost.name().to_owned(),
            }));
        }
    } else {
        vhost.exchange(destination).map_err(end_error)?;
    }
    Ok(())
}

/// The owner to act as for `destination` (an exclusive queue's connection, else anyone).
fn owner_for(r: &Request, vhost: &VHost, kind: &str, destination: &str) -> u64 {
    (kind == "q")
        .then(|| vhost.lookup_queue(destination).and_then(|q| q.owner()))
        .flatten()
        .unwrap_or_else(|| r.ctx.owner())
}

/// Write on the destination, read on the source, as AMQP's bind checks.
fn authorize_binding(
    r: &Request,
    vhost: &str,
    source: &str,
    kind: &str,
    destination: &str,
) -> ApiResult<()> {
    let dest_type = if kind == "q" {
        ResourceType::Queue
    } else {
        ResourceType::Exchange
    };
    r.authorize(vhost, dest_type, destination, Action::Write)?;
    r.authorize(vhost, ResourceType::Exchange, source, Action::Read)
}

/// `/api/bindings/{vhost}/e/{source}/{q|e}/{destination}`: GET lists, POST creates.
pub async fn between(
    r: &Request,
    vhost_name: &str,
    source: &str,
    kind: &str,
    destination: &str,
) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::POST])?;
    if r.method == Method::GET {
        let vhost = r.visible_vhost(vhost_name)?;
        check_ends(&vhost, source, kind, destination)?;
        let (_, type_name) = kind_of(kind);
        return respond(r, &vhost, |row| {
            row.source == source && row.kind == type_name && row.destination == destination
        });
    }
    let vhost = r.writable_vhost(vhost_name)?;
    let body = r.json()?;
    let routing_key = match body.get("routing_key") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(k)) => k.clone(),
        Some(_) => return Err(ApiError::bad_request("routing_key must be a string")),
    };
    let arguments = json_to_table(body.get("arguments"))?;
    check_ends(&vhost, source, kind, destination)?;
    let (resource, _) = kind_of(kind);
    authorize_binding(r, vhost_name, source, kind, destination)?;
    let owner = owner_for(r, &vhost, kind, destination);
    vhost
        .bind(
            source,
            destination,
            resource,
            &routing_key,
            &arguments,
            owner,
        )
        .map_err(end_error)?;
    vhost.definitions().sync_all().durable().await?;
    let location = format!(
        "/api/bindings/{}/e/{}/{kind}/{}/{}",
        encode(vhost_name),
        encode(source),
        encode(destination),
        encode(&properties_key(&routing_key, &arguments))
    );
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `/api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}`: GET or DELETE one.
pub async fn one(
    r: &Request,
    vhost_name: &str,
    source: &str,
    kind: &str,
    destination: &str,
    props: &str,
) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::DELETE])?;
    let vhost = r.visible_vhost(vhost_name)?;
    let (resource, type_name) = kind_of(kind);
    let found = rows(&vhost).into_iter().find(|row| {
        row.source == source
            && row.kind == type_name
            && row.destination == destination
            && properties_key(&row.routing_key, &row.arguments) == props
    });
    let Some(found) = found else {
        return Err(ApiError::not_found());
    };
    if r.method == Method::GET {
        return Ok(object(r, found.render(vhost_name)));
    }
    r.user.require_vhost_access(vhost_name)?;
    authorize_binding(r, vhost_name, source, kind, destination)?;
    let owner = owner_for(r, &vhost, kind, destination);
    vhost.unbind(
        source,
        destination,
        resource,
        &found.routing_key,
        &found.arguments,
        owner,
    )?;
    vhost.definitions().sync_all().durable().await?;
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrymq_core::message::FieldValue;

    #[test]
    fn properties_keys_are_stable_and_distinct() {
        assert_eq!(properties_key("", &FieldTable::new()), "~");
        assert_eq!(properties_key("a.*.c", &FieldTable::new()), "a.%2A.c");
        assert_eq!(properties_key("ra.#", &FieldTable::new()), "ra.%23");
        let mut a = FieldTable::new();
        a.push("x-match", FieldValue::string("all"));
        a.push("k", FieldValue::I64(1));
        let mut b = FieldTable::new();
        b.push("k", FieldValue::I64(1));
        b.push("x-match", FieldValue::string("all"));
        let key = properties_key("rk", &a);
        assert!(key.starts_with("rk~"), "{key}");
        assert_eq!(
            key,
            properties_key("rk", &b),
            "argument order does not matter"
        );
        assert_ne!(key, properties_key("rk", &FieldTable::new()));
        assert!(properties_key("", &a).starts_with('~'));
        assert!(!properties_key("", &a).starts_with("~~"));
    }
}
