//! sidewatch's own log output, from the real binary with stderr sent to a
//! file as a service manager or a log shipper would: plain text without
//! terminal escape codes, or with `service.telemetry.logs.encoding: json`
//! one JSON object a line.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `sidewatch run` with `telemetry_logs` as `service.telemetry.logs`
/// and stderr going to a file, until it is ready, then stops it with
/// SIGTERM; returns what it wrote to stderr.
fn stderr_of_a_run(telemetry_logs: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  debug: {{}}
service:
  telemetry: {{ metrics: {{ level: none }}, logs: {telemetry_logs} }}
  pipelines:
    logs: {{ receivers: [otlp], exporters: [debug] }}
"#
        ),
    )
    .unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sidewatch"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = crate::harness::Sidewatch(child);
    let started = Instant::now();
    while !std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .contains("sidewatch is ready")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not ready in 20 s: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "sidewatch exited with {status}: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let stopping = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            stopping.elapsed() < Duration::from_secs(20),
            "sidewatch did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read(&log_path).unwrap()
}

#[test]
fn log_output_to_a_file_has_no_terminal_escape_codes() {
    let output = stderr_of_a_run("{}");
    let text = String::from_utf8_lossy(&output);
    assert!(
        text.contains("sidewatch is ready") && text.contains("shutdown complete"),
        "{text}"
    );
    assert!(!output.contains(&0x1b), "ESC bytes in a log file: {text:?}");
}

#[test]
fn json_log_encoding_writes_one_object_a_line() {
    let output = stderr_of_a_run("{ encoding: json }");
    let text = String::from_utf8(output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "ready, shutting down, complete: {text}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(object[field].is_string(), "no string `{field}` in {line}");
        }
    }
    let ready: serde_json::Value = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|o| o["message"] == "sidewatch is ready")
        .expect("the ready line");
    assert_eq!(ready["level"], "INFO");
    assert_eq!(ready["pipelines"], 1, "event fields sit beside the message");
}
