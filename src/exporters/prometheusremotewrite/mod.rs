//! `prometheusremotewrite` exporter: metrics to a Prometheus remote write
//! 1.0 endpoint (Prometheus with `--web.enable-remote-write-receiver`,
//! Mimir, Cortex, Thanos, VictoriaMetrics), with the Collector's config.
//!
//! - `prompb`: the protobuf messages, by hand (no protoc here);
//! - `convert`: OTLP to series, named as the `prometheus` exporter names
//!   them.
//!
//! Each export is one request (split at `max_batch_size_bytes`), a
//! snappy-compressed (block format, `snap::raw`) `WriteRequest`. 5xx and
//! 429 answers and connection failures are retried by the queue; any
//! other 4xx is permanent, as the remote write specification asks
//! (Prometheus answers 400 for out-of-order samples: resending cannot
//! help).

pub mod convert;
pub mod prompb;

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use serde::Deserialize;

use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::config::endpoint::EndpointUrl;
use crate::signal::Batch;
use convert::{Converter, Options};
use prompb::{TimeSeries, WriteRequest};

/// `{ enabled: bool }`, the Collector's shape for an on/off setting.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    pub enabled: bool,
}

/// The Collector's own queue block of this exporter; mapped onto
/// `sending_queue` (an explicit `sending_queue` wins).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteQueue {
    pub enabled: Option<bool>,
    pub queue_size: Option<usize>,
    pub num_consumers: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusRemoteWriteConfig {
    /// The full write URL, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub endpoint: EndpointUrl,
    #[serde(default)]
    pub headers: crate::config::headers::Headers,
    #[serde(default)]
    pub tls: Option<crate::tls::client::ClientTlsConfig>,
    /// Labels added to every series (a series' own label of the same name
    /// wins).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub resource_to_telemetry_conversion: Option<Enabled>,
    /// Prefix of every metric name.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default = "yes")]
    pub add_metric_suffixes: bool,
    /// A `target_info` series per resource (default on).
    #[serde(default)]
    pub target_info: Option<Enabled>,
    /// Requests are split so none is larger than this before compression.
    #[serde(default = "default_max_batch_size_bytes")]
    pub max_batch_size_bytes: usize,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub remote_write_queue: RemoteWriteQueue,
    #[serde(default)]
    pub sending_queue: Option<QueueSettings>,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

fn yes() -> bool {
    true
}

fn default_max_batch_size_bytes() -> usize {
    3_000_000
}

fn default_timeout() -> Duration {
    ExporterSettings::default().timeout
}

impl PrometheusRemoteWriteConfig {
    pub fn settings(&self) -> ExporterSettings {
        let sending_queue = self.sending_queue.clone().unwrap_or_else(|| {
            let defaults = QueueSettings::default();
            let queue = &self.remote_write_queue;
            QueueSettings {
                queue_size: queue.queue_size.unwrap_or(defaults.queue_size),
                num_consumers: queue.num_consumers.unwrap_or(defaults.num_consumers),
                ..defaults
            }
        });
        ExporterSettings {
            timeout: self.timeout,
            sending_queue,
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }

    /// Problems as (path below the exporter, message), for `validate`.
    pub fn validate(&self) -> Vec<(&'static [&'static str], String)> {
        let mut errors: Vec<(&'static [&'static str], String)> = Vec::new();
        if self.remote_write_queue.enabled == Some(false) {
            errors.push((
                &["remote_write_queue", "enabled"],
                "sidewatch cannot send without its queue (the queue is how backpressure reaches the receivers): remove `enabled: false`, and set `queue_size` to bound it".to_string(),
            ));
        }
        if self.max_batch_size_bytes == 0 {
            errors.push((
                &["max_batch_size_bytes"],
                "must be more than 0: expected a size in bytes such as 3000000".to_string(),
            ));
        }
        for name in self.external_labels.keys() {
            if name.is_empty() {
                errors.push((
                    &["external_labels"],
                    "a label name is empty: expected names such as `cluster`".to_string(),
                ));
            }
        }
        errors
    }
}

pub struct PrometheusRemoteWriteExporter {
    client: reqwest::Client,
    url: String,
    converter: Converter,
    /// Series of batches whose send failed, by the batch itself: a retry
    /// resends them instead of converting again, which would add a
    /// batch's deltas to the running totals twice. At most
    /// [`PENDING_KEPT`]; the oldest go first.
    pending: std::sync::Mutex<Vec<(Arc<ExportMetricsServiceRequest>, Vec<TimeSeries>)>>,
    max_batch_size_bytes: usize,
}

impl PrometheusRemoteWriteExporter {
    pub fn new(config: &PrometheusRemoteWriteConfig) -> Result<Self, String> {
        let url = config.endpoint.as_str();
        super::http::refuse_insecure_https(
            config.tls.as_ref(),
            url.starts_with("https://"),
            &config.endpoint.origin(),
        )?;
        let client = super::http::client(
            config.timeout,
            Some(config.headers.map()),
            config.tls.as_ref(),
        )?;
        let options = Options {
            namespace: config.namespace.clone(),
            add_metric_suffixes: config.add_metric_suffixes,
            resource_to_telemetry: config
                .resource_to_telemetry_conversion
                .as_ref()
                .is_some_and(|e| e.enabled),
            target_info: config.target_info.as_ref().is_none_or(|e| e.enabled),
            external_labels: convert::external_labels(&config.external_labels),
        };
        Ok(PrometheusRemoteWriteExporter {
            client,
            url,
            converter: Converter::new(options),
            pending: std::sync::Mutex::new(Vec::new()),
            max_batch_size_bytes: config.max_batch_size_bytes,
        })
    }

    async fn post(&self, series: Vec<TimeSeries>) -> Result<(), ExportError> {
        let body = WriteRequest { timeseries: series }.encode_to_vec();
        let body = snap::raw::Encoder::new()
            .compress_vec(&body)
            .map_err(|e| ExportError::permanent(format!("snappy: {e}")))?;
        let response = self
            .client
            .post(&self.url)
            // Set after the configured headers: these four cannot be
            // changed, as in the Collector.
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header(
                reqwest::header::USER_AGENT,
                concat!("sidewatch/", env!("CARGO_PKG_VERSION")),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| super::http::send_error(&self.url, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let message = format!(
            "POST {} answered {status}: {}",
            crate::config::secret::redacted_url(&self.url),
            text.chars().take(512).collect::<String>().trim_end()
        );
        if status.is_server_error() || status.as_u16() == 429 {
            Err(ExportError::Retryable {
                message,
                retry_after,
            })
        } else {
            Err(ExportError::Permanent { message })
        }
    }
}

/// Consecutive groups of series, each encoding to at most `max_bytes`
/// (a single larger series goes alone).
fn split(series: Vec<TimeSeries>, max_bytes: usize) -> Vec<Vec<TimeSeries>> {
    let mut groups = vec![Vec::new()];
    let mut size = 0;
    for one in series {
        // A repeated field costs its length plus a tag and a length prefix.
        let len = one.encoded_len() + 1 + prost::length_delimiter_len(one.encoded_len());
        let current = groups.last_mut().expect("groups is never empty");
        if size + len > max_bytes && !current.is_empty() {
            groups.push(Vec::new());
            size = 0;
        }
        size += len;
        groups.last_mut().expect("groups is never empty").push(one);
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// Failed batches whose series are kept for their retry.
const PENDING_KEPT: usize = 64;

impl PrometheusRemoteWriteExporter {
    async fn send(&self, series: Vec<TimeSeries>) -> Result<(), ExportError> {
        for group in split(series, self.max_batch_size_bytes) {
            self.post(group).await?;
        }
        Ok(())
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl Exporter for PrometheusRemoteWriteExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let Batch::Metrics(request) = batch else {
            return Ok(());
        };
        let earlier = {
            let mut pending =
                crate::pipeline::contain::lock(&self.pending, "prometheusremotewrite");
            pending
                .iter()
                .position(|(r, _)| Arc::ptr_eq(r, request))
                .map(|at| pending.remove(at).1)
        };
        let series = match earlier {
            Some(series) => series,
            None => self
                .converter
                .convert(&request.resource_metrics, now_millis()),
        };
        let left_out = self
            .converter
            .left_out
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        if left_out > 0 {
            tracing::warn!(
                exporter = "prometheusremotewrite",
                left_out,
                limit = convert::DELTA_SERIES_LIMIT,
                "delta points of new series left out: the running totals of delta series are at their limit"
            );
        }
        if let Err(error) = self.send(series.clone()).await {
            let mut pending =
                crate::pipeline::contain::lock(&self.pending, "prometheusremotewrite");
            if pending.len() >= PENDING_KEPT {
                pending.remove(0);
            }
            pending.push((request.clone(), series));
            return Err(error);
        }
        Ok(())
    }
}

impl crate::components::compiled::CompiledExporter for PrometheusRemoteWriteConfig {
    fn settings(&self) -> ExporterSettings {
        self.settings()
    }

    fn build(
        &self,
        _: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<Arc<dyn super::Exporter>, String> {
        Ok(Arc::new(PrometheusRemoteWriteExporter::new(self)?))
    }
}

/// The registry's compile step for `prometheusremotewrite`: its own
/// checks, then whatever the constructor would refuse.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<PrometheusRemoteWriteConfig>(
        value,
        path,
        decoder,
        |c| c.tls.as_ref(),
        |config, path, decoder| {
            crate::components::compiled::report_at(config.validate(), path, decoder)
                && crate::exporters::compile::refused(
                    PrometheusRemoteWriteExporter::new(config).map(|_| ()),
                    path,
                    decoder,
                )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prompb::{Label, Sample};

    #[test]
    fn splits_requests_at_the_size_limit() {
        let one = |i: usize| TimeSeries {
            labels: vec![Label {
                name: "__name__".into(),
                value: format!("m{i}"),
            }],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1,
            }],
        };
        let len = one(0).encoded_len() + 2;
        let groups = split((0..5).map(one).collect(), len * 2);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(split(vec![one(0)], 1).len(), 1, "a large series goes alone");
    }
}
