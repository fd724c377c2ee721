//! Valid protobuf that breaks the OTLP data model (issue 13, item 5):
//! histogram points with more bucket counts than bounds + 1, counts that
//! disagree with their buckets, NaN values, exponential histograms at an
//! offset where a bucket index overflows i32, an out-of-range scale. The
//! sidewatch binary answers OK (the request is valid protobuf and is
//! forwarded), leaves those points out of percentiles and the Prometheus
//! endpoint, counts each in `sidewatch_dropped_points_total` with its
//! reason, and goes on serving: a good request afterwards is processed.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    exponential_histogram_data_point::Buckets, metric, number_data_point,
};

use crate::backend::{Backend, wait_until};
use crate::harness::{Sidewatch, free_port, point_text, point_value};

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn histogram(name: &str, point: HistogramDataPoint) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: now_nanos(),
                ..point
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    }
}

fn exponential(name: &str, point: ExponentialHistogramDataPoint) -> Metric {
    Metric {
        name: name.into(),
        data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: now_nanos(),
                ..point
            }],
            aggregation_temporality: AggregationTemporality::Delta as i32,
        })),
        ..Default::default()
    }
}

/// The requests of the issue and its neighbours, each one point that
/// breaks one rule, with the reasons they are counted under (none for the
/// overflowing offset: a valid point that must not panic). Names differ
/// where kinds do: Prometheus cannot hold a gauge and a histogram of one
/// name.
fn bad_requests() -> Vec<(ExportMetricsServiceRequest, &'static str)> {
    vec![
        // The issue's point: five counts for two bounds.
        (
            request(vec![histogram(
                "latency",
                HistogramDataPoint {
                    count: 5,
                    bucket_counts: vec![1, 1, 1, 1, 1],
                    explicit_bounds: vec![1.0, 2.0],
                    ..Default::default()
                },
            )]),
            "bucket_counts_mismatch",
        ),
        (
            request(vec![histogram(
                "latency",
                HistogramDataPoint {
                    count: 99,
                    bucket_counts: vec![1, 2, 3],
                    explicit_bounds: vec![1.0, 2.0],
                    ..Default::default()
                },
            )]),
            "count_mismatch",
        ),
        (
            request(vec![Metric {
                name: "latency_gauge".into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: now_nanos(),
                        value: Some(number_data_point::Value::AsDouble(f64::NAN)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            }]),
            "non_finite_value",
        ),
        // Bucket index offset + i overflows i32 (a panic in a debug build
        // of the Prometheus exporter before).
        (
            request(vec![exponential(
                "latency_exp",
                ExponentialHistogramDataPoint {
                    count: 2,
                    scale: 20,
                    positive: Some(Buckets {
                        offset: i32::MAX,
                        bucket_counts: vec![1, 1],
                    }),
                    ..Default::default()
                },
            )]),
            "",
        ),
        (
            request(vec![exponential(
                "latency",
                ExponentialHistogramDataPoint {
                    count: 1,
                    scale: 1_000,
                    zero_count: 1,
                    ..Default::default()
                },
            )]),
            "invalid_scale",
        ),
    ]
}

async fn text(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// The value of the sample line `series` on a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_breaking_the_data_model_are_dropped_counted_and_later_requests_processed() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let (grpc, telemetry, scrape) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{grpc} }} }} }}
processors:
  percentiles: {{ metrics: ["latency.*"], windows: [1m], emit_interval: 1s }}
exporters:
  otlp: {{ endpoint: {}, retry_on_failure: {{ initial_interval: 50ms }} }}
  prometheus: {{ endpoint: 127.0.0.1:{scrape} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry} }} }}
  pipelines:
    metrics: {{ receivers: [otlp], processors: [percentiles], exporters: [otlp, prometheus] }}
"#,
            backend.url()
        ),
    )
    .unwrap();
    let _sidewatch = Sidewatch::run(&config);
    let url = format!("http://127.0.0.1:{grpc}");
    let mut client = None;
    for _ in 0..200 {
        if let Ok(c) = MetricsServiceClient::connect(url.clone()).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mut client = client.expect("sidewatch listens");

    // Every bad request is valid protobuf: accepted (and forwarded as is).
    let bad = bad_requests();
    for (request, reason) in &bad {
        client
            .export(request.clone())
            .await
            .unwrap_or_else(|e| panic!("{reason}: {e}"));
    }
    // The Prometheus endpoint still answers, without the bad points.
    let page = text(&format!("http://127.0.0.1:{scrape}/metrics")).await;
    assert!(!page.contains("latency_bucket"), "{page}");

    // A good histogram afterwards is processed: percentiles emits its p50
    // from 4 observations in (1, 2] and none from the bad points.
    client
        .export(request(vec![histogram(
            "latency",
            HistogramDataPoint {
                count: 4,
                sum: Some(6.0),
                bucket_counts: vec![0, 4, 0],
                explicit_bounds: vec![1.0, 2.0],
                ..Default::default()
            },
        )]))
        .await
        .expect("a good request after the bad ones");
    let recorded = backend.recorded.clone();
    let p50 = || {
        recorded
            .metrics
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter(|m| m.name == "latency.quantile")
            .filter_map(|m| match &m.data {
                Some(metric::Data::Gauge(g)) => Some(g.data_points.clone()),
                _ => None,
            })
            .flatten()
            .filter(|p| point_text(p, "quantile").as_deref() == Some("0.5"))
            .map(|p| point_value(&p))
            .find(|v| v.is_finite())
    };
    assert!(
        wait_until(Duration::from_secs(10), || p50().is_some()).await,
        "percentiles emitted nothing after the bad requests"
    );
    let p50 = p50().unwrap();
    assert!((1.0..=2.0).contains(&p50), "p50 {p50}");
    let page = text(&format!("http://127.0.0.1:{scrape}/metrics")).await;
    assert_eq!(
        sample(&page, r#"latency_bucket{le="+Inf"}"#),
        Some(4.0),
        "{page}"
    );

    // Each bad point is counted under its reason, by each component.
    let page = text(&format!("http://127.0.0.1:{telemetry}/metrics")).await;
    for (_, reason) in bad.iter().filter(|(_, r)| !r.is_empty()) {
        let series = format!(
            r#"sidewatch_dropped_points_total{{component="percentiles",reason="{reason}"}}"#
        );
        assert_eq!(sample(&page, &series), Some(1.0), "{series} in\n{page}");
    }
    for reason in ["bucket_counts_mismatch", "count_mismatch", "invalid_scale"] {
        let series = format!(
            r#"sidewatch_dropped_points_total{{component="prometheus",reason="{reason}"}}"#
        );
        assert_eq!(sample(&page, &series), Some(1.0), "{series} in\n{page}");
    }
    backend.stop().await;
}
