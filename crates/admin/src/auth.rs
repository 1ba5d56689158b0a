//! HTTP basic authentication against the user store, and RabbitMQ's tag rules.
//!
//! ```text
//! no or bad credentials            401 (WWW-Authenticate: Basic)
//! a user without management tags   403 "Not management user"
//! a call the user's tags forbid    403 "Not administrator user", ...
//! ```
//! RabbitMQ 3.10 answers the last two with 401 and the same bodies; ferrymq keeps 401 for
//! "who are you" and answers "you may not" with 403, as HTTP means them.
//! ```text
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ferrymq_auth::User;

use crate::context::AdminContext;
use crate::error::ApiError;

/// The peer of the HTTP connection, put into each request by the server (loopback-only
/// users such as `guest` may only log in from loopback). Requests without it are treated as
/// local (in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// An authenticated management user.
#[derive(Debug, Clone)]
pub struct Authed {
    pub user: Arc<User>,
    ctx: Arc<AdminContext>,
}

impl Authed {
    pub fn name(&self) -> &str {
        &self.user.name
    }

    pub fn is_admin(&self) -> bool {
        self.user.tags.is_administrator()
    }

    /// Sees every vhost, connection and channel (monitoring or administrator).
    pub fn is_monitor(&self) -> bool {
        self.user.tags.is_monitor()
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("Not administrator user"))
        }
    }

    pub fn require_monitor(&self) -> Result<(), ApiError> {
        if self.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::forbidden("Not monitor user"))
        }
    }

    pub fn require_policymaker(&self) -> Result<(), ApiError> {
        if self.user.tags.is_policymaker() {
            Ok(())
        } else {
            Err(ApiError::forbidden("Not policymaker user"))
        }
    }

    /// May read objects of `vhost`: monitors see every vhost, others those they have
    /// permissions on.
    pub fn can_see(&self, vhost: &str) -> bool {
        self.is_monitor() || self.ctx.users.permission(vhost, &self.user.name).is_some()
    }

    /// May change objects of `vhost` (management users with permissions on it; monitoring
    /// alone is read-only).
    pub fn require_vhost_access(&self, vhost: &str) -> Result<(), ApiError> {
        if self.ctx.broker.vhost(vhost).is_none() {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "vhost_not_found",
            ));
        }
        if self.is_admin() || self.ctx.users.permission(vhost, &self.user.name).is_some() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "User not authorised to access virtual host",
            ))
        }
    }

    /// Reading a listing of `vhost`: 404 if it does not exist, 403 if not visible.
    pub fn require_visible(&self, vhost: &str) -> Result<(), ApiError> {
        if self.ctx.broker.vhost(vhost).is_none() {
            return Err(ApiError::not_found());
        }
        if self.can_see(vhost) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "User not authorised to access virtual host",
            ))
        }
    }
}

/// `user:password` from a basic `Authorization` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl Authed {
    /// Checks a request's credentials. `peer` is the HTTP client's address (`None`: an
    /// in-process caller, treated as loopback).
    pub fn authenticate(
        ctx: &Arc<AdminContext>,
        headers: &HeaderMap,
        peer: Option<PeerAddr>,
    ) -> Result<Self, ApiError> {
        let Some((name, password)) = credentials(headers) else {
            return Err(ApiError::unauthorized("Not_Authorized"));
        };
        let loopback = peer.is_none_or(|peer| peer.0.ip().is_loopback());
        let ip = peer.map(|p| p.0.ip());
        if ip.is_some_and(|ip| !ctx.users.limiter().allows(ip)) {
            tracing::warn!(peer = ?ip, user = %name, "management login refused: too many failed logins from this address");
            return Err(ApiError::unauthorized("Login failed"));
        }
        let user = ctx
            .users
            .authenticate(&name, &password, loopback)
            .map_err(|e| {
                if let Some(ip) = ip {
                    ctx.users.limiter().failed(ip);
                }
                tracing::warn!(peer = ?ip, user = %name, "management login refused: {e}");
                ApiError::unauthorized("Login failed")
            })?;
        if !user.tags.is_management() {
            return Err(ApiError::forbidden("Not management user"));
        }
        Ok(Self {
            user,
            ctx: Arc::clone(ctx),
        })
    }
}
