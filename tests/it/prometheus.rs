//! A real Prometheus scrapes sidewatch's prometheus exporter: host metrics
//! and a histogram sent over OTLP are there, with the right values,
//! through Prometheus's own query API; windowed percentiles and ratios
//! leave it once their window holds nothing, while rates read 0.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

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

/// The values of an instant query; `None` when Prometheus does not answer.
pub async fn query_all(client: &reqwest::Client, base: &str, expr: &str) -> Option<Vec<f64>> {
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
    body["data"]["result"]
        .as_array()?
        .iter()
        .map(|r| r["value"][1].as_str()?.parse().ok())
        .collect()
}

pub async fn query(client: &reqwest::Client, base: &str, expr: &str) -> Option<f64> {
    query_all(client, base, expr).await?.first().copied()
}

/// A Prometheus on 127.0.0.1 (its own data directory and port), killed
/// when dropped.
pub struct Prometheus {
    child: std::process::Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scraping `scrape_port` every second.
    fn start(binary: &std::path::Path, scrape_port: u16) -> Prometheus {
        Prometheus::with_config(
            binary,
            &format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: sidewatch\n    static_configs: [ {{ targets: ['127.0.0.1:{scrape_port}'] }} ]\n"
            ),
        )
    }

    /// With `config` as its prometheus.yml.
    pub fn with_config(binary: &std::path::Path, config_text: &str) -> Prometheus {
        Prometheus::with_data(binary, config_text, &[], |_| {})
    }

    /// With `config` as its prometheus.yml and `args` added to its command
    /// line (`--web.enable-remote-write-receiver`).
    pub fn with_args(binary: &std::path::Path, config_text: &str, args: &[&str]) -> Prometheus {
        Prometheus::with_data(binary, config_text, args, |_| {})
    }

    /// Backfilled with `openmetrics` (samples with timestamps) by
    /// `promtool tsdb create-blocks-from openmetrics` before it starts.
    pub fn with_backfill(
        binary: &std::path::Path,
        promtool: &std::path::Path,
        openmetrics: &str,
    ) -> Prometheus {
        Prometheus::with_data(binary, "global: { scrape_interval: 1m }\n", &[], |data| {
            let input = data.with_extension("om");
            std::fs::write(&input, openmetrics).unwrap();
            let status = Command::new(promtool)
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&input)
                .arg(data)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "promtool backfill failed");
        })
    }

    fn with_data(
        binary: &std::path::Path,
        config_text: &str,
        args: &[&str],
        prepare: impl FnOnce(&std::path::Path),
    ) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        prepare(&dir.path().join("data"));
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_text).unwrap();
        let web_port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{web_port}"),
            _dir: dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

    let server = Prometheus::start(&prometheus, scrape_port);
    let base = server.base.clone();
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
    drop(server);
    assert!(
        failing.is_empty(),
        "queries not as expected after 40 s:\n{}",
        failing.join("\n")
    );
    collector.shutdown().await;
}

/// Server spans (every 10th failing) and a queue-depth gauge from the
/// OpenTelemetry SDK, a batch every 200 ms until `stop` is set (at most
/// 150 batches).
fn send_until(grpc: String, stop: Arc<AtomicBool>) {
    use opentelemetry::KeyValue as Attribute;
    use opentelemetry::metrics::MeterProvider as _;
    use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
    use opentelemetry_otlp::WithExportConfig;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("checkout")
        .build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(grpc.clone())
        .build()
        .unwrap();
    let tracing = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_resource(resource.clone())
        .build();
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(grpc)
        .build()
        .unwrap();
    let metering = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(metrics)
        .with_resource(resource)
        .build();
    let tracer = tracing.tracer("prometheus-windows");
    let depth = metering
        .meter("prometheus-windows")
        .u64_gauge("queue.depth")
        .build();
    for batch in 0..150u64 {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let now = SystemTime::now();
        for i in 0..10u64 {
            let mut span = tracer
                .span_builder("GET /orders")
                .with_kind(SpanKind::Server)
                .with_start_time(now - Duration::from_millis(10 * (i + 1)))
                .with_attributes(vec![Attribute::new("http.route", "/orders")])
                .start(&tracer);
            if i == 0 {
                span.set_status(Status::error("boom"));
            }
            span.end_with_timestamp(now);
        }
        depth.record(batch % 7 + 1, &[]);
        tracing.force_flush().unwrap();
        metering.force_flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
    }
    tracing.shutdown().unwrap();
    metering.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_quantiles_and_ratios_leave_prometheus_once_their_window_empties() {
    let Some(prometheus) = binary("prometheus", "prometheus") else {
        return;
    };
    let scrape_port = free_port();
    // metric_expiration stays at its 5 m default: what ends the series
    // must be the components saying their window is empty.
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  red: {{ windows: [5s], emit_interval: 250ms }}
processors:
  percentiles: {{ metrics: [queue\.depth], windows: [5s], emit_interval: 250ms }}
exporters:
  prometheus: {{ endpoint: 127.0.0.1:{scrape_port} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [red] }}
    metrics: {{ receivers: [otlp, red], processors: [percentiles], exporters: [prometheus] }}
"#
    ))
    .await;
    let server = Prometheus::start(&prometheus, scrape_port);
    let http = reqwest::Client::new();
    let grpc = format!("http://{}", address(&collector, "otlp/grpc"));
    let stop = Arc::new(AtomicBool::new(false));
    let client = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || send_until(grpc, stop)
    });

    let p99 = r#"red_duration_quantile_seconds{window="5s",quantile="0.99"}"#;
    let ratio = r#"red_error_ratio{window="5s"}"#;
    let depth = r#"queue_depth_quantile{window="5s",quantile="0.5"}"#;
    let rate = r#"red_request_rate_per_second{window="5s"}"#;
    // While data flows, Prometheus has every series.
    let started = Instant::now();
    let mut state = String::new();
    let mut seen = false;
    while !seen && started.elapsed() < Duration::from_secs(40) {
        let p99s = query_all(&http, &server.base, p99).await;
        let ratios = query_all(&http, &server.base, ratio).await;
        let depths = query_all(&http, &server.base, depth).await;
        let rates = query_all(&http, &server.base, rate).await;
        // Two series each: status.class ok and error.
        let any = |v: &Option<Vec<f64>>, ok: &dyn Fn(f64) -> bool| {
            v.as_ref().is_some_and(|v| v.iter().any(|x| ok(*x)))
        };
        seen = any(&p99s, &|v| v > 0.0)
            && any(&ratios, &|v| v == 1.0)
            && any(&depths, &|v| v >= 1.0)
            && any(&rates, &|v| v > 0.0);
        state = format!("p99 {p99s:?}, ratios {ratios:?}, depths {depths:?}, rates {rates:?}");
        if !seen {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    client.await.unwrap();
    assert!(
        seen,
        "while spans flowed, not every windowed series: {state}"
    );

    // Once the 5 s window holds nothing, the quantile and ratio series are
    // gone (not the last value, kept for the 5 m metric_expiration) and
    // the rate reads 0.
    let started = Instant::now();
    let mut gone = false;
    while !gone && started.elapsed() < Duration::from_secs(40) {
        let quantiles = query_all(
            &http,
            &server.base,
            r#"red_duration_quantile_seconds{window="5s"}"#,
        )
        .await;
        let ratios = query_all(&http, &server.base, ratio).await;
        let depths = query_all(&http, &server.base, r#"queue_depth_quantile{window="5s"}"#).await;
        let rates = query_all(&http, &server.base, rate).await;
        let empty = |v: &Option<Vec<f64>>| v.as_ref().is_some_and(Vec::is_empty);
        gone = empty(&quantiles)
            && empty(&ratios)
            && empty(&depths)
            && rates
                .as_ref()
                .is_some_and(|r| !r.is_empty() && r.iter().all(|v| *v == 0.0));
        state = format!(
            "quantiles {quantiles:?}, ratios {ratios:?}, depths {depths:?}, rates {rates:?}"
        );
        if !gone {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drop(server);
    collector.shutdown().await;
    assert!(gone, "40 s after the last span: {state}");
}
