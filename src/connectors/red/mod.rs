//! `red` connector: spans in, RED metrics out (rate, errors, duration).
//!
//! Per series (the values of `dimensions`) it keeps cumulative request and
//! error counts, a cumulative duration histogram, and for each window (by
//! default 1 m and 5 m) a sliding window of sub-windows, each holding a
//! DDSketch of durations, the request and error counts, and the slowest
//! spans (for exemplars). Every `emit_interval` it emits:
//!
//! - `red.requests`, `red.errors`: cumulative sums;
//! - `red.duration`: cumulative histogram, in seconds;
//! - per window (attribute `window`): `red.request.rate` and
//!   `red.error.rate` (per second over the window), `red.error.ratio`;
//! - `red.duration.quantile` per window and quantile (attribute
//!   `quantile`, `1` being the maximum): one gauge with a `quantile`
//!   attribute, the shape of a Prometheus summary, so dashboards select a
//!   percentile by label. The p99 and max points carry an exemplar with
//!   the trace id of a span at that latency.
//!
//! A window without spans has rates of 0, and its ratio and quantile
//! series get `NO_RECORDED_VALUE` points (`processors::window_gauges`), so
//! they end downstream instead of repeating the last value.
//!
//! Cardinality is capped by `max_series`: spans of further series fold into
//! one series marked `otel.metric.overflow=true`, and are counted. Spans
//! with ids of the wrong length are left out and counted
//! (`sidewatch_dropped_points_total{component="red",reason="invalid_id"}`).

pub(crate) mod dimensions;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;

use crate::otlp::time::unix_nanos as nanos;
use crate::otlp::value::string_kv;
use crate::processors::Processor;
use crate::processors::window_gauges::{self, gauge_point, no_recorded_value, window_label};
use crate::signal::Batch;
use crate::stats::sketch::DDSketch;
use crate::stats::window::{Mergeable, SlidingWindow};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedConfig {
    #[serde(default = "default_dimensions")]
    pub dimensions: Vec<String>,
    /// Span kinds that are requests; others are ignored.
    #[serde(default = "default_kinds")]
    pub span_kinds: Vec<String>,
    #[serde(
        default = "default_windows",
        deserialize_with = "crate::config::duration::list"
    )]
    pub windows: Vec<Duration>,
    /// Sub-windows per window: the window slides in steps of window / this.
    #[serde(default = "default_sub_windows")]
    pub sub_windows: usize,
    #[serde(default = "default_percentiles")]
    pub percentiles: Vec<f64>,
    #[serde(default = "default_accuracy")]
    pub relative_accuracy: f64,
    /// Upper bounds of the duration histogram, in seconds.
    #[serde(default = "default_buckets")]
    pub histogram_buckets: Vec<f64>,
    #[serde(default = "default_emit", with = "crate::config::duration")]
    pub emit_interval: Duration,
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

fn default_dimensions() -> Vec<String> {
    ["service.name", "operation", "status.class", "span.kind"]
        .map(String::from)
        .to_vec()
}

fn default_kinds() -> Vec<String> {
    vec!["server".into(), "consumer".into()]
}

fn default_windows() -> Vec<Duration> {
    vec![Duration::from_secs(60), Duration::from_secs(300)]
}

fn default_sub_windows() -> usize {
    6
}

fn default_percentiles() -> Vec<f64> {
    vec![0.5, 0.9, 0.95, 0.99]
}

fn default_accuracy() -> f64 {
    0.01
}

fn default_buckets() -> Vec<f64> {
    vec![
        0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

fn default_emit() -> Duration {
    Duration::from_secs(10)
}

fn default_max_series() -> usize {
    10_000
}

/// A validated `red` config: span kinds as their OTLP numbers and the
/// accuracy checked into the empty sketch every sub-window starts from.
#[derive(Debug, Clone)]
pub struct CompiledRed {
    config: RedConfig,
    kinds: Vec<i32>,
    empty_sketch: DDSketch,
}

/// A span kind's OTLP number, for the names `span_kinds` accepts.
fn span_kind_number(kind: &str) -> Option<i32> {
    Some(match kind {
        "unspecified" => 0,
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => return None,
    })
}

impl RedConfig {
    /// The validated form, or every error (field, message).
    pub fn compile(self) -> Result<CompiledRed, Vec<(&'static str, String)>> {
        let mut errors = self.validate();
        let kinds: Vec<i32> = self
            .span_kinds
            .iter()
            .filter_map(|k| span_kind_number(k))
            .collect();
        match DDSketch::new(self.relative_accuracy) {
            Ok(empty_sketch) if errors.is_empty() && kinds.len() == self.span_kinds.len() => {
                Ok(CompiledRed {
                    config: self,
                    kinds,
                    empty_sketch,
                })
            }
            Ok(_) => Err(errors),
            Err(e) => {
                if errors
                    .iter()
                    .all(|(field, _)| *field != "relative_accuracy")
                {
                    errors.push(("relative_accuracy", e.to_string()));
                }
                Err(errors)
            }
        }
    }

    fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if self.dimensions.is_empty() {
            errors.push(("dimensions", "at least one dimension is needed".to_string()));
        }
        if self.windows.is_empty() || self.windows.iter().any(Duration::is_zero) {
            errors.push((
                "windows",
                "expected one or more windows longer than 0, like [1m, 5m]".to_string(),
            ));
        }
        if let Some(bad) = self.percentiles.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            errors.push((
                "percentiles",
                format!("percentile {bad} is outside [0, 1]: write 0.99 for p99"),
            ));
        }
        if !(self.relative_accuracy > 0.0 && self.relative_accuracy < 1.0) {
            errors.push((
                "relative_accuracy",
                format!("{} is outside (0, 1)", self.relative_accuracy),
            ));
        }
        if self.histogram_buckets.windows(2).any(|w| w[0] >= w[1]) {
            errors.push((
                "histogram_buckets",
                "bucket bounds must increase".to_string(),
            ));
        }
        for kind in &self.span_kinds {
            if span_kind_number(kind).is_none() {
                errors.push(("span_kinds", format!("unknown span kind {kind:?}: expected server, client, producer, consumer, internal")));
            }
        }
        if self.sub_windows == 0 {
            errors.push((
                "sub_windows",
                "at least one sub-window is needed".to_string(),
            ));
        }
        errors
    }
}

/// How many of the slowest spans a sub-window remembers for exemplars.
const SLOWEST_KEPT: usize = 4;

#[derive(Debug, Clone)]
struct SubWindow {
    sketch: DDSketch,
    requests: u64,
    errors: u64,
    /// (duration in seconds, trace id, span id, end time), slowest first.
    slowest: Vec<(f64, Vec<u8>, Vec<u8>, u64)>,
}

impl Mergeable for SubWindow {
    fn merge_from(&mut self, other: &Self) {
        let _ = self.sketch.merge(&other.sketch);
        self.requests += other.requests;
        self.errors += other.errors;
        self.slowest.extend(other.slowest.iter().cloned());
        self.slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        self.slowest.truncate(SLOWEST_KEPT);
    }

    fn clear(&mut self) {
        self.sketch.clear();
        self.requests = 0;
        self.errors = 0;
        self.slowest.clear();
    }
}

struct Series {
    attributes: Vec<KeyValue>,
    requests: u64,
    errors: u64,
    bucket_counts: Vec<u64>,
    duration_sum: f64,
    started_unix_nanos: u64,
    windows: Vec<SlidingWindow<SubWindow>>,
    /// When a span last arrived (Unix nanos), for expiry.
    last_seen: u64,
}

pub struct RedConnector {
    config: RedConfig,
    kinds: Vec<i32>,
    series: HashMap<Vec<String>, Series>,
    empty: SubWindow,
    overflow_key: Vec<String>,
    /// Spans that fell into the overflow series.
    pub overflowed_spans: u64,
    emit: crate::processors::schedule::Every,
    stats: std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>,
}

impl crate::components::compiled::CompiledConnector for CompiledRed {
    fn build(
        &self,
        _: &crate::components::compiled::ConnectorContext<'_>,
    ) -> Box<dyn crate::processors::Processor> {
        Box::new(RedConnector::new(self.clone()))
    }
}

/// The registry's compile step for `red`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledConnector>> {
    let config: RedConfig = decoder.decode(value, path)?;
    match config.compile() {
        Ok(compiled) => Some(std::sync::Arc::new(compiled)),
        Err(errors) => {
            crate::components::compiled::report(errors, path, decoder);
            None
        }
    }
}

impl RedConnector {
    pub fn new(compiled: CompiledRed) -> Self {
        let CompiledRed {
            config,
            kinds,
            empty_sketch,
        } = compiled;
        let empty = SubWindow {
            sketch: empty_sketch,
            requests: 0,
            errors: 0,
            slowest: Vec::new(),
        };
        let config_emit_interval = config.emit_interval;
        RedConnector {
            stats: std::sync::Arc::new(crate::telemetry::cardinality::CardinalityStats::new(
                config.max_series,
            )),
            overflow_key: vec!["\u{0}overflow".to_string()],
            config,
            kinds,
            series: HashMap::new(),
            empty,
            overflowed_spans: 0,
            emit: crate::processors::schedule::Every::new(config_emit_interval),
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Drops series without a span for twice the longest window: their
    /// windows are empty and their counters stop (a series that returns
    /// starts afresh, with a new start time, as OTLP cumulative sums do).
    pub fn expire(&mut self, now: SystemTime) {
        let ttl = 2 * self
            .config
            .windows
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .as_nanos() as u64;
        let now = nanos(now);
        self.series
            .retain(|_, s| now.saturating_sub(s.last_seen) <= ttl);
    }

    fn new_series(&self, key: &[String], now: u64) -> Series {
        let attributes = if key == self.overflow_key.as_slice() {
            vec![KeyValue {
                key: "otel.metric.overflow".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                }),
                ..Default::default()
            }]
        } else {
            self.config
                .dimensions
                .iter()
                .zip(key)
                .map(|(d, v)| string_kv(d, v.clone()))
                .collect()
        };
        Series {
            attributes,
            requests: 0,
            errors: 0,
            bucket_counts: vec![0; self.config.histogram_buckets.len() + 1],
            duration_sum: 0.0,
            started_unix_nanos: now,
            last_seen: now,
            windows: self
                .config
                .windows
                .iter()
                .map(|w| {
                    SlidingWindow::new(
                        w.as_nanos() as u64,
                        self.config.sub_windows,
                        self.empty.clone(),
                    )
                })
                .collect(),
        }
    }

    /// Records every span of a traces batch at time `now`.
    pub fn record(&mut self, batch: &Batch, now: SystemTime) {
        let Batch::Traces(request) = batch else {
            return;
        };
        let now_nanos = nanos(now);
        for resource_spans in &request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                if !self.kinds.contains(&span.kind) {
                    continue;
                }
                // Receivers refuse such spans; other sources may not.
                if crate::datamodel::ids::span(span, String::new).is_err() {
                    crate::telemetry::dropped::count(
                        crate::telemetry::dropped::Component::Red,
                        crate::datamodel::Violation::InvalidId,
                    );
                    continue;
                }
                let mut key: Vec<String> = self
                    .config
                    .dimensions
                    .iter()
                    .map(|d| dimensions::value(d, span, resource))
                    .collect();
                if !self.series.contains_key(&key) && self.series.len() >= self.config.max_series {
                    self.overflowed_spans += 1;
                    key = self.overflow_key.clone();
                }
                if !self.series.contains_key(&key) {
                    let series = self.new_series(&key, now_nanos);
                    self.series.insert(key.clone(), series);
                }
                let series = self.series.get_mut(&key).expect("inserted above");
                series.last_seen = now_nanos;
                let seconds = span
                    .end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano) as f64
                    / 1e9;
                let error = dimensions::is_error(span);
                series.requests += 1;
                series.errors += error as u64;
                series.duration_sum += seconds;
                let bucket = self
                    .config
                    .histogram_buckets
                    .partition_point(|b| *b < seconds);
                series.bucket_counts[bucket] += 1;
                let at = if span.end_time_unix_nano > 0 {
                    span.end_time_unix_nano
                } else {
                    now_nanos
                };
                for window in &mut series.windows {
                    let Some(sub) = window.at(at, now_nanos) else {
                        continue;
                    };
                    sub.sketch.add(seconds);
                    sub.requests += 1;
                    sub.errors += error as u64;
                    if sub.slowest.len() < SLOWEST_KEPT
                        || sub.slowest.last().is_some_and(|s| seconds > s.0)
                    {
                        sub.slowest.push((
                            seconds,
                            span.trace_id.clone(),
                            span.span_id.clone(),
                            at,
                        ));
                        sub.slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
                        sub.slowest.truncate(SLOWEST_KEPT);
                    }
                }
            }
        }
    }

    /// The metrics for every series at `now`.
    pub fn metrics(&self, now: SystemTime) -> ExportMetricsServiceRequest {
        let now_nanos = nanos(now);
        let levels = window_gauges::quantile_levels(&self.config.percentiles);
        let (mut requests, mut errors, mut histograms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut request_rate, mut error_rate, mut error_ratio, mut quantiles) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let int_point = |series: &Series, value: u64| NumberDataPoint {
            attributes: series.attributes.clone(),
            start_time_unix_nano: series.started_unix_nanos,
            time_unix_nano: now_nanos,
            value: Some(number_data_point::Value::AsInt(value as i64)),
            ..Default::default()
        };
        for series in self.series.values() {
            requests.push(int_point(series, series.requests));
            errors.push(int_point(series, series.errors));
            histograms.push(HistogramDataPoint {
                attributes: series.attributes.clone(),
                start_time_unix_nano: series.started_unix_nanos,
                time_unix_nano: now_nanos,
                count: series.requests,
                sum: Some(series.duration_sum),
                bucket_counts: series.bucket_counts.clone(),
                explicit_bounds: self.config.histogram_buckets.clone(),
                ..Default::default()
            });
            for (window, sliding) in self.config.windows.iter().zip(&series.windows) {
                let merged = sliding.merged(now_nanos, self.empty.clone());
                let mut attributes = series.attributes.clone();
                attributes.push(string_kv("window", window_label(*window)));
                let seconds = window.as_secs_f64();
                request_rate.push(gauge_point(
                    merged.requests as f64 / seconds,
                    attributes.clone(),
                    now_nanos,
                ));
                error_rate.push(gauge_point(
                    merged.errors as f64 / seconds,
                    attributes.clone(),
                    now_nanos,
                ));
                error_ratio.push(if merged.requests > 0 {
                    gauge_point(
                        merged.errors as f64 / merged.requests as f64,
                        attributes.clone(),
                        now_nanos,
                    )
                } else {
                    no_recorded_value(attributes.clone(), now_nanos)
                });
                for (level, mut point) in
                    window_gauges::quantile_points(&merged.sketch, &levels, &attributes, now_nanos)
                {
                    if let Some(number_data_point::Value::AsDouble(value)) = point.value
                        && level >= 0.99
                    {
                        point.exemplars = exemplar(&merged.slowest, value);
                    }
                    quantiles.push(point);
                }
            }
        }
        let cumulative = AggregationTemporality::Cumulative as i32;
        let sum = |name: &str, unit: &str, description: &str, data_points| Metric {
            name: name.into(),
            unit: unit.into(),
            description: description.into(),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: cumulative,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let gauge = |name: &str, unit: &str, description: &str, data_points| Metric {
            name: name.into(),
            unit: unit.into(),
            description: description.into(),
            data: Some(metric::Data::Gauge(Gauge { data_points })),
            ..Default::default()
        };
        let metrics = vec![
            sum(
                "red.requests",
                "{request}",
                "Requests (server and consumer spans) seen.",
                requests,
            ),
            sum(
                "red.errors",
                "{request}",
                "Requests that failed: span status ERROR or HTTP 5xx.",
                errors,
            ),
            Metric {
                name: "red.duration".into(),
                unit: "s".into(),
                description: "Request durations.".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: histograms,
                    aggregation_temporality: cumulative,
                })),
                ..Default::default()
            },
            gauge(
                "red.request.rate",
                "{request}/s",
                "Requests per second over the window.",
                request_rate,
            ),
            gauge(
                "red.error.rate",
                "{request}/s",
                "Failed requests per second over the window.",
                error_rate,
            ),
            gauge(
                "red.error.ratio",
                "1",
                "Share of requests that failed over the window.",
                error_ratio,
            ),
            gauge(
                "red.duration.quantile",
                "s",
                "Request duration percentiles over the window (quantile 1 is the maximum).",
                quantiles,
            ),
        ];
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![string_kv("service.name", "sidewatch")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "sidewatch/red".into(),
                        ..Default::default()
                    }),
                    metrics: metrics
                        .into_iter()
                        .filter(|m| crate::signal::metric_point_count(m) > 0)
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

/// The remembered span closest to `value`: the trace to open from a slow
/// percentile.
fn exemplar(slowest: &[(f64, Vec<u8>, Vec<u8>, u64)], value: f64) -> Vec<Exemplar> {
    slowest
        .iter()
        .min_by(|a, b| (a.0 - value).abs().total_cmp(&(b.0 - value).abs()))
        .map(|(seconds, trace_id, span_id, at)| Exemplar {
            time_unix_nano: *at,
            trace_id: trace_id.clone(),
            span_id: span_id.clone(),
            value: Some(
                opentelemetry_proto::tonic::metrics::v1::exemplar::Value::AsDouble(*seconds),
            ),
            ..Default::default()
        })
        .into_iter()
        .collect()
}

impl Processor for RedConnector {
    fn process(&mut self, batch: Batch, now: SystemTime, _out: &mut Vec<Batch>) {
        self.record(&batch, now);
        self.stats.publish(self.series.len(), self.overflowed_spans);
    }

    fn cardinality(
        &self,
    ) -> Option<std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>> {
        Some(self.stats.clone())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(crate::processors::schedule::tick_for(
            self.config.emit_interval,
        ))
    }

    fn tick(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        if !self.emit.is_due(now) || self.series.is_empty() {
            return;
        }
        self.emit.emitted(now);
        out.push(Batch::Metrics(self.metrics(now).into()));
        // After emitting, so a series' last figures still go out once.
        self.expire(now);
        self.stats.publish(self.series.len(), self.overflowed_spans);
    }

    fn flush(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        if !self.series.is_empty() {
            out.push(Batch::Metrics(self.metrics(now).into()));
        }
    }
}
