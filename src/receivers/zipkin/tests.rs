use super::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode as Code};

const JSON: &str = r#"[
  {"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c",
   "name":"get /api","kind":"SERVER","timestamp":1700000000123456,"duration":207000,
   "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.101","port":9000},
   "remoteEndpoint":{"serviceName":"frontend","ipv6":"::1","port":63678},
   "annotations":[{"timestamp":1700000000200000,"value":"cache miss"}],
   "tags":{"http.method":"GET","error":"timeout","otel.scope.name":"zipkin-js"}},
  {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312","name":"select",
   "kind":"CLIENT","timestamp":1700000000130000,"duration":5000,
   "localEndpoint":{"serviceName":"backend"}}
]"#;

fn attribute<'a>(span: &'a OtlpSpanAlias, key: &str) -> Option<&'a V> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

type OtlpSpanAlias = opentelemetry_proto::tonic::trace::v1::Span;

#[test]
fn json_v2_converts_as_the_collector_does() {
    let request = convert::to_otlp(model::from_json(JSON.as_bytes()).unwrap());
    assert_eq!(request.resource_spans.len(), 1, "both spans from `backend`");
    let rs = &request.resource_spans[0];
    assert_eq!(
        rs.resource.as_ref().unwrap().attributes[0]
            .value
            .as_ref()
            .unwrap()
            .value,
        Some(V::StringValue("backend".into()))
    );
    assert_eq!(rs.scope_spans.len(), 2, "zipkin-js and the unnamed scope");
    assert_eq!(rs.scope_spans[0].scope.as_ref().unwrap().name, "zipkin-js");
    let server = &rs.scope_spans[0].spans[0];
    assert_eq!(
        hex::encode(&server.trace_id),
        "00000000000000005af7183fb1d4cf5f"
    );
    assert_eq!(hex::encode(&server.span_id), "352bff9a74ca9ad2");
    assert_eq!(hex::encode(&server.parent_span_id), "6b221d5bc9e6496c");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(server.start_time_unix_nano, 1_700_000_000_123_456_000);
    assert_eq!(
        server.end_time_unix_nano - server.start_time_unix_nano,
        207_000_000
    );
    let status = server.status.as_ref().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (Code::Error as i32, "timeout")
    );
    assert!(attribute(server, "error").is_none());
    assert_eq!(
        attribute(server, "http.method"),
        Some(&V::StringValue("GET".into()))
    );
    assert_eq!(
        attribute(server, "net.host.ip"),
        Some(&V::StringValue("192.168.99.101".into()))
    );
    assert_eq!(attribute(server, "net.host.port"), Some(&V::IntValue(9000)));
    assert_eq!(
        attribute(server, "peer.service"),
        Some(&V::StringValue("frontend".into()))
    );
    assert_eq!(
        attribute(server, "net.peer.ip"),
        Some(&V::StringValue("::1".into()))
    );
    assert_eq!(server.events[0].name, "cache miss");
    assert_eq!(server.events[0].time_unix_nano, 1_700_000_000_200_000_000);
    let client = &rs.scope_spans[1].spans[0];
    assert_eq!(
        hex::encode(&client.trace_id),
        "463ac35c9f6413ad48485a3953bb6124"
    );
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert!(client.status.is_none());
}

#[test]
fn protobuf_converts_like_json() {
    use prost::Message as _;
    let list = model::ListOfSpans {
        spans: vec![model::ProtoSpan {
            trace_id: hex::decode("5af7183fb1d4cf5f").unwrap(),
            id: hex::decode("352bff9a74ca9ad2").unwrap(),
            kind: 2,
            name: "get /api".into(),
            timestamp: 1_700_000_000_123_456,
            duration: 207_000,
            local_endpoint: Some(model::ProtoEndpoint {
                service_name: "backend".into(),
                ipv4: vec![192, 168, 99, 101],
                port: 9000,
                ..Default::default()
            }),
            tags: [("otel.status_code".to_string(), "ERROR".to_string())].into(),
            ..Default::default()
        }],
    };
    let request = convert::to_otlp(model::from_protobuf(&list.encode_to_vec()).unwrap());
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.status.as_ref().unwrap().code, Code::Error as i32);
    assert_eq!(
        attribute(span, "net.host.ip"),
        Some(&V::StringValue("192.168.99.101".into()))
    );
}

#[test]
fn malformed_spans_are_named() {
    for (body, expected) in [
        ("{", "invalid Zipkin v2 JSON"),
        (
            r#"[{"traceId":"xyz","id":"352bff9a74ca9ad2"}]"#,
            "span 0: traceId `xyz` is not hex",
        ),
        (
            r#"[{"traceId":"5af7183fb1d4cf5f","id":"35"}]"#,
            "id `35`: expected 16 hex digits",
        ),
        (r#"[{"id":"352bff9a74ca9ad2"}]"#, "missing field `traceId`"),
    ] {
        let error = model::from_json(body.as_bytes()).unwrap_err();
        assert!(error.contains(expected), "{body}: {error}");
    }
    assert!(model::from_protobuf(&[0x0a, 0x05, 0x0a]).is_err());
}
