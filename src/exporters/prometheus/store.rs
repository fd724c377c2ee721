//! The latest state of every series, fed by OTLP metrics and read by the
//! scrape endpoint. Cumulative points replace; delta points accumulate
//! into cumulative; exponential histograms become explicit buckets. Series
//! not updated for `expiration` are dropped, and at most `max_series` are
//! kept (beyond that, new series are counted and dropped). A point flagged
//! `NO_RECORDED_VALUE` (OTLP's staleness marker: the series has no value
//! now) drops its series at once, as the Collector's prometheus exporter
//! does, so the scrape stops showing a value that no longer holds and
//! Prometheus marks the series stale.

use std::collections::BTreeMap;

use crate::datamodel::points;
use crate::telemetry::dropped::{self, Component};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, ResourceMetrics, number_data_point,
};

use super::naming::{label_name, metric_name};
use crate::otlp::value::any_value_text;
use crate::processors::window_gauges::has_no_recorded_value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    /// Upper bounds (without +Inf) and per-bucket (not cumulative) counts,
    /// one more count than bounds for the +Inf bucket.
    Histogram {
        bounds: Vec<f64>,
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Series {
    pub value: Value,
    pub updated_unix_nanos: u64,
}

pub type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
pub struct Family {
    pub kind: Kind,
    pub help: String,
    pub unit: String,
    pub series: BTreeMap<Labels, Series>,
}

/// The family a point belongs to.
struct FamilyInfo<'a> {
    name: String,
    kind: Kind,
    help: &'a str,
    unit: &'a str,
}

#[derive(Debug)]
pub struct MetricStore {
    pub families: BTreeMap<String, Family>,
    /// `target_info` per resource: its labels and when it was last seen.
    pub targets: BTreeMap<Labels, u64>,
    expiration_nanos: u64,
    max_series: usize,
    series_count: usize,
    pub dropped_series: u64,
}

pub(crate) fn attribute_labels(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| {
            (
                label_name(&kv.key),
                kv.value.as_ref().map(any_value_text).unwrap_or_default(),
            )
        })
        .collect()
}

/// job and instance from the resource, as the spec derives them.
pub(crate) fn job_and_instance(resource: &[KeyValue]) -> Labels {
    let get = |key: &str| {
        resource
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(any_value_text)
    };
    let mut labels = Vec::new();
    if let Some(name) = get("service.name") {
        let job = match get("service.namespace") {
            Some(ns) => format!("{ns}/{name}"),
            None => name,
        };
        labels.push(("job".to_string(), job));
    }
    if let Some(instance) = get("service.instance.id") {
        labels.push(("instance".to_string(), instance));
    }
    labels
}

/// Explicit buckets from an exponential histogram: base = 2^(2^-scale),
/// positive bucket i covers (base^i, base^(i+1)], negative ones mirror it.
pub(crate) fn exponential_to_explicit(
    point: &ExponentialHistogramDataPoint,
) -> (Vec<f64>, Vec<u64>) {
    let base = 2f64.powf(2f64.powi(-point.scale));
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    if let Some(negative) = &point.negative {
        for (i, count) in negative.bucket_counts.iter().enumerate().rev() {
            // In i64 and powf: an offset near i32::MAX must not overflow.
            let index = i64::from(negative.offset) + i as i64;
            buckets.push((-base.powf(index as f64), *count));
        }
    }
    let zero_bound = 0.0;
    buckets.push((zero_bound, point.zero_count));
    if let Some(positive) = &point.positive {
        for (i, count) in positive.bucket_counts.iter().enumerate() {
            let index = i64::from(positive.offset) + i as i64;
            buckets.push((base.powf((index + 1) as f64), *count));
        }
    }
    let bounds = buckets.iter().map(|(b, _)| *b).collect();
    let mut counts: Vec<u64> = buckets.iter().map(|(_, c)| *c).collect();
    counts.push(0);
    (bounds, counts)
}

impl MetricStore {
    pub fn new(expiration_nanos: u64, max_series: usize) -> Self {
        MetricStore {
            families: BTreeMap::new(),
            targets: BTreeMap::new(),
            expiration_nanos,
            max_series,
            series_count: 0,
            dropped_series: 0,
        }
    }

    fn put(&mut self, info: &FamilyInfo, labels: Labels, value: Value, delta: bool, now: u64) {
        let family = self
            .families
            .entry(info.name.clone())
            .or_insert_with(|| Family {
                kind: info.kind,
                help: info.help.to_string(),
                unit: info.unit.to_string(),
                series: BTreeMap::new(),
            });
        if family.kind != info.kind {
            // Same name, another type: Prometheus cannot hold both.
            self.dropped_series += 1;
            return;
        }
        match family.series.get_mut(&labels) {
            Some(existing) => {
                existing.updated_unix_nanos = now;
                if !delta {
                    existing.value = value;
                    return;
                }
                match (&mut existing.value, value) {
                    (Value::Number(total), Value::Number(add)) => *total += add,
                    (
                        Value::Histogram {
                            bounds,
                            counts,
                            sum,
                            count,
                        },
                        Value::Histogram {
                            bounds: b2,
                            counts: c2,
                            sum: s2,
                            count: n2,
                        },
                    ) if *bounds == b2 => {
                        // Saturating: counters from a client that never
                        // resets must not overflow into a panic.
                        for (c, add) in counts.iter_mut().zip(c2) {
                            *c = c.saturating_add(add);
                        }
                        *sum += s2;
                        *count = count.saturating_add(n2);
                    }
                    (slot, value) => *slot = value,
                }
            }
            None => {
                if self.series_count >= self.max_series {
                    self.dropped_series += 1;
                    return;
                }
                self.series_count += 1;
                family.series.insert(
                    labels,
                    Series {
                        value,
                        updated_unix_nanos: now,
                    },
                );
            }
        }
    }

    /// Drops the series `labels` of `info`'s family, if it holds one.
    fn end(&mut self, info: &FamilyInfo, labels: &Labels) {
        let Some(family) = self.families.get_mut(&info.name) else {
            return;
        };
        if family.kind != info.kind || family.series.remove(labels).is_none() {
            return;
        }
        self.series_count -= 1;
        if family.series.is_empty() {
            self.families.remove(&info.name);
        }
    }

    pub fn ingest(&mut self, resource_metrics: &[ResourceMetrics], now: u64) {
        for resource in resource_metrics {
            let resource_attrs = resource
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            let base = job_and_instance(resource_attrs);
            let mut target = base.clone();
            target.extend(
                attribute_labels(resource_attrs)
                    .into_iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "service_name" | "service_namespace" | "service_instance_id"
                        )
                    }),
            );
            target.sort();
            self.targets.insert(target, now);
            for scope in &resource.scope_metrics {
                let mut scope_labels = base.clone();
                if let Some(s) = scope.scope.as_ref().filter(|s| !s.name.is_empty()) {
                    scope_labels.push(("otel_scope_name".into(), s.name.clone()));
                    if !s.version.is_empty() {
                        scope_labels.push(("otel_scope_version".into(), s.version.clone()));
                    }
                }
                for metric in &scope.metrics {
                    let labels_of = |attrs: &[KeyValue]| {
                        let mut labels = scope_labels.clone();
                        labels.extend(attribute_labels(attrs));
                        labels.sort();
                        labels.dedup_by(|a, b| a.0 == b.0);
                        labels
                    };
                    let number = |v: &Option<number_data_point::Value>| match v {
                        Some(number_data_point::Value::AsDouble(d)) => *d,
                        Some(number_data_point::Value::AsInt(i)) => *i as f64,
                        None => f64::NAN,
                    };
                    let (help, unit) = (metric.description.as_str(), metric.unit.as_str());
                    match &metric.data {
                        Some(Data::Gauge(g)) => {
                            let name = metric_name(&metric.name, unit, true, false);
                            for p in &g.data_points {
                                let info = FamilyInfo {
                                    name: name.clone(),
                                    kind: Kind::Gauge,
                                    help,
                                    unit,
                                };
                                if has_no_recorded_value(p.flags) {
                                    self.end(&info, &labels_of(&p.attributes));
                                    continue;
                                }
                                self.put(
                                    &info,
                                    labels_of(&p.attributes),
                                    Value::Number(number(&p.value)),
                                    false,
                                    now,
                                );
                            }
                        }
                        Some(Data::Sum(s)) => {
                            let delta =
                                s.aggregation_temporality == AggregationTemporality::Delta as i32;
                            let (kind, name) = if s.is_monotonic {
                                (Kind::Counter, metric_name(&metric.name, unit, false, true))
                            } else {
                                (Kind::Gauge, metric_name(&metric.name, unit, true, false))
                            };
                            for p in &s.data_points {
                                let info = FamilyInfo {
                                    name: name.clone(),
                                    kind,
                                    help,
                                    unit,
                                };
                                if has_no_recorded_value(p.flags) {
                                    self.end(&info, &labels_of(&p.attributes));
                                    continue;
                                }
                                self.put(
                                    &info,
                                    labels_of(&p.attributes),
                                    Value::Number(number(&p.value)),
                                    delta,
                                    now,
                                );
                            }
                        }
                        Some(Data::Histogram(h)) => {
                            let delta =
                                h.aggregation_temporality == AggregationTemporality::Delta as i32;
                            let name = metric_name(&metric.name, unit, false, false);
                            let histogram_info = || FamilyInfo {
                                name: name.clone(),
                                kind: Kind::Histogram,
                                help,
                                unit,
                            };
                            for p in &h.data_points {
                                if has_no_recorded_value(p.flags) {
                                    self.end(&histogram_info(), &labels_of(&p.attributes));
                                    continue;
                                }
                                if let Err(violation) = points::histogram(p) {
                                    dropped::count(Component::Prometheus, violation);
                                    continue;
                                }
                                let mut counts = p.bucket_counts.clone();
                                counts.resize(p.explicit_bounds.len() + 1, 0);
                                let value = Value::Histogram {
                                    bounds: p.explicit_bounds.clone(),
                                    counts,
                                    sum: p.sum.unwrap_or(0.0),
                                    count: p.count,
                                };
                                self.put(
                                    &histogram_info(),
                                    labels_of(&p.attributes),
                                    value,
                                    delta,
                                    now,
                                );
                            }
                        }
                        Some(Data::ExponentialHistogram(h)) => {
                            let delta =
                                h.aggregation_temporality == AggregationTemporality::Delta as i32;
                            let name = metric_name(&metric.name, unit, false, false);
                            let histogram_info = || FamilyInfo {
                                name: name.clone(),
                                kind: Kind::Histogram,
                                help,
                                unit,
                            };
                            for p in &h.data_points {
                                if has_no_recorded_value(p.flags) {
                                    self.end(&histogram_info(), &labels_of(&p.attributes));
                                    continue;
                                }
                                if let Err(violation) = points::exponential(p) {
                                    dropped::count(Component::Prometheus, violation);
                                    continue;
                                }
                                let (bounds, counts) = exponential_to_explicit(p);
                                let value = Value::Histogram {
                                    bounds,
                                    counts,
                                    sum: p.sum.unwrap_or(0.0),
                                    count: p.count,
                                };
                                self.put(
                                    &histogram_info(),
                                    labels_of(&p.attributes),
                                    value,
                                    delta,
                                    now,
                                );
                            }
                        }
                        Some(Data::Summary(s)) => {
                            let name = metric_name(&metric.name, unit, false, false);
                            let summary_info = || FamilyInfo {
                                name: name.clone(),
                                kind: Kind::Summary,
                                help,
                                unit,
                            };
                            for p in &s.data_points {
                                if has_no_recorded_value(p.flags) {
                                    self.end(&summary_info(), &labels_of(&p.attributes));
                                    continue;
                                }
                                if let Err(violation) = points::summary(p) {
                                    dropped::count(Component::Prometheus, violation);
                                    continue;
                                }
                                let quantiles = p
                                    .quantile_values
                                    .iter()
                                    .map(|q| (q.quantile, q.value))
                                    .collect();
                                let value = Value::Summary {
                                    quantiles,
                                    sum: p.sum,
                                    count: p.count,
                                };
                                self.put(
                                    &summary_info(),
                                    labels_of(&p.attributes),
                                    value,
                                    false,
                                    now,
                                );
                            }
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// Drops series (and targets) not updated within the expiration.
    pub fn expire(&mut self, now: u64) {
        let cutoff = now.saturating_sub(self.expiration_nanos);
        let mut removed = 0;
        for family in self.families.values_mut() {
            let before = family.series.len();
            family.series.retain(|_, s| s.updated_unix_nanos >= cutoff);
            removed += before - family.series.len();
        }
        self.series_count -= removed;
        self.families.retain(|_, f| !f.series.is_empty());
        self.targets.retain(|_, seen| *seen >= cutoff);
    }

    pub fn series_count(&self) -> usize {
        self.series_count
    }
}

#[cfg(test)]
mod tests;
