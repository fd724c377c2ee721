//! OTLP metrics as store samples, named the way the `prometheus` exporter
//! names them (one naming, so a query means the same against either):
//! gauges and non-monotonic sums as gauges, monotonic sums as counters
//! (`_total`), histograms as cumulative `_bucket{le}` counters plus `_sum`
//! and `_count` (so bucket counts merge by addition in every tier and
//! `histogram_quantile` works), summaries as `{quantile}` gauges plus
//! `_sum` and `_count`. Each sample keeps its point's own timestamp. Delta
//! points are marked to be added to the series' running total.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ResourceMetrics, number_data_point,
};

use super::engine::Labels;
use super::persist::Sample;
use crate::datamodel::points;
use crate::exporters::prometheus::naming::metric_name;
use crate::exporters::prometheus::store::{
    attribute_labels, exponential_to_explicit, job_and_instance,
};
use crate::processors::window_gauges::has_no_recorded_value;

/// Samples grouped by series, in a stable order.
pub type Groups = BTreeMap<Labels, Vec<Sample>>;

fn millis(unix_nanos: u64) -> i64 {
    (unix_nanos / 1_000_000) as i64
}

struct Adder<'a> {
    groups: &'a mut Groups,
    base: &'a Labels,
    rejected: u64,
}

impl Adder<'_> {
    fn labels(&self, name: &str, attributes: &[KeyValue], extra: Option<(&str, String)>) -> Labels {
        let mut labels = self.base.clone();
        labels.extend(attribute_labels(attributes));
        if let Some((k, v)) = extra {
            labels.retain(|(key, _)| key != k);
            labels.push((k.to_string(), v));
        }
        labels.retain(|(k, _)| k != "__name__");
        labels.push(("__name__".to_string(), name.to_string()));
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        labels
    }

    fn add(&mut self, labels: Labels, time: i64, value: f64, accumulate: bool) {
        self.groups.entry(labels).or_default().push(Sample {
            time,
            value,
            accumulate,
        });
    }

    /// Cumulative buckets from per-bucket counts.
    #[allow(clippy::too_many_arguments)]
    fn histogram(
        &mut self,
        name: &str,
        attributes: &[KeyValue],
        time: i64,
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
        count: u64,
        delta: bool,
    ) {
        let mut running = 0u64;
        for (i, c) in counts.iter().enumerate() {
            running = running.saturating_add(*c);
            let le = bounds
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "+Inf".to_string());
            let labels = self.labels(&format!("{name}_bucket"), attributes, Some(("le", le)));
            self.add(labels, time, running as f64, delta);
        }
        let labels = self.labels(&format!("{name}_sum"), attributes, None);
        self.add(labels, time, sum, delta);
        let labels = self.labels(&format!("{name}_count"), attributes, None);
        self.add(labels, time, count as f64, delta);
    }
}

/// Adds `resource_metrics`' points to `groups`; returns points refused as
/// malformed (counted by the caller).
pub fn flatten(resource_metrics: &[ResourceMetrics], groups: &mut Groups) -> u64 {
    let mut rejected = 0;
    for resource in resource_metrics {
        let attrs = resource
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let base = job_and_instance(attrs);
        for scope in &resource.scope_metrics {
            let mut adder = Adder {
                groups,
                base: &base,
                rejected: 0,
            };
            for metric in &scope.metrics {
                let unit = metric.unit.as_str();
                let number = |v: &Option<number_data_point::Value>| match v {
                    Some(number_data_point::Value::AsDouble(d)) => *d,
                    Some(number_data_point::Value::AsInt(i)) => *i as f64,
                    None => f64::NAN,
                };
                match &metric.data {
                    Some(Data::Gauge(g)) => {
                        let name = metric_name(&metric.name, unit, true, false);
                        for p in g
                            .data_points
                            .iter()
                            .filter(|p| !has_no_recorded_value(p.flags))
                        {
                            let labels = adder.labels(&name, &p.attributes, None);
                            adder.add(labels, millis(p.time_unix_nano), number(&p.value), false);
                        }
                    }
                    Some(Data::Sum(s)) => {
                        let delta =
                            s.aggregation_temporality == AggregationTemporality::Delta as i32;
                        let name = if s.is_monotonic {
                            metric_name(&metric.name, unit, false, true)
                        } else {
                            metric_name(&metric.name, unit, true, false)
                        };
                        for p in s
                            .data_points
                            .iter()
                            .filter(|p| !has_no_recorded_value(p.flags))
                        {
                            let labels = adder.labels(&name, &p.attributes, None);
                            adder.add(labels, millis(p.time_unix_nano), number(&p.value), delta);
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        let delta =
                            h.aggregation_temporality == AggregationTemporality::Delta as i32;
                        let name = metric_name(&metric.name, unit, false, false);
                        for p in h
                            .data_points
                            .iter()
                            .filter(|p| !has_no_recorded_value(p.flags))
                        {
                            if points::histogram(p).is_err() {
                                adder.rejected += 1;
                                continue;
                            }
                            let mut counts = p.bucket_counts.clone();
                            counts.resize(p.explicit_bounds.len() + 1, 0);
                            adder.histogram(
                                &name,
                                &p.attributes,
                                millis(p.time_unix_nano),
                                &p.explicit_bounds,
                                &counts,
                                p.sum.unwrap_or(0.0),
                                p.count,
                                delta,
                            );
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        let delta =
                            h.aggregation_temporality == AggregationTemporality::Delta as i32;
                        let name = metric_name(&metric.name, unit, false, false);
                        for p in h
                            .data_points
                            .iter()
                            .filter(|p| !has_no_recorded_value(p.flags))
                        {
                            if points::exponential(p).is_err() {
                                adder.rejected += 1;
                                continue;
                            }
                            let (bounds, counts) = exponential_to_explicit(p);
                            adder.histogram(
                                &name,
                                &p.attributes,
                                millis(p.time_unix_nano),
                                &bounds,
                                &counts,
                                p.sum.unwrap_or(0.0),
                                p.count,
                                delta,
                            );
                        }
                    }
                    Some(Data::Summary(s)) => {
                        let name = metric_name(&metric.name, unit, false, false);
                        for p in s
                            .data_points
                            .iter()
                            .filter(|p| !has_no_recorded_value(p.flags))
                        {
                            if points::summary(p).is_err() {
                                adder.rejected += 1;
                                continue;
                            }
                            let time = millis(p.time_unix_nano);
                            for q in &p.quantile_values {
                                let labels = adder.labels(
                                    &name,
                                    &p.attributes,
                                    Some(("quantile", q.quantile.to_string())),
                                );
                                adder.add(labels, time, q.value, false);
                            }
                            let labels = adder.labels(&format!("{name}_sum"), &p.attributes, None);
                            adder.add(labels, time, p.sum, false);
                            let labels =
                                adder.labels(&format!("{name}_count"), &p.attributes, None);
                            adder.add(labels, time, p.count as f64, false);
                        }
                    }
                    None => {}
                }
            }
            rejected += adder.rejected;
        }
    }
    rejected
}
