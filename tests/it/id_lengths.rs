//! Trace and span ids of the wrong length (issue 13, item 6): the sidewatch
//! binary refuses them with INVALID_ARGUMENT / 400 naming the field, over
//! gRPC and HTTP (protobuf and JSON), both where requests pass through
//! encoded (the wire scanner) and where a connector decodes them; nothing
//! of a refused request reaches the backend, and valid requests still do.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{Span, span::Link};
use prost::Message;
use tonic::Code;

use crate::backend::{Backend, wait_until};
use crate::harness::{Sidewatch, connect_traces, free_port, trace_request};

/// (case, the span, the field the answer must name)
fn bad_spans() -> Vec<(String, Span, &'static str)> {
    let good = trace_request("bad", 1).resource_spans[0].scope_spans[0].spans[0].clone();
    let mut cases = Vec::new();
    for len in [0, 3, 17, 32] {
        cases.push((
            format!("trace_id of {len} bytes"),
            Span {
                trace_id: vec![7; len],
                ..good.clone()
            },
            "Span.trace_id",
        ));
    }
    for len in [0, 5, 16] {
        cases.push((
            format!("span_id of {len} bytes"),
            Span {
                span_id: vec![7; len],
                ..good.clone()
            },
            "Span.span_id",
        ));
    }
    cases.push((
        "parent_span_id of 3 bytes".into(),
        Span {
            parent_span_id: vec![7; 3],
            ..good.clone()
        },
        "Span.parent_span_id",
    ));
    cases.push((
        "a link's span_id of 4 bytes".into(),
        Span {
            links: vec![Link {
                trace_id: vec![1; 16],
                span_id: vec![7; 4],
                ..Default::default()
            }],
            ..good
        },
        "Span.Link.span_id",
    ));
    cases
}

fn with_span(span: Span) -> ExportTraceServiceRequest {
    let mut request = trace_request("bad", 1);
    request.resource_spans[0].scope_spans[0].spans[0] = span;
    request
}

fn logs(trace_id: Vec<u8>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    trace_id,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The config: `decoded` puts the red connector on the traces pipeline,
/// so requests are decoded; otherwise they pass through encoded.
fn config(grpc: u16, http: u16, backend: &str, decoded: bool) -> String {
    let (connectors, exporters, extra) = if decoded {
        (
            "connectors: { red: {} }",
            "[otlp, red]",
            "metrics: { receivers: [red], exporters: [debug] }",
        )
    } else {
        ("", "[otlp]", "")
    };
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:{grpc} }}
      http: {{ endpoint: 127.0.0.1:{http} }}
{connectors}
exporters:
  otlp: {{ endpoint: {backend}, retry_on_failure: {{ initial_interval: 50ms }} }}
  debug: {{}}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: {exporters} }}
    logs: {{ receivers: [otlp], exporters: [otlp] }}
    {extra}
"#
    )
}

/// The `message` of an OTLP/HTTP error body (JSON or protobuf Status).
fn error_message(body: &[u8], json: bool) -> String {
    if json {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        value["message"].as_str().unwrap_or_default().to_string()
    } else {
        #[derive(Clone, PartialEq, Message)]
        struct RpcStatus {
            #[prost(int32, tag = "1")]
            code: i32,
            #[prost(string, tag = "2")]
            message: String,
        }
        RpcStatus::decode(body).unwrap().message
    }
}

async fn refuses_wrong_lengths(decoded: bool) {
    let path = if decoded { "decoded" } else { "pass-through" };
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let (grpc, http) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sidewatch.yaml");
    std::fs::write(&file, config(grpc, http, &backend.url(), decoded)).unwrap();
    let _sidewatch = Sidewatch::run(&file);
    let mut traces = connect_traces(grpc).await;
    let http_client = reqwest::Client::new();
    let traces_url = format!("http://127.0.0.1:{http}/v1/traces");

    for (case, span, field) in bad_spans() {
        let status = traces
            .export(with_span(span.clone()))
            .await
            .expect_err(&format!("{path}, gRPC, {case}: accepted"));
        assert_eq!(status.code(), Code::InvalidArgument, "{path}, gRPC, {case}");
        assert!(
            status.message().contains(field),
            "{path}, gRPC, {case}: {:?} does not name {field}",
            status.message()
        );
        let response = http_client
            .post(&traces_url)
            .header("content-type", "application/x-protobuf")
            .body(with_span(span).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{path}, HTTP, {case}");
        let message = error_message(&response.bytes().await.unwrap(), false);
        assert!(message.contains(field), "{path}, HTTP, {case}: {message:?}");
    }

    // JSON: a 4-hex-digit traceId (2 bytes).
    let json = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"abcd","spanId":"0102030405060708","name":"short"}]}]}]}"#;
    let response = http_client
        .post(&traces_url)
        .header("content-type", "application/json")
        .body(json.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400, "{path}, JSON");
    let message = error_message(&response.bytes().await.unwrap(), true);
    assert!(
        message.contains("Span.trace_id"),
        "{path}, JSON: {message:?}"
    );

    // Log records may have no ids, but not ids of the wrong length.
    let mut logs_client = LogsServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .unwrap();
    let status = logs_client.export(logs(vec![1; 4])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{path}, log record");
    assert!(
        status.message().contains("LogRecord.trace_id"),
        "{:?}",
        status.message()
    );
    logs_client
        .export(logs(Vec::new()))
        .await
        .expect("a log record without ids");
    logs_client
        .export(logs(vec![1; 16]))
        .await
        .expect("a log record with a trace id");

    // Valid spans, including a child with an 8-byte parent, pass.
    let mut valid = trace_request("good", 3);
    valid.resource_spans[0].scope_spans[0].spans[1].parent_span_id = vec![9; 8];
    traces.export(valid).await.expect("valid spans");
    let recorded = backend.recorded.clone();
    assert!(
        wait_until(Duration::from_secs(10), || recorded.span_count() == 3
            && recorded.log_record_count() == 2)
        .await,
        "{path}: {} spans, {} log records at the backend",
        recorded.span_count(),
        recorded.log_record_count()
    );
    assert_eq!(
        recorded.span_names(),
        ["good-0", "good-1", "good-2"]
            .map(String::from)
            .into_iter()
            .collect(),
        "{path}: nothing of a refused request is forwarded"
    );
    backend.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_length_ids_are_refused_naming_the_field_when_passed_through() {
    refuses_wrong_lengths(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_length_ids_are_refused_naming_the_field_when_decoded() {
    refuses_wrong_lengths(true).await;
}
