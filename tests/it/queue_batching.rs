//! Batching with a persistent queue, with real processes: the issue's
//! scenario (plain gRPC clients streaming spans through `batch` and a
//! persistent queue, `kill -9` three times mid-stream, a restart) and the
//! same with `sending_queue.batch`: the backend receives every span whose
//! request was acknowledged, counted by unique span id; duplicates are
//! allowed and reported. And the queue does batch: the backend gets far
//! fewer requests than the clients sent.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::backend::{Backend, wait_until};
use crate::harness::{Sidewatch, connect_traces, free_port};

const CLIENTS: usize = 4;
const SPANS_PER_REQUEST: u64 = 50;
const KILLS: usize = 3;

/// Span ids are unique across the test: `next` counts them.
fn request(next: &AtomicU64) -> (ExportTraceServiceRequest, Vec<u64>) {
    let first = next.fetch_add(SPANS_PER_REQUEST, Ordering::Relaxed);
    let ids: Vec<u64> = (first..first + SPANS_PER_REQUEST).collect();
    let spans = ids
        .iter()
        .map(|id| Span {
            name: "work".into(),
            trace_id: [id.to_be_bytes(), 7u64.to_be_bytes()].concat(),
            span_id: id.to_be_bytes().to_vec(),
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (request, ids)
}

/// Every span id the backend received, and how many spans in all.
fn received(backend: &Backend) -> (BTreeSet<u64>, usize) {
    let traces = backend.recorded.traces.lock().unwrap();
    let mut ids = BTreeSet::new();
    let mut count = 0;
    for span in traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        count += 1;
        if let Ok(bytes) = <[u8; 8]>::try_from(span.span_id.as_slice()) {
            ids.insert(u64::from_be_bytes(bytes));
        }
    }
    (ids, count)
}

/// What a run of the scenario saw.
struct Outcome {
    acknowledged: usize,
    lost: usize,
    duplicates: usize,
    client_requests: usize,
    backend_requests: usize,
}

/// Streams spans from `CLIENTS` gRPC clients into sidewatch running
/// `config_body` (`{port}`, `{backend}` and `{storage}` filled in), kills
/// it with SIGKILL `KILLS` times mid-stream, restarts it, and waits (30 s
/// at most) until the backend has every acknowledged span.
async fn stream_through_kills(config_body: &str) -> Outcome {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let (port, backend_port) = (free_port(), free_port());
    let config = dir.path().join("sidewatch.yaml");
    let body = config_body
        .replace("{port}", &port.to_string())
        .replace("{backend}", &format!("http://127.0.0.1:{backend_port}"))
        .replace("{storage}", &dir.path().join("queue").display().to_string());
    std::fs::write(&config, body).unwrap();
    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;

    let next_id = Arc::new(AtomicU64::new(1));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    for _ in 0..KILLS {
        let mut sidewatch = Sidewatch::run(&config);
        connect_traces(port).await;
        let stop = tokio_util::sync::CancellationToken::new();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (next_id, acknowledged, sent, stop) = (
                    next_id.clone(),
                    acknowledged.clone(),
                    sent.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let mut client = connect_traces(port).await;
                    // Bounded: the kill ends the stream well before this.
                    for _ in 0..20_000 {
                        let (request, ids) = request(&next_id);
                        tokio::select! {
                            answer = client.export(request) => {
                                sent.fetch_add(1, Ordering::Relaxed);
                                if answer.is_ok() {
                                    acknowledged.lock().unwrap().extend(ids);
                                }
                            }
                            _ = stop.cancelled() => return,
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(700..1500))).await;
        // Mid-stream: requests in flight now were never acknowledged, so
        // they may or may not arrive.
        sidewatch.kill().unwrap();
        sidewatch.wait().unwrap();
        stop.cancel();
        for client in clients {
            client.await.unwrap();
        }
    }

    let mut sidewatch = Sidewatch::run(&config);
    let acknowledged = acknowledged.lock().unwrap().clone();
    // Returns early once complete; on a loss the assertions tell.
    wait_until(Duration::from_secs(30), || {
        received(&backend).0.is_superset(&acknowledged)
    })
    .await;
    let (ids, count) = received(&backend);
    let outcome = Outcome {
        acknowledged: acknowledged.len(),
        lost: acknowledged.difference(&ids).count(),
        duplicates: count - ids.len(),
        client_requests: sent.load(Ordering::Relaxed) as usize,
        backend_requests: backend.recorded.traces.lock().unwrap().len(),
    };
    eprintln!(
        "kill -9 x{KILLS}: {} spans acknowledged, {} lost, {} duplicates; {} client requests, {} requests to the backend",
        outcome.acknowledged,
        outcome.lost,
        outcome.duplicates,
        outcome.client_requests,
        outcome.backend_requests
    );
    sidewatch.kill().unwrap();
    sidewatch.wait().unwrap();
    backend.stop().await;
    outcome
}

fn assert_nothing_lost_and_batched(outcome: &Outcome) {
    assert!(
        outcome.acknowledged > 0,
        "no request was acknowledged at all"
    );
    assert_eq!(
        outcome.lost, 0,
        "{} of {} acknowledged spans lost",
        outcome.lost, outcome.acknowledged
    );
    assert!(
        outcome.backend_requests * 4 < outcome.client_requests,
        "the queue batched: {} requests to the backend for {} from clients",
        outcome.backend_requests,
        outcome.client_requests
    );
}

/// The issue's shape (pipelines/forward.yaml before, plus `storage`): the
/// `batch` processor runs inside the persistent queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_processor_before_a_persistent_queue_loses_nothing_over_kill_nine() {
    let outcome = stream_through_kills(
        r#"
receivers:
  otlp: { protocols: { grpc: { endpoint: "127.0.0.1:{port}" } } }
processors:
  batch: { send_batch_size: 8192, timeout: 200ms }
exporters:
  otlp:
    endpoint: "{backend}"
    sending_queue: { storage: "{storage}" }
    retry_on_failure: { initial_interval: 100ms, max_interval: 300ms, max_elapsed_time: 0s }
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [otlp] }
"#,
    )
    .await;
    assert_nothing_lost_and_batched(&outcome);
}

/// The recommended shape: `sending_queue.batch`, no processor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_queue_batch_with_storage_loses_nothing_over_kill_nine() {
    let outcome = stream_through_kills(
        r#"
receivers:
  otlp: { protocols: { grpc: { endpoint: "127.0.0.1:{port}" } } }
exporters:
  otlp:
    endpoint: "{backend}"
    sending_queue:
      storage: "{storage}"
      batch: { flush_timeout: 200ms, min_size: 8192, max_size: 10000 }
    retry_on_failure: { initial_interval: 100ms, max_interval: 300ms, max_elapsed_time: 0s }
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    traces: { receivers: [otlp], exporters: [otlp] }
"#,
    )
    .await;
    assert_nothing_lost_and_batched(&outcome);
}
