//! `otlp` exporter: OTLP over gRPC, with the generated tonic clients.
//!
//! Retryable codes follow the OTLP specification: CANCELLED,
//! DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and
//! RESOURCE_EXHAUSTED only when the server sent RetryInfo (whose delay is
//! honoured). A partial success is reported, never retried.

use std::collections::BTreeMap;
use std::str::FromStr;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use serde::Deserialize;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::config::endpoint::EndpointUrl;
use crate::signal::{Batch, Signal};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    pub endpoint: EndpointUrl,
    #[serde(default)]
    pub compression: Compression,
    /// Sent as gRPC metadata with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: std::time::Duration,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

fn default_timeout() -> std::time::Duration {
    ExporterSettings::default().timeout
}

impl OtlpExporterConfig {
    pub fn settings(&self) -> ExporterSettings {
        ExporterSettings {
            timeout: self.timeout,
            sending_queue: self.sending_queue.clone(),
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }
}

enum Client {
    Traces(TraceServiceClient<Channel>),
    Metrics(MetricsServiceClient<Channel>),
    Logs(LogsServiceClient<Channel>),
}

pub struct OtlpExporter {
    client: Client,
    metadata: MetadataMap,
    timeout: std::time::Duration,
}

impl OtlpExporter {
    pub fn new(config: &OtlpExporterConfig, signal: Signal) -> Result<Self, String> {
        if config.endpoint.0.scheme_str() == Some("https") {
            return Err(format!(
                "endpoint {}: TLS is not supported yet; use an http:// endpoint on a trusted network",
                config.endpoint
            ));
        }
        let channel = tonic::transport::Endpoint::from_shared(config.endpoint.as_str())
            .map_err(|e| format!("invalid endpoint {}: {e}", config.endpoint))?
            .tcp_nodelay(true)
            .connect_lazy();
        let mut metadata = MetadataMap::new();
        for (name, value) in &config.headers {
            let key = MetadataKey::from_str(&name.to_ascii_lowercase())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let value = MetadataValue::from_str(value)
                .map_err(|_| format!("invalid value for header {name:?}"))?;
            metadata.insert(key, value);
        }
        let encoding = match config.compression {
            Compression::Gzip => Some(CompressionEncoding::Gzip),
            Compression::Zstd => Some(CompressionEncoding::Zstd),
            Compression::None => None,
        };
        // Responses are tiny; the limit only guards against a hostile server.
        let max = 4 * 1024 * 1024;
        macro_rules! client {
            ($client:ident, $variant:ident) => {{
                let mut client = $client::new(channel).max_decoding_message_size(max);
                if let Some(encoding) = encoding {
                    client = client.send_compressed(encoding);
                }
                Client::$variant(client)
            }};
        }
        let client = match signal {
            Signal::Traces => client!(TraceServiceClient, Traces),
            Signal::Metrics => client!(MetricsServiceClient, Metrics),
            Signal::Logs => client!(LogsServiceClient, Logs),
        };
        Ok(OtlpExporter {
            client,
            metadata,
            timeout: config.timeout,
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        request
    }
}

#[async_trait::async_trait]
impl Exporter for OtlpExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        // Encoding needs owned messages; the clone is of the request struct
        // the Arc shares, made once per attempt.
        let rejected = match (&self.client, batch) {
            (Client::Traces(client), Batch::Traces(request)) => {
                let response = client
                    .clone()
                    .export(self.request((**request).clone()))
                    .await
                    .map_err(classify)?;
                response
                    .into_inner()
                    .partial_success
                    .map(|p| (p.rejected_spans, p.error_message))
            }
            (Client::Metrics(client), Batch::Metrics(request)) => {
                let response = client
                    .clone()
                    .export(self.request((**request).clone()))
                    .await
                    .map_err(classify)?;
                response
                    .into_inner()
                    .partial_success
                    .map(|p| (p.rejected_data_points, p.error_message))
            }
            (Client::Logs(client), Batch::Logs(request)) => {
                let response = client
                    .clone()
                    .export(self.request((**request).clone()))
                    .await
                    .map_err(classify)?;
                response
                    .into_inner()
                    .partial_success
                    .map(|p| (p.rejected_log_records, p.error_message))
            }
            (_, other) => {
                return Err(ExportError::permanent(format!(
                    "this exporter instance does not handle {}",
                    other.signal()
                )));
            }
        };
        match rejected {
            Some((count, message)) if count > 0 => Err(ExportError::PartiallyRejected {
                rejected: count.max(0) as u64,
                message,
            }),
            Some((_, message)) if !message.is_empty() => {
                tracing::warn!(
                    message,
                    "the destination accepted everything with a warning"
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Sorts a gRPC status into retryable or permanent, per the OTLP spec.
pub fn classify(status: Status) -> ExportError {
    let retry_after = status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay);
    let message = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => ExportError::Retryable {
            message,
            retry_after,
        },
        Code::ResourceExhausted if retry_after.is_some() => ExportError::Retryable {
            message,
            retry_after,
        },
        _ => ExportError::Permanent { message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tonic_types::ErrorDetails;

    #[test]
    fn classifies_codes_as_the_otlp_spec_says() {
        assert!(matches!(
            classify(Status::unavailable("x")),
            ExportError::Retryable {
                retry_after: None,
                ..
            }
        ));
        assert!(matches!(
            classify(Status::invalid_argument("x")),
            ExportError::Permanent { .. }
        ));
        assert!(matches!(
            classify(Status::resource_exhausted("x")),
            ExportError::Permanent { .. }
        ));
        let with_info = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        match classify(with_info) {
            ExportError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("expected retryable, got {other:?}"),
        }
    }
}
