//! `otlphttp` exporter: OTLP over HTTP, protobuf (default) or JSON bodies,
//! optionally gzip-compressed.
//!
//! Retryable answers follow the OTLP specification: 429, 502, 503, 504 and
//! connection failures, honouring `Retry-After` (seconds). Any other 4xx or
//! 5xx is permanent. A partial success is reported, never retried.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde::Deserialize;

use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::config::endpoint::EndpointUrl;
use crate::signal::{Batch, Signal};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HttpCompression {
    #[default]
    Gzip,
    /// zstd at level 1, as fast as gzip's `fast` and smaller.
    Zstd,
    /// `""` is the Collector's other spelling of none.
    #[serde(alias = "")]
    None,
}

impl HttpCompression {
    /// The Content-Encoding it sends, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            HttpCompression::Gzip => Some("gzip"),
            HttpCompression::Zstd => Some("zstd"),
            HttpCompression::None => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HttpEncoding {
    #[default]
    Proto,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpHttpExporterConfig {
    /// Base URL; `/v1/traces`, `/v1/metrics` and `/v1/logs` are appended.
    pub endpoint: EndpointUrl,
    /// Full URLs that replace the derived ones, per signal.
    pub traces_endpoint: Option<EndpointUrl>,
    pub metrics_endpoint: Option<EndpointUrl>,
    pub logs_endpoint: Option<EndpointUrl>,
    #[serde(default)]
    pub compression: HttpCompression,
    #[serde(default)]
    pub encoding: HttpEncoding,
    #[serde(default)]
    pub headers: crate::config::headers::Headers,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// TLS settings for https:// endpoints (a private CA, a client
    /// certificate).
    #[serde(default)]
    pub tls: Option<crate::tls::client::ClientTlsConfig>,
}

fn default_timeout() -> Duration {
    ExporterSettings::default().timeout
}

impl OtlpHttpExporterConfig {
    pub fn settings(&self) -> ExporterSettings {
        ExporterSettings {
            timeout: self.timeout,
            sending_queue: self.sending_queue.clone(),
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }
}

pub struct OtlpHttpExporter {
    client: reqwest::Client,
    url: String,
    compression: HttpCompression,
    encoding: HttpEncoding,
    signal: Signal,
}

impl OtlpHttpExporter {
    pub fn new(config: &OtlpHttpExporterConfig, signal: Signal) -> Result<Self, String> {
        let (explicit, path) = match signal {
            Signal::Traces => (&config.traces_endpoint, "v1/traces"),
            Signal::Metrics => (&config.metrics_endpoint, "v1/metrics"),
            Signal::Logs => (&config.logs_endpoint, "v1/logs"),
        };
        let url = match explicit {
            Some(url) => url.as_str(),
            None => config.endpoint.join(path),
        };
        super::http::refuse_insecure_https(
            config.tls.as_ref(),
            url.starts_with("https://"),
            &config.endpoint.origin(),
        )?;
        // Headers were compiled when the config was decoded.
        let client = super::http::client(
            config.timeout,
            Some(config.headers.map()),
            config.tls.as_ref(),
        )?;
        Ok(OtlpHttpExporter {
            client,
            url,
            compression: config.compression,
            encoding: config.encoding,
            signal,
        })
    }

    fn body(&self, batch: &Batch) -> Result<Vec<u8>, ExportError> {
        let encoded = match self.encoding {
            HttpEncoding::Proto => batch.to_protobuf().to_vec(),
            HttpEncoding::Json => batch.to_json().map_err(ExportError::permanent)?,
        };
        self.compress(encoded)
    }

    fn compress(&self, encoded: Vec<u8>) -> Result<Vec<u8>, ExportError> {
        match self.compression {
            HttpCompression::None => Ok(encoded),
            HttpCompression::Gzip => super::compress::gzip(&encoded)
                .map_err(|e| ExportError::permanent(format!("gzip: {e}"))),
            HttpCompression::Zstd => super::compress::zstd(&encoded)
                .map_err(|e| ExportError::permanent(format!("zstd: {e}"))),
        }
    }

    /// Rejected items reported in a 200 response's partial success.
    fn rejected(&self, body: &[u8]) -> Option<(i64, String)> {
        if self.encoding == HttpEncoding::Json || body.is_empty() {
            return None;
        }
        match self.signal {
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .ok()?
                .partial_success
                .map(|p| (p.rejected_spans, p.error_message)),
            Signal::Metrics => ExportMetricsServiceResponse::decode(body)
                .ok()?
                .partial_success
                .map(|p| (p.rejected_data_points, p.error_message)),
            Signal::Logs => ExportLogsServiceResponse::decode(body)
                .ok()?
                .partial_success
                .map(|p| (p.rejected_log_records, p.error_message)),
        }
    }
}

#[async_trait::async_trait]
impl Exporter for OtlpHttpExporter {
    fn reads_wire(&self) -> bool {
        self.encoding == HttpEncoding::Proto
    }

    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let body = self.body(batch)?;
        self.post(body).await
    }
}

impl OtlpHttpExporter {
    async fn post(&self, body: Vec<u8>) -> Result<(), ExportError> {
        let mut request = self.client.post(&self.url).header(
            reqwest::header::CONTENT_TYPE,
            match self.encoding {
                HttpEncoding::Proto => "application/x-protobuf",
                HttpEncoding::Json => "application/json",
            },
        );
        if let Some(encoding) = self.compression.content_encoding() {
            request = request.header(reqwest::header::CONTENT_ENCODING, encoding);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| super::http::send_error(&self.url, e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            return match self.rejected(&body) {
                Some((rejected, message)) if rejected > 0 => Err(ExportError::PartiallyRejected {
                    rejected: rejected as u64,
                    message,
                }),
                _ => Ok(()),
            };
        }
        let message = format!(
            "POST {} answered {status}: {}",
            crate::config::secret::redacted_url(&self.url),
            String::from_utf8_lossy(&body[..body.len().min(512)])
        );
        match status.as_u16() {
            429 | 502 | 503 | 504 => Err(ExportError::Retryable {
                message,
                retry_after,
            }),
            _ => Err(ExportError::Permanent { message }),
        }
    }
}

impl crate::components::compiled::CompiledExporter for OtlpHttpExporterConfig {
    fn settings(&self) -> crate::exporters::settings::ExporterSettings {
        self.settings()
    }

    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        Ok(std::sync::Arc::new(OtlpHttpExporter::new(
            self,
            context.signal,
        )?))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<OtlpHttpExporterConfig>(
        value,
        path,
        decoder,
        |c| c.tls.as_ref(),
        |c, path, decoder| {
            let built = crate::signal::Signal::ALL
                .iter()
                .try_for_each(|signal| OtlpHttpExporter::new(c, *signal).map(|_| ()));
            crate::exporters::compile::refused(built, path, decoder)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter(compression: &str) -> OtlpHttpExporter {
        let config: OtlpHttpExporterConfig = yaml_serde::from_str(&format!(
            "{{ endpoint: 'http://127.0.0.1:1', compression: '{compression}' }}"
        ))
        .unwrap();
        OtlpHttpExporter::new(&config, Signal::Traces).unwrap()
    }

    #[test]
    fn compresses_as_its_content_encoding_says() {
        let body = b"a body that repeats, a body that repeats, a body that repeats".to_vec();
        let zstd = exporter("zstd");
        assert_eq!(zstd.compression.content_encoding(), Some("zstd"));
        let packed = zstd.compress(body.clone()).unwrap();
        assert_eq!(zstd::decode_all(&packed[..]).unwrap(), body);
        let gzip = exporter("gzip");
        assert_eq!(gzip.compression.content_encoding(), Some("gzip"));
        let packed = gzip.compress(body.clone()).unwrap();
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&packed[..]),
            &mut unpacked,
        )
        .unwrap();
        assert_eq!(unpacked, body);
        for none in ["none", ""] {
            let plain = exporter(none);
            assert_eq!(plain.compression.content_encoding(), None);
            assert_eq!(plain.compress(body.clone()).unwrap(), body);
        }
    }
}
