//! `/api/users` and `/api/permissions` (administrators), `whoami`-style reads of one's own.

use axum::http::Method;
use axum::response::Response;
use ferrymq_auth::{
    Credentials, HashingAlgorithm, PasswordHash, Patterns, Permission, Tags, TopicPatterns,
    TopicPermission, User, UserUpdate,
};
use ferrymq_core::store::Pending;
use serde_json::{Map, Value, json};

use super::vhosts::parse_tags;
use super::{Request, allow, created, json, no_content, object, require_keys};
use crate::context::AdminContext;
use crate::error::{ApiError, ApiResult};

pub fn render_user(user: &User) -> Value {
    json!({
        "name": user.name,
        "password_hash": user.hash.to_base64(),
        "hashing_algorithm": user.hash.algorithm().as_str(),
        "tags": user.tags.as_slice(),
        "limits": {},
    })
}

pub fn render_permission(p: &Permission) -> Value {
    let patterns = p.patterns();
    json!({
        "user": p.user,
        "vhost": p.vhost,
        "configure": patterns.configure,
        "write": patterns.write,
        "read": patterns.read,
    })
}

async fn durable(pending: Option<Pending>) -> ApiResult<()> {
    if let Some(p) = pending {
        p.durable().await?;
    }
    Ok(())
}

pub fn list(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    r.user.require_admin()?;
    let items = r.ctx.users.users().iter().map(|u| render_user(u)).collect();
    Ok(json(r.query.apply(items)?.0))
}

pub fn without_permissions(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    r.user.require_admin()?;
    let permissions = r.ctx.users.permissions();
    let items = r
        .ctx
        .users
        .users()
        .iter()
        .filter(|u| !permissions.iter().any(|p| p.user == u.name))
        .map(|u| render_user(u))
        .collect();
    Ok(json(r.query.apply(items)?.0))
}

/// What a definitions file or a PUT says about a user's password.
pub fn credentials(body: &Map<String, Value>) -> ApiResult<Credentials> {
    let algorithm = match body.get("hashing_algorithm").and_then(Value::as_str) {
        Some(name) => HashingAlgorithm::parse(name)?,
        None => HashingAlgorithm::default(),
    };
    if let Some(password) = body.get("password") {
        let password = password
            .as_str()
            .ok_or_else(|| ApiError::bad_request("password must be a string"))?;
        return Ok(Credentials::Password {
            password: password.to_owned(),
            algorithm,
        });
    }
    if let Some(hash) = body.get("password_hash") {
        let hash = hash
            .as_str()
            .ok_or_else(|| ApiError::bad_request("password_hash must be a string"))?;
        return Ok(Credentials::Hash(PasswordHash::from_base64(
            algorithm, hash,
        )?));
    }
    Ok(Credentials::Unchanged)
}

/// Creates or replaces user `name` from a PUT body or a definitions entry.
pub fn put_user(
    ctx: &AdminContext,
    name: &str,
    body: &Map<String, Value>,
) -> ApiResult<(bool, Option<Pending>)> {
    let Some(tags) = body.get("tags") else {
        return Err(ApiError::bad_request("tags_not_present"));
    };
    let update = UserUpdate {
        name: name.to_owned(),
        credentials: credentials(body)?,
        tags: Tags::new(parse_tags(Some(tags))?),
    };
    Ok(ctx.users.put_user(update)?)
}

pub async fn one(r: &Request, name: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::PUT, Method::DELETE])?;
    r.user.require_admin()?;
    match r.method {
        Method::PUT => {
            let (was_created, pending) = put_user(&r.ctx, name, &r.json()?)?;
            durable(pending).await?;
            Ok(created(was_created))
        }
        Method::DELETE => match r.ctx.users.delete_user(name)? {
            None => Err(ApiError::not_found()),
            Some(pending) => {
                durable(pending).await?;
                Ok(no_content())
            }
        },
        _ => {
            let user = r.ctx.users.user(name).ok_or_else(ApiError::not_found)?;
            Ok(object(r, render_user(&user)))
        }
    }
}

/// `POST /api/users/bulk-delete {"users": [...]}`.
pub async fn bulk_delete(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::POST])?;
    r.user.require_admin()?;
    let body = r.json()?;
    let names: Vec<String> = body
        .get("users")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("[{key_missing,users}]"))?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for name in &names {
        if r.ctx.users.user(name).is_none() {
            return Err(ApiError::bad_term(json!(["no_such_user", name])));
        }
    }
    for name in &names {
        let _ = r.ctx.users.delete_user(name)?;
    }
    r.ctx.broker.definitions().sync_all().durable().await?;
    Ok(no_content())
}

/// Permissions that `keep` selects, as a listing.
fn permission_list(r: &Request, keep: impl Fn(&Permission) -> bool) -> ApiResult<Response> {
    let items = r
        .ctx
        .users
        .permissions()
        .iter()
        .filter(|p| keep(p))
        .map(|p| render_permission(p))
        .collect();
    Ok(json(r.query.apply(items)?.0))
}

pub fn permissions(r: &Request) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    r.user.require_admin()?;
    permission_list(r, |_| true)
}

pub fn vhost_permissions(r: &Request, vhost: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    r.user.require_admin()?;
    r.vhost(vhost)?;
    permission_list(r, |p| p.vhost == vhost)
}

pub fn user_permissions(r: &Request, user: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    r.user.require_admin()?;
    if r.ctx.users.user(user).is_none() {
        return Err(ApiError::not_found());
    }
    permission_list(r, |p| p.user == user)
}

pub fn render_topic_permission(p: &TopicPermission) -> Value {
    let patterns = p.patterns();
    json!({
        "user": p.user,
        "vhost": p.vhost,
        "exchange": p.exchange,
        "write": patterns.write,
        "read": patterns.read,
    })
}

/// `/api/topic-permissions`, `/api/vhosts/{v}/topic-permissions`,
/// `/api/users/{u}/topic-permissions` (administrators).
pub fn topic_permissions(
    r: &Request,
    vhost: Option<&str>,
    user: Option<&str>,
) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET])?;
    r.user.require_admin()?;
    if let Some(v) = vhost {
        r.vhost(v)?;
    }
    if let Some(u) = user
        && r.ctx.users.user(u).is_none()
    {
        return Err(ApiError::not_found());
    }
    let items = r
        .ctx
        .users
        .topic_permissions()
        .iter()
        .filter(|p| vhost.is_none_or(|v| p.vhost == v) && user.is_none_or(|u| p.user == u))
        .map(|p| render_topic_permission(p))
        .collect();
    Ok(json(r.query.apply(items)?.0))
}

/// Sets a topic permission from a PUT body or a definitions entry.
pub fn put_topic_permission(
    ctx: &AdminContext,
    vhost: &str,
    user: &str,
    body: &Map<String, Value>,
) -> ApiResult<(bool, Option<Pending>)> {
    require_keys(body, &["exchange", "write", "read"])?;
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request(format!("{k} must be a string")))
    };
    let exchange = text("exchange")?;
    let patterns = TopicPatterns {
        write: text("write")?,
        read: text("read")?,
    };
    if ctx.broker.vhost(vhost).is_none() || ctx.users.user(user).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    Ok(ctx
        .users
        .set_topic_permission(vhost, user, &exchange, patterns)?)
}

/// `/api/topic-permissions/{vhost}/{user}`: GET lists, PUT sets one exchange's, DELETE
/// removes them (or `?exchange=x`'s only).
pub async fn topic_permission(r: &Request, vhost: &str, user: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::PUT, Method::DELETE])?;
    r.user.require_admin()?;
    match r.method {
        Method::PUT => {
            let (was_created, pending) = put_topic_permission(&r.ctx, vhost, user, &r.json()?)?;
            durable(pending).await?;
            Ok(created(was_created))
        }
        Method::DELETE => {
            let exchange = r.param("exchange");
            match r
                .ctx
                .users
                .clear_topic_permissions(vhost, user, exchange.as_deref())?
            {
                None => Err(ApiError::not_found()),
                Some(pending) => {
                    durable(pending).await?;
                    Ok(no_content())
                }
            }
        }
        _ => {
            let items: Vec<Value> = r
                .ctx
                .users
                .topic_permissions()
                .iter()
                .filter(|p| p.vhost == vhost && p.user == user)
                .map(|p| render_topic_permission(p))
                .collect();
            if items.is_empty() {
                return Err(ApiError::not_found());
            }
            Ok(json(Value::Array(items)))
        }
    }
}

/// The three patterns of a PUT body or a definitions entry (each required, as RabbitMQ).
pub fn patterns(body: &Map<String, Value>) -> ApiResult<Patterns> {
    require_keys(body, &["configure", "write", "read"])?;
    if ["configure", "write", "read"]
        .iter()
        .any(|k| !body.get(*k).is_some_and(Value::is_string))
    {
        return Err(ApiError::bad_request(
            "configure, write and read must be strings",
        ));
    }
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Patterns {
        configure: text("configure"),
        write: text("write"),
        read: text("read"),
    })
}

/// Sets `user`'s permissions on `vhost`; both must exist.
pub fn put_permission(
    ctx: &AdminContext,
    vhost: &str,
    user: &str,
    body: &Map<String, Value>,
) -> ApiResult<(bool, Option<Pending>)> {
    let patterns = patterns(body)?;
    if ctx.broker.vhost(vhost).is_none() || ctx.users.user(user).is_none() {
        return Err(ApiError::bad_request("vhost_or_user_not_found"));
    }
    Ok(ctx.users.set_permission(vhost, user, patterns)?)
}

pub async fn permission(r: &Request, vhost: &str, user: &str) -> ApiResult<Response> {
    allow(&r.method, &[Method::GET, Method::PUT, Method::DELETE])?;
    r.user.require_admin()?;
    match r.method {
        Method::PUT => {
            let (was_created, pending) = put_permission(&r.ctx, vhost, user, &r.json()?)?;
            durable(pending).await?;
            Ok(created(was_created))
        }
        Method::DELETE => match r.ctx.users.clear_permission(vhost, user)? {
            None => Err(ApiError::not_found()),
            Some(pending) => {
                durable(pending).await?;
                Ok(no_content())
            }
        },
        _ => {
            let p = r
                .ctx
                .users
                .permission(vhost, user)
                .ok_or_else(ApiError::not_found)?;
            Ok(object(r, render_permission(&p)))
        }
    }
}
