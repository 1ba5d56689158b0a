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
}
