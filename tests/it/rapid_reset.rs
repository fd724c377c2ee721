//! HTTP/2 rapid reset (CVE-2023-44487) against the sidewatch binary: a
//! client opens streams and cancels them at once, as fast as it can. The
//! server must not pile up work or memory for the cancelled streams (h2's
//! limit on pending resets makes it close such a connection), and other
//! clients keep being served.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

use crate::harness::{Sidewatch, free_port, trace_request};

const STREAMS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_does_not_exhaust_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{port} }} }} }}
exporters:
  debug: {{}}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [debug] }}
"#
        ),
    )
    .unwrap();
    let sidewatch = Sidewatch::run(&config);
    let url = format!("http://127.0.0.1:{port}");
    let mut client = crate::harness::connect_traces(port).await;
    client.export(trace_request("before", 1)).await.unwrap();
    let baseline = crate::harness::resident_kib(sidewatch.id()).unwrap();

    // Open and cancel streams as fast as possible, bounded in count.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut sent = 0usize;
    let started = std::time::Instant::now();
    for _ in 0..STREAMS {
        let request = http::Request::post(format!(
            "{url}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
        let ready = tokio::time::timeout(Duration::from_secs(2), h2.clone().ready()).await;
        let Ok(Ok(ready)) = ready else {
            break; // the server closed the connection on us
        };
        h2 = ready;
        let Ok((_response, mut stream)) = h2.send_request(request, false) else {
            break;
        };
        stream.send_reset(h2::Reason::CANCEL);
        sent += 1;
    }
    let closed = tokio::time::timeout(Duration::from_secs(5), driver).await;
    let peak = crate::harness::resident_kib(sidewatch.id()).unwrap();
    eprintln!(
        "rapid reset: {sent} streams opened and cancelled in {:?}; connection ended by the server: {}; RSS {} -> {} KiB",
        started.elapsed(),
        closed.is_ok(),
        baseline,
        peak
    );
    assert!(
        sent < STREAMS,
        "the server accepted {STREAMS} open-and-cancel streams without closing the connection"
    );
    assert!(
        peak < baseline + 32 * 1024,
        "RSS grew from {baseline} to {peak} KiB"
    );
    // Everyone else is still served.
    let mut fresh = TraceServiceClient::connect(url).await.unwrap();
    fresh.export(trace_request("after", 1)).await.unwrap();
}
