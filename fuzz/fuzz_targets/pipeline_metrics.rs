//! Arbitrary decoded metrics requests through every metrics processor and
//! connector (percentiles, batch, anomaly, alert) and the Prometheus
//! exporter's store and encoder: a point that breaks the data model is
//! dropped and counted, nothing panics (issue 13, item 5).
#![no_main]

mod structured;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use sidewatch::exporters::prometheus::encode::{Format, encode};
use sidewatch::exporters::prometheus::store::MetricStore;
use sidewatch::signal::Batch;

const CONFIG: &str = r#"
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:0 } } }
processors:
  percentiles: { metrics: ["m0|m1|m2|latency"], windows: [1m, 5m], sub_windows: 3, emit_interval: 1s, max_series: 8 }
  batch: { send_batch_size: 3, send_batch_max_size: 5, timeout: 1s }
connectors:
  anomaly: { metrics: ["m0|m1|m2|latency"], max_series: 8 }
  alert:
    evaluation_interval: 5s
    max_series: 8
    rules:
      - { name: Above, metric: m0, op: ">", warning: 0.5, critical: 10, for: 2s }
      - { name: Rate, metric: m1, value: rate, window: 1m, op: ">", warning: 0 }
      - { name: Soon, metric: m2, op: ">=", critical: 100, predict: { window: 1m, horizon: 1h } }
      - { name: Average, metric: latency, value: avg, window: 30s, op: "<", critical: 1 }
exporters:
  debug: {}
service:
  pipelines:
    metrics: { receivers: [otlp], processors: [percentiles, batch], exporters: [anomaly, alert, debug] }
    logs: { receivers: [anomaly, alert], exporters: [debug] }
"#;

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    let mut batches = Vec::new();
    let mut steps = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        batches.push(Batch::Metrics(structured::metrics(&mut u)?.into()));
        steps.push(u.int_in_range(0..=30_000u16)?);
    }
    let mut components = structured::components(CONFIG);
    structured::drive(&mut components, &batches, &steps);
    let mut store = MetricStore::new(60_000_000_000, 16);
    for (i, batch) in batches.iter().enumerate() {
        if let Batch::Metrics(request) = batch {
            store.ingest(&request.resource_metrics, structured::BASE_NANOS + i as u64);
        }
    }
    let _ = encode(&store, Format::PrometheusText);
    let _ = encode(&store, Format::OpenMetrics);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
