//! Trace and span id lengths, as the OTLP specification requires them: a
//! span's `trace_id` is 16 bytes and its `span_id` 8, its `parent_span_id`
//! empty (a root) or 8; a link's ids are 16 and 8; a log record's ids are
//! optional, so empty or 16 and 8.
//!
//! Receivers refuse a decoded request that breaks one of these whole, as
//! the wire scanner (`wire::schema`'s id fields) refuses an encoded one,
//! with the same message naming the field: a backend would refuse it, and
//! with it every other client's data batched alongside.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;

/// One id field's rule: its exact length, and whether empty is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRule {
    pub message: &'static str,
    pub field: &'static str,
    pub len: usize,
    pub empty_allowed: bool,
}

impl IdRule {
    pub fn admits(&self, id: &[u8]) -> bool {
        id.len() == self.len || (self.empty_allowed && id.is_empty())
    }

    /// What the field must be, e.g. "must be 16 bytes".
    pub fn problem(&self) -> &'static str {
        match (self.len, self.empty_allowed) {
            (16, false) => "must be 16 bytes",
            (8, false) => "must be 8 bytes",
            (16, true) => "must be empty or 16 bytes",
            _ => "must be empty or 8 bytes",
        }
    }
}

const fn rule(message: &'static str, field: &'static str, len: usize, empty: bool) -> IdRule {
    IdRule {
        message,
        field,
        len,
        empty_allowed: empty,
    }
}

pub const SPAN_TRACE_ID: IdRule = rule("Span", "trace_id", 16, false);
pub const SPAN_SPAN_ID: IdRule = rule("Span", "span_id", 8, false);
pub const SPAN_PARENT_SPAN_ID: IdRule = rule("Span", "parent_span_id", 8, true);
pub const LINK_TRACE_ID: IdRule = rule("Span.Link", "trace_id", 16, false);
pub const LINK_SPAN_ID: IdRule = rule("Span.Link", "span_id", 8, false);
pub const LOG_TRACE_ID: IdRule = rule("LogRecord", "trace_id", 16, true);
pub const LOG_SPAN_ID: IdRule = rule("LogRecord", "span_id", 8, true);

/// A wrong-length id: which field, how long it was, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}.{}: {} (got {got}, at {at})", rule.message, rule.field, rule.problem())]
pub struct IdError {
    pub rule: IdRule,
    pub got: usize,
    pub at: String,
}

fn check(rule: IdRule, id: &[u8], at: impl FnOnce() -> String) -> Result<(), IdError> {
    if rule.admits(id) {
        Ok(())
    } else {
        Err(IdError {
            rule,
            got: id.len(),
            at: at(),
        })
    }
}

/// The ids of one span and its links.
pub fn span(span: &Span, at: impl Fn() -> String) -> Result<(), IdError> {
    check(SPAN_TRACE_ID, &span.trace_id, &at)?;
    check(SPAN_SPAN_ID, &span.span_id, &at)?;
    check(SPAN_PARENT_SPAN_ID, &span.parent_span_id, &at)?;
    for (l, link) in span.links.iter().enumerate() {
        check(LINK_TRACE_ID, &link.trace_id, || {
            format!("{}.links[{l}]", at())
        })?;
        check(LINK_SPAN_ID, &link.span_id, || {
            format!("{}.links[{l}]", at())
        })?;
    }
    Ok(())
}

/// What a receiver checks in a decoded request before accepting it.
pub trait CheckIds {
    fn check_ids(&self) -> Result<(), IdError>;
}

impl CheckIds for ExportTraceServiceRequest {
    fn check_ids(&self) -> Result<(), IdError> {
        for (r, resource) in self.resource_spans.iter().enumerate() {
            for (s, scope) in resource.scope_spans.iter().enumerate() {
                for (i, one) in scope.spans.iter().enumerate() {
                    span(one, || {
                        format!("resource_spans[{r}].scope_spans[{s}].spans[{i}]")
                    })?;
                }
            }
        }
        Ok(())
    }
}

impl CheckIds for ExportLogsServiceRequest {
    fn check_ids(&self) -> Result<(), IdError> {
        for (r, resource) in self.resource_logs.iter().enumerate() {
            for (s, scope) in resource.scope_logs.iter().enumerate() {
                for (i, record) in scope.log_records.iter().enumerate() {
                    let at = || format!("resource_logs[{r}].scope_logs[{s}].log_records[{i}]");
                    check(LOG_TRACE_ID, &record.trace_id, at)?;
                    check(LOG_SPAN_ID, &record.span_id, at)?;
                }
            }
        }
        Ok(())
    }
}

/// Metrics carry ids only in exemplars, where they are optional.
impl CheckIds for ExportMetricsServiceRequest {
    fn check_ids(&self) -> Result<(), IdError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, span::Link};

    fn traces(span: Span) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn good() -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        }
    }

    #[test]
    fn span_ids_must_have_their_lengths_and_the_error_names_the_field() {
        assert_eq!(traces(good()).check_ids(), Ok(()));
        for len in [0, 3, 17, 32] {
            let err = traces(Span {
                trace_id: vec![1; len],
                ..good()
            })
            .check_ids()
            .unwrap_err();
            assert_eq!(err.rule, SPAN_TRACE_ID);
            assert_eq!(
                err.to_string(),
                format!(
                    "Span.trace_id: must be 16 bytes (got {len}, at resource_spans[0].scope_spans[0].spans[0])"
                )
            );
        }
        for len in [0, 5, 16] {
            let err = traces(Span {
                span_id: vec![1; len],
                ..good()
            })
            .check_ids()
            .unwrap_err();
            assert_eq!(err.rule, SPAN_SPAN_ID);
        }
        let parent = |len| {
            traces(Span {
                parent_span_id: vec![1; len],
                ..good()
            })
            .check_ids()
        };
        assert_eq!(parent(8), Ok(()));
        assert_eq!(parent(3).unwrap_err().rule, SPAN_PARENT_SPAN_ID);
        let link = traces(Span {
            links: vec![Link {
                trace_id: vec![1; 16],
                span_id: vec![1; 4],
                ..Default::default()
            }],
            ..good()
        })
        .check_ids()
        .unwrap_err();
        assert_eq!(link.rule, LINK_SPAN_ID);
        assert!(link.at.ends_with("spans[0].links[0]"), "{}", link.at);
    }

    #[test]
    fn log_record_ids_may_be_empty_but_not_the_wrong_length() {
        let logs = |trace_id: Vec<u8>, span_id: Vec<u8>| ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        trace_id,
                        span_id,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(logs(vec![], vec![]).check_ids(), Ok(()));
        assert_eq!(logs(vec![1; 16], vec![2; 8]).check_ids(), Ok(()));
        assert_eq!(
            logs(vec![1; 4], vec![]).check_ids().unwrap_err().rule,
            LOG_TRACE_ID
        );
        assert_eq!(
            logs(vec![], vec![1; 9]).check_ids().unwrap_err().rule,
            LOG_SPAN_ID
        );
    }
}
