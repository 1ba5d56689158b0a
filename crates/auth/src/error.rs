//! What can go wrong with users and permissions.

/// An auth error; frontends map it to their own codes (AMQP 403, HTTP 401/400, ...).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown user or wrong password (never says which).
    #[error("login refused for user '{user}'")]
    LoginRefused { user: String },
    /// A loopback-only user (guest by default) connecting from elsewhere.
    #[error("user '{user}' can only connect via localhost")]
    LoopbackOnly { user: String },
    /// The client's address failed too many logins lately (see [`crate::limiter`]).
    #[error("too many failed logins from this address; try again later")]
    TooManyFailures,
    #[error("no user named '{user}'")]
    NoSuchUser { user: String },
    #[error("unknown password hashing algorithm '{name}'")]
    UnknownHashingAlgorithm { name: String },
    #[error("invalid password hash: {reason}")]
    InvalidPasswordHash { reason: String },
    #[error("invalid {which} pattern '{pattern}': {reason}")]
    InvalidPattern {
        which: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("user name must not be empty")]
    EmptyName,
    #[error("no random bytes for a password salt: {reason}")]
    Random { reason: String },
    /// The definitions journal failed.
    #[error(transparent)]
    Core(#[from] ferrymq_core::Error),
}
