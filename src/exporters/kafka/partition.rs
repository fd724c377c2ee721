//! Message keys: a batch split into one export request per key, so that
//! librdkafka's partitioner (a hash of the key) sends everything of one
//! key to one partition and so to one consumer of a group.
//!
//! The split keeps the OTLP structure: each part has the resources and
//! scopes of its own items only, in their original order.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Metric, ResourceMetrics, ScopeMetrics, metric::Data,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::config::{PartitionBy, PartitionName};
use crate::otlp::{series, value::option_text};

/// What a message's key is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBy {
    /// No key: one message per batch, spread over partitions.
    Nothing,
    /// The Collector's `partition_traces_by_id`: the trace id in hex.
    TraceId,
    /// The Collector's `partition_*_by_resource_attributes`.
    Resource,
    /// `partition_by: series`.
    Series,
    /// `partition_by: [attr, ...]`.
    Attributes(Vec<String>),
    /// The resource's `service.name` (the `loadbalancing` exporter's
    /// `routing_key: service`).
    Service,
    /// A metric's name (`routing_key: metric`); other signals keep one
    /// part.
    MetricName,
}

impl KeyBy {
    pub fn from_partition_by(partition_by: &PartitionBy) -> KeyBy {
        match partition_by {
            PartitionBy::Named(PartitionName::Series) => KeyBy::Series,
            PartitionBy::Attributes(names) => KeyBy::Attributes(names.clone()),
        }
    }
}

/// `k=v` pairs of a resource's attributes, sorted, so the same resource
/// spelled in another order has the same key.
fn resource_key(attributes: &[KeyValue]) -> String {
    let labels = series::labels(attributes, &[]);
    series::identity("", &labels)
}

/// A resource's `service.name`, empty when it has none.
fn service_key(resource: &[KeyValue]) -> String {
    resource
        .iter()
        .find(|kv| kv.key == "service.name")
        .map(|kv| option_text(kv.value.as_ref()))
        .unwrap_or_default()
}

/// The values of `names`, each from the item's attributes, else the
/// resource's; absent ones are empty.
fn attributes_key(names: &[String], item: &[KeyValue], resource: &[KeyValue]) -> String {
    let find = |name: &String| {
        item.iter()
            .chain(resource)
            .find(|kv| &kv.key == name)
            .map(|kv| option_text(kv.value.as_ref()))
            .unwrap_or_default()
    };
    names.iter().map(find).collect::<Vec<_>>().join("\u{1f}")
}

/// Items of one resource and scope, grouped by key, appended to each key's
/// request: a key's last resource is reused while it is the same input
/// resource.
struct Groups<R> {
    parts: BTreeMap<String, (Vec<R>, usize)>,
}

impl<R> Groups<R> {
    fn new() -> Self {
        Groups {
            parts: BTreeMap::new(),
        }
    }

    /// The resource entry for `key` that stands for input resource
    /// `resource_index`, made with `make` when it is not the last one.
    fn resource(&mut self, key: String, resource_index: usize, make: impl FnOnce() -> R) -> &mut R {
        let (resources, last) = self.parts.entry(key).or_insert((Vec::new(), usize::MAX));
        if *last != resource_index || resources.is_empty() {
            resources.push(make());
            *last = resource_index;
        }
        resources.last_mut().expect("pushed above")
    }
}

pub fn split_traces(
    request: &ExportTraceServiceRequest,
    key_by: &KeyBy,
) -> Vec<(Option<String>, ExportTraceServiceRequest)> {
    if *key_by == KeyBy::Nothing {
        return vec![(None, request.clone())];
    }
    let mut groups: Groups<ResourceSpans> = Groups::new();
    for (r, resource_spans) in request.resource_spans.iter().enumerate() {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for scope_spans in &resource_spans.scope_spans {
            let mut by_key: BTreeMap<String, Vec<Span>> = BTreeMap::new();
            for span in &scope_spans.spans {
                let key = match key_by {
                    KeyBy::TraceId => hex::encode(&span.trace_id),
                    KeyBy::Series => attributes_key(&["service.name".into()], &[], resource),
                    KeyBy::Resource => resource_key(resource),
                    KeyBy::Attributes(names) => attributes_key(names, &span.attributes, resource),
                    KeyBy::Service => service_key(resource),
                    KeyBy::Nothing | KeyBy::MetricName => String::new(),
                };
                by_key.entry(key).or_default().push(span.clone());
            }
            for (key, spans) in by_key {
                let entry = groups.resource(key, r, || ResourceSpans {
                    resource: resource_spans.resource.clone(),
                    scope_spans: Vec::new(),
                    schema_url: resource_spans.schema_url.clone(),
                });
                entry.scope_spans.push(ScopeSpans {
                    scope: scope_spans.scope.clone(),
                    spans,
                    schema_url: scope_spans.schema_url.clone(),
                });
            }
        }
    }
    groups
        .parts
        .into_iter()
        .map(|(key, (resource_spans, _))| (Some(key), ExportTraceServiceRequest { resource_spans }))
        .collect()
}

pub fn split_logs(
    request: &ExportLogsServiceRequest,
    key_by: &KeyBy,
) -> Vec<(Option<String>, ExportLogsServiceRequest)> {
    if matches!(key_by, KeyBy::Nothing | KeyBy::MetricName) {
        return vec![(None, request.clone())];
    }
    let mut groups: Groups<ResourceLogs> = Groups::new();
    for (r, resource_logs) in request.resource_logs.iter().enumerate() {
        let resource = resource_logs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for scope_logs in &resource_logs.scope_logs {
            let mut by_key: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
            for record in &scope_logs.log_records {
                let key = match key_by {
                    KeyBy::Attributes(names) => attributes_key(names, &record.attributes, resource),
                    KeyBy::TraceId => hex::encode(&record.trace_id),
                    KeyBy::Service => service_key(resource),
                    _ => resource_key(resource),
                };
                by_key.entry(key).or_default().push(record.clone());
            }
            for (key, log_records) in by_key {
                let entry = groups.resource(key, r, || ResourceLogs {
                    resource: resource_logs.resource.clone(),
                    scope_logs: Vec::new(),
                    schema_url: resource_logs.schema_url.clone(),
                });
                entry.scope_logs.push(ScopeLogs {
                    scope: scope_logs.scope.clone(),
                    log_records,
                    schema_url: scope_logs.schema_url.clone(),
                });
            }
        }
    }
    groups
        .parts
        .into_iter()
        .map(|(key, (resource_logs, _))| (Some(key), ExportLogsServiceRequest { resource_logs }))
        .collect()
}

/// One metric split by the key of each of its points: the metric's name,
/// unit and type repeated in each part.
fn split_metric(metric: &Metric, key_of: impl Fn(&[KeyValue]) -> String) -> Vec<(String, Metric)> {
    fn by<P: Clone>(
        points: &[P],
        attributes: impl Fn(&P) -> &[KeyValue],
        key_of: &dyn Fn(&[KeyValue]) -> String,
    ) -> BTreeMap<String, Vec<P>> {
        let mut out: BTreeMap<String, Vec<P>> = BTreeMap::new();
        for point in points {
            out.entry(key_of(attributes(point)))
                .or_default()
                .push(point.clone());
        }
        out
    }
    let with = |data: Data| Metric {
        data: Some(data),
        ..header(metric)
    };
    let key_of: &dyn Fn(&[KeyValue]) -> String = &key_of;
    match &metric.data {
        None => vec![(key_of(&[]), metric.clone())],
        Some(Data::Gauge(g)) => by(&g.data_points, |p| &p.attributes, key_of)
            .into_iter()
            .map(|(k, data_points)| {
                (
                    k,
                    with(Data::Gauge(
                        opentelemetry_proto::tonic::metrics::v1::Gauge { data_points },
                    )),
                )
            })
            .collect(),
        Some(Data::Sum(s)) => by(&s.data_points, |p| &p.attributes, key_of)
            .into_iter()
            .map(|(k, data_points)| {
                (
                    k,
                    with(Data::Sum(opentelemetry_proto::tonic::metrics::v1::Sum {
                        data_points,
                        aggregation_temporality: s.aggregation_temporality,
                        is_monotonic: s.is_monotonic,
                    })),
                )
            })
            .collect(),
        Some(Data::Histogram(h)) => by(&h.data_points, |p| &p.attributes, key_of)
            .into_iter()
            .map(|(k, data_points)| {
                (
                    k,
                    with(Data::Histogram(
                        opentelemetry_proto::tonic::metrics::v1::Histogram {
                            data_points,
                            aggregation_temporality: h.aggregation_temporality,
                        },
                    )),
                )
            })
            .collect(),
        Some(Data::ExponentialHistogram(h)) => by(&h.data_points, |p| &p.attributes, key_of)
            .into_iter()
            .map(|(k, data_points)| {
                (
                    k,
                    with(Data::ExponentialHistogram(
                        opentelemetry_proto::tonic::metrics::v1::ExponentialHistogram {
                            data_points,
                            aggregation_temporality: h.aggregation_temporality,
                        },
                    )),
                )
            })
            .collect(),
        Some(Data::Summary(s)) => by(&s.data_points, |p| &p.attributes, key_of)
            .into_iter()
            .map(|(k, data_points)| {
                (
                    k,
                    with(Data::Summary(
                        opentelemetry_proto::tonic::metrics::v1::Summary { data_points },
                    )),
                )
            })
            .collect(),
    }
}

/// A metric's name, description, unit and metadata, without its data.
fn header(metric: &Metric) -> Metric {
    Metric {
        name: metric.name.clone(),
        description: metric.description.clone(),
        unit: metric.unit.clone(),
        metadata: metric.metadata.clone(),
        data: None,
    }
}

pub fn split_metrics(
    request: &ExportMetricsServiceRequest,
    key_by: &KeyBy,
) -> Vec<(Option<String>, ExportMetricsServiceRequest)> {
    if matches!(key_by, KeyBy::Nothing | KeyBy::TraceId) {
        return vec![(None, request.clone())];
    }
    let mut groups: Groups<ResourceMetrics> = Groups::new();
    for (r, resource_metrics) in request.resource_metrics.iter().enumerate() {
        let resource = resource_metrics
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for scope_metrics in &resource_metrics.scope_metrics {
            // Keys in first-seen order within the scope, metrics in order.
            let mut by_key: HashMap<String, Vec<Metric>> = HashMap::new();
            let mut order: Vec<String> = Vec::new();
            for metric in &scope_metrics.metrics {
                let parts = match key_by {
                    KeyBy::Resource => vec![(resource_key(resource), metric.clone())],
                    KeyBy::Service => vec![(service_key(resource), metric.clone())],
                    KeyBy::MetricName => vec![(metric.name.clone(), metric.clone())],
                    KeyBy::Series => split_metric(metric, |point| {
                        series::identity(&metric.name, &series::labels(resource, point))
                    }),
                    KeyBy::Attributes(names) => {
                        split_metric(metric, |point| attributes_key(names, point, resource))
                    }
                    KeyBy::Nothing | KeyBy::TraceId => unreachable!("returned above"),
                };
                for (key, part) in parts {
                    if !by_key.contains_key(&key) {
                        order.push(key.clone());
                    }
                    by_key.entry(key).or_default().push(part);
                }
            }
            for key in order {
                let metrics = by_key.remove(&key).unwrap_or_default();
                let entry = groups.resource(key, r, || ResourceMetrics {
                    resource: resource_metrics.resource.clone(),
                    scope_metrics: Vec::new(),
                    schema_url: resource_metrics.schema_url.clone(),
                });
                entry.scope_metrics.push(ScopeMetrics {
                    scope: scope_metrics.scope.clone(),
                    metrics,
                    schema_url: scope_metrics.schema_url.clone(),
                });
            }
        }
    }
    groups
        .parts
        .into_iter()
        .map(|(key, (resource_metrics, _))| {
            (Some(key), ExportMetricsServiceRequest { resource_metrics })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::value::string_kv;
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, NumberDataPoint, number_data_point};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn point(host: &str, value: f64) -> NumberDataPoint {
        NumberDataPoint {
            attributes: vec![string_kv("host", host)],
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        }
    }

    fn metrics(service: &str, points: Vec<NumberDataPoint>) -> ResourceMetrics {
        ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "cpu".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn series_split_puts_each_series_in_its_own_message_and_keeps_every_point() {
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![
                metrics(
                    "a",
                    vec![point("h1", 1.0), point("h2", 2.0), point("h1", 3.0)],
                ),
                metrics("b", vec![point("h1", 4.0)]),
            ],
        };
        let parts = split_metrics(&request, &KeyBy::Series);
        assert_eq!(parts.len(), 3);
        let total: usize = parts
            .iter()
            .map(|(_, r)| crate::signal::data_point_count(r))
            .sum();
        assert_eq!(total, 4);
        let key = r#"cpu{host="h1",service.name="a"}"#;
        let (_, h1) = parts
            .iter()
            .find(|(k, _)| k.as_deref() == Some(key))
            .expect("series a/h1");
        assert_eq!(crate::signal::data_point_count(h1), 2);
    }

    #[test]
    fn attribute_split_groups_by_the_named_attribute() {
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![
                metrics("a", vec![point("h1", 1.0), point("h2", 2.0)]),
                metrics("b", vec![point("h1", 4.0)]),
            ],
        };
        let parts = split_metrics(&request, &KeyBy::Attributes(vec!["service.name".into()]));
        let keys: Vec<_> = parts.iter().map(|(k, _)| k.clone().unwrap()).collect();
        assert_eq!(keys, ["a", "b"]);
    }

    #[test]
    fn trace_id_split_keeps_a_trace_together() {
        let span = |trace: u8| Span {
            trace_id: vec![trace; 16],
            span_id: vec![1; 8],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1), span(2), span(1)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let parts = split_traces(&request, &KeyBy::TraceId);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0.as_deref(), Some("01".repeat(16).as_str()));
        assert_eq!(crate::signal::span_count(&parts[0].1), 2);
    }
}
