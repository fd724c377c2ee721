//! Starting sidewatch in-process from YAML, and small shared helpers.

use std::net::SocketAddr;

use sidewatch::pipeline::build::RunningCollector;

pub async fn start(yaml: &str) -> RunningCollector {
    let loaded = sidewatch::plan::load_str(yaml, "test config").unwrap_or_else(|e| panic!("{e}"));
    sidewatch::pipeline::build::start(&loaded.plan)
        .await
        .expect("collector starts")
}

pub fn address(collector: &RunningCollector, listener: &str) -> SocketAddr {
    *collector
        .addresses
        .get(listener)
        .unwrap_or_else(|| panic!("no listener {listener}: {:?}", collector.addresses))
}

/// A port that was free a moment ago, for servers started later.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An OTLP/gRPC receiver on port 0 forwarding every signal to `backend`
/// with fast retries; `extra_exporter_settings` is spliced into the otlp
/// exporter's mapping.
pub fn forwarding_config(backend: &str, extra_exporter_settings: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0 }}
      http: {{ endpoint: 127.0.0.1:0 }}
processors:
  batch: {{ timeout: 50ms }}
exporters:
  otlp:
    endpoint: {backend}
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}
    {extra_exporter_settings}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp] }}
    metrics: {{ receivers: [otlp], processors: [batch], exporters: [otlp] }}
    logs: {{ receivers: [otlp], processors: [batch], exporters: [otlp] }}
"#
    )
}

/// An OTLP trace request with `count` spans named `{prefix}-{i}`.
pub fn trace_request(
    prefix: &str,
    count: usize,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..count)
                    .map(|i| Span {
                        name: format!("{prefix}-{i}"),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The `sidewatch` binary as a child process, killed when dropped, so a
/// failing test does not leave it running.
pub struct Sidewatch(pub std::process::Child);

impl Sidewatch {
    /// `sidewatch run --config <config>`, output discarded. The binary is
    /// this build's, or `SIDEWATCH_TEST_BINARY` (to see a test fail
    /// against an older build).
    pub fn run(config: &std::path::Path) -> Sidewatch {
        let binary = std::env::var_os("SIDEWATCH_TEST_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_sidewatch").into());
        Sidewatch(
            std::process::Command::new(binary)
                .args(["run", "--config"])
                .arg(config)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("sidewatch starts"),
        )
    }
}

impl std::ops::Deref for Sidewatch {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Sidewatch {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Sidewatch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A string attribute of a data point.
pub fn point_text(
    point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
    key: &str,
) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    point
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// A data point's value as f64 (NaN when it has none).
pub fn point_value(point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint) -> f64 {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    match point.value {
        Some(Value::AsDouble(d)) => d,
        Some(Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

/// A trace client for a sidewatch process just started on `port`,
/// retrying until it listens (5 s at most).
pub async fn connect_traces(
    port: u16,
) -> opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient<
    tonic::transport::Channel,
> {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    for _ in 0..200 {
        if let Ok(client) = TraceServiceClient::connect(format!("http://127.0.0.1:{port}")).await {
            return client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("sidewatch did not start listening on {port}");
}

/// Resident memory of process `pid` in KiB, from /proc.
pub fn resident_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The most resident memory process `pid` has had, in KiB.
pub fn peak_resident_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A Python that can import `module`: `SIDEWATCH_TEST_PYTHON`, or the venv
/// `.ci/run` makes (target/test-venv). Missing: skip loudly, or fail under
/// CI=true.
pub fn python_with(module: &str) -> Option<std::path::PathBuf> {
    use std::path::{Path, PathBuf};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("SIDEWATCH_TEST_PYTHON").map(PathBuf::from),
        Some(root.join("target/test-venv/bin/python")),
    ];
    for python in candidates.into_iter().flatten() {
        let works = std::process::Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            return Some(python);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("no Python with {module}, and CI=true: .ci/run must create target/test-venv");
    }
    eprintln!(
        "\n*** SKIPPING: no Python with {module} (run .ci/run, or python3 -m venv target/test-venv and pip install the packages it names); this test needs the real OpenTelemetry Python SDK ***\n"
    );
    None
}
