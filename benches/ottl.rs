//! The transform and filter processors per span: a batch of 1000 spans
//! with six attributes through a typical transform config (set with a
//! where clause, replace_pattern, delete_key, a converter) and a filter,
//! compiled from YAML as `sidewatch run` would.
//!
//!   cargo bench --bench ottl

use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use sidewatch::components::processor_as;
use sidewatch::processors::Processor;
use sidewatch::processors::filter::{FilterConfig, FilterProcessor};
use sidewatch::processors::transform::{TransformConfig, TransformProcessor};
use sidewatch::signal::Batch;

const SPANS: usize = 1000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn request() -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop"), kv("host.name", "a")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..SPANS)
                    .map(|i| Span {
                        name: format!("GET /orders/{}", i % 50),
                        kind: 2,
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        attributes: vec![
                            kv(
                                "http.route",
                                if i % 10 == 0 {
                                    "/health"
                                } else {
                                    "/orders/{id}"
                                },
                            ),
                            kv("http.method", "GET"),
                            kv(
                                "http.url",
                                &format!("https://shop/orders/{i}?token=secret{i}&page=2"),
                            ),
                            kv("user.email", "someone@example.com"),
                            kv("net.peer.name", "10.0.0.1"),
                            kv("thread.name", "worker-1"),
                        ],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn processor(body: &str) -> Box<dyn Processor> {
    let yaml = format!(
        "receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }} }}\nprocessors:\n  p:\n{body}\nexporters: {{ debug: {{}} }}\nservice: {{ pipelines: {{ traces: {{ receivers: [otlp], processors: [p], exporters: [debug] }} }} }}\n"
    );
    // `p` has no type: the bench names it by its body's first key.
    let kind = if body.contains("trace_statements") {
        "transform"
    } else {
        "filter"
    };
    let yaml = yaml
        .replace("  p:\n", &format!("  {kind}:\n"))
        .replace("[p]", &format!("[{kind}]"));
    let loaded = sidewatch::plan::load_str(&yaml, "bench").unwrap_or_else(|e| panic!("{e}"));
    let config = loaded.plan.processors.values().next().unwrap();
    if let Some(c) = processor_as::<TransformConfig>(config) {
        Box::new(TransformProcessor::new(c.clone()))
    } else {
        Box::new(FilterProcessor::new(
            processor_as::<FilterConfig>(config).unwrap().clone(),
        ))
    }
}

fn run(c: &mut Criterion, name: &str, body: &str) {
    let mut processor = processor(body);
    let input = request();
    let mut group = c.benchmark_group("ottl");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(1);
            // A fresh, unshared batch each time: make_mut does not copy.
            let batch = Batch::Traces(Arc::new(input.clone()));
            processor.process(batch, SystemTime::UNIX_EPOCH, &mut out);
            black_box(out)
        })
    });
    group.finish();
}

fn clone_only(c: &mut Criterion) {
    let input = request();
    let mut group = c.benchmark_group("ottl");
    group.throughput(Throughput::Elements(SPANS as u64));
    group.bench_function("clone_batch_baseline", |b| {
        b.iter(|| black_box(Batch::Traces(Arc::new(input.clone()))))
    });
    group.finish();
}

fn transform(c: &mut Criterion) {
    run(
        c,
        "transform_4_statements",
        r#"    trace_statements:
      - set(span.attributes["env"], "prod") where resource.attributes["service.name"] == "shop"
      - replace_pattern(span.attributes["http.url"], "token=[^&]*", "token=***")
      - delete_key(span.attributes, "user.email")
      - set(span.attributes["route.kind"], ConvertCase(span.attributes["http.method"], "lower")) where span.kind == SPAN_KIND_SERVER"#,
    );
}

fn filter(c: &mut Criterion) {
    run(
        c,
        "filter_2_conditions",
        r#"    traces:
      span:
        - attributes["http.route"] == "/health"
        - IsMatch(name, "^OPTIONS ")"#,
    );
}

criterion_group!(benches, clone_only, transform, filter);
criterion_main!(benches);
