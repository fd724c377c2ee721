//! The telemetry endpoint: /healthz reflects the pipeline state, /metrics
//! counts accepted items per receiver and sent items per exporter.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, forwarding_config, start, trace_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_report_what_happened() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&forwarding_config(&backend.url(), "")).await;
    let base = format!("http://{}", address(&collector, "telemetry"));
    let http = reqwest::Client::new();

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_slice(&health.bytes().await.unwrap()).unwrap();
    assert_eq!(body["status"], "ok");

    let mut client =
        TraceServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    client.export(trace_request("counted", 7)).await.unwrap();
    let recorded = backend.recorded.clone();
    assert!(wait_until(Duration::from_secs(5), || recorded.span_count() == 7).await);
    // The backend answers before the exporter counts the success.
    let exporter = collector
        .telemetry
        .exporters()
        .into_iter()
        .find(|e| e.signal.as_str() == "traces")
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || exporter
            .sent_items
            .load(std::sync::atomic::Ordering::Relaxed)
            == 7)
        .await
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sidewatch_receiver_accepted_items_total{receiver=\"otlp\",transport=\"grpc\",signal=\"traces\"} 7",
        "sidewatch_receiver_refused_items_total{receiver=\"otlp\",transport=\"grpc\",signal=\"traces\"} 0",
        "sidewatch_exporter_sent_items_total{exporter=\"otlp\",signal=\"traces\"} 7",
        "sidewatch_exporter_failed_items_total{exporter=\"otlp\",signal=\"traces\"} 0",
        "sidewatch_exporter_queued_items{exporter=\"otlp\",signal=\"traces\"} 0",
        "sidewatch_exporter_queue_capacity{exporter=\"otlp\",signal=\"traces\"} 1000",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }

    // Self-monitoring over the last minute: the open client connection,
    // one request answered with a measured latency, no errors.
    let sample = |metrics: &str, series: &str| -> Option<f64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    };
    let receiver = r#"receiver="otlp",transport="grpc",signal="traces""#;
    assert_eq!(
        sample(
            &metrics,
            r#"sidewatch_receiver_active_connections{receiver="otlp",transport="grpc"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    let rate = sample(
        &metrics,
        &format!("sidewatch_receiver_requests_per_second{{{receiver}}}"),
    )
    .unwrap();
    assert!(rate > 0.0 && rate <= 1.0, "one request: {rate}/s");
    assert_eq!(
        sample(
            &metrics,
            &format!("sidewatch_receiver_request_error_ratio{{{receiver}}}")
        ),
        Some(0.0)
    );
    let p99 = sample(
        &metrics,
        &format!("sidewatch_receiver_request_duration_seconds{{{receiver},quantile=\"0.99\"}}"),
    )
    .unwrap();
    assert!(p99 > 0.0 && p99 < 5.0, "p99 {p99}");
    assert!(
        sample(
            &metrics,
            r#"sidewatch_exporter_export_duration_seconds{exporter="otlp",signal="traces",quantile="0.5"}"#
        )
        .is_some(),
        "{metrics}"
    );

    // While the backend fails, health says which exporter is degraded.
    backend
        .recorded
        .unavailable
        .store(true, std::sync::atomic::Ordering::SeqCst);
    client.export(trace_request("failing", 1)).await.unwrap();
    let degraded = {
        let mut degraded = false;
        for _ in 0..100 {
            let response = http.get(format!("{base}/healthz")).send().await.unwrap();
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            if body["status"] == "degraded" {
                assert_eq!(body["failing_exporters"][0]["exporter"], "otlp");
                degraded = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        degraded
    };
    assert!(degraded, "healthz never reported the failing exporter");
    backend
        .recorded
        .unavailable
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(5), || recorded.span_count() == 8).await);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let exporter_errors = sample(
        &metrics,
        r#"sidewatch_exporter_export_error_ratio{exporter="otlp",signal="traces"}"#,
    )
    .unwrap();
    assert!(
        exporter_errors > 0.0 && exporter_errors < 1.0,
        "failed attempts, then a success: {exporter_errors}"
    );
    // The connection closes, and the gauge follows.
    drop(client);
    let listener = collector
        .telemetry
        .listeners()
        .into_iter()
        .find(|l| l.transport == "grpc")
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || listener
            .active_connections
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0)
        .await
    );
    assert!(collector.shutdown().await.clean);
    backend.stop().await;
}
