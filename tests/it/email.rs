//! Alert notifications by email: sidewatch's `email` exporter talks SMTP to
//! a real server (Python's aiosmtpd, from the venv `.ci/run` creates) that
//! requires STARTTLS with a certificate from a test CA and a password. A
//! second exporter with the wrong password delivers nothing and counts its
//! failure.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;

use crate::alerting::gauge;
use crate::backend::wait_until;
use crate::harness::{address, free_port, start};

/// A Python with aiosmtpd: `SIDEWATCH_TEST_PYTHON`, or the venv `.ci/run`
/// makes. Missing: skip loudly, or fail under CI=true.
fn python_with_aiosmtpd() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("SIDEWATCH_TEST_PYTHON").map(PathBuf::from),
        Some(root.join("target/test-venv/bin/python")),
    ];
    for python in candidates.into_iter().flatten() {
        let works = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Some(python);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("no Python with aiosmtpd, and CI=true: .ci/run must create target/test-venv");
    }
    eprintln!(
        "\n*** SKIPPING: no Python with aiosmtpd (python3 -m venv target/test-venv && target/test-venv/bin/pip install aiosmtpd); this test needs a real SMTP server ***\n"
    );
    None
}

/// A test CA and a server certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    crate::certs::ca(dir, "ca");
    crate::certs::leaf(dir, "ca", "server", true);
}

struct SmtpSink {
    child: Child,
    messages: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl SmtpSink {
    fn start(python: &Path, port: u16, dir: &Path) -> SmtpSink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["--port", &port.to_string()])
            .arg("--cert")
            .arg(dir.join("server.pem"))
            .arg("--key")
            .arg(dir.join("server.key"))
            .args(["--user", "alerts", "--password", "s3cret"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the SMTP sink starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().and_then(Result::ok);
        assert_eq!(
            ready.as_deref(),
            Some("READY"),
            "the SMTP sink did not start"
        );
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        SmtpSink { child, messages }
    }

    fn subjects(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| {
                m["data"]
                    .as_str()?
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
            })
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // EOF on stdin stops it; kill in case it does not.
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_mailed_over_starttls_with_authentication() {
    let Some(python) = python_with_aiosmtpd() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port();
    let sink = SmtpSink::start(&python, port, dir.path());
    let ca = dir.path().join("ca.pem");
    let collector = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
connectors:
  alert:
    evaluation_interval: 200ms
    rules:
      - name: QueueBacklog
        metric: queue.depth
        op: ">"
        critical: 100
        annotations: {{ summary: "queue {{{{ $labels.queue }}}} holds {{{{ $value }}}} messages" }}
exporters:
  email:
    smarthost: 127.0.0.1:{port}
    from: sidewatch@example.com
    to: [oncall@example.com, ops@example.com]
    ca_file: {ca}
    auth_username: alerts
    auth_password: s3cret
  email/wrong-password:
    smarthost: 127.0.0.1:{port}
    from: sidewatch@example.com
    to: [oncall@example.com]
    ca_file: {ca}
    auth_username: alerts
    auth_password: guessed
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    metrics: {{ receivers: [otlp], exporters: [alert] }}
    logs/alerts: {{ receivers: [alert], exporters: [email, email/wrong-password] }}
"#,
        ca = ca.display()
    ))
    .await;
    let mut client =
        MetricsServiceClient::connect(format!("http://{}", address(&collector, "otlp/grpc")))
            .await
            .unwrap();
    client
        .export(gauge("queue.depth", &[("queue", "orders")], 150.0))
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || sink
            .subjects()
            .iter()
            .any(|s| s == "[FIRING:1] QueueBacklog (critical)"))
        .await,
        "no firing mail; got {:?}",
        sink.subjects()
    );
    client
        .export(gauge("queue.depth", &[("queue", "orders")], 5.0))
        .await
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || sink
            .subjects()
            .iter()
            .any(|s| s.starts_with("[RESOLVED] QueueBacklog")))
        .await,
        "no resolved mail; got {:?}",
        sink.subjects()
    );

    let messages = sink.messages.lock().unwrap().clone();
    for message in &messages {
        assert_eq!(message["tls"], true, "mail only after STARTTLS");
        assert_eq!(message["user"], "alerts", "the right password only");
        assert_eq!(message["from"], "sidewatch@example.com");
    }
    let firing = messages
        .iter()
        .find(|m| m["data"].as_str().unwrap().contains("[FIRING:1]"))
        .unwrap();
    assert_eq!(
        firing["to"],
        serde_json::json!(["oncall@example.com", "ops@example.com"])
    );
    let data = firing["data"].as_str().unwrap();
    assert!(data.contains("queue orders holds 150 messages"), "{data}");
    assert!(data.contains("queue = orders"), "{data}");
    // The resolved mail shows the value that resolved it as the value, and
    // the firing value only under its own name.
    let resolved = messages
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .find(|d| d.contains("[RESOLVED]"))
        .unwrap();
    assert!(
        resolved.contains("RESOLVED QueueBacklog (critical), value 5 (firing value 150)"),
        "{resolved}"
    );
    assert!(
        resolved.contains("queue orders holds 5 messages"),
        "{resolved}"
    );

    // The wrong password is refused (535), a permanent failure: counted,
    // not retried forever, and nothing was delivered for it.
    let wrong = collector
        .telemetry
        .exporters()
        .into_iter()
        .find(|e| e.exporter == "email/wrong-password")
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || wrong
            .failed_items
            .load(Ordering::Relaxed)
            >= 2)
        .await,
        "the refused deliveries are counted: failed {}, retried {}",
        wrong.failed_items.load(Ordering::Relaxed),
        wrong.retried_items.load(Ordering::Relaxed)
    );
    assert_eq!(wrong.sent_items.load(Ordering::Relaxed), 0);
    collector.shutdown().await;
}
