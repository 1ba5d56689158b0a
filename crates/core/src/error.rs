//! The core's one error type. Frontends map each variant to their protocol's code at the edge.

use std::path::PathBuf;

/// Everything a core operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A virtual host that is not configured.
    #[error("no vhost named '{vhost}'")]
    UnknownVhost { vhost: String },
    /// The data directory could not be prepared or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A log under the data directory failed (I/O, corruption, poisoned by a failed fsync).
    #[error("{what}: {source}")]
    Storage {
        what: String,
        #[source]
        source: ferrymq_log::LogError,
    },
    /// A stored definition this build cannot read back.
    #[error("stored {kind} definition {key:?} is unreadable: {reason}")]
    CorruptDefinition {
        kind: String,
        key: String,
        reason: String,
    },
    /// A broken internal expectation (a task that died, an impossible encoding).
    #[error("internal error: {reason}")]
    Internal { reason: String },
}
