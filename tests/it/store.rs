//! The `store` exporter and the query API with the real binary: samples
//! sent over OTLP are answered by `/api/v1/query_range`, and survive
//! `kill -9` and a restart.

use std::path::Path;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

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

/// A cumulative counter `requests` for service `app`, one point per
/// `(time_ms, value)`, attribute `route`.
pub fn counter_request(route: &str, points: &[(i64, f64)]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "app")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "requests".into(),
                    data: Some(metric::Data::Sum(Sum {
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                        data_points: points
                            .iter()
                            .map(|(t, v)| NumberDataPoint {
                                attributes: vec![kv("route", route)],
                                time_unix_nano: *t as u64 * 1_000_000,
                                value: Some(number_data_point::Value::AsDouble(*v)),
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

pub struct StoreSetup {
    pub _dir: tempfile::TempDir,
    pub config: std::path::PathBuf,
    pub otlp_port: u16,
    pub telemetry_port: u16,
}

pub fn store_setup(extra: &str) -> StoreSetup {
    let dir = tempfile::tempdir().unwrap();
    let (otlp_port, telemetry_port) = (free_port(), free_port());
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{otlp_port} }} }} }}
exporters:
  store: {{ path: {path}, {extra} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry_port} }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [store] }}
"#,
            path = dir.path().join("store").display()
        ),
    )
    .unwrap();
    StoreSetup {
        _dir: dir,
        config,
        otlp_port,
        telemetry_port,
    }
}

pub async fn connect(port: u16) -> MetricsServiceClient<tonic::transport::Channel> {
    for _ in 0..100 {
        if let Ok(client) = MetricsServiceClient::connect(format!("http://127.0.0.1:{port}")).await
        {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sidewatch did not listen on {port}");
}

/// `query_range` answer as (labels, [(seconds, value)]), sorted.
pub async fn query_range(
    client: &reqwest::Client,
    base: &str,
    query: &str,
    start: f64,
    end: f64,
    step: f64,
) -> Result<Vec<(Vec<(String, String)>, Vec<(f64, f64)>)>, String> {
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/query_range"),
        &[
            ("query", query.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
        ],
    )
    .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(body.to_string());
    }
    let mut out: Vec<_> = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|series| {
            let mut labels: Vec<(String, String)> = series["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            labels.sort();
            let values = series["values"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let v = p[1].as_str().unwrap_or("NaN");
                    let v = match v {
                        "+Inf" => f64::INFINITY,
                        "-Inf" => f64::NEG_INFINITY,
                        other => other.parse().unwrap_or(f64::NAN),
                    };
                    (p[0].as_f64().unwrap_or(0.0), v)
                })
                .collect();
            (labels, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

async fn stored_points(client: &reqwest::Client, base: &str, start_ms: i64, end_ms: i64) -> usize {
    // count_over_time over a window covering everything, evaluated once.
    let query = format!(
        "sum(count_over_time(requests_total[{}s]))",
        (end_ms - start_ms) / 1000 + 10
    );
    let end = end_ms as f64 / 1000.0;
    match query_range(client, base, &query, end, end, 1.0).await {
        Ok(series) => series
            .first()
            .and_then(|(_, points)| points.first())
            .map(|(_, v)| *v as usize)
            .unwrap_or(0),
        Err(_) => 0,
    }
}

fn spawn(config: &Path) -> Sidewatch {
    Sidewatch::run(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_samples_are_answered_and_survive_kill_nine_and_restart() {
    let setup = store_setup("fsync: always, snapshot_interval: 1s");
    let base = format!("http://127.0.0.1:{}", setup.telemetry_port);
    let http = reqwest::Client::new();
    let t0 = 1_700_000_000_000i64;
    let mut sent = 0usize;
    for round in 0..3 {
        let mut sidewatch = spawn(&setup.config);
        let mut client = connect(setup.otlp_port).await;
        // 200 samples at 10 s, in 10 requests; a second apart in rounds.
        for request in 0..10 {
            let points: Vec<(i64, f64)> = (0..20)
                .map(|i| {
                    let n = (round * 200 + request * 20 + i) as i64;
                    (t0 + n * 10_000, n as f64)
                })
                .collect();
            client
                .export(counter_request("/a", &points))
                .await
                .expect("export accepted");
            sent += points.len();
        }
        let end_ms = t0 + sent as i64 * 10_000;
        // Accepted means queued; wait until the store answers with all of
        // it (then it is in the store's log), then kill -9.
        let mut stored = 0;
        for _ in 0..100 {
            stored = stored_points(&http, &base, t0, end_ms).await;
            if stored >= sent {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            stored, sent,
            "round {round}: the store answers every sample sent"
        );
        if round == 1 {
            // Let a snapshot happen this round, so recovery reads both.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        sidewatch.kill().unwrap();
        sidewatch.wait().unwrap();
    }
    let mut sidewatch = spawn(&setup.config);
    let _client = connect(setup.otlp_port).await;
    let end_ms = t0 + sent as i64 * 10_000;
    let mut stored = 0;
    for _ in 0..100 {
        stored = stored_points(&http, &base, t0, end_ms).await;
        if stored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stored, sent,
        "after kill -9 x3 and a restart every sample is still there"
    );
    // The values too: the counter's last value, and its rate (1 per 10 s).
    let end = end_ms as f64 / 1000.0 - 10.0;
    let last = query_range(&http, &base, "requests_total{route=\"/a\"}", end, end, 1.0)
        .await
        .unwrap();
    assert_eq!(last[0].1[0].1, (sent - 1) as f64);
    assert_eq!(
        last[0].0,
        vec![
            ("__name__".to_string(), "requests_total".to_string()),
            ("job".to_string(), "app".to_string()),
            ("route".to_string(), "/a".to_string())
        ]
    );
    let rate = query_range(&http, &base, "rate(requests_total[1m])", end, end, 1.0)
        .await
        .unwrap();
    assert!((rate[0].1[0].1 - 0.1).abs() < 1e-9, "{rate:?}");
    let labels: serde_json::Value = http
        .get(format!("{base}/api/v1/label/route/values"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(labels["data"], serde_json::json!(["/a"]));
    let bad: reqwest::Response = http
        .get(format!("{base}/api/v1/query?query=sum("))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    sidewatch.kill().unwrap();
    sidewatch.wait().unwrap();
}
