//! `influxdb` exporter: metrics as line protocol to InfluxDB, with the
//! config of the Collector's contrib `influxdb` exporter.
//!
//! - `lines`: one point and its escaping (the `influxdb-line-protocol`
//!   crate's builder);
//! - `convert`: OTLP metrics to points, in the `telegraf-prometheus-v1`
//!   or `-v2` schema.
//!
//! The v2 API (`POST /api/v2/write?org=&bucket=&precision=ns`,
//! `Authorization: Token …`) by default; `v1_compatibility.enabled` writes
//! to InfluxDB 1.x's `POST /write?db=&precision=ns` with basic auth. Each
//! export is split into requests of at most `payload_max_lines` lines and
//! `payload_max_bytes` bytes. 5xx, 429 and connection failures are
//! retried by the queue; any other 4xx (400: a point InfluxDB refuses,
//! such as a field whose type changed) is permanent, since resending
//! cannot help.

pub mod convert;
pub mod lines;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use super::settings::{ExporterSettings, QueueSettings, RetrySettings};
use super::{ExportError, Exporter};
use crate::config::endpoint::EndpointUrl;
use crate::config::secret::Secret;
use crate::signal::Batch;
use convert::Schema;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V1Compatibility {
    #[serde(default)]
    pub enabled: bool,
    /// The database (`db`) written to.
    #[serde(default)]
    pub db: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxDbConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8086`; the write path
    /// is added.
    pub endpoint: EndpointUrl,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub headers: crate::config::headers::Headers,
    #[serde(default)]
    pub tls: Option<crate::tls::client::ClientTlsConfig>,
    #[serde(default)]
    pub org: String,
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub v1_compatibility: V1Compatibility,
    #[serde(default = "default_schema")]
    pub metrics_schema: Schema,
    #[serde(default = "default_max_lines")]
    pub payload_max_lines: usize,
    #[serde(default = "default_max_bytes")]
    pub payload_max_bytes: usize,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

fn default_timeout() -> Duration {
    ExporterSettings::default().timeout
}

fn default_schema() -> Schema {
    Schema::V1
}

/// The Collector's defaults.
fn default_max_lines() -> usize {
    10_000
}

fn default_max_bytes() -> usize {
    10_000_000
}

impl InfluxDbConfig {
    /// Problems as (path below the exporter, message), for `validate`.
    pub fn validate(&self) -> Vec<(&'static [&'static str], String)> {
        let mut errors: Vec<(&'static [&'static str], String)> = Vec::new();
        if self.payload_max_lines == 0 {
            errors.push((
                &["payload_max_lines"],
                "must be more than 0: expected a number of lines such as 10000".to_string(),
            ));
        }
        if self.payload_max_bytes == 0 {
            errors.push((
                &["payload_max_bytes"],
                "must be more than 0: expected a size in bytes such as 10000000".to_string(),
            ));
        }
        if self.v1_compatibility.enabled {
            if self.v1_compatibility.db.is_empty() {
                errors.push((
                    &["v1_compatibility", "db"],
                    "the v1 API writes to a database: set `db`".to_string(),
                ));
            }
            if self.v1_compatibility.password.is_some() && self.v1_compatibility.username.is_none()
            {
                errors.push((
                    &["v1_compatibility", "username"],
                    "a password without a username: set `username` too".to_string(),
                ));
            }
        } else if self.bucket.is_empty() {
            errors.push((
                &["bucket"],
                "the v2 API writes to a bucket: set `bucket` (and `org`), or `v1_compatibility: { enabled: true, db: ... }` for InfluxDB 1.x".to_string(),
            ));
        }
        errors
    }
}

enum Auth {
    None,
    Token(Secret),
    Basic(String, Option<Secret>),
}

pub struct InfluxDbExporter {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Auth,
    schema: Schema,
    max_lines: usize,
    max_bytes: usize,
}

impl InfluxDbExporter {
    pub fn new(config: &InfluxDbConfig) -> Result<Self, String> {
        super::http::refuse_insecure_https(
            config.tls.as_ref(),
            config.endpoint.as_str().starts_with("https://"),
            &config.endpoint.origin(),
        )?;
        let client = super::http::client(
            config.timeout,
            Some(config.headers.map()),
            config.tls.as_ref(),
        )?;
        let v1 = &config.v1_compatibility;
        let (path, params, auth): (&str, Vec<(&str, &str)>, Auth) = if v1.enabled {
            let auth = match &v1.username {
                Some(user) => Auth::Basic(user.clone(), v1.password.clone()),
                None => Auth::None,
            };
            (
                "write",
                vec![("db", v1.db.as_str()), ("precision", "ns")],
                auth,
            )
        } else {
            let auth = config.token.clone().map_or(Auth::None, Auth::Token);
            (
                "api/v2/write",
                vec![
                    ("org", config.org.as_str()),
                    ("bucket", config.bucket.as_str()),
                    ("precision", "ns"),
                ],
                auth,
            )
        };
        let url = reqwest::Url::parse_with_params(&config.endpoint.join(path), &params)
            .map_err(|e| format!("endpoint {}: {e}", config.endpoint.origin()))?;
        Ok(InfluxDbExporter {
            client,
            url,
            auth,
            schema: config.metrics_schema,
            max_lines: config.payload_max_lines,
            max_bytes: config.payload_max_bytes,
        })
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), ExportError> {
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(
                reqwest::header::USER_AGENT,
                concat!("sidewatch/", env!("CARGO_PKG_VERSION")),
            );
        request = match &self.auth {
            Auth::None => request,
            Auth::Token(token) => request.header(
                reqwest::header::AUTHORIZATION,
                format!("Token {}", token.expose()),
            ),
            Auth::Basic(user, password) => {
                request.basic_auth(user, password.as_ref().map(Secret::expose))
            }
        };
        let shown = crate::config::secret::redacted_url(self.url.as_str());
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| super::http::send_error(self.url.as_str(), e))?;
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
            "POST {shown} answered {status}: {}",
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

/// Encoded lines joined into bodies of at most `max_lines` lines and
/// `max_bytes` bytes (a single longer line goes alone).
pub fn payloads(lines: Vec<Vec<u8>>, max_lines: usize, max_bytes: usize) -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut count = 0;
    for line in lines {
        let full = bodies
            .last()
            .is_none_or(|b| count >= max_lines || b.len() + line.len() > max_bytes);
        if full {
            bodies.push(Vec::new());
            count = 0;
        }
        count += 1;
        bodies
            .last_mut()
            .expect("a body was pushed")
            .extend_from_slice(&line);
    }
    bodies
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl Exporter for InfluxDbExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let Batch::Metrics(request) = batch else {
            return Ok(());
        };
        let converted = convert::convert(&request.resource_metrics, self.schema, now_nanos());
        let points = converted.points.len();
        let lines: Vec<Vec<u8>> = converted.points.iter().filter_map(|p| p.encode()).collect();
        let left_out = converted.left_out + (points - lines.len());
        if left_out > 0 {
            // Logged on each attempt (a retry converts again): what has no
            // mapping is named where an operator looks, not counted as a
            // failed export.
            tracing::warn!(
                exporter = "influxdb",
                left_out,
                "data points left out: delta sums and histograms, exponential histograms, points without a value and non-finite values have no line-protocol form in the telegraf-prometheus schemas"
            );
        }
        // A retry resends every body: InfluxDB overwrites a point of the
        // same series and time, so bodies that arrived before are not
        // counted twice.
        for body in payloads(lines, self.max_lines, self.max_bytes) {
            self.post(body).await?;
        }
        Ok(())
    }
}

impl crate::components::compiled::CompiledExporter for InfluxDbConfig {
    fn settings(&self) -> ExporterSettings {
        ExporterSettings {
            timeout: self.timeout,
            sending_queue: self.sending_queue.clone(),
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }

    fn build(
        &self,
        _: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<Arc<dyn super::Exporter>, String> {
        Ok(Arc::new(InfluxDbExporter::new(self)?))
    }
}

/// The registry's compile step for `influxdb`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<InfluxDbConfig>(
        value,
        path,
        decoder,
        |c| c.tls.as_ref(),
        |config, path, decoder| {
            crate::components::compiled::report_at(config.validate(), path, decoder)
                && crate::exporters::compile::refused(
                    InfluxDbExporter::new(config).map(|_| ()),
                    path,
                    decoder,
                )
        },
    )
}

#[cfg(test)]
mod tests;
