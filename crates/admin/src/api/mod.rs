//! `/api/...`: routing on the raw path, as RabbitMQ's tools send it.
//!
//! Clients percent-encode every path segment (rabbitmqadmin encodes even `.` and `-`), a
//! vhost `/` is `%2F`, and the default exchange is an empty segment
//! (`/api/exchanges/%2F//publish`). So the path is split on `/` first and each segment
//! decoded after, and routing is a match on the decoded segments: a known resource with
//! another method is 405, anything else 404.

mod bindings;
mod connections;
pub mod definitions;
mod exchanges;
mod kafka;
mod limits;
mod node;
mod queues;
mod users;
mod vhosts;

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use ferrymq_core::VHost;

use crate::auth::{Authed, PeerAddr};
use crate::context::AdminContext;
use crate::error::{ApiError, ApiResult};
use crate::query::ListQuery;

/// What a handler gets: the context, the caller, the query and the body.
pub struct Request {
    pub ctx: Arc<AdminContext>,
    pub user: Authed,
    pub method: Method,
    pub query: ListQuery,
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    /// The body as a JSON object (`{}` when empty); RabbitMQ's `not_json` otherwise.
    pub fn json(&self) -> ApiResult<serde_json::Map<String, Value>> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(ApiError::bad_request("not_json")),
        }
    }

    /// The vhost `name` (404 if there is none).
    pub fn vhost(&self, name: &str) -> ApiResult<Arc<VHost>> {
        self.ctx.broker.vhost(name).ok_or_else(ApiError::not_found)
    }

    /// The vhost `name`, which the caller may change objects of.
    pub fn writable_vhost(&self, name: &str) -> ApiResult<Arc<VHost>> {
        self.user.require_vhost_access(name)?;
        self.vhost(name)
    }

    /// The vhost `name`, which the caller may read.
    pub fn visible_vhost(&self, name: &str) -> ApiResult<Arc<VHost>> {
        self.user.require_visible(name)?;
        self.vhost(name)
    }

    /// The vhosts a listing covers: `Some(name)` alone (if visible), else every vhost the
    /// caller sees, by name.
    pub fn listed_vhosts(&self, vhost: Option<&str>) -> ApiResult<Vec<Arc<VHost>>> {
        let mut list = match vhost {
            Some(name) => vec![self.visible_vhost(name)?],
            None => self
                .ctx
                .broker
                .vhosts()
                .into_iter()
                .filter(|v| self.user.can_see(v.name()))
                .collect(),
        };
        list.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(list)
    }

    /// RabbitMQ's configure/write/read check of the caller (403 `not_authorised`), so the
    /// API refuses what the same user would be refused over AMQP.
    pub fn authorize(
        &self,
        vhost: &str,
        kind: ferrymq_auth::ResourceType,
        name: &str,
        action: ferrymq_auth::Action,
    ) -> ApiResult<()> {
        self.ctx
            .users
            .authorize(self.user.name(), vhost, kind, name, action)
            .map_err(|refusal| ApiError::forbidden(refusal.text))
    }

    /// A query parameter other than the listing ones.
    pub fn param(&self, name: &str) -> Option<String> {
        self.raw_query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key) == name).then(|| decode(value))
        })
    }
}

/// Percent-decodes one path segment (invalid escapes stay as they are).
pub fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Some(v) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a name for a path segment (for `Location` headers).
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn json(value: Value) -> Response {
    Json(value).into_response()
}

/// One object, with the request's `columns` applied (RabbitMQ selects fields of single
/// objects too).
pub fn object(r: &Request, value: Value) -> Response {
    json(r.query.select_one(value))
}

/// 201 when created, 204 when it existed (RabbitMQ's PUT answers).
pub fn created(created: bool) -> Response {
    if created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// RabbitMQ's 400 for keys a body must have: `[{key_missing,a},{key_missing,b}]`.
pub fn require_keys(body: &serde_json::Map<String, Value>, keys: &[&str]) -> ApiResult<()> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !body.contains_key(**k))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("[{}]", missing.join(","))))
    }
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Answers with 405 and an `Allow` header unless `method` is one of `allowed`.
pub fn allow(method: &Method, allowed: &[Method]) -> ApiResult<()> {
    if allowed.contains(method) {
        return Ok(());
    }
    let mut e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method Not Allowed",
    );
    e.allow = allowed
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    Err(e)
}

/// Every request under `/api/`.
pub async fn handle(
    State(ctx): State<Arc<AdminContext>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: Option<axum::Extension<PeerAddr>>,
    Query(query): Query<ListQuery>,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/api/") else {
        return ApiError::not_found().into_response();
    };
    let segments: Vec<String> = rest.split('/').map(decode).collect();
    let user = match Authed::authenticate(&ctx, &headers, peer.map(|p| p.0)) {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    let request = Request {
        ctx,
        user,
        method,
        query,
        raw_query: uri.query().unwrap_or("").to_owned(),
        headers,
        body,
    };
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match route(&request, &segs).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(r: &Request, segs: &[&str]) -> ApiResult<Response> {
    match segs {
        ["overview"] => node::overview(r),
        ["whoami"] => node::whoami(r),
        ["cluster-name"] => node::cluster_name(r),
        ["nodes"] => node::nodes(r),
        ["nodes", name] => node::node(r, name),
        ["extensions"] => node::extensions(r),
        ["health", "checks", rest @ ..] => node::health(r, rest),
        ["aliveness-test", vhost] => node::aliveness(r, vhost).await,
        ["feature-flags"]
        | ["policies", ..]
        | ["operator-policies", ..]
        | ["parameters", ..]
        | ["global-parameters"]
        | ["user-limits", ..]
        | ["deprecated-features", ..] => node::empty_list(r, segs),
        ["vhost-limits", rest @ ..] => limits::route(r, rest).await,
        ["vhosts"] => vhosts::list(r),
        ["vhosts", vhost] => vhosts::one(r, vhost).await,
        ["vhosts", vhost, "permissions"] => users::vhost_permissions(r, vhost),
        ["vhosts", vhost, "connections"] => connections::list(r, Some(vhost)),
        ["vhosts", vhost, "channels"] => connections::channels(r, Some(vhost)),
        ["users"] => users::list(r),
        ["users", "without-permissions"] => users::without_permissions(r),
        ["users", "bulk-delete"] => users::bulk_delete(r).await,
        ["users", name] => users::one(r, name).await,
        ["users", name, "permissions"] => users::user_permissions(r, name),
        ["topic-permissions"] => users::topic_permissions(r, None, None),
        ["topic-permissions", vhost, user] => users::topic_permission(r, vhost, user).await,
        ["users", name, "topic-permissions"] => users::topic_permissions(r, None, Some(name)),
        ["vhosts", vhost, "topic-permissions"] => users::topic_permissions(r, Some(vhost), None),
        ["permissions"] => users::permissions(r),
        ["permissions", vhost, user] => users::permission(r, vhost, user).await,
        ["exchanges"] => exchanges::list(r, None),
        ["exchanges", vhost] => exchanges::list(r, Some(vhost)),
        ["exchanges", vhost, name] => exchanges::one(r, vhost, name).await,
        ["exchanges", vhost, name, "publish"] => exchanges::publish(r, vhost, name).await,
        [
            "exchanges",
            vhost,
            name,
            "bindings",
            side @ ("source" | "destination"),
        ] => bindings::of_exchange(r, vhost, name, side),
        ["queues"] => queues::list(r, None),
        ["queues", vhost] => queues::list(r, Some(vhost)),
        ["queues", vhost, name] => queues::one(r, vhost, name).await,
        ["queues", vhost, name, "bindings"] => bindings::of_queue(r, vhost, name),
        ["queues", vhost, name, "contents"] => queues::purge(r, vhost, name),
        ["queues", vhost, name, "get"] => queues::get(r, vhost, name).await,
        ["bindings"] => bindings::list(r, None),
        ["bindings", vhost] => bindings::list(r, Some(vhost)),
        [
            "bindings",
            vhost,
            "e",
            source,
            kind @ ("q" | "e"),
            destination,
            rest @ ..,
        ] => match rest {
            [] => bindings::between(r, vhost, source, kind, destination).await,
            [props] => bindings::one(r, vhost, source, kind, destination, props).await,
            _ => Err(ApiError::not_found()),
        },
        ["connections"] => connections::list(r, None),
        ["connections", "username", user] => connections::of_user(r, user),
        ["connections", name] => connections::one(r, name),
        ["connections", name, "channels"] => connections::channels_of(r, name),
        ["channels"] => connections::channels(r, None),
        ["channels", name] => connections::channel(r, name),
        ["consumers"] => connections::consumers(r, None),
        ["consumers", vhost] => connections::consumers(r, Some(vhost)),
        ["definitions"] => definitions::all(r).await,
        ["definitions", vhost] => definitions::of_vhost(r, vhost).await,
        ["kafka", "topics"] => kafka::topics(r, None),
        ["kafka", "topics", name] => kafka::topics(r, Some(name)),
        ["kafka", "groups"] => kafka::groups(r, None),
        ["kafka", "groups", id] => kafka::groups(r, Some(id)),
        _ => Err(ApiError::not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode_every_escape_and_encode_back() {
        assert_eq!(decode("%2F"), "/");
        assert_eq!(decode("ra%2Eq"), "ra.q");
        assert_eq!(
            decode("127%2E0%2E0%2E1%3A49354%20%2D%3E%20127%2E0%2E0%2E1%3A52669"),
            "127.0.0.1:49354 -> 127.0.0.1:52669"
        );
        assert_eq!(decode("bad%zz%"), "bad%zz%");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(decode(&encode("é~#")), "é~#");
    }
}
