//! `tail_sampling` with traces from the real OpenTelemetry Python SDK:
//! traces with an error or a slow span are kept whole, the others dropped;
//! `num_traces` bounds what is held, evicting (and counting) the oldest.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, start};
use crate::probabilistic_sampler::{send_sdk_traces, trace_ids};

fn config(backend: &str, settings: &str) -> String {
    format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
processors:
  tail_sampling:
    {settings}
    policies:
      - {{ name: errors, type: status_code, status_code: {{ status_codes: [ERROR] }} }}
      - {{ name: slow, type: latency, latency: {{ threshold_ms: 1000 }} }}
exporters:
  otlp: {{ endpoint: {backend} }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [tail_sampling], exporters: [otlp] }}
"#
    )
}

async fn counter(collector: &sidewatch::pipeline::build::RunningCollector, family: &str) -> u64 {
    let url = format!("http://{}/metrics", address(collector, "telemetry"));
    let page = reqwest::get(url).await.unwrap().text().await.unwrap();
    page.lines()
        .find(|l| l.starts_with(&format!("sidewatch_{family}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {family} in {page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_sdk_traces_with_errors_or_slow_spans_whole_and_drops_the_rest() {
    let Some(python) =
        crate::harness::python_with("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    else {
        return;
    };
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&config(&backend.url(), "decision_wait: 500ms")).await;
    let endpoint = format!("http://{}", address(&collector, "otlp/grpc"));
    let sent = send_sdk_traces(
        &python,
        &[endpoint],
        &[
            "--traces", "200", "--errors", "5", "--slow", "5", "--spans", "3",
        ],
    )
    .await;
    let wanted: BTreeSet<String> = sent
        .iter()
        .filter(|(_, kind)| kind != "ok")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(wanted.len(), 10);
    let decided = wait_until(Duration::from_secs(20), || {
        backend.recorded.span_count() >= 30
    })
    .await;
    assert!(decided, "{} spans arrived", backend.recorded.span_count());
    // Every trace is decided by now; nothing else may follow.
    let all_decided = async {
        for _ in 0..200 {
            if counter(&collector, "tail_sampling_not_sampled_traces_total").await == 190 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(all_decided.await, "190 traces dropped");
    assert_eq!(trace_ids(&backend), wanted);
    assert_eq!(
        backend.recorded.span_count(),
        30,
        "kept traces arrive whole"
    );
    assert_eq!(
        counter(&collector, "tail_sampling_sampled_traces_total").await,
        10
    );
    assert_eq!(
        counter(&collector, "tail_sampling_evicted_traces_total").await,
        0
    );
    collector.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn num_traces_bounds_what_is_held_and_counts_the_evicted() {
    let Some(python) =
        crate::harness::python_with("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    else {
        return;
    };
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    // A wait longer than the test: only eviction and shutdown decide.
    let collector = start(&config(
        &backend.url(),
        "decision_wait: 60s\n    num_traces: 50\n    expected_new_traces_per_sec: 10",
    ))
    .await;
    let endpoint = format!("http://{}", address(&collector, "otlp/grpc"));
    // Every trace an error: all would be kept if memory allowed.
    let sent = send_sdk_traces(
        &python,
        &[endpoint],
        &["--traces", "500", "--errors", "500", "--spans", "2"],
    )
    .await;
    assert_eq!(sent.len(), 500);
    let evicted = async {
        for _ in 0..200 {
            if counter(&collector, "tail_sampling_evicted_traces_total").await == 450 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    assert!(evicted.await, "450 of 500 traces evicted");
    assert_eq!(counter(&collector, "tail_sampling_traces_held").await, 50);
    assert_eq!(backend.recorded.span_count(), 0, "nothing decided yet");
    // Shutdown decides what is held instead of losing it.
    collector.shutdown().await;
    assert!(
        wait_until(Duration::from_secs(5), || backend.recorded.span_count()
            == 100)
        .await,
        "{} spans after shutdown",
        backend.recorded.span_count()
    );
    assert_eq!(trace_ids(&backend).len(), 50);
}
