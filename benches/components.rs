//! Component hot paths: spans per second through the `red` connector at
//! 1k series, one alert evaluation tick over 10k series x 100 rules, and
//! the receive path: validating a request without decoding it (what a
//! forwarding pipeline does) against decoding it with prost; and how long
//! an alert tick with a state file holds the connector's lock, with the
//! state written under the lock (as before) or handed over to be written
//! after it (as now).
//!
//!   cargo bench --bench components

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use sidewatch::alerting::engine::{Engine, Labels};
use sidewatch::alerting::rule::RuleConfig;
use sidewatch::connectors::red::{RedConfig, RedConnector};
use sidewatch::signal::Batch;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// `spans` server spans spread over `routes` routes (series).
fn traces(spans: usize, routes: usize, now: SystemTime) -> Batch {
    let end = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Batch::Traces(
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "shop")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|i| Span {
                            name: "GET".into(),
                            kind: 2,
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            start_time_unix_nano: end - 1_000_000 - (i as u64 % 977) * 10_000,
                            end_time_unix_nano: end,
                            attributes: vec![kv("http.route", &format!("/route/{}", i % routes))],
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

fn receive(c: &mut Criterion) {
    use prost::Message;
    let Batch::Traces(request) = traces(512, 50, SystemTime::now()) else {
        unreachable!()
    };
    let bytes = bytes::Bytes::from(request.encode_to_vec());
    let mut group = c.benchmark_group("receive 512 spans");
    group.throughput(Throughput::Elements(512));
    group.bench_function("validate and count, encoded", |b| {
        b.iter(|| {
            sidewatch::signal::WireBatch::parse(sidewatch::signal::Signal::Traces, bytes.clone())
                .unwrap()
        })
    });
    group.bench_function("decode with prost", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(&bytes[..])).unwrap())
    });
    group.finish();
}

fn red(c: &mut Criterion) {
    let config: RedConfig = yaml_serde::from_str("{}").unwrap();
    let mut connector = RedConnector::new(config.compile().unwrap());
    let now = SystemTime::now();
    let batch = traces(10_000, 1_000, now);
    connector.record(&batch, now);
    let mut group = c.benchmark_group("red connector");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("10k spans over 1k series", |b| {
        b.iter(|| connector.record(black_box(&batch), now))
    });
    group.bench_function("emit 1k series", |b| {
        b.iter(|| black_box(connector.metrics(now)))
    });
    group.finish();
}

fn alerts(c: &mut Criterion) {
    const SERIES: usize = 10_000;
    const RULES: usize = 100;
    // 100 rules over 100 metrics; each metric has 100 series: 10k series,
    // each read by one rule, as when rules select different metrics.
    let rules = (0..RULES)
        .map(|r| {
            let yaml = format!("{{ name: rule{r}, metric: metric{r}, op: '>', warning: 90, critical: 95, for: 1m }}");
            yaml_serde::from_str::<RuleConfig>(&yaml).unwrap().compile().unwrap()
        })
        .collect();
    let mut engine = Engine::new(rules);
    let labels: Vec<Labels> = (0..SERIES / RULES)
        .map(|i| {
            [("host".to_string(), format!("host-{i}"))]
                .into_iter()
                .collect()
        })
        .collect();
    let mut t = 0.0;
    for _ in 0..3 {
        t += 15.0;
        for r in 0..RULES {
            for (i, l) in labels.iter().enumerate() {
                engine.observe(&format!("metric{r}"), l, t, (i % 100) as f64);
            }
        }
        engine.evaluate(t);
    }
    let mut group = c.benchmark_group("alert engine");
    group.measurement_time(Duration::from_secs(5));
    // Each tick: 10k new samples arrive, then one evaluation; only the
    // evaluation is timed.
    group.bench_function("evaluate 10k series x 100 rules", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                t += 15.0;
                for r in 0..RULES {
                    let metric = format!("metric{r}");
                    for (i, l) in labels.iter().enumerate() {
                        let value = if i % 100 == 0 {
                            99.5
                        } else {
                            ((i + t as usize) % 90) as f64
                        };
                        engine.observe(&metric, l, t, value);
                    }
                }
                let started = std::time::Instant::now();
                black_box(engine.evaluate(t));
                spent += started.elapsed();
            }
            spent
        })
    });
    group.finish();
}

/// The heavier reading: all 100 rules read the same 10k series (1M
/// series-rule pairs per tick).
fn alerts_all_pairs(c: &mut Criterion) {
    const SERIES: usize = 10_000;
    const RULES: usize = 100;
    let rules = (0..RULES)
        .map(|r| {
            let yaml = format!(
                "{{ name: rule{r}, metric: cpu, op: '>', warning: {}, for: 1m }}",
                50 + r % 50
            );
            yaml_serde::from_str::<RuleConfig>(&yaml)
                .unwrap()
                .compile()
                .unwrap()
        })
        .collect();
    let mut engine = Engine::new(rules);
    let labels: Vec<Labels> = (0..SERIES)
        .map(|i| {
            [("host".to_string(), format!("host-{i}"))]
                .into_iter()
                .collect()
        })
        .collect();
    let mut t = 0.0;
    let mut group = c.benchmark_group("alert engine");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("evaluate 100 rules x the same 10k series", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                t += 15.0;
                // 1 % of series run hot: a realistic share of active alerts.
                for (i, l) in labels.iter().enumerate() {
                    let value = if i % 100 == 0 {
                        99.5
                    } else {
                        ((i + t as usize) % 50) as f64
                    };
                    engine.observe("cpu", l, t, value);
                }
                let started = std::time::Instant::now();
                black_box(engine.evaluate(t));
                spent += started.elapsed();
            }
            spent
        })
    });
    group.finish();
}

/// One tick of an alert connector with a state file and 100 firing series
/// whose state changes every evaluation: what it holds the connector's lock
/// for when it writes (fsync) the state itself, against when it hands the
/// bytes to the runtime, which writes them after releasing the lock.
fn alert_state_write(c: &mut Criterion) {
    use sidewatch::connectors::alert::{AlertConfig, AlertConnector};
    use sidewatch::processors::Processor;
    let dir = tempfile::tempdir().unwrap();
    let config: AlertConfig = yaml_serde::from_str(&format!(
        "{{ evaluation_interval: 1s, state_file: {}, rules: [ {{ name: Hot, metric: temperature, op: '>', warning: 50 }} ] }}",
        dir.path().join("state.json").display()
    ))
    .unwrap();
    let mut connector = AlertConnector::new(
        &config.compile().unwrap(),
        sidewatch::config::storage::Storage::LIVE,
    );
    let mut t = 1_700_000_000.0;
    let samples = |t: f64| {
        let points = (0..100)
            .map(
                |i| opentelemetry_proto::tonic::metrics::v1::NumberDataPoint {
                    attributes: vec![kv("host", &format!("host-{i}"))],
                    time_unix_nano: (t * 1e9) as u64,
                    value: Some(
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                            60.0 + (t as u64 % 7) as f64,
                        ),
                    ),
                    ..Default::default()
                },
            )
            .collect();
        Batch::Metrics(
            opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest {
                resource_metrics: vec![opentelemetry_proto::tonic::metrics::v1::ResourceMetrics {
                    scope_metrics: vec![opentelemetry_proto::tonic::metrics::v1::ScopeMetrics {
                        metrics: vec![opentelemetry_proto::tonic::metrics::v1::Metric {
                            name: "temperature".into(),
                            data: Some(
                                opentelemetry_proto::tonic::metrics::v1::metric::Data::Gauge(
                                    opentelemetry_proto::tonic::metrics::v1::Gauge {
                                        data_points: points,
                                    },
                                ),
                            ),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .into(),
        )
    };
    let mut group = c.benchmark_group("alert tick with a state file, 100 firing series");
    group.sample_size(20);
    for (name, write_under_lock) in [
        ("lock held: state written under it (before)", true),
        ("lock held: state handed over (after)", false),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut spent = Duration::ZERO;
                for _ in 0..iterations {
                    t += 1.0;
                    let now = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t);
                    let mut out = Vec::new();
                    connector.process(samples(t), now, &mut out);
                    let started = std::time::Instant::now();
                    connector.tick(now, &mut out);
                    let write = connector.take_state_write();
                    if write_under_lock {
                        write.as_ref().unwrap().write().unwrap();
                    }
                    spent += started.elapsed();
                    if let Some(write) = write.filter(|_| !write_under_lock) {
                        write.write().unwrap();
                    }
                    black_box(out);
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    receive,
    red,
    alerts,
    alerts_all_pairs,
    alert_state_write
);
criterion_main!(benches);
