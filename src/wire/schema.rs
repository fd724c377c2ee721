//! The OTLP messages as the scanner sees them: field numbers and wire
//! shapes, taken from the `opentelemetry-proto` crate's generated types
//! (the same version prost decodes with), so what the scanner accepts is
//! what prost accepts. `wire::scan`'s differential test keeps the two
//! in step: a field missing here shows up as a disagreement.

/// How one field is encoded on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// int32/int64/uint32/uint64/sint32/bool/enum: one varint.
    Varint,
    /// fixed64/sfixed64/double.
    Fixed64,
    /// fixed32/float.
    Fixed32,
    /// A string: length-delimited and valid UTF-8.
    Str,
    /// Bytes: length-delimited, any content.
    Bytes,
    /// A trace or span id: bytes of the length its rule gives. `slot`
    /// is its bit in the message's mask of ids still wrong (absent counts
    /// as empty, and prost keeps the last occurrence, so the verdict is
    /// taken at the end of the message).
    Id(&'static IdRule, u8),
    /// An embedded message.
    Message(&'static Message),
    /// A repeated scalar: packed (length-delimited) or one element per key.
    Repeated(Scalar),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Varint,
    Fixed64,
}

#[derive(Debug)]
pub struct Field {
    pub number: u32,
    pub name: &'static str,
    pub kind: Kind,
    /// Each occurrence is one item (a span, log record or data point).
    pub item: bool,
    /// Member of the message's oneof: the last member present wins, and a
    /// repeat of the same member merges into it (prost's rule).
    pub oneof: bool,
}

/// Field numbers in OTLP messages go up to 16.
const MAX_NUMBER: usize = 16;

#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
    /// Position in `fields` + 1 by field number (0: unknown), so a lookup
    /// is one load: the scanner does one per field of every span.
    index: [u8; MAX_NUMBER + 1],
    /// Bits (by `Kind::Id` slot) of the ids that may not be empty: wrong
    /// until the message shows them with their length.
    pub required_ids: u8,
}

impl Message {
    const fn new(name: &'static str, fields: &'static [Field]) -> Message {
        let mut index = [0u8; MAX_NUMBER + 1];
        let mut required_ids = 0u8;
        let mut i = 0;
        while i < fields.len() {
            let number = fields[i].number as usize;
            assert!(number <= MAX_NUMBER, "field number beyond the index");
            index[number] = i as u8 + 1;
            if let Kind::Id(rule, slot) = fields[i].kind {
                assert!(slot < 8, "id slots fit in a u8");
                if !rule.empty_allowed {
                    required_ids |= 1 << slot;
                }
            }
            i += 1;
        }
        Message {
            name,
            fields,
            index,
            required_ids,
        }
    }

    /// The id field holding `slot`.
    pub fn id_field(&self, slot: u8) -> Option<&'static Field> {
        self.fields
            .iter()
            .find(|f| matches!(f.kind, Kind::Id(_, s) if s == slot))
    }

    #[inline]
    pub fn field(&self, number: u32) -> Option<&'static Field> {
        match self.index.get(number as usize) {
            Some(&at) if at > 0 => Some(&self.fields[at as usize - 1]),
            _ => None,
        }
    }
}

const fn f(number: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        item: false,
        oneof: false,
    }
}

const fn item(number: u32, name: &'static str, message: &'static Message) -> Field {
    Field {
        number,
        name,
        kind: Kind::Message(message),
        item: true,
        oneof: false,
    }
}

const fn oneof(number: u32, name: &'static str, kind: Kind) -> Field {
    Field {
        number,
        name,
        kind,
        item: false,
        oneof: true,
    }
}

use Kind::{Bytes, Fixed32, Fixed64, Id, Message as M, Repeated, Str, Varint};

use crate::datamodel::ids::{
    IdRule, LINK_SPAN_ID, LINK_TRACE_ID, LOG_SPAN_ID, LOG_TRACE_ID, SPAN_PARENT_SPAN_ID,
    SPAN_SPAN_ID, SPAN_TRACE_ID,
};

// common.v1 and resource.v1

pub static ANY_VALUE: Message = Message::new(
    "AnyValue",
    &[
        oneof(1, "string_value", Str),
        oneof(2, "bool_value", Varint),
        oneof(3, "int_value", Varint),
        oneof(4, "double_value", Fixed64),
        oneof(5, "array_value", M(&ARRAY_VALUE)),
        oneof(6, "kvlist_value", M(&KEY_VALUE_LIST)),
        oneof(7, "bytes_value", Bytes),
        oneof(8, "string_value_strindex", Varint),
    ],
);

pub static ARRAY_VALUE: Message = Message::new("ArrayValue", &[f(1, "values", M(&ANY_VALUE))]);

pub static KEY_VALUE_LIST: Message = Message::new("KeyValueList", &[f(1, "values", M(&KEY_VALUE))]);

pub static KEY_VALUE: Message = Message::new(
    "KeyValue",
    &[
        f(1, "key", Str),
        f(2, "value", M(&ANY_VALUE)),
        f(3, "key_strindex", Varint),
    ],
);

pub static SCOPE: Message = Message::new(
    "InstrumentationScope",
    &[
        f(1, "name", Str),
        f(2, "version", Str),
        f(3, "attributes", M(&KEY_VALUE)),
        f(4, "dropped_attributes_count", Varint),
    ],
);

pub static ENTITY_REF: Message = Message::new(
    "EntityRef",
    &[
        f(1, "schema_url", Str),
        f(2, "type", Str),
        f(3, "id_keys", Str),
        f(4, "description_keys", Str),
    ],
);

pub static RESOURCE: Message = Message::new(
    "Resource",
    &[
        f(1, "attributes", M(&KEY_VALUE)),
        f(2, "dropped_attributes_count", Varint),
        f(3, "entity_refs", M(&ENTITY_REF)),
    ],
);

// trace.v1

pub static EXPORT_TRACES: Message = Message::new(
    "ExportTraceServiceRequest",
    &[f(1, "resource_spans", M(&RESOURCE_SPANS))],
);

pub static RESOURCE_SPANS: Message = Message::new(
    "ResourceSpans",
    &[
        f(1, "resource", M(&RESOURCE)),
        f(2, "scope_spans", M(&SCOPE_SPANS)),
        f(3, "schema_url", Str),
    ],
);

pub static SCOPE_SPANS: Message = Message::new(
    "ScopeSpans",
    &[
        f(1, "scope", M(&SCOPE)),
        item(2, "spans", &SPAN),
        f(3, "schema_url", Str),
    ],
);

pub static SPAN: Message = Message::new(
    "Span",
    &[
        f(1, "trace_id", Id(&SPAN_TRACE_ID, 0)),
        f(2, "span_id", Id(&SPAN_SPAN_ID, 1)),
        f(3, "trace_state", Str),
        f(4, "parent_span_id", Id(&SPAN_PARENT_SPAN_ID, 2)),
        f(5, "name", Str),
        f(6, "kind", Varint),
        f(7, "start_time_unix_nano", Fixed64),
        f(8, "end_time_unix_nano", Fixed64),
        f(9, "attributes", M(&KEY_VALUE)),
        f(10, "dropped_attributes_count", Varint),
        f(11, "events", M(&EVENT)),
        f(12, "dropped_events_count", Varint),
        f(13, "links", M(&LINK)),
        f(14, "dropped_links_count", Varint),
        f(15, "status", M(&STATUS)),
        f(16, "flags", Fixed32),
    ],
);

pub static EVENT: Message = Message::new(
    "Span.Event",
    &[
        f(1, "time_unix_nano", Fixed64),
        f(2, "name", Str),
        f(3, "attributes", M(&KEY_VALUE)),
        f(4, "dropped_attributes_count", Varint),
    ],
);

pub static LINK: Message = Message::new(
    "Span.Link",
    &[
        f(1, "trace_id", Id(&LINK_TRACE_ID, 0)),
        f(2, "span_id", Id(&LINK_SPAN_ID, 1)),
        f(3, "trace_state", Str),
        f(4, "attributes", M(&KEY_VALUE)),
        f(5, "dropped_attributes_count", Varint),
        f(6, "flags", Fixed32),
    ],
);

pub static STATUS: Message = Message::new("Status", &[f(2, "message", Str), f(3, "code", Varint)]);

// logs.v1

pub static EXPORT_LOGS: Message = Message::new(
    "ExportLogsServiceRequest",
    &[f(1, "resource_logs", M(&RESOURCE_LOGS))],
);

pub static RESOURCE_LOGS: Message = Message::new(
    "ResourceLogs",
    &[
        f(1, "resource", M(&RESOURCE)),
        f(2, "scope_logs", M(&SCOPE_LOGS)),
        f(3, "schema_url", Str),
    ],
);

pub static SCOPE_LOGS: Message = Message::new(
    "ScopeLogs",
    &[
        f(1, "scope", M(&SCOPE)),
        item(2, "log_records", &LOG_RECORD),
        f(3, "schema_url", Str),
    ],
);

pub static LOG_RECORD: Message = Message::new(
    "LogRecord",
    &[
        f(1, "time_unix_nano", Fixed64),
        f(2, "severity_number", Varint),
        f(3, "severity_text", Str),
        f(5, "body", M(&ANY_VALUE)),
        f(6, "attributes", M(&KEY_VALUE)),
        f(7, "dropped_attributes_count", Varint),
        f(8, "flags", Fixed32),
        f(9, "trace_id", Id(&LOG_TRACE_ID, 0)),
        f(10, "span_id", Id(&LOG_SPAN_ID, 1)),
        f(11, "observed_time_unix_nano", Fixed64),
        f(12, "event_name", Str),
    ],
);

// metrics.v1

pub static EXPORT_METRICS: Message = Message::new(
    "ExportMetricsServiceRequest",
    &[f(1, "resource_metrics", M(&RESOURCE_METRICS))],
);

pub static RESOURCE_METRICS: Message = Message::new(
    "ResourceMetrics",
    &[
        f(1, "resource", M(&RESOURCE)),
        f(2, "scope_metrics", M(&SCOPE_METRICS)),
        f(3, "schema_url", Str),
    ],
);

pub static SCOPE_METRICS: Message = Message::new(
    "ScopeMetrics",
    &[
        f(1, "scope", M(&SCOPE)),
        f(2, "metrics", M(&METRIC)),
        f(3, "schema_url", Str),
    ],
);

pub static METRIC: Message = Message::new(
    "Metric",
    &[
        f(1, "name", Str),
        f(2, "description", Str),
        f(3, "unit", Str),
        oneof(5, "gauge", M(&GAUGE)),
        oneof(7, "sum", M(&SUM)),
        oneof(9, "histogram", M(&HISTOGRAM)),
        oneof(10, "exponential_histogram", M(&EXPONENTIAL_HISTOGRAM)),
        oneof(11, "summary", M(&SUMMARY)),
        f(12, "metadata", M(&KEY_VALUE)),
    ],
);

pub static GAUGE: Message = Message::new("Gauge", &[item(1, "data_points", &NUMBER_DATA_POINT)]);

pub static SUM: Message = Message::new(
    "Sum",
    &[
        item(1, "data_points", &NUMBER_DATA_POINT),
        f(2, "aggregation_temporality", Varint),
        f(3, "is_monotonic", Varint),
    ],
);

pub static HISTOGRAM: Message = Message::new(
    "Histogram",
    &[
        item(1, "data_points", &HISTOGRAM_DATA_POINT),
        f(2, "aggregation_temporality", Varint),
    ],
);

pub static EXPONENTIAL_HISTOGRAM: Message = Message::new(
    "ExponentialHistogram",
    &[
        item(1, "data_points", &EXPONENTIAL_HISTOGRAM_DATA_POINT),
        f(2, "aggregation_temporality", Varint),
    ],
);

pub static SUMMARY: Message =
    Message::new("Summary", &[item(1, "data_points", &SUMMARY_DATA_POINT)]);

pub static NUMBER_DATA_POINT: Message = Message::new(
    "NumberDataPoint",
    &[
        f(2, "start_time_unix_nano", Fixed64),
        f(3, "time_unix_nano", Fixed64),
        oneof(4, "as_double", Fixed64),
        f(5, "exemplars", M(&EXEMPLAR)),
        oneof(6, "as_int", Fixed64),
        f(7, "attributes", M(&KEY_VALUE)),
        f(8, "flags", Varint),
    ],
);

pub static HISTOGRAM_DATA_POINT: Message = Message::new(
    "HistogramDataPoint",
    &[
        f(2, "start_time_unix_nano", Fixed64),
        f(3, "time_unix_nano", Fixed64),
        f(4, "count", Fixed64),
        f(5, "sum", Fixed64),
        f(6, "bucket_counts", Repeated(Scalar::Fixed64)),
        f(7, "explicit_bounds", Repeated(Scalar::Fixed64)),
        f(8, "exemplars", M(&EXEMPLAR)),
        f(9, "attributes", M(&KEY_VALUE)),
        f(10, "flags", Varint),
        f(11, "min", Fixed64),
        f(12, "max", Fixed64),
    ],
);

pub static EXPONENTIAL_HISTOGRAM_DATA_POINT: Message = Message::new(
    "ExponentialHistogramDataPoint",
    &[
        f(1, "attributes", M(&KEY_VALUE)),
        f(2, "start_time_unix_nano", Fixed64),
        f(3, "time_unix_nano", Fixed64),
        f(4, "count", Fixed64),
        f(5, "sum", Fixed64),
        f(6, "scale", Varint),
        f(7, "zero_count", Fixed64),
        f(8, "positive", M(&BUCKETS)),
        f(9, "negative", M(&BUCKETS)),
        f(10, "flags", Varint),
        f(11, "exemplars", M(&EXEMPLAR)),
        f(12, "min", Fixed64),
        f(13, "max", Fixed64),
        f(14, "zero_threshold", Fixed64),
    ],
);

pub static BUCKETS: Message = Message::new(
    "ExponentialHistogramDataPoint.Buckets",
    &[
        f(1, "offset", Varint),
        f(2, "bucket_counts", Repeated(Scalar::Varint)),
    ],
);

pub static SUMMARY_DATA_POINT: Message = Message::new(
    "SummaryDataPoint",
    &[
        f(2, "start_time_unix_nano", Fixed64),
        f(3, "time_unix_nano", Fixed64),
        f(4, "count", Fixed64),
        f(5, "sum", Fixed64),
        f(6, "quantile_values", M(&VALUE_AT_QUANTILE)),
        f(7, "attributes", M(&KEY_VALUE)),
        f(8, "flags", Varint),
    ],
);

pub static VALUE_AT_QUANTILE: Message = Message::new(
    "SummaryDataPoint.ValueAtQuantile",
    &[f(1, "quantile", Fixed64), f(2, "value", Fixed64)],
);

pub static EXEMPLAR: Message = Message::new(
    "Exemplar",
    &[
        f(2, "time_unix_nano", Fixed64),
        oneof(3, "as_double", Fixed64),
        f(4, "span_id", Bytes),
        f(5, "trace_id", Bytes),
        oneof(6, "as_int", Fixed64),
        f(7, "filtered_attributes", M(&KEY_VALUE)),
    ],
);
