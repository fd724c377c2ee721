//! The `spanmetrics` connector on spans from the real OpenTelemetry Python
//! SDK (tests/support/known_spans.py): the Collector's metric names,
//! dimensions, buckets and exemplars checked value by value as OTLP, and
//! the same metrics written to a real Prometheus with remote write under
//! the names the Collector's dashboards query
//! (`traces_span_metrics_calls_total`,
//! `traces_span_metrics_duration_milliseconds_bucket`).

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, NumberDataPoint, metric::Data};

use crate::backend::{Backend, wait_until};
use crate::external::binary;
use crate::harness::{address, point_text, point_value, start};
use crate::prometheus::{Prometheus, query};

fn histogram_text(point: &HistogramDataPoint, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    point
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// Calls per (span.name, status.code, http.request.method) and the
/// histogram points, from the newest request that has every span.
fn latest(
    requests: &[ExportMetricsServiceRequest],
) -> Option<(Vec<NumberDataPoint>, Vec<HistogramDataPoint>)> {
    requests.iter().rev().find_map(|request| {
        let metrics: Vec<_> = request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .collect();
        let calls: Vec<NumberDataPoint> = metrics
            .iter()
            .filter(|m| m.name == "traces.span.metrics.calls")
            .filter_map(|m| match &m.data {
                Some(Data::Sum(s)) => Some(s.data_points.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let total: f64 = calls.iter().map(point_value).sum();
        if total < 6.0 {
            return None;
        }
        let histograms = metrics
            .iter()
            .filter(|m| m.name == "traces.span.metrics.duration")
            .filter_map(|m| match &m.data {
                Some(Data::Histogram(h)) => Some(h.data_points.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        Some((calls, histograms))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_spans_become_the_collectors_span_metrics_value_by_value() {
    let Some(python) =
        crate::harness::python_with("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    else {
        return;
    };
    let Some(prometheus) = binary("prometheus", "prometheus") else {
        return;
    };
    let server = Prometheus::with_args(
        &prometheus,
        "global: { scrape_interval: 1m }\n",
        &["--web.enable-remote-write-receiver"],
    );
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  span_metrics:
    dimensions: [ {{ name: http.request.method, default: NONE }} ]
    exemplars: {{ enabled: true }}
    metrics_flush_interval: 200ms
exporters:
  otlp: {{ endpoint: {backend} }}
  prometheusremotewrite:
    endpoint: {prometheus}/api/v1/write
    retry_on_failure: {{ initial_interval: 200ms, max_interval: 1s }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [span_metrics] }}
    metrics: {{ receivers: [span_metrics], exporters: [otlp, prometheusremotewrite] }}
"#,
        backend = backend.url(),
        prometheus = server.base,
    ))
    .await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/known_spans.py");
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

    let recorded = backend.recorded.clone();
    assert!(
        wait_until(Duration::from_secs(20), || latest(
            &recorded.metrics.lock().unwrap()
        )
        .is_some())
        .await,
        "the backend never had calls for all 6 spans"
    );
    let (calls, histograms) = latest(&recorded.metrics.lock().unwrap()).unwrap();
    let mut call_values: Vec<(String, String, String, String, f64)> = calls
        .iter()
        .map(|p| {
            let text = |k| point_text(p, k).unwrap_or_default();
            (
                text("service.name"),
                text("span.name"),
                text("span.kind"),
                format!("{}/{}", text("status.code"), text("http.request.method")),
                point_value(p),
            )
        })
        .collect();
    call_values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let row = |name: &str, kind: &str, status: &str, value: f64| {
        (
            "shop".to_string(),
            name.to_string(),
            kind.to_string(),
            status.to_string(),
            value,
        )
    };
    assert_eq!(
        call_values,
        [
            row(
                "GET /orders",
                "SPAN_KIND_SERVER",
                "STATUS_CODE_ERROR/GET",
                1.0
            ),
            row(
                "GET /orders",
                "SPAN_KIND_SERVER",
                "STATUS_CODE_UNSET/GET",
                3.0
            ),
            row("SELECT", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET/NONE", 2.0),
        ]
    );
    let histogram = |status: &str, name: &str| {
        histograms
            .iter()
            .find(|h| {
                histogram_text(h, "status.code").as_deref() == Some(status)
                    && histogram_text(h, "span.name").as_deref() == Some(name)
            })
            .unwrap_or_else(|| panic!("no histogram for {name} {status}"))
    };
    let defaults = [
        2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0, 5000.0,
        10000.0, 15000.0,
    ];
    let ok = histogram("STATUS_CODE_UNSET", "GET /orders");
    assert_eq!(ok.explicit_bounds, defaults);
    // 3 ms in (2, 4], 30 ms in (10, 50], 300 ms in (200, 400].
    assert_eq!(
        ok.bucket_counts,
        [0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!((ok.count, ok.sum), (3, Some(333.0)));
    let error = histogram("STATUS_CODE_ERROR", "GET /orders");
    assert_eq!((error.count, error.sum), (1, Some(3000.0)));
    assert_eq!(error.bucket_counts[13], 1, "3000 ms in (2000, 5000]");
    let select = histogram("STATUS_CODE_UNSET", "SELECT");
    assert_eq!(
        (select.count, select.sum, select.bucket_counts[0]),
        (2, Some(2.0), 2)
    );
    // Exemplars go out with the flush after their spans, then clear; the
    // newest request may come after that, so look through them all.
    let exemplars: Vec<_> = recorded
        .metrics
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter_map(|m| match &m.data {
            Some(Data::Histogram(h)) => Some(h.data_points.clone()),
            _ => None,
        })
        .flatten()
        .flat_map(|p| p.exemplars)
        .collect();
    assert_eq!(exemplars.len(), 6, "one exemplar per span");
    assert!(
        exemplars
            .iter()
            .all(|e| e.trace_id.len() == 16 && e.span_id.len() == 8)
    );

    // The Collector's dashboards' queries, through Prometheus.
    let http = reqwest::Client::new();
    let base = server.base.as_str();
    let ok_calls = r#"traces_span_metrics_calls_total{job="shop",instance="shop-1",service_name="shop",span_name="GET /orders",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_UNSET",http_request_method="GET"}"#;
    let deadline = Instant::now() + Duration::from_secs(30);
    while query(&http, base, ok_calls).await != Some(3.0) {
        assert!(
            Instant::now() < deadline,
            "Prometheus never had {ok_calls} = 3"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let expect = [
        (
            r#"traces_span_metrics_calls_total{span_name="GET /orders",status_code="STATUS_CODE_ERROR"}"#,
            1.0,
        ),
        (
            r#"traces_span_metrics_calls_total{span_name="SELECT",http_request_method="NONE"}"#,
            2.0,
        ),
        (
            r#"traces_span_metrics_duration_milliseconds_bucket{span_name="GET /orders",status_code="STATUS_CODE_UNSET",le="50"}"#,
            2.0,
        ),
        (
            r#"traces_span_metrics_duration_milliseconds_bucket{span_name="GET /orders",status_code="STATUS_CODE_UNSET",le="+Inf"}"#,
            3.0,
        ),
        (
            r#"traces_span_metrics_duration_milliseconds_sum{span_name="GET /orders",status_code="STATUS_CODE_UNSET"}"#,
            333.0,
        ),
        (
            r#"traces_span_metrics_duration_milliseconds_count{span_name="SELECT"}"#,
            2.0,
        ),
    ];
    for (expr, value) in expect {
        assert_eq!(query(&http, base, expr).await, Some(value), "{expr}");
    }
    collector.shutdown().await;
    backend.stop().await;
}
