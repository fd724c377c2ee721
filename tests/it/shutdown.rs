//! SIGTERM: data accepted before the signal reaches the backend, even when
//! it sits in a batch processor with a long timeout, and the exit code is 0;
//! and a ticker blocked on a full queue cannot hold the process past
//! `shutdown_timeout`.

use std::process::Command;
use std::time::Duration;

use prost::Message;

use crate::backend::{Backend, wait_until};
use crate::harness::{free_port, trace_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_accepted_before_sigterm_reaches_the_backend() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let http_port = free_port();
    let telemetry_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shutdown.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{http_port} }} }} }}
processors:
  batch: {{ send_batch_size: 100000, timeout: 1h }}
exporters:
  otlp: {{ endpoint: {} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry_port} }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp] }}
"#,
            backend.url()
        ),
    )
    .unwrap();
    let mut child = crate::harness::Sidewatch::run(&config);
    let http = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{telemetry_port}/healthz");
    let mut ready = false;
    for _ in 0..250 {
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "sidewatch did not become ready");
    for i in 0..5 {
        let response = http
            .post(format!("http://127.0.0.1:{http_port}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(trace_request(&format!("before-term-{i}"), 10).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        backend.recorded.span_count(),
        0,
        "the batch processor should still hold the spans"
    );

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "clean shutdown exits 0");
    let recorded = backend.recorded.clone();
    assert!(
        wait_until(Duration::from_secs(1), || recorded.span_count() == 50).await,
        "got {}",
        recorded.span_count()
    );
    backend.stop().await;
}

/// Spans of kind server, so the red connector counts them.
fn server_spans(
    count: usize,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let mut request = trace_request("blocked", count);
    for span in request
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        span.kind = 2;
        span.start_time_unix_nano = 1;
        span.end_time_unix_nano = 1 + 5_000_000;
    }
    request
}

/// The red connector's ticker emits into a metrics pipeline whose
/// exporter's backend is down and whose one-batch queue is full, so the
/// tick waits for room that never comes; SIGTERM still ends the process
/// within `shutdown_timeout`, and the log names the stuck ticker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_within_the_deadline_while_a_ticker_waits_on_a_full_queue() {
    let http_port = free_port();
    let telemetry_port = free_port();
    let dead_port = free_port(); // nothing listens: every export fails
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("blocked.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{http_port} }} }} }}
connectors:
  red: {{ dimensions: [service.name], emit_interval: 100ms }}
exporters:
  otlp:
    endpoint: http://127.0.0.1:{dead_port}
    sending_queue: {{ queue_size: 1, num_consumers: 1 }}
    retry_on_failure: {{ initial_interval: 30s, max_interval: 30s, max_elapsed_time: 0s }}
service:
  shutdown_timeout: 2s
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry_port} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [red] }}
    metrics: {{ receivers: [red], exporters: [otlp] }}
"#
        ),
    )
    .unwrap();
    // Killed and waited for on drop, whatever happens.
    let mut child = crate::harness::Sidewatch(
        std::process::Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{telemetry_port}/metrics");
    let mut ready = false;
    for _ in 0..250 {
        if http
            .get(&metrics_url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "sidewatch did not become ready");
    let response = http
        .post(format!("http://127.0.0.1:{http_port}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(server_spans(10).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // Wait until the queue holds its one batch; the red ticker emits every
    // 100 ms, so soon after it waits for room.
    let full = "sidewatch_exporter_queue_size{exporter=\"otlp\",signal=\"metrics\"} 1";
    let mut queue_full = false;
    for _ in 0..100 {
        let text = http
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains(full) {
            queue_full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(queue_full, "the exporter's queue never filled");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        text
    });
    let signalled = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Bounded wait: 2 s of shutdown_timeout plus a little for the abandon
    // step; past that the process is killed and the test fails.
    let mut status = None;
    while signalled.elapsed() < Duration::from_secs(4) {
        if let Some(exited) = child.try_wait().unwrap() {
            status = Some(exited);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = signalled.elapsed();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = log.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM:\n{log}"));
    eprintln!("exited {took:?} after SIGTERM");
    assert!(
        took < Duration::from_millis(3500),
        "exited {took:?} after SIGTERM, past shutdown_timeout (2 s)"
    );
    assert_eq!(status.code(), Some(1), "an incomplete shutdown exits 1");
    assert!(
        log.contains("the ticker of connector red was still delivering"),
        "the stuck ticker is named:\n{log}"
    );
}

/// A backend that accepts connections and never answers: exports to it
/// hang until their own timeout. Holds what it accepted until `stop`.
struct SilentSink {
    address: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentSink {
    fn start() -> SilentSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: at most 60 s and 256 connections.
            let started = std::time::Instant::now();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(60)
            {
                match listener.accept() {
                    Ok((stream, _)) if held.len() < 256 => held.push(stream),
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentSink { address, stop }
    }
}

impl Drop for SilentSink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Six exporters whose backend never answers, each with an export
/// hanging (30 s timeout) and its one-batch queue full, and the red
/// ticker waiting for room: SIGTERM still ends the process within
/// `shutdown_timeout` plus a few seconds, because the queues are drained
/// (and abandoned) together, not one after the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_near_the_deadline_with_many_exporters_hanging_on_a_silent_backend() {
    const EXPORTERS: usize = 6;
    let sink = SilentSink::start();
    let http_port = free_port();
    let telemetry_port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("silent.yaml");
    let exporters: String = (1..=EXPORTERS)
        .map(|i| {
            format!(
                "  otlp/silent{i}:\n    endpoint: http://{}\n    timeout: 30s\n    sending_queue: {{ queue_size: 1, num_consumers: 1 }}\n    retry_on_failure: {{ enabled: false }}\n",
                sink.address
            )
        })
        .collect();
    let names: Vec<String> = (1..=EXPORTERS).map(|i| format!("otlp/silent{i}")).collect();
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{http_port} }} }} }}
connectors:
  red: {{ dimensions: [service.name], emit_interval: 100ms }}
exporters:
{exporters}service:
  shutdown_timeout: 2s
  telemetry: {{ metrics: {{ address: 127.0.0.1:{telemetry_port} }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [red] }}
    metrics: {{ receivers: [red], exporters: [{}] }}
"#,
            names.join(", ")
        ),
    )
    .unwrap();
    let mut child = crate::harness::Sidewatch(
        std::process::Command::new(env!("CARGO_BIN_EXE_sidewatch"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let metrics_url = format!("http://127.0.0.1:{telemetry_port}/metrics");
    let mut ready = false;
    for _ in 0..250 {
        if http
            .get(&metrics_url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "sidewatch did not become ready");
    let response = http
        .post(format!("http://127.0.0.1:{http_port}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(server_spans(10).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // Every queue holds its one batch behind a hanging export.
    let mut all_full = false;
    for _ in 0..200 {
        let text = http
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if names.iter().all(|name| {
            text.contains(&format!(
                "sidewatch_exporter_queue_size{{exporter=\"{name}\",signal=\"metrics\"}} 1"
            ))
        }) {
            all_full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(all_full, "the exporters' queues never all filled");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        text
    });
    let signalled = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Generous bound: shutdown_timeout (2 s) + 5 s. Draining the queues
    // one after the other took 2 s + 1 s of abandon grace per queue.
    let bound = Duration::from_secs(2 + 5);
    let mut status = None;
    while signalled.elapsed() < bound + Duration::from_secs(10) {
        if let Some(exited) = child.try_wait().unwrap() {
            status = Some(exited);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = signalled.elapsed();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = log.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM:\n{log}"));
    eprintln!("exited {took:?} after SIGTERM");
    assert!(
        took < bound,
        "exited {took:?} after SIGTERM, past shutdown_timeout (2 s) + 5 s:\n{log}"
    );
    assert_eq!(status.code(), Some(1), "an incomplete shutdown exits 1");
    for name in &names {
        assert!(
            log.contains(&format!("exporter {name} (metrics) did not drain")),
            "{name} is named as stuck:\n{log}"
        );
    }
}
