//! Command-line flags: the often-changed config keys, `--config`, and `--print-config`; and
//! the `user` subcommand, which manages users of a running broker instead of running one.
//!
//! A flag is the top configuration layer; [`Cli::overrides`] turns the flags that were given
//! into key/value pairs for [`crate::config::Config::load`]. Values are type-checked here
//! where clap can (addresses, formats, URLs), so a typo is a usage error (exit status 2).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
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
// A broker flag beside `user` would be silently ignored: clap refuses the mix instead.
#[command(
    name = "ferrymq",
    version,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Without a subcommand, ferrymq runs the broker
    #[command(subcommand)]
    pub command: Option<Command>,

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage users, tags and permissions of a running broker (through its management API)
    User(UserArgs),
    /// Exit 0 if the broker answers GET /healthz (the container's HEALTHCHECK)
    Health {
        /// The URL to ask; default: http.listen from FERRYMQ_CONFIG and FERRYMQ_* variables
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// `ferrymq user [CONNECTION] ACTION`: the connection flags may also follow the action.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The broker's HTTP listener
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "URL",
        env = "FERRYMQ_ADMIN_URL",
        default_value = "http://127.0.0.1:15672",
        value_parser = parse_admin_url
    )]
    pub url: String,

    /// An administrator to make the requests as
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "NAME",
        env = "FERRYMQ_ADMIN_USER",
        default_value = "guest"
    )]
    pub admin_user: String,

    /// The administrator's password
    #[arg(
        long,
        global = true,
        help_heading = "Connection",
        value_name = "PASSWORD",
        env = "FERRYMQ_ADMIN_PASSWORD",
        default_value = "guest",
        hide_env_values = true
    )]
    pub admin_password: String,

    #[command(subcommand)]
    pub action: UserAction,
}

/// What `ferrymq user` does, in the spirit of rabbitmqctl's user commands.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user (refused if it exists; without a password it cannot log in with one)
    Add {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Comma-separated tags, e.g. administrator,monitoring
        #[arg(long, value_name = "TAGS", value_delimiter = ',')]
        tags: Vec<String>,
    },
    /// Delete a user and its permissions
    Delete { name: String },
    /// Change a user's password (its tags stay)
    #[command(group(
        ArgGroup::new("new_password")
            .args(["password", "password_stdin"])
            .required(true)
    ))]
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Replace a user's tags (none clears them)
    Tags { name: String, tags: Vec<String> },
    /// List users and their tags
    List,
    /// Set a user's configure, write and read permissions on a vhost
    Permissions {
        name: String,
        #[arg(long, value_name = "VHOST", default_value = "/")]
        vhost: String,
        /// Regular expression of the resources the user may declare and delete
        #[arg(long, value_name = "REGEX")]
        configure: String,
        /// Regular expression of the resources the user may publish to or bind from
        #[arg(long, value_name = "REGEX")]
        write: String,
        /// Regular expression of the resources the user may consume from or bind to
        #[arg(long, value_name = "REGEX")]
        read: String,
    },
    /// Remove a user's permissions on a vhost
    ClearPermissions {
        name: String,
        #[arg(long, value_name = "VHOST", default_value = "/")]
        vhost: String,
    },
}

/// A password given on the command line or on standard input (at most one of the two).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct PasswordArgs {
    /// The password (other local users can see it in the process list)
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}

/// `--url`: plain `http://HOST:PORT[/PREFIX]`, without a trailing slash.
fn parse_admin_url(url: &str) -> Result<String, String> {
    if url.starts_with("https://") {
        return Err("https is not supported here: use the plain http:// listener".to_owned());
    }
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => Err("expected http://HOST:PORT".to_owned()),
    }
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
    fn no_subcommand_runs_the_broker() {
        let cli = Cli::try_parse_from(["ferrymq", "--print-config"]).unwrap();
        assert!(cli.command.is_none());
        assert!(cli.print_config);
    }

    #[test]
    fn health_takes_an_optional_url() {
        let cli = Cli::try_parse_from(["ferrymq", "health"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Health { url: None })));
        let cli = Cli::try_parse_from(["ferrymq", "health", "--url", "http://x/healthz"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Health { url: Some(u) }) if u == "http://x/healthz")
        );
    }

    fn user(args: &[&str]) -> Result<UserArgs, clap::Error> {
        let cli = Cli::try_parse_from(["ferrymq", "user"].iter().chain(args))?;
        match cli.command {
            Some(Command::User(user)) => Ok(user),
            other => panic!("no user subcommand parsed from {args:?}: {other:?}"),
        }
    }

    #[test]
    fn connection_flags_go_before_or_after_the_action() {
        let before = user(&["--url", "http://h:1/", "--admin-user", "a", "list"]).unwrap();
        let after = user(&["list", "--url", "http://h:1/", "--admin-password", "p"]).unwrap();
        assert_eq!(before.url, "http://h:1");
        assert_eq!(before.admin_user, "a");
        assert_eq!(after.url, "http://h:1");
        assert_eq!(after.admin_password, "p");
    }

    #[test]
    fn add_takes_a_password_and_comma_separated_tags() {
        let args = user(&[
            "add",
            "bob",
            "--password",
            "pw",
            "--tags",
            "administrator,monitoring",
        ]);
        let UserAction::Add {
            name,
            password,
            tags,
        } = args.unwrap().action
        else {
            panic!("not add");
        };
        assert_eq!(name, "bob");
        assert_eq!(password.password.as_deref(), Some("pw"));
        assert!(!password.password_stdin);
        assert_eq!(tags, ["administrator", "monitoring"]);
    }

    #[test]
    fn password_sources_are_exclusive_and_passwd_needs_one() {
        let both = user(&["add", "bob", "--password", "pw", "--password-stdin"]).unwrap_err();
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
        let none = user(&["passwd", "bob"]).unwrap_err();
        assert_eq!(none.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(user(&["passwd", "bob", "--password-stdin"]).is_ok());
        assert!(user(&["add", "bob"]).is_ok());
    }

    #[test]
    fn permissions_need_all_three_patterns() {
        let err = user(&["permissions", "bob", "--configure", ".*", "--write", ".*"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn the_url_must_be_plain_http() {
        for url in ["https://h:1", "h:1", "http://", "ftp://h"] {
            let err = user(&["--url", url, "list"]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{url}");
        }
    }

    #[test]
    fn broker_flags_do_not_mix_with_the_subcommand() {
        let err = Cli::try_parse_from(["ferrymq", "--data-dir", "/d", "user", "list"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_malformed_address_is_a_usage_error() {
        let err = Cli::try_parse_from(["ferrymq", "--amqp-listen", "localhost"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
