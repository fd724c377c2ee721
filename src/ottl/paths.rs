//! Paths per context: which fields each context has (the names of the
//! OTLP proto fields, as the Collector's OTTL contexts use them), and the
//! resolution of a written path (`resource.attributes["k"]`, `status.code`,
//! `metric.name`) into a typed [`Path`] at compile time.
//!
//! A first name that is a context (`resource`, `scope`, `span`, ...) is a
//! prefix and selects that level, if the statement's context reaches it;
//! otherwise the path is a field of the statement's own context (the
//! Collector's pre-0.120 style, still what `context:` groups and filter
//! conditions are written in).

use super::ast::{Key, PathExpr};
use super::context::Context;
use super::error::CompileError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Attributes,
    DroppedAttributesCount,
    Name,
    Version,
    TraceId,
    TraceIdString,
    SpanId,
    SpanIdString,
    ParentSpanId,
    ParentSpanIdString,
    TraceState,
    Kind,
    StartTimeUnixNano,
    EndTimeUnixNano,
    TimeUnixNano,
    ObservedTimeUnixNano,
    StatusCode,
    StatusMessage,
    DroppedEventsCount,
    DroppedLinksCount,
    Flags,
    Body,
    SeverityNumber,
    SeverityText,
    EventName,
    Description,
    Unit,
    Type,
    AggregationTemporality,
    IsMonotonic,
    ValueDouble,
    ValueInt,
    Count,
    Sum,
}

/// What a field holds, which decides where it may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An attribute map: indexable, a target for map editors.
    Map,
    /// Any value (a log body): indexable when it holds a map or list.
    Any,
    String,
    Int,
    Double,
    Bool,
    Bytes,
}

/// The fields of each context: (name as written, field, shape, writable).
const FIELDS: &[(Context, &str, Field, Shape, bool)] = {
    use Context::*;
    use Field as F;
    use Shape as S;
    &[
        (Resource, "attributes", F::Attributes, S::Map, true),
        (
            Resource,
            "dropped_attributes_count",
            F::DroppedAttributesCount,
            S::Int,
            true,
        ),
        (Scope, "name", F::Name, S::String, true),
        (Scope, "version", F::Version, S::String, true),
        (Scope, "attributes", F::Attributes, S::Map, true),
        (
            Scope,
            "dropped_attributes_count",
            F::DroppedAttributesCount,
            S::Int,
            true,
        ),
        (Span, "name", F::Name, S::String, true),
        (Span, "attributes", F::Attributes, S::Map, true),
        (Span, "trace_id", F::TraceId, S::Bytes, true),
        (Span, "trace_id.string", F::TraceIdString, S::String, true),
        (Span, "span_id", F::SpanId, S::Bytes, true),
        (Span, "span_id.string", F::SpanIdString, S::String, true),
        (Span, "parent_span_id", F::ParentSpanId, S::Bytes, true),
        (
            Span,
            "parent_span_id.string",
            F::ParentSpanIdString,
            S::String,
            true,
        ),
        (Span, "trace_state", F::TraceState, S::String, true),
        (Span, "kind", F::Kind, S::Int, true),
        (
            Span,
            "start_time_unix_nano",
            F::StartTimeUnixNano,
            S::Int,
            true,
        ),
        (Span, "end_time_unix_nano", F::EndTimeUnixNano, S::Int, true),
        (Span, "status.code", F::StatusCode, S::Int, true),
        (Span, "status.message", F::StatusMessage, S::String, true),
        (
            Span,
            "dropped_attributes_count",
            F::DroppedAttributesCount,
            S::Int,
            true,
        ),
        (
            Span,
            "dropped_events_count",
            F::DroppedEventsCount,
            S::Int,
            true,
        ),
        (
            Span,
            "dropped_links_count",
            F::DroppedLinksCount,
            S::Int,
            true,
        ),
        (Span, "flags", F::Flags, S::Int, true),
        (SpanEvent, "name", F::Name, S::String, true),
        (SpanEvent, "attributes", F::Attributes, S::Map, true),
        (SpanEvent, "time_unix_nano", F::TimeUnixNano, S::Int, true),
        (
            SpanEvent,
            "dropped_attributes_count",
            F::DroppedAttributesCount,
            S::Int,
            true,
        ),
        (Metric, "name", F::Name, S::String, true),
        (Metric, "description", F::Description, S::String, true),
        (Metric, "unit", F::Unit, S::String, true),
        (Metric, "type", F::Type, S::Int, false),
        (
            Metric,
            "aggregation_temporality",
            F::AggregationTemporality,
            S::Int,
            true,
        ),
        (Metric, "is_monotonic", F::IsMonotonic, S::Bool, true),
        (DataPoint, "attributes", F::Attributes, S::Map, true),
        (
            DataPoint,
            "start_time_unix_nano",
            F::StartTimeUnixNano,
            S::Int,
            true,
        ),
        (DataPoint, "time_unix_nano", F::TimeUnixNano, S::Int, true),
        (DataPoint, "value_double", F::ValueDouble, S::Double, true),
        (DataPoint, "value_int", F::ValueInt, S::Int, true),
        (DataPoint, "flags", F::Flags, S::Int, true),
        (DataPoint, "count", F::Count, S::Int, true),
        (DataPoint, "sum", F::Sum, S::Double, true),
        (Log, "body", F::Body, S::Any, true),
        (Log, "attributes", F::Attributes, S::Map, true),
        (Log, "severity_number", F::SeverityNumber, S::Int, true),
        (Log, "severity_text", F::SeverityText, S::String, true),
        (Log, "time_unix_nano", F::TimeUnixNano, S::Int, true),
        (
            Log,
            "observed_time_unix_nano",
            F::ObservedTimeUnixNano,
            S::Int,
            true,
        ),
        (Log, "trace_id", F::TraceId, S::Bytes, true),
        (Log, "trace_id.string", F::TraceIdString, S::String, true),
        (Log, "span_id", F::SpanId, S::Bytes, true),
        (Log, "span_id.string", F::SpanIdString, S::String, true),
        (Log, "flags", F::Flags, S::Int, true),
        (
            Log,
            "dropped_attributes_count",
            F::DroppedAttributesCount,
            S::Int,
            true,
        ),
        (Log, "event_name", F::EventName, S::String, true),
    ]
};

/// A resolved path: which level, which field, which keys below it.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub context: Context,
    pub field: Field,
    pub shape: Shape,
    pub writable: bool,
    pub keys: Vec<Key>,
    /// As written, for messages.
    pub text: String,
}

/// The field names of a context, for messages.
pub fn field_names(context: Context) -> Vec<&'static str> {
    FIELDS
        .iter()
        .filter(|(c, ..)| *c == context)
        .map(|(_, name, ..)| *name)
        .collect()
}

/// Resolves `path` for a statement running in `context`.
pub fn resolve(context: Context, path: &PathExpr, offset: usize) -> Result<Path, CompileError> {
    let text = path.text();
    let (level, rest) = match Context::parse(&path.names[0]) {
        Some(prefix) if path.names.len() > 1 => {
            if !context.reaches().contains(&prefix) {
                return Err(CompileError::new(
                    offset,
                    format!(
                        "`{text}` is not available in the {} context (statements there run once per {}); expected paths into {}",
                        context.as_str(),
                        context.as_str(),
                        context
                            .reaches()
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            (prefix, &path.names[1..])
        }
        _ => (context, &path.names[..]),
    };
    let written = rest.join(".");
    let Some((_, _, field, shape, writable)) = FIELDS
        .iter()
        .find(|(c, name, ..)| *c == level && *name == written)
    else {
        return Err(CompileError::new(
            offset,
            format!(
                "unknown path `{text}`: the {} context has {}",
                level.as_str(),
                field_names(level).join(", ")
            ),
        ));
    };
    if !path.keys.is_empty() && !matches!(shape, Shape::Map | Shape::Any) {
        return Err(CompileError::new(
            path.keys[0].offset,
            format!(
                "`{}` cannot be indexed: only attribute maps and log bodies take keys",
                path.names.join(".")
            ),
        ));
    }
    if let Some(first) = path.keys.first()
        && *shape == Shape::Map
        && matches!(first.node, Key::Int(_))
    {
        return Err(CompileError::new(
            first.offset,
            format!("`{text}`: attribute maps take string keys, not integers"),
        ));
    }
    Ok(Path {
        context: level,
        field: *field,
        shape: *shape,
        writable: *writable,
        keys: path.keys.iter().map(|k| k.node.clone()).collect(),
        text,
    })
}

impl Path {
    /// Whether the path denotes a map (a target for map editors), as far
    /// as compile time can tell: attribute maps, and anything under keys
    /// or a log body, which may hold one at run time.
    pub fn may_be_map(&self) -> bool {
        matches!(self.shape, Shape::Map | Shape::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ottl::ast::Expr;
    use crate::ottl::grammar::parse_condition;

    fn path_of(text: &str) -> PathExpr {
        match parse_condition(text).unwrap() {
            crate::ottl::ast::BoolExpr::Value(v) => match v.node {
                Expr::Path(p) => p,
                other => panic!("not a path: {other:?}"),
            },
            other => panic!("not a value: {other:?}"),
        }
    }

    #[test]
    fn resolves_prefixed_and_unprefixed_paths() {
        let p = resolve(
            Context::Span,
            &path_of(r#"resource.attributes["service.name"]"#),
            0,
        )
        .unwrap();
        assert_eq!((p.context, p.field), (Context::Resource, Field::Attributes));
        let p = resolve(Context::Span, &path_of("status.code"), 0).unwrap();
        assert_eq!((p.context, p.field), (Context::Span, Field::StatusCode));
        let p = resolve(Context::Span, &path_of("span.name"), 0).unwrap();
        assert_eq!((p.context, p.field), (Context::Span, Field::Name));
        let p = resolve(Context::DataPoint, &path_of("metric.name"), 0).unwrap();
        assert_eq!((p.context, p.field), (Context::Metric, Field::Name));
        let p = resolve(Context::Log, &path_of("instrumentation_scope.name"), 0).unwrap();
        assert_eq!((p.context, p.field), (Context::Scope, Field::Name));
    }

    #[test]
    fn refuses_paths_the_context_lacks() {
        let e = resolve(Context::Span, &path_of("spanevent.name"), 3).unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(
            e.message.contains("not available in the span context"),
            "{}",
            e.message
        );
        let e = resolve(Context::Log, &path_of("severity"), 0).unwrap_err();
        assert!(
            e.message.contains("unknown path `severity`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("severity_number"), "{}", e.message);
        let e = resolve(Context::Span, &path_of(r#"name["x"]"#), 0).unwrap_err();
        assert!(e.message.contains("cannot be indexed"), "{}", e.message);
    }
}
