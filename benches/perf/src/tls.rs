//! TLS on the client side: which CA certificates to trust, for `amqps://` URIs (lapin over
//! rustls) and Kafka's `SSL` security protocol (librdkafka over OpenSSL).
//!
//! A benchmark broker runs with a throwaway certificate, so the one setting is `--ca-file`:
//! a PEM file with the CA (or the self-signed certificate) the broker's chain ends in. The
//! broker's name is checked against its certificate by both clients, so the URI or bootstrap
//! address must name a host or IP address the certificate lists.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

/// The CA option both protocols share.
#[derive(Args, Serialize, Clone, Debug, Default)]
pub struct TlsArgs {
    /// PEM file of CA certificates to trust (amqps:// URIs: besides the webpki roots; Kafka
    /// `--security-protocol ssl`: instead of the system store).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

/// Kafka's `security.protocol`, the two the benchmark uses (no SASL).
#[derive(ValueEnum, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
}

impl SecurityProtocol {
    /// The librdkafka property value.
    pub fn as_config(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
        }
    }
}

/// The certificates in `path`, checked to be PEM so a wrong file fails before connecting.
pub fn read_ca(path: &Path) -> anyhow::Result<String> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading --ca-file {}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        bail!("--ca-file {}: no PEM certificate in it", path.display());
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        let err = read_ca(&path).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = read_ca(&dir.path().join("missing.pem")).unwrap_err();
        assert!(err.to_string().contains("reading --ca-file"), "{err}");
    }

    #[test]
    fn security_protocols_are_librdkafka_values() {
        assert_eq!(SecurityProtocol::Plaintext.as_config(), "plaintext");
        assert_eq!(SecurityProtocol::Ssl.as_config(), "ssl");
    }
}
