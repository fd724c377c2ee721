//! A backend that cannot be reached is named in the log: the exporter's
//! retry warning says `scheme://host:port` (and the cause), never the
//! credentials or path written in the endpoint.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, trace_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_name_the_endpoint_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (port, grpc_backend, http_backend) = (free_port(), free_port(), free_port());
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:{port} }} }} }}
exporters:
  otlp:
    endpoint: http://user:hunter2@127.0.0.1:{grpc_backend}/secret-path
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 200ms }}
  otlphttp:
    endpoint: http://127.0.0.1:{http_backend}/secret-path?key=hunter2
    retry_on_failure: {{ initial_interval: 100ms, max_interval: 200ms }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp, otlphttp] }}
"#
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut client = crate::harness::connect_traces(port).await;
    client.export(trace_request("e", 3)).await.unwrap();

    let want = [
        format!("http://127.0.0.1:{grpc_backend}"),
        format!("http://127.0.0.1:{http_backend}"),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut retries = Vec::new();
    while Instant::now() < deadline
        && !want
            .iter()
            .all(|w| retries.iter().any(|l: &String| l.contains(w.as_str())))
    {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(200))
            && line.contains("export failed; will retry")
        {
            retries.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for endpoint in &want {
        assert!(
            retries
                .iter()
                .any(|l| l.contains(endpoint.as_str()) && l.contains("refused")),
            "no retry warning names {endpoint} and the cause: {retries:#?}"
        );
    }
    for line in &retries {
        assert!(
            !line.contains("hunter2") && !line.contains("secret-path"),
            "credentials logged: {line}"
        );
    }
}
