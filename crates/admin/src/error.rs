//! API errors as RabbitMQ's management plugin returns them: a status and
//! `{"error": "...", "reason": "..."}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {error}: {reason}")]
pub struct ApiError {
    pub status: StatusCode,
    /// RabbitMQ's short error name (`not_found`, `bad_request`, ...).
    pub error: &'static str,
    pub reason: String,
    /// A reason RabbitMQ gives as a JSON term (`["not_boolean","yes"]`) instead of text.
    pub reason_json: Option<serde_json::Value>,
    /// Methods the resource allows (the `Allow` header of a 405), if any.
    pub allow: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            error,
            reason: reason.into(),
            reason_json: None,
            allow: String::new(),
        }
    }

    /// A 400 whose reason is a JSON term, as RabbitMQ words some (`["not_boolean","yes"]`).
    pub fn bad_term(term: serde_json::Value) -> Self {
        let mut e = Self::bad_request(term.to_string());
        e.reason_json = Some(term);
        e
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authorized", reason)
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "not_authorised", reason)
    }

    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self
            .reason_json
            .unwrap_or(serde_json::Value::String(self.reason));
        let body = json!({ "error": self.error, "reason": reason });
        let mut response = (self.status, axum::Json(body)).into_response();
        if !self.allow.is_empty()
            && let Ok(value) = HeaderValue::from_str(&self.allow)
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        response
    }
}

/// Core errors as HTTP: what does not exist is 404, what breaks a rule 400, what is
/// forbidden 403 (RabbitMQ answers most refusals of its AMQP layer with 400 here).
impl From<ferrymq_core::Error> for ApiError {
    fn from(e: ferrymq_core::Error) -> Self {
        use ferrymq_core::Error as E;
        match &e {
            E::NotFound { .. } | E::StreamNotFound { .. } | E::UnknownVhost { .. } => {
                Self::not_found()
            }
            // RabbitMQ's words for reserved names and the default exchange.
            E::ReservedName { .. } | E::AccessRefused { .. } => Self::forbidden("Access refused."),
            E::ResourceLocked { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
            }
            E::Storage { .. }
            | E::DataDir { .. }
            | E::Internal { .. }
            | E::PartitionLog { .. }
            | E::CorruptDefinition { .. }
            | E::CorruptQueue { .. }
            | E::NotDurable { .. } => Self::internal(e.to_string()),
            _ => Self::bad_request(e.to_string()),
        }
    }
}

impl From<ferrymq_auth::Error> for ApiError {
    fn from(e: ferrymq_auth::Error) -> Self {
        use ferrymq_auth::Error as E;
        match e {
            E::Core(core) => core.into(),
            E::NoSuchUser { .. } => Self::not_found(),
            E::Random { .. } => Self::internal(e.to_string()),
            _ => Self::bad_request(e.to_string()),
        }
    }
}
