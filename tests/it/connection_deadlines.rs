//! Connections that never send a request, or sit idle, cannot lock a
//! receiver out: they are closed after `handshake_timeout` /
//! `idle_timeout`, and a full listener evicts its longest-idle connection
//! for a newcomer instead of refusing it. Both transports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{address, start, trace_request};

fn config(grpc: &str, http: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0, {grpc} }}
      http: {{ endpoint: 127.0.0.1:0, {http} }}
exporters:
  debug: {{}}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"#
    )
}

/// How long after `started` the server closes `stream` (reads EOF or an
/// error); `None` if it is still open `limit` after `started`.
async fn closed_since(
    stream: &mut TcpStream,
    started: Instant,
    limit: Duration,
) -> Option<Duration> {
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buffer),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // Bytes the server sends first (HTTP/2 settings, a GOAWAY):
            // keep reading until it closes.
            Ok(Ok(_)) => continue,
        }
    }
}

async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    closed_since(stream, Instant::now(), limit).await
}

async fn silent_connections(to: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut connections = Vec::with_capacity(count);
    for _ in 0..count {
        connections.push(TcpStream::connect(to).await.unwrap());
    }
    connections
}

async fn grpc_export(to: SocketAddr) -> Result<(), String> {
    let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::connect(format!("http://{to}"))
        .await
        .map_err(|e| e.to_string())?;
    client
        .export(trace_request("deadlines", 1))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn http_export(to: SocketAddr) -> Result<(), String> {
    let response = reqwest::Client::new()
        .post(format!("http://{to}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(trace_request("deadlines", 1).encode_to_vec())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200 => Ok(()),
        other => Err(format!("HTTP {other}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_are_closed_after_the_handshake_timeout() {
    let collector = start(&config("handshake_timeout: 1s", "handshake_timeout: 1s")).await;
    for listener in ["otlp/grpc", "otlp/http"] {
        let opened = Instant::now();
        let mut silent = silent_connections(address(&collector, listener), 3).await;
        // Bytes that are not a whole request yet: a partial HTTP/2 preface
        // or request line.
        silent[1].write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        silent[2]
            .write_all(b"POST /v1/traces HTTP/1.1\r\n")
            .await
            .unwrap();
        for (i, stream) in silent.iter_mut().enumerate() {
            let closed = closed_since(stream, opened, Duration::from_secs(8)).await;
            assert!(
                closed.is_some_and(|after| after >= Duration::from_millis(900)),
                "{listener} connection {i}: {closed:?}"
            );
        }
    }
    collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_evicts_an_idle_connection_for_a_real_client() {
    // Default deadlines: eviction, not a timeout, lets the client in.
    let collector = start(&config("max_connections: 5", "max_connections: 5")).await;
    let grpc = address(&collector, "otlp/grpc");
    let http = address(&collector, "otlp/http");
    let mut held = silent_connections(grpc, 5).await;
    held.extend(silent_connections(http, 5).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    grpc_export(grpc)
        .await
        .expect("gRPC served despite a full table");
    http_export(http)
        .await
        .expect("HTTP served despite a full table");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "served by eviction, not by waiting out a deadline: {:?}",
        started.elapsed()
    );
    // The evicted ones were closed; the others are still open.
    let mut closed = 0;
    for stream in &mut held {
        if closed_within(stream, Duration::from_millis(300))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert!((2..=4).contains(&closed), "{closed} of 10 closed");
    let listeners = collector.telemetry.listeners();
    let evicted: u64 = listeners
        .iter()
        .map(|l| {
            l.evicted_connections
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(evicted >= 2, "evictions are counted: {evicted}");
    collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let collector = start(&config("idle_timeout: 1s", "idle_timeout: 1s")).await;
    // HTTP/1 keep-alive: one request, then nothing.
    let mut http = TcpStream::connect(address(&collector, "otlp/http"))
        .await
        .unwrap();
    let body = trace_request("idle", 1).encode_to_vec();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    http.write_all(head.as_bytes()).await.unwrap();
    http.write_all(&body).await.unwrap();
    let mut answer = [0u8; 12];
    http.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let closed = closed_within(&mut http, Duration::from_secs(8)).await;
    assert!(
        closed.is_some_and(|after| after >= Duration::from_millis(800)),
        "HTTP/1: {closed:?}"
    );

    // HTTP/2 (gRPC): one call, then the connection idles; the server says
    // GOAWAY and closes.
    let grpc = address(&collector, "otlp/grpc");
    let client = crate::raw_grpc::connect(grpc).await;
    let status = crate::raw_grpc::call(
        &client,
        crate::raw_grpc::request(grpc, crate::raw_grpc::TRACES_PATH, &[]),
        crate::raw_grpc::frame(false, &trace_request("idle", 1).encode_to_vec()),
    )
    .await;
    assert_eq!(status, Some((0, false)));
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(8) {
        if client.clone().ready().await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "the idle HTTP/2 connection is still open");
    assert!(started.elapsed() >= Duration::from_millis(800));
    collector.shutdown().await;
}
