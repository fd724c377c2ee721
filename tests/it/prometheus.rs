//! A real Prometheus scrapes sidewatch's prometheus exporter: host metrics
//! and a histogram sent over OTLP are there, with the right values,
//! through Prometheus's own query API.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
    metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::external::binary;
use crate::harness::{address, free_port, start};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn histogram() -> ExportMetricsServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "shop"),
                    kv("service.instance.id", "shop-1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "http.server.request.duration".into(),
                    unit: "s".into(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: vec![HistogramDataPoint {
                            attributes: vec![kv("http.route", "/orders")],
                            start_time_unix_nano: now - 60_000_000_000,
                            time_unix_nano: now,
                            count: 10,
                            sum: Some(4.2),
                            bucket_counts: vec![3, 5, 1, 1],
                            explicit_bounds: vec![0.1, 0.5, 1.0],
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
}

async fn query(client: &reqwest::Client, base: &str, expr: &str) -> Option<f64> {
    let encoded: String = expr
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let response = client
        .get(format!("{base}/api/v1/query?query={encoded}"))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn meminfo_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        * 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_host_metrics_and_histograms_with_the_right_values() {
    let Some(prometheus) = binary("prometheus", "prometheus") else {
        return;
    };
    let scrape_port = free_port();
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
  hostmetrics: {{ collection_interval: 1s, scrapers: [memory, cpu] }}
exporters:
  prometheus: {{ endpoint: 127.0.0.1:{scrape_port} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp, hostmetrics], exporters: [prometheus] }}
"#
    ))
    .await;
    let mut client =
        MetricsServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    client.export(histogram()).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: sidewatch\n    static_configs: [ {{ targets: ['127.0.0.1:{scrape_port}'] }} ]\n"),
    )
    .unwrap();
    let web_port = free_port();
    let mut child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{web_port}");
    let http = reqwest::Client::new();
    type Check = (&'static str, Box<dyn Fn(f64) -> bool>);
    let checks: Vec<Check> = vec![
        (
            r#"http_server_request_duration_seconds_bucket{http_route="/orders",le="0.1"}"#,
            Box::new(|v| v == 3.0),
        ),
        (
            r#"http_server_request_duration_seconds_bucket{http_route="/orders",le="0.5"}"#,
            Box::new(|v| v == 8.0),
        ),
        (
            r#"http_server_request_duration_seconds_bucket{http_route="/orders",le="+Inf"}"#,
            Box::new(|v| v == 10.0),
        ),
        (
            r#"http_server_request_duration_seconds_count{http_route="/orders"}"#,
            Box::new(|v| v == 10.0),
        ),
        (
            r#"http_server_request_duration_seconds_sum{http_route="/orders"}"#,
            Box::new(|v| (v - 4.2).abs() < 1e-9),
        ),
        // Prometheus's own percentile over our buckets: the 50th is inside (0.1, 0.5].
        (
            r#"histogram_quantile(0.5, http_server_request_duration_seconds_bucket{http_route="/orders"})"#,
            Box::new(|v| (v - 0.26).abs() < 1e-9),
        ),
        (
            r#"target_info{exported_job="shop",exported_instance="shop-1"}"#,
            Box::new(|v| v == 1.0),
        ),
        (
            "system_memory_limit_bytes",
            Box::new(|v| v == meminfo_total_bytes()),
        ),
        (
            r#"sum(system_cpu_utilization_ratio)"#,
            Box::new(|v| (v - 1.0).abs() < 1e-6),
        ),
    ];
    let started = Instant::now();
    let mut failing = Vec::new();
    while started.elapsed() < Duration::from_secs(40) {
        failing.clear();
        for (expr, ok) in &checks {
            let value = query(&http, &base, expr).await;
            if !value.is_some_and(ok) {
                failing.push(format!("{expr} = {value:?}"));
            }
        }
        if failing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        failing.is_empty(),
        "queries not as expected after 40 s:\n{}",
        failing.join("\n")
    );
    collector.shutdown().await;
}
