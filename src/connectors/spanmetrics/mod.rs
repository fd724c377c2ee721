//! `spanmetrics` (also `span_metrics`) connector: the Collector's span
//! metrics, by the same names, units and dimensions, so its dashboards
//! work unchanged:
//!
//! - `{namespace}.calls` (default `traces.span.metrics.calls`): a
//!   monotonic sum of spans;
//! - `{namespace}.duration`: a histogram of span durations in `ms` (or
//!   `s`), explicit buckets (the Collector's defaults) or exponential;
//!
//! - `{namespace}.events` when `events.enabled`: a monotonic sum of span
//!   events, per series of the span's dimensions plus `events.dimensions`
//!   (looked up on the span, then the event, then the resource);
//!
//! per series of `service.name`, `span.name`, `span.kind`
//! (`SPAN_KIND_SERVER`, ...), `status.code` (`STATUS_CODE_ERROR`, ...) and
//! the configured `dimensions`, one resource of metrics per resource of
//! spans (its attributes copied), scope `spanmetricsconnector`. Spans
//! without a `service.name` are skipped, as in the Collector.
//!
//! Every `metrics_flush_interval` it emits: cumulative (every series, its
//! totals since it was first seen) or delta (the series that had spans in
//! the interval, then reset). Exemplars (trace and span id of a span) are
//! held per histogram point until the next flush. Series are bounded by
//! `aggregation_cardinality_limit` (an overflow series), resources by
//! `resource_metrics_cache_size`.
//!
//! `red` stays the richer connector (windowed rates and percentiles);
//! windowed percentiles of this histogram come from the `percentiles`
//! processor on the metrics pipeline.

pub mod config;
pub mod histogram;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, Histogram, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};

use crate::otlp::time::unix_nanos as nanos;
use crate::otlp::value::{any_value_text, string_kv};
use crate::processors::Processor;
use crate::signal::Batch;
pub use config::SpanMetricsConfig;
use config::{DEFAULT_DIMENSIONS, Temporality};
use histogram::DurationHistogram;

/// The Collector's names for span kinds and status codes.
fn kind_text(kind: i32) -> &'static str {
    match SpanKind::try_from(kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

fn status_text(span: &Span) -> &'static str {
    let code = span.status.as_ref().map(|s| s.code).unwrap_or_default();
    match StatusCode::try_from(code).unwrap_or(StatusCode::Unset) {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
}

struct Series {
    attributes: Vec<KeyValue>,
    calls: u64,
    histogram: DurationHistogram,
    started_unix_nanos: u64,
    last_seen: u64,
    /// Spans since the last flush (delta: emitted only then).
    updated: bool,
}

/// A series of the events metric: a count and nothing else.
struct EventSeries {
    attributes: Vec<KeyValue>,
    count: u64,
    started_unix_nanos: u64,
    last_seen: u64,
    updated: bool,
}

struct ResourceState {
    attributes: Vec<KeyValue>,
    /// By the dimension values' text, in dimension order.
    series: HashMap<Vec<String>, Series>,
    /// The events metric's series, keyed the same way.
    events: HashMap<Vec<String>, EventSeries>,
    last_seen: u64,
}

pub struct SpanMetricsConnector {
    config: SpanMetricsConfig,
    /// The default dimensions left after `exclude_dimensions`.
    defaults: Vec<&'static str>,
    bounds: Vec<f64>,
    resources: HashMap<Vec<String>, ResourceState>,
    series_count: usize,
    /// Spans that fell into an overflow series.
    pub overflowed_spans: u64,
    /// When the previous flush happened: the start of delta points.
    last_flush: Option<u64>,
    emit: crate::processors::schedule::Every,
    stats: std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>,
}

const OVERFLOW_KEY: &str = "\u{0}overflow";

/// The attribute of the series that spans beyond the cardinality limit
/// fall into.
fn overflow_attribute() -> KeyValue {
    KeyValue {
        key: "otel.metric.overflow".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(true)),
        }),
        ..Default::default()
    }
}

impl ResourceState {
    fn new(attributes: &[KeyValue], now_nanos: u64) -> ResourceState {
        ResourceState {
            attributes: attributes.to_vec(),
            series: HashMap::new(),
            events: HashMap::new(),
            last_seen: now_nanos,
        }
    }
}

impl SpanMetricsConnector {
    pub fn new(config: SpanMetricsConfig) -> Self {
        let defaults = DEFAULT_DIMENSIONS
            .into_iter()
            .filter(|d| !config.exclude_dimensions.iter().any(|e| e == d))
            .collect();
        let limit = config.aggregation_cardinality_limit;
        SpanMetricsConnector {
            bounds: config.bounds(),
            defaults,
            resources: HashMap::new(),
            series_count: 0,
            overflowed_spans: 0,
            last_flush: None,
            emit: crate::processors::schedule::Every::new(config.metrics_flush_interval),
            stats: std::sync::Arc::new(crate::telemetry::cardinality::CardinalityStats::new(
                if limit == 0 { usize::MAX } else { limit },
            )),
            config,
        }
    }

    pub fn series_count(&self) -> usize {
        self.series_count
    }

    fn new_histogram(&self) -> DurationHistogram {
        match &self.config.histogram.exponential {
            Some(e) => DurationHistogram::exponential(e.max_size),
            None => DurationHistogram::explicit(self.bounds.len()),
        }
    }

    fn resource_key(&self, attributes: &[KeyValue]) -> Vec<String> {
        let keys = &self.config.resource_metrics_key_attributes;
        let mut key: Vec<String> = attributes
            .iter()
            .filter(|kv| keys.is_empty() || keys.contains(&kv.key))
            .map(|kv| {
                let value = kv.value.as_ref().map(any_value_text).unwrap_or_default();
                format!("{}={value}", kv.key)
            })
            .collect();
        key.sort();
        key
    }

    /// The series' attributes and key for a span; for the events metric,
    /// `event` adds the event dimensions (looked up on the span, then the
    /// event, then the resource, as the Collector does).
    fn dimensions(
        &self,
        span: &Span,
        resource: &[KeyValue],
        event: Option<&[KeyValue]>,
    ) -> (Vec<KeyValue>, Vec<String>) {
        let mut attributes = Vec::new();
        for name in &self.defaults {
            let value = match *name {
                "service.name" => find(resource, "service.name").map(any_value_text),
                "span.name" => Some(span.name.clone()),
                "span.kind" => Some(kind_text(span.kind).to_string()),
                _ => Some(status_text(span).to_string()),
            };
            attributes.push(string_kv(*name, value.unwrap_or_default()));
        }
        let extra = self.config.dimensions.iter();
        let event_dimensions = event
            .map(|_| self.config.events.dimensions.as_slice())
            .unwrap_or_default();
        for dimension in extra.chain(event_dimensions) {
            let value = find(&span.attributes, &dimension.name)
                .or_else(|| event.and_then(|e| find(e, &dimension.name)))
                .or_else(|| find(resource, &dimension.name))
                .cloned()
                .or_else(|| {
                    dimension
                        .default
                        .clone()
                        .map(crate::otlp::value::string_value)
                });
            if let Some(value) = value {
                attributes.push(KeyValue {
                    key: dimension.name.clone(),
                    value: Some(value),
                    ..Default::default()
                });
            }
        }
        let key = attributes
            .iter()
            .map(|kv| {
                let value = kv.value.as_ref().map(any_value_text).unwrap_or_default();
                format!("{}={value}", kv.key)
            })
            .collect();
        (attributes, key)
    }

    /// Drops the resource seen least recently, with its series.
    fn evict_oldest_resource(&mut self) {
        let oldest = self
            .resources
            .iter()
            .min_by_key(|(_, r)| r.last_seen)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest
            && let Some(resource) = self.resources.remove(&key)
        {
            self.series_count -= resource.series.len() + resource.events.len();
        }
    }

    /// Counts every span of a traces batch at `now`.
    pub fn record(&mut self, batch: &Batch, now: SystemTime) {
        let Batch::Traces(request) = batch else {
            return;
        };
        let now_nanos = nanos(now);
        let unit = self.config.histogram.unit;
        let exemplars = self.config.exemplars.enabled;
        let exemplar_limit = self.config.exemplars.limit();
        let cardinality_limit = match self.config.aggregation_cardinality_limit {
            0 => usize::MAX,
            limit => limit,
        };
        for resource_spans in &request.resource_spans {
            let resource = resource_spans
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            // The Collector skips spans of a resource without a service.
            if find(resource, "service.name").is_none() {
                continue;
            }
            let resource_key = self.resource_key(resource);
            if !self.resources.contains_key(&resource_key)
                && self.resources.len() >= self.config.resource_metrics_cache_size
            {
                self.evict_oldest_resource();
            }
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                // Receivers refuse such spans; other sources may not.
                if crate::datamodel::ids::span(span, String::new).is_err() {
                    crate::telemetry::dropped::count(
                        crate::telemetry::dropped::Component::SpanMetrics,
                        crate::datamodel::Violation::InvalidId,
                    );
                    continue;
                }
                if self.config.events.enabled {
                    self.record_events(span, resource, &resource_key, now_nanos, cardinality_limit);
                }
                let (attributes, mut key) = self.dimensions(span, resource, None);
                let histogram = self.new_histogram();
                let series_count = self.series_count;
                let state = self
                    .resources
                    .entry(resource_key.clone())
                    .or_insert_with(|| ResourceState::new(resource, now_nanos));
                state.last_seen = now_nanos;
                let mut attributes = attributes;
                if !state.series.contains_key(&key) && series_count >= cardinality_limit {
                    self.overflowed_spans += 1;
                    key = vec![OVERFLOW_KEY.to_string()];
                    attributes = vec![overflow_attribute()];
                }
                let mut added = false;
                let series = state.series.entry(key).or_insert_with(|| {
                    added = true;
                    Series {
                        attributes,
                        calls: 0,
                        histogram,
                        started_unix_nanos: now_nanos,
                        last_seen: now_nanos,
                        updated: false,
                    }
                });
                if added {
                    self.series_count += 1;
                }
                series.calls += 1;
                series.last_seen = now_nanos;
                series.updated = true;
                if !self.config.histogram.disable {
                    let duration = Duration::from_nanos(
                        span.end_time_unix_nano
                            .saturating_sub(span.start_time_unix_nano),
                    );
                    let value = unit.of(duration);
                    series.histogram.record(value, &self.bounds);
                    if exemplars {
                        let time = if span.end_time_unix_nano > 0 {
                            span.end_time_unix_nano
                        } else {
                            now_nanos
                        };
                        series.histogram.exemplar(
                            value,
                            time,
                            &span.trace_id,
                            &span.span_id,
                            exemplar_limit,
                        );
                    }
                }
            }
        }
    }

    /// Counts each event of `span` in the events metric.
    fn record_events(
        &mut self,
        span: &Span,
        resource: &[KeyValue],
        resource_key: &[String],
        now_nanos: u64,
        cardinality_limit: usize,
    ) {
        for event in &span.events {
            let (mut attributes, mut key) =
                self.dimensions(span, resource, Some(&event.attributes));
            let series_count = self.series_count;
            let state = self
                .resources
                .entry(resource_key.to_vec())
                .or_insert_with(|| ResourceState::new(resource, now_nanos));
            state.last_seen = now_nanos;
            if !state.events.contains_key(&key) && series_count >= cardinality_limit {
                self.overflowed_spans += 1;
                key = vec![OVERFLOW_KEY.to_string()];
                attributes = vec![overflow_attribute()];
            }
            let mut added = false;
            let series = state.events.entry(key).or_insert_with(|| {
                added = true;
                EventSeries {
                    attributes,
                    count: 0,
                    started_unix_nanos: now_nanos,
                    last_seen: now_nanos,
                    updated: false,
                }
            });
            if added {
                self.series_count += 1;
            }
            series.count += 1;
            series.last_seen = now_nanos;
            series.updated = true;
        }
    }

    fn name(&self, name: &str) -> String {
        if self.config.namespace.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.config.namespace)
        }
    }

    /// The metrics of every series to send at `now`; afterwards, delta
    /// series are reset, exemplars cleared and expired series dropped.
    pub fn flush_metrics(&mut self, now: SystemTime) -> Option<ExportMetricsServiceRequest> {
        let now_nanos = nanos(now);
        let delta = self.config.aggregation_temporality == Temporality::Delta;
        let temporality = if delta {
            AggregationTemporality::Delta
        } else {
            AggregationTemporality::Cumulative
        } as i32;
        let delta_start = self.last_flush.unwrap_or(0);
        let mut resource_metrics = Vec::new();
        for state in self.resources.values() {
            let (mut calls, mut explicit, mut exponential) = (Vec::new(), Vec::new(), Vec::new());
            let mut series: Vec<&Series> = state
                .series
                .values()
                .filter(|s| !delta || s.updated)
                .collect();
            // A stable order, so successive flushes read the same.
            series.sort_by(|a, b| {
                a.attributes.len().cmp(&b.attributes.len()).then_with(|| {
                    crate::otlp::value::attributes_text(&a.attributes)
                        .cmp(&crate::otlp::value::attributes_text(&b.attributes))
                })
            });
            for s in series {
                let start = if delta {
                    delta_start.max(s.started_unix_nanos)
                } else {
                    s.started_unix_nanos
                };
                calls.push(NumberDataPoint {
                    attributes: s.attributes.clone(),
                    start_time_unix_nano: start,
                    time_unix_nano: now_nanos,
                    value: Some(number_data_point::Value::AsInt(s.calls as i64)),
                    ..Default::default()
                });
                if self.config.histogram.disable {
                    continue;
                }
                if self.config.histogram.exponential.is_some() {
                    let mut point = s.histogram.exponential_point();
                    point.attributes = s.attributes.clone();
                    point.start_time_unix_nano = start;
                    point.time_unix_nano = now_nanos;
                    exponential.push(point);
                } else {
                    let mut point = s.histogram.explicit_point(&self.bounds);
                    point.attributes = s.attributes.clone();
                    point.start_time_unix_nano = start;
                    point.time_unix_nano = now_nanos;
                    explicit.push(point);
                }
            }
            let mut event_series: Vec<&EventSeries> = state
                .events
                .values()
                .filter(|s| !delta || s.updated)
                .collect();
            event_series.sort_by_cached_key(|s| {
                (
                    s.attributes.len(),
                    crate::otlp::value::attributes_text(&s.attributes),
                )
            });
            let events: Vec<NumberDataPoint> = event_series
                .into_iter()
                .map(|s| NumberDataPoint {
                    attributes: s.attributes.clone(),
                    start_time_unix_nano: if delta {
                        delta_start.max(s.started_unix_nanos)
                    } else {
                        s.started_unix_nanos
                    },
                    time_unix_nano: now_nanos,
                    value: Some(number_data_point::Value::AsInt(s.count as i64)),
                    ..Default::default()
                })
                .collect();
            if calls.is_empty() && events.is_empty() {
                continue;
            }
            let mut metrics = Vec::new();
            if !calls.is_empty() {
                metrics.push(Metric {
                    name: self.name("calls"),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: calls,
                        aggregation_temporality: temporality,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                });
            }
            let unit = self.config.histogram.unit.as_str();
            if !explicit.is_empty() {
                metrics.push(Metric {
                    name: self.name("duration"),
                    unit: unit.into(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: explicit,
                        aggregation_temporality: temporality,
                    })),
                    ..Default::default()
                });
            }
            if !exponential.is_empty() {
                metrics.push(Metric {
                    name: self.name("duration"),
                    unit: unit.into(),
                    data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: exponential,
                        aggregation_temporality: temporality,
                    })),
                    ..Default::default()
                });
            }
            if !events.is_empty() {
                metrics.push(Metric {
                    name: self.name("events"),
                    data: Some(metric::Data::Sum(Sum {
                        data_points: events,
                        aggregation_temporality: temporality,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                });
            }
            resource_metrics.push(ResourceMetrics {
                resource: Some(Resource {
                    attributes: state.attributes.clone(),
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "spanmetricsconnector".into(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        self.after_flush(now_nanos, delta);
        (!resource_metrics.is_empty()).then_some(ExportMetricsServiceRequest { resource_metrics })
    }

    fn after_flush(&mut self, now_nanos: u64, delta: bool) {
        self.last_flush = Some(now_nanos);
        let expiration = self.config.metrics_expiration.as_nanos() as u64;
        let mut removed = 0;
        for state in self.resources.values_mut() {
            let before = state.series.len() + state.events.len();
            if delta {
                // Delta series restart each interval: nothing to keep.
                state.series.clear();
                state.events.clear();
            } else if expiration > 0 {
                state
                    .series
                    .retain(|_, s| now_nanos.saturating_sub(s.last_seen) < expiration);
                state
                    .events
                    .retain(|_, s| now_nanos.saturating_sub(s.last_seen) < expiration);
            }
            removed += before - state.series.len() - state.events.len();
            for series in state.series.values_mut() {
                series.updated = false;
                series.histogram.exemplars.clear();
            }
            for series in state.events.values_mut() {
                series.updated = false;
            }
        }
        self.series_count -= removed;
        self.resources
            .retain(|_, r| !r.series.is_empty() || !r.events.is_empty());
    }
}

impl Processor for SpanMetricsConnector {
    fn process(&mut self, batch: Batch, now: SystemTime, _out: &mut Vec<Batch>) {
        self.record(&batch, now);
        self.stats.publish(self.series_count, self.overflowed_spans);
    }

    fn cardinality(
        &self,
    ) -> Option<std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>> {
        Some(self.stats.clone())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(crate::processors::schedule::tick_for(
            self.config.metrics_flush_interval,
        ))
    }

    fn tick(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        if !self.emit.is_due(now) {
            return;
        }
        self.emit.emitted(now);
        if let Some(request) = self.flush_metrics(now) {
            out.push(Batch::Metrics(request.into()));
        }
        self.stats.publish(self.series_count, self.overflowed_spans);
    }

    fn flush(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        if let Some(request) = self.flush_metrics(now) {
            out.push(Batch::Metrics(request.into()));
        }
    }
}

impl crate::components::compiled::CompiledConnector for SpanMetricsConfig {
    fn build(&self, _: &crate::components::compiled::ConnectorContext<'_>) -> Box<dyn Processor> {
        Box::new(SpanMetricsConnector::new(self.clone()))
    }
}

/// The registry's compile step for `spanmetrics`: each error at its path
/// below the connector (`[i]` segments are list indices).
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledConnector>> {
    let config: SpanMetricsConfig = decoder.decode(value, path)?;
    let errors = config.validate();
    let valid = errors.is_empty();
    for (keys, message) in errors {
        let at = keys.iter().fold(path.clone(), |at, k| {
            match k
                .strip_prefix('[')
                .and_then(|k| k.strip_suffix(']'))
                .and_then(|k| k.parse().ok())
            {
                Some(i) => at.index(i),
                None => at.key(k.clone()),
            }
        });
        decoder.error(at, message);
    }
    valid.then(|| std::sync::Arc::new(config) as _)
}

#[cfg(test)]
mod tests;
