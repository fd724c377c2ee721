//! Client-side TLS settings of exporters: `tls: { ca_file, cert_file,
//! key_file, server_name (or server_name_override), insecure,
//! insecure_skip_verify, min_version }`, in the Collector's names. Without `ca_file`
//! the system's roots are trusted.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Copy)]
enum Holds {
    Certificates,
    Key,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM roots to trust instead of the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// A client certificate and key, for servers that require mutual TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The name to verify the server's certificate against, when it differs
    /// from the endpoint's host (`server_name_override` in the Collector).
    #[serde(alias = "server_name_override")]
    pub server_name: Option<String>,
    /// The Collector's "no TLS at all": only with an http:// (or bare
    /// host:port) endpoint, which is plaintext anyway; with https:// it is
    /// refused as a contradiction.
    #[serde(default)]
    pub insecure: bool,
    /// Accept any server certificate (HTTP exporters only: tonic offers no
    /// way to switch verification off, so the gRPC exporter refuses it).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The oldest TLS version to offer (`"1.2"` or `"1.3"`).
    #[serde(default)]
    pub min_version: super::MinVersion,
}

impl ClientTlsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("set both cert_file and key_file, or neither".to_string());
        }
        Ok(())
    }

    /// Reads every file as a connection would, naming the field whose file
    /// is unusable: for `validate`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        self.validate().map_err(|e| ("cert_file", e))?;
        let files = [
            ("ca_file", &self.ca_file, Holds::Certificates),
            ("cert_file", &self.cert_file, Holds::Certificates),
            ("key_file", &self.key_file, Holds::Key),
        ];
        for (field, path, holds) in files {
            if let Some(path) = path {
                Self::pem(path, holds).map_err(|e| (field, e))?;
            }
        }
        Ok(())
    }

    /// Reads a file and checks it holds what its field says, so a wrong
    /// file is named at `validate` rather than at the first handshake.
    fn pem(path: &std::path::Path, holds: Holds) -> Result<Vec<u8>, String> {
        match holds {
            Holds::Certificates => super::read_certificates(path).map(|_| ())?,
            Holds::Key => super::read_key(path).map(|_| ())?,
        }
        crate::config::files::read_small_file(path)
    }

    /// A reqwest client builder with these settings (TLS 1.2 at least).
    pub fn apply_to_reqwest(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        self.validate()?;
        super::install_provider();
        builder = builder.tls_version_min(match self.min_version {
            super::MinVersion::Tls12 => reqwest::tls::Version::TLS_1_2,
            super::MinVersion::Tls13 => reqwest::tls::Version::TLS_1_3,
        });
        if self.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(ca) = &self.ca_file {
            let certificates =
                reqwest::Certificate::from_pem_bundle(&Self::pem(ca, Holds::Certificates)?)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder = builder.tls_certs_only(certificates);
        }
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            let mut pem = Self::pem(cert, Holds::Certificates)?;
            pem.push(b'\n');
            pem.extend(Self::pem(key, Holds::Key)?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?;
            builder = builder.identity(identity);
        }
        Ok(builder)
    }

    /// tonic's settings for a channel to `host`.
    pub fn tonic(&self, host: &str) -> Result<tonic::transport::ClientTlsConfig, String> {
        self.validate()?;
        if self.insecure_skip_verify {
            return Err("tls.insecure_skip_verify is not supported by the gRPC exporter: give the server's CA in tls.ca_file (or use otlphttp, which supports it)".into());
        }
        if self.min_version == super::MinVersion::Tls13 {
            return Err("tls.min_version \"1.3\" is not supported by the gRPC exporter (it offers TLS 1.2 and 1.3): remove it, or use otlphttp".into());
        }
        super::install_provider();
        let mut tls = tonic::transport::ClientTlsConfig::new()
            .domain_name(self.server_name.clone().unwrap_or_else(|| host.to_string()));
        tls = match &self.ca_file {
            Some(ca) => tls.ca_certificate(tonic::transport::Certificate::from_pem(Self::pem(
                ca,
                Holds::Certificates,
            )?)),
            None => tls.with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.cert_file, &self.key_file) {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                Self::pem(cert, Holds::Certificates)?,
                Self::pem(key, Holds::Key)?,
            ));
        }
        Ok(tls)
    }
}
