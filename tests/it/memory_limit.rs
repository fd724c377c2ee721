//! Overload under a memory limit, with real processes: the backend is down
//! and the queue could grow without bound, four clients send as fast as
//! they can; sidewatch's resident memory stays under the limit, clients get
//! retryable refusals, and once the backend is back every accepted span is
//! delivered and new data is accepted again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use tonic::Code;

use crate::backend::{Backend, wait_until};
use crate::harness::{free_port, trace_request};

const LIMIT_MIB: u64 = 96;

fn heavy_request(
    tag: &str,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let mut request = trace_request(tag, 2_000);
    for span in &mut request.resource_spans[0].scope_spans[0].spans {
        span.attributes = (0..4)
            .map(|i| KeyValue {
                key: format!("attribute.{i}"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("x".repeat(40))),
                }),
                ..Default::default()
            })
            .collect();
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_under_the_limit_and_nothing_accepted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (port, backend_port) = (free_port(), free_port());
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{port}, max_recv_msg_size_mib: 16 }} }} }}
exporters:
  otlp:
    endpoint: http://127.0.0.1:{backend_port}
    sending_queue: {{ queue_size: 1000000 }}
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 200ms, max_elapsed_time: 0s }}
service:
  memory_limiter: {{ limit_mib: {LIMIT_MIB}, check_interval: 20ms }}
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#
        ),
    )
    .unwrap();
    let mut child = crate::harness::Sidewatch::run(&config);
    let pid = child.id();
    let client = crate::harness::connect_traces(port).await;

    // Sample RSS while four clients push for a bounded time.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = crate::harness::resident_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..4)
        .map(|worker| {
            let (mut client, accepted, refused) =
                (client.clone(), accepted.clone(), refused.clone());
            tokio::spawn(async move {
                let request = heavy_request(&format!("w{worker}"));
                // At least 6 s, and on until the limiter has refused
                // something (a slow machine fills memory later), 30 s at most.
                let started = tokio::time::Instant::now();
                let more = |refused: u64| {
                    let elapsed = started.elapsed();
                    elapsed < Duration::from_secs(6)
                        || (refused == 0 && elapsed < Duration::from_secs(30))
                };
                while more(refused.load(Ordering::Relaxed)) {
                    match client.export(request.clone()).await {
                        Ok(_) => {
                            accepted.fetch_add(2_000, Ordering::Relaxed);
                        }
                        Err(status) => {
                            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak_mib = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    let (accepted, refused) = (
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    eprintln!(
        "memory limit {LIMIT_MIB} MiB: peak RSS {peak_mib:.1} MiB, {accepted} spans accepted, {refused} requests refused"
    );
    assert!(refused > 0, "the limiter never engaged: raise the load");
    assert!(
        peak_mib <= LIMIT_MIB as f64,
        "peak RSS {peak_mib:.1} MiB over the {LIMIT_MIB} MiB limit"
    );

    // The backend comes back: everything accepted arrives, then new data
    // is admitted again.
    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let recorded = backend.recorded.clone();
    let delivered = wait_until(Duration::from_secs(60), || {
        recorded.span_count() as u64 >= accepted
    })
    .await;
    assert!(
        delivered,
        "{} of {accepted} accepted spans delivered",
        recorded.span_count()
    );
    let mut client = client;
    let mut resumed = false;
    for _ in 0..100 {
        if client.export(trace_request("after", 1)).await.is_ok() {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        resumed,
        "new data is accepted again once memory is back down"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    backend.stop().await;
}

/// A 1 MiB in-flight budget (the RSS limit is far away): concurrent
/// requests of about 0.5 MiB over gRPC and HTTP overlap and some are
/// refused retryably before they are read in full (RESOURCE_EXHAUSTED with
/// RetryInfo, 503 with Retry-After), one larger than the whole budget
/// still goes through alone, and every accepted span is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_budget_are_refused_retryably() {
    use prost::Message;
    use tonic_types::StatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (grpc_port, http_port, backend_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc_port}, max_recv_msg_size_mib: 16 }}
      http: {{ endpoint: 127.0.0.1:{http_port}, max_request_body_size: 16777216 }}
exporters:
  otlp:
    endpoint: http://127.0.0.1:{backend_port}
    sending_queue: {{ queue_size: 100000 }}
service:
  memory_limiter: {{ limit_mib: 1024, in_flight_mib: 1 }}
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#
        ),
    )
    .unwrap();
    let backend = Backend::start(format!("127.0.0.1:{backend_port}").parse().unwrap()).await;
    let sidewatch = crate::harness::Sidewatch::run(&config);
    let client = crate::harness::connect_traces(grpc_port).await;
    let size = heavy_request("size").encoded_len();
    assert!(size > 400 << 10 && size < 1 << 20, "{size} bytes");

    // Alone, a request larger than the whole budget is taken.
    let mut big = heavy_request("big");
    let spans = big.resource_spans[0].scope_spans[0].spans.clone();
    big.resource_spans[0].scope_spans[0].spans.extend(spans);
    big.resource_spans[0].scope_spans[0].spans.extend(
        heavy_request("big2").resource_spans[0].scope_spans[0]
            .spans
            .clone(),
    );
    assert!(big.encoded_len() > 1 << 20);
    let mut accepted = 6_000u64;
    client
        .clone()
        .export(big)
        .await
        .expect("a lone large request");

    let http = reqwest::Client::new();
    let mut grpc_refused = 0;
    let mut http_refused = 0;
    for round in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move {
                match client.export(heavy_request(&format!("g{round}-{i}"))).await {
                    Ok(_) => Ok(true),
                    Err(status) => Err(status),
                }
            }));
            let http = http.clone();
            let body = heavy_request(&format!("h{round}-{i}")).encode_to_vec();
            tasks.push(tokio::spawn(async move {
                let response = http
                    .post(format!("http://127.0.0.1:{http_port}/v1/traces"))
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    200 => Ok(false),
                    503 => {
                        assert_eq!(
                            response.headers().get("retry-after").map(|v| v.as_bytes()),
                            Some(&b"1"[..])
                        );
                        Err(tonic::Status::unavailable("http 503"))
                    }
                    other => panic!("HTTP answered {other}"),
                }
            }));
        }
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => accepted += 2_000,
                Err(status) if status.message() == "http 503" => http_refused += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    assert!(
                        status.get_details_retry_info().is_some(),
                        "a retryable refusal carries RetryInfo"
                    );
                    grpc_refused += 1;
                }
            }
        }
        if grpc_refused > 0 && http_refused > 0 && round >= 2 {
            break;
        }
    }
    let recorded = backend.recorded.clone();
    let delivered = wait_until(Duration::from_secs(30), || {
        recorded.span_count() as u64 >= accepted
    })
    .await;
    eprintln!(
        "in-flight budget 1 MiB: {accepted} spans accepted, {} delivered, {grpc_refused} gRPC and {http_refused} HTTP requests refused",
        recorded.span_count()
    );
    assert!(
        grpc_refused > 0,
        "concurrent gRPC requests overran the budget"
    );
    assert!(
        http_refused > 0,
        "concurrent HTTP requests overran the budget"
    );
    assert!(delivered, "every accepted span delivered");
    assert_eq!(
        recorded.span_count() as u64,
        accepted,
        "and nothing refused"
    );
    drop(sidewatch);
    backend.stop().await;
}
