//! Zipkin spans to OTLP, as the Collector's zipkin receiver converts them:
//! 64-bit trace ids padded to 128 with leading zeros; `kind` to the OTLP
//! kind; `localEndpoint.serviceName` to the resource's `service.name`
//! (spans grouped by it); endpoint addresses to `net.host.ip`/`port` and
//! `net.peer.ip`/`port`, the remote service to `peer.service`; tags to
//! string attributes; annotations to events; `otel.status_code` /
//! `otel.status_description`, or else an `error` tag, to the status
//! (those tags are not kept as attributes); `otel.scope.name` and
//! `otel.scope.version` (or the older `otel.library.*`) to the scope.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as OtlpSpan, Status, span, status::StatusCode,
};

use super::model::Span;
use crate::otlp::value::{int_kv, string_kv};

fn kind(kind: &str) -> span::SpanKind {
    match kind.to_ascii_uppercase().as_str() {
        "CLIENT" => span::SpanKind::Client,
        "SERVER" => span::SpanKind::Server,
        "PRODUCER" => span::SpanKind::Producer,
        "CONSUMER" => span::SpanKind::Consumer,
        _ => span::SpanKind::Unspecified,
    }
}

fn status(tags: &mut BTreeMap<String, String>) -> Option<Status> {
    let description = tags.remove("otel.status_description").unwrap_or_default();
    let error = tags.remove("error");
    match tags.remove("otel.status_code").as_deref() {
        Some("ERROR") => Some(Status {
            code: StatusCode::Error as i32,
            message: description,
        }),
        Some("OK") => Some(Status {
            code: StatusCode::Ok as i32,
            message: String::new(),
        }),
        _ => error.map(|e| Status {
            code: StatusCode::Error as i32,
            // `error: true` says only that; other values are the message.
            message: if e.is_empty() || e == "true" {
                description
            } else {
                e
            },
        }),
    }
}

fn convert(mut s: Span) -> (String, InstrumentationScope, OtlpSpan) {
    let mut trace_id = s.trace_id;
    if trace_id.len() == 8 {
        let mut padded = vec![0; 8];
        padded.extend(trace_id);
        trace_id = padded;
    }
    let start = s.timestamp_micros.saturating_mul(1000);
    let end = start.saturating_add(s.duration_micros.saturating_mul(1000));
    let status = status(&mut s.tags);
    let scope = InstrumentationScope {
        name: s
            .tags
            .remove("otel.scope.name")
            .or_else(|| s.tags.remove("otel.library.name"))
            .unwrap_or_default(),
        version: s
            .tags
            .remove("otel.scope.version")
            .or_else(|| s.tags.remove("otel.library.version"))
            .unwrap_or_default(),
        ..Default::default()
    };
    let mut attributes: Vec<_> = s.tags.into_iter().map(|(k, v)| string_kv(k, v)).collect();
    if let Some(ip) = s.local.ip {
        attributes.push(string_kv("net.host.ip", ip));
    }
    if let Some(port) = s.local.port {
        attributes.push(int_kv("net.host.port", port.into()));
    }
    if let Some(remote) = s.remote {
        if !remote.service_name.is_empty() {
            attributes.push(string_kv("peer.service", remote.service_name));
        }
        if let Some(ip) = remote.ip {
            attributes.push(string_kv("net.peer.ip", ip));
        }
        if let Some(port) = remote.port {
            attributes.push(int_kv("net.peer.port", port.into()));
        }
    }
    let span = OtlpSpan {
        trace_id,
        span_id: s.id,
        parent_span_id: s.parent_id,
        name: s.name,
        kind: kind(&s.kind) as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        events: s
            .annotations
            .into_iter()
            .map(|(micros, value)| span::Event {
                time_unix_nano: micros.saturating_mul(1000),
                name: value,
                ..Default::default()
            })
            .collect(),
        status,
        ..Default::default()
    };
    (s.local.service_name, scope, span)
}

/// One resource's spans by scope.
type Scopes = Vec<(InstrumentationScope, Vec<OtlpSpan>)>;

/// The OTLP request for `spans`: one resource per local service, one
/// scope per instrumentation scope, in arrival order.
pub fn to_otlp(spans: Vec<Span>) -> ExportTraceServiceRequest {
    let mut resources: Vec<(String, Scopes)> = Vec::new();
    for span in spans {
        let (service, scope, span) = convert(span);
        let index = match resources.iter().position(|(s, _)| *s == service) {
            Some(i) => i,
            None => {
                resources.push((service, Vec::new()));
                resources.len() - 1
            }
        };
        let scopes = &mut resources[index].1;
        match scopes.iter_mut().find(|(s, _)| *s == scope) {
            Some((_, spans)) => spans.push(span),
            None => scopes.push((scope, vec![span])),
        }
    }
    ExportTraceServiceRequest {
        resource_spans: resources
            .into_iter()
            .map(|(service, scopes)| ResourceSpans {
                resource: Some(Resource {
                    attributes: if service.is_empty() {
                        Vec::new()
                    } else {
                        vec![string_kv("service.name", service)]
                    },
                    ..Default::default()
                }),
                scope_spans: scopes
                    .into_iter()
                    .map(|(scope, spans)| ScopeSpans {
                        scope: Some(scope),
                        spans,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }
}
