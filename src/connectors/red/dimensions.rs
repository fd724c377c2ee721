//! Which series a span counts towards: the values of the configured
//! dimensions, read from the span, then its resource. Pseudo-dimensions:
//! `span.name`, `span.kind`, `status.class` (`2xx`..`5xx` from the HTTP
//! status code, else `ok` / `error` from the span status), and
//! `operation` (`http.route` when the span has one, else the span name).

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};

pub(crate) fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        _ => return None,
    })
}

fn http_status(span: &Span) -> Option<i64> {
    ["http.response.status_code", "http.status_code"]
        .iter()
        .find_map(|key| {
            let value = span
                .attributes
                .iter()
                .find(|kv| kv.key == *key)?
                .value
                .as_ref()?
                .value
                .as_ref()?;
            match value {
                any_value::Value::IntValue(i) => Some(*i),
                any_value::Value::StringValue(s) => s.parse().ok(),
                _ => None,
            }
        })
}

/// Span status ERROR, or an HTTP 5xx answer.
pub fn is_error(span: &Span) -> bool {
    let status_error = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    status_error || http_status(span).is_some_and(|code| (500..600).contains(&code))
}

pub fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
        SpanKind::Unspecified => "unspecified",
    }
}

pub fn value(dimension: &str, span: &Span, resource: &[KeyValue]) -> String {
    match dimension {
        "span.name" => span.name.clone(),
        "span.kind" => kind_name(span.kind).to_string(),
        "operation" => text(&span.attributes, "http.route").unwrap_or_else(|| span.name.clone()),
        "status.class" => match http_status(span) {
            Some(code) if (100..600).contains(&code) => format!("{}xx", code / 100),
            _ if is_error(span) => "error".to_string(),
            _ => "ok".to_string(),
        },
        key => text(&span.attributes, key)
            .or_else(|| text(resource, key))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::trace::v1::Status;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn pseudo_dimensions() {
        let span = Span {
            name: "GET".into(),
            kind: SpanKind::Server as i32,
            attributes: vec![
                kv(
                    "http.route",
                    any_value::Value::StringValue("/a/{id}".into()),
                ),
                kv("http.response.status_code", any_value::Value::IntValue(503)),
            ],
            ..Default::default()
        };
        let resource = vec![kv(
            "service.name",
            any_value::Value::StringValue("shop".into()),
        )];
        assert_eq!(value("operation", &span, &resource), "/a/{id}");
        assert_eq!(value("status.class", &span, &resource), "5xx");
        assert_eq!(value("span.kind", &span, &resource), "server");
        assert_eq!(value("service.name", &span, &resource), "shop");
        assert!(is_error(&span));
        let failed = Span {
            status: Some(Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(value("status.class", &failed, &[]), "error");
        assert_eq!(value("status.class", &Span::default(), &[]), "ok");
    }
}
