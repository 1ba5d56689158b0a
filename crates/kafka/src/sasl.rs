//! SASL on Kafka listeners: SaslHandshake (v1) then SaslAuthenticate, with PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512 against the broker's user store, and re-authentication
//! (KIP-368).
//!
//! ```text
//! SASL listener, not authenticated:  ApiVersions, SaslHandshake, SaslAuthenticate only;
//!                                    anything else closes the connection (as Kafka)
//! SaslHandshake(mechanism)           UNSUPPORTED_SASL_MECHANISM with the enabled list, or ok
//! SaslAuthenticate PLAIN             "authzid \0 user \0 password" -> done
//! SaslAuthenticate SCRAM             client-first -> server-first; client-final -> server-final
//! failure                            SASL_AUTHENTICATION_FAILED, then the connection closes
//! session_lifetime_ms                connections.max.reauth.ms; past it, the next request
//!                                    other than a new handshake closes the connection
//! ```
//! Re-authentication must keep the principal (KIP-368); another user fails it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferrymq_auth::scram::{ClientFirst, Mechanism, ServerFirst};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use tracing::{info, warn};

use crate::Ctx;
use crate::api::s;
use crate::error::code;
use crate::listeners::KafkaListener;

/// A mechanism a client chose in SaslHandshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(Mechanism),
}

impl SaslMechanism {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            other => Mechanism::from_name(other).map(Self::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Scram(m) => m.name(),
        }
    }
}

/// The SASL state of one connection.
#[derive(Debug, Default)]
pub struct SaslSession {
    mechanism: Option<SaslMechanism>,
    scram: Option<ServerFirst>,
    /// The authenticated user (Kafka's principal is `User:<name>`).
    pub principal: Option<String>,
    /// When the session ends without a re-authentication.
    pub expires_at: Option<Instant>,
    /// The mechanism the principal authenticated with (for connection listings).
    pub authenticated_with: Option<&'static str>,
    /// After a SaslHandshake v0, the client sends bare SASL tokens (a size and the bytes, no
    /// request header) until the exchange ends; librdkafka before 1.x and Java clients
    /// before 1.0 do this.
    pub raw_tokens: bool,
}

/// What one SaslAuthenticate did.
pub struct Authenticated {
    pub response: SaslAuthenticateResponse,
    /// The exchange failed: the response is sent, then the connection is closed.
    pub close: bool,
}

impl SaslSession {
    /// Whether a request of `api` may be served now on `listener`.
    pub fn allows(&self, listener: &KafkaListener, api: ApiKey, now: Instant) -> bool {
        if matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        ) {
            return true;
        }
        if !listener.security.uses_sasl() {
            return true;
        }
        self.principal.is_some() && self.expires_at.is_none_or(|at| now < at)
    }

    pub fn handshake(
        &mut self,
        ctx: &Ctx,
        listener: &KafkaListener,
        request: &SaslHandshakeRequest,
        version: i16,
    ) -> SaslHandshakeResponse {
        let enabled: Vec<_> = ctx
            .config
            .sasl_enabled_mechanisms
            .iter()
            .map(|m| s(m.clone()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        if !listener.security.uses_sasl() {
            return response.with_error_code(code::ILLEGAL_SASL_STATE);
        }
        let requested = request.mechanism.as_str();
        let chosen = ctx
            .config
            .sasl_enabled_mechanisms
            .iter()
            .any(|m| m == requested)
            .then(|| SaslMechanism::parse(requested))
            .flatten();
        match chosen {
            Some(m) => {
                self.mechanism = Some(m);
                self.scram = None;
                self.raw_tokens = version == 0;
                response
            }
            None => response.with_error_code(code::UNSUPPORTED_SASL_MECHANISM),
        }
    }

    /// One SaslAuthenticate; failures count against the client's address (see
    /// `ferrymq_auth::limiter`), and an address over the limit is refused unchecked.
    pub fn authenticate(
        &mut self,
        ctx: &Ctx,
        peer: SocketAddr,
        request: &SaslAuthenticateRequest,
    ) -> Authenticated {
        let limiter = ctx.users.limiter();
        if !limiter.allows(peer.ip()) {
            warn!(%peer, "Kafka SASL authentication failed: too many failed logins from this address");
            return failure(
                code::SASL_AUTHENTICATION_FAILED,
                "Authentication failed: too many failed attempts from this address",
            );
        }
        let outcome = self.exchange(ctx, peer, request);
        if outcome.close {
            limiter.failed(peer.ip());
        }
        outcome
    }

    fn exchange(
        &mut self,
        ctx: &Ctx,
        peer: SocketAddr,
        request: &SaslAuthenticateRequest,
    ) -> Authenticated {
        let Some(mechanism) = self.mechanism else {
            return failure(
                code::ILLEGAL_SASL_STATE,
                "SaslAuthenticate before a SaslHandshake",
            );
        };
        let bytes = &request.auth_bytes;
        let result = match mechanism {
            SaslMechanism::Plain => self
                .plain(ctx, peer, bytes)
                .map(|user| (user, Bytes::new())),
            SaslMechanism::Scram(m) => match self.scram.take() {
                None => return self.scram_first(ctx, peer, m, bytes),
                Some(server) => server
                    .finish(bytes)
                    .map(|last| (server.user().to_owned(), Bytes::from(last)))
                    .map_err(|e| e.to_string()),
            },
        };
        match result {
            Ok((user, last)) => self.succeed(ctx, peer, mechanism, &user, last),
            Err(reason) => {
                warn!(%peer, mechanism = mechanism.name(), %reason, "Kafka SASL authentication failed");
                failure(
                    code::SASL_AUTHENTICATION_FAILED,
                    &format!(
                        "Authentication failed during authentication due to invalid credentials \
                         with SASL mechanism {}",
                        mechanism.name()
                    ),
                )
            }
        }
    }

    fn plain(&self, ctx: &Ctx, peer: SocketAddr, bytes: &[u8]) -> Result<String, String> {
        let mut parts = bytes.split(|b| *b == 0);
        let (Some(_authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed PLAIN response".to_owned());
        };
        let user = std::str::from_utf8(user).map_err(|_| "user name is not UTF-8")?;
        let password = std::str::from_utf8(password).map_err(|_| "password is not UTF-8")?;
        ctx.users
            .authenticate(user, password, peer.ip().is_loopback())
            .map(|u| u.name.clone())
            .map_err(|e| e.to_string())
    }

    fn scram_first(
        &mut self,
        ctx: &Ctx,
        peer: SocketAddr,
        mechanism: Mechanism,
        bytes: &[u8],
    ) -> Authenticated {
        let first = match ClientFirst::parse(bytes) {
            Ok(first) => first,
            Err(e) => return failure(code::SASL_AUTHENTICATION_FAILED, &e.to_string()),
        };
        if !peer.ip().is_loopback() && ctx.users.is_loopback_only(&first.user) {
            warn!(%peer, user = %first.user, "Kafka SASL authentication failed: a loopback-only user from elsewhere");
            return failure(
                code::SASL_AUTHENTICATION_FAILED,
                &format!("user '{}' can only connect via localhost", first.user),
            );
        }
        let Some(credential) = ctx.users.scram_credential(&first.user, mechanism) else {
            return failure(
                code::SASL_AUTHENTICATION_FAILED,
                &format!(
                    "Authentication failed during authentication due to invalid credentials \
                     with SASL mechanism {}",
                    mechanism.name()
                ),
            );
        };
        let Ok(nonce) = ServerFirst::random_nonce() else {
            return failure(code::SASL_AUTHENTICATION_FAILED, "no random nonce");
        };
        let server = ServerFirst::new(mechanism, credential, first, &nonce);
        let response = SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::copy_from_slice(server.message()));
        self.scram = Some(server);
        Authenticated {
            response,
            close: false,
        }
    }

    fn succeed(
        &mut self,
        ctx: &Ctx,
        peer: SocketAddr,
        mechanism: SaslMechanism,
        user: &str,
        last: Bytes,
    ) -> Authenticated {
        if let Some(previous) = &self.principal
            && previous != user
        {
            return failure(
                code::SASL_AUTHENTICATION_FAILED,
                "re-authentication must keep the principal",
            );
        }
        let lifetime = ctx.config.connections_max_reauth_ms;
        self.expires_at = (lifetime > 0).then(|| Instant::now() + Duration::from_millis(lifetime));
        if self.principal.is_none() {
            info!(%peer, user, mechanism = mechanism.name(), "Kafka client authenticated");
        } else {
            info!(%peer, user, mechanism = mechanism.name(), "Kafka client re-authenticated");
        }
        self.principal = Some(user.to_owned());
        self.authenticated_with = Some(mechanism.name());
        self.mechanism = None;
        Authenticated {
            response: SaslAuthenticateResponse::default()
                .with_auth_bytes(last)
                .with_session_lifetime_ms(i64::try_from(lifetime).unwrap_or(i64::MAX)),
            close: false,
        }
    }
}

impl SaslSession {
    /// One bare token after a SaslHandshake v0: the reply token, framed, or None to close
    /// the connection (a failure has no reply at v0).
    pub fn raw_token(&mut self, ctx: &Ctx, peer: SocketAddr, token: Bytes) -> Option<Bytes> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(token);
        let outcome = self.authenticate(ctx, peer, &request);
        if outcome.close || outcome.response.error_code != code::NONE {
            return None;
        }
        if self.mechanism.is_none() {
            self.raw_tokens = false;
        }
        let reply = outcome.response.auth_bytes;
        let mut framed = bytes::BytesMut::with_capacity(4 + reply.len());
        framed.extend_from_slice(&u32::try_from(reply.len()).ok()?.to_be_bytes());
        framed.extend_from_slice(&reply);
        Some(framed.freeze())
    }
}

fn failure(error: i16, message: &str) -> Authenticated {
    Authenticated {
        response: SaslAuthenticateResponse::default()
            .with_error_code(error)
            .with_error_message(Some(s(message))),
        close: true,
    }
}
