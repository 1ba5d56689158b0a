//! Kafka's listener model: named listeners, each with a security protocol and the address
//! it advertises, as Apache Kafka's `listeners`, `advertised.listeners` and
//! `listener.security.protocol.map` configure them.
//!
//! ```text
//! listeners                        ["PLAINTEXT://0.0.0.0:9092", "DOCKER://0.0.0.0:29092"]
//! advertised_listeners             ["PLAINTEXT://localhost:9092", "DOCKER://ferrymq:29092"]
//! listener_security_protocol_map   ["DOCKER:PLAINTEXT"]   (a name that is a protocol maps
//!                                                          to itself)
//! ```
//! A client is told the advertised address of the listener it connected to (Metadata,
//! FindCoordinator, DescribeCluster), so one broker serves clients on the host and in other
//! containers. With `listeners` empty, one `PLAINTEXT` listener binds `kafka.listen` and
//! advertises `kafka.advertised`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::KafkaConfig;

/// How a listener's connections are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "PLAINTEXT" => Self::Plaintext,
            "SSL" => Self::Ssl,
            "SASL_PLAINTEXT" => Self::SaslPlaintext,
            "SASL_SSL" => Self::SaslSsl,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Clients must authenticate with SASL before anything but ApiVersions.
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    /// The socket speaks TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A listener as configured: what to bind, and what to advertise if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    pub name: String,
    pub security: SecurityProtocol,
    pub bind: SocketAddr,
    /// `host[:port]` from `advertised_listeners` (or `kafka.advertised`); empty: derived
    /// from the bound address.
    pub advertised: String,
}

/// A bound listener, as connections see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListener {
    pub name: String,
    pub security: SecurityProtocol,
    pub advertised_host: String,
    pub advertised_port: i32,
}

/// `NAME://host:port` -> (NAME, host, port). An empty host binds every address.
fn split(entry: &str) -> Result<(String, String, u16), String> {
    let (name, rest) = entry
        .split_once("://")
        .ok_or_else(|| format!("`{entry}`: expected NAME://HOST:PORT"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("`{entry}`: `{name}` is not a listener name"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
        None => return Err(format!("`{entry}`: no port")),
    };
    let port = port
        .parse::<u16>()
        .map_err(|e| format!("`{entry}`: bad port `{port}`: {e}"))?;
    Ok((name.to_owned(), host.to_owned(), port))
}

/// The listeners `config` describes, or what is wrong with it.
pub fn specs(config: &KafkaConfig) -> Result<Vec<ListenerSpec>, String> {
    if config.listeners.is_empty() {
        return Ok(vec![ListenerSpec {
            name: "PLAINTEXT".to_owned(),
            security: SecurityProtocol::Plaintext,
            bind: config.listen,
            advertised: config.advertised.clone(),
        }]);
    }
    let mut map = Vec::new();
    for entry in &config.listener_security_protocol_map {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| format!("`{entry}`: expected NAME:PROTOCOL"))?;
        let protocol = SecurityProtocol::parse(protocol)
            .ok_or_else(|| format!("`{entry}`: unknown security protocol `{protocol}`"))?;
        map.push((name.to_owned(), protocol));
    }
    let mut advertised = Vec::new();
    for entry in &config.advertised_listeners {
        let (name, host, port) = split(entry)?;
        if host.is_empty() {
            return Err(format!("`{entry}`: an advertised listener needs a host"));
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        advertised.push((name, format!("{host}:{port}")));
    }
    let mut out: Vec<ListenerSpec> = Vec::new();
    for entry in &config.listeners {
        let (name, host, port) = split(entry)?;
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener `{name}` is listed twice"));
        }
        let security = map
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .or_else(|| SecurityProtocol::parse(&name))
            .ok_or_else(|| {
                format!(
                    "listener `{name}` has no security protocol (listener_security_protocol_map)"
                )
            })?;
        let ip = if host.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            host.parse::<IpAddr>()
                .map_err(|e| format!("`{entry}`: listeners bind IP addresses: {e}"))?
        };
        out.push(ListenerSpec {
            advertised: advertised
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| a.clone())
                .unwrap_or_default(),
            name,
            security,
            bind: SocketAddr::new(ip, port),
        });
    }
    for (name, _) in &advertised {
        if !out.iter().any(|l| l.name == *name) {
            return Err(format!("advertised listener `{name}` is not in listeners"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listeners: &[&str], advertised: &[&str], map: &[&str]) -> KafkaConfig {
        KafkaConfig {
            listeners: listeners.iter().map(|s| (*s).to_owned()).collect(),
            advertised_listeners: advertised.iter().map(|s| (*s).to_owned()).collect(),
            listener_security_protocol_map: map.iter().map(|s| (*s).to_owned()).collect(),
            ..KafkaConfig::default()
        }
    }

    #[test]
    fn named_listeners_map_to_protocols_and_advertised_addresses() {
        let specs = specs(&config(
            &[
                "PLAINTEXT://0.0.0.0:9092",
                "DOCKER://:29092",
                "SASL_SSL://127.0.0.1:9094",
            ],
            &["PLAINTEXT://localhost:9092", "DOCKER://ferrymq:29092"],
            &["DOCKER:PLAINTEXT"],
        ))
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[1].name, "DOCKER");
        assert_eq!(specs[1].security, SecurityProtocol::Plaintext);
        assert_eq!(specs[1].bind.to_string(), "0.0.0.0:29092");
        assert_eq!(specs[1].advertised, "ferrymq:29092");
        assert_eq!(specs[2].security, SecurityProtocol::SaslSsl);
        assert!(specs[2].security.uses_sasl() && specs[2].security.uses_tls());
        assert_eq!(specs[2].advertised, "");
    }

    #[test]
    fn without_listeners_kafka_listen_is_one_plaintext_listener() {
        let specs = specs(&KafkaConfig::default()).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].security, SecurityProtocol::Plaintext);
        assert_eq!(specs[0].bind.port(), 9092);
    }

    #[test]
    fn bad_listener_configs_say_what_is_wrong() {
        for (l, a, m, needle) in [
            (
                &["INTERNAL://:9092"][..],
                &[][..],
                &[][..],
                "no security protocol",
            ),
            (&["PLAINTEXT:9092"], &[], &[], "NAME://"),
            (&["PLAINTEXT://:x"], &[], &[], "bad port"),
            (&["PLAINTEXT://:1", "PLAINTEXT://:2"], &[], &[], "twice"),
            (
                &["PLAINTEXT://:1"],
                &["OTHER://h:1"],
                &[],
                "not in listeners",
            ),
            (&["X://:1"], &[], &["X:TLS"], "unknown security protocol"),
            (&["PLAINTEXT://host.name:1"], &[], &[], "IP addresses"),
        ] {
            let err = specs(&config(l, a, m)).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }
}
