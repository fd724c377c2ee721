//! RED metrics from spans: an app using the OpenTelemetry SDK sends server
//! spans with known durations; the percentiles sidewatch exports match the
//! exact ones within the sketch's 1 % relative accuracy, per window, and
//! the p99 and max points carry the trace id of a slow span. Once a window
//! holds no spans, an OTLP backend receives its quantile and ratio series
//! as NO_RECORDED_VALUE points, and rates of 0.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::metrics::v1::{NumberDataPoint, metric::Data};
use opentelemetry_sdk::Resource;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, start};

const SPANS: u64 = 400;

use crate::harness::{point_text as text, point_value as value};

/// Durations 1..=400 ms in a scrambled order; every 10th span fails.
/// Returns the durations of the ok and of the failed spans.
fn send_spans(grpc: String) -> (Vec<f64>, Vec<f64>) {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(grpc)
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("checkout").build())
        .build();
    let tracer = provider.tracer("red-test");
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    let now = SystemTime::now();
    for i in 0..SPANS {
        let millis = (i * 7919) % SPANS + 1;
        if i % 10 == 0 { &mut failed } else { &mut ok }.push(millis as f64 / 1000.0);
        let start = now - Duration::from_millis(millis);
        let mut span = tracer
            .span_builder("POST /checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes(vec![KeyValue::new("http.route", "/checkout")])
            .start(&tracer);
        if i % 10 == 0 {
            span.set_status(Status::error("boom"));
        }
        span.end_with_timestamp(now);
    }
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_percentiles_match_exact_ones_within_accuracy() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  red: {{ windows: [1m, 5m], emit_interval: 300ms, relative_accuracy: 0.01 }}
exporters:
  otlp: {{ endpoint: {} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [red] }}
    metrics: {{ receivers: [red], exporters: [otlp] }}
"#,
        backend.url()
    ))
    .await;
    let grpc = format!("http://{}", address(&collector, "otlp/grpc"));
    let (mut ok, mut failed) = tokio::task::spawn_blocking(move || send_spans(grpc))
        .await
        .unwrap();
    ok.sort_by(f64::total_cmp);
    failed.sort_by(f64::total_cmp);

    // Wait for an emission that has seen every span.
    let recorded = backend.recorded.clone();
    let counted = |recorded: &crate::backend::Recorded| -> Option<Vec<NumberDataPoint>> {
        let metrics = recorded.metrics.lock().unwrap();
        let last = metrics.last()?;
        let all: Vec<_> = last
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .collect();
        let requests = all.iter().find(|m| m.name == "red.requests")?;
        let Some(Data::Sum(sum)) = &requests.data else {
            return None;
        };
        if sum.data_points.iter().map(value).sum::<f64>() != SPANS as f64 {
            return None;
        }
        let quantiles = all.iter().find(|m| m.name == "red.duration.quantile")?;
        let Some(Data::Gauge(g)) = &quantiles.data else {
            return None;
        };
        Some(g.data_points.clone())
    };
    assert!(
        wait_until(Duration::from_secs(10), || counted(&recorded).is_some()).await,
        "no emission with all {SPANS} spans"
    );
    let points = counted(&recorded).unwrap();

    let mut seen = BTreeMap::new();
    for point in &points {
        assert_eq!(text(point, "service.name").as_deref(), Some("checkout"));
        assert_eq!(text(point, "operation").as_deref(), Some("/checkout"));
        let window = text(point, "window").unwrap();
        let class = text(point, "status.class").unwrap();
        let durations = if class == "error" { &failed } else { &ok };
        let quantile: f64 = text(point, "quantile").unwrap().parse().unwrap();
        let exact = durations[(quantile * (durations.len() - 1) as f64).floor() as usize];
        let got = value(point);
        assert!(
            (got - exact).abs() <= 0.01 * exact,
            "{class} window {window} q {quantile}: {got} vs exact {exact}"
        );
        if quantile >= 0.99 {
            let exemplar = point
                .exemplars
                .first()
                .expect("p99 and max carry an exemplar");
            assert_eq!(exemplar.trace_id.len(), 16);
        }
        seen.insert((class, window, text(point, "quantile").unwrap()), got);
    }
    // Two series (ok, error) x two windows x five quantiles.
    assert_eq!(seen.len(), 2 * 2 * 5);
    let max = |class: &str| seen[&(class.to_string(), "1m".to_string(), "1".to_string())];
    assert_eq!(max("ok").max(max("error")), 0.4, "max is exact");

    // Error counts: status ERROR on every 10th span, across both status classes.
    let errors: f64 = {
        let metrics = recorded.metrics.lock().unwrap();
        metrics
            .last()
            .unwrap()
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter(|m| m.name == "red.errors")
            .filter_map(|m| match &m.data {
                Some(Data::Sum(s)) => Some(s.data_points.iter().map(value).sum::<f64>()),
                _ => None,
            })
            .sum()
    };
    assert_eq!(errors, (SPANS / 10) as f64);
    collector.shutdown().await;
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_otlp_backend_receives_no_recorded_value_points_once_a_window_empties() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  red: {{ windows: [2s], emit_interval: 200ms }}
exporters:
  otlp: {{ endpoint: {} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [red] }}
    metrics: {{ receivers: [red], exporters: [otlp] }}
"#,
        backend.url()
    ))
    .await;
    let grpc = format!("http://{}", address(&collector, "otlp/grpc"));
    tokio::task::spawn_blocking(move || send_spans(grpc))
        .await
        .unwrap();

    // The points of `name` in the latest emission.
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
    let no_value = |points: &[NumberDataPoint]| {
        !points.is_empty() && points.iter().all(|p| p.flags & 1 == 1 && p.value.is_none())
    };
    let had_values = wait_until(Duration::from_secs(10), || {
        latest("red.duration.quantile")
            .iter()
            .any(|p| p.value.is_some())
    })
    .await;
    assert!(had_values, "no quantiles while the window held spans");
    let ended = wait_until(Duration::from_secs(15), || {
        no_value(&latest("red.duration.quantile")) && no_value(&latest("red.error.ratio")) && {
            let rates = latest("red.request.rate");
            !rates.is_empty() && rates.iter().all(|p| value(p) == 0.0)
        }
    })
    .await;
    let quantiles = latest("red.duration.quantile");
    let shown: Vec<_> = quantiles.iter().map(|p| (p.flags, p.value)).collect();
    assert!(
        ended,
        "the window emptied, yet quantiles (flags, value): {shown:?}"
    );
    // Two series (ok, error) x five quantiles, each ended, none missing.
    assert_eq!(quantiles.len(), 2 * 5);
    collector.shutdown().await;
    backend.stop().await;
}
