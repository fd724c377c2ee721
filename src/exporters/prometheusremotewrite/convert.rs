//! OTLP metrics to remote write series, named and labelled as the
//! `prometheus` exporter names them (its `naming` and label helpers), so a
//! series is the same whether Prometheus scrapes it or receives it:
//!
//! - gauges and non-monotonic sums: one sample; monotonic sums: `_total`;
//! - histograms: `_bucket{le}` (cumulative), `_sum`, `_count`; exponential
//!   histograms as explicit buckets, as the scrape endpoint shows them;
//! - summaries: `{quantile}`, `_sum`, `_count`;
//! - a point flagged `NO_RECORDED_VALUE` is sent as Prometheus's staleness
//!   marker, so the series ends at once;
//! - `target_info` per resource, with the resource's attributes.
//!
//! Delta sums and histograms are accumulated into cumulative series here
//! (the Collector's exporter drops them): the exporter keeps their running
//! totals, at most [`DELTA_SERIES_LIMIT`] series; beyond it new delta
//! series are left out and counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ResourceMetrics, number_data_point,
};

use super::prompb::{Label, Sample, TimeSeries};
use crate::datamodel::points;
use crate::exporters::prometheus::naming::{label_name, metric_name};
use crate::exporters::prometheus::store::{
    Labels, attribute_labels, exponential_to_explicit, job_and_instance,
};
use crate::otlp::value::number_text;
use crate::processors::window_gauges::has_no_recorded_value;
use crate::telemetry::dropped::{self, Component};

/// Delta series whose running totals are kept, at most.
pub const DELTA_SERIES_LIMIT: usize = 100_000;

/// Prometheus's staleness marker (`value.StaleNaN`): a NaN with this exact
/// bit pattern ends a series.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Prefix of every metric name (`namespace_`).
    pub namespace: Option<String>,
    /// Unit and `_total` suffixes, as the compatibility spec adds them.
    pub add_metric_suffixes: bool,
    /// Every resource attribute as a label of every series.
    pub resource_to_telemetry: bool,
    pub target_info: bool,
    /// Added to every series unless the series has the label already.
    pub external_labels: Labels,
}

enum Total {
    Number(f64),
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

pub struct Converter {
    options: Options,
    /// Running totals of delta series, by metric name and labels.
    deltas: Mutex<HashMap<(String, Labels), Total>>,
    /// Delta points left out because their series would be new beyond
    /// [`DELTA_SERIES_LIMIT`] (not a data-model violation, so not in
    /// `telemetry::dropped`); the exporter takes and logs it.
    pub left_out: AtomicU64,
}

/// Series being built: labels (without `__name__`) per name, samples.
#[derive(Default)]
struct Output {
    series: BTreeMap<(String, Labels), Vec<Sample>>,
}

impl Output {
    fn push(&mut self, name: String, labels: Labels, value: f64, timestamp: i64) {
        self.series
            .entry((name, labels))
            .or_default()
            .push(Sample { value, timestamp });
    }

    fn histogram(
        &mut self,
        name: &str,
        labels: &Labels,
        histogram: (&[f64], &[u64], f64, u64),
        timestamp: i64,
        stale: bool,
    ) {
        let (bounds, counts, sum, count) = histogram;
        let value = |v: f64| if stale { f64::from_bits(STALE_NAN) } else { v };
        let mut cumulative = 0u64;
        for (bound, c) in bounds.iter().zip(counts) {
            cumulative = cumulative.saturating_add(*c);
            let labels = with_label(labels, "le", number_text(*bound));
            self.push(
                format!("{name}_bucket"),
                labels,
                value(cumulative as f64),
                timestamp,
            );
        }
        let inf = with_label(labels, "le", "+Inf".into());
        self.push(
            format!("{name}_bucket"),
            inf,
            value(count as f64),
            timestamp,
        );
        self.push(format!("{name}_sum"), labels.clone(), value(sum), timestamp);
        self.push(
            format!("{name}_count"),
            labels.clone(),
            value(count as f64),
            timestamp,
        );
    }

    fn into_series(self) -> Vec<TimeSeries> {
        self.series
            .into_iter()
            .map(|((name, labels), mut samples)| {
                samples.sort_by_key(|s| s.timestamp);
                let mut labels: Vec<Label> = labels
                    .into_iter()
                    .map(|(name, value)| Label { name, value })
                    .collect();
                labels.push(Label {
                    name: "__name__".into(),
                    value: name,
                });
                labels.sort();
                TimeSeries { labels, samples }
            })
            .collect()
    }
}

fn with_label(labels: &Labels, key: &str, value: String) -> Labels {
    let mut labels = labels.clone();
    labels.push((key.to_string(), value));
    labels.sort();
    labels
}

fn millis(time_unix_nano: u64, now_millis: i64) -> i64 {
    if time_unix_nano == 0 {
        now_millis
    } else {
        (time_unix_nano / 1_000_000) as i64
    }
}

impl Converter {
    pub fn new(options: Options) -> Self {
        Converter {
            options,
            deltas: Mutex::new(HashMap::new()),
            left_out: AtomicU64::new(0),
        }
    }

    fn name(&self, name: &str, unit: &str, is_gauge: bool, is_counter: bool) -> String {
        let full = match self.options.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}_{name}"),
            _ => name.to_string(),
        };
        if self.options.add_metric_suffixes {
            metric_name(&full, unit, is_gauge, is_counter)
        } else {
            metric_name(&full, "", false, false)
        }
    }

    /// Writes one histogram point, first added to its running total when
    /// it is a delta; a new delta series beyond the limit is left out.
    fn emit_histogram(
        &self,
        out: &mut Output,
        (name, labels): (&str, Labels),
        point: Total,
        delta: bool,
        (timestamp, stale): (i64, bool),
    ) {
        let total = if delta {
            match self.accumulate((name.to_string(), labels.clone()), point) {
                Some(total) => total,
                None => return,
            }
        } else {
            point
        };
        if let Total::Histogram {
            bounds,
            counts,
            sum,
            count,
        } = &total
        {
            out.histogram(
                name,
                &labels,
                (bounds, counts, *sum, *count),
                timestamp,
                stale,
            );
        }
    }

    /// Adds a delta to its series' running total and returns the total;
    /// `None` when the series is new and the limit is reached.
    fn accumulate(&self, key: (String, Labels), add: Total) -> Option<Total> {
        let mut deltas = crate::pipeline::contain::lock(&self.deltas, "prometheusremotewrite");
        let full = deltas.len() >= DELTA_SERIES_LIMIT;
        match deltas.get_mut(&key) {
            None if full => {
                self.left_out.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => {
                let copy = add.copy();
                deltas.insert(key, add);
                Some(copy)
            }
            Some(total) => {
                match (&mut *total, add) {
                    (Total::Number(t), Total::Number(a)) => *t += a,
                    (
                        Total::Histogram {
                            bounds,
                            counts,
                            sum,
                            count,
                        },
                        Total::Histogram {
                            bounds: b2,
                            counts: c2,
                            sum: s2,
                            count: n2,
                        },
                    ) if *bounds == b2 => {
                        for (c, a) in counts.iter_mut().zip(c2) {
                            *c = c.saturating_add(a);
                        }
                        *sum += s2;
                        *count = count.saturating_add(n2);
                    }
                    // Another shape under the same name: start over.
                    (slot, add) => *slot = add,
                }
                Some(total.copy())
            }
        }
    }

    /// The series of one export request, each with its samples in order.
    pub fn convert(
        &self,
        resource_metrics: &[ResourceMetrics],
        now_millis: i64,
    ) -> Vec<TimeSeries> {
        let mut out = Output::default();
        for resource in resource_metrics {
            let attributes = resource
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            let base = job_and_instance(attributes);
            let resource_labels = if self.options.resource_to_telemetry {
                attribute_labels(attributes)
            } else {
                Vec::new()
            };
            let mut latest = None::<i64>;
            for scope in &resource.scope_metrics {
                let mut scope_labels = base.clone();
                if let Some(s) = scope.scope.as_ref().filter(|s| !s.name.is_empty()) {
                    scope_labels.push(("otel_scope_name".into(), s.name.clone()));
                    if !s.version.is_empty() {
                        scope_labels.push(("otel_scope_version".into(), s.version.clone()));
                    }
                }
                // Earlier entries win: job and instance over attributes,
                // point attributes over resource ones, all over external
                // labels (the Collector's order).
                let labels_of = |attrs: &[KeyValue]| {
                    let mut labels = scope_labels.clone();
                    labels.extend(attribute_labels(attrs));
                    labels.extend(resource_labels.iter().cloned());
                    labels.extend(self.options.external_labels.iter().cloned());
                    labels.sort_by(|a, b| a.0.cmp(&b.0));
                    labels.dedup_by(|a, b| a.0 == b.0);
                    labels
                };
                for metric in &scope.metrics {
                    let unit = metric.unit.as_str();
                    match &metric.data {
                        Some(Data::Gauge(g)) => {
                            let name = self.name(&metric.name, unit, true, false);
                            for p in &g.data_points {
                                let ts = millis(p.time_unix_nano, now_millis);
                                latest = latest.max(Some(ts));
                                let value = if has_no_recorded_value(p.flags) {
                                    f64::from_bits(STALE_NAN)
                                } else {
                                    number(&p.value)
                                };
                                out.push(name.clone(), labels_of(&p.attributes), value, ts);
                            }
                        }
                        Some(Data::Sum(s)) => {
                            let delta =
                                s.aggregation_temporality == AggregationTemporality::Delta as i32;
                            let name = if s.is_monotonic {
                                self.name(&metric.name, unit, false, true)
                            } else {
                                self.name(&metric.name, unit, true, false)
                            };
                            for p in &s.data_points {
                                let ts = millis(p.time_unix_nano, now_millis);
                                latest = latest.max(Some(ts));
                                let labels = labels_of(&p.attributes);
                                if has_no_recorded_value(p.flags) {
                                    out.push(name.clone(), labels, f64::from_bits(STALE_NAN), ts);
                                    continue;
                                }
                                let mut value = number(&p.value);
                                if delta {
                                    let key = (name.clone(), labels.clone());
                                    match self.accumulate(key, Total::Number(value)) {
                                        Some(Total::Number(total)) => value = total,
                                        _ => continue,
                                    }
                                }
                                out.push(name.clone(), labels, value, ts);
                            }
                        }
                        Some(Data::Histogram(h)) => {
                            let delta =
                                h.aggregation_temporality == AggregationTemporality::Delta as i32;
                            let name = self.name(&metric.name, unit, false, false);
                            for p in &h.data_points {
                                let ts = millis(p.time_unix_nano, now_millis);
                                latest = latest.max(Some(ts));
                                let labels = labels_of(&p.attributes);
                                let stale = has_no_recorded_value(p.flags);
                                if !stale && let Err(violation) = points::histogram(p) {
                                    dropped::count(Component::PrometheusRemoteWrite, violation);
                                    continue;
                                }
                                let mut counts = p.bucket_counts.clone();
                                counts.resize(p.explicit_bounds.len() + 1, 0);
                                let point = Total::Histogram {
                                    bounds: p.explicit_bounds.clone(),
                                    counts,
                                    sum: p.sum.unwrap_or(0.0),
                                    count: p.count,
                                };
                                self.emit_histogram(
                                    &mut out,
                                    (&name, labels),
                                    point,
                                    delta && !stale,
                                    (ts, stale),
                                );
                            }
                        }
                        Some(Data::ExponentialHistogram(h)) => {
                            let delta =
                                h.aggregation_temporality == AggregationTemporality::Delta as i32;
                            let name = self.name(&metric.name, unit, false, false);
                            for p in &h.data_points {
                                let ts = millis(p.time_unix_nano, now_millis);
                                latest = latest.max(Some(ts));
                                let labels = labels_of(&p.attributes);
                                let stale = has_no_recorded_value(p.flags);
                                if !stale && let Err(violation) = points::exponential(p) {
                                    dropped::count(Component::PrometheusRemoteWrite, violation);
                                    continue;
                                }
                                let (bounds, counts) = exponential_to_explicit(p);
                                let point = Total::Histogram {
                                    bounds,
                                    counts,
                                    sum: p.sum.unwrap_or(0.0),
                                    count: p.count,
                                };
                                self.emit_histogram(
                                    &mut out,
                                    (&name, labels),
                                    point,
                                    delta && !stale,
                                    (ts, stale),
                                );
                            }
                        }
                        Some(Data::Summary(s)) => {
                            let name = self.name(&metric.name, unit, false, false);
                            for p in &s.data_points {
                                let ts = millis(p.time_unix_nano, now_millis);
                                latest = latest.max(Some(ts));
                                let labels = labels_of(&p.attributes);
                                let stale = has_no_recorded_value(p.flags);
                                if !stale && let Err(violation) = points::summary(p) {
                                    dropped::count(Component::PrometheusRemoteWrite, violation);
                                    continue;
                                }
                                let value =
                                    |v: f64| if stale { f64::from_bits(STALE_NAN) } else { v };
                                for q in &p.quantile_values {
                                    let labels =
                                        with_label(&labels, "quantile", number_text(q.quantile));
                                    out.push(name.clone(), labels, value(q.value), ts);
                                }
                                out.push(format!("{name}_sum"), labels.clone(), value(p.sum), ts);
                                out.push(
                                    format!("{name}_count"),
                                    labels,
                                    value(p.count as f64),
                                    ts,
                                );
                            }
                        }
                        None => {}
                    }
                }
            }
            if self.options.target_info
                && let Some(ts) = latest
            {
                let mut labels = base.clone();
                labels.extend(attribute_labels(attributes).into_iter().filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "service_name" | "service_namespace" | "service_instance_id"
                    )
                }));
                // Nothing but job and instance: the series would say nothing.
                if labels.len() > base.len() {
                    labels.extend(self.options.external_labels.iter().cloned());
                    labels.sort_by(|a, b| a.0.cmp(&b.0));
                    labels.dedup_by(|a, b| a.0 == b.0);
                    out.push("target_info".into(), labels, 1.0, ts);
                }
            }
        }
        out.into_series()
    }
}

impl Total {
    fn copy(&self) -> Total {
        match self {
            Total::Number(n) => Total::Number(*n),
            Total::Histogram {
                bounds,
                counts,
                sum,
                count,
            } => Total::Histogram {
                bounds: bounds.clone(),
                counts: counts.clone(),
                sum: *sum,
                count: *count,
            },
        }
    }
}

fn number(value: &Option<number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    }
}

/// External labels as written, their names sanitized like every label.
pub fn external_labels(written: &BTreeMap<String, String>) -> Labels {
    written
        .iter()
        .map(|(k, v)| {
            let name = if k.starts_with("__") {
                k.clone()
            } else {
                label_name(k)
            };
            (name, v.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> Vec<ResourceMetrics> {
        vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "api"), kv("host.name", "h1")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn text(series: &[TimeSeries]) -> Vec<String> {
        series
            .iter()
            .flat_map(|s| {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|l| format!("{}={}", l.name, l.value))
                    .collect();
                s.samples
                    .iter()
                    .map(move |x| format!("{} {} @{}", labels.join(","), x.value, x.timestamp))
            })
            .collect()
    }

    fn delta_counter(value: f64, time: u64) -> Metric {
        Metric {
            name: "requests".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    attributes: vec![kv("http.route", "/a")],
                    time_unix_nano: time,
                    value: Some(number_data_point::Value::AsDouble(value)),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }
    }

    #[test]
    fn names_labels_and_accumulates_deltas() {
        let converter = Converter::new(Options {
            namespace: Some("app".into()),
            add_metric_suffixes: true,
            target_info: true,
            external_labels: vec![("cluster".into(), "c1".into()), ("job".into(), "x".into())],
            ..Default::default()
        });
        let gauge = Metric {
            name: "queue.depth".into(),
            unit: "By".into(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: 5_000_000,
                    value: Some(number_data_point::Value::AsInt(7)),
                    ..Default::default()
                }],
            })),
            ..Default::default()
        };
        converter.convert(&request(vec![delta_counter(2.0, 1_000_000)]), 0);
        let series = converter.convert(&request(vec![gauge, delta_counter(3.0, 2_000_000)]), 0);
        assert_eq!(
            text(&series),
            [
                "__name__=app_queue_depth_bytes,cluster=c1,job=api 7 @5",
                "__name__=app_requests_total,cluster=c1,http_route=/a,job=api 5 @2",
                "__name__=target_info,cluster=c1,host_name=h1,job=api 1 @5",
            ]
        );
    }

    #[test]
    fn histograms_become_cumulative_buckets_and_stale_points_stale_markers() {
        let converter = Converter::new(Options {
            add_metric_suffixes: true,
            resource_to_telemetry: true,
            ..Default::default()
        });
        let histogram = |flags| Metric {
            name: "latency".into(),
            unit: "s".into(),
            data: Some(Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: 1_000_000,
                    count: 6,
                    sum: Some(2.5),
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![0.1, 1.0],
                    flags,
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        };
        let series = converter.convert(&request(vec![histogram(0)]), 0);
        assert_eq!(
            text(&series),
            [
                "__name__=latency_seconds_bucket,host_name=h1,job=api,le=+Inf,service_name=api 6 @1",
                "__name__=latency_seconds_bucket,host_name=h1,job=api,le=0.1,service_name=api 1 @1",
                "__name__=latency_seconds_bucket,host_name=h1,job=api,le=1,service_name=api 3 @1",
                "__name__=latency_seconds_count,host_name=h1,job=api,service_name=api 6 @1",
                "__name__=latency_seconds_sum,host_name=h1,job=api,service_name=api 2.5 @1",
            ]
        );
        let stale = converter.convert(&request(vec![histogram(1)]), 0);
        assert_eq!(stale.len(), 5);
        assert!(
            stale
                .iter()
                .all(|s| s.samples[0].value.to_bits() == STALE_NAN)
        );
    }
}
