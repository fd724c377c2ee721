//! The `prometheusremotewrite` exporter against a real Prometheus started
//! with `--web.enable-remote-write-receiver`, read back through its query
//! API value by value: a gauge, a cumulative counter (`_total`), a delta
//! counter accumulated, histogram buckets, `target_info`, resource
//! attributes turned into labels, external labels and the namespace.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::external::binary;
use crate::harness::{address, start};
use crate::prometheus::{Prometheus, query};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn number(value: f64, time: u64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: time - 60_000_000_000,
        time_unix_nano: time,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

/// A gauge, a cumulative and a delta counter, and a histogram, from one
/// resource; the delta counter adds `delta`.
fn request(time: u64, delta: f64) -> ExportMetricsServiceRequest {
    let metrics = vec![
        Metric {
            name: "queue.depth".into(),
            unit: "{message}".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: vec![number(7.0, time, vec![kv("queue", "orders")])],
            })),
            ..Default::default()
        },
        Metric {
            name: "http.requests".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![number(42.0, time, vec![kv("http.route", "/a")])],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "jobs.done".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![number(delta, time, vec![])],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "http.server.request.duration".into(),
            unit: "s".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    attributes: vec![kv("http.route", "/a")],
                    start_time_unix_nano: time - 60_000_000_000,
                    time_unix_nano: time,
                    count: 10,
                    sum: Some(4.2),
                    bucket_counts: vec![3, 5, 1, 1],
                    explicit_bounds: vec![0.1, 0.5, 1.0],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "shop"),
                    kv("service.instance.id", "shop-1"),
                    kv("host.name", "h1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The query's value once Prometheus has it (30 s at most).
async fn eventually(client: &reqwest::Client, base: &str, expr: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = query(client, base, expr).await {
            return value;
        }
        assert!(Instant::now() < deadline, "Prometheus never had {expr}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_receives_remote_writes_value_by_value() {
    let Some(prometheus) = binary("prometheus", "prometheus") else {
        return;
    };
    let server = Prometheus::with_args(
        &prometheus,
        "global: { scrape_interval: 1m }\n",
        &["--web.enable-remote-write-receiver"],
    );
    let yaml = format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  prometheusremotewrite:
    endpoint: {base}/api/v1/write
    namespace: app
    external_labels: {{ cluster: test-1 }}
    resource_to_telemetry_conversion: {{ enabled: true }}
    remote_write_queue: {{ queue_size: 100, num_consumers: 1 }}
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 1s }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [prometheusremotewrite] }}
"#,
        base = server.base
    );
    let collector = start(&yaml).await;
    let grpc = address(&collector, "otlp/grpc");
    let mut client = MetricsServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    // Prometheus may still be starting: the exporter retries until it
    // answers. The second request comes a second later, so its samples
    // are newer and the delta counter's total grows.
    let first = now_nanos();
    client.export(request(first, 2.0)).await.unwrap();
    let http = reqwest::Client::new();
    let base = server.base.as_str();
    let selector = r#"cluster="test-1",job="shop",instance="shop-1",host_name="h1""#;
    eventually(&http, base, &format!("app_jobs_done_total{{{selector}}}")).await;
    client
        .export(request(first + 1_000_000_000, 3.0))
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while query(&http, base, "app_jobs_done_total").await != Some(5.0) {
        assert!(
            Instant::now() < deadline,
            "the delta counter never reached 2 + 3"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expect = [
        (
            format!("app_queue_depth{{{selector},queue=\"orders\"}}"),
            7.0,
        ),
        (
            format!("app_http_requests_total{{{selector},http_route=\"/a\"}}"),
            42.0,
        ),
        (format!("app_jobs_done_total{{{selector}}}"), 5.0),
        (
            format!(
                "app_http_server_request_duration_seconds_bucket{{{selector},http_route=\"/a\",le=\"0.1\"}}"
            ),
            3.0,
        ),
        (
            format!(
                "app_http_server_request_duration_seconds_bucket{{{selector},http_route=\"/a\",le=\"0.5\"}}"
            ),
            8.0,
        ),
        (
            format!(
                "app_http_server_request_duration_seconds_bucket{{{selector},http_route=\"/a\",le=\"1\"}}"
            ),
            9.0,
        ),
        (
            format!(
                "app_http_server_request_duration_seconds_bucket{{{selector},http_route=\"/a\",le=\"+Inf\"}}"
            ),
            10.0,
        ),
        (
            format!("app_http_server_request_duration_seconds_sum{{{selector},http_route=\"/a\"}}"),
            4.2,
        ),
        (
            format!(
                "app_http_server_request_duration_seconds_count{{{selector},http_route=\"/a\"}}"
            ),
            10.0,
        ),
        // The resource's own attributes, beside job and instance.
        (format!("target_info{{{selector}}}"), 1.0),
    ];
    for (expr, value) in &expect {
        assert_eq!(
            query(&http, base, expr).await,
            Some(*value),
            "{expr} in Prometheus"
        );
    }
    // target_info carries the resource without service.name (it is `job`).
    assert_eq!(
        query(&http, base, "count(target_info{service_name!=\"\"})").await,
        None,
        "target_info has no service_name label"
    );
    collector.shutdown().await;
}
