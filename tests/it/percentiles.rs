//! The `percentiles` processor end to end: an app using the OpenTelemetry
//! SDK records a latency histogram (cumulative, fine buckets) and a queue
//! depth gauge; sidewatch emits windowed percentiles of both. Histogram
//! percentiles can only be as precise as the buckets (values are assumed
//! spread evenly inside a bucket), so they are checked against the exact
//! quantile within one bucket width; gauge percentiles within the sketch's
//! 1 % accuracy.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric::Data};
use opentelemetry_sdk::Resource;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, start};

use crate::harness::{point_text as text, point_value as value};

/// Latencies 1..=1000 ms recorded in two exports (the second cumulative
/// export must only add its delta), queue depths 1..=200 as gauge values.
fn record(grpc: String) {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(grpc)
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("checkout").build())
        .build();
    let meter = provider.meter("percentiles-test");
    let latency = meter
        .f64_histogram("http.server.duration")
        .with_unit("ms")
        .with_boundaries((1..100).map(|i| i as f64 * 10.0).collect())
        .build();
    let depth = meter.u64_gauge("queue.depth").build();
    let route = [KeyValue::new("http.route", "/checkout")];
    for half in 0..2u64 {
        for i in 0..500u64 {
            // Scrambled order, so nothing depends on arrival order.
            let ms = half * 500 + (i * 7919) % 500 + 1;
            latency.record(ms as f64, &route);
        }
        for d in 0..100u64 {
            depth.record(half * 100 + d + 1, &route);
            // A gauge keeps only its last value per export: export each.
            provider.force_flush().unwrap();
        }
    }
    provider.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_and_gauge_percentiles_from_sdk_metrics() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
processors:
  percentiles:
    metrics: [http\.server\.duration, queue\.depth]
    windows: [1m, 5m]
    emit_interval: 300ms
exporters:
  otlp: {{ endpoint: {} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], processors: [percentiles], exporters: [otlp] }}
"#,
        backend.url()
    ))
    .await;
    let grpc = format!("http://{}", address(&collector, "otlp/grpc"));
    tokio::task::spawn_blocking(move || record(grpc))
        .await
        .unwrap();

    // The latest emission of each quantile gauge, once the recording is done.
    let recorded = backend.recorded.clone();
    let latest = |name: &str| -> Vec<NumberDataPoint> {
        let metrics = recorded.metrics.lock().unwrap();
        metrics
            .iter()
            .rev()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == name)
            .and_then(|m| match &m.data {
                Some(Data::Gauge(g)) => Some(g.data_points.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let settled = |name: &str, max: f64| {
        latest(name)
            .iter()
            .any(|p| text(p, "quantile").as_deref() == Some("1") && value(p) >= max)
    };
    let done = wait_until(Duration::from_secs(15), || {
        settled("http.server.duration.quantile", 990.0) && settled("queue.depth.quantile", 200.0)
    })
    .await;
    assert!(done, "no emission that has seen every observation");
    // One more emission after the last data, so both gauges reflect it all.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let latencies = latest("http.server.duration.quantile");
    assert_eq!(latencies.len(), 2 * 5, "two windows x p50/p90/p95/p99/max");
    for point in &latencies {
        assert_eq!(text(point, "http.route").as_deref(), Some("/checkout"));
        assert_eq!(text(point, "service.name").as_deref(), Some("checkout"));
        let q: f64 = text(point, "quantile").unwrap().parse().unwrap();
        // Exact quantile of 1..=1000; each value counted once even though
        // the cumulative histogram was exported many times.
        let exact = (q * 999.0).floor() + 1.0;
        let got = value(point);
        assert!(
            (got - exact).abs() <= 10.0,
            "latency q {q} window {:?}: {got} vs exact {exact}",
            text(point, "window")
        );
    }

    let depths = latest("queue.depth.quantile");
    assert_eq!(depths.len(), 2 * 5);
    for point in &depths {
        let q: f64 = text(point, "quantile").unwrap().parse().unwrap();
        let exact = (q * 199.0).floor() + 1.0;
        let got = value(point);
        // The SDK exports the last gauge value once more at shutdown, so
        // allow one rank beside the 1 % accuracy.
        assert!(
            (got - exact).abs() <= 0.01 * exact + 1.0,
            "depth q {q}: {got} vs exact {exact}"
        );
    }
    collector.shutdown().await;
    backend.stop().await;
}
