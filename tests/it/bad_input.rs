//! Bad input gets a clear answer and loses nothing else: after every bad
//! request a valid one still succeeds and reaches the backend.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use crate::backend::{Backend, wait_until};
use crate::harness::{address, start, trace_request};

const LIMIT: usize = 64 * 1024;

fn config(backend: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0, max_recv_msg_size_mib: 1 }}
      http: {{ endpoint: 127.0.0.1:0, max_request_body_size: {LIMIT} }}
exporters:
  otlp: {{ endpoint: {backend}, retry_on_failure: {{ initial_interval: 50ms }} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [otlp], exporters: [otlp] }}
"#
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// google.rpc.Status, the error body OTLP/HTTP specifies.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_requests_get_the_right_status_and_the_collector_keeps_serving() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&config(&backend.url())).await;
    let url = format!("http://{}/v1/traces", address(&collector, "otlp/http"));
    let client = reqwest::Client::new();
    let valid = trace_request("ok", 3).encode_to_vec();
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    let truncated = {
        let whole = gzip(&valid);
        whole[..whole.len() / 2].to_vec()
    };
    // (case, content type, content encoding, body, expected status)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "malformed protobuf",
            "application/x-protobuf",
            None,
            vec![0x0a, 0xff, 0xff, 0xff, 0x0f],
            400,
        ),
        ("wrong content type", "text/plain", None, valid.clone(), 415),
        (
            "unsupported encoding",
            "application/x-protobuf",
            Some("br"),
            valid.clone(),
            415,
        ),
        (
            "oversized body",
            "application/x-protobuf",
            None,
            vec![0u8; LIMIT + 1],
            413,
        ),
        (
            "truncated gzip",
            "application/x-protobuf",
            Some("gzip"),
            truncated,
            400,
        ),
        (
            "gzip bomb",
            "application/x-protobuf",
            Some("gzip"),
            bomb,
            413,
        ),
        (
            "invalid JSON",
            "application/json",
            None,
            br#"{"resourceSpans": [ {"#.to_vec(),
            400,
        ),
        (
            "JSON of the wrong shape",
            "application/json",
            None,
            br#"{"resourceSpans": 7}"#.to_vec(),
            400,
        ),
    ];
    let mut expected_spans = 0;
    for (name, content_type, encoding, body, status) in cases {
        let mut request = client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{name}");
        // Answered before its body was read, the body is still read and
        // discarded (up to 4 times the limit), so the connection stays
        // usable and the client reads the answer.
        assert_eq!(
            response.headers().get("connection").map(|v| v.as_bytes()),
            None,
            "{name}"
        );
        let is_protobuf = response.headers()["content-type"] == "application/x-protobuf";
        let body = response.bytes().await.unwrap();
        let message = if is_protobuf {
            RpcStatus::decode(body.as_ref())
                .unwrap_or_else(|e| panic!("{name}: error body is not a Status: {e}"))
                .message
        } else {
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(!message.is_empty(), "{name}: the error says nothing");

        let ok = client
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .body(valid.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status().as_u16(), 200, "valid request after {name}");
        expected_spans += 3;
    }
    // Valid JSON, gzip and zstd bodies succeed too.
    let json = serde_json::to_vec(&trace_request("json", 2)).unwrap();
    for (encoding, body) in [
        (None, json.clone()),
        (Some("gzip"), gzip(&json)),
        (Some("zstd"), zstd::encode_all(&json[..], 3).unwrap()),
    ] {
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "JSON with {encoding:?}");
        assert_eq!(response.bytes().await.unwrap().as_ref(), b"{}");
        expected_spans += 2;
    }
    let recorded = backend.recorded.clone();
    assert!(
        wait_until(Duration::from_secs(5), || recorded.span_count()
            == expected_spans)
        .await
    );
    collector.shutdown().await;
    backend.stop().await;
}

/// Sends raw bytes as a gRPC message, so tests can send what no SDK would.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(bytes::Buf::copy_to_bytes(
            src,
            bytes::Buf::remaining(src),
        )))
    }
}

pub async fn grpc_raw(channel: &tonic::transport::Channel, body: Vec<u8>) -> Result<(), Status> {
    let mut client =
        tonic::client::Grpc::new(channel.clone()).max_encoding_message_size(usize::MAX);
    client.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    client
        .unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_bad_requests_get_otlp_codes_and_the_collector_keeps_serving() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&config(&backend.url())).await;
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "http://{}",
        address(&collector, "otlp/grpc")
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let valid = trace_request("ok", 4).encode_to_vec();
    let cases: Vec<(&str, Vec<u8>, Code)> = vec![
        (
            "malformed protobuf",
            vec![0x0a, 0xff, 0xff, 0xff, 0x0f],
            Code::InvalidArgument,
        ),
        ("wrong wire type", vec![0x0b, 0x01], Code::InvalidArgument),
        // Not OUT_OF_RANGE, which clients retry forever.
        (
            "oversized message",
            vec![0u8; 1024 * 1024 + 1],
            Code::ResourceExhausted,
        ),
    ];
    for (name, body, code) in cases {
        let status = grpc_raw(&channel, body).await.expect_err(name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(!status.message().is_empty());
        grpc_raw(&channel, valid.clone())
            .await
            .unwrap_or_else(|e| panic!("valid request after {name}: {e:?}"));
    }
    let recorded = backend.recorded.clone();
    assert!(wait_until(Duration::from_secs(5), || recorded.span_count() == 12).await);
    collector.shutdown().await;
    backend.stop().await;
}

/// A cap on connections: when `max_connections` are open and every one is
/// serving a request, a new one is closed on arrival and counted; once one
/// closes, a new client gets through. (Idle connections give way instead:
/// `connection_deadlines.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_and_counted() {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let collector = start(
        r#"
receivers:
  otlp: { protocols: { http: { endpoint: 127.0.0.1:0, max_connections: 2 } } }
exporters:
  debug: {}
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    traces: { receivers: [otlp], exporters: [debug] }
"#,
    )
    .await;
    let address = address(&collector, "otlp/http");
    let listener = collector.telemetry.listeners()[0].clone();
    // Two busy connections: each is in the middle of sending a body.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .write_all(b"POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
                .unwrap();
            stream
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(5), || listener
            .active_connections
            .load(Ordering::Relaxed)
            == 2)
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The third is accepted by the kernel and closed by sidewatch at once.
    let third = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut byte = [0u8; 1];
        stream.read(&mut byte)
    })
    .await
    .unwrap();
    assert!(
        matches!(third, Ok(0))
            || third.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection over the cap is closed"
    );
    assert_eq!(listener.refused_connections.load(Ordering::Relaxed), 1);
    assert_eq!(listener.evicted_connections.load(Ordering::Relaxed), 0);
    drop(held);
    assert!(
        wait_until(Duration::from_secs(5), || listener
            .active_connections
            .load(Ordering::Relaxed)
            == 0)
        .await
    );
    let ok = reqwest::Client::new()
        .post(format!("http://{address}/v1/traces"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    collector.shutdown().await;
}

/// A client that never finishes its request headers (slowloris) is cut
/// off after `header_read_timeout`, freeing its connection slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_too_slow_with_its_headers_is_disconnected() {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let collector = start(
        r#"
receivers:
  otlp: { protocols: { http: { endpoint: 127.0.0.1:0, header_read_timeout: 500ms } } }
exporters:
  debug: {}
service:
  telemetry: { metrics: { level: none } }
  pipelines:
    traces: { receivers: [otlp], exporters: [debug] }
"#,
    )
    .await;
    let address = address(&collector, "otlp/http");
    let listener = collector.telemetry.listeners()[0].clone();
    let (closed_after, bytes) = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .write_all(b"POST /v1/traces HTTP/1.1\r\nHost: sidewatch\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut buffer = [0u8; 512];
        let read = stream.read(&mut buffer).unwrap_or(0);
        (
            started.elapsed(),
            String::from_utf8_lossy(&buffer[..read]).to_string(),
        )
    })
    .await
    .unwrap();
    assert!(
        closed_after < Duration::from_secs(5),
        "the half-sent request was held {closed_after:?}"
    );
    // hyper may answer 408 before closing; either way nothing was admitted.
    assert!(
        bytes.is_empty() || bytes.starts_with("HTTP/1.1 408"),
        "{bytes:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || listener
            .active_connections
            .load(Ordering::Relaxed)
            == 0)
        .await
    );
    // A well-behaved client is served as before.
    let ok = reqwest::Client::new()
        .post(format!("http://{address}/v1/traces"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    collector.shutdown().await;
}
