//! The address the Kafka listener advertises: what Metadata and FindCoordinator responses
//! tell clients to connect to, which may differ from the address the socket is bound to.
//!
//! `kafka.advertised` accepts `HOST:PORT`, `HOST` (the bound port is used, so it works with
//! port 0), `[V6]:PORT` or `[V6]`. When it is empty the bound address is advertised, except that
//! an unspecified address (`0.0.0.0`, `::`) is not routable: then, as Kafka does for a listener
//! without a host, the machine's host name is advertised. Nothing is looked up in DNS at
//! startup; if clients cannot resolve that name (containers, NAT), set `kafka.advertised`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// A host and port as sent to Kafka clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    /// A host name or an IP address (IPv6 without brackets, as Kafka's metadata carries it).
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Advertised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Splits a configured `kafka.advertised` into host and optional port, or says what is wrong.
pub fn parse(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or("missing `]` after an IPv6 address")?;
        v6.parse::<Ipv6Addr>()
            .map_err(|e| format!("`{v6}` is not an IPv6 address: {e}"))?;
        match after {
            "" => (v6, None),
            _ => (
                v6,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or("expected `:PORT` after `]`")?,
                ),
            ),
        }
    } else if s.parse::<Ipv6Addr>().is_ok() {
        (s, None)
    } else {
        match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    let valid_host = !host.is_empty()
        && (host.parse::<Ipv6Addr>().is_ok()
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)));
    if !valid_host {
        return Err(format!(
            "`{host}` is not a host name or IP address (expected HOST[:PORT])"
        ));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("`{p}` is not a port between 1 and 65535")),
            Ok(port) => Some(port),
        },
    };
    Ok((host.to_owned(), port))
}

/// The address to advertise given the configured value and the listener's real bound address.
pub fn resolve(configured: &str, bound: SocketAddr) -> Result<Advertised, String> {
    if !configured.is_empty() {
        let (host, port) = parse(configured)?;
        return Ok(Advertised {
            host,
            port: port.unwrap_or(bound.port()),
        });
    }
    let host = if bound.ip().is_unspecified() {
        machine_host_name().unwrap_or_else(|| loopback(bound.ip()))
    } else {
        bound.ip().to_string()
    };
    Ok(Advertised {
        host,
        port: bound.port(),
    })
}

fn machine_host_name() -> Option<String> {
    let name = gethostname::gethostname().into_string().ok()?;
    parse(&name)
        .ok()
        .filter(|(_, port)| port.is_none())
        .map(|(host, _)| host)
}

fn loopback(unspecified: IpAddr) -> String {
    match unspecified {
        IpAddr::V4(_) => "127.0.0.1".to_owned(),
        IpAddr::V6(_) => "::1".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_accepted_forms() {
        assert_eq!(
            parse("broker-1.example.com:9093"),
            Ok(("broker-1.example.com".into(), Some(9093)))
        );
        assert_eq!(parse("kafka_1"), Ok(("kafka_1".into(), None)));
        assert_eq!(
            parse("10.0.0.5:19092"),
            Ok(("10.0.0.5".into(), Some(19092)))
        );
        assert_eq!(
            parse("[2001:db8::1]:9092"),
            Ok(("2001:db8::1".into(), Some(9092)))
        );
        assert_eq!(parse("[::1]"), Ok(("::1".into(), None)));
        assert_eq!(parse("::1"), Ok(("::1".into(), None)));
    }

    #[test]
    fn rejects_malformed_values_with_a_reason() {
        for bad in [
            "",
            ":9092",
            "host:",
            "host:0",
            "host:70000",
            "host:abc",
            "a b:1",
            "[::1",
            "[x]:1",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad:?}");
        }
        assert!(parse("host:abc").unwrap_err().contains("abc"));
    }

    #[test]
    fn resolves_against_the_bound_address() {
        let bound = addr("127.0.0.1:40123");
        assert_eq!(resolve("", bound).unwrap().to_string(), "127.0.0.1:40123");
        assert_eq!(
            resolve("kafka.local", bound).unwrap().to_string(),
            "kafka.local:40123"
        );
        assert_eq!(
            resolve("kafka.local:9092", bound).unwrap().to_string(),
            "kafka.local:9092"
        );
        assert_eq!(
            resolve("", addr("[::1]:9092")).unwrap().to_string(),
            "[::1]:9092"
        );
    }

    #[test]
    fn an_unspecified_bind_advertises_a_routable_host() {
        let got = resolve("", addr("0.0.0.0:9092")).unwrap();
        assert_eq!(got.port, 9092);
        assert!(!got.host.is_empty());
        assert_ne!(got.host, "0.0.0.0");
        assert!(parse(&got.host).is_ok(), "{got}");
    }
}
