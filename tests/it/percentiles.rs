//! The `percentiles` processor end to end: an app using the OpenTelemetry
//! SDK records a latency histogram (cumulative, fine buckets) and a queue
//! depth gauge; sidewatch emits windowed percentiles of both. Histogram
//! percentiles can only be as precise as the buckets (values are assumed
//! spread evenly inside a bucket), so they are checked against the exact
//! quantile within one bucket width; gauge percentiles within the sketch's
//! 1 % accuracy. The OpenTelemetry Python SDK's exponential histogram,
//! which rescales between two cumulative exports, gives percentiles within
//! one bucket of the exact ones.

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

/// Every exponential-histogram point the backend received, as (scale, count).
fn exponential_points(recorded: &crate::backend::Recorded) -> Vec<(i32, u64)> {
    recorded
        .metrics
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter_map(|m| match &m.data {
            Some(Data::ExponentialHistogram(h)) => Some(&h.data_points),
            _ => None,
        })
        .flatten()
        .map(|p| (p.scale, p.count))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exponential_histogram_percentiles_stay_right_when_the_python_sdk_rescales() {
    let Some(python) =
        crate::harness::python_with("opentelemetry.exporter.otlp.proto.grpc.metric_exporter")
    else {
        return;
    };
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
processors:
  percentiles:
    metrics: [http\.server\.request\.duration]
    windows: [1m]
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
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/exponential_latencies.py");
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .args([
            "--endpoint",
            &format!("http://{}", address(&collector, "otlp/grpc")),
        ])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the Python client finishes within 60 s")
        .expect("the Python client runs");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("DONE"),
        "the Python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The scenario of the issue: the SDK exported 1000 values at one scale,
    // then 2000 at a coarser one.
    let recorded = backend.recorded.clone();
    let points = exponential_points(&recorded);
    let first = points.iter().find(|(_, count)| *count == 1000).copied();
    let second = points.iter().find(|(_, count)| *count == 2000).copied();
    let (Some((fine, _)), Some((coarse, _))) = (first, second) else {
        panic!("expected points of 1000 and 2000 values, got {points:?}");
    };
    assert!(coarse < fine, "the SDK did not rescale: {points:?}");

    let latest = || -> Vec<NumberDataPoint> {
        let metrics = recorded.metrics.lock().unwrap();
        metrics
            .iter()
            .rev()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .find(|m| m.name == "http.server.request.duration.quantile")
            .and_then(|m| match &m.data {
                Some(Data::Gauge(g)) => Some(g.data_points.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    // The second batch reaches 2 s: wait for an emission that has seen it.
    let done = wait_until(Duration::from_secs(15), || {
        latest()
            .iter()
            .any(|p| text(p, "quantile").as_deref() == Some("1") && value(p) > 1.8)
    })
    .await;
    assert!(done, "no emission that has seen the second batch");
    tokio::time::sleep(Duration::from_millis(700)).await;

    // Values are spread evenly inside their bucket, so a percentile is
    // within one bucket width (base - 1, relative, at the coarser scale)
    // of the exact one, plus the sketch's 1 %.
    let tolerance = 2f64.powf(2f64.powi(-coarse)) - 1.0 + 0.01;
    let quantiles = latest();
    assert_eq!(quantiles.len(), 5, "p50/p90/p95/p99/max: {quantiles:?}");
    for point in &quantiles {
        let q: f64 = text(point, "quantile").unwrap().parse().unwrap();
        // Exact quantile of 0.001, 0.002, ..., 2.000, each counted once.
        let exact = ((q * 1999.0).floor() + 1.0) / 1000.0;
        let got = value(point);
        eprintln!("q {q}: {got:.4} s, exact {exact:.3} s");
        assert!(
            (got - exact).abs() <= tolerance * exact,
            "q {q}: {got} vs exact {exact} (tolerance {:.1} %)",
            tolerance * 100.0
        );
    }
    collector.shutdown().await;
    backend.stop().await;
}
