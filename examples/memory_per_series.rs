//! Memory per series of the stateful components: the heap bytes a
//! component still holds after taking 10,000 series for 2,100 steps (the
//! second argument; enough to fill every window), counted
//! by a wrapping allocator (inputs are freed before the count).
//!
//!   for c in red percentiles anomaly alert; do
//!     cargo run --release --example memory_per_series -- $c; done
//!
//! Heap bytes requested, not RSS: allocator rounding and slack come on top.

use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use sidewatch::processors::Processor;
use sidewatch::signal::Batch;

const SERIES: usize = 10_000;

/// Live heap bytes: the system allocator, counted.
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(
            new as isize - layout.size() as isize,
            std::sync::atomic::Ordering::Relaxed,
        );
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn kv(k: &str, v: String) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn spans(now: SystemTime) -> Batch {
    let end = nanos(now);
    Batch::Traces(
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..SERIES)
                        .map(|i| Span {
                            name: "GET".into(),
                            kind: 2,
                            start_time_unix_nano: end - 1_000_000 - (i as u64 % 97) * 10_000,
                            end_time_unix_nano: end,
                            attributes: vec![kv("http.route", format!("/route/{i}"))],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .into(),
    )
}

fn gauges(now: SystemTime, step: usize) -> Batch {
    Batch::Metrics(
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "queue.depth".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: (0..SERIES)
                                .map(|i| NumberDataPoint {
                                    attributes: vec![kv("queue", format!("q{i}"))],
                                    time_unix_nano: nanos(now),
                                    value: Some(number_data_point::Value::AsDouble(
                                        (i % 13 + step % 7) as f64,
                                    )),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .into(),
    )
}

fn live() -> isize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "red".into());
    let start = SystemTime::now();
    // Enough steps to fill every window by default: the anomaly
    // likelihood keeps its last 2000 scores.
    let steps: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_100);
    let mut component: Box<dyn Processor> = match which.as_str() {
        "red" => Box::new(sidewatch::connectors::red::RedConnector::new(
            yaml_serde::from_str::<sidewatch::connectors::red::RedConfig>(&format!(
                "{{ max_series: {} }}",
                SERIES * 2
            ))
            .unwrap()
            .compile()
            .unwrap(),
        )),
        "percentiles" => Box::new(
            sidewatch::processors::percentiles::PercentilesProcessor::new(
                yaml_serde::from_str::<sidewatch::processors::percentiles::PercentilesConfig>(
                    &format!("{{ metrics: [queue\\.depth], max_series: {} }}", SERIES * 2),
                )
                .unwrap()
                .compile()
                .unwrap(),
            ),
        ),
        "anomaly" => Box::new(sidewatch::connectors::anomaly::AnomalyConnector::new(
            yaml_serde::from_str::<sidewatch::connectors::anomaly::AnomalyConfig>(&format!(
                "{{ metrics: [queue\\.depth], max_series: {} }}",
                SERIES * 2
            ))
            .unwrap()
            .compile()
            .unwrap(),
        )),
        "alert" => {
            let rules = "{ rules: [{ name: Deep, metric: queue.depth, value: avg, window: 5m, op: \">\", warning: 1e12 }] }";
            let raw: sidewatch::connectors::alert::RawAlertConfig =
                yaml_serde::from_str(rules).unwrap();
            let config = sidewatch::connectors::alert::AlertConfig {
                evaluation_interval: raw.evaluation_interval,
                state_file: None,
                max_series: SERIES * 2,
                rules: raw
                    .rules
                    .iter()
                    .map(|r| yaml_serde::from_value(r.clone()).unwrap())
                    .collect(),
            };
            Box::new(sidewatch::connectors::alert::AlertConnector::new(
                &config.compile().unwrap(),
                sidewatch::config::storage::Storage::NONE,
            ))
        }
        other => panic!("unknown component {other}: red, percentiles, anomaly or alert"),
    };
    let before = live();
    let mut out = Vec::new();
    for s in 0..steps {
        let at = start
            + Duration::from_secs(if which == "red" {
                s as u64
            } else {
                15 * s as u64
            });
        let input = if which == "red" {
            spans(at)
        } else {
            gauges(at, s)
        };
        component.process(input, at, &mut out);
        component.tick(at, &mut out);
        out.clear();
        out.shrink_to_fit();
    }
    let held = live() - before;
    println!(
        "{which}: {SERIES} series after {steps} steps: {:.1} MiB held, {:.0} bytes per series",
        held as f64 / 1048576.0,
        held as f64 / SERIES as f64
    );
}
