//! When an exporter's queue is full the client gets a retryable refusal
//! (gRPC RESOURCE_EXHAUSTED with RetryInfo, HTTP 503 with Retry-After),
//! and the refusal is counted; once the queue drains, data flows again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tonic_types::StatusExt;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, free_port, start, trace_request};

/// Items refused by all receivers of `collector`.
fn refused_items(collector: &sidewatch::pipeline::build::RunningCollector) -> u64 {
    collector
        .telemetry
        .receivers()
        .iter()
        .map(|r| r.refused_items.load(Ordering::Relaxed))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_retryable_answers() {
    let backend_address = format!("127.0.0.1:{}", free_port());
    // One worker, one queue slot, and a long first backoff: the worker holds
    // the first batch while retrying, the second fills the queue.
    let yaml = format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0 }}
      http: {{ endpoint: 127.0.0.1:0 }}
exporters:
  otlp:
    endpoint: http://{backend_address}
    sending_queue: {{ queue_size: 1, num_consumers: 1 }}
    retry_on_failure: {{ initial_interval: 1s, max_interval: 1s, randomization_factor: 0 }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#
    );
    let collector = start(&yaml).await;
    let mut grpc =
        TraceServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    grpc.export(trace_request("first", 2)).await.unwrap();
    let exporter = collector.telemetry.exporters()[0].clone();
    // Wait until the worker holds the first batch, so the queue is empty.
    assert!(
        wait_until(Duration::from_secs(5), || exporter
            .queued_batches
            .load(Ordering::Relaxed)
            == 1
            && exporter.retried_items.load(Ordering::Relaxed) == 0
            && exporter.consecutive_failures.load(Ordering::Relaxed) > 0)
        .await
    );
    grpc.export(trace_request("second", 2))
        .await
        .expect("the queue has one free slot");

    let status = grpc
        .export(trace_request("third", 2))
        .await
        .expect_err("queue is full");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let retry = status
        .get_details_retry_info()
        .expect("RetryInfo tells the client when to retry");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));

    let url = format!("http://{}/v1/traces", address(&collector, "otlp/http"));
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(trace_request("fourth", 2).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");

    let refused = refused_items(&collector);
    assert_eq!(refused, 4, "two refused requests of two spans each");

    // The backend comes up: the queue drains and new data is accepted.
    let backend = Backend::start(backend_address.parse().unwrap()).await;
    let recorded = backend.recorded.clone();
    assert!(wait_until(Duration::from_secs(10), || recorded.span_count() == 4).await);
    grpc.export(trace_request("fifth", 2))
        .await
        .expect("accepted again once drained");
    assert!(wait_until(Duration::from_secs(5), || recorded.span_count() == 6).await);
    assert!(collector.shutdown().await.clean);
    backend.stop().await;
}

/// With `block_on_overflow`, a full queue makes the request wait for room
/// instead of refusing it: the client's call completes once the backend is
/// back and the queue drains, and nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_queue_holds_the_request_until_there_is_room() {
    let backend_address = format!("127.0.0.1:{}", free_port());
    let yaml = format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  otlp:
    endpoint: http://{backend_address}
    sending_queue: {{ queue_size: 1, num_consumers: 1, block_on_overflow: true }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 100ms }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#
    );
    let collector = start(&yaml).await;
    let grpc = TraceServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
        .await
        .unwrap();
    // The worker holds the first batch, the queue the second; the third
    // has to wait.
    grpc.clone()
        .export(trace_request("first", 2))
        .await
        .unwrap();
    grpc.clone()
        .export(trace_request("second", 2))
        .await
        .unwrap();
    let mut waiting = grpc.clone();
    let third = tokio::spawn(async move { waiting.export(trace_request("third", 2)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "the third request waits for room");

    let backend = Backend::start(backend_address.parse().unwrap()).await;
    third
        .await
        .unwrap()
        .expect("answered once the queue had room");
    let recorded = backend.recorded.clone();
    assert!(wait_until(Duration::from_secs(10), || recorded.span_count() == 6).await);
    let refused = refused_items(&collector);
    assert_eq!(refused, 0, "nothing refused");
    assert!(collector.shutdown().await.clean);
    backend.stop().await;
}
