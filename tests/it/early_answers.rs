//! An answer given before the body is read (413 for a body over the limit)
//! must reach ordinary clients: Python's urllib writes the whole body
//! before reading, and used to get BrokenPipeError instead of the 413, so
//! clients that retry on connection errors resent the oversized body
//! forever. sidewatch now reads and discards a bounded amount first.

use crate::harness::{Sidewatch, free_port};

const SCRIPT: &str = r#"
import sys, urllib.request, urllib.error
url = sys.argv[1]
body = b"\0" * (5 * 1024 * 1024)
for _ in range(5):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            print(response.status)
    except urllib.error.HTTPError as e:
        print(e.code)
    except Exception as e:
        print(type(e).__name__)
"#;

/// The system's python3 (urllib is in its standard library); missing:
/// skip loudly, or fail under CI=true.
fn python3() -> Option<&'static str> {
    let works = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some("python3");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("python3 is missing, and CI=true");
    }
    eprintln!("\n*** SKIPPING: no python3 for the urllib client ***\n");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_urllib_reads_the_413_for_an_oversized_body() {
    let Some(python) = python3() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("sidewatch.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:{port} }} }} }}
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
    let _sidewatch = Sidewatch::run(&config);
    let mut listening = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            listening = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(listening, "sidewatch did not start listening");
    let url = format!("http://127.0.0.1:{port}/v1/traces");
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new(python)
            .args(["-c", SCRIPT, &url])
            .output(),
    )
    .await
    .expect("the client finishes within 120 s")
    .unwrap();
    let answers = String::from_utf8_lossy(&output.stdout);
    let answers: Vec<&str> = answers.lines().collect();
    assert_eq!(
        answers,
        ["413"; 5],
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
