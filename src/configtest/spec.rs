//! The shape of a `sidewatch test` file: named cases, each with inputs
//! (metric series in promtool's notation, spans, log records) and what the
//! exporters and alert rules should show at given times.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// A whole tests file, or a config's `tests:` section (then only `cases`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestsFile {
    /// The config under test, relative to the tests file.
    pub config: Option<String>,
    /// Event time of the first input: Unix seconds or RFC 3339.
    pub start: Option<yaml_serde::Value>,
    pub tests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// Step between the values of a series (each series may set its own).
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub interval: Duration,
    #[serde(default)]
    pub metrics: Vec<SeriesInput>,
    #[serde(default)]
    pub spans: Vec<SpanInput>,
    #[serde(default)]
    pub logs: Vec<LogInput>,
    #[serde(default)]
    pub expect: Expect,
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricType {
    #[default]
    Gauge,
    /// A monotonic cumulative sum (a counter).
    Sum,
}

/// One metric series: `series: 'name{label="value"}'` and `values` in
/// promtool's expanding notation (`1+2x3` is 1 3 5 7, `5x2` is 5 5 5,
/// `_` skips a step).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesInput {
    pub series: String,
    pub values: String,
    #[serde(default, rename = "type")]
    pub kind: MetricType,
    #[serde(default)]
    pub resource: BTreeMap<String, yaml_serde::Value>,
    #[serde(default, with = "crate::config::duration::option")]
    pub interval: Option<Duration>,
    /// Offset of the first value from the start.
    #[serde(default, with = "crate::config::duration::option")]
    pub at: Option<Duration>,
}

/// `count` copies of a span ending at `at`, then every `every`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanInput {
    #[serde(default, with = "crate::config::duration::option")]
    pub at: Option<Duration>,
    #[serde(default, with = "crate::config::duration::option")]
    pub every: Option<Duration>,
    #[serde(default = "one")]
    pub count: usize,
    pub service: String,
    pub name: String,
    #[serde(default)]
    pub kind: SpanKind,
    #[serde(default = "default_span_duration", with = "crate::config::duration")]
    pub duration: Duration,
    #[serde(default)]
    pub status: SpanStatus,
    #[serde(default)]
    pub attributes: BTreeMap<String, yaml_serde::Value>,
    #[serde(default)]
    pub resource: BTreeMap<String, yaml_serde::Value>,
}

fn one() -> usize {
    1
}

fn default_span_duration() -> Duration {
    Duration::from_millis(10)
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Internal,
    #[default]
    Server,
    Client,
    Producer,
    Consumer,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    Error,
}

/// `count` copies of a log record at `at`, then every `every`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogInput {
    #[serde(default, with = "crate::config::duration::option")]
    pub at: Option<Duration>,
    #[serde(default, with = "crate::config::duration::option")]
    pub every: Option<Duration>,
    #[serde(default = "one")]
    pub count: usize,
    pub body: String,
    /// OTLP severity text (`INFO`, `ERROR`, ...); its number follows.
    pub severity: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, yaml_serde::Value>,
    #[serde(default)]
    pub resource: BTreeMap<String, yaml_serde::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub alerts: Vec<AlertExpectation>,
    #[serde(default)]
    pub metrics: Vec<MetricExpectation>,
    #[serde(default)]
    pub spans: Vec<CountExpectation>,
    #[serde(default)]
    pub logs: Vec<CountExpectation>,
}

/// What is firing for `rule` at `at`, exactly as promtool's
/// `alert_rule_test` reads: an empty `firing` means nothing is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertExpectation {
    #[serde(with = "crate::config::duration")]
    pub at: Duration,
    pub rule: String,
    #[serde(default)]
    pub firing: Vec<FiringAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiringAlert {
    pub severity: Option<String>,
    /// A subset of the alert's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A point an exporter received: the last of the series at or before `at`
/// (the last of all without `at`). `absent: true` asserts there is none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricExpectation {
    pub exporter: Option<String>,
    pub name: String,
    /// A subset of the series' resource and point attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, with = "crate::config::duration::option")]
    pub at: Option<Duration>,
    /// A gauge's or sum's value.
    pub value: Option<f64>,
    /// A histogram's or summary's count and sum.
    pub count: Option<f64>,
    pub sum: Option<f64>,
    /// Absolute difference allowed (default: 1e-9 of the expected value).
    pub tolerance: Option<f64>,
    #[serde(default)]
    pub absent: bool,
}

/// How many spans or log records an exporter received, of those whose
/// attributes (resource, scope-free, item) include `attributes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountExpectation {
    pub exporter: String,
    /// Span name or log body, exactly.
    pub name: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Exactly this many.
    pub count: Option<usize>,
    /// At least this many.
    pub at_least: Option<usize>,
}
