//! `sidewatch replay` runs the same graph as `run`: one config with `red`,
//! `percentiles`, `anomaly` and `alert` together, fed the same requests
//! live (over OTLP/gRPC, in real time) and replayed (from the OTLP/JSON
//! lines of those requests, in event time), gives the same alerts, the
//! same anomaly scores and incidents, and the same final metric values.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::harness::{address, start};

fn config(file: &std::path::Path) -> String {
    format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  red: {{ dimensions: [service.name], windows: [1m], emit_interval: 500ms }}
  anomaly: {{ metrics: [queue.depth], method: rolling, window: 10, seasonal: none, warmup_points: 5, quiet_points: 3 }}
  alert:
    evaluation_interval: 250ms
    rules:
      - {{ name: QueueDeep, metric: queue.depth, op: ">", warning: 100, critical: 1000, for: 1s }}
processors:
  percentiles: {{ metrics: [queue.depth], windows: [1m], emit_interval: 500ms }}
exporters:
  file: {{ path: {} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [red] }}
    metrics: {{ receivers: [otlp, red], processors: [percentiles], exporters: [anomaly, alert, file] }}
    metrics/scored: {{ receivers: [anomaly], exporters: [file] }}
    logs: {{ receivers: [alert, anomaly], exporters: [file] }}
"#,
        file.display()
    )
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// Five server spans of `checkout` ending at `end`, 10 to 50 ms long (and
/// longer as `round` grows).
fn spans(round: u64, end: u64) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "checkout")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..5u64)
                    .map(|i| {
                        let millis = 10 * (i + 1) + round;
                        Span {
                            name: "GET /cart".into(),
                            kind: 2,
                            trace_id: vec![1; 16],
                            span_id: vec![(i + 1) as u8; 8],
                            start_time_unix_nano: end - millis * 1_000_000,
                            end_time_unix_nano: end,
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn depth(value: f64, at: u64) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.name", "worker")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: at,
                            value: Some(number_data_point::Value::AsDouble(value)),
                            ..Default::default()
                        }],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// What came out, in a form that does not depend on when things ran.
#[derive(Debug, PartialEq, Default)]
struct Outcome {
    /// (rule, transition, severity, value) of every alert event.
    alerts: Vec<(String, String, String, String)>,
    /// (state, value) of every anomaly incident change.
    incidents: Vec<(String, String)>,
    /// (time, score) of every scored point.
    scores: Vec<(u64, String)>,
    /// The last value of each series of these metrics.
    last: BTreeMap<String, String>,
}

fn attribute(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            any_value::Value::StringValue(s) => s.clone(),
            any_value::Value::DoubleValue(d) => d.to_string(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default()
}

/// Reads OTLP/JSON lines of metrics and logs (as the file exporter and
/// replay write them).
fn outcome(files: &[std::path::PathBuf]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut scores = BTreeMap::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if line.contains("\"resourceLogs\"") {
                let request: ExportLogsServiceRequest = serde_json::from_str(line).unwrap();
                for record in request
                    .resource_logs
                    .iter()
                    .flat_map(|r| &r.scope_logs)
                    .flat_map(|s| &s.log_records)
                {
                    let a = &record.attributes;
                    match attribute(a, "event.name").as_str() {
                        "sidewatch.alert" => outcome.alerts.push((
                            attribute(a, "alert.name"),
                            attribute(a, "alert.transition"),
                            attribute(a, "alert.severity"),
                            attribute(a, "alert.value"),
                        )),
                        "sidewatch.anomaly" => outcome
                            .incidents
                            .push((attribute(a, "anomaly.state"), attribute(a, "anomaly.value"))),
                        _ => {}
                    }
                }
                continue;
            }
            let request: ExportMetricsServiceRequest = serde_json::from_str(line).unwrap();
            for metric in request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
            {
                let points = match &metric.data {
                    Some(metric::Data::Gauge(g)) => &g.data_points,
                    Some(metric::Data::Sum(s)) => &s.data_points,
                    _ => continue,
                };
                for point in points {
                    let value = match point.value {
                        Some(number_data_point::Value::AsDouble(v)) => v.to_string(),
                        Some(number_data_point::Value::AsInt(v)) => v.to_string(),
                        None => continue,
                    };
                    if metric.name == "anomaly.score" {
                        // Scored points reach the file once per score.
                        scores.insert(point.time_unix_nano, value);
                        continue;
                    }
                    if [
                        "red.requests",
                        "red.duration.quantile",
                        "queue.depth.quantile",
                    ]
                    .contains(&metric.name.as_str())
                    {
                        let series = format!(
                            "{} quantile={} window={}",
                            metric.name,
                            attribute(&point.attributes, "quantile"),
                            attribute(&point.attributes, "window")
                        );
                        outcome.last.insert(series, value);
                    }
                }
            }
        }
    }
    outcome.scores = scores.into_iter().collect();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_live_processing_of_the_same_input_agree() {
    let dir = tempfile::tempdir().unwrap();
    let live_file = dir.path().join("live.jsonl");
    let yaml = config(&live_file);
    let config_path = dir.path().join("pipeline.yaml");
    std::fs::write(&config_path, &yaml).unwrap();

    // Live: 50 rounds 100 ms apart, each a request of spans and a queue
    // depth, stamped with the time it is sent; the depth is high for 3 s,
    // well past `for: 1s` plus an evaluation interval.
    let collector = start(&yaml).await;
    let endpoint = format!("http://{}", address(&collector, "otlp/grpc"));
    let mut traces = TraceServiceClient::connect(endpoint.clone()).await.unwrap();
    let mut metrics = MetricsServiceClient::connect(endpoint).await.unwrap();
    let mut sent = String::new();
    let mut timer = tokio::time::interval(Duration::from_millis(100));
    for round in 0..50u64 {
        timer.tick().await;
        let now = nanos(SystemTime::now());
        // Level before and after the high stretch, so the value an alert
        // resolves with does not depend on which point its evaluation saw.
        let value = match round {
            0..10 => 10.0 + (round % 3) as f64,
            10..40 => 150.0,
            _ => 10.0,
        };
        let spans = spans(round, now);
        let depth = depth(value, now);
        sent.push_str(&serde_json::to_string(&spans).unwrap());
        sent.push('\n');
        sent.push_str(&serde_json::to_string(&depth).unwrap());
        sent.push('\n');
        traces.export(spans).await.unwrap();
        metrics.export(depth).await.unwrap();
    }
    // Let the last evaluations and emissions happen, then stop: shutdown
    // flushes red and percentiles, as the end of a replay does.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = collector.shutdown().await;
    assert!(report.clean, "{:?}", report.stuck);
    let live = outcome(std::slice::from_ref(&live_file));
    let live_bytes = std::fs::read(&live_file).unwrap();

    // Replay: the same requests from their OTLP/JSON lines.
    let input = dir.path().join("sent.jsonl");
    std::fs::write(&input, sent).unwrap();
    let output = dir.path().join("replay.csv");
    let result = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["replay", "--config"])
        .arg(&config_path)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let exporters = dir.path().join("replay.csv.exporters");
    let replayed = outcome(&[
        exporters.join("file.metrics.jsonl"),
        exporters.join("file.logs.jsonl"),
    ]);

    // The scenario did what it is meant to: an alert fired and resolved,
    // the spike was scored, and every series has values.
    assert_eq!(
        live.alerts.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(),
        vec!["fired", "resolved"],
        "{live:?}"
    );
    assert_eq!(live.scores.len(), 50);
    assert_eq!(
        live.last.get("red.requests quantile= window="),
        Some(&"250".to_string())
    );
    assert!(
        live.last
            .keys()
            .any(|k| k.starts_with("queue.depth.quantile"))
    );
    assert!(
        live.last
            .keys()
            .any(|k| k.starts_with("red.duration.quantile"))
    );
    assert_eq!(replayed, live);
    // The replay's own summary reads the same events.
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("alerts fired: QueueDeep x1"), "{stderr}");
    // Nothing was sent anywhere: the live exporter's file is untouched.
    assert_eq!(std::fs::read(&live_file).unwrap(), live_bytes);
}
