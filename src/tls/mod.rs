//! TLS for receivers (server side, optional client certificates, reloaded
//! when the files change) and exporters (client side, a private CA, a
//! client certificate), with rustls and the `ring` provider. rustls speaks
//! TLS 1.2 and 1.3 only, so older versions are refused by construction.

pub mod client;
pub mod server;

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Installs `ring` as the process's rustls provider (reqwest and tonic use
/// the default one). Idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = crate::config::files::read_small_file(path)?;
    let certificates: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certificates)
}

pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = crate::config::files::read_small_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn root_store(ca_file: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in read_certificates(ca_file)? {
        roots
            .add(certificate)
            .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    }
    Ok(roots)
}

/// `min_version` as the Collector spells it (`"1.2"`, `"1.3"`). rustls
/// has no TLS 1.0 or 1.1, so those are refused when the config is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

impl MinVersion {
    pub fn protocol_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => rustls::DEFAULT_VERSIONS,
            MinVersion::Tls13 => TLS13_ONLY,
        }
    }
}

impl<'de> serde::Deserialize<'de> for MinVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // YAML reads an unquoted 1.2 as a number.
        let text = match yaml_serde::Value::deserialize(deserializer)? {
            yaml_serde::Value::String(s) => s,
            yaml_serde::Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        match text.as_str() {
            "1.2" => Ok(MinVersion::Tls12),
            "1.3" => Ok(MinVersion::Tls13),
            "1.0" | "1.1" => Err(serde::de::Error::custom(format!(
                "TLS {text} is not offered: sidewatch speaks TLS 1.2 and 1.3 only; expected \"1.2\" or \"1.3\""
            ))),
            _ => Err(serde::de::Error::custom(format!(
                "invalid TLS version {text:?}: expected \"1.2\" or \"1.3\""
            ))),
        }
    }
}
