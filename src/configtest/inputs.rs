//! A case's inputs as OTLP export requests in event time: every series
//! sample, span and log record at its time, one request per signal and
//! time, items grouped by resource. They are written as OTLP/JSON lines,
//! the input `sidewatch replay` reads.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

use super::series;
use super::spec::{Case, LogInput, MetricType, SpanInput, SpanKind, SpanStatus};

type Attributes = BTreeMap<String, yaml_serde::Value>;

/// The items of one signal at one time, by resource.
#[derive(Default)]
struct Step {
    metrics: BTreeMap<String, (Attributes, Vec<Metric>)>,
    spans: BTreeMap<String, (Attributes, Vec<Span>)>,
    logs: BTreeMap<String, (Attributes, Vec<LogRecord>)>,
}

/// OTLP/JSON lines of the case's inputs in time order, with the number of
/// items; `start` is the first step's Unix time in nanoseconds.
pub fn requests(case: &Case, start: u64) -> Result<(Vec<String>, usize), String> {
    let mut steps: BTreeMap<u64, Step> = BTreeMap::new();
    let mut items = 0;
    let at = |offset: Option<Duration>| start + offset.unwrap_or_default().as_nanos() as u64;
    for (i, input) in case.metrics.iter().enumerate() {
        let (name, labels) =
            series::selector(&input.series).map_err(|e| format!("metrics[{i}]: {e}"))?;
        let values = series::values(&input.values).map_err(|e| format!("metrics[{i}]: {e}"))?;
        let interval = input.interval.unwrap_or(case.interval).as_nanos() as u64;
        let first = at(input.at);
        let attributes: Vec<KeyValue> = labels
            .iter()
            .map(|(k, v)| key_value(k, any_value::Value::StringValue(v.clone())))
            .collect();
        for (step, value) in values.iter().enumerate() {
            let Some(value) = value else { continue };
            let time = first + interval * step as u64;
            let point = NumberDataPoint {
                attributes: attributes.clone(),
                start_time_unix_nano: first,
                time_unix_nano: time,
                value: Some(number_data_point::Value::AsDouble(*value)),
                ..Default::default()
            };
            let data = match input.kind {
                MetricType::Gauge => metric::Data::Gauge(Gauge {
                    data_points: vec![point],
                }),
                MetricType::Sum => metric::Data::Sum(Sum {
                    data_points: vec![point],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            };
            let metric = Metric {
                name: name.clone(),
                data: Some(data),
                ..Default::default()
            };
            group(&mut steps.entry(time).or_default().metrics, &input.resource).push(metric);
            items += 1;
        }
    }
    let mut ids = 0u64;
    for input in &case.spans {
        for k in 0..input.count {
            let end = at(input.at) + input.every.unwrap_or_default().as_nanos() as u64 * k as u64;
            ids += 1;
            let span = span(input, end, ids);
            let mut resource = input.resource.clone();
            resource.insert("service.name".into(), input.service.clone().into());
            group(&mut steps.entry(end).or_default().spans, &resource).push(span);
            items += 1;
        }
    }
    for input in &case.logs {
        for k in 0..input.count {
            let time = at(input.at) + input.every.unwrap_or_default().as_nanos() as u64 * k as u64;
            group(&mut steps.entry(time).or_default().logs, &input.resource)
                .push(log_record(input, time));
            items += 1;
        }
    }
    let mut lines = Vec::new();
    for step in steps.into_values() {
        if !step.metrics.is_empty() {
            let request = ExportMetricsServiceRequest {
                resource_metrics: step
                    .metrics
                    .into_values()
                    .map(|(resource, metrics)| ResourceMetrics {
                        resource: Some(resource_of(&resource)),
                        scope_metrics: vec![ScopeMetrics {
                            metrics,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
            };
            lines.push(json(&request)?);
        }
        if !step.spans.is_empty() {
            let request = ExportTraceServiceRequest {
                resource_spans: step
                    .spans
                    .into_values()
                    .map(|(resource, spans)| ResourceSpans {
                        resource: Some(resource_of(&resource)),
                        scope_spans: vec![ScopeSpans {
                            spans,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
            };
            lines.push(json(&request)?);
        }
        if !step.logs.is_empty() {
            let request = ExportLogsServiceRequest {
                resource_logs: step
                    .logs
                    .into_values()
                    .map(|(resource, log_records)| ResourceLogs {
                        resource: Some(resource_of(&resource)),
                        scope_logs: vec![ScopeLogs {
                            log_records,
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
            };
            lines.push(json(&request)?);
        }
    }
    Ok((lines, items))
}

fn json<T: serde::Serialize>(request: &T) -> Result<String, String> {
    serde_json::to_string(request).map_err(|e| format!("cannot write an input as OTLP/JSON: {e}"))
}

/// The list of items under `resource` (one entry per distinct resource).
fn group<'a, T>(
    by_resource: &'a mut BTreeMap<String, (Attributes, Vec<T>)>,
    resource: &Attributes,
) -> &'a mut Vec<T> {
    let key = format!("{resource:?}");
    &mut by_resource
        .entry(key)
        .or_insert_with(|| (resource.clone(), Vec::new()))
        .1
}

fn span(input: &SpanInput, end: u64, id: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[8..].copy_from_slice(&id.to_be_bytes());
    trace_id[0] = 1;
    let kind = match input.kind {
        SpanKind::Internal => span::SpanKind::Internal,
        SpanKind::Server => span::SpanKind::Server,
        SpanKind::Client => span::SpanKind::Client,
        SpanKind::Producer => span::SpanKind::Producer,
        SpanKind::Consumer => span::SpanKind::Consumer,
    };
    let code = match input.status {
        SpanStatus::Unset => status::StatusCode::Unset,
        SpanStatus::Ok => status::StatusCode::Ok,
        SpanStatus::Error => status::StatusCode::Error,
    };
    Span {
        trace_id: trace_id.to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        name: input.name.clone(),
        kind: kind as i32,
        start_time_unix_nano: end.saturating_sub(input.duration.as_nanos() as u64),
        end_time_unix_nano: end,
        attributes: attributes(&input.attributes),
        status: Some(Status {
            code: code as i32,
            message: String::new(),
        }),
        ..Default::default()
    }
}

fn log_record(input: &LogInput, time: u64) -> LogRecord {
    let text = input.severity.clone().unwrap_or_default();
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time,
        severity_number: severity_number(&text),
        severity_text: text,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(input.body.clone())),
        }),
        attributes: attributes(&input.attributes),
        ..Default::default()
    }
}

/// The OTLP severity number of a severity text's first word.
fn severity_number(text: &str) -> i32 {
    match text.to_ascii_uppercase().as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" => 17,
        "FATAL" | "CRITICAL" => 21,
        _ => 0,
    }
}

fn resource_of(attributes_map: &Attributes) -> Resource {
    Resource {
        attributes: attributes(attributes_map),
        ..Default::default()
    }
}

fn attributes(map: &Attributes) -> Vec<KeyValue> {
    map.iter().map(|(k, v)| key_value(k, any(v))).collect()
}

fn key_value(key: &str, value: any_value::Value) -> KeyValue {
    crate::otlp::value::key_value(key, value)
}

/// A YAML scalar as the attribute value an SDK would have sent.
fn any(value: &yaml_serde::Value) -> any_value::Value {
    use yaml_serde::Value;
    match value {
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        other => any_value::Value::StringValue(
            yaml_serde::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
    }
}
