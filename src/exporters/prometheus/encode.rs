//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text.

use std::fmt::Write;

use super::store::{Family, Kind, Labels, MetricStore, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    PrometheusText,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the scraper asks for it, text 0.0.4 otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

pub use crate::otlp::value::number_text as number;

fn labels_text(labels: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{}\"", escape_label(&v)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn write_family(out: &mut String, name: &str, family: &Family, format: Format) {
    let kind = match family.kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
        Kind::Histogram => "histogram",
        Kind::Summary => "summary",
    };
    // OpenMetrics names the counter family without `_total`.
    let family_name = match (format, family.kind) {
        (Format::OpenMetrics, Kind::Counter) => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    };
    let _ = writeln!(out, "# TYPE {family_name} {kind}");
    if !family.help.is_empty() {
        let _ = writeln!(out, "# HELP {family_name} {}", escape_help(&family.help));
    }
    for (labels, series) in &family.series {
        match &series.value {
            Value::Number(v) => {
                let _ = writeln!(out, "{name}{} {}", labels_text(labels, None), number(*v));
            }
            Value::Histogram {
                bounds,
                counts,
                sum,
                count,
            } => {
                let mut cumulative = 0u64;
                for (bound, c) in bounds.iter().zip(counts) {
                    cumulative = cumulative.saturating_add(*c);
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {cumulative}",
                        labels_text(labels, Some(("le", number(*bound))))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {count}",
                    labels_text(labels, Some(("le", "+Inf".into())))
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    labels_text(labels, None),
                    number(*sum)
                );
                let _ = writeln!(out, "{name}_count{} {count}", labels_text(labels, None));
            }
            Value::Summary {
                quantiles,
                sum,
                count,
            } => {
                for (q, v) in quantiles {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        labels_text(labels, Some(("quantile", number(*q)))),
                        number(*v)
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    labels_text(labels, None),
                    number(*sum)
                );
                let _ = writeln!(out, "{name}_count{} {count}", labels_text(labels, None));
            }
        }
    }
}

pub fn encode(store: &MetricStore, format: Format) -> String {
    let mut out = String::new();
    if !store.targets.is_empty() {
        let _ = writeln!(out, "# TYPE target_info gauge");
        let _ = writeln!(out, "# HELP target_info Target metadata");
        for labels in store.targets.keys() {
            let _ = writeln!(out, "target_info{} 1", labels_text(labels, None));
        }
    }
    for (name, family) in &store.families {
        write_family(&mut out, name, family, format);
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
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

    fn resource(metrics: Vec<Metric>) -> Vec<ResourceMetrics> {
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

    #[test]
    fn encodes_gauges_counters_histograms_and_target_info() {
        let mut store = MetricStore::new(60_000_000_000, 1000);
        let metrics = vec![
            Metric {
                name: "queue.depth".into(),
                unit: "{message}".into(),
                description: "Messages \"waiting\"".into(),
                data: Some(Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        attributes: vec![kv("queue", "a\"b")],
                        value: Some(number_data_point::Value::AsInt(7)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            },
            Metric {
                name: "requests".into(),
                data: Some(Data::Sum(Sum {
                    data_points: vec![NumberDataPoint {
                        value: Some(number_data_point::Value::AsDouble(3.0)),
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            },
            Metric {
                name: "latency".into(),
                unit: "s".into(),
                data: Some(Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        count: 6,
                        sum: Some(2.5),
                        bucket_counts: vec![1, 2, 3],
                        explicit_bounds: vec![0.1, 1.0],
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })),
                ..Default::default()
            },
        ];
        store.ingest(&resource(metrics.clone()), 1);
        store.ingest(&resource(metrics), 2);
        let text = encode(&store, Format::PrometheusText);
        let expected = r#"# TYPE target_info gauge
# HELP target_info Target metadata
target_info{host_name="h1",job="api"} 1
# TYPE latency_seconds histogram
latency_seconds_bucket{job="api",le="0.1"} 1
latency_seconds_bucket{job="api",le="1"} 3
latency_seconds_bucket{job="api",le="+Inf"} 6
latency_seconds_sum{job="api"} 2.5
latency_seconds_count{job="api"} 6
# TYPE queue_depth gauge
# HELP queue_depth Messages "waiting"
queue_depth{job="api",queue="a\"b"} 7
# TYPE requests_total counter
requests_total{job="api"} 6
"#;
        assert_eq!(
            text, expected,
            "delta sums accumulate; cumulative histograms replace"
        );
        let open = encode(&store, Format::OpenMetrics);
        assert!(open.contains("# TYPE requests counter\nrequests_total{job=\"api\"} 6\n"));
        assert!(open.ends_with("# EOF\n"));
        store.expire(60_000_000_003);
        assert!(
            store.families.is_empty() && store.targets.is_empty(),
            "stale series expire"
        );
    }

    #[test]
    fn picks_the_format_from_accept() {
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_accept(Some("text/plain")),
            Format::PrometheusText
        );
        assert_eq!(Format::from_accept(None), Format::PrometheusText);
    }
}
