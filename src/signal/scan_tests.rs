//! The scanner against prost: on requests that set every field, and on
//! mutations of them, both must accept or refuse the same bytes, and
//! count the same items when they accept.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::{Signal, decode_checked, schema_of};
use crate::wire::scan::scan;

fn value(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn attributes(n: usize) -> Vec<KeyValue> {
    use any_value::Value::*;
    let values = [
        StringValue("ünïcode".into()),
        BoolValue(true),
        IntValue(-42),
        DoubleValue(2.5),
        BytesValue(vec![0xff, 0x00, 0x80]),
        ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: vec![AnyValue {
                value: Some(StringValue("inner".into())),
            }],
        }),
        KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "nested".into(),
                value: value(IntValue(7)),
                key_strindex: 3,
            }],
        }),
        StringValueStrindex(9),
    ];
    (0..n)
        .map(|i| KeyValue {
            key: format!("key.{i}"),
            value: value(values[i % values.len()].clone()),
            key_strindex: i as i32 + 1,
        })
        .collect()
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: attributes(8),
        dropped_attributes_count: 1,
        entity_refs: vec![EntityRef {
            schema_url: "https://schema".into(),
            r#type: "service".into(),
            id_keys: vec!["service.name".into()],
            description_keys: vec!["service.version".into()],
        }],
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "scope".into(),
        version: "1.0".into(),
        attributes: attributes(2),
        dropped_attributes_count: 2,
    })
}

pub fn traces(spans: usize) -> ExportTraceServiceRequest {
    let span = |i: usize| Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        trace_state: "k=v".into(),
        parent_span_id: vec![3; 8],
        flags: 0x101,
        name: format!("span {i}"),
        kind: 2,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_000,
        attributes: attributes(8),
        dropped_attributes_count: 1,
        events: vec![Event {
            time_unix_nano: 1_500,
            name: "event".into(),
            attributes: attributes(2),
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 1,
        links: vec![Link {
            trace_id: vec![4; 16],
            span_id: vec![5; 8],
            trace_state: "a=b".into(),
            attributes: attributes(1),
            dropped_attributes_count: 1,
            flags: 0x100,
        }],
        dropped_links_count: 1,
        status: Some(Status {
            message: "ok".into(),
            code: 1,
        }),
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                scope: scope(),
                spans: (0..spans).map(span).collect(),
                schema_url: "https://schema".into(),
            }],
            schema_url: "https://schema".into(),
        }],
    }
}

pub fn logs(records: usize) -> ExportLogsServiceRequest {
    let record = |i: usize| LogRecord {
        time_unix_nano: 1,
        observed_time_unix_nano: 2,
        severity_number: 9,
        severity_text: "INFO".into(),
        body: value(any_value::Value::StringValue(format!("line {i}"))),
        attributes: attributes(4),
        dropped_attributes_count: 1,
        flags: 1,
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        event_name: "event".into(),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                scope: scope(),
                log_records: (0..records).map(record).collect(),
                schema_url: "s".into(),
            }],
            schema_url: "s".into(),
        }],
    }
}

pub fn metrics() -> ExportMetricsServiceRequest {
    let exemplar = || Exemplar {
        filtered_attributes: attributes(1),
        time_unix_nano: 5,
        span_id: vec![1; 8],
        trace_id: vec![2; 16],
        value: Some(exemplar::Value::AsInt(3)),
    };
    let number = |v: f64| NumberDataPoint {
        attributes: attributes(3),
        start_time_unix_nano: 1,
        time_unix_nano: 2,
        exemplars: vec![exemplar()],
        flags: 1,
        value: Some(number_data_point::Value::AsDouble(v)),
    };
    let metric = |name: &str, data: metric::Data| Metric {
        name: name.into(),
        description: "d".into(),
        unit: "s".into(),
        metadata: attributes(1),
        data: Some(data),
    };
    let buckets = || {
        Some(Buckets {
            offset: -3,
            bucket_counts: vec![1, 300, 70_000],
        })
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: vec![
                    metric(
                        "gauge",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![number(1.0), number(2.0)],
                        }),
                    ),
                    metric(
                        "sum",
                        metric::Data::Sum(Sum {
                            data_points: vec![number(3.0)],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "histogram",
                        metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: attributes(2),
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: Some(4.0),
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![0.5],
                                exemplars: vec![exemplar()],
                                flags: 1,
                                min: Some(0.1),
                                max: Some(9.0),
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "exponential",
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                attributes: attributes(2),
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: Some(4.0),
                                scale: -2,
                                zero_count: 1,
                                positive: buckets(),
                                negative: buckets(),
                                flags: 1,
                                exemplars: vec![exemplar()],
                                min: Some(0.1),
                                max: Some(9.0),
                                zero_threshold: 0.001,
                            }],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "summary",
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                attributes: attributes(2),
                                start_time_unix_nano: 1,
                                time_unix_nano: 2,
                                count: 3,
                                sum: 4.0,
                                quantile_values: vec![ValueAtQuantile {
                                    quantile: 0.5,
                                    value: 1.0,
                                }],
                                flags: 1,
                            }],
                        }),
                    ),
                ],
                schema_url: "s".into(),
            }],
            schema_url: "s".into(),
        }],
    }
}

/// prost's verdict with the id lengths checked after decoding: the item
/// count, or None when it refuses.
fn prost_items(signal: Signal, bytes: &[u8]) -> Option<usize> {
    decode_checked(signal, bytes).ok().map(|b| b.item_count())
}

fn scan_items(signal: Signal, bytes: &[u8]) -> Option<usize> {
    scan(schema_of(signal), bytes).ok().map(|s| s.items)
}

fn samples() -> Vec<(Signal, Vec<u8>)> {
    vec![
        (Signal::Traces, traces(3).encode_to_vec()),
        (Signal::Logs, logs(3).encode_to_vec()),
        (Signal::Metrics, metrics().encode_to_vec()),
    ]
}

#[test]
fn every_field_set_is_accepted_and_counted_like_prost() {
    for (signal, bytes) in samples() {
        let scanned = scan(schema_of(signal), &bytes).unwrap();
        assert_eq!(Some(scanned.items), prost_items(signal, &bytes), "{signal}");
        assert!(scanned.items > 0);
        assert_eq!(scanned.records.len(), 1);
        assert_eq!(
            (scanned.records[0].start, scanned.records[0].end),
            (0, bytes.len())
        );
    }
    assert_eq!(
        scan_items(Signal::Metrics, &metrics().encode_to_vec()),
        Some(6)
    );
}

/// A small deterministic generator, so a failure replays.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut XorShift, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..1 + rng.below(3) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(6) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next() as u8,
            2 => out.truncate(at),
            3 => {
                out.remove(at);
            }
            4 => out.insert(at, rng.next() as u8),
            // Bytes that break UTF-8 or look like keys of other types.
            _ => out[at] = [0xff, 0xc0, 0x80, 0x0b, 0x0c, 0x13, 0x14][rng.below(7)],
        }
    }
    out
}

#[test]
fn mutations_are_judged_as_prost_judges_them() {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let mut accepted = 0;
    let mut refused = 0;
    for (signal, bytes) in samples() {
        for trial in 0..40_000 {
            let mutated = mutate(&mut rng, &bytes);
            let expected = prost_items(signal, &mutated);
            let got = scan_items(signal, &mutated);
            assert_eq!(
                got,
                expected,
                "{signal} trial {trial}: scanner {got:?}, prost {expected:?} ({:?})",
                decode_checked(signal, &mutated).err()
            );
            if expected.is_some() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    // Both verdicts are exercised, not just one.
    assert!(
        accepted > 10_000 && refused > 10_000,
        "{accepted} / {refused}"
    );
}

/// AnyValue -> ArrayValue -> AnyValue ... `depth` levels below a log body.
fn nested_log(depth: usize) -> Vec<u8> {
    let mut value = AnyValue {
        value: Some(any_value::Value::IntValue(1)),
    };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let mut request = logs(1);
    request.resource_logs[0].scope_logs[0].log_records[0].body = Some(value);
    request.encode_to_vec()
}

#[test]
fn the_recursion_limit_is_prosts() {
    let mut both = [false, false];
    for depth in 40..60 {
        let bytes = nested_log(depth);
        let expected = prost_items(Signal::Logs, &bytes);
        assert_eq!(scan_items(Signal::Logs, &bytes), expected, "depth {depth}");
        both[expected.is_some() as usize] = true;
    }
    assert_eq!(both, [true, true], "the limit lies inside the range tried");
}

#[test]
fn unknown_fields_and_groups_are_skipped_like_prost() {
    let base = traces(1).encode_to_vec();
    let cases: Vec<Vec<u8>> = vec![
        // Unknown varint, fixed, length-delimited fields at the top level.
        [vec![0x10, 0x01], base.clone()].concat(),
        [base.clone(), vec![0x19, 1, 2, 3, 4, 5, 6, 7, 8]].concat(),
        [base.clone(), vec![0x22, 2, 0xff, 0xff]].concat(),
        // A group (field 5) holding a varint, properly ended.
        [base.clone(), vec![0x2b, 0x08, 0x01, 0x2c]].concat(),
        // A group ended by the wrong field's end tag.
        [base.clone(), vec![0x2b, 0x08, 0x01, 0x34]].concat(),
        // A lone end-group tag.
        [base.clone(), vec![0x2c]].concat(),
        // Field number 0; wire types 6 and 7.
        [base.clone(), vec![0x00]].concat(),
        [base.clone(), vec![0x0e]].concat(),
        [base.clone(), vec![0x0f]].concat(),
        // A ten-byte varint that overflows 64 bits.
        [
            base.clone(),
            vec![
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ],
        ]
        .concat(),
        [
            base.clone(),
            vec![
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
        ]
        .concat(),
    ];
    for (i, bytes) in cases.iter().enumerate() {
        assert_eq!(
            scan_items(Signal::Traces, bytes),
            prost_items(Signal::Traces, bytes),
            "case {i}"
        );
    }
}

#[test]
fn oneof_items_follow_the_last_member() {
    // A metric holding a gauge of 2 points, then a sum of 1: prost keeps
    // the sum; then a second sum of 1 merges into it.
    let gauge = metric::Data::Gauge(Gauge {
        data_points: vec![NumberDataPoint::default(), NumberDataPoint::default()],
    });
    let sum = metric::Data::Sum(Sum {
        data_points: vec![NumberDataPoint::default()],
        ..Default::default()
    });
    let encode = |data: metric::Data| {
        Metric {
            data: Some(data),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let metric_bytes = [encode(gauge), encode(sum.clone()), encode(sum)].concat();
    let mut scope = vec![0x12];
    prost::encoding::encode_varint(metric_bytes.len() as u64, &mut scope);
    scope.extend(&metric_bytes);
    let mut resource = vec![0x12];
    prost::encoding::encode_varint(scope.len() as u64, &mut resource);
    resource.extend(&scope);
    let mut request = vec![0x0a];
    prost::encoding::encode_varint(resource.len() as u64, &mut request);
    request.extend(&resource);
    assert_eq!(prost_items(Signal::Metrics, &request), Some(2));
    assert_eq!(scan_items(Signal::Metrics, &request), Some(2));
}

/// Writes the samples above as seeds for the `cargo fuzz` targets, so the
/// fuzzer starts from real OTLP rather than from nothing:
/// `SIDEWATCH_FUZZ_SEEDS=fuzz/seeds cargo test --lib write_fuzz_seeds -- --ignored`
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("SIDEWATCH_FUZZ_SEEDS") else {
        panic!("set SIDEWATCH_FUZZ_SEEDS to the seeds directory")
    };
    let dir = std::path::Path::new(&dir);
    let write = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(dir.join(target)).unwrap();
        std::fs::write(dir.join(target).join(name), bytes).unwrap();
    };
    let json = [
        serde_json::to_vec(&traces(2)).unwrap(),
        serde_json::to_vec(&metrics()).unwrap(),
        serde_json::to_vec(&logs(2)).unwrap(),
    ];
    for (i, (signal, bytes)) in samples().into_iter().enumerate() {
        write("otlp_protobuf", signal.as_str(), &bytes);
        // otlp_body: a selector byte (signal in the top bits, JSON in bit
        // 4, 0 for no compression in the low bits), then the body.
        let selector = (i as u8 * 2) << 5;
        write(
            "otlp_body",
            &format!("{signal}.pb"),
            &[&[selector][..], &bytes].concat(),
        );
        write(
            "otlp_body",
            &format!("{signal}.json"),
            &[&[selector | 0x10][..], &json[i]].concat(),
        );
    }
}
