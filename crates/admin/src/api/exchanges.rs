//! `/api/exchanges`: list, declare, delete, publish.

use std::str::FromStr;
use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use ferrymq_core::exchange::{Exchange, ExchangeKind, ExchangeSpec};
use ferrymq_core::message::Message;
use ferrymq_core::{Error as CoreError, VHost};
use serde_json::{Map, Value, json};

use ferrymq_auth::{Action, ResourceType};

use super::queues::flag;
use super::{Request, allow, created, json, no_content, object, require_keys};
use crate::error::{ApiError, ApiResult};
use crate::json::{json_to_properties, json_to_table, table_to_json};

/// The API's name for the default exchange in paths.
const DEFAULT_ALIAS: &str = "amq.default";

fn exchange_name(name: &str) -> &str {
    if name == DEFAULT_ALIAS { "" } else { name }
}

pub fn render(exchange: &Exchange) -> Value {
    let spec = exchange.spec();
    json!({
        "name": spec.name,
        "vhost": exchange.vhost(),
        "type": exchange.kind().as_str(),
        "durable": spec.durable,
        "auto_delete": spec.auto_delete,
        "internal": spec.internal,
        "arguments": table_to_json(&spec.arguments),
        "user_who_performed_action": "rmq-internal",
    })
}

fn sorted(vhost: &VHost) -> Vec<Arc<Exchange>> {
    let mut list = vhost.exchange_list();
    list.sort_by(|a, b| a.name().cmp(b.name()));
    list
}

pub fn list(r: &Request, vhost: Option<&str>) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    let vhosts = r.listed_vhosts(vhost)?;
    let items = vhosts
        .iter()
        .flat_map(|v| sorted(v).into_iter().map(|x| render(&x)))
        .collect();
    Ok(json(r.query.apply(items)?.0))
}

/// Declares exchange `name` from a PUT body or a definitions entry.
pub async fn declare(vhost: &VHost, name: &str, body: &Map<String, Value>) -> ApiResult<bool> {
    let kind = match body.get("type") {
        None => ExchangeKind::Direct,
        Some(Value::String(t)) => ExchangeKind::from_str(t)?,
        Some(_) => return Err(ApiError::bad_request("type must be a string")),
    };
    let spec = ExchangeSpec {
        name: name.to_owned(),
        kind,
        durable: flag(body, "durable", false)?,
        auto_delete: flag(body, "auto_delete", false)?,
        internal: flag(body, "internal", false)?,
        arguments: json_to_table(body.get("arguments"))?,
    };
    let existed = vhost.exchange(name).is_ok();
    vhost.declare_exchange(spec, false)?;
    vhost.definitions().sync_all().durable().await?;
    Ok(!existed)
}

pub async fn one(r: &Request, vhost_name: &str, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::PUT, Method::DELETE])?;
    match r.method {
        Method::PUT => {
            let vhost = r.writable_vhost(vhost_name)?;
            r.authorize(
                vhost_name,
                ResourceType::Exchange,
                exchange_name(name),
                Action::Configure,
            )?;
            let body = r.json()?;
            if name.is_empty() || name == DEFAULT_ALIAS {
                return Err(CoreError::AccessRefused {
                    reason: "operation not permitted on the default exchange".into(),
                }
                .into());
            }
            Ok(created(declare(&vhost, name, &body).await?))
        }
        Method::DELETE => {
            let vhost = r.writable_vhost(vhost_name)?;
            r.authorize(
                vhost_name,
                ResourceType::Exchange,
                exchange_name(name),
                Action::Configure,
            )?;
            let name = exchange_name(name);
            if !name.is_empty() && !name.starts_with("amq.") && vhost.exchange(name).is_err() {
                return Err(ApiError::not_found());
            }
            let if_unused = r.param("if-unused").as_deref() == Some("true");
            vhost.delete_exchange(name, if_unused)?;
            vhost.definitions().sync_all().durable().await?;
            Ok(no_content())
        }
        _ => {
            let vhost = r.visible_vhost(vhost_name)?;
            let exchange = vhost
                .exchange(exchange_name(name))
                .map_err(|_| ApiError::not_found())?;
            Ok(object(r, render(&exchange)))
        }
    }
}

/// `POST /api/exchanges/{vhost}/{name}/publish`: `{"routed": bool}`.
pub async fn publish(r: &Request, vhost_name: &str, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::POST])?;
    let vhost = r.writable_vhost(vhost_name)?;
    r.authorize(
        vhost_name,
        ResourceType::Exchange,
        exchange_name(name),
        Action::Write,
    )?;
    let body = r.json()?;
    require_keys(
        &body,
        &["properties", "routing_key", "payload", "payload_encoding"],
    )?;
    let text = |key: &str| -> ApiResult<&str> {
        body.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request(format!("{key} must be a string")))
    };
    let payload = text("payload")?;
    let payload = match text("payload_encoding")? {
        "string" => Bytes::copy_from_slice(payload.as_bytes()),
        "base64" => Bytes::from(
            STANDARD
                .decode(payload)
                .map_err(|e| ApiError::bad_request(format!("payload is not base64: {e}")))?,
        ),
        other => {
            return Err(ApiError::bad_term(json!(["unsupported_encoding", other])));
        }
    };
    let routing_key = text("routing_key")?.to_owned();
    let properties = json_to_properties(body.get("properties"))?;
    if let Some(user_id) = &properties.user_id
        && user_id != r.user.name()
        && !r.user.user.is_impersonator()
    {
        return Err(ApiError::bad_request(format!(
            "user_id property set to '{user_id}' but authenticated user was '{}'",
            r.user.name()
        )));
    }
    properties.validate().map_err(CoreError::from)?;
    let name = exchange_name(name);
    let exchange = vhost
        .exchange(name)
        .map_err(|e| ApiError::bad_request(format!("404 NOT_FOUND - {e}")))?;
    if exchange.is_internal() {
        return Err(ApiError::bad_request(format!(
            "403 ACCESS_REFUSED - cannot publish to internal exchange '{name}' in vhost '{vhost_name}'"
        )));
    }
    let mut message = Message::new(name, routing_key, properties, payload);
    let routed = vhost.route(&exchange, &message);
    if let Some(stripped) = message.without_bcc() {
        message = stripped;
    }
    let message = Arc::new(message);
    let (rejected, waits) = routed.enqueue(&message);
    // A persistent message is on disk before the answer, as a confirm would promise.
    let mut durable = true;
    for wait in waits {
        durable &= wait.await;
    }
    if !durable {
        return Err(ApiError::internal("the message could not be stored"));
    }
    Ok(json(json!({ "routed": !routed.is_empty() && !rejected })))
}
