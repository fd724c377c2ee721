//! A request body must keep arriving: one that stalls for
//! `read_progress_timeout`, or is not complete `read_timeout` after its
//! headers, is failed and its share of the in-flight budget returned, so
//! slow clients cannot starve real ones (the issue's case: three requests
//! declaring 4 MiB and sending one byte held a 64 MiB limiter's whole
//! budget).

use std::time::{Duration, Instant};

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Sidewatch, free_port, trace_request};

/// The real binary (its own RSS is what the limiter samples), with these
/// deadlines on both protocols; its gRPC and HTTP addresses.
async fn sidewatch(
    dir: &tempfile::TempDir,
    deadlines: &str,
) -> (Sidewatch, std::net::SocketAddr, std::net::SocketAddr) {
    let (grpc, http) = (free_port(), free_port());
    let path = dir.path().join("sidewatch.yaml");
    std::fs::write(&path, config(grpc, http, deadlines)).unwrap();
    let child = Sidewatch::run(&path);
    for port in [grpc, http] {
        let mut listening = false;
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                listening = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(listening, "sidewatch did not listen on {port}");
    }
    let at = |port: u16| format!("127.0.0.1:{port}").parse().unwrap();
    (child, at(grpc), at(http))
}

fn config(grpc: u16, http: u16, deadlines: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc}, {deadlines} }}
      http: {{ endpoint: 127.0.0.1:{http}, {deadlines} }}
exporters:
  debug: {{}}
service:
  memory_limiter: {{ limit_mib: 64 }}
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"#
    )
}

/// An HTTP/1 POST declaring `declared` bytes of body and sending `sent`.
async fn partial_post(to: std::net::SocketAddr, declared: usize, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(to).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream
}

/// The status line's code of the answer on `stream`, if one comes in time.
async fn status_code(stream: &mut TcpStream, within: Duration) -> Option<u16> {
    let mut answer = [0u8; 12];
    tokio::time::timeout(within, stream.read_exact(&mut answer))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(&answer[9..12]).ok()?.parse().ok()
}

async fn http_status(to: std::net::SocketAddr) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{to}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(trace_request("slow", 1).encode_to_vec())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_failed_and_give_their_budget_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_sidewatch, grpc, http) = sidewatch(&dir, "read_progress_timeout: 1s").await;
    // Three HTTP requests that reserve 4 MiB each: the whole budget
    // (limit_mib / 5 = 12 MiB).
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(partial_post(http, 4 * 1024 * 1024, b"x").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(http_status(http).await, 503, "the budget is taken");
    let started = Instant::now();
    for stream in &mut stalled {
        assert_eq!(status_code(stream, Duration::from_secs(5)).await, Some(408));
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(http_status(http).await, 200, "the budget was given back");

    // gRPC: a message declared as 4,000,000 bytes of which one arrives.
    let client = crate::raw_grpc::connect(grpc).await;
    let mut ready = client.clone().ready().await.unwrap();
    let (response, mut stream) = ready
        .send_request(
            crate::raw_grpc::request(grpc, crate::raw_grpc::TRACES_PATH, &[]),
            false,
        )
        .unwrap();
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&(4_000_000u32).to_be_bytes());
    prefix.push(0x0a);
    stream.send_data(prefix.into(), false).unwrap();
    let started = Instant::now();
    let status = crate::raw_grpc::status_of(response, Duration::from_secs(5)).await;
    assert_eq!(
        status.map(|(code, _)| code),
        Some(tonic::Code::DeadlineExceeded as i32)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    let valid = crate::raw_grpc::call(
        &client,
        crate::raw_grpc::request(grpc, crate::raw_grpc::TRACES_PATH, &[]),
        crate::raw_grpc::frame(false, &trace_request("after", 1).encode_to_vec()),
    )
    .await;
    assert_eq!(
        valid,
        Some((0, false)),
        "served again on the same connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_failed_at_the_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_sidewatch, _, http) =
        sidewatch(&dir, "read_progress_timeout: 1s, read_timeout: 2s").await;
    let mut stream = partial_post(http, 1000, b"x").await;
    let started = Instant::now();
    // One byte every 200 ms: always making progress, never finishing.
    let code = loop {
        if let Some(code) = status_code(&mut stream, Duration::from_millis(200)).await {
            break Some(code);
        }
        if started.elapsed() > Duration::from_secs(6) {
            break None;
        }
        if stream.write_all(b"x").await.is_err() {
            break status_code(&mut stream, Duration::from_secs(1)).await;
        }
    };
    assert_eq!(code, Some(408));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}
