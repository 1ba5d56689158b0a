//! The broker's configuration: one serde struct per TOML section, with the built-in defaults.
//!
//! Layering (defaults < file < `FERRYMQ_*` env < flags) is generic and lives in [`layers`]: it learns every key, its type and its env name from the *serialized
//! defaults*, so a key added to a section here is at once settable from the file, the
//! environment and `--print-config` shows it. `config/ferrymq.toml` must list it too (a test
//! compares that file with these defaults).
//!
//! # Invariants
//!
//! Rules for a section type (including one a frontend crate owns later, e.g.
//! `pub amqp: ferrymq_amqp::AmqpConfig`):
//! - `Serialize + Deserialize + Default`, `#[serde(default, deny_unknown_fields)]`.
//! - No `Option` fields and no `#[serde(skip_serializing_if)]`: a key absent from the serialized
//!   defaults is unknown to the file and env layers. Use a sentinel (`""`, `0`) and document it.
//! - A listener section keeps `listen: SocketAddr` and `max_connections: usize`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ferrymq_core::{BrokerConfig, FsyncMode};
use serde::{Deserialize, Serialize};

use self::layers::{Layers, Origin, Override};
pub use self::validate::Invalid;

pub mod layers;
#[cfg(test)]
mod tests;
mod validate;

/// The whole configuration, as read from `ferrymq.toml` (one field per `[section]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    /// `[amqp]`: owned by the AMQP frontend (listener, tune values, users, limits).
    pub amqp: ferrymq_amqp::AmqpConfig,
    pub kafka: KafkaConfig,
    pub http: HttpConfig,
    pub metrics: MetricsConfig,
    /// `[tls]`: the certificates of every TLS listener (amqps, Kafka SSL/SASL_SSL, https).
    pub tls: ferrymq_tls::TlsSettings,
    /// `[resources]`: the memory watermark and disk free limit that block publishers.
    pub resources: crate::resources::ResourcesConfig,
    pub log: LogConfig,
}

/// A loaded configuration and what is worth a warning about how it was given.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// `[server]`: process-wide behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// On SIGINT/SIGTERM, how long open connections get to close before storage is flushed and
    /// the process exits anyway.
    pub shutdown_timeout_ms: u64,
    /// Virtual hosts that exist (`/` always does, and so does `kafka.vhost`).
    pub vhosts: Vec<String>,
    /// A definitions file (RabbitMQ's JSON format) imported at boot, before any listener
    /// accepts a connection; `""` for none.
    pub load_definitions: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_timeout_ms: 5_000,
            vhosts: vec!["/".to_owned()],
            load_definitions: PathBuf::new(),
        }
    }
}

/// As RabbitMQ's image takes `RABBITMQ_DEFAULT_USER` and `RABBITMQ_DEFAULT_PASS`: the one
/// user seeded into a new data directory instead of `amqp.users` (an administrator on every
/// vhost, not loopback-only).
pub const ENV_DEFAULT_USER: &str = "FERRYMQ_DEFAULT_USER";
pub const ENV_DEFAULT_PASS: &str = "FERRYMQ_DEFAULT_PASS";

impl Config {
    fn apply_default_user(&mut self, env: &[(OsString, OsString)]) -> anyhow::Result<()> {
        let var = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        match (var(ENV_DEFAULT_USER), var(ENV_DEFAULT_PASS)) {
            (None, None) => Ok(()),
            (Some(user), Some(password)) if !user.is_empty() => {
                self.amqp.users = vec![
                    ferrymq_auth::UserConfig::new(&user, &password, &["*"])
                        .with_tags(&["administrator"]),
                ];
                self.amqp.loopback_users.retain(|u| *u != user);
                Ok(())
            }
            _ => anyhow::bail!(
                "{ENV_DEFAULT_USER} and {ENV_DEFAULT_PASS} go together (and the user name must not be empty)"
            ),
        }
    }

    /// The TLS listeners configured, by the key that enables each.
    pub fn tls_listeners(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.amqp.tls_enabled {
            keys.push("amqp.tls_enabled");
        }
        if self.http.tls_enabled {
            keys.push("http.tls_enabled");
        }
        let kafka_tls = ferrymq_kafka::listeners::specs(&self.kafka)
            .is_ok_and(|specs| specs.iter().any(|s| s.security.uses_tls()));
        if kafka_tls {
            keys.push("kafka.listeners");
        }
        keys
    }

    /// What [`ferrymq_core::Broker::open`] takes: storage, the vhosts, the Kafka vhost.
    pub fn broker_config(&self) -> BrokerConfig {
        let mut config = self.storage.broker_config();
        config.vhosts.clone_from(&self.server.vhosts);
        config.kafka_vhost.clone_from(&self.kafka.vhost);
        config
    }
}

/// `[storage]`: where and how durably messages are stored.
///
/// Besides `data_dir`, these are the keys of [`ferrymq_core::StorageConfig`], with its types
/// and defaults; spelled out rather than `#[serde(flatten)]`ed so that an error names the exact
/// key. A test fails if core gains a key this section lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Created if missing; locked exclusively (`<data_dir>/LOCK`) while the broker runs.
    pub data_dir: PathBuf,
    /// When appended messages are fsynced; see [`FsyncMode`].
    pub fsync: FsyncMode,
    /// Used when `fsync = "interval"`: data reaches disk at most this long after it is appended.
    pub fsync_interval_ms: u64,
    /// The same for streams (Kafka topics, AMQP stream queues) without their own flush configs.
    pub stream_fsync: FsyncMode,
    /// Used when `stream_fsync = "interval"`.
    pub stream_fsync_interval_ms: u64,
    /// A log segment file is rolled once it would grow past this size.
    pub segment_bytes: u64,
    /// Memory for the newest messages of all classic queues (shared); the rest wait on disk
    /// only (non-durable queues' in scratch files).
    pub queue_cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        let core = ferrymq_core::StorageConfig::default();
        Self {
            data_dir: PathBuf::from("./data"),
            fsync: core.fsync,
            fsync_interval_ms: core.fsync_interval_ms,
            stream_fsync: core.stream_fsync,
            stream_fsync_interval_ms: core.stream_fsync_interval_ms,
            segment_bytes: core.segment_bytes,
            queue_cache_bytes: core.queue_cache_bytes,
        }
    }
}

impl StorageConfig {
    /// What [`ferrymq_core::Broker::open`] takes.
    pub fn broker_config(&self) -> BrokerConfig {
        let mut config = BrokerConfig::with_data_dir(&self.data_dir);
        config.storage = ferrymq_core::StorageConfig {
            fsync: self.fsync,
            fsync_interval_ms: self.fsync_interval_ms,
            stream_fsync: self.stream_fsync,
            stream_fsync_interval_ms: self.stream_fsync_interval_ms,
            segment_bytes: self.segment_bytes,
            queue_cache_bytes: self.queue_cache_bytes,
        };
        config
    }
}

/// `[kafka]`: the Kafka frontend's section, owned by the `ferrymq-kafka` crate.
pub use ferrymq_kafka::KafkaConfig;

/// `[http]`: the HTTP listener: management API, dashboard, `/metrics`, `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// A second listener serving the same over HTTPS, with the certificates of `[tls]`.
    pub tls_enabled: bool,
    pub tls_listen: SocketAddr,
    pub max_connections: usize,
    /// `/metrics` labels every queue (as `/metrics/per-object` always does) instead of
    /// summing queues per vhost.
    pub per_object_metrics: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 15672)),
            tls_enabled: false,
            tls_listen: SocketAddr::from(([0, 0, 0, 0], 15671)),
            max_connections: 256,
            per_object_metrics: false,
        }
    }
}

/// `[metrics]`: a listener serving only `/metrics`, where RabbitMQ's prometheus plugin
/// listens (`:15692`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub max_connections: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 15692)),
            max_connections: 64,
        }
    }
}

/// `[log]`: the process's own log (not message storage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A level or a tracing env-filter: `info`, `debug`, `info,ferrymq_amqp=trace`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, one event per line.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The effective configuration: defaults < `file` < `FERRYMQ_*` variables of `env` <
    /// `flags`, validated. Errors name the key and the layer that set it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
        flags: Vec<Override>,
    ) -> anyhow::Result<Loaded> {
        let env: Vec<(OsString, OsString)> = env.into_iter().collect();
        let mut layers = Layers::new(&Config::default())?;
        if let Some(path) = file {
            layers.file(path)?;
        }
        layers.env(env.iter().cloned())?;
        for Override { key, flag, value } in flags {
            layers.set(key, value, &Origin::Flag(flag))?;
        }
        let mut config: Config = layers.finish()?;
        config.apply_default_user(&env)?;
        config.validate().map_err(|Invalid { key, reason }| {
            anyhow::anyhow!(
                "invalid value for `{key}` (from {}): {reason}",
                layers.origin(key)
            )
        })?;
        Ok(Loaded {
            config,
            warnings: layers.warnings().to_vec(),
        })
    }
}
