//! Semantic checks of a deserialized [`Config`]: what the types alone cannot express.

use tracing_subscriber::filter::LevelFilter;

use ferrymq_core::FsyncMode;

use super::Config;
use crate::advertised;

/// A value that deserialized but makes no sense; `key` is the dotted path.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    pub key: &'static str,
    pub reason: String,
}

impl Config {
    /// Checks what the types alone cannot; the first offending key is reported.
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |key, reason: &str| {
            Err(Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.server.vhosts.iter().any(String::is_empty) {
            return invalid("server.vhosts", "a vhost name must not be empty");
        }
        if self.kafka.vhost.is_empty() {
            return invalid("kafka.vhost", "must not be empty");
        }
        if self.storage.data_dir.as_os_str().is_empty() {
            return invalid("storage.data_dir", "must not be empty");
        }
        if self.storage.fsync == FsyncMode::Interval && self.storage.fsync_interval_ms == 0 {
            return invalid(
                "storage.fsync_interval_ms",
                "must be at least 1 with fsync = \"interval\"",
            );
        }
        if self.storage.segment_bytes < 4096 {
            return invalid("storage.segment_bytes", "must be at least 4096");
        }
        for (key, max) in [
            ("amqp.max_connections", self.amqp.max_connections),
            ("kafka.max_connections", self.kafka.max_connections),
            ("http.max_connections", self.http.max_connections),
            ("metrics.max_connections", self.metrics.max_connections),
        ] {
            // tokio's semaphore caps permits at usize::MAX >> 3.
            if max == 0 || max > usize::MAX >> 3 {
                return invalid(key, "must be between 1 and 2^60");
            }
        }
        // AMQP 0-9-1 section 4.2.3: frame-min-size is 4096 octets.
        if self.amqp.frame_max < 4096 {
            return invalid(
                "amqp.frame_max",
                "must be at least 4096 (the AMQP minimum frame size)",
            );
        }
        if self.amqp.channel_max == 0 {
            return invalid("amqp.channel_max", "must be at least 1");
        }
        if self.kafka.max_request_bytes < 1024 {
            return invalid("kafka.max_request_bytes", "must be at least 1024");
        }
        if self.kafka.num_partitions == 0 || self.kafka.num_partitions > 10_000 {
            return invalid("kafka.num_partitions", "must be between 1 and 10000");
        }
        if self.kafka.group_min_session_timeout_ms > self.kafka.group_max_session_timeout_ms {
            return invalid(
                "kafka.group_min_session_timeout_ms",
                "must not exceed kafka.group_max_session_timeout_ms",
            );
        }
        if !self.kafka.advertised.is_empty()
            && let Err(reason) = advertised::parse(&self.kafka.advertised)
        {
            return Err(Invalid {
                key: "kafka.advertised",
                reason,
            });
        }
        if let Err(reason) = ferrymq_kafka::listeners::specs(&self.kafka) {
            return Err(Invalid {
                key: "kafka.listeners",
                reason,
            });
        }
        if let Some(listener) = self.tls_listeners().first() {
            for (key, path) in [
                ("tls.certfile", &self.tls.certfile),
                ("tls.keyfile", &self.tls.keyfile),
            ] {
                if path.as_os_str().is_empty() {
                    return Err(Invalid {
                        key,
                        reason: format!(
                            "{listener} asks for a TLS listener, which needs tls.certfile and tls.keyfile"
                        ),
                    });
                }
            }
        }
        if self.tls.client_auth != ferrymq_tls::ClientAuth::None
            && self.tls.cacertfile.as_os_str().is_empty()
        {
            return invalid(
                "tls.cacertfile",
                "client certificates (tls.client_auth) are verified against tls.cacertfile, which is not set",
            );
        }
        if self.tls.versions.is_empty()
            || self.tls.versions.iter().any(|v| v != "1.2" && v != "1.3")
        {
            return invalid(
                "tls.versions",
                "expected one or both of \"1.2\" and \"1.3\"",
            );
        }
        if let Err(reason) =
            crate::resources::Watermark::parse(&self.resources.memory_high_watermark)
        {
            return Err(Invalid {
                key: "resources.memory_high_watermark",
                reason,
            });
        }
        if let Err(reason) = crate::resources::parse_size(&self.resources.disk_free_limit) {
            return Err(Invalid {
                key: "resources.disk_free_limit",
                reason,
            });
        }
        let level = self.log.level.trim();
        // A lone word is a target to the env-filter syntax: `verbose` would silently log nothing.
        if !level.contains(['=', ',', '[']) && level.parse::<LevelFilter>().is_err() {
            return invalid(
                "log.level",
                "expected trace, debug, info, warn, error, off or an env-filter",
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(level) {
            return Err(Invalid {
                key: "log.level",
                reason: e.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_documented_values() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.amqp.listen.to_string(), "0.0.0.0:5672");
        assert_eq!(c.kafka.listen.to_string(), "0.0.0.0:9092");
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:15672");
        assert_eq!(c.storage.data_dir, PathBuf::from("./data"));
        assert_eq!(c.kafka.max_request_bytes, 104_857_600);
    }

    #[test]
    fn validate_names_the_offending_key() {
        let mut c = Config::default();
        c.amqp.frame_max = 100;
        assert_eq!(c.validate().map_err(|e| e.key), Err("amqp.frame_max"));

        let mut c = Config::default();
        c.kafka.advertised = "host:notaport".to_owned();
        assert_eq!(c.validate().map_err(|e| e.key), Err("kafka.advertised"));

        let mut c = Config::default();
        c.log.level = "info,ferrymq=loud".to_owned();
        assert_eq!(c.validate().map_err(|e| e.key), Err("log.level"));
        c.log.level = "verbose".to_owned();
        assert_eq!(c.validate().map_err(|e| e.key), Err("log.level"));
        c.log.level = "WARN".to_owned();
        assert_eq!(c.validate(), Ok(()));
        c.log.level = "info,ferrymq=debug".to_owned();
        assert_eq!(c.validate(), Ok(()));

        let mut c = Config::default();
        c.http.max_connections = 0;
        assert_eq!(c.validate().map_err(|e| e.key), Err("http.max_connections"));

        let mut c = Config::default();
        c.storage.fsync = FsyncMode::Interval;
        c.storage.fsync_interval_ms = 0;
        assert_eq!(
            c.validate().map_err(|e| e.key),
            Err("storage.fsync_interval_ms")
        );
    }
}
