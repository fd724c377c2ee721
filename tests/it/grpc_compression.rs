//! Compressed gRPC under the memory limiter, with the real binary: the
//! issue's flood of 600 concurrent gzip requests, each 4 KB on the wire and
//! 4 MB decompressed, with the backend down. The decompressed bytes count
//! against the in-flight budget before they are allocated, so resident
//! memory stays under `limit_mib` and the rest are refused retryably.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

use crate::harness::{Sidewatch, free_port, peak_resident_kib, trace_request};

const LIMIT_MIB: u64 = 64;
const REQUESTS: usize = 600;
const CONNECTIONS: usize = 6;

/// A trace request of about 4,000,000 bytes that gzip shrinks to a few KB.
fn compressible_request() -> Vec<u8> {
    let mut request = trace_request("compressed", 1);
    request.resource_spans[0].scope_spans[0].spans[0].attributes = vec![KeyValue {
        key: "payload".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue("a".repeat(4_000_000))),
        }),
        ..Default::default()
    }];
    request.encode_to_vec()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_grpc_flood_stays_under_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (port, backend_port) = (free_port(), free_port());
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{port} }} }} }}
exporters:
  otlp:
    endpoint: http://127.0.0.1:{backend_port}
    sending_queue: {{ queue_size: 100000 }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 200ms, max_elapsed_time: 0s }}
service:
  memory_limiter: {{ limit_mib: {LIMIT_MIB} }}
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#
        ),
    )
    .unwrap();
    let sidewatch = Sidewatch::run(&config);
    // Wait until it listens (5 s at most).
    let _ = crate::harness::connect_traces(port).await;
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let idle_mib = crate::harness::resident_kib(sidewatch.id()).unwrap() as f64 / 1024.0;
    let raw = compressible_request();
    let compressed = gzip(&raw);
    assert!(compressed.len() < 8_000, "{} bytes", compressed.len());
    let body = crate::raw_grpc::frame(true, &compressed);

    let (accepted, refused_retryably, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut calls = Vec::with_capacity(REQUESTS);
    for _ in 0..CONNECTIONS {
        let client = crate::raw_grpc::connect(address).await;
        for _ in 0..REQUESTS / CONNECTIONS {
            let (client, body) = (client.clone(), body.clone());
            let (accepted, refused_retryably, other) =
                (accepted.clone(), refused_retryably.clone(), other.clone());
            calls.push(tokio::spawn(async move {
                let request = crate::raw_grpc::request(
                    address,
                    crate::raw_grpc::TRACES_PATH,
                    &[("grpc-encoding", "gzip")],
                );
                match crate::raw_grpc::call(&client, request, body).await {
                    Some((0, _)) => accepted.fetch_add(1, Ordering::Relaxed),
                    // RESOURCE_EXHAUSTED with RetryInfo.
                    Some((8, true)) => refused_retryably.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }));
        }
    }
    for call in calls {
        tokio::time::timeout(Duration::from_secs(60), call)
            .await
            .expect("every call answered within 60 s")
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak_mib = peak_resident_kib(sidewatch.id()).unwrap() as f64 / 1024.0;
    let (accepted, refused, other) = (
        accepted.load(Ordering::Relaxed),
        refused_retryably.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    eprintln!(
        "compressed gRPC flood: idle RSS {idle_mib:.1} MiB, peak {peak_mib:.1} MiB (limit {LIMIT_MIB}), {accepted} accepted, {refused} refused with RetryInfo, {other} other"
    );
    assert_eq!(other, 0, "every answer is OK or a retryable refusal");
    assert!(accepted >= 1, "some are accepted");
    assert!(refused >= 1, "the rest are refused");
    assert!(
        peak_mib < LIMIT_MIB as f64,
        "peak RSS {peak_mib:.1} MiB over the {LIMIT_MIB} MiB limit"
    );
}
