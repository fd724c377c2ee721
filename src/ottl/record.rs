//! The item a statement runs on, with its parents ([`Record`]), and reading
//! and writing resolved paths on it. A record borrows the OTLP structs in
//! place: nothing is converted unless a statement reads or writes it.
//!
//! Span events and data points live inside their span and metric; to lend
//! both at once, the caller moves the events (or the metric's data) out
//! while the lower level runs, so `span.events` and `metric.data` are
//! empty then. The metric's type, temporality and monotonicity are copied
//! into the record first, so `metric.type` still reads right.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
    metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span};

use super::ast::Key;
use super::context::Context;
use super::error::EvalError;
use super::paths::{Field, Path};
use super::value::Value;

/// One data point of any metric type.
pub enum Point<'a> {
    Number(&'a mut NumberDataPoint),
    Histogram(&'a mut HistogramDataPoint),
    ExponentialHistogram(&'a mut ExponentialHistogramDataPoint),
    Summary(&'a mut SummaryDataPoint),
}

/// The metric's data type, temporality and monotonicity, as OTTL's
/// `metric.type`, `metric.aggregation_temporality`, `metric.is_monotonic`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricShape {
    pub data_type: i64,
    pub temporality: i64,
    pub monotonic: bool,
}

impl MetricShape {
    pub fn of(data: Option<&metric::Data>) -> MetricShape {
        match data {
            None => MetricShape::default(),
            Some(metric::Data::Gauge(_)) => MetricShape {
                data_type: 1,
                ..Default::default()
            },
            Some(metric::Data::Sum(s)) => MetricShape {
                data_type: 2,
                temporality: s.aggregation_temporality as i64,
                monotonic: s.is_monotonic,
            },
            Some(metric::Data::Histogram(h)) => MetricShape {
                data_type: 3,
                temporality: h.aggregation_temporality as i64,
                monotonic: false,
            },
            Some(metric::Data::ExponentialHistogram(h)) => MetricShape {
                data_type: 4,
                temporality: h.aggregation_temporality as i64,
                monotonic: false,
            },
            Some(metric::Data::Summary(_)) => MetricShape {
                data_type: 5,
                ..Default::default()
            },
        }
    }
}

/// What one statement runs on: an item and its parents. Levels below the
/// statement's context are `None`; compilation guarantees paths only name
/// levels that are present.
pub struct Record<'a> {
    pub resource: &'a mut Option<Resource>,
    pub scope: &'a mut Option<InstrumentationScope>,
    pub span: Option<&'a mut Span>,
    pub event: Option<&'a mut span::Event>,
    pub metric: Option<&'a mut Metric>,
    pub metric_shape: MetricShape,
    pub point: Option<Point<'a>>,
    pub log: Option<&'a mut LogRecord>,
}

fn absent(level: &str) -> EvalError {
    EvalError::new(format!("no {level} here"))
}

fn as_int(value: u64) -> Value {
    Value::Int(value as i64)
}

fn type_error(path: &Path, expected: &str, got: &Value) -> EvalError {
    EvalError::new(format!(
        "cannot set `{}` to a {}: expected {expected}",
        path.text,
        got.type_name()
    ))
}

fn want_string(path: &Path, value: Value) -> Result<String, EvalError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(type_error(path, "a string", &other)),
    }
}

fn want_int(path: &Path, value: &Value) -> Result<i64, EvalError> {
    match value {
        Value::Int(i) => Ok(*i),
        other => Err(type_error(path, "an int", other)),
    }
}

fn want_unsigned(path: &Path, value: &Value) -> Result<u64, EvalError> {
    let i = want_int(path, value)?;
    u64::try_from(i).map_err(|_| {
        EvalError::new(format!(
            "cannot set `{}` to {i}: expected a value >= 0",
            path.text
        ))
    })
}

fn want_u32(path: &Path, value: &Value) -> Result<u32, EvalError> {
    let i = want_int(path, value)?;
    u32::try_from(i)
        .map_err(|_| EvalError::new(format!("cannot set `{}` to {i}: out of range", path.text)))
}

fn want_i32(path: &Path, value: &Value) -> Result<i32, EvalError> {
    let i = want_int(path, value)?;
    i32::try_from(i)
        .map_err(|_| EvalError::new(format!("cannot set `{}` to {i}: out of range", path.text)))
}

fn want_double(path: &Path, value: &Value) -> Result<f64, EvalError> {
    match value {
        Value::Double(d) => Ok(*d),
        Value::Int(i) => Ok(*i as f64),
        other => Err(type_error(path, "a double", other)),
    }
}

fn want_id(path: &Path, value: Value, length: usize) -> Result<Vec<u8>, EvalError> {
    match value {
        Value::Bytes(b) if b.len() == length => Ok(b),
        other => Err(type_error(path, &format!("{length} bytes"), &other)),
    }
}

fn want_hex_id(path: &Path, value: Value, length: usize) -> Result<Vec<u8>, EvalError> {
    let text = want_string(path, value)?;
    match hex::decode(&text) {
        Ok(bytes) if bytes.len() == length => Ok(bytes),
        _ => Err(EvalError::new(format!(
            "cannot set `{}` to {text:?}: expected {} hexadecimal digits",
            path.text,
            length * 2
        ))),
    }
}

/// Follows `keys` from a value; a missing key or index reads as `None`.
fn index<'v>(
    mut value: Option<&'v AnyValue>,
    keys: &[Key],
    path: &Path,
) -> Result<Option<&'v AnyValue>, EvalError> {
    for key in keys {
        let Some(current) = value.and_then(|v| v.value.as_ref()) else {
            return Ok(None);
        };
        value = match (current, key) {
            (any_value::Value::KvlistValue(kv), Key::String(k)) => kv
                .values
                .iter()
                .find(|e| &e.key == k)
                .and_then(|e| e.value.as_ref()),
            (any_value::Value::ArrayValue(a), Key::Int(i)) => {
                usize::try_from(*i).ok().and_then(|i| a.values.get(i))
            }
            _ => {
                return Err(EvalError::new(format!(
                    "`{}`: a {} cannot be indexed by {key:?}",
                    path.text,
                    Value::from_any(Some(&AnyValue {
                        value: Some(current.clone())
                    }))
                    .type_name()
                )));
            }
        };
    }
    Ok(value)
}

fn lookup<'v>(
    attributes: &'v [KeyValue],
    keys: &[Key],
    path: &Path,
) -> Result<Option<&'v AnyValue>, EvalError> {
    let Some((Key::String(first), rest)) = keys.split_first() else {
        return Err(EvalError::new(format!(
            "`{}`: maps take string keys",
            path.text
        )));
    };
    let value = attributes
        .iter()
        .find(|kv| &kv.key == first)
        .and_then(|kv| kv.value.as_ref());
    index(value, rest, path)
}

/// Sets `keys` below a map to `value`, creating maps on the way.
fn set_in_map(
    attributes: &mut Vec<KeyValue>,
    keys: &[Key],
    value: AnyValue,
    path: &Path,
) -> Result<(), EvalError> {
    let Some((Key::String(first), rest)) = keys.split_first() else {
        return Err(EvalError::new(format!(
            "`{}`: maps take string keys",
            path.text
        )));
    };
    let slot = match attributes.iter().position(|kv| &kv.key == first) {
        Some(i) => &mut attributes[i],
        None => {
            attributes.push(KeyValue {
                key: first.clone(),
                value: None,
                ..Default::default()
            });
            attributes.last_mut().expect("just pushed")
        }
    };
    if rest.is_empty() {
        slot.value = Some(value);
        return Ok(());
    }
    set_in_any(
        slot.value.get_or_insert_with(AnyValue::default),
        rest,
        value,
        path,
    )
}

fn set_in_any(
    target: &mut AnyValue,
    keys: &[Key],
    value: AnyValue,
    path: &Path,
) -> Result<(), EvalError> {
    if keys.is_empty() {
        *target = value;
        return Ok(());
    }
    if target.value.is_none() && matches!(keys[0], Key::String(_)) {
        target.value = Some(any_value::Value::KvlistValue(KeyValueList::default()));
    }
    match (target.value.as_mut(), &keys[0]) {
        (Some(any_value::Value::KvlistValue(kv)), Key::String(_)) => {
            set_in_map(&mut kv.values, keys, value, path)
        }
        (Some(any_value::Value::ArrayValue(a)), Key::Int(i)) => {
            let len = a.values.len();
            let slot = usize::try_from(*i)
                .ok()
                .and_then(|i| a.values.get_mut(i))
                .ok_or_else(|| {
                    EvalError::new(format!(
                        "`{}`: index {i} is out of range (length {len})",
                        path.text
                    ))
                })?;
            set_in_any(slot, &keys[1..], value, path)
        }
        (current, key) => Err(EvalError::new(format!(
            "`{}`: a {} cannot be indexed by {key:?}",
            path.text,
            Value::from_any(Some(&AnyValue {
                value: current.cloned()
            }))
            .type_name()
        ))),
    }
}

/// The map a map-valued `AnyValue` holds, if it holds one.
fn any_map<'v>(value: &'v mut AnyValue, path: &Path) -> Result<&'v mut Vec<KeyValue>, EvalError> {
    match value.value.as_mut() {
        Some(any_value::Value::KvlistValue(kv)) => Ok(&mut kv.values),
        other => Err(EvalError::new(format!(
            "`{}` is a {}, expected a map",
            path.text,
            Value::from_any(Some(&AnyValue {
                value: other.cloned()
            }))
            .type_name()
        ))),
    }
}

fn any_index_mut<'v>(
    mut value: &'v mut AnyValue,
    keys: &[Key],
    path: &Path,
) -> Result<&'v mut AnyValue, EvalError> {
    for key in keys {
        let missing = || EvalError::new(format!("`{}` is nil, expected a map", path.text));
        value = match (value.value.as_mut(), key) {
            (Some(any_value::Value::KvlistValue(kv)), Key::String(k)) => kv
                .values
                .iter_mut()
                .find(|e| &e.key == k)
                .and_then(|e| e.value.as_mut())
                .ok_or_else(missing)?,
            (Some(any_value::Value::ArrayValue(a)), Key::Int(i)) => usize::try_from(*i)
                .ok()
                .and_then(|i| a.values.get_mut(i))
                .ok_or_else(missing)?,
            _ => return Err(missing()),
        };
    }
    Ok(value)
}

impl Record<'_> {
    fn attributes(&self, context: Context) -> Result<&[KeyValue], EvalError> {
        Ok(match context {
            Context::Resource => self.resource.as_ref().map_or(&[][..], |r| &r.attributes),
            Context::Scope => self.scope.as_ref().map_or(&[][..], |s| &s.attributes),
            Context::Span => &self.span.as_ref().ok_or_else(|| absent("span"))?.attributes,
            Context::SpanEvent => {
                &self
                    .event
                    .as_ref()
                    .ok_or_else(|| absent("span event"))?
                    .attributes
            }
            Context::Log => {
                &self
                    .log
                    .as_ref()
                    .ok_or_else(|| absent("log record"))?
                    .attributes
            }
            Context::DataPoint => match self.point.as_ref().ok_or_else(|| absent("data point"))? {
                Point::Number(p) => &p.attributes,
                Point::Histogram(p) => &p.attributes,
                Point::ExponentialHistogram(p) => &p.attributes,
                Point::Summary(p) => &p.attributes,
            },
            Context::Metric => return Err(absent("attribute map on a metric")),
        })
    }

    fn attributes_mut(&mut self, context: Context) -> Result<&mut Vec<KeyValue>, EvalError> {
        Ok(match context {
            Context::Resource => {
                &mut self
                    .resource
                    .get_or_insert_with(Resource::default)
                    .attributes
            }
            Context::Scope => {
                &mut self
                    .scope
                    .get_or_insert_with(InstrumentationScope::default)
                    .attributes
            }
            Context::Span => &mut self.span.as_mut().ok_or_else(|| absent("span"))?.attributes,
            Context::SpanEvent => {
                &mut self
                    .event
                    .as_mut()
                    .ok_or_else(|| absent("span event"))?
                    .attributes
            }
            Context::Log => {
                &mut self
                    .log
                    .as_mut()
                    .ok_or_else(|| absent("log record"))?
                    .attributes
            }
            Context::DataPoint => match self.point.as_mut().ok_or_else(|| absent("data point"))? {
                Point::Number(p) => &mut p.attributes,
                Point::Histogram(p) => &mut p.attributes,
                Point::ExponentialHistogram(p) => &mut p.attributes,
                Point::Summary(p) => &mut p.attributes,
            },
            Context::Metric => return Err(absent("attribute map on a metric")),
        })
    }

    /// Reads `path`; a missing attribute reads as nil.
    pub fn get(&self, path: &Path) -> Result<Value, EvalError> {
        use Context as C;
        use Field as F;
        if path.field == F::Attributes {
            let attributes = self.attributes(path.context)?;
            if path.keys.is_empty() {
                return Ok(Value::Map(super::value::map_from_attributes(attributes)));
            }
            return Ok(Value::from_any(lookup(attributes, &path.keys, path)?));
        }
        Ok(match path.context {
            C::Resource => match path.field {
                F::DroppedAttributesCount => Value::Int(
                    self.resource
                        .as_ref()
                        .map_or(0, |r| r.dropped_attributes_count) as i64,
                ),
                _ => unreachable_field(path)?,
            },
            C::Scope => {
                let scope = self.scope.as_ref();
                match path.field {
                    F::Name => Value::String(scope.map(|s| s.name.clone()).unwrap_or_default()),
                    F::Version => {
                        Value::String(scope.map(|s| s.version.clone()).unwrap_or_default())
                    }
                    F::DroppedAttributesCount => {
                        Value::Int(scope.map_or(0, |s| s.dropped_attributes_count) as i64)
                    }
                    _ => unreachable_field(path)?,
                }
            }
            C::Span => {
                let span = self.span.as_ref().ok_or_else(|| absent("span"))?;
                match path.field {
                    F::Name => Value::String(span.name.clone()),
                    F::TraceId => Value::Bytes(span.trace_id.clone()),
                    F::TraceIdString => Value::String(hex::encode(&span.trace_id)),
                    F::SpanId => Value::Bytes(span.span_id.clone()),
                    F::SpanIdString => Value::String(hex::encode(&span.span_id)),
                    F::ParentSpanId => Value::Bytes(span.parent_span_id.clone()),
                    F::ParentSpanIdString => Value::String(hex::encode(&span.parent_span_id)),
                    F::TraceState => Value::String(span.trace_state.clone()),
                    F::Kind => Value::Int(span.kind as i64),
                    F::StartTimeUnixNano => as_int(span.start_time_unix_nano),
                    F::EndTimeUnixNano => as_int(span.end_time_unix_nano),
                    F::StatusCode => Value::Int(span.status.as_ref().map_or(0, |s| s.code) as i64),
                    F::StatusMessage => Value::String(
                        span.status
                            .as_ref()
                            .map(|s| s.message.clone())
                            .unwrap_or_default(),
                    ),
                    F::DroppedAttributesCount => Value::Int(span.dropped_attributes_count as i64),
                    F::DroppedEventsCount => Value::Int(span.dropped_events_count as i64),
                    F::DroppedLinksCount => Value::Int(span.dropped_links_count as i64),
                    F::Flags => Value::Int(span.flags as i64),
                    _ => unreachable_field(path)?,
                }
            }
            C::SpanEvent => {
                let event = self.event.as_ref().ok_or_else(|| absent("span event"))?;
                match path.field {
                    F::Name => Value::String(event.name.clone()),
                    F::TimeUnixNano => as_int(event.time_unix_nano),
                    F::DroppedAttributesCount => Value::Int(event.dropped_attributes_count as i64),
                    _ => unreachable_field(path)?,
                }
            }
            C::Metric => {
                let metric = self.metric.as_ref().ok_or_else(|| absent("metric"))?;
                let shape = match &metric.data {
                    Some(data) => MetricShape::of(Some(data)),
                    None => self.metric_shape,
                };
                match path.field {
                    F::Name => Value::String(metric.name.clone()),
                    F::Description => Value::String(metric.description.clone()),
                    F::Unit => Value::String(metric.unit.clone()),
                    F::Type => Value::Int(shape.data_type),
                    F::AggregationTemporality => Value::Int(shape.temporality),
                    F::IsMonotonic => Value::Bool(shape.monotonic),
                    _ => unreachable_field(path)?,
                }
            }
            C::DataPoint => {
                let point = self.point.as_ref().ok_or_else(|| absent("data point"))?;
                let (start, time, flags) = match point {
                    Point::Number(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
                    Point::Histogram(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
                    Point::ExponentialHistogram(p) => {
                        (p.start_time_unix_nano, p.time_unix_nano, p.flags)
                    }
                    Point::Summary(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
                };
                match path.field {
                    F::StartTimeUnixNano => as_int(start),
                    F::TimeUnixNano => as_int(time),
                    F::Flags => Value::Int(flags as i64),
                    F::ValueDouble => match point {
                        Point::Number(NumberDataPoint {
                            value: Some(number_data_point::Value::AsDouble(d)),
                            ..
                        }) => Value::Double(*d),
                        Point::Number(_) => Value::Double(0.0),
                        _ => Value::Nil,
                    },
                    F::ValueInt => match point {
                        Point::Number(NumberDataPoint {
                            value: Some(number_data_point::Value::AsInt(i)),
                            ..
                        }) => Value::Int(*i),
                        Point::Number(_) => Value::Int(0),
                        _ => Value::Nil,
                    },
                    F::Count => match point {
                        Point::Histogram(p) => as_int(p.count),
                        Point::ExponentialHistogram(p) => as_int(p.count),
                        Point::Summary(p) => as_int(p.count),
                        Point::Number(_) => Value::Nil,
                    },
                    F::Sum => match point {
                        Point::Histogram(p) => p.sum.map_or(Value::Nil, Value::Double),
                        Point::ExponentialHistogram(p) => p.sum.map_or(Value::Nil, Value::Double),
                        Point::Summary(p) => Value::Double(p.sum),
                        Point::Number(_) => Value::Nil,
                    },
                    _ => unreachable_field(path)?,
                }
            }
            C::Log => {
                let log = self.log.as_ref().ok_or_else(|| absent("log record"))?;
                match path.field {
                    F::Body => Value::from_any(index(log.body.as_ref(), &path.keys, path)?),
                    F::SeverityNumber => Value::Int(log.severity_number as i64),
                    F::SeverityText => Value::String(log.severity_text.clone()),
                    F::TimeUnixNano => as_int(log.time_unix_nano),
                    F::ObservedTimeUnixNano => as_int(log.observed_time_unix_nano),
                    F::TraceId => Value::Bytes(log.trace_id.clone()),
                    F::TraceIdString => Value::String(hex::encode(&log.trace_id)),
                    F::SpanId => Value::Bytes(log.span_id.clone()),
                    F::SpanIdString => Value::String(hex::encode(&log.span_id)),
                    F::Flags => Value::Int(log.flags as i64),
                    F::DroppedAttributesCount => Value::Int(log.dropped_attributes_count as i64),
                    F::EventName => Value::String(log.event_name.clone()),
                    _ => unreachable_field(path)?,
                }
            }
        })
    }

    /// Writes `value` at `path`. Setting nil does nothing, as in OTTL.
    pub fn set(&mut self, path: &Path, value: Value) -> Result<(), EvalError> {
        use Context as C;
        use Field as F;
        if value == Value::Nil {
            return Ok(());
        }
        if path.field == F::Attributes {
            let attributes = self.attributes_mut(path.context)?;
            if path.keys.is_empty() {
                let Value::Map(entries) = value else {
                    return Err(type_error(path, "a map", &value));
                };
                *attributes = entries
                    .into_iter()
                    .map(|(key, value)| KeyValue {
                        key,
                        value: Some(value.into_any()),
                        ..Default::default()
                    })
                    .collect();
                return Ok(());
            }
            return set_in_map(attributes, &path.keys, value.into_any(), path);
        }
        match path.context {
            C::Resource => {
                let resource = self.resource.get_or_insert_with(Resource::default);
                match path.field {
                    F::DroppedAttributesCount => {
                        resource.dropped_attributes_count = want_u32(path, &value)?
                    }
                    _ => return unreachable_field(path).map(drop),
                }
            }
            C::Scope => {
                let scope = self.scope.get_or_insert_with(InstrumentationScope::default);
                match path.field {
                    F::Name => scope.name = want_string(path, value)?,
                    F::Version => scope.version = want_string(path, value)?,
                    F::DroppedAttributesCount => {
                        scope.dropped_attributes_count = want_u32(path, &value)?
                    }
                    _ => return unreachable_field(path).map(drop),
                }
            }
            C::Span => {
                let span = self.span.as_mut().ok_or_else(|| absent("span"))?;
                match path.field {
                    F::Name => span.name = want_string(path, value)?,
                    F::TraceId => span.trace_id = want_id(path, value, 16)?,
                    F::TraceIdString => span.trace_id = want_hex_id(path, value, 16)?,
                    F::SpanId => span.span_id = want_id(path, value, 8)?,
                    F::SpanIdString => span.span_id = want_hex_id(path, value, 8)?,
                    F::ParentSpanId => span.parent_span_id = want_id(path, value, 8)?,
                    F::ParentSpanIdString => span.parent_span_id = want_hex_id(path, value, 8)?,
                    F::TraceState => span.trace_state = want_string(path, value)?,
                    F::Kind => span.kind = want_i32(path, &value)?,
                    F::StartTimeUnixNano => {
                        span.start_time_unix_nano = want_unsigned(path, &value)?
                    }
                    F::EndTimeUnixNano => span.end_time_unix_nano = want_unsigned(path, &value)?,
                    F::StatusCode => {
                        span.status.get_or_insert_with(Default::default).code =
                            want_i32(path, &value)?
                    }
                    F::StatusMessage => {
                        span.status.get_or_insert_with(Default::default).message =
                            want_string(path, value)?
                    }
                    F::DroppedAttributesCount => {
                        span.dropped_attributes_count = want_u32(path, &value)?
                    }
                    F::DroppedEventsCount => span.dropped_events_count = want_u32(path, &value)?,
                    F::DroppedLinksCount => span.dropped_links_count = want_u32(path, &value)?,
                    F::Flags => span.flags = want_u32(path, &value)?,
                    _ => return unreachable_field(path).map(drop),
                }
            }
            C::SpanEvent => {
                let event = self.event.as_mut().ok_or_else(|| absent("span event"))?;
                match path.field {
                    F::Name => event.name = want_string(path, value)?,
                    F::TimeUnixNano => event.time_unix_nano = want_unsigned(path, &value)?,
                    F::DroppedAttributesCount => {
                        event.dropped_attributes_count = want_u32(path, &value)?
                    }
                    _ => return unreachable_field(path).map(drop),
                }
            }
            C::Metric => {
                let metric = self.metric.as_mut().ok_or_else(|| absent("metric"))?;
                match path.field {
                    F::Name => metric.name = want_string(path, value)?,
                    F::Description => metric.description = want_string(path, value)?,
                    F::Unit => metric.unit = want_string(path, value)?,
                    F::AggregationTemporality => {
                        let temporality = want_i32(path, &value)?;
                        match metric.data.as_mut() {
                            Some(metric::Data::Sum(s)) => s.aggregation_temporality = temporality,
                            Some(metric::Data::Histogram(h)) => {
                                h.aggregation_temporality = temporality
                            }
                            Some(metric::Data::ExponentialHistogram(h)) => {
                                h.aggregation_temporality = temporality
                            }
                            // Gauges and summaries have none; a data point
                            // statement cannot reach the metric's data.
                            _ => {}
                        }
                    }
                    F::IsMonotonic => {
                        let Value::Bool(monotonic) = value else {
                            return Err(type_error(path, "a bool", &value));
                        };
                        if let Some(metric::Data::Sum(s)) = metric.data.as_mut() {
                            s.is_monotonic = monotonic;
                        }
                    }
                    _ => return unreachable_field(path).map(drop),
                }
            }
            C::DataPoint => {
                let point = self.point.as_mut().ok_or_else(|| absent("data point"))?;
                match (path.field, point) {
                    (F::StartTimeUnixNano, p) => *start_of(p) = want_unsigned(path, &value)?,
                    (F::TimeUnixNano, p) => *time_of(p) = want_unsigned(path, &value)?,
                    (F::Flags, p) => *flags_of(p) = want_u32(path, &value)?,
                    (F::ValueDouble, Point::Number(p)) => {
                        p.value = Some(number_data_point::Value::AsDouble(want_double(
                            path, &value,
                        )?))
                    }
                    (F::ValueInt, Point::Number(p)) => {
                        p.value = Some(number_data_point::Value::AsInt(want_int(path, &value)?))
                    }
                    (F::Count, Point::Histogram(p)) => p.count = want_unsigned(path, &value)?,
                    (F::Count, Point::ExponentialHistogram(p)) => {
                        p.count = want_unsigned(path, &value)?
                    }
                    (F::Count, Point::Summary(p)) => p.count = want_unsigned(path, &value)?,
                    (F::Sum, Point::Histogram(p)) => p.sum = Some(want_double(path, &value)?),
                    (F::Sum, Point::ExponentialHistogram(p)) => {
                        p.sum = Some(want_double(path, &value)?)
                    }
                    (F::Sum, Point::Summary(p)) => p.sum = want_double(path, &value)?,
                    // A field this point type does not have: nothing to set.
                    (F::ValueDouble | F::ValueInt | F::Count | F::Sum, _) => {}
                    _ => return unreachable_field(path).map(drop),
                }
            }
            C::Log => {
                let log = self.log.as_mut().ok_or_else(|| absent("log record"))?;
                match path.field {
                    F::Body => {
                        let body = log.body.get_or_insert_with(AnyValue::default);
                        set_in_any(body, &path.keys, value.into_any(), path)?;
                    }
                    F::SeverityNumber => log.severity_number = want_i32(path, &value)?,
                    F::SeverityText => log.severity_text = want_string(path, value)?,
                    F::TimeUnixNano => log.time_unix_nano = want_unsigned(path, &value)?,
                    F::ObservedTimeUnixNano => {
                        log.observed_time_unix_nano = want_unsigned(path, &value)?
                    }
                    F::TraceId => log.trace_id = want_id(path, value, 16)?,
                    F::TraceIdString => log.trace_id = want_hex_id(path, value, 16)?,
                    F::SpanId => log.span_id = want_id(path, value, 8)?,
                    F::SpanIdString => log.span_id = want_hex_id(path, value, 8)?,
                    F::Flags => log.flags = want_u32(path, &value)?,
                    F::DroppedAttributesCount => {
                        log.dropped_attributes_count = want_u32(path, &value)?
                    }
                    F::EventName => log.event_name = want_string(path, value)?,
                    _ => return unreachable_field(path).map(drop),
                }
            }
        }
        Ok(())
    }

    /// The map at `path`, for map editors: an attribute map (created with
    /// its resource or scope when absent), a map under keys, or a body
    /// holding a map.
    pub fn map_mut(&mut self, path: &Path) -> Result<&mut Vec<KeyValue>, EvalError> {
        match path.field {
            Field::Attributes => {
                let attributes = self.attributes_mut(path.context)?;
                if path.keys.is_empty() {
                    return Ok(attributes);
                }
                let Some((Key::String(first), rest)) = path.keys.split_first() else {
                    return Err(EvalError::new(format!(
                        "`{}`: maps take string keys",
                        path.text
                    )));
                };
                let slot = attributes
                    .iter_mut()
                    .find(|kv| &kv.key == first)
                    .and_then(|kv| kv.value.as_mut())
                    .ok_or_else(|| {
                        EvalError::new(format!("`{}` is nil, expected a map", path.text))
                    })?;
                any_map(any_index_mut(slot, rest, path)?, path)
            }
            Field::Body => {
                let log = self.log.as_mut().ok_or_else(|| absent("log record"))?;
                let body = log.body.as_mut().ok_or_else(|| {
                    EvalError::new(format!("`{}` is nil, expected a map", path.text))
                })?;
                any_map(any_index_mut(body, &path.keys, path)?, path)
            }
            _ => Err(EvalError::new(format!("`{}` is not a map", path.text))),
        }
    }
}

fn start_of<'p>(point: &'p mut Point<'_>) -> &'p mut u64 {
    match point {
        Point::Number(p) => &mut p.start_time_unix_nano,
        Point::Histogram(p) => &mut p.start_time_unix_nano,
        Point::ExponentialHistogram(p) => &mut p.start_time_unix_nano,
        Point::Summary(p) => &mut p.start_time_unix_nano,
    }
}

fn time_of<'p>(point: &'p mut Point<'_>) -> &'p mut u64 {
    match point {
        Point::Number(p) => &mut p.time_unix_nano,
        Point::Histogram(p) => &mut p.time_unix_nano,
        Point::ExponentialHistogram(p) => &mut p.time_unix_nano,
        Point::Summary(p) => &mut p.time_unix_nano,
    }
}

fn flags_of<'p>(point: &'p mut Point<'_>) -> &'p mut u32 {
    match point {
        Point::Number(p) => &mut p.flags,
        Point::Histogram(p) => &mut p.flags,
        Point::ExponentialHistogram(p) => &mut p.flags,
        Point::Summary(p) => &mut p.flags,
    }
}

/// A (context, field) pair the field table does not list; compilation
/// makes this unreachable, so it is an error, not a panic.
fn unreachable_field(path: &Path) -> Result<Value, EvalError> {
    Err(EvalError::new(format!(
        "`{}` is not a field of the {} context",
        path.text,
        path.context.as_str()
    )))
}
