//! The dashboard in a real browser: the `sidewatch` binary with a store,
//! the `red` connector and an alert rule, fed over OTLP/gRPC; Debian's
//! Chromium (headless, fresh profile) driven by playwright-core
//! (`tests/browser/dashboard.mjs`) loads `/`, and the charts must hold the
//! values that were sent. Node, Chromium or `npm ci --prefix tests/browser`
//! missing: skip loudly, or fail under CI=true.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};

use crate::harness::{Sidewatch, free_port};

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
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

/// The browser script's folder once `npm ci` has run there, with node and
/// Chromium on the machine; `None` (after a loud message) when something
/// is missing, and a panic under CI=true.
fn browser_tools() -> Option<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("SIDEWATCH_TEST_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = [
        (!node).then_some("node"),
        (!Path::new(&chromium).exists()).then_some("chromium (/usr/bin/chromium)"),
        (!folder.join("node_modules/playwright-core").exists())
            .then_some("playwright-core (npm ci --prefix tests/browser)"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if missing.is_empty() {
        return Some(folder);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "missing {}, and CI=true: .ci/run must install them",
            missing.join(", ")
        );
    }
    eprintln!(
        "\n*** SKIPPING the dashboard browser test: missing {} (run .ci/run) ***\n",
        missing.join(", ")
    );
    None
}

/// `system.cpu.utilization{cpu.mode="user"}`, one point per `(seconds
/// ago, value)`: what the hostmetrics receiver sends, with known values.
fn cpu_request(points: &[(u64, f64)]) -> ExportMetricsServiceRequest {
    let now = now_nanos();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource::default()),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "system.cpu.utilization".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points
                            .iter()
                            .map(|(ago, value)| NumberDataPoint {
                                attributes: vec![kv("cpu.mode", "user")],
                                time_unix_nano: now - ago * 1_000_000_000,
                                value: Some(number_data_point::Value::AsDouble(*value)),
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

/// Server spans of service `checkout`, route `/pay`, lasting 1 to 100 ms.
fn spans_request() -> ExportTraceServiceRequest {
    let end = now_nanos();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "checkout")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (1..=100u64)
                    .map(|ms| Span {
                        name: "POST /pay".into(),
                        kind: span::SpanKind::Server as i32,
                        trace_id: vec![7; 16],
                        span_id: ms.to_be_bytes().to_vec(),
                        start_time_unix_nano: end - ms * 1_000_000,
                        end_time_unix_nano: end,
                        attributes: vec![kv("http.route", "/pay")],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    match client.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(serde_json::Value::Null))
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// Waits (bounded) until the query API answers `query` with a series.
async fn until_stored(client: &reqwest::Client, base: &str, query: &str) {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &[("query", query)])
        .unwrap();
    for _ in 0..100 {
        let (_, body) = get_json(client, url.as_str()).await;
        if body["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never answered {query}");
}

/// The distinct non-null values of the chart column labelled `label`.
fn chart_values(report: &serde_json::Value, chart: &str, label: &str) -> Vec<f64> {
    let labels = report["charts"][chart]["labels"]
        .as_array()
        .unwrap_or_else(|| panic!("no chart {chart} drawn: {report}"));
    let column = labels
        .iter()
        .position(|l| l == label)
        .unwrap_or_else(|| panic!("chart {chart} has no series {label}: {labels:?}"));
    let mut values: Vec<f64> = report["charts"][chart]["data"][column + 1]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    values
}

#[tokio::test]
async fn charts_show_the_series_sent_and_the_ack_button_acknowledges() {
    let Some(browser) = browser_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (otlp_port, telemetry_port) = (free_port(), free_port());
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{otlp_port} }} }} }}
  hostmetrics: {{ collection_interval: 1s, scrapers: [memory, disk, filesystem, network] }}
  internal: {{ collection_interval: 1s }}
connectors:
  red: {{ windows: [1m], emit_interval: 300ms }}
  alert:
    evaluation_interval: 200ms
    rules:
      - {{ name: BusyCPU, metric: system.cpu.utilization, matchers: ['cpu.mode="user"'], op: ">", warning: 0.5 }}
exporters:
  store: {{ path: {store} }}
  debug: {{}}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry_port} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [red] }}
    metrics: {{ receivers: [otlp, hostmetrics, internal, red], exporters: [store, alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [debug] }}
"#,
            store = dir.path().join("store").display()
        ),
    )
    .unwrap();
    let _sidewatch = Sidewatch::run(&config);
    let endpoint = format!("http://127.0.0.1:{otlp_port}");
    let mut metrics = None;
    for _ in 0..100 {
        if let Ok(client) = MetricsServiceClient::connect(endpoint.clone()).await {
            metrics = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut metrics = metrics.expect("sidewatch listens");
    // 19 points 10 s apart over the last 190 s, each value distinct; the
    // last (0.55) passes the rule's 0.5, so BusyCPU fires.
    let sent: Vec<(u64, f64)> = (0..19u64)
        .map(|i| (190 - i * 10, 0.01 + i as f64 * 0.03))
        .collect();
    metrics
        .export(cpu_request(&sent))
        .await
        .expect("metrics accepted");
    TraceServiceClient::connect(endpoint)
        .await
        .unwrap()
        .export(spans_request())
        .await
        .expect("spans accepted");

    let base = format!("http://127.0.0.1:{telemetry_port}");
    let http = reqwest::Client::new();
    until_stored(&http, &base, "system_cpu_utilization_ratio").await;
    until_stored(&http, &base, "red_duration_quantile_seconds").await;
    // Two scrapes at least, so the rate panels have two points.
    until_stored(
        &http,
        &base,
        "count_over_time(system_network_io_bytes_total[1m]) > 2",
    )
    .await;
    until_stored(
        &http,
        &base,
        "count_over_time(sidewatch_receiver_accepted_items_total[1m]) > 2",
    )
    .await;

    // BusyCPU fires before the page is loaded, so it has an ack button.
    let mut firing = false;
    for _ in 0..100 {
        let (_, body) = get_json(&http, &format!("{base}/api/v1/alerts")).await;
        firing = body["data"]["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|a| a["labels"]["alertname"] == "BusyCPU" && a["state"] == "firing")
        });
        if firing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(firing, "BusyCPU never fired");

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut command = tokio::process::Command::new("node");
    command
        .current_dir(&browser)
        .arg("dashboard.mjs")
        .args(["--url", &format!("{base}/")])
        .arg("--screenshot")
        .arg(&screenshot);
    command.args(["--ack", "BusyCPU"]);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the browser script ends within 2 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "the browser script printed no report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(output.status.success(), "browser script failed: {report}");

    // Offline and quiet: nothing fetched from elsewhere, no dialog, no
    // script error.
    assert_eq!(report["outsideRequests"], serde_json::json!([]), "{report}");
    assert_eq!(report["dialogs"], serde_json::json!([]), "{report}");
    assert_eq!(report["pageErrors"], serde_json::json!([]), "{report}");

    // The CPU chart holds exactly the values sent (each on the 4 s step
    // grid of the 15 minute range, the last repeated until lookback ends).
    let mut expected: Vec<f64> = sent.iter().map(|(_, v)| *v).collect();
    expected.sort_by(f64::total_cmp);
    let drawn = chart_values(&report, "cpu", "cpu_mode=user");
    assert_eq!(drawn.len(), expected.len(), "{drawn:?} vs {expected:?}");
    for (d, e) in drawn.iter().zip(&expected) {
        assert!((d - e).abs() < 1e-9, "{drawn:?} vs {expected:?}");
    }

    // The latency chart's percentiles are the spans' (1..100 ms), within
    // the sketch's 1 % and one rank.
    for (quantile, seconds) in [("0.5", 0.050), ("0.95", 0.095), ("0.99", 0.099)] {
        let label = format!("operation=/pay, quantile={quantile}, service_name=checkout");
        let values = chart_values(&report, "red-latency", &label);
        assert!(
            values.iter().any(|v| (v - seconds).abs() <= seconds * 0.03),
            "p{quantile}: {values:?}, expected about {seconds}"
        );
    }
    let red_row = report["red"][0].clone();
    assert_eq!(red_row[0], "checkout", "{report}");
    assert_eq!(red_row[1], "/pay", "{report}");

    // The real host's and sidewatch's own series are drawn; series nobody
    // sent (no anomaly processor here) show "no data", not an error.
    for chart in ["memory", "network", "throughput", "queues"] {
        assert!(
            report["charts"][chart]["labels"]
                .as_array()
                .is_some_and(|l| !l.is_empty()),
            "{chart}: {report}"
        );
    }
    assert_eq!(
        report["noData"],
        serde_json::json!(["anomaly-score"]),
        "{report}"
    );

    let png = std::fs::read(&screenshot).expect("screenshot saved");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);

    // The page showed BusyCPU acknowledged after the click; the API
    // must say so too.
    let (_, body) = get_json(&http, &format!("{base}/api/v1/alerts")).await;
    let alert = body["data"]["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["labels"]["alertname"] == "BusyCPU"))
        .cloned()
        .unwrap_or_else(|| panic!("BusyCPU not listed: {body}"));
    assert_eq!(alert["acknowledged"]["by"], "dashboard", "{alert}");
}

async fn telemetry_base(
    dashboard_setting: &str,
) -> (sidewatch::pipeline::build::RunningCollector, String) {
    let collector = crate::harness::start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  debug: {{}}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} {dashboard_setting} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [debug] }}
"#
    ))
    .await;
    let base = format!(
        "http://{}",
        crate::harness::address(&collector, "telemetry")
    );
    (collector, base)
}

#[tokio::test]
async fn dashboard_is_served_by_default_and_dashboard_false_turns_it_off() {
    let http = reqwest::Client::new();
    let (_on, base) = telemetry_base("").await;
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        (
            "/dashboard/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
    }
    let missing = http
        .get(format!("{base}/dashboard/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let (_off, base) = telemetry_base(", dashboard: false").await;
    for path in ["/", "/dashboard/app.js"] {
        let status = http
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path}");
    }
    let status = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
}
