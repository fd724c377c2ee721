//! Two sidewatch instances chained over OTLP/HTTP: the first exports with
//! `otlphttp` (protobuf and gzip, then JSON), the second receives over HTTP
//! and forwards over gRPC to the backend. A connector splits the first
//! pipeline in two.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, forwarding_config, start, trace_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_exporter_and_forward_connector_deliver_everything() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let second = start(&forwarding_config(&backend.url(), "")).await;
    let second_http = address(&second, "otlp/http");
    let first = start(&format!(
        r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  otlphttp/proto: {{ endpoint: http://{second_http}, compression: gzip }}
  otlphttp/json: {{ endpoint: http://{second_http}, encoding: json, compression: none }}
connectors:
  forward: {{}}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlphttp/proto, forward] }}
    traces/json: {{ receivers: [forward], exporters: [otlphttp/json] }}
"#
    ))
    .await;
    let mut client =
        TraceServiceClient::connect(format!("http://{}", address(&first, "otlp/grpc")))
            .await
            .unwrap();
    for i in 0..4 {
        client
            .export(trace_request(&format!("chain-{i}"), 5))
            .await
            .unwrap();
    }
    // Each span arrives twice: once through each exporter of the first instance.
    let recorded = backend.recorded.clone();
    assert!(
        wait_until(Duration::from_secs(10), || recorded.span_count() == 40).await,
        "got {}",
        recorded.span_count()
    );
    let mut names: Vec<String> = recorded
        .traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
        })
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    let mut expected: Vec<String> = (0..4)
        .flat_map(|i| (0..5).map(move |j| format!("chain-{i}-{j}")))
        .flat_map(|name| [name.clone(), name])
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    assert!(first.shutdown().await.clean);
    assert!(second.shutdown().await.clean);
    backend.stop().await;
}

/// `compression: zstd | gzip | none` on `otlphttp`, each to a sidewatch
/// receiver (which refuses a body its Content-Encoding does not describe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlphttp_compresses_with_zstd_gzip_or_none_for_a_sidewatch_receiver() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let second = start(&forwarding_config(&backend.url(), "")).await;
    let second_http = address(&second, "otlp/http");
    let mut expected = 0;
    for compression in ["zstd", "gzip", "none"] {
        let first = start(&format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }}
exporters:
  otlphttp: {{ endpoint: http://{second_http}, compression: {compression} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlphttp] }}
"#
        ))
        .await;
        let mut client =
            TraceServiceClient::connect(format!("http://{}", address(&first, "otlp/grpc")))
                .await
                .unwrap();
        client
            .export(trace_request(compression, 5))
            .await
            .expect("accepted");
        expected += 5;
        let arrived = wait_until(Duration::from_secs(10), || {
            backend.recorded.span_count() == expected
        })
        .await;
        assert!(
            arrived,
            "{compression}: {} spans",
            backend.recorded.span_count()
        );
        assert!(
            backend
                .recorded
                .span_names()
                .contains(&format!("{compression}-4"))
        );
        first.shutdown().await;
    }
    second.shutdown().await;
}
