//! The top level of the YAML file, before compilation. Component bodies
//! stay raw values here: each is decoded by its own type's config struct.

use std::collections::BTreeMap;

use serde::Deserialize;
use yaml_serde::Value;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub receivers: BTreeMap<String, Value>,
    #[serde(default)]
    pub processors: BTreeMap<String, Value>,
    #[serde(default)]
    pub exporters: BTreeMap<String, Value>,
    #[serde(default)]
    pub connectors: BTreeMap<String, Value>,
    /// Accepted for compatibility with Collector files; sidewatch has none yet.
    #[serde(default)]
    pub extensions: BTreeMap<String, Value>,
    pub service: Option<Value>,
    /// Cases for `sidewatch test`; `run` and `validate` leave them alone.
    #[serde(default, rename = "tests")]
    pub _tests: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    #[serde(default)]
    pub pipelines: BTreeMap<String, Value>,
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// How long shutdown may take to drain and flush before it gives up.
    #[serde(default = "default_shutdown_timeout", with = "crate::config::duration")]
    pub shutdown_timeout: std::time::Duration,
    #[serde(default)]
    pub extensions: Vec<String>,
    /// Refuse new data while resident memory is high.
    #[serde(default)]
    pub memory_limiter: Option<crate::pipeline::memory::MemoryLimiterConfig>,
}

fn default_shutdown_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    #[serde(default)]
    pub metrics: RawTelemetryMetrics,
    #[serde(default)]
    pub logs: RawTelemetryLogs,
    /// The Collector's resource attributes of its own telemetry: accepted,
    /// with a warning.
    #[serde(default)]
    pub resource: BTreeMap<String, Value>,
    /// Credentials the alerts API's writes (acknowledgements, silences)
    /// need, in the otlp receiver's `auth` form.
    #[serde(default)]
    pub auth: Option<crate::receivers::otlp::auth::AuthConfig>,
    /// The dashboard at `/` of the telemetry endpoint; `false` turns it off.
    #[serde(default = "default_dashboard")]
    pub dashboard: bool,
}

fn default_dashboard() -> bool {
    true
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            metrics: RawTelemetryMetrics::default(),
            logs: RawTelemetryLogs::default(),
            resource: BTreeMap::new(),
            dashboard: default_dashboard(),
            auth: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetryMetrics {
    /// `none` turns the telemetry endpoint off.
    #[serde(default = "default_level")]
    pub level: String,
    /// Default 127.0.0.1:8888, unless a reader below names one.
    #[serde(default)]
    pub address: Option<crate::config::endpoint::ListenAddress>,
    /// The Collector's OpenTelemetry SDK readers (see plan.rs).
    #[serde(default)]
    pub readers: Vec<Value>,
}

impl Default for RawTelemetryMetrics {
    fn default() -> Self {
        RawTelemetryMetrics {
            level: default_level(),
            address: None,
            readers: Vec::new(),
        }
    }
}

fn default_level() -> String {
    "normal".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetryLogs {
    /// A tracing filter such as `info` or `sidewatch=debug`; RUST_LOG wins.
    pub level: Option<String>,
    /// `console` (default) or `json`.
    #[serde(default)]
    pub encoding: crate::telemetry::logs::LogEncoding,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    #[serde(default)]
    pub receivers: Vec<String>,
    #[serde(default)]
    pub processors: Vec<String>,
    #[serde(default)]
    pub exporters: Vec<String>,
}
