//! 10,000 malformed and fuzzed OTLP payloads over gRPC and HTTP, protobuf
//! and JSON, some deeply nested: every answer is a success (a mutation
//! that happens to stay valid) or INVALID_ARGUMENT / 400, never anything
//! else; the collector never stops serving, and a valid control request
//! after every 50 payloads is delivered.

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use prost::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::Code;

use crate::backend::{Backend, wait_until};
use crate::bad_input::grpc_raw;
use crate::harness::{address, start, trace_request};

const PAYLOADS: usize = 10_000;
const CONTROL_EVERY: usize = 50;

/// A value nested `depth` arrays deep: beyond any sane decoder's recursion
/// limit, which must answer an error rather than overflow the stack.
fn nested(depth: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(any_value::Value::StringValue("core".into())),
    };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    value
}

fn deeply_nested_request(depth: usize) -> Vec<u8> {
    let mut request = trace_request("deep", 1);
    request.resource_spans[0].scope_spans[0].spans[0].attributes = vec![KeyValue {
        key: "deep".into(),
        value: Some(nested(depth)),
        ..Default::default()
    }];
    request.encode_to_vec()
}

fn deeply_nested_json(depth: usize) -> Vec<u8> {
    let open = r#"{"arrayValue":{"values":["#.repeat(depth);
    let close = "]}}".repeat(depth);
    format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"name":"deep","attributes":[{{"key":"deep","value":{open}{{"stringValue":"core"}}{close}}}]}}]}}]}}]}}"#
    )
    .into_bytes()
}

/// Deeply nested payloads, built once: protobuf and JSON at three depths.
struct Nested {
    protobuf: Vec<Vec<u8>>,
    json: Vec<Vec<u8>>,
}

impl Nested {
    fn new() -> Self {
        // The test builds protobuf nesting with prost, recursively, so it
        // stays at depths its own stack survives; the JSON is text.
        Nested {
            protobuf: [200, 1_000, 2_000]
                .iter()
                .map(|d| deeply_nested_request(*d))
                .collect(),
            json: [200, 1_000, 20_000]
                .iter()
                .map(|d| deeply_nested_json(*d))
                .collect(),
        }
    }
}

/// A payload from one of several families, by `i`.
fn payload(
    i: usize,
    rng: &mut StdRng,
    valid: &[u8],
    valid_json: &[u8],
    nested: &Nested,
) -> Vec<u8> {
    let base = if i.is_multiple_of(2) {
        valid
    } else {
        valid_json
    };
    match i % 7 {
        // Random bytes.
        0 => (0..rng.random_range(1..512))
            .map(|_| rng.random())
            .collect(),
        // A valid request with bytes flipped.
        1 | 2 => {
            let mut bytes = base.to_vec();
            for _ in 0..rng.random_range(1..8) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
            }
            bytes
        }
        // Truncated.
        3 => base[..rng.random_range(1..base.len())].to_vec(),
        // Random bytes spliced into the middle.
        4 => {
            let mut bytes = base.to_vec();
            let at = rng.random_range(0..bytes.len());
            let junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            bytes.splice(at..at, junk);
            bytes
        }
        // Deeply nested values.
        5 => {
            let family = if i.is_multiple_of(2) {
                &nested.protobuf
            } else {
                &nested.json
            };
            family[rng.random_range(0..family.len())].clone()
        }
        // Huge declared lengths and varints that never end.
        _ => {
            let mut bytes = vec![0x0a];
            bytes.extend(std::iter::repeat_n(0xff, rng.random_range(1..16)));
            bytes
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_fuzzed_payloads_get_invalid_argument_and_nothing_else_breaks() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{ endpoint: 127.0.0.1:0 }}
      http: {{ endpoint: 127.0.0.1:0 }}
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
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "http://{}",
        address(&collector, "otlp/grpc")
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let url = format!("http://{}/v1/traces", address(&collector, "otlp/http"));
    let http = reqwest::Client::new();
    let valid = trace_request("fuzz", 5).encode_to_vec();
    let valid_json = serde_json::to_vec(&trace_request("fuzz", 5)).unwrap();
    let control = trace_request("control", 1).encode_to_vec();

    let nested = Nested::new();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let (mut rejected, mut accepted_anyway) = (0usize, 0usize);
    let mut controls = 0usize;
    for i in 0..PAYLOADS {
        let body = payload(i, &mut rng, &valid, &valid_json, &nested);
        // Alternate: gRPC protobuf, HTTP protobuf, HTTP JSON.
        let ok = match i % 3 {
            0 => match grpc_raw(&channel, body).await {
                Ok(()) => true,
                Err(status) => {
                    assert_eq!(
                        status.code(),
                        Code::InvalidArgument,
                        "payload {i} over gRPC: {status:?}"
                    );
                    false
                }
            },
            kind => {
                let content_type = if kind == 1 {
                    "application/x-protobuf"
                } else {
                    "application/json"
                };
                let response = http
                    .post(&url)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("payload {i} over HTTP: {e}"));
                let status = response.status().as_u16();
                assert!(
                    status == 200 || status == 400,
                    "payload {i} ({content_type}): HTTP {status}"
                );
                status == 200
            }
        };
        if ok {
            accepted_anyway += 1;
        } else {
            rejected += 1;
        }
        if i.is_multiple_of(CONTROL_EVERY) {
            grpc_raw(&channel, control.clone())
                .await
                .unwrap_or_else(|e| panic!("control request after payload {i}: {e:?}"));
            controls += 1;
        }
    }
    eprintln!(
        "fuzz: {PAYLOADS} payloads, {rejected} rejected as invalid, {accepted_anyway} still valid after mutation"
    );
    // Most mutations break the payload; a few stay valid (a flipped bit in
    // a string, say), and those are accepted like any valid request.
    assert!(rejected > PAYLOADS * 3 / 4, "only {rejected} rejected");

    let recorded = backend.recorded.clone();
    let delivered_controls = || {
        recorded
            .traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .filter(|s| s.name.starts_with("control-"))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(10), || delivered_controls() == controls).await,
        "{} of {controls} control requests delivered",
        delivered_controls()
    );
    collector.shutdown().await;
    backend.stop().await;
}
