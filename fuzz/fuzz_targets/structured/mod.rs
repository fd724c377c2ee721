//! Arbitrary OTLP requests built from fuzzer bytes (the proto types do not
//! derive `Arbitrary`, so each field is drawn here), biased toward what
//! stateful components key on: a few metric names, attribute keys and
//! times near each other, so points of one series meet; and toward the
//! data-model edges: bucket counts that disagree with bounds, NaN and
//! infinite values, scales and offsets at their limits, ids of any length.
//!
//! Also the components under test, built from one YAML config through the
//! same registry `sidewatch run` uses, and a driver that feeds them.

#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::{Result, Unstructured};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    exponential_histogram_data_point::Buckets, metric, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use sidewatch::processors::Processor;
use sidewatch::signal::Batch;

/// 2026-01-01 in unix nanoseconds: times are drawn around it.
pub const BASE_NANOS: u64 = 1_767_225_600_000_000_000;

const KEYS: &[&str] = &[
    "service.name",
    "host",
    "http.route",
    "http.response.status_code",
    "cpu.mode",
];
const NAMES: &[&str] = &["m0", "m1", "m2", "latency"];

fn len(u: &mut Unstructured, max: usize) -> Result<usize> {
    u.int_in_range(0..=max)
}

fn text(u: &mut Unstructured, choices: &[&str]) -> Result<String> {
    if u.ratio(1, 4)? {
        let s: &str = u.arbitrary()?;
        Ok(s.chars().take(24).collect())
    } else {
        Ok(u.choose(choices)?.to_string())
    }
}

fn float(u: &mut Unstructured) -> Result<f64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        3 => u.arbitrary()?,
        4 => -f64::from(u.int_in_range(0..=1000u16)?),
        _ => f64::from(u.int_in_range(0..=1000u16)?) / 10.0,
    })
}

fn count(u: &mut Unstructured) -> Result<u64> {
    Ok(if u.ratio(1, 8)? {
        u.arbitrary()?
    } else {
        u64::from(u.int_in_range(0..=50u8)?)
    })
}

/// A time near `BASE_NANOS` (seconds apart), sometimes 0 or anything.
fn time(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => 0,
        1 => u.arbitrary()?,
        _ => BASE_NANOS + u64::from(u.int_in_range(0..=600u16)?) * 1_000_000_000,
    })
}

fn id(u: &mut Unstructured, usual: usize) -> Result<Vec<u8>> {
    let n = if u.ratio(1, 5)? { len(u, 33)? } else { usual };
    (0..n).map(|_| u.arbitrary()).collect()
}

fn any_value(u: &mut Unstructured, depth: u8) -> Result<AnyValue> {
    use any_value::Value;
    let value = match u.int_in_range(0..=6u8)? {
        0 => Value::StringValue(text(u, &["a", "b", "200", "500", "idle"])?),
        1 => Value::BoolValue(u.arbitrary()?),
        2 => Value::IntValue(u.arbitrary()?),
        3 => Value::DoubleValue(float(u)?),
        4 => Value::BytesValue(u.arbitrary()?),
        5 if depth > 0 => Value::ArrayValue(ArrayValue {
            values: (0..len(u, 2)?)
                .map(|_| any_value(u, depth - 1))
                .collect::<Result<_>>()?,
        }),
        _ => return Ok(AnyValue { value: None }),
    };
    Ok(AnyValue { value: Some(value) })
}

fn attributes(u: &mut Unstructured) -> Result<Vec<KeyValue>> {
    (0..len(u, 3)?)
        .map(|_| {
            Ok(KeyValue {
                key: text(u, KEYS)?,
                value: if u.ratio(1, 10)? {
                    None
                } else {
                    Some(any_value(u, 2)?)
                },
                ..Default::default()
            })
        })
        .collect()
}

fn resource(u: &mut Unstructured) -> Result<Option<Resource>> {
    Ok(if u.ratio(1, 6)? {
        None
    } else {
        Some(Resource {
            attributes: attributes(u)?,
            ..Default::default()
        })
    })
}

fn scope(u: &mut Unstructured) -> Result<Option<InstrumentationScope>> {
    Ok(Some(InstrumentationScope {
        name: text(u, &["lib", ""])?,
        ..Default::default()
    }))
}

fn flags(u: &mut Unstructured) -> Result<u32> {
    Ok(if u.ratio(1, 6)? { u.arbitrary()? } else { 0 })
}

fn number_point(u: &mut Unstructured) -> Result<NumberDataPoint> {
    Ok(NumberDataPoint {
        attributes: attributes(u)?,
        start_time_unix_nano: time(u)?,
        time_unix_nano: time(u)?,
        value: match u.int_in_range(0..=4u8)? {
            0 => None,
            1 => Some(number_data_point::Value::AsInt(u.arbitrary()?)),
            _ => Some(number_data_point::Value::AsDouble(float(u)?)),
        },
        flags: flags(u)?,
        ..Default::default()
    })
}

fn histogram_point(u: &mut Unstructured) -> Result<HistogramDataPoint> {
    let bounds: Vec<f64> = if u.ratio(1, 4)? {
        (0..len(u, 6)?).map(|_| float(u)).collect::<Result<_>>()?
    } else {
        vec![0.1, 1.0, 10.0][..len(u, 3)?].to_vec()
    };
    // Usually one more count than bounds; sometimes any number.
    let buckets = if u.ratio(1, 3)? {
        len(u, 8)?
    } else {
        bounds.len() + 1
    };
    let bucket_counts: Vec<u64> = (0..buckets).map(|_| count(u)).collect::<Result<_>>()?;
    let total = bucket_counts.iter().fold(0u64, |a, c| a.wrapping_add(*c));
    Ok(HistogramDataPoint {
        attributes: attributes(u)?,
        start_time_unix_nano: time(u)?,
        time_unix_nano: time(u)?,
        count: if u.ratio(1, 4)? { count(u)? } else { total },
        sum: if u.arbitrary()? {
            Some(float(u)?)
        } else {
            None
        },
        bucket_counts,
        explicit_bounds: bounds,
        min: if u.arbitrary()? {
            Some(float(u)?)
        } else {
            None
        },
        max: if u.arbitrary()? {
            Some(float(u)?)
        } else {
            None
        },
        flags: flags(u)?,
        ..Default::default()
    })
}

fn buckets(u: &mut Unstructured) -> Result<Option<Buckets>> {
    if u.ratio(1, 5)? {
        return Ok(None);
    }
    let offset = if u.ratio(1, 4)? {
        u.arbitrary()?
    } else {
        i32::from(u.int_in_range(-20..=20i8)?)
    };
    Ok(Some(Buckets {
        offset,
        bucket_counts: (0..len(u, 8)?).map(|_| count(u)).collect::<Result<_>>()?,
    }))
}

fn exponential_point(u: &mut Unstructured) -> Result<ExponentialHistogramDataPoint> {
    let positive = buckets(u)?;
    let negative = buckets(u)?;
    let zero_count = count(u)?;
    let total = [&positive, &negative]
        .iter()
        .flat_map(|b| b.iter().flat_map(|b| &b.bucket_counts))
        .fold(zero_count, |a, c| a.wrapping_add(*c));
    Ok(ExponentialHistogramDataPoint {
        attributes: attributes(u)?,
        start_time_unix_nano: time(u)?,
        time_unix_nano: time(u)?,
        count: if u.ratio(1, 4)? { count(u)? } else { total },
        sum: if u.arbitrary()? {
            Some(float(u)?)
        } else {
            None
        },
        scale: if u.ratio(1, 4)? {
            u.arbitrary()?
        } else {
            i32::from(u.int_in_range(-10..=20i8)?)
        },
        zero_count,
        positive,
        negative,
        flags: flags(u)?,
        min: if u.arbitrary()? {
            Some(float(u)?)
        } else {
            None
        },
        max: if u.arbitrary()? {
            Some(float(u)?)
        } else {
            None
        },
        zero_threshold: if u.ratio(1, 4)? { float(u)? } else { 0.0 },
        ..Default::default()
    })
}

fn summary_point(u: &mut Unstructured) -> Result<SummaryDataPoint> {
    Ok(SummaryDataPoint {
        attributes: attributes(u)?,
        start_time_unix_nano: time(u)?,
        time_unix_nano: time(u)?,
        count: count(u)?,
        sum: float(u)?,
        quantile_values: (0..len(u, 3)?)
            .map(|_| {
                Ok(ValueAtQuantile {
                    quantile: if u.ratio(1, 4)? { float(u)? } else { 0.5 },
                    value: float(u)?,
                })
            })
            .collect::<Result<_>>()?,
        flags: flags(u)?,
    })
}

fn points<T>(
    u: &mut Unstructured,
    point: impl Fn(&mut Unstructured) -> Result<T>,
) -> Result<Vec<T>> {
    (0..len(u, 4)?).map(|_| point(u)).collect()
}

fn temporality(u: &mut Unstructured) -> Result<i32> {
    Ok(if u.ratio(1, 8)? {
        u.arbitrary()?
    } else {
        u.int_in_range(0..=2)?
    })
}

fn one_metric(u: &mut Unstructured) -> Result<Metric> {
    let data = match u.int_in_range(0..=5u8)? {
        0 => metric::Data::Gauge(Gauge {
            data_points: points(u, number_point)?,
        }),
        1 => metric::Data::Sum(Sum {
            data_points: points(u, number_point)?,
            aggregation_temporality: temporality(u)?,
            is_monotonic: u.arbitrary()?,
        }),
        2 => metric::Data::Histogram(Histogram {
            data_points: points(u, histogram_point)?,
            aggregation_temporality: temporality(u)?,
        }),
        3 => metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: points(u, exponential_point)?,
            aggregation_temporality: temporality(u)?,
        }),
        4 => metric::Data::Summary(Summary {
            data_points: points(u, summary_point)?,
        }),
        _ => {
            return Ok(Metric {
                name: text(u, NAMES)?,
                ..Default::default()
            });
        }
    };
    Ok(Metric {
        name: text(u, NAMES)?,
        unit: text(u, &["", "s", "ms", "1"])?,
        data: Some(data),
        ..Default::default()
    })
}

pub fn metrics(u: &mut Unstructured) -> Result<ExportMetricsServiceRequest> {
    Ok(ExportMetricsServiceRequest {
        resource_metrics: (0..len(u, 2)?)
            .map(|_| {
                Ok(ResourceMetrics {
                    resource: resource(u)?,
                    scope_metrics: (0..len(u, 2)?)
                        .map(|_| {
                            Ok(ScopeMetrics {
                                scope: scope(u)?,
                                metrics: (0..len(u, 3)?)
                                    .map(|_| one_metric(u))
                                    .collect::<Result<_>>()?,
                                ..Default::default()
                            })
                        })
                        .collect::<Result<_>>()?,
                    ..Default::default()
                })
            })
            .collect::<Result<_>>()?,
    })
}

fn one_span(u: &mut Unstructured) -> Result<Span> {
    let start = time(u)?;
    Ok(Span {
        trace_id: id(u, 16)?,
        span_id: id(u, 8)?,
        parent_span_id: if u.arbitrary()? {
            id(u, 8)?
        } else {
            Vec::new()
        },
        name: text(u, &["GET /", "POST /pay"])?,
        kind: if u.ratio(1, 8)? {
            u.arbitrary()?
        } else {
            u.int_in_range(0..=5)?
        },
        start_time_unix_nano: start,
        end_time_unix_nano: if u.ratio(1, 5)? {
            time(u)?
        } else {
            start.saturating_add(u64::from(u.int_in_range(0..=5000u16)?) * 1_000_000)
        },
        attributes: attributes(u)?,
        links: (0..len(u, 1)?)
            .map(|_| {
                Ok(span::Link {
                    trace_id: id(u, 16)?,
                    span_id: id(u, 8)?,
                    ..Default::default()
                })
            })
            .collect::<Result<_>>()?,
        status: if u.arbitrary()? {
            Some(Status {
                message: String::new(),
                code: u.int_in_range(-1..=3)?,
            })
        } else {
            None
        },
        ..Default::default()
    })
}

pub fn traces(u: &mut Unstructured) -> Result<ExportTraceServiceRequest> {
    Ok(ExportTraceServiceRequest {
        resource_spans: (0..len(u, 2)?)
            .map(|_| {
                Ok(ResourceSpans {
                    resource: resource(u)?,
                    scope_spans: (0..len(u, 2)?)
                        .map(|_| {
                            Ok(ScopeSpans {
                                scope: scope(u)?,
                                spans: (0..len(u, 4)?)
                                    .map(|_| one_span(u))
                                    .collect::<Result<_>>()?,
                                ..Default::default()
                            })
                        })
                        .collect::<Result<_>>()?,
                    ..Default::default()
                })
            })
            .collect::<Result<_>>()?,
    })
}

fn one_log(u: &mut Unstructured) -> Result<LogRecord> {
    Ok(LogRecord {
        time_unix_nano: time(u)?,
        observed_time_unix_nano: time(u)?,
        severity_number: u.int_in_range(-1..=25)?,
        severity_text: text(u, &["INFO", "ERROR", ""])?,
        body: if u.ratio(1, 6)? {
            None
        } else {
            Some(any_value(u, 2)?)
        },
        attributes: attributes(u)?,
        flags: flags(u)?,
        trace_id: if u.arbitrary()? {
            id(u, 16)?
        } else {
            Vec::new()
        },
        span_id: if u.arbitrary()? {
            id(u, 8)?
        } else {
            Vec::new()
        },
        event_name: text(u, &["", "sidewatch.alert"])?,
        ..Default::default()
    })
}

pub fn logs(u: &mut Unstructured) -> Result<ExportLogsServiceRequest> {
    Ok(ExportLogsServiceRequest {
        resource_logs: (0..len(u, 2)?)
            .map(|_| {
                Ok(ResourceLogs {
                    resource: resource(u)?,
                    scope_logs: (0..len(u, 2)?)
                        .map(|_| {
                            Ok(ScopeLogs {
                                scope: scope(u)?,
                                log_records: (0..len(u, 4)?)
                                    .map(|_| one_log(u))
                                    .collect::<Result<_>>()?,
                                ..Default::default()
                            })
                        })
                        .collect::<Result<_>>()?,
                    ..Default::default()
                })
            })
            .collect::<Result<_>>()?,
    })
}

/// Every processor and connector `yaml` configures, built as `run` builds
/// them (the config is compiled once per process; each target has one).
pub fn components(yaml: &str) -> Vec<(String, Box<dyn Processor>)> {
    static PLAN: std::sync::OnceLock<sidewatch::plan::Plan> = std::sync::OnceLock::new();
    let plan = PLAN.get_or_init(|| {
        sidewatch::plan::load_str(yaml, "fuzz config")
            .unwrap_or_else(|e| panic!("the fuzz config compiles: {e}"))
            .plan
    });
    let mut built: Vec<(String, Box<dyn Processor>)> = Vec::new();
    for (id, config) in &plan.processors {
        built.push((
            id.to_string(),
            sidewatch::pipeline::build::build_processor(config),
        ));
    }
    for (id, config) in &plan.connectors {
        built.push((
            id.to_string(),
            sidewatch::pipeline::build::build_connector(
                &id.to_string(),
                config,
                sidewatch::pipeline::build::Purpose::Replay,
            ),
        ));
    }
    built
}

/// Feeds `batches` to every component at times a few seconds apart, with
/// ticks between (so windows, `for` durations and emissions run), and
/// flushes at the end; whatever a component emits is encoded, as an
/// exporter after it would. Nothing may panic.
pub fn drive(components: &mut [(String, Box<dyn Processor>)], batches: &[Batch], steps: &[u16]) {
    let start = UNIX_EPOCH + Duration::from_nanos(BASE_NANOS);
    let mut now: SystemTime = start;
    for (i, batch) in batches.iter().enumerate() {
        now += Duration::from_millis(u64::from(steps.get(i).copied().unwrap_or(1000)));
        for (_, component) in components.iter_mut() {
            let mut out = Vec::new();
            component.process(batch.clone(), now, &mut out);
            let mut ticked = Vec::new();
            component.tick(now, &mut ticked);
            for emitted in out.into_iter().chain(ticked) {
                let _ = emitted.to_protobuf();
            }
        }
    }
    for (_, component) in components.iter_mut() {
        let mut out = Vec::new();
        component.tick(now + Duration::from_secs(120), &mut out);
        component.flush(now + Duration::from_secs(120), &mut out);
    }
}
