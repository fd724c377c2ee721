//! The `transform` and `filter` processors on real SDK data: an app
//! instrumented with the OpenTelemetry SDK sends spans, metrics and logs
//! over gRPC through sidewatch to a real OTLP backend; what arrives has
//! been edited by OTTL statements and thinned by OTTL conditions.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::logs::{
    AnyValue as LogValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_proto::tonic::common::v1::KeyValue as ProtoKeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_sdk::Resource;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, start};

const SPANS: usize = 12;
const LOGS: usize = 10;

fn attribute<'a>(attributes: &'a [ProtoKeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(value: &str) -> Value {
    Value::StringValue(value.into())
}

fn config(backend: &str) -> String {
    format!(
        r##"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
processors:
  batch: {{ timeout: 50ms }}
  transform:
    error_mode: ignore
    trace_statements:
      - set(span.attributes["env"], "prod") where resource.attributes["service.name"] == "shop"
      - replace_pattern(span.attributes["http.url"], "token=[^&]*", "token=***")
      - set(span.name, ConvertCase(span.name, "upper")) where span.kind == SPAN_KIND_SERVER
      - context: span
        statements:
          - delete_key(attributes, "secret")
          - set(attributes["route.parts"], Split(attributes["http.route"], "/"))
          - set(attributes["index.text"], Concat(["#", String(attributes["index"])], ""))
    metric_statements:
      - set(metric.name, Concat([metric.name, "total"], "_"))
    log_statements:
      - set(log.attributes["index.double"], Double(log.attributes["index"]))
      - keep_keys(log.attributes, ["index", "index.double"])
  filter:
    traces:
      span:
        - attributes["http.route"] == "/health"
    metrics:
      datapoint:
        - attributes["route"] == "/b"
    logs:
      log_record:
        - severity_number < SEVERITY_NUMBER_WARN
exporters:
  otlp:
    endpoint: {backend}
    retry_on_failure: {{ initial_interval: 50ms, max_interval: 200ms }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    traces: {{ receivers: [otlp], processors: [transform, filter, batch], exporters: [otlp] }}
    metrics: {{ receivers: [otlp], processors: [filter, transform, batch], exporters: [otlp] }}
    logs: {{ receivers: [otlp], processors: [transform, filter, batch], exporters: [otlp] }}
"##
    )
}

/// SPANS spans (every third a /health server span), a counter on three
/// routes, and LOGS logs alternating INFO and WARN.
fn send_with_sdk(grpc: String) {
    let resource = Resource::builder().with_service_name("shop").build();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(grpc.clone())
        .build()
        .expect("span exporter");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.clone())
        .build();
    let tracer = provider.tracer("ottl-test");
    for i in 0..SPANS {
        let health = i.is_multiple_of(3);
        let mut span = tracer
            .span_builder(format!("get-{i}"))
            .with_kind(if i.is_multiple_of(2) {
                SpanKind::Server
            } else {
                SpanKind::Client
            })
            .start(&tracer);
        span.set_attribute(KeyValue::new("index", i as i64));
        span.set_attribute(KeyValue::new("secret", "hunter2"));
        span.set_attribute(KeyValue::new(
            "http.route",
            if health { "/health" } else { "/orders/id" },
        ));
        span.set_attribute(KeyValue::new(
            "http.url",
            format!("https://shop/orders?token=abc{i}&page=2"),
        ));
        span.end();
    }
    provider.force_flush().expect("flush spans");
    provider.shutdown().expect("shutdown tracer provider");

    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(grpc.clone())
        .build()
        .expect("metric exporter");
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(resource.clone())
        .build();
    let counter = meters.meter("ottl-test").u64_counter("requests").build();
    for route in ["/a", "/b", "/c"] {
        counter.add(5, &[KeyValue::new("route", route)]);
    }
    meters.force_flush().expect("flush metrics");
    meters.shutdown().expect("shutdown meter provider");

    let exporter = opentelemetry_otlp::LogExporter::builder()
        .with_tonic()
        .with_endpoint(grpc)
        .build()
        .expect("log exporter");
    let loggers = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let logger = loggers.logger("ottl-test");
    for i in 0..LOGS {
        let mut record = logger.create_log_record();
        record.set_body(LogValue::from(format!("log {i}")));
        record.set_severity_number(if i.is_multiple_of(2) {
            Severity::Info
        } else {
            Severity::Warn
        });
        record.add_attribute("index", i as i64);
        record.add_attribute("user.email", "someone@example.com");
        logger.emit(record);
    }
    loggers.force_flush().expect("flush logs");
    loggers.shutdown().expect("shutdown logger provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_edits_and_filter_drops_sdk_telemetry() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&config(&backend.url())).await;
    let grpc = format!("http://{}", address(&collector, "otlp/grpc"));
    tokio::task::spawn_blocking(move || send_with_sdk(grpc))
        .await
        .unwrap();

    let kept_spans = (0..SPANS).filter(|i| !i.is_multiple_of(3)).count();
    let recorded = backend.recorded.clone();
    let arrived = wait_until(Duration::from_secs(10), || {
        recorded.span_count() >= kept_spans
            && recorded.data_point_count() >= 2
            && recorded.log_record_count() >= LOGS / 2
    })
    .await;
    assert!(
        arrived,
        "backend got {} spans, {} points, {} logs",
        recorded.span_count(),
        recorded.data_point_count(),
        recorded.log_record_count()
    );
    // Anything the filter failed to drop would have come in the same requests.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Spans: /health dropped; the others edited.
    assert_eq!(recorded.span_count(), kept_spans);
    let mut seen = BTreeMap::new();
    for span in recorded
        .traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        let Some(Value::IntValue(i)) = attribute(&span.attributes, "index") else {
            panic!("span {} lost its index", span.name)
        };
        let i = *i as usize;
        assert!(!i.is_multiple_of(3), "a /health span was not dropped");
        let expected_name = if i.is_multiple_of(2) {
            format!("GET-{i}")
        } else {
            format!("get-{i}")
        };
        assert_eq!(span.name, expected_name);
        assert_eq!(attribute(&span.attributes, "env"), Some(&text("prod")));
        assert_eq!(attribute(&span.attributes, "secret"), None);
        assert_eq!(
            attribute(&span.attributes, "http.url"),
            Some(&text("https://shop/orders?token=***&page=2"))
        );
        assert_eq!(
            attribute(&span.attributes, "index.text"),
            Some(&text(&format!("#{i}")))
        );
        let Some(Value::ArrayValue(parts)) = attribute(&span.attributes, "route.parts") else {
            panic!("no route.parts on {}", span.name)
        };
        let parts: Vec<_> = parts
            .values
            .iter()
            .map(|v| v.value.clone().unwrap())
            .collect();
        assert_eq!(parts, vec![text(""), text("orders"), text("id")]);
        seen.insert(i, ());
    }
    assert_eq!(seen.len(), kept_spans);

    // Metrics: the /b point dropped, the metric renamed.
    let mut routes = Vec::new();
    for metric in recorded
        .metrics
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
    {
        assert_eq!(metric.name, "requests_total");
        let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Sum(sum)) = &metric.data
        else {
            panic!("not a sum")
        };
        for point in &sum.data_points {
            routes.push(attribute(&point.attributes, "route").cloned().unwrap());
        }
    }
    routes.sort_by_key(|v| format!("{v:?}"));
    routes.dedup();
    assert_eq!(routes, vec![text("/a"), text("/c")]);

    // Logs: INFO dropped; attributes narrowed to two, one converted.
    assert_eq!(recorded.log_record_count(), LOGS / 2);
    for log in recorded
        .logs
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
    {
        assert_eq!(log.severity_number, Severity::Warn as i32);
        let keys: Vec<&str> = log.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, vec!["index", "index.double"]);
        let Some(Value::IntValue(i)) = attribute(&log.attributes, "index") else {
            panic!("no index")
        };
        assert_eq!(
            attribute(&log.attributes, "index.double"),
            Some(&Value::DoubleValue(*i as f64))
        );
    }
    collector.shutdown().await;
    backend.stop().await;
}
