use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

fn config(yaml: &str) -> SpanMetricsConfig {
    yaml_serde::from_str(yaml).unwrap()
}

fn span(name: &str, kind: SpanKind, millis: u64, error: bool, attributes: Vec<KeyValue>) -> Span {
    Span {
        name: name.into(),
        kind: kind as i32,
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + millis * 1_000_000,
        status: error.then(|| Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        }),
        attributes,
        ..Default::default()
    }
}

fn batch(service: Option<&str>, spans: Vec<Span>) -> Batch {
    let attributes = service
        .map(|s| vec![string_kv("service.name", s), string_kv("host.name", "h1")])
        .unwrap_or_default();
    Batch::Traces(
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .into(),
    )
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn text(attributes: &[KeyValue]) -> String {
    crate::otlp::value::attributes_text(attributes)
}

#[test]
fn counts_calls_and_durations_per_series_with_the_collectors_names() {
    let mut connector = SpanMetricsConnector::new(config(
        "dimensions: [ { name: http.method, default: GET }, { name: http.route } ]",
    ));
    let route = vec![string_kv("http.route", "/a")];
    connector.record(
        &batch(
            Some("shop"),
            vec![
                span("GET /a", SpanKind::Server, 3, false, route.clone()),
                span("GET /a", SpanKind::Server, 30, false, route.clone()),
                span("GET /a", SpanKind::Server, 3000, true, route),
                span("SELECT", SpanKind::Client, 1, false, vec![]),
            ],
        ),
        at(10),
    );
    connector.record(
        &batch(None, vec![span("x", SpanKind::Server, 1, false, vec![])]),
        at(10),
    );
    let request = connector.flush_metrics(at(70)).unwrap();
    assert_eq!(request.resource_metrics.len(), 1);
    let resource = &request.resource_metrics[0];
    assert_eq!(
        text(&resource.resource.as_ref().unwrap().attributes),
        text(&[
            string_kv("service.name", "shop"),
            string_kv("host.name", "h1")
        ])
    );
    let scope = &resource.scope_metrics[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, "spanmetricsconnector");
    let calls = &scope.metrics[0];
    assert_eq!(calls.name, "traces.span.metrics.calls");
    let Some(Data::Sum(sum)) = &calls.data else {
        panic!("calls is a sum")
    };
    assert!(sum.is_monotonic);
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let mut points: Vec<(String, i64)> = sum
        .data_points
        .iter()
        .map(|p| {
            let Some(number_data_point::Value::AsInt(v)) = p.value else {
                panic!()
            };
            (text(&p.attributes), v)
        })
        .collect();
    points.sort();
    let series = |name: &str, kind: &str, status: &str, route: bool| {
        let mut attributes = vec![
            string_kv("service.name", "shop"),
            string_kv("span.name", name),
            string_kv("span.kind", kind),
            string_kv("status.code", status),
            string_kv("http.method", "GET"),
        ];
        if route {
            attributes.push(string_kv("http.route", "/a"));
        }
        text(&attributes)
    };
    let mut expected = vec![
        (
            series("GET /a", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET", true),
            2,
        ),
        (
            series("GET /a", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR", true),
            1,
        ),
        (
            series("SELECT", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET", false),
            1,
        ),
    ];
    expected.sort();
    assert_eq!(points, expected);
    let duration = &scope.metrics[1];
    assert_eq!(duration.name, "traces.span.metrics.duration");
    assert_eq!(duration.unit, "ms");
    let Some(Data::Histogram(histogram)) = &duration.data else {
        panic!("duration is a histogram")
    };
    let ok = histogram
        .data_points
        .iter()
        .find(|p| text(&p.attributes) == expected.iter().find(|e| e.1 == 2).unwrap().0)
        .unwrap();
    assert_eq!(
        ok.explicit_bounds,
        [
            2.0, 4.0, 6.0, 8.0, 10.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1000.0, 1400.0, 2000.0,
            5000.0, 10000.0, 15000.0
        ]
    );
    // 3 ms in (2, 4], 30 ms in (10, 50].
    assert_eq!(
        ok.bucket_counts,
        [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!((ok.count, ok.sum), (2, Some(33.0)));
    assert!(ok.exemplars.is_empty(), "exemplars are off by default");
}

#[test]
fn delta_temporality_resets_and_sends_only_series_with_spans() {
    let mut connector = SpanMetricsConnector::new(config(
        "{ aggregation_temporality: AGGREGATION_TEMPORALITY_DELTA, namespace: '', exemplars: { enabled: true }, histogram: { unit: s, exponential: { max_size: 10 } } }",
    ));
    connector.record(
        &batch(
            Some("a"),
            vec![span("op", SpanKind::Server, 500, false, vec![])],
        ),
        at(1),
    );
    let first = connector.flush_metrics(at(60)).unwrap();
    let metrics = &first.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(metrics[0].name, "calls");
    assert_eq!(metrics[1].name, "duration");
    assert_eq!(metrics[1].unit, "s");
    let Some(Data::ExponentialHistogram(h)) = &metrics[1].data else {
        panic!("exponential")
    };
    assert_eq!(
        h.aggregation_temporality,
        AggregationTemporality::Delta as i32
    );
    let point = &h.data_points[0];
    assert_eq!((point.count, point.sum), (1, Some(0.5)));
    assert_eq!(point.exemplars.len(), 1);
    assert_eq!(point.exemplars[0].trace_id, vec![1; 16]);
    assert!(connector.flush_metrics(at(120)).is_none(), "nothing new");
    connector.record(
        &batch(
            Some("a"),
            vec![span("op", SpanKind::Server, 500, false, vec![])],
        ),
        at(130),
    );
    let third = connector.flush_metrics(at(180)).unwrap();
    let Some(Data::Sum(sum)) = &third.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!()
    };
    assert_eq!(
        sum.data_points[0].value,
        Some(number_data_point::Value::AsInt(1))
    );
    assert_eq!(sum.data_points[0].start_time_unix_nano, 130_000_000_000);
}

#[test]
fn series_beyond_the_cardinality_limit_share_an_overflow_series() {
    let mut connector = SpanMetricsConnector::new(config("aggregation_cardinality_limit: 2"));
    let spans = (0..5)
        .map(|i| span(&format!("op{i}"), SpanKind::Server, 1, false, vec![]))
        .collect();
    connector.record(&batch(Some("a"), spans), at(1));
    assert_eq!(connector.series_count(), 3);
    assert_eq!(connector.overflowed_spans, 3);
    let request = connector.flush_metrics(at(60)).unwrap();
    let Some(Data::Sum(sum)) = &request.resource_metrics[0].scope_metrics[0].metrics[0].data else {
        panic!()
    };
    let overflow = sum
        .data_points
        .iter()
        .find(|p| p.attributes[0].key == "otel.metric.overflow")
        .unwrap();
    assert_eq!(overflow.value, Some(number_data_point::Value::AsInt(3)));
}

#[test]
fn config_errors_name_the_field() {
    let errors = config(
        "{ exclude_dimensions: [span.nam], dimensions: [ { name: span.name } ], histogram: { explicit: { buckets: [10ms, 2ms] }, exponential: {} } }",
    )
    .validate();
    let fields: Vec<String> = errors.iter().map(|(p, _)| p.join(".")).collect();
    assert_eq!(
        fields,
        [
            "histogram",
            "histogram.explicit.buckets",
            "exclude_dimensions.[0]",
            "dimensions.[0].name"
        ]
    );
}

#[test]
fn events_are_counted_per_span_series_and_event_dimension() {
    use opentelemetry_proto::tonic::trace::v1::span::Event;
    let mut connector = SpanMetricsConnector::new(config(
        "events: { enabled: true, dimensions: [ { name: exception.type }, { name: severity, default: low } ] }",
    ));
    let event = |ty: &str| Event {
        name: "exception".into(),
        attributes: vec![string_kv("exception.type", ty)],
        ..Default::default()
    };
    let mut failing = span("GET /a", SpanKind::Server, 5, true, vec![]);
    failing.events = vec![event("Timeout"), event("Timeout"), event("IOError")];
    let mut other = span("GET /b", SpanKind::Server, 5, false, vec![]);
    other.events = vec![event("Timeout")];
    let quiet = span("GET /c", SpanKind::Server, 5, false, vec![]);
    connector.record(&batch(Some("api"), vec![failing, other, quiet]), at(1));
    let request = connector.flush_metrics(at(60)).unwrap();
    let metrics = &request.resource_metrics[0].scope_metrics[0].metrics;
    let events = metrics
        .iter()
        .find(|m| m.name == "traces.span.metrics.events")
        .expect("the events metric");
    let Some(Data::Sum(sum)) = &events.data else {
        panic!("a sum: {events:?}")
    };
    assert!(sum.is_monotonic);
    let counts: Vec<(String, i64)> = sum
        .data_points
        .iter()
        .map(|p| {
            let Some(number_data_point::Value::AsInt(v)) = p.value else {
                panic!("int")
            };
            (text(&p.attributes), v)
        })
        .collect();
    let series = |route: &str, status: &str, ty: &str| {
        format!(
            "{{service.name=api, span.name={route}, span.kind=SPAN_KIND_SERVER, status.code={status}, exception.type={ty}, severity=low}}"
        )
    };
    let mut expected = vec![
        (series("GET /a", "STATUS_CODE_ERROR", "IOError"), 1),
        (series("GET /a", "STATUS_CODE_ERROR", "Timeout"), 2),
        (series("GET /b", "STATUS_CODE_UNSET", "Timeout"), 1),
    ];
    let mut got = counts.clone();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    // Calls still count every span, events or not.
    let calls = metrics
        .iter()
        .find(|m| m.name == "traces.span.metrics.calls")
        .unwrap();
    let Some(Data::Sum(calls)) = &calls.data else {
        panic!()
    };
    assert_eq!(calls.data_points.len(), 3);
    assert_eq!(connector.series_count(), 6);
}

#[test]
fn events_without_dimensions_are_refused() {
    let errors = config("events: { enabled: true }").validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, vec!["events", "dimensions"]);
}
