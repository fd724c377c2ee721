//! Server-side TLS of receivers: `tls: { cert_file, key_file,
//! client_ca_file, reload_interval }`. With `client_ca_file` every client
//! must present a certificate signed by that CA (mutual TLS). All three
//! files are re-read when they change (checked at most every
//! `reload_interval`, on handshakes), so a renewed certificate or a
//! rotated client CA takes effect without a restart; an unusable new file
//! is logged and the old one kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Require client certificates signed by this CA (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default = "default_reload", with = "crate::config::duration")]
    pub reload_interval: Duration,
    /// The oldest TLS version a client may use (`"1.2"` or `"1.3"`).
    #[serde(default)]
    pub min_version: super::MinVersion,
}

fn default_reload() -> Duration {
    Duration::from_secs(10)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain = super::read_certificates(cert)?;
    let key_der = super::read_key(key)?;
    CertifiedKey::from_der(chain, key_der, &rustls::crypto::ring::default_provider())
        .map(Arc::new)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))
}

struct Current {
    key: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    interval: Duration,
    current: Mutex<Current>,
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reloading({})", self.cert.display())
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.checked.elapsed() >= self.interval {
            current.checked = Instant::now();
            let stamps = (modified(&self.cert), modified(&self.key));
            if stamps != current.stamps {
                match load(&self.cert, &self.key) {
                    Ok(key) => {
                        current.key = key;
                        current.stamps = stamps;
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                    // Mid-rotation the pair may not match yet: try again
                    // at the next interval.
                    Err(e) => {
                        tracing::warn!(error = %e, "new TLS certificate not usable yet; keeping the current one")
                    }
                }
            }
        }
        Some(current.key.clone())
    }
}

impl ServerTlsConfig {
    /// Loads the files as a start would, without serving: for `validate`.
    pub fn check(&self) -> Result<(), String> {
        self.acceptor(&[b"h2"]).map(|_| ())
    }

    /// A TLS acceptor offering `alpn` protocols (`h2` for gRPC).
    pub fn acceptor(&self, alpn: &[&[u8]]) -> Result<Arc<ReloadingAcceptor>, String> {
        super::install_provider();
        let resolver = Arc::new(Reloading {
            cert: self.cert_file.clone(),
            key: self.key_file.clone(),
            interval: self.reload_interval,
            current: Mutex::new(Current {
                key: load(&self.cert_file, &self.key_file)?,
                stamps: (modified(&self.cert_file), modified(&self.key_file)),
                checked: Instant::now(),
            }),
        });
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = build(
            self.client_ca_file.as_deref(),
            &alpn,
            &resolver,
            self.min_version,
        )?;
        Ok(Arc::new(ReloadingAcceptor {
            client_ca_file: self.client_ca_file.clone(),
            min_version: self.min_version,
            interval: self.reload_interval,
            alpn,
            resolver,
            state: Mutex::new(AcceptorState {
                acceptor,
                ca_stamp: self.client_ca_file.as_deref().and_then(modified),
                checked: Instant::now(),
            }),
        }))
    }
}

/// A TLS acceptor that follows its files: the certificate and key through
/// the resolver, the client CA by building a new server config when the
/// CA file changes (a verifier cannot be swapped inside a config).
pub struct ReloadingAcceptor {
    client_ca_file: Option<PathBuf>,
    min_version: super::MinVersion,
    interval: Duration,
    alpn: Vec<Vec<u8>>,
    resolver: Arc<Reloading>,
    state: Mutex<AcceptorState>,
}

struct AcceptorState {
    acceptor: tokio_rustls::TlsAcceptor,
    ca_stamp: Option<SystemTime>,
    checked: Instant,
}

impl ReloadingAcceptor {
    /// The acceptor for the next connection.
    pub fn current(&self) -> tokio_rustls::TlsAcceptor {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ca) = &self.client_ca_file
            && state.checked.elapsed() >= self.interval
        {
            state.checked = Instant::now();
            let stamp = modified(ca);
            if stamp != state.ca_stamp {
                match build(Some(ca), &self.alpn, &self.resolver, self.min_version) {
                    Ok(acceptor) => {
                        state.acceptor = acceptor;
                        state.ca_stamp = stamp;
                        tracing::info!(client_ca = %ca.display(), "TLS client CA reloaded");
                    }
                    // Mid-rotation the file may be half written: try again
                    // at the next interval.
                    Err(e) => {
                        tracing::warn!(error = %e, "new TLS client CA not usable yet; keeping the current one")
                    }
                }
            }
        }
        state.acceptor.clone()
    }
}

fn build(
    client_ca_file: Option<&Path>,
    alpn: &[Vec<u8>],
    resolver: &Arc<Reloading>,
    min_version: super::MinVersion,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    let builder =
        rustls::ServerConfig::builder_with_protocol_versions(min_version.protocol_versions());
    let builder = match client_ca_file {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder(Arc::new(super::root_store(ca)?))
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?,
        ),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = alpn.to_vec();
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
