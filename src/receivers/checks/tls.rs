//! `tlscheck` (also `tls_check`): connects to `host:port`, completes a TLS
//! handshake and reports the peer certificate's time left, in the
//! Collector's names: `tlscheck.time_left` (s, negative once expired)
//! with `tlscheck.x509.issuer`, `.cn` and `.san`, and `tlscheck.target` on
//! the resource. The check fails (and `sidewatch.check.up` is 0) when the
//! certificate is expired, untrusted or for another name; the time left is
//! reported all the same, so an expired certificate shows how long ago.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use tokio::net::TcpStream;

use super::certificate::{CertificateDetails, TlsClient, rejection};
use super::{
    Check, CheckError, Observation, Point, TargetConfig, connect_error, resolve, split_host_port,
};
use crate::receivers::hostmetrics::{Number, string_attribute};
use crate::tls::client::ClientTlsConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsTarget {
    /// `host:port`.
    pub endpoint: String,
    #[serde(default)]
    pub tls: ClientTlsConfig,
}

impl TargetConfig for TlsTarget {
    fn compile(&self) -> Result<Arc<dyn Check>, Vec<(&'static str, String)>> {
        let (host, port) = split_host_port(&self.endpoint).map_err(|e| vec![("endpoint", e)])?;
        let client = TlsClient::new(&self.tls)?;
        Ok(Arc::new(TlsCheck {
            endpoint: self.endpoint.clone(),
            host,
            port,
            client,
        }))
    }
}

#[derive(Debug)]
pub struct TlsCheck {
    endpoint: String,
    host: String,
    port: u16,
    client: TlsClient,
}

impl TlsCheck {
    fn failure(&self, error: CheckError, duration: Duration) -> Observation {
        Observation {
            duration,
            points: vec![Point::counter(
                "tlscheck.error",
                "{error}",
                "Errors of the TLS check, by code.",
                vec![
                    string_attribute("error.code", error.code),
                    string_attribute("error.message", error.message.clone()),
                ],
            )],
            error: Some(error),
            resource: self.resource(),
        }
    }

    fn resource(&self) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
        vec![string_attribute("tlscheck.target", self.endpoint.clone())]
    }

    async fn handshake(&self) -> Result<(CertificateDetails, Option<CheckError>), CheckError> {
        let addresses = resolve(&self.host, self.port).await?;
        let stream = TcpStream::connect(&addresses[..])
            .await
            .map_err(|e| connect_error(&e))?;
        let (config, verdict) = self.client.config(false);
        let name = self.client.server_name(&self.host)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| CheckError::new("tls_error", format!("TLS handshake: {e}")))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(|| CheckError::new("tls_error", "the server sent no certificate"))?;
        let details = CertificateDetails::parse(leaf.as_ref())?;
        Ok((details, verdict.rejected().map(|e| rejection(&e))))
    }
}

#[async_trait::async_trait]
impl Check for TlsCheck {
    fn target(&self) -> &str {
        &self.endpoint
    }

    async fn attempt(&self, _timeout: Duration) -> Observation {
        let began = Instant::now();
        match self.handshake().await {
            Err(error) => self.failure(error, began.elapsed()),
            Ok((details, rejected)) => {
                let mut points = vec![Point::gauge(
                    "tlscheck.time_left",
                    "s",
                    "Time in seconds until certificate expiry (NotAfter); negative once expired.",
                    Number::Int(details.seconds_left(SystemTime::now())),
                    details.attributes("tlscheck.x509"),
                )];
                if let Some(error) = &rejected {
                    points.push(Point::counter(
                        "tlscheck.error",
                        "{error}",
                        "Errors of the TLS check, by code.",
                        vec![
                            string_attribute("error.code", error.code),
                            string_attribute("error.message", error.message.clone()),
                        ],
                    ));
                }
                Observation {
                    duration: began.elapsed(),
                    error: rejected,
                    points,
                    resource: self.resource(),
                }
            }
        }
    }

    fn timed_out(&self, timeout: Duration) -> Observation {
        self.failure(
            CheckError::new(
                "connection_timeout",
                format!(
                    "no TLS handshake within {}",
                    humantime::format_duration(timeout)
                ),
            ),
            timeout,
        )
    }
}
