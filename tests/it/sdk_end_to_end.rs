//! An app instrumented with the official OpenTelemetry SDK sends traces,
//! metrics and logs over gRPC and over HTTP; sidewatch forwards them to a
//! real OTLP backend; every item arrives with its attributes.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::logs::{
    AnyValue as LogValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::common::v1::KeyValue as ProtoKeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use opentelemetry_sdk::Resource;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, forwarding_config, start};

const SPANS: usize = 25;
const LOGS: usize = 12;

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Grpc,
    Http,
}

fn attribute<'a>(attributes: &'a [ProtoKeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

/// Sends SPANS spans, one counter with three attribute sets, and LOGS log
/// records as service `service`, through the SDK's OTLP exporters.
fn send_with_sdk(transport: Transport, grpc: String, http: String, service: &str) {
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .build();
    let span_exporter = match transport {
        Transport::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(grpc.clone())
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build(),
        Transport::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{http}/v1/traces"))
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build(),
    }
    .expect("span exporter");
    let tracer_provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(span_exporter)
        .with_resource(resource.clone())
        .build();
    let tracer = tracer_provider.tracer("sidewatch-test");
    for i in 0..SPANS {
        let mut span = tracer.start(format!("{service}-span-{i}"));
        span.set_attribute(KeyValue::new("index", i as i64));
        span.set_attribute(KeyValue::new("http.route", "/orders/{id}"));
        span.end();
    }
    tracer_provider.force_flush().expect("flush spans");
    tracer_provider
        .shutdown()
        .expect("shutdown tracer provider");

    let metric_exporter = match transport {
        Transport::Grpc => opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(grpc.clone())
            .build(),
        Transport::Http => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(format!("{http}/v1/metrics"))
            .build(),
    }
    .expect("metric exporter");
    let meter_provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_periodic_exporter(metric_exporter)
        .with_resource(resource.clone())
        .build();
    let counter = meter_provider
        .meter("sidewatch-test")
        .u64_counter("requests")
        .build();
    for (route, times) in [("/a", 1u64), ("/b", 2), ("/c", 3)] {
        for _ in 0..times {
            counter.add(10, &[KeyValue::new("route", route)]);
        }
    }
    meter_provider.force_flush().expect("flush metrics");
    meter_provider.shutdown().expect("shutdown meter provider");

    let log_exporter = match transport {
        Transport::Grpc => opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(grpc)
            .build(),
        Transport::Http => opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_endpoint(format!("{http}/v1/logs"))
            .build(),
    }
    .expect("log exporter");
    let logger_provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
        .with_batch_exporter(log_exporter)
        .with_resource(resource)
        .build();
    let logger = logger_provider.logger("sidewatch-test");
    for i in 0..LOGS {
        let mut record = logger.create_log_record();
        record.set_body(LogValue::from(format!("{service} log {i}")));
        record.set_severity_number(Severity::Warn);
        record.add_attribute("index", i as i64);
        logger.emit(record);
    }
    logger_provider.force_flush().expect("flush logs");
    logger_provider
        .shutdown()
        .expect("shutdown logger provider");
}

/// `compression` is the `otlp` exporter's: the backend (tonic, which
/// decompresses) must read what sidewatch compressed itself.
async fn sdk_data_arrives_intact(transport: Transport, compression: &str) {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&forwarding_config(
        &backend.url(),
        &format!("compression: {compression}"),
    ))
    .await;
    let grpc = format!("http://{}", address(&collector, "otlp/grpc"));
    let http = format!("http://{}", address(&collector, "otlp/http"));
    let service = match transport {
        Transport::Grpc => "app-grpc",
        Transport::Http => "app-http",
    };
    let service_name = service.to_string();
    tokio::task::spawn_blocking(move || send_with_sdk(transport, grpc, http, &service_name))
        .await
        .unwrap();

    let recorded = backend.recorded.clone();
    let all_there = wait_until(Duration::from_secs(10), || {
        recorded.span_count() >= SPANS
            && recorded.log_record_count() >= LOGS
            && recorded.data_point_count() >= 3
    })
    .await;
    assert!(
        all_there,
        "backend got {} spans, {} data points, {} logs",
        recorded.span_count(),
        recorded.data_point_count(),
        recorded.log_record_count()
    );

    // Spans: every one, once, with its attributes and resource.
    let mut spans = BTreeMap::new();
    for request in recorded.traces.lock().unwrap().iter() {
        for resource in &request.resource_spans {
            let attrs = &resource.resource.as_ref().unwrap().attributes;
            assert_eq!(
                attribute(attrs, "service.name"),
                Some(&Value::StringValue(service.into()))
            );
            for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                assert_eq!(span.trace_id.len(), 16);
                assert_eq!(
                    attribute(&span.attributes, "http.route"),
                    Some(&Value::StringValue("/orders/{id}".into()))
                );
                let Some(Value::IntValue(index)) = attribute(&span.attributes, "index") else {
                    panic!("span {} lost its index attribute", span.name);
                };
                assert_eq!(span.name, format!("{service}-span-{index}"));
                assert!(
                    spans.insert(*index, span.name.clone()).is_none(),
                    "span {index} arrived twice"
                );
            }
        }
    }
    assert_eq!(spans.len(), SPANS);

    // Metrics: the counter's three series with their sums.
    let mut sums = BTreeMap::new();
    for request in recorded.metrics.lock().unwrap().iter() {
        for metric in request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
        {
            assert_eq!(metric.name, "requests");
            let Some(Data::Sum(sum)) = &metric.data else {
                panic!("requests is not a sum")
            };
            assert!(sum.is_monotonic);
            for point in &sum.data_points {
                let Some(Value::StringValue(route)) = attribute(&point.attributes, "route") else {
                    panic!("no route")
                };
                let Some(number_data_point::Value::AsInt(value)) = point.value else {
                    panic!("not an int")
                };
                sums.insert(route.clone(), value);
            }
        }
    }
    assert_eq!(
        sums,
        BTreeMap::from([("/a".into(), 10), ("/b".into(), 20), ("/c".into(), 30)])
    );

    // Logs: every record with body, severity and attribute.
    let mut bodies = BTreeMap::new();
    for request in recorded.logs.lock().unwrap().iter() {
        for record in request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
        {
            assert_eq!(record.severity_number, 13, "WARN");
            let Some(Value::IntValue(index)) = attribute(&record.attributes, "index") else {
                panic!("no index")
            };
            let Some(Value::StringValue(body)) =
                record.body.as_ref().and_then(|b| b.value.as_ref())
            else {
                panic!("no body")
            };
            assert_eq!(body, &format!("{service} log {index}"));
            bodies.insert(*index, body.clone());
        }
    }
    assert_eq!(bodies.len(), LOGS);

    let report = collector.shutdown().await;
    assert!(report.clean, "{:?}", report.stuck);
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_grpc_arrives_intact_at_the_backend() {
    sdk_data_arrives_intact(Transport::Grpc, "zstd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_http_arrives_intact_at_the_backend() {
    sdk_data_arrives_intact(Transport::Http, "zstd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_data_arrives_intact_through_gzip_export() {
    sdk_data_arrives_intact(Transport::Grpc, "gzip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_data_arrives_intact_without_export_compression() {
    sdk_data_arrives_intact(Transport::Http, "none").await;
}
