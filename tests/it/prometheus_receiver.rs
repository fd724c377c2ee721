//! The `prometheus` receiver against the real Prometheus: a running
//! Prometheus's own /metrics page is served, byte for byte, by a small
//! server that both Prometheus and sidewatch scrape; every series Prometheus
//! stored from it must be in what sidewatch sent on over OTLP, with the
//! same value (histogram buckets summed back to Prometheus's cumulative
//! `le` series). sidewatch also scrapes the live Prometheus itself, and a
//! target that starts failing reads `up` 0 with its series marked stale.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{DataPointFlags, number_data_point};

use crate::backend::{Backend, wait_until};
use crate::external::binary;
use crate::harness::start;
use crate::prometheus::Prometheus;

type Labels = BTreeMap<String, String>;

/// What the static server answers: a body, or a 500 when `None`.
type Page = Arc<Mutex<Option<String>>>;

async fn serve_page(page: Page) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let page = page.clone();
            async move {
                match page.lock().unwrap().clone() {
                    Some(body) => (
                        axum::http::StatusCode::OK,
                        [("content-type", "text/plain; version=0.0.4")],
                        body,
                    ),
                    None => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        [("content-type", "text/plain")],
                        "down".to_string(),
                    ),
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    port
}

fn text(kv: &[KeyValue]) -> Labels {
    kv.iter()
        .filter_map(|a| match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some((a.key.clone(), s.clone())),
            any_value::Value::IntValue(i) => Some((a.key.clone(), i.to_string())),
            _ => None,
        })
        .collect()
}

/// Every sample of one sidewatch scrape as Prometheus would name it:
/// (`__name__` plus labels) -> value; stale points are skipped.
fn as_prometheus_series(request: &ExportMetricsServiceRequest) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    let no_value = DataPointFlags::NoRecordedValueMask as u32;
    let mut put = |name: &str, mut labels: Labels, value: f64| {
        labels.insert("__name__".into(), name.to_string());
        out.insert(labels, value);
    };
    for metric in request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        let name = metric.name.as_str();
        match &metric.data {
            Some(Data::Gauge(g)) => g
                .data_points
                .iter()
                .filter(|p| p.flags & no_value == 0)
                .for_each(|p| put(name, text(&p.attributes), number(&p.value))),
            Some(Data::Sum(s)) => s
                .data_points
                .iter()
                .filter(|p| p.flags & no_value == 0)
                .for_each(|p| put(name, text(&p.attributes), number(&p.value))),
            Some(Data::Histogram(h)) => {
                for p in h.data_points.iter().filter(|p| p.flags & no_value == 0) {
                    let labels = text(&p.attributes);
                    let mut cumulative = 0u64;
                    for (i, count) in p.bucket_counts.iter().enumerate() {
                        cumulative += count;
                        let mut l = labels.clone();
                        let le = p
                            .explicit_bounds
                            .get(i)
                            .map(|b| format_le(*b))
                            .unwrap_or_else(|| "+Inf".into());
                        l.insert("le".into(), le);
                        put(&format!("{name}_bucket"), l, cumulative as f64);
                    }
                    put(&format!("{name}_count"), labels.clone(), p.count as f64);
                    put(&format!("{name}_sum"), labels, p.sum.unwrap_or(f64::NAN));
                }
            }
            Some(Data::Summary(s)) => {
                for p in s.data_points.iter().filter(|p| p.flags & no_value == 0) {
                    let labels = text(&p.attributes);
                    for q in &p.quantile_values {
                        let mut l = labels.clone();
                        l.insert("quantile".into(), format_le(q.quantile));
                        put(name, l, q.value);
                    }
                    put(&format!("{name}_count"), labels.clone(), p.count as f64);
                    put(&format!("{name}_sum"), labels, p.sum);
                }
            }
            _ => {}
        }
    }
    out
}

fn number(value: &Option<number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    }
}

/// `le` and `quantile` label values compared as numbers: Prometheus keeps
/// the exposition's spelling (`1e+06`), sidewatch keeps the number.
fn format_le(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

fn resource_job(request: &ExportMetricsServiceRequest) -> Option<String> {
    let resource = request.resource_metrics.first()?.resource.as_ref()?;
    text(&resource.attributes).get("service.name").cloned()
}

fn up(request: &ExportMetricsServiceRequest) -> Option<f64> {
    as_prometheus_series(request)
        .into_iter()
        .find(|(l, _)| l.get("__name__").map(String::as_str) == Some("up"))
        .map(|(_, v)| v)
}

/// Prometheus's latest value of every series of `job`, as labels -> value,
/// without the target's own labels (`job`, `instance`).
async fn stored_series(client: &reqwest::Client, base: &str, job: &str) -> BTreeMap<Labels, f64> {
    let response = client
        .get(format!("{base}/api/v1/query?query=%7Bjob%3D%22{job}%22%7D"))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    let mut out = BTreeMap::new();
    for series in body["data"]["result"].as_array().unwrap() {
        let mut labels: Labels = series["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        labels.remove("job");
        labels.remove("instance");
        for key in ["le", "quantile"] {
            if let Some(v) = labels.get(key).and_then(|v| match v.as_str() {
                "+Inf" => Some(f64::INFINITY),
                v => v.parse::<f64>().ok(),
            }) {
                labels.insert(key.into(), format_le(v));
            }
        }
        let value: f64 = match series["value"][1].as_str().unwrap() {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap(),
        };
        out.insert(labels, value);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_prometheus_stores_arrives_over_otlp_with_its_value() {
    let Some(prometheus_binary) = binary("prometheus", "prometheus") else {
        return;
    };
    let page: Page = Arc::new(Mutex::new(None));
    let page_port = serve_page(page.clone()).await;
    let prometheus = Prometheus::with_config(
        &prometheus_binary,
        &format!(
            "global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: static\n    static_configs: [ {{ targets: ['127.0.0.1:{page_port}'] }} ]\n"
        ),
    );
    let client = reqwest::Client::new();
    // Prometheus's own exposition, once it serves one.
    let mut body = None;
    let mut answered = 0;
    for _ in 0..200 {
        if let Ok(r) = client
            .get(format!("{}/metrics", prometheus.base))
            .send()
            .await
            && r.status().is_success()
        {
            // The second page: the first request's own latency is in it.
            answered += 1;
            let text = r.text().await.unwrap();
            if answered == 2 {
                body = Some(text);
                break;
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = body.expect("Prometheus serves /metrics within 10 s");
    assert!(body.contains("# TYPE prometheus_http_request_duration_seconds histogram"));
    assert!(body.contains("# TYPE go_gc_duration_seconds summary"));
    *page.lock().unwrap() = Some(body);
    let prometheus_port = prometheus.base.rsplit(':').next().unwrap().to_string();

    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  prometheus:
    config:
      scrape_configs:
        - job_name: static
          scrape_interval: 1s
          static_configs: [ {{ targets: ['127.0.0.1:{page_port}'] }} ]
        - job_name: prometheus
          scrape_interval: 1s
          static_configs: [ {{ targets: ['127.0.0.1:{prometheus_port}'], labels: {{ env: test }} }} ]
exporters:
  otlp: {{ endpoint: {}, retry_on_failure: {{ initial_interval: 50ms }} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    metrics: {{ receivers: [prometheus], exporters: [otlp] }}
"#,
        backend.url()
    ))
    .await;

    let recorded = backend.recorded.clone();
    let scrape_of = |job: &str, want_up: f64| {
        recorded
            .metrics
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| resource_job(r).as_deref() == Some(job) && up(r) == Some(want_up))
            .cloned()
    };
    assert!(
        wait_until(Duration::from_secs(20), || scrape_of("static", 1.0)
            .is_some()
            && scrape_of("prometheus", 1.0).is_some())
        .await,
        "no successful scrape of both targets within 20 s"
    );
    let ours = as_prometheus_series(&scrape_of("static", 1.0).unwrap());

    // Prometheus's view of the same page, once it has scraped it.
    let mut theirs = BTreeMap::new();
    for _ in 0..100 {
        theirs = stored_series(&client, &prometheus.base, "static").await;
        if theirs
            .iter()
            .any(|(l, v)| l.get("__name__").map(String::as_str) == Some("up") && *v == 1.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut compared = 0;
    let mut mismatches = Vec::new();
    for (labels, value) in &theirs {
        let name = labels["__name__"].as_str();
        // Prometheus's own per-scrape series: their values differ per scrape.
        if name == "up" || name.starts_with("scrape_") {
            continue;
        }
        match ours.get(labels) {
            Some(v) if v == value || (v.is_nan() && value.is_nan()) => compared += 1,
            other => mismatches.push(format!(
                "{labels:?}: Prometheus {value}, sidewatch {other:?}"
            )),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} series differ, first ones:\n{}",
        mismatches.len(),
        theirs.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
    assert!(compared > 100, "only {compared} series compared");
    eprintln!("{compared} series equal to Prometheus's, value by value");

    // The live Prometheus, scraped directly: its build info, with the
    // target's label and the job as the service.
    let live = scrape_of("prometheus", 1.0).unwrap();
    let series = as_prometheus_series(&live);
    let build = series
        .keys()
        .find(|l| l.get("__name__").map(String::as_str) == Some("prometheus_build_info"))
        .expect("prometheus_build_info scraped");
    assert_eq!(build.get("env").map(String::as_str), Some("test"));
    assert!(build.get("version").is_some_and(|v| !v.is_empty()));

    // The page starts failing: up 0 and the last series flagged stale.
    let before = recorded.metrics.lock().unwrap().len();
    *page.lock().unwrap() = None;
    assert!(
        wait_until(Duration::from_secs(10), || scrape_of("static", 0.0)
            .is_some())
        .await,
        "no up=0 scrape within 10 s of the target failing"
    );
    let failed = recorded.metrics.lock().unwrap()[before..]
        .iter()
        .find(|r| resource_job(r).as_deref() == Some("static") && up(r) == Some(0.0))
        .cloned()
        .unwrap();
    let stale = failed
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| match &m.data {
            Some(Data::Sum(s)) => s.data_points.iter().all(|p| p.flags != 0),
            Some(Data::Gauge(g)) => g.data_points.iter().all(|p| p.flags != 0),
            Some(Data::Histogram(h)) => h.data_points.iter().all(|p| p.flags != 0),
            Some(Data::Summary(s)) => s.data_points.iter().all(|p| p.flags != 0),
            _ => false,
        })
        .count();
    assert!(
        stale > 50,
        "only {stale} metrics marked stale after the target failed"
    );

    collector.shutdown().await;
    backend.stop().await;
    drop(prometheus);
}
