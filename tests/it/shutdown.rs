//! SIGTERM: data accepted before the signal reaches the backend, even when
//! it sits in a batch processor with a long timeout, and the exit code is 0.

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
