//! Incidents a person can act on, end to end into the real Alertmanager:
//! anomalies that start together on one host are one correlated alert
//! naming every series (and on two hosts, two alerts), and an alert rule
//! with `op: anomalous` fires on a shift but not on stationary noise of
//! the same length.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::alerting::{start_alertmanager, wait_for};
use crate::anomaly::gaussian_noise;
use crate::harness::{address, start};

/// One point of `metric` on host `host` at `at_seconds`.
fn point(host: &str, metric: &str, at_seconds: u64, value: f64) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "host.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(host.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: metric.into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: vec![NumberDataPoint {
                            time_unix_nano: at_seconds * 1_000_000_000,
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

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Active alerts in Alertmanager named `alertname`, by `host_name`.
async fn active(url: &str, alertname: &str) -> BTreeMap<String, serde_json::Value> {
    let alerts: Vec<serde_json::Value> = reqwest::get(format!("{url}/api/v2/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alerts
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == alertname && a["status"]["state"] == "active")
        .map(|a| {
            (
                a["labels"]["host_name"].as_str().unwrap_or("").to_string(),
                a,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_starting_together_on_one_host_are_one_correlated_alert() {
    let Some(alertmanager) = start_alertmanager().await else {
        return;
    };
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  anomaly:
    metrics: [system.cpu.utilization, system.memory.utilization]
    correlation: {{ window: 2m, by: [host.name, service.name, container.id] }}
exporters:
  alertmanager: {{ endpoint: {}, resend_interval: 1s, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [anomaly] }}
    logs/incidents: {{ receivers: [anomaly], exporters: [alertmanager] }}
"#,
        alertmanager.url
    ))
    .await;
    let mut client =
        MetricsServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    // 200 points of N(100, 2) every 10 s (the noise the detector tests
    // show raises nothing), then on host a a CPU spike at point 200 and a
    // memory jump 50 s later; on host b only the memory jump. Sending stops
    // while the memory incidents are open (they end 5 quiet points on).
    let noise = gaussian_noise(11, 208);
    let start_at = now_seconds() - 208 * 10;
    for (i, &value) in noise.iter().enumerate() {
        let at = start_at + i as u64 * 10;
        let cpu = if i == 200 { 500.0 } else { value };
        let memory = if i >= 205 { value + 60.0 } else { value };
        for (host, metric, value) in [
            ("a", "system.cpu.utilization", cpu),
            ("a", "system.memory.utilization", memory),
            ("b", "system.cpu.utilization", value),
            ("b", "system.memory.utilization", memory),
        ] {
            client.export(point(host, metric, at, value)).await.unwrap();
        }
    }
    let both = wait_for(Duration::from_secs(20), async || {
        let alerts = active(&alertmanager.url, "AnomalyIncident").await;
        (alerts.len() == 2
            && alerts["a"]["annotations"]["series_count"] == "2"
            && alerts["b"]["annotations"]["series_count"] == "1")
            .then_some(alerts)
    })
    .await;
    let alerts = both.unwrap_or_else(|| {
        panic!(
            "expected one correlated alert per host, Alertmanager shows {:?}",
            {
                let url = alertmanager.url.clone();
                std::thread::spawn(move || {
                    tokio::runtime::Runtime::new()
                        .unwrap()
                        .block_on(active(&url, "AnomalyIncident"))
                })
                .join()
                .unwrap()
            }
        )
    });
    let a = &alerts["a"]["annotations"];
    let summary = a["summary"].as_str().unwrap();
    assert!(
        summary.contains("system.cpu.utilization") && summary.contains("system.memory.utilization"),
        "{summary}"
    );
    // Every series with its observed and expected value and z-score.
    let series: Vec<&str> = [&a["series_1"], &a["series_2"]]
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        series[0].starts_with("system.cpu.utilization"),
        "{series:?}"
    );
    assert!(
        series[0].contains("observed 500, expected 98"),
        "{series:?}"
    );
    assert!(
        series[1].starts_with("system.memory.utilization"),
        "{series:?}"
    );
    assert!(series.iter().all(|s| s.contains(", z ")), "{series:?}");
    assert_eq!(alerts["a"]["labels"]["severity"], "warning");
    let b = alerts["b"]["annotations"]["series_1"].as_str().unwrap();
    assert!(b.starts_with("system.memory.utilization"), "{b}");
    assert!(collector.shutdown().await.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn op_anomalous_fires_on_a_shift_and_not_on_stationary_noise() {
    let Some(alertmanager) = start_alertmanager().await else {
        return;
    };
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  anomaly: {{ metrics: [queue.latency] }}
  alert:
    evaluation_interval: 200ms
    rules:
      - {{ name: LatencyAnomalous, metric: queue.latency, op: anomalous, sensitivity: medium }}
exporters:
  alertmanager: {{ endpoint: {}, resend_interval: 1s, retry_on_failure: {{ initial_interval: 100ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [anomaly] }}
    metrics/scored: {{ receivers: [anomaly], exporters: [alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [alertmanager] }}
"#,
        alertmanager.url
    ))
    .await;
    let mut client =
        MetricsServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    // 230 points a second apart ending now: host a shifts by 15 deviations
    // at point 200, host b is the same noise throughout.
    let noise = gaussian_noise(11, 230);
    let start_at = now_seconds() - 230;
    for (i, value) in noise.iter().enumerate() {
        let at = start_at + i as u64;
        let shifted = if i >= 200 { value + 30.0 } else { *value };
        client
            .export(point("a", "queue.latency", at, shifted))
            .await
            .unwrap();
        client
            .export(point("b", "queue.latency", at, *value))
            .await
            .unwrap();
    }
    let fired = wait_for(Duration::from_secs(20), async || {
        let alerts = active(&alertmanager.url, "LatencyAnomalous").await;
        alerts.contains_key("a").then_some(alerts)
    })
    .await
    .expect("the shift on host a fires");
    assert_eq!(fired["a"]["labels"]["anomaly_metric"], "queue.latency");
    // Give host b the same time to fire; it must not.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = active(&alertmanager.url, "LatencyAnomalous").await;
    assert_eq!(
        alerts.keys().collect::<Vec<_>>(),
        vec!["a"],
        "only the shifted series fires: {alerts:?}"
    );
    assert!(collector.shutdown().await.clean);
}
