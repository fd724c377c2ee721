//! `probabilistic_sampler` with traces from the real OpenTelemetry Python
//! SDK: the kept fraction is within statistical bounds, two sidewatch
//! instances keep exactly the same trace ids, those are the ids the
//! Collector's hash_seed decision keeps, and the decisions are counted.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, start};

const TRACES: usize = 2000;
const PERCENT: f32 = 25.0;

fn sampler_config(backend: &str) -> String {
    format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
processors:
  probabilistic_sampler: {{ sampling_percentage: {PERCENT}, hash_seed: 22 }}
exporters:
  otlp: {{ endpoint: {backend} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [probabilistic_sampler], exporters: [otlp] }}
"#
    )
}

/// Every trace id a backend received, as hex.
pub fn trace_ids(backend: &Backend) -> BTreeSet<String> {
    backend
        .recorded
        .traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.trace_id.iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

/// Runs tests/support/sdk_traces.py against `endpoints`; the
/// `(trace id, kind)` pairs it sent.
pub async fn send_sdk_traces(
    python: &std::path::Path,
    endpoints: &[String],
    extra: &[&str],
) -> Vec<(String, String)> {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sdk_traces.py");
    let mut command = tokio::process::Command::new(python);
    command.arg(script);
    for endpoint in endpoints {
        command.args(["--endpoint", endpoint]);
    }
    command.args(extra).kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the Python client finishes within 120 s")
        .expect("the Python client runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("DONE"),
        "the Python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("TRACE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(id, kind)| (id.to_string(), kind.to_string()))
        .collect()
}

async fn telemetry_page(collector: &sidewatch::pipeline::build::RunningCollector) -> String {
    let url = format!("http://{}/metrics", address(collector, "telemetry"));
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

fn family_value(page: &str, family: &str) -> Option<u64> {
    page.lines()
        .find(|l| l.starts_with(&format!("sidewatch_{family}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_keep_the_same_sdk_traces_as_the_collector_would() {
    let Some(python) =
        crate::harness::python_with("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    else {
        return;
    };
    let (backend_a, backend_b) = (
        Backend::start("127.0.0.1:0".parse().unwrap()).await,
        Backend::start("127.0.0.1:0".parse().unwrap()).await,
    );
    let a = start(&sampler_config(&backend_a.url())).await;
    let b = start(&sampler_config(&backend_b.url())).await;
    let endpoints = [
        format!("http://{}", address(&a, "otlp/grpc")),
        format!("http://{}", address(&b, "otlp/grpc")),
    ];
    let sent = send_sdk_traces(&python, &endpoints, &["--traces", "2000", "--spans", "2"]).await;
    assert_eq!(sent.len(), TRACES);

    // What the Collector keeps: FNV-1a of the seed and the trace id.
    let expected: BTreeSet<String> = sent
        .iter()
        .map(|(id, _)| id.clone())
        .filter(|id| {
            let bytes: Vec<u8> = (0..16)
                .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let rate =
                sidewatch::processors::probabilistic_sampler::hash_seed::scaled_rate(PERCENT);
            sidewatch::processors::probabilistic_sampler::hash_seed::keeps(&bytes, 22, rate)
        })
        .collect();
    let spans = 2 * expected.len();
    let arrived = wait_until(Duration::from_secs(20), || {
        backend_a.recorded.span_count() == spans && backend_b.recorded.span_count() == spans
    })
    .await;
    assert!(
        arrived,
        "expected {spans} spans on each backend, got {} and {}",
        backend_a.recorded.span_count(),
        backend_b.recorded.span_count()
    );
    let (kept_a, kept_b) = (trace_ids(&backend_a), trace_ids(&backend_b));
    assert_eq!(kept_a, kept_b, "both instances keep the same traces");
    assert_eq!(
        kept_a, expected,
        "the traces the Collector's decision keeps"
    );
    // Binomial(2000, 0.25): mean 500, sigma 19.4; 4 sigma either side.
    assert!(
        (422..=578).contains(&kept_a.len()),
        "kept {} of {TRACES}",
        kept_a.len()
    );
    let page = telemetry_page(&a).await;
    assert_eq!(
        family_value(&page, "sampler_kept_items_total"),
        Some(spans as u64)
    );
    assert_eq!(
        family_value(&page, "sampler_dropped_items_total"),
        Some((2 * TRACES - spans) as u64)
    );
    a.shutdown().await;
    b.shutdown().await;
}
