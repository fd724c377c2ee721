//! The `zipkin` receiver with real Zipkin v2 payloads (JSON written in the
//! v2 API's shape, protobuf `ListOfSpans`, gzip), sent by an HTTP client
//! as Zipkin reporters send them, forwarded as OTLP to a real backend.

use std::io::Write as _;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;

use crate::backend::{Backend, wait_until};
use crate::harness::{address, start};

const SPANS: &str = r#"[
  {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312","name":"get /checkout",
   "kind":"SERVER","timestamp":1700000000000000,"duration":150000,
   "localEndpoint":{"serviceName":"checkout","ipv4":"10.0.0.7","port":8080},
   "tags":{"http.method":"GET","http.path":"/checkout","error":"payment declined"}},
  {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"0e8a2d9f3c1b7a55","parentId":"a2fb4a1d1a96d312",
   "name":"charge","kind":"CLIENT","timestamp":1700000000010000,"duration":90000,
   "localEndpoint":{"serviceName":"checkout"},"remoteEndpoint":{"serviceName":"payments"},
   "annotations":[{"timestamp":1700000000050000,"value":"retry"}]}
]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_v2_json_and_protobuf_arrive_as_otlp_and_malformed_is_400() {
    let backend = Backend::start("127.0.0.1:0".parse().unwrap()).await;
    let collector = start(&format!(
        r#"
receivers:
  zipkin: {{ endpoint: 127.0.0.1:0 }}
exporters:
  otlp: {{ endpoint: {} }}
service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines:
    traces: {{ receivers: [zipkin], exporters: [otlp] }}
"#,
        backend.url()
    ))
    .await;
    let url = format!("http://{}/api/v2/spans", address(&collector, "zipkin/http"));
    let http = reqwest::Client::new();

    let json = http
        .post(&url)
        .header("Content-Type", "application/json")
        .body(SPANS)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 202);

    // Protobuf, gzipped, as zipkin-reporter's protobuf encoder and
    // compression would send it.
    let list = sidewatch::receivers::zipkin::model::ListOfSpans {
        spans: vec![sidewatch::receivers::zipkin::model::ProtoSpan {
            trace_id: hex::decode("5af7183fb1d4cf5f").unwrap(),
            id: hex::decode("352bff9a74ca9ad2").unwrap(),
            kind: 3,
            name: "publish".into(),
            timestamp: 1_700_000_001_000_000,
            duration: 1_000,
            local_endpoint: Some(sidewatch::receivers::zipkin::model::ProtoEndpoint {
                service_name: "orders".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&list.encode_to_vec()).unwrap();
    let proto = http
        .post(&url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "gzip")
        .body(gzip.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(proto.status(), 202);

    assert!(
        wait_until(Duration::from_secs(10), || backend.recorded.span_count()
            == 3)
        .await
    );
    let traces = backend.recorded.traces.lock().unwrap().clone();
    let mut spans = Vec::new();
    for rs in traces.iter().flat_map(|r| &r.resource_spans) {
        let service = rs.resource.as_ref().unwrap().attributes[0].value.clone();
        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            spans.push((service.clone(), span.clone()));
        }
    }
    let find = |name: &str| spans.iter().find(|(_, s)| s.name == name).unwrap();
    let (service, checkout) = find("get /checkout");
    assert_eq!(
        service.as_ref().unwrap().value,
        Some(
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                "checkout".into()
            )
        )
    );
    assert_eq!(checkout.kind, SpanKind::Server as i32);
    assert_eq!(
        checkout.status.as_ref().unwrap().message,
        "payment declined"
    );
    let (_, charge) = find("charge");
    assert_eq!(charge.parent_span_id, checkout.span_id);
    assert_eq!(charge.events[0].name, "retry");
    let (_, publish) = find("publish");
    assert_eq!(publish.kind, SpanKind::Producer as i32);
    assert_eq!(
        hex::encode(&publish.trace_id),
        "00000000000000005af7183fb1d4cf5f"
    );

    for (content_type, body, status) in [
        (
            "application/json",
            "[{\"traceId\":\"nothex\",\"id\":\"a2fb4a1d1a96d312\"}]",
            400,
        ),
        ("application/json", "{not json", 400),
        ("application/x-protobuf", "\u{0a}\u{05}\u{0a}", 400),
        ("application/x-thrift", "", 415),
    ] {
        let response = http
            .post(&url)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{content_type} {body:?}");
    }
    let v1 = http
        .post(url.replace("/api/v2/", "/api/v1/"))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), 404);
    assert!(
        v1.text()
            .await
            .unwrap()
            .contains("send v2 spans to /api/v2/spans")
    );
    assert_eq!(
        backend.recorded.span_count(),
        3,
        "nothing malformed got through"
    );
    collector.shutdown().await;
}
