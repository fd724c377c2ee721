//! Zipkin v2 spans as they arrive: the JSON model (`/api/v2/spans` with
//! `Content-Type: application/json`) and the proto3 model of zipkin.proto
//! (`application/x-protobuf`, a `ListOfSpans`), as prost messages written
//! out by hand (five messages; no build script needed).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonSpan {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    /// Microseconds since the epoch.
    pub timestamp: Option<u64>,
    /// Microseconds.
    pub duration: Option<u64>,
    pub local_endpoint: Option<JsonEndpoint>,
    pub remote_endpoint: Option<JsonEndpoint>,
    #[serde(default)]
    pub annotations: Vec<JsonAnnotation>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub debug: Option<bool>,
    pub shared: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonEndpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JsonAnnotation {
    pub timestamp: u64,
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListOfSpans {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<ProtoSpan>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub parent_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub id: Vec<u8>,
    /// 0 unspecified, 1 client, 2 server, 3 producer, 4 consumer.
    #[prost(int32, tag = "4")]
    pub kind: i32,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(fixed64, tag = "6")]
    pub timestamp: u64,
    #[prost(uint64, tag = "7")]
    pub duration: u64,
    #[prost(message, optional, tag = "8")]
    pub local_endpoint: Option<ProtoEndpoint>,
    #[prost(message, optional, tag = "9")]
    pub remote_endpoint: Option<ProtoEndpoint>,
    #[prost(message, repeated, tag = "10")]
    pub annotations: Vec<ProtoAnnotation>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub tags: BTreeMap<String, String>,
    #[prost(bool, tag = "12")]
    pub debug: bool,
    #[prost(bool, tag = "13")]
    pub shared: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoEndpoint {
    #[prost(string, tag = "1")]
    pub service_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub ipv4: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub ipv6: Vec<u8>,
    #[prost(int32, tag = "4")]
    pub port: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAnnotation {
    #[prost(fixed64, tag = "1")]
    pub timestamp: u64,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// One span in the form both models convert to.
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub trace_id: Vec<u8>,
    pub id: Vec<u8>,
    pub parent_id: Vec<u8>,
    pub name: String,
    /// CLIENT, SERVER, PRODUCER, CONSUMER or empty.
    pub kind: String,
    pub timestamp_micros: u64,
    pub duration_micros: u64,
    pub local: Endpoint,
    pub remote: Option<Endpoint>,
    pub annotations: Vec<(u64, String)>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub service_name: String,
    pub ip: Option<String>,
    pub port: Option<u16>,
}

fn hex_id(text: &str, what: &str, lengths: &[usize]) -> Result<Vec<u8>, String> {
    let bytes = hex::decode(text).map_err(|_| format!("{what} `{text}` is not hex"))?;
    if !lengths.contains(&bytes.len()) {
        return Err(format!(
            "{what} `{text}`: expected {} hex digits",
            lengths
                .iter()
                .map(|l| (2 * l).to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    Ok(bytes)
}

fn json_endpoint(e: JsonEndpoint) -> Endpoint {
    Endpoint {
        service_name: e.service_name.unwrap_or_default(),
        ip: e.ipv4.or(e.ipv6),
        port: e.port.filter(|p| *p != 0),
    }
}

fn proto_endpoint(e: ProtoEndpoint) -> Result<Endpoint, String> {
    let ip = match (e.ipv4.len(), e.ipv6.len()) {
        (4, _) => {
            Some(std::net::Ipv4Addr::new(e.ipv4[0], e.ipv4[1], e.ipv4[2], e.ipv4[3]).to_string())
        }
        (0, 16) => {
            let octets: [u8; 16] = e.ipv6.try_into().map_err(|_| "ipv6".to_string())?;
            Some(std::net::Ipv6Addr::from(octets).to_string())
        }
        (0, 0) => None,
        _ => return Err("endpoint: ipv4 must be 4 bytes and ipv6 16".into()),
    };
    Ok(Endpoint {
        service_name: e.service_name,
        ip,
        port: u16::try_from(e.port).ok().filter(|p| *p != 0),
    })
}

/// Parses a JSON v2 body: a list of spans.
pub fn from_json(body: &[u8]) -> Result<Vec<Span>, String> {
    let spans: Vec<JsonSpan> =
        serde_json::from_slice(body).map_err(|e| format!("invalid Zipkin v2 JSON: {e}"))?;
    spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let at = |e: String| format!("span {i}: {e}");
            Ok(Span {
                trace_id: hex_id(&s.trace_id, "traceId", &[8, 16]).map_err(at)?,
                id: hex_id(&s.id, "id", &[8]).map_err(at)?,
                parent_id: match s.parent_id.as_deref() {
                    None | Some("") => Vec::new(),
                    Some(p) => hex_id(p, "parentId", &[8]).map_err(at)?,
                },
                name: s.name.unwrap_or_default(),
                kind: s.kind.unwrap_or_default(),
                timestamp_micros: s.timestamp.unwrap_or(0),
                duration_micros: s.duration.unwrap_or(0),
                local: s.local_endpoint.map(json_endpoint).unwrap_or_default(),
                remote: s.remote_endpoint.map(json_endpoint),
                annotations: s
                    .annotations
                    .into_iter()
                    .map(|a| (a.timestamp, a.value))
                    .collect(),
                tags: s.tags,
            })
        })
        .collect()
}

/// Parses a protobuf body: a `ListOfSpans`.
pub fn from_protobuf(body: &[u8]) -> Result<Vec<Span>, String> {
    use prost::Message as _;
    let list = ListOfSpans::decode(body).map_err(|e| format!("invalid Zipkin protobuf: {e}"))?;
    list.spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let at = |e: String| format!("span {i}: {e}");
            if ![8, 16].contains(&s.trace_id.len()) {
                return Err(at("trace_id: expected 8 or 16 bytes".into()));
            }
            if s.id.len() != 8 || !(s.parent_id.is_empty() || s.parent_id.len() == 8) {
                return Err(at("id and parent_id: expected 8 bytes".into()));
            }
            let kind = match s.kind {
                1 => "CLIENT",
                2 => "SERVER",
                3 => "PRODUCER",
                4 => "CONSUMER",
                _ => "",
            };
            Ok(Span {
                trace_id: s.trace_id,
                id: s.id,
                parent_id: s.parent_id,
                name: s.name,
                kind: kind.into(),
                timestamp_micros: s.timestamp,
                duration_micros: s.duration,
                local: s
                    .local_endpoint
                    .map(proto_endpoint)
                    .transpose()
                    .map_err(at)?
                    .unwrap_or_default(),
                remote: s
                    .remote_endpoint
                    .map(proto_endpoint)
                    .transpose()
                    .map_err(at)?,
                annotations: s
                    .annotations
                    .into_iter()
                    .map(|a| (a.timestamp, a.value))
                    .collect(),
                tags: s.tags,
            })
        })
        .collect()
}
