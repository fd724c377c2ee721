//! `percentiles` processor: windowed percentiles of selected metrics.
//!
//! - Histograms (explicit and exponential): the processor turns each point
//!   into bucket deltas (`cumulative`: cumulative points are differenced
//!   against the previous point of the series, exponential ones brought to
//!   common buckets first by `exponential`; a reset makes the point count
//!   from zero), then spreads each bucket's new observations evenly over
//!   the bucket, as Prometheus's `histogram_quantile` assumes, into a
//!   DDSketch per sub-window.
//! - Gauges and sums: each value is one observation.
//!
//! Every `emit_interval` it emits one gauge per metric, `<name>.quantile`,
//! with the series' attributes plus `quantile` (`0.5`..`0.99`, `1` = max)
//! and `window` (`1m`, `5m`): the same scheme as the `red` connector, the
//! shape of a Prometheus summary (`processors::window_gauges`). A window
//! without observations emits `NO_RECORDED_VALUE` points, so its series
//! stop rather than repeat the last value. The metrics themselves pass
//! unchanged. Series are capped by `max_series`; the rest fold into one
//! overflow series marked `otel.metric.overflow=true`. Points that break
//! the data model (`datamodel::points`) are left out and counted in
//! `sidewatch_dropped_points_total{component="percentiles"}`.

mod cumulative;
mod exponential;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric,
};
use serde::Deserialize;

use crate::datamodel::points;
use crate::otlp::time::unix_nanos as nanos;
use crate::otlp::value::any_value_text;
use crate::otlp::value::string_kv;
use crate::processors::Processor;
use crate::processors::window_gauges;
use crate::signal::Batch;
use crate::stats::sketch::DDSketch;
use crate::stats::window::SlidingWindow;
use crate::telemetry::dropped::{self, Component};
use cumulative::Point;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentilesConfig {
    /// Metric names: whole-name regular expressions.
    pub metrics: Vec<String>,
    #[serde(default = "default_percentiles")]
    pub percentiles: Vec<f64>,
    #[serde(
        default = "default_windows",
        deserialize_with = "crate::config::duration::list"
    )]
    pub windows: Vec<Duration>,
    #[serde(default = "default_sub_windows")]
    pub sub_windows: usize,
    #[serde(default = "default_accuracy")]
    pub relative_accuracy: f64,
    #[serde(default = "default_emit", with = "crate::config::duration")]
    pub emit_interval: Duration,
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

fn default_percentiles() -> Vec<f64> {
    vec![0.5, 0.9, 0.95, 0.99]
}
fn default_windows() -> Vec<Duration> {
    vec![Duration::from_secs(60), Duration::from_secs(300)]
}
fn default_sub_windows() -> usize {
    6
}
fn default_accuracy() -> f64 {
    0.01
}
fn default_emit() -> Duration {
    Duration::from_secs(10)
}
fn default_max_series() -> usize {
    10_000
}

/// A validated `percentiles` config: its metric patterns compiled and its
/// accuracy checked into the empty sketch every sub-window starts from.
#[derive(Debug, Clone)]
pub struct CompiledPercentiles {
    config: PercentilesConfig,
    names: Vec<regex::Regex>,
    empty: DDSketch,
}

impl PercentilesConfig {
    /// The validated form, or every error (field, message).
    pub fn compile(self) -> Result<CompiledPercentiles, Vec<(&'static str, String)>> {
        let mut errors = self.validate();
        let names = self
            .metrics
            .iter()
            .filter_map(|p| regex::Regex::new(&format!("^(?:{p})$")).ok())
            .collect::<Vec<_>>();
        let empty = DDSketch::new(self.relative_accuracy);
        match empty {
            Ok(empty) if errors.is_empty() && names.len() == self.metrics.len() => {
                Ok(CompiledPercentiles {
                    config: self,
                    names,
                    empty,
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
        if self.metrics.is_empty() {
            errors.push(("metrics", "name at least one metric".to_string()));
        }
        for pattern in &self.metrics {
            if let Err(e) = regex::Regex::new(&format!("^(?:{pattern})$")) {
                errors.push((
                    "metrics",
                    format!(
                        "invalid regular expression {pattern:?}: {}",
                        crate::config::one_line(&e)
                    ),
                ));
            }
        }
        if let Some(bad) = self.percentiles.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            errors.push((
                "percentiles",
                format!("percentile {bad} is outside [0, 1]: write 0.99 for p99"),
            ));
        }
        if self.windows.is_empty() || self.windows.iter().any(Duration::is_zero) {
            errors.push((
                "windows",
                "expected one or more windows longer than 0, like [1m, 5m]".to_string(),
            ));
        }
        if !(self.relative_accuracy > 0.0 && self.relative_accuracy < 1.0) {
            errors.push((
                "relative_accuracy",
                format!("{} is outside (0, 1)", self.relative_accuracy),
            ));
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

struct Series {
    name: String,
    attributes: Vec<KeyValue>,
    windows: Vec<SlidingWindow<DDSketch>>,
    /// The series' last cumulative histogram point, to take deltas.
    previous: Option<Point>,
    /// When a point last arrived (Unix nanos), for expiry.
    last_seen: u64,
}

pub struct PercentilesProcessor {
    config: PercentilesConfig,
    names: Vec<regex::Regex>,
    series: HashMap<String, Series>,
    empty: DDSketch,
    emit: crate::processors::schedule::Every,
    pub overflowed_points: u64,
    stats: std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>,
}

/// `n` observations spread evenly over (low, high].
fn spread(sketch: &mut DDSketch, low: f64, high: f64, n: u64) {
    if n == 0 {
        return;
    }
    if !(low.is_finite() && high.is_finite()) || high <= low {
        sketch.add_n(if high.is_finite() { high } else { low }, n);
        return;
    }
    let parts = n.min(16);
    for i in 0..parts {
        let share = n / parts + u64::from(i < n % parts);
        let at = low + (high - low) * (i as f64 + 0.5) / parts as f64;
        sketch.add_n(at, share);
    }
}

impl crate::components::compiled::CompiledProcessor for CompiledPercentiles {
    fn build(&self) -> Box<dyn Processor> {
        Box::new(PercentilesProcessor::new(self.clone()))
    }
}

/// The registry's compile step for `percentiles`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    let config: PercentilesConfig = decoder.decode(value, path)?;
    match config.compile() {
        Ok(compiled) => Some(std::sync::Arc::new(compiled)),
        Err(errors) => {
            crate::components::compiled::report(errors, path, decoder);
            None
        }
    }
}

impl PercentilesProcessor {
    pub fn new(compiled: CompiledPercentiles) -> Self {
        let CompiledPercentiles {
            config,
            names,
            empty,
        } = compiled;
        let config_max_series = config.max_series;
        let config_emit_interval = config.emit_interval;
        PercentilesProcessor {
            names,
            config,
            series: HashMap::new(),
            empty,
            emit: crate::processors::schedule::Every::new(config_emit_interval),
            overflowed_points: 0,
            stats: std::sync::Arc::new(crate::telemetry::cardinality::CardinalityStats::new(
                config_max_series,
            )),
        }
    }

    /// Drops series that have had no point for longer than the longest
    /// window (they have nothing left to report), so series that come and
    /// go do not accumulate.
    fn expire(&mut self, now: u64) {
        let longest = self
            .config
            .windows
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .as_nanos() as u64;
        self.series
            .retain(|_, s| now.saturating_sub(s.last_seen) <= longest);
    }

    fn publish(&self) {
        self.stats
            .publish(self.series.len(), self.overflowed_points);
    }

    fn series_for(&mut self, name: &str, resource: &[KeyValue], point: &[KeyValue]) -> &mut Series {
        let mut key = name.to_string();
        for kv in resource.iter().chain(point) {
            key.push('\u{1f}');
            key.push_str(&kv.key);
            key.push('=');
            key.push_str(&kv.value.as_ref().map(any_value_text).unwrap_or_default());
        }
        if !self.series.contains_key(&key) && self.series.len() >= self.config.max_series {
            self.overflowed_points += 1;
            key = format!("{name}\u{0}overflow");
        }
        let windows: Vec<SlidingWindow<DDSketch>> = self
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
            .collect();
        let overflow = key.ends_with("\u{0}overflow");
        self.series.entry(key).or_insert_with(|| Series {
            name: name.to_string(),
            attributes: if overflow {
                vec![KeyValue {
                    key: "otel.metric.overflow".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    }),
                    ..Default::default()
                }]
            } else {
                point.iter().chain(resource).cloned().collect()
            },
            windows,
            previous: None,
            last_seen: 0,
        })
    }

    pub fn record(&mut self, batch: &Batch, now: SystemTime) {
        let Batch::Metrics(request) = batch else {
            return;
        };
        let now_nanos = nanos(now);
        for resource in &request.resource_metrics {
            let resource_attributes = resource
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if !self.names.iter().any(|r| r.is_match(&metric.name)) {
                    continue;
                }
                match &metric.data {
                    Some(metric::Data::Gauge(g)) => self.record_numbers(
                        &metric.name,
                        resource_attributes,
                        &g.data_points,
                        false,
                        now_nanos,
                    ),
                    Some(metric::Data::Sum(s)) => self.record_numbers(
                        &metric.name,
                        resource_attributes,
                        &s.data_points,
                        s.is_monotonic,
                        now_nanos,
                    ),
                    Some(metric::Data::Histogram(h)) => {
                        let delta =
                            h.aggregation_temporality == AggregationTemporality::Delta as i32;
                        for p in &h.data_points {
                            if let Err(violation) = points::histogram(p) {
                                dropped::count(Component::Percentiles, violation);
                                continue;
                            }
                            self.record_histogram(
                                &metric.name,
                                resource_attributes,
                                &p.attributes,
                                Point::explicit(p),
                                delta,
                                p.time_unix_nano,
                                now_nanos,
                            );
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(h)) => {
                        let delta =
                            h.aggregation_temporality == AggregationTemporality::Delta as i32;
                        for p in &h.data_points {
                            if let Err(violation) = points::exponential(p) {
                                dropped::count(Component::Percentiles, violation);
                                continue;
                            }
                            self.record_histogram(
                                &metric.name,
                                resource_attributes,
                                &p.attributes,
                                Point::exponential(p),
                                delta,
                                p.time_unix_nano,
                                now_nanos,
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn record_numbers(
        &mut self,
        name: &str,
        resource: &[KeyValue],
        data_points: &[NumberDataPoint],
        monotonic: bool,
        now: u64,
    ) {
        for p in data_points {
            let value = match points::number(p, monotonic) {
                Ok(Some(value)) => value,
                Ok(None) => continue,
                Err(violation) => {
                    dropped::count(Component::Percentiles, violation);
                    continue;
                }
            };
            let at = if p.time_unix_nano > 0 {
                p.time_unix_nano
            } else {
                now
            };
            let series = self.series_for(name, resource, &p.attributes);
            series.last_seen = now;
            for window in &mut series.windows {
                if let Some(sketch) = window.at(at, now) {
                    sketch.add(value);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record_histogram(
        &mut self,
        name: &str,
        resource: &[KeyValue],
        attributes: &[KeyValue],
        point: Point,
        delta: bool,
        time: u64,
        now: u64,
    ) {
        let series = self.series_for(name, resource, attributes);
        series.last_seen = now;
        let new_observations = if delta {
            point.histogram.ranges()
        } else {
            let ranges = point.since(series.previous.as_ref()).ranges();
            series.previous = Some(point);
            ranges
        };
        let at = if time > 0 { time } else { now };
        for window in &mut series.windows {
            if let Some(sketch) = window.at(at, now) {
                for (low, high, n) in &new_observations {
                    spread(sketch, *low, *high, *n);
                }
            }
        }
    }

    pub fn metrics(&self, now: SystemTime) -> Vec<Metric> {
        let now_nanos = nanos(now);
        let mut by_name: HashMap<&str, Vec<NumberDataPoint>> = HashMap::new();
        let levels = window_gauges::quantile_levels(&self.config.percentiles);
        for series in self.series.values() {
            for (window, sliding) in self.config.windows.iter().zip(&series.windows) {
                let merged = sliding.merged(now_nanos, self.empty.clone());
                let mut attributes = series.attributes.clone();
                attributes.push(string_kv("window", window_gauges::window_label(*window)));
                by_name.entry(&series.name).or_default().extend(
                    window_gauges::quantile_points(&merged, &levels, &attributes, now_nanos)
                        .into_iter()
                        .map(|(_, point)| point),
                );
            }
        }
        by_name
            .into_iter()
            .map(|(name, data_points)| Metric {
                name: format!("{name}.quantile"),
                description: format!(
                    "Percentiles of {name} over sliding windows (quantile 1 is the maximum)."
                ),
                data: Some(metric::Data::Gauge(Gauge { data_points })),
                ..Default::default()
            })
            .collect()
    }
}

impl Processor for PercentilesProcessor {
    fn process(&mut self, batch: Batch, now: SystemTime, out: &mut Vec<Batch>) {
        self.record(&batch, now);
        self.publish();
        out.push(batch);
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
        let metrics = self.metrics(now);
        // After emitting: an expired series' windows are all empty, so its
        // last emission is the "no data" that ends its series downstream.
        self.expire(nanos(now));
        self.publish();
        push_metrics(metrics, out);
    }

    /// The windows as of `now` once more, as the `red` connector does: the
    /// observations since the last emission are not lost at shutdown or at
    /// the end of a replay.
    fn flush(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        if !self.series.is_empty() {
            push_metrics(self.metrics(now), out);
        }
    }
}

fn push_metrics(metrics: Vec<Metric>, out: &mut Vec<Batch>) {
    if metrics.is_empty() {
        return;
    }
    out.push(Batch::Metrics(
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![string_kv("service.name", "sidewatch")],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "sidewatch/percentiles".into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .into(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        Histogram, HistogramDataPoint, number_data_point,
    };
    use std::time::UNIX_EPOCH;

    fn histogram(counts: Vec<u64>, time: u64) -> Batch {
        let count = counts.iter().sum();
        Batch::Metrics(
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![Metric {
                            name: "latency".into(),
                            data: Some(metric::Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    time_unix_nano: time,
                                    count,
                                    bucket_counts: counts,
                                    explicit_bounds: vec![1.0, 2.0, 3.0],
                                    min: Some(0.0),
                                    max: Some(4.0),
                                    ..Default::default()
                                }],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            })),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .into(),
        )
    }

    fn value(p: &PercentilesProcessor, now: SystemTime, q: &str, window: &str) -> f64 {
        let metrics = p.metrics(now);
        let point = metrics[0]
            .data
            .as_ref()
            .and_then(|d| match d {
                metric::Data::Gauge(g) => g.data_points.iter().find(|p| {
                    let get = |k: &str| {
                        p.attributes
                            .iter()
                            .find(|a| a.key == k)
                            .and_then(|a| a.value.as_ref())
                            .map(any_value_text)
                    };
                    get("quantile").as_deref() == Some(q)
                        && get("window").as_deref() == Some(window)
                }),
                _ => None,
            })
            .cloned()
            .unwrap();
        match point.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            _ => f64::NAN,
        }
    }

    #[test]
    fn cumulative_histograms_become_windowed_percentiles_across_resets() {
        let config: PercentilesConfig =
            yaml_serde::from_str("{ metrics: [latency], windows: [1m], sub_windows: 6 }").unwrap();
        let mut p = PercentilesProcessor::new(config.compile().unwrap());
        let s = 1_000_000_000u64;
        let t0 = 1_700_000_000 * s;
        let at = |n: u64| UNIX_EPOCH + Duration::from_nanos(t0 + n * s);
        // 100 observations in (0, 1]: the median is about 0.5.
        p.record(&histogram(vec![100, 0, 0, 0], t0), at(0));
        assert!((value(&p, at(0), "0.5", "1m") - 0.5).abs() < 0.05);
        // Cumulative: 100 more, all in (2, 3]; only the delta is new.
        p.record(&histogram(vec![100, 0, 100, 0], t0 + 10 * s), at(10));
        assert!((value(&p, at(10), "0.99", "1m") - 2.99).abs() < 0.05);
        // 70 s later the first two points have slid out; a reset (counts went
        // down) counts from zero: 10 new observations in (1, 2].
        p.record(&histogram(vec![0, 10, 0, 0], t0 + 75 * s), at(75));
        let median = value(&p, at(75), "0.5", "1m");
        assert!((1.0..=2.0).contains(&median), "{median}");
        assert_eq!(value(&p, at(75), "1", "1m").round(), 2.0);
    }

    fn gauge(name: &str, host: &str, value: f64, time: u64) -> Batch {
        Batch::Metrics(
            ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![Metric {
                            name: name.into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![NumberDataPoint {
                                    time_unix_nano: time,
                                    attributes: vec![string_kv("host", host)],
                                    value: Some(number_data_point::Value::AsDouble(value)),
                                    ..Default::default()
                                }],
                            })),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .into(),
        )
    }

    #[test]
    fn delta_exponential_histograms_are_summed_not_differenced() {
        use opentelemetry_proto::tonic::metrics::v1::{
            ExponentialHistogram, ExponentialHistogramDataPoint, exponential_histogram_data_point,
        };
        let config: PercentilesConfig =
            yaml_serde::from_str("{ metrics: [latency], windows: [1m] }").unwrap();
        let mut p = PercentilesProcessor::new(config.compile().unwrap());
        let s = 1_000_000_000u64;
        let t0 = 1_700_000_000 * s;
        let at = |n: u64| UNIX_EPOCH + Duration::from_nanos(t0 + n * s);
        // Scale 0: bucket i holds (2^i, 2^(i+1)]. 90 observations in (1, 2],
        // 10 in (8, 16], sent twice as deltas: 200 observations in all.
        let point = |time: u64| {
            Batch::Metrics(
                ExportMetricsServiceRequest {
                    resource_metrics: vec![ResourceMetrics {
                        scope_metrics: vec![ScopeMetrics {
                            metrics: vec![Metric {
                                name: "latency".into(),
                                data: Some(metric::Data::ExponentialHistogram(
                                    ExponentialHistogram {
                                        data_points: vec![ExponentialHistogramDataPoint {
                                            time_unix_nano: time,
                                            count: 100,
                                            scale: 0,
                                            positive: Some(
                                                exponential_histogram_data_point::Buckets {
                                                    offset: 0,
                                                    bucket_counts: vec![90, 0, 0, 10],
                                                },
                                            ),
                                            ..Default::default()
                                        }],
                                        aggregation_temporality: AggregationTemporality::Delta
                                            as i32,
                                    },
                                )),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                }
                .into(),
            )
        };
        p.record(&point(t0), at(0));
        p.record(&point(t0 + s), at(1));
        let median = value(&p, at(1), "0.5", "1m");
        assert!((1.0..=2.0).contains(&median), "{median}");
        let p95 = value(&p, at(1), "0.95", "1m");
        assert!((8.0..=16.0).contains(&p95), "{p95}");
        let merged = p.series.values().next().unwrap().windows[0].merged(t0 + s, p.empty.clone());
        assert_eq!(merged.count(), 200, "deltas add up");
    }

    #[test]
    fn gauges_get_value_percentiles_and_series_beyond_the_cap_overflow() {
        let config: PercentilesConfig =
            yaml_serde::from_str("{ metrics: [queue], windows: [1m], max_series: 2 }").unwrap();
        let mut p = PercentilesProcessor::new(config.compile().unwrap());
        let s = 1_000_000_000u64;
        let t0 = 1_700_000_000 * s;
        let at = |n: u64| UNIX_EPOCH + Duration::from_nanos(t0 + n * s);
        for i in 1..=100u64 {
            p.record(&gauge("queue", "a", i as f64, t0 + i * 100_000_000), at(10));
        }
        let p90 = value(&p, at(10), "0.9", "1m");
        assert!((p90 - 90.0).abs() <= 0.9, "{p90}");
        // Unselected metrics are ignored; a third host overflows.
        p.record(&gauge("other", "a", 1.0, t0), at(10));
        p.record(&gauge("queue", "b", 1.0, t0), at(10));
        p.record(&gauge("queue", "c", 1.0, t0), at(10));
        p.record(&gauge("queue", "d", 1.0, t0), at(10));
        assert_eq!(p.series.len(), 3, "a, b, and the overflow series");
        assert_eq!(p.overflowed_points, 2);
        let overflow = p
            .series
            .values()
            .find(|s| s.attributes.iter().any(|a| a.key == "otel.metric.overflow"))
            .expect("an overflow series");
        assert_eq!(overflow.windows[0].merged(t0, p.empty.clone()).count(), 2);
    }

    fn points(metrics: &[Metric]) -> Vec<&NumberDataPoint> {
        metrics
            .iter()
            .filter_map(|m| match &m.data {
                Some(metric::Data::Gauge(g)) => Some(&g.data_points),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn label(point: &NumberDataPoint, key: &str) -> String {
        point
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .map(any_value_text)
            .unwrap_or_default()
    }

    #[test]
    fn the_maximum_is_emitted_once_even_when_percentiles_list_it_first() {
        let config: PercentilesConfig =
            yaml_serde::from_str("{ metrics: [queue], windows: [1m], percentiles: [1, 0.5, 0.9] }")
                .unwrap();
        let mut p = PercentilesProcessor::new(config.compile().unwrap());
        let t0 = 1_700_000_000 * 1_000_000_000u64;
        p.record(
            &gauge("queue", "a", 3.0, t0),
            UNIX_EPOCH + Duration::from_nanos(t0),
        );
        let metrics = p.metrics(UNIX_EPOCH + Duration::from_nanos(t0));
        let mut levels: Vec<String> = points(&metrics)
            .iter()
            .map(|p| label(p, "quantile"))
            .collect();
        levels.sort();
        assert_eq!(levels, ["0.5", "0.9", "1"]);
    }

    #[test]
    fn an_empty_window_emits_no_recorded_values_until_the_series_expires() {
        let config: PercentilesConfig = yaml_serde::from_str(
            "{ metrics: [queue], windows: [1m, 5m], percentiles: [0.5], emit_interval: 10s }",
        )
        .unwrap();
        let mut p = PercentilesProcessor::new(config.compile().unwrap());
        let s = 1_000_000_000u64;
        let t0 = 1_700_000_000 * s;
        let at = |n: u64| UNIX_EPOCH + Duration::from_nanos(t0 + n * s);
        p.record(&gauge("queue", "a", 3.0, t0), at(0));
        let by_window = |metrics: &[Metric], window: &str| -> Vec<NumberDataPoint> {
            points(metrics)
                .into_iter()
                .filter(|p| label(p, "window") == window)
                .cloned()
                .collect()
        };
        let no_data = |point: &NumberDataPoint| {
            window_gauges::has_no_recorded_value(point.flags) && point.value.is_none()
        };
        // 70 s later the 1m window is empty, the 5m one is not.
        let metrics = p.metrics(at(70));
        let one_minute = by_window(&metrics, "1m");
        assert_eq!(one_minute.len(), 2, "p50 and max, both without data");
        assert!(one_minute.iter().all(no_data), "{one_minute:?}");
        let five_minutes = by_window(&metrics, "5m");
        assert_eq!(five_minutes.len(), 2);
        assert!(
            five_minutes
                .iter()
                .all(|p| p.flags == 0 && value_of(p) == 3.0)
        );

        // Past the longest window the series expires, but only after one
        // last emission saying that neither window has data.
        let mut out = Vec::new();
        p.tick(at(290), &mut out);
        assert!(out.is_empty(), "the first tick starts the emission clock");
        p.tick(at(301), &mut out);
        p.tick(at(312), &mut out);
        assert_eq!(
            out.len(),
            1,
            "one emission, then nothing: the series is gone"
        );
        let Batch::Metrics(last) = &out[0] else {
            panic!("metrics expected");
        };
        let last = &last.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(points(last).len(), 4);
        assert!(points(last).into_iter().all(no_data));
        assert!(p.series.is_empty());
    }

    fn value_of(point: &NumberDataPoint) -> f64 {
        match point.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            _ => f64::NAN,
        }
    }
}
