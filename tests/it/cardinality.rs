//! A cardinality bomb: 100,000 unique series into the stateful components
//! (percentiles, anomaly, alert rules; red for spans), each capped at 1,000.
//! The caps hold, every item beyond them is counted, and the figures are on
//! the telemetry endpoint.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

use crate::harness::{address, start, trace_request};

const SERIES: usize = 100_000;
const CAP: u64 = 1_000;
const PER_REQUEST: usize = 5_000;

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn gauges(from: usize) -> ExportMetricsServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: (from..from + PER_REQUEST)
                            .map(|i| NumberDataPoint {
                                attributes: vec![text("user.id", format!("u{i}"))],
                                time_unix_nano: now,
                                value: Some(number_data_point::Value::AsDouble(i as f64)),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn sample(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_hold_and_overflow_is_counted_under_a_cardinality_bomb() {
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
processors:
  percentiles: {{ metrics: [queue\.depth], max_series: {CAP} }}
connectors:
  anomaly: {{ metrics: [queue\.depth], max_series: {CAP} }}
  alert:
    max_series: {CAP}
    rules: [{{ name: Deep, metric: queue.depth, op: ">", warning: 1e12 }}]
  red: {{ dimensions: [operation], max_series: {CAP} }}
exporters:
  debug: {{}}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    metrics: {{ receivers: [otlp], processors: [percentiles], exporters: [anomaly, alert] }}
    metrics/scores: {{ receivers: [anomaly, red], exporters: [debug] }}
    logs: {{ receivers: [anomaly, alert], exporters: [debug] }}
    traces: {{ receivers: [otlp], exporters: [red] }}
"#
    ))
    .await;
    let grpc = format!("http://{}", address(&collector, "otlp/grpc"));
    let mut metrics_client = MetricsServiceClient::connect(grpc.clone()).await.unwrap();
    for from in (0..SERIES).step_by(PER_REQUEST) {
        metrics_client.export(gauges(from)).await.unwrap();
    }
    // Spans with 100k distinct operations, as server spans.
    let mut traces_client = TraceServiceClient::connect(grpc).await.unwrap();
    for from in (0..SERIES).step_by(PER_REQUEST) {
        let mut request = trace_request(&format!("op{from}"), PER_REQUEST);
        for span in &mut request.resource_spans[0].scope_spans[0].spans {
            span.kind = SpanKind::Server as i32;
            span.end_time_unix_nano = 1_000_000;
        }
        traces_client.export(request).await.unwrap();
    }

    let url = format!("http://{}/metrics", address(&collector, "telemetry"));
    let metrics = reqwest::get(&url).await.unwrap().text().await.unwrap();
    let beyond = SERIES as u64 - CAP;
    for (kind, component, pipeline, overflow_series) in [
        ("processor", "percentiles", "metrics", 1),
        ("connector", "anomaly", "", 0),
        ("connector", "alert", "", 0),
        ("connector", "red", "", 1),
    ] {
        let labels =
            format!("{{kind=\"{kind}\",component=\"{component}\",pipeline=\"{pipeline}\"}}");
        let series = sample(&metrics, &format!("sidewatch_component_series{labels}"));
        let overflowed = sample(
            &metrics,
            &format!("sidewatch_component_overflow_items_total{labels}"),
        );
        assert_eq!(
            sample(&metrics, &format!("sidewatch_component_max_series{labels}")),
            CAP
        );
        // Folding components hold one overflow series beside the cap.
        assert_eq!(series, CAP + overflow_series, "{component} series");
        assert_eq!(overflowed, beyond, "{component} overflow");
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    collector.shutdown().await;
}
