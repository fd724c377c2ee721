//! TLS for the checks: a rustls client from the exporters' `tls:` settings
//! (`ca_file` for a private CA, `cert_file`/`key_file` for a client
//! certificate, `server_name`), a verifier that records why a certificate
//! was rejected (so `tlscheck` can still report the expiry of an expired or
//! foreign certificate), and the X.509 details the metrics carry.

use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::CheckError;
use crate::tls::client::ClientTlsConfig;

/// A compiled `tls:` block.
#[derive(Debug)]
pub struct TlsClient {
    verifier: Arc<WebPkiServerVerifier>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    pub server_name: Option<String>,
}

/// The system's roots, loaded once per process.
fn native_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
            Arc::new(roots)
        })
        .clone()
}

impl TlsClient {
    /// Reads the files now, so a missing CA is a config error.
    pub fn new(config: &ClientTlsConfig) -> Result<TlsClient, Vec<(&'static str, String)>> {
        crate::tls::install_provider();
        config.validate().map_err(|e| vec![("tls", e)])?;
        let roots = match &config.ca_file {
            Some(ca) => Arc::new(crate::tls::root_store(ca).map_err(|e| vec![("tls", e)])?),
            None => native_roots(),
        };
        let verifier = WebPkiServerVerifier::builder(roots)
            .build()
            .map_err(|e| vec![("tls", format!("no usable CA certificate: {e}"))])?;
        let identity = match (&config.cert_file, &config.key_file) {
            (Some(cert), Some(key)) => Some((
                crate::tls::read_certificates(cert).map_err(|e| vec![("tls", e)])?,
                crate::tls::read_key(key).map_err(|e| vec![("tls", e)])?,
            )),
            _ => None,
        };
        if let Some((chain, key)) = &identity {
            ClientConfig::builder()
                .with_root_certificates(RootCertStore::empty())
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| {
                    vec![("tls", format!("client certificate and key do not fit: {e}"))]
                })?;
        }
        Ok(TlsClient {
            verifier,
            identity,
            server_name: config.server_name.clone(),
        })
    }

    /// A client config whose verifier records its verdict; with `strict`
    /// a rejected certificate fails the handshake, without it the
    /// handshake goes on so the certificate can be read.
    pub fn config(&self, strict: bool) -> (Arc<ClientConfig>, Arc<RecordingVerifier>) {
        let recorder = Arc::new(RecordingVerifier {
            inner: self.verifier.clone(),
            rejected: Mutex::new(None),
            strict,
        });
        let builder = ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone());
        let config = match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .unwrap_or_else(|_| {
                    // `new` checked that chain and key fit; unreachable.
                    ClientConfig::builder()
                        .dangerous()
                        .with_custom_certificate_verifier(recorder.clone())
                        .with_no_client_auth()
                }),
            None => builder.with_no_client_auth(),
        };
        (Arc::new(config), recorder)
    }

    /// The name to verify against: `server_name`, else the host.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, CheckError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        ServerName::try_from(name.to_string())
            .map_err(|e| CheckError::new("invalid_endpoint", format!("server name {name:?}: {e}")))
    }
}

/// The web PKI verifier, remembering why it rejected a certificate.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    rejected: Mutex<Option<rustls::Error>>,
    strict: bool,
}

impl RecordingVerifier {
    pub fn rejected(&self) -> Option<rustls::Error> {
        self.rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(error) => {
                *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.clone());
                if self.strict {
                    Err(error)
                } else {
                    Ok(ServerCertVerified::assertion())
                }
            }
        }
    }

    // The handshake signatures are checked whatever the verdict on the
    // chain: the peer must still hold the certificate's key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The error code of a rejected certificate.
pub fn rejection(error: &rustls::Error) -> CheckError {
    use rustls::CertificateError;
    let code = match error {
        rustls::Error::InvalidCertificate(CertificateError::Expired)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "certificate_expired"
        }
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "certificate_untrusted"
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "certificate_name_mismatch"
        }
        _ => "certificate_invalid",
    };
    CheckError::new(code, format!("certificate rejected: {error}"))
}

/// What the metrics say about a certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateDetails {
    /// `notAfter`, seconds since the epoch.
    pub not_after: i64,
    pub common_name: String,
    pub issuer: String,
    pub subject_alternative_names: Vec<String>,
}

impl CertificateDetails {
    pub fn parse(der: &[u8]) -> Result<CertificateDetails, CheckError> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).map_err(|e| {
            CheckError::new(
                "certificate_invalid",
                format!("unreadable certificate: {e}"),
            )
        })?;
        let common_name = certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut subject_alternative_names = Vec::new();
        if let Ok(Some(names)) = certificate.subject_alternative_name() {
            use x509_parser::extensions::GeneralName;
            for name in &names.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => subject_alternative_names.push(dns.to_string()),
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes)
                                .ok()
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            16 => <[u8; 16]>::try_from(*bytes)
                                .ok()
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            _ => None,
                        };
                        subject_alternative_names.extend(ip);
                    }
                    GeneralName::RFC822Name(mail) => {
                        subject_alternative_names.push(mail.to_string())
                    }
                    GeneralName::URI(uri) => subject_alternative_names.push(uri.to_string()),
                    _ => {}
                }
            }
        }
        Ok(CertificateDetails {
            not_after: certificate.validity().not_after.timestamp(),
            common_name,
            issuer: certificate.issuer().to_string(),
            subject_alternative_names,
        })
    }

    /// Seconds until `notAfter` from `now`, negative once expired.
    pub fn seconds_left(&self, now: std::time::SystemTime) -> i64 {
        let now = match now.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(_) => 0,
        };
        self.not_after - now
    }

    /// `<prefix>.issuer`, `<prefix>.cn`, `<prefix>.san` (a string array).
    pub fn attributes(&self, prefix: &str) -> Vec<KeyValue> {
        let text = |s: &str| AnyValue {
            value: Some(any_value::Value::StringValue(s.to_string())),
        };
        vec![
            KeyValue {
                key: format!("{prefix}.issuer"),
                value: Some(text(&self.issuer)),
                ..Default::default()
            },
            KeyValue {
                key: format!("{prefix}.cn"),
                value: Some(text(&self.common_name)),
                ..Default::default()
            },
            KeyValue {
                key: format!("{prefix}.san"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::ArrayValue(ArrayValue {
                        values: self
                            .subject_alternative_names
                            .iter()
                            .map(|s| text(s))
                            .collect(),
                    })),
                }),
                ..Default::default()
            },
        ]
    }
}
