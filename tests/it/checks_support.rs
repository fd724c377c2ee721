//! Shared by the checks_* tests: sidewatch with one checks receiver
//! exporting to a real OTLP backend, and lookups of the points it sent.

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::NumberDataPoint;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use sidewatch::pipeline::build::RunningCollector;

use crate::backend::{Backend, Recorded, wait_until};
use crate::harness::{point_text, start};

pub struct ChecksRun {
    pub backend: Backend,
    pub collector: RunningCollector,
}

/// sidewatch with `receivers` (YAML under `receivers:`, receiver ids in
/// `ids`) feeding an OTLP exporter to a fresh backend.
pub async fn start_checks(receivers: &str, ids: &[&str]) -> ChecksRun {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
{receivers}
exporters:
  otlp:
    endpoint: {}
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    metrics: {{ receivers: [{}], exporters: [otlp] }}
"#,
        backend.url(),
        ids.join(", ")
    ))
    .await;
    ChecksRun { backend, collector }
}

impl ChecksRun {
    pub fn telemetry(&self) -> SocketAddr {
        crate::harness::address(&self.collector, "telemetry")
    }

    pub async fn stop(self) {
        self.collector.shutdown().await;
        self.backend.stop().await;
    }
}

/// A point of metric `name` with its resource attributes.
#[derive(Debug, Clone)]
pub struct Found {
    pub resource: Vec<KeyValue>,
    pub point: NumberDataPoint,
}

impl Found {
    pub fn text(&self, key: &str) -> Option<String> {
        point_text(&self.point, key)
    }

    pub fn value(&self) -> f64 {
        crate::harness::point_value(&self.point)
    }
}

/// Every point of metric `name` received so far, in arrival order.
pub fn points(recorded: &Recorded, name: &str) -> Vec<Found> {
    let mut found = Vec::new();
    for request in recorded.metrics.lock().unwrap().iter() {
        for resource in &request.resource_metrics {
            let attributes = resource
                .resource
                .as_ref()
                .map(|r| r.attributes.clone())
                .unwrap_or_default();
            for scope in &resource.scope_metrics {
                for metric in scope.metrics.iter().filter(|m| m.name == name) {
                    let data_points = match &metric.data {
                        Some(Data::Gauge(g)) => &g.data_points,
                        Some(Data::Sum(s)) => &s.data_points,
                        _ => continue,
                    };
                    for point in data_points {
                        found.push(Found {
                            resource: attributes.clone(),
                            point: point.clone(),
                        });
                    }
                }
            }
        }
    }
    found
}

/// The latest point of `name` whose attribute `key` is `value`, waiting up
/// to 10 s for one.
pub async fn latest(recorded: &Recorded, name: &str, key: &str, value: &str) -> Found {
    let matching = || {
        points(recorded, name)
            .into_iter()
            .rfind(|f| f.text(key).as_deref() == Some(value))
    };
    wait_until(Duration::from_secs(10), || matching().is_some()).await;
    matching().unwrap_or_else(|| panic!("no {name} point with {key}={value}"))
}

/// The `/checks` JSON of the telemetry endpoint.
pub async fn checks_json(telemetry: SocketAddr) -> serde_json::Value {
    reqwest::get(format!("http://{telemetry}/checks"))
        .await
        .expect("GET /checks")
        .json()
        .await
        .expect("/checks is JSON")
}

/// The `/checks` entry of `target`.
pub fn entry<'a>(json: &'a serde_json::Value, target: &str) -> &'a serde_json::Value {
    json["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["target"] == target))
        .unwrap_or_else(|| panic!("no /checks entry for {target}: {json}"))
}

/// The latest value of `name` whose attributes include every (key, value).
pub fn latest_value(recorded: &Recorded, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    points(recorded, name)
        .into_iter()
        .rfind(|f| with.iter().all(|(k, v)| f.text(k).as_deref() == Some(*v)))
        .map(|f| f.value())
}

/// Waits (10 s at most) until `name` with `with` satisfies `test`; the
/// last value seen.
pub async fn until_value(
    recorded: &Recorded,
    name: &str,
    with: &[(&str, &str)],
    test: impl Fn(f64) -> bool,
) -> Option<f64> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = latest_value(recorded, name, with);
        if value.is_some_and(&test) || tokio::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
