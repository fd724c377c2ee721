//! Receiver authentication: without the right bearer token nothing is
//! admitted (UNAUTHENTICATED / 401), the answer never echoes the presented
//! token, and the right token gets through on both protocols.

use std::time::Duration;

use prost::Message;
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, start, trace_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_right_bearer_token_is_admitted() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0 }}
      http: {{ endpoint: 127.0.0.1:0 }}
    auth: {{ bearer_token: s3cret-token, allow_plaintext: true }}
exporters:
  otlp: {{ endpoint: {} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#,
        backend.url()
    ))
    .await;

    // gRPC: the generated client, with and without credentials.
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "http://{}",
        address(&collector, "otlp/grpc")
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::new(channel);
    for authorization in [None, Some("Bearer guessed-token"), Some("s3cret-token")] {
        let mut request = tonic::Request::new(trace_request("refused", 2));
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", MetadataValue::try_from(value).unwrap());
        }
        let status = client.export(request).await.expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{authorization:?}");
        assert!(!status.message().contains("guessed"), "{status:?}");
    }
    let mut request = tonic::Request::new(trace_request("grpc-ok", 3));
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer s3cret-token"),
    );
    client.export(request).await.expect("the right token");

    // HTTP.
    let url = format!("http://{}/v1/traces", address(&collector, "otlp/http"));
    let http = reqwest::Client::new();
    let body = trace_request("http", 4).encode_to_vec();
    let wrong = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("authorization", "Bearer guessed-token")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));
    let text = wrong.bytes().await.unwrap();
    assert!(!String::from_utf8_lossy(&text).contains("guessed"));
    let right = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("authorization", "Bearer s3cret-token")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status().as_u16(), 200);

    // Exactly the admitted spans arrive: 3 over gRPC, 4 over HTTP.
    let recorded = backend.recorded.clone();
    assert!(wait_until(Duration::from_secs(5), || recorded.span_count() == 7).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(recorded.span_count(), 7, "nothing refused got through");
    let refused: u64 = collector
        .telemetry
        .receivers()
        .iter()
        .map(|r| r.failed_requests.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert_eq!(refused, 4, "each refusal is counted");
    collector.shutdown().await;
    backend.stop().await;
}

#[test]
fn credentials_over_plaintext_need_an_explicit_choice() {
    let error = sidewatch::plan::load_str(
        r#"
receivers:
  otlp:
    auth: { bearer_token: abc }
exporters:
  debug: {}
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [debug] }
"#,
        "test config",
    )
    .map(|_| ())
    .expect_err("refused")
    .to_string();
    assert!(
        error.contains("receivers.otlp.auth.allow_plaintext") && error.contains("unencrypted"),
        "{error}"
    );
    assert!(!error.contains("abc"), "the token is not echoed: {error}");
}

fn authenticated_collector_config(backend: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0 }}
      http: {{ endpoint: 127.0.0.1:0 }}
    auth: {{ bearer_token: s3cret-token, allow_plaintext: true }}
exporters:
  otlp: {{ endpoint: {backend} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#
    )
}

/// RFC 7235: the scheme is case-insensitive, whitespace around the value
/// is not part of it, and a request with two Authorization headers is
/// refused whichever of them is right. gRPC and HTTP answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_is_parsed_alike_on_both_protocols() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&authenticated_collector_config(&backend.url())).await;
    let grpc = address(&collector, "otlp/grpc");
    let client = crate::raw_grpc::connect(grpc).await;
    let url = format!("http://{}/v1/traces", address(&collector, "otlp/http"));
    let http = reqwest::Client::new();
    let body = trace_request("auth", 1).encode_to_vec();
    let cases: [(&[&str], bool); 8] = [
        (&["Bearer s3cret-token"], true),
        (&["bearer s3cret-token"], true),
        (&["BEARER s3cret-token"], true),
        (&["Bearer s3cret-token "], true),
        (&["Bearer S3CRET-TOKEN"], false),
        (&["Bearer s3cret-token", "Bearer wrong"], false),
        (&["Bearer wrong", "Bearer s3cret-token"], false),
        (&["Bearer s3cret-token", "Bearer s3cret-token"], false),
    ];
    for (values, admitted) in cases {
        let mut request = crate::raw_grpc::request(grpc, crate::raw_grpc::TRACES_PATH, &[]);
        for value in values {
            request
                .headers_mut()
                .append("authorization", http::HeaderValue::from_str(value).unwrap());
        }
        let status = crate::raw_grpc::call(&client, request, crate::raw_grpc::frame(false, &body))
            .await
            .map(|(code, _)| code);
        let expected = if admitted {
            0
        } else {
            Code::Unauthenticated as i32
        };
        assert_eq!(status, Some(expected), "gRPC {values:?}");

        let mut request = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(body.clone());
        for value in values {
            request = request.header("authorization", *value);
        }
        let status = request.send().await.unwrap().status().as_u16();
        assert_eq!(status, if admitted { 200 } else { 401 }, "HTTP {values:?}");
    }
    collector.shutdown().await;
    backend.stop().await;
}

/// A 64 KiB or 1 MiB token gets a definite answer that clients do not
/// retry: on gRPC UNAUTHENTICATED or RESOURCE_EXHAUSTED without RetryInfo
/// (not a GOAWAY, which clients see as UNAVAILABLE and retry), on HTTP 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_a_non_retryable_answer() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&authenticated_collector_config(&backend.url())).await;
    let grpc_address = address(&collector, "otlp/grpc");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient::new(channel);
    let url = format!("http://{}/v1/traces", address(&collector, "otlp/http"));
    let http = reqwest::Client::new();
    for size in [64 * 1024, 1024 * 1024] {
        let token = format!("Bearer {}", "x".repeat(size));
        let mut request = tonic::Request::new(trace_request("big", 1));
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(token.as_str()).unwrap(),
        );
        let status = client.export(request).await.expect_err("refused");
        assert!(
            matches!(
                status.code(),
                Code::Unauthenticated | Code::ResourceExhausted
            ),
            "{size}: {:?} {}",
            status.code(),
            status.message()
        );
        let details = tonic_types::StatusExt::get_error_details(&status);
        assert!(details.retry_info().is_none(), "{size}: no RetryInfo");

        let response = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .header("authorization", token.as_str())
            .body(trace_request("big", 1).encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 431, "{size}");
    }
    // The connection still serves.
    let mut request = tonic::Request::new(trace_request("after", 1));
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer s3cret-token"),
    );
    client.export(request).await.expect("served after");
    collector.shutdown().await;
    backend.stop().await;
}
