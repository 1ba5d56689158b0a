//! The reloadable acceptor: the rustls configuration in use, swapped whole on reload.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use ferrymq_core::connections::TlsInfo;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::settings::{ClientAuth, TlsSettings};
use crate::{Error, identity};

pub type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// A finished handshake.
pub struct Accepted {
    pub stream: TlsStream,
    pub info: TlsInfo,
}

/// Why a connection did not become a TLS session.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("not a TLS client: it began with {0:?} (a plaintext client on a TLS port?)")]
    Plaintext(String),
    #[error("the client closed the connection before the TLS handshake")]
    Closed,
    #[error("TLS handshake not finished within {0:?}")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
}

/// The first byte of a TLS record carrying a handshake (ClientHello).
const HANDSHAKE_RECORD: u8 = 0x16;

/// Certificates in use, and the files they came from.
pub struct TlsAcceptor {
    settings: TlsSettings,
    current: RwLock<tokio_rustls::TlsAcceptor>,
    /// The files' modification times and lengths at the last load.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Loads the certificates `settings` names; errors name the setting and file at fault.
    pub fn load(settings: &TlsSettings) -> Result<Arc<Self>, Error> {
        let stamps = stamps(settings);
        let config = server_config(settings)?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            current: RwLock::new(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            stamps: Mutex::new(stamps),
        }))
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Reads the files again and uses them for new connections. On error the certificates in
    /// use stay.
    pub fn reload(&self) -> Result<(), Error> {
        let stamps = stamps(&self.settings);
        let config = server_config(&self.settings)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            tokio_rustls::TlsAcceptor::from(Arc::new(config));
        *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) = stamps;
        Ok(())
    }

    /// [`reload`](Self::reload) if a file changed since the last load.
    pub fn reload_if_changed(&self) -> Option<Result<(), Error>> {
        let now = stamps(&self.settings);
        let changed = *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) != now;
        changed.then(|| self.reload())
    }

    /// Reloads on SIGHUP and whenever a file changes (checked every
    /// `reload_check_interval_ms`), logging each outcome; runs until the process ends.
    pub async fn watch(self: Arc<Self>) {
        let every = Duration::from_millis(self.settings.reload_check_interval_ms);
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| warn!("cannot watch SIGHUP for TLS reloads: {e}"))
            .ok();
        loop {
            let hup = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            let outcome = tokio::select! {
                _ = hup => Some(self.reload()),
                () = tokio::time::sleep(every), if !every.is_zero() => self.reload_if_changed(),
            };
            match outcome {
                Some(Ok(())) => {
                    info!(certfile = %self.settings.certfile.display(), "TLS certificates reloaded");
                }
                Some(Err(e)) => warn!("TLS certificates not reloaded, the previous ones stay: {e}"),
                None => {}
            }
        }
    }

    /// Runs the server side of a handshake on `tcp`, bounded by `handshake_timeout_ms`.
    pub async fn accept(&self, tcp: TcpStream) -> Result<Accepted, AcceptError> {
        let timeout = Duration::from_millis(self.settings.handshake_timeout_ms);
        let acceptor = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let handshake = async {
            let mut first = [0u8; 8];
            let n = tcp.peek(&mut first).await.map_err(AcceptError::Handshake)?;
            match first[..n].first() {
                None => return Err(AcceptError::Closed),
                Some(&HANDSHAKE_RECORD) => {}
                Some(_) => {
                    return Err(AcceptError::Plaintext(
                        String::from_utf8_lossy(&first[..n]).into_owned(),
                    ));
                }
            }
            acceptor.accept(tcp).await.map_err(AcceptError::Handshake)
        };
        let stream = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| AcceptError::Timeout(timeout))??;
        let info = describe(stream.get_ref().1);
        Ok(Accepted { stream, info })
    }
}

fn describe(session: &rustls::ServerConnection) -> TlsInfo {
    let protocol = match session.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "tlsv1.2".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_3) => "tlsv1.3".to_owned(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher = session
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let peer = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| identity::peer_certificate(leaf));
    TlsInfo {
        protocol,
        cipher,
        peer,
    }
}

fn stamps(settings: &TlsSettings) -> Vec<Option<(SystemTime, u64)>> {
    [&settings.certfile, &settings.keyfile, &settings.cacertfile]
        .iter()
        .map(|path| {
            let meta = fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    if path.as_os_str().is_empty() {
        return Err(Error::Missing { key });
    }
    fs::read(path).map_err(|source| Error::Read {
        key,
        path: path.display().to_string(),
        source,
    })
}

fn certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(key, path)?;
    let bad = |reason: String| Error::Pem {
        key,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM CERTIFICATE in it".to_owned()));
    }
    Ok(certs)
}

fn server_config(settings: &TlsSettings) -> Result<ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = settings
        .versions
        .iter()
        .map(|v| match v.as_str() {
            "1.2" => Ok(&rustls::version::TLS12),
            "1.3" => Ok(&rustls::version::TLS13),
            other => Err(Error::Version(other.to_owned())),
        })
        .collect::<Result<Vec<&'static SupportedProtocolVersion>, _>>()?;
    let chain = certificates("certfile", &settings.certfile)?;
    let key_pem = read("keyfile", &settings.keyfile)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| Error::Pem {
        key: "keyfile",
        path: settings.keyfile.display().to_string(),
        reason: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let verifier = client_verifier(settings, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(builder.with_single_cert(chain, key)?)
}

fn client_verifier(
    settings: &TlsSettings,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, Error> {
    let mut roots = RootCertStore::empty();
    for ca in certificates("cacertfile", &settings.cacertfile)? {
        roots.add(ca).map_err(|e| Error::Verifier(e.to_string()))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if settings.client_auth == ClientAuth::Optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder.build().map_err(|e| Error::Verifier(e.to_string()))
}
