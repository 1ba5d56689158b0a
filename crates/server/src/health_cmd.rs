//! `ferrymq health`: exit 0 if the broker on this machine answers `GET /healthz` with `ok`,
//! 1 otherwise. It is the container's HEALTHCHECK (the image has no shell or curl).
//!
//! The URL is `--url`, or else derived from the configuration the broker itself reads (the
//! `FERRYMQ_CONFIG` file and `FERRYMQ_*` variables): `http.listen`'s port on 127.0.0.1 when
//! it binds every address, on its own address otherwise.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::config::layers::ENV_CONFIG;

/// A broker that does not answer within this is unhealthy.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the check; `url` overrides the configured listener.
pub fn run(url: Option<&str>) -> ExitCode {
    let url = match url {
        Some(url) => url.to_owned(),
        None => match configured_url() {
            Ok(url) => url,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "ferrymq health: {e:#}");
                return ExitCode::FAILURE;
            }
        },
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    match agent.get(&url).call() {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string().unwrap_or_default();
            if status == 200 && body.trim() == "ok" {
                ExitCode::SUCCESS
            } else {
                let _ = writeln!(
                    std::io::stderr(),
                    "ferrymq health: {url} answered {status}: {}",
                    body.trim()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ferrymq health: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn configured_url() -> anyhow::Result<String> {
    let file = std::env::var_os(ENV_CONFIG).map(std::path::PathBuf::from);
    let loaded = Config::load(file.as_deref(), std::env::vars_os(), Vec::new())?;
    let listen = loaded.config.http.listen;
    let host = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!(
        "http://{}/healthz",
        std::net::SocketAddr::new(host, listen.port())
    ))
}
