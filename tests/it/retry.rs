//! The backend is down for a few seconds, then up: nothing that was
//! accepted is lost, and the retries are counted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, forwarding_config, free_port, start, trace_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_accepted_is_lost_while_the_backend_is_down() {
    let backend_port = free_port();
    let backend_address = format!("127.0.0.1:{backend_port}");
    let collector = start(&forwarding_config(&format!("http://{backend_address}"), "")).await;
    let mut client =
        TraceServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    for i in 0..10 {
        client
            .export(trace_request(&format!("down-{i}"), 5))
            .await
            .expect("accepted while the backend is down");
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let exporter = collector
        .telemetry
        .exporters()
        .into_iter()
        .find(|e| e.signal.as_str() == "traces")
        .unwrap();
    assert!(
        exporter.retried_items.load(Ordering::Relaxed) > 0,
        "no retries while the backend was down"
    );
    assert_eq!(exporter.sent_items.load(Ordering::Relaxed), 0);

    let backend = Backend::start(backend_address.parse().unwrap()).await;
    // Half the data is sent while the backend is failing on purpose: those
    // requests reach it and are refused, then retried.
    backend.recorded.unavailable.store(true, Ordering::SeqCst);
    for i in 10..20 {
        client
            .export(trace_request(&format!("flaky-{i}"), 5))
            .await
            .unwrap();
    }
    let recorded = backend.recorded.clone();
    assert!(
        wait_until(Duration::from_secs(5), || recorded
            .calls
            .load(Ordering::SeqCst)
            > 0)
        .await
    );
    backend.recorded.unavailable.store(false, Ordering::SeqCst);

    assert!(wait_until(Duration::from_secs(10), || recorded.span_count() >= 100).await);
    let mut names: Vec<String> = recorded
        .traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
        })
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 100, "every accepted span arrives exactly once");
    assert!(
        wait_until(Duration::from_secs(5), || exporter
            .sent_items
            .load(Ordering::Relaxed)
            == 100)
        .await
    );
    assert_eq!(exporter.failed_items.load(Ordering::Relaxed), 0);
    assert!(collector.shutdown().await.clean);
    backend.stop().await;
}
