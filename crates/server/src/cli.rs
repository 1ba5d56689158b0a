//! Command-line flags: the often-changed config keys, `--config`, and `--print-config`.
//!
//! A flag is the top configuration layer; [`Cli::overrides`] turns the flags that were given
//! into key/value pairs for [`crate::config::Config::load`]. Values are type-checked here
//! where clap can (addresses, formats), so a typo is a usage error (exit status 2).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Parser, ValueEnum};
use toml::Value;

use crate::config::LogFormat;
use crate::config::layers::{ENV_CONFIG, Override};

const AFTER_HELP: &str = "\
Configuration layers, highest first: flags, FERRYMQ_<SECTION>_<KEY> environment variables
(e.g. FERRYMQ_AMQP_LISTEN, FERRYMQ_STORAGE_DATA_DIR), the --config file, built-in defaults.
`ferrymq --print-config` shows the result; config/ferrymq.toml documents every key.

Logs, including the `ferrymq ready amqp=ADDR kafka=ADDR http=ADDR` line, go to stderr.";

/// ferrymq: one broker for stock RabbitMQ (AMQP 0-9-1) and Kafka clients.
#[derive(Debug, Parser)]
#[command(name = "ferrymq", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// TOML config file (no file is read unless given)
    #[arg(short, long, value_name = "FILE", env = ENV_CONFIG)]
    pub config: Option<PathBuf>,

    /// Data directory [storage.data_dir]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// AMQP 0-9-1 listen address, IP:PORT [amqp.listen]
    #[arg(long, value_name = "ADDR")]
    pub amqp_listen: Option<SocketAddr>,

    /// Kafka listen address, IP:PORT [kafka.listen]
    #[arg(long, value_name = "ADDR")]
    pub kafka_listen: Option<SocketAddr>,

    /// Address Kafka clients are told to connect to, HOST:PORT or HOST [kafka.advertised]
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka_advertised: Option<String>,

    /// HTTP admin listen address, IP:PORT [http.listen]
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,

    /// Log level or env-filter, e.g. `debug` or `info,ferrymq_amqp=trace` [log.level]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log line format [log.format]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Print the effective configuration as TOML and exit
    #[arg(long)]
    pub print_config: bool,
}

impl Cli {
    /// The given flags as config overrides, in a fixed order.
    pub fn overrides(&self) -> anyhow::Result<Vec<Override>> {
        let mut out = Vec::new();
        let mut push = |key, flag, value: Option<Value>| {
            if let Some(value) = value {
                out.push(Override { key, flag, value });
            }
        };
        let addr = |a: &Option<SocketAddr>| a.map(|a| Value::String(a.to_string()));
        let data_dir = match &self.data_dir {
            Some(dir) => Some(Value::String(
                dir.to_str()
                    .ok_or_else(|| anyhow!("--data-dir {} is not valid UTF-8", dir.display()))?
                    .to_owned(),
            )),
            None => None,
        };
        push("storage.data_dir", "--data-dir", data_dir);
        push("amqp.listen", "--amqp-listen", addr(&self.amqp_listen));
        push("kafka.listen", "--kafka-listen", addr(&self.kafka_listen));
        push(
            "kafka.advertised",
            "--kafka-advertised",
            self.kafka_advertised.clone().map(Value::String),
        );
        push("http.listen", "--http-listen", addr(&self.http_listen));
        push(
            "log.level",
            "--log-level",
            self.log_level.clone().map(Value::String),
        );
        let format = self
            .log_format
            .and_then(|f| f.to_possible_value())
            .map(|v| Value::String(v.get_name().to_owned()));
        push("log.format", "--log-format", format);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_overrides_an_existing_key() {
        let cli = Cli::try_parse_from([
            "ferrymq",
            "--data-dir",
            "/tmp/d",
            "--amqp-listen",
            "127.0.0.1:1",
            "--kafka-listen",
            "127.0.0.1:2",
            "--kafka-advertised",
            "k:3",
            "--http-listen",
            "[::1]:4",
            "--log-level",
            "debug",
            "--log-format",
            "json",
        ])
        .unwrap();
        let overrides = cli.overrides().unwrap();
        assert_eq!(overrides.len(), 7);
        let config = crate::config::Config::load(None, [], overrides)
            .unwrap()
            .config;
        assert_eq!(config.storage.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(config.amqp.listen.to_string(), "127.0.0.1:1");
        assert_eq!(config.kafka.listen.to_string(), "127.0.0.1:2");
        assert_eq!(config.kafka.advertised, "k:3");
        assert_eq!(config.http.listen.to_string(), "[::1]:4");
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn a_malformed_address_is_a_usage_error() {
        let err = Cli::try_parse_from(["ferrymq", "--amqp-listen", "localhost"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
