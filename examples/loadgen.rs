//! Load generator: OTLP traces, metrics or logs over gRPC or HTTP, at a
//! fixed rate or as fast as the collector accepts, for a bounded time.
//!
//!   cargo run --release --example loadgen -- --endpoint http://127.0.0.1:4317 \
//!       --protocol grpc --signal traces --batch-size 512 --connections 4 \
//!       --concurrency 8 --duration 10s
//!
//! Prints one JSON line: requests, accepted and refused items, accepted
//! items per second, request latency p50/p99.

#[path = "support/raw_codec.rs"]
mod raw_codec;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Protocol {
    Grpc,
    Http,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum SignalKind {
    Traces,
    Metrics,
    Logs,
}

#[derive(Parser)]
struct Args {
    /// Collector address, like http://127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318 (HTTP).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    #[arg(long, value_enum, default_value = "traces")]
    signal: SignalKind,
    /// Items (spans, data points, log records) per request.
    #[arg(long, default_value_t = 512)]
    batch_size: usize,
    /// TCP connections.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Items per second in total; 0 means as fast as accepted.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Stop after this many requests in total, whatever the duration.
    #[arg(long, default_value_t = u64::MAX)]
    max_requests: u64,
    /// Compress request bodies with gzip.
    #[arg(long)]
    gzip: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    sidewatch::config::duration::parse_duration(text)
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            attribute("service.name", "loadgen"),
            attribute("host.name", "bench"),
            attribute("service.version", "1.2.3"),
        ],
        ..Default::default()
    })
}

/// A request of `n` items shaped like real instrumentation output.
fn request(signal: SignalKind, n: usize) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let scope = Some(InstrumentationScope {
        name: "loadgen".into(),
        version: "1".into(),
        ..Default::default()
    });
    let encoded = match signal {
        SignalKind::Traces => ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(),
                scope_spans: vec![ScopeSpans {
                    scope,
                    spans: (0..n)
                        .map(|i| Span {
                            trace_id: (i as u128 + 1).to_be_bytes().to_vec(),
                            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                            name: "GET /api/orders/{id}".into(),
                            kind: span::SpanKind::Server as i32,
                            start_time_unix_nano: now,
                            end_time_unix_nano: now + 1_000_000 + (i as u64 % 1000) * 1000,
                            attributes: vec![
                                attribute("http.request.method", "GET"),
                                attribute("http.route", "/api/orders/{id}"),
                                attribute("http.response.status_code", "200"),
                                attribute("url.scheme", "https"),
                                attribute("server.address", "orders.internal"),
                                attribute("user_agent.original", "loadgen/1.0"),
                            ],
                            status: Some(Status::default()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        SignalKind::Metrics => ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(),
                scope_metrics: vec![ScopeMetrics {
                    scope,
                    metrics: vec![Metric {
                        name: "loadgen.gauge".into(),
                        unit: "1".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: (0..n)
                                .map(|i| NumberDataPoint {
                                    attributes: vec![attribute("series", &format!("s{}", i % 100))],
                                    time_unix_nano: now,
                                    value: Some(number_data_point::Value::AsDouble(i as f64)),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        SignalKind::Logs => ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(),
                scope_logs: vec![ScopeLogs {
                    scope,
                    log_records: (0..n)
                        .map(|i| LogRecord {
                            time_unix_nano: now,
                            severity_number: 9,
                            severity_text: "INFO".into(),
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(format!(
                                    "request {i} served in 1ms"
                                ))),
                            }),
                            attributes: vec![attribute("http.route", "/api/orders/{id}")],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
    };
    Bytes::from(encoded)
}

#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    accepted_items: AtomicU64,
    refused_items: AtomicU64,
    errors: AtomicU64,
}

enum Client {
    Grpc(tonic::client::Grpc<tonic::transport::Channel>, &'static str),
    Http(reqwest::Client, String),
}

impl Client {
    /// Ok(true) accepted, Ok(false) refused with a retryable answer.
    async fn send(&mut self, body: Bytes, gzip: bool) -> Result<bool, String> {
        match self {
            Client::Grpc(grpc, path) => {
                grpc.ready().await.map_err(|e| e.to_string())?;
                let path = http::uri::PathAndQuery::from_static(path);
                match grpc
                    .unary(tonic::Request::new(body), path, raw_codec::RawCodec)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(s)
                        if matches!(
                            s.code(),
                            tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                        ) =>
                    {
                        Ok(false)
                    }
                    Err(s) => Err(format!("{:?}: {}", s.code(), s.message())),
                }
            }
            Client::Http(client, url) => {
                let mut request = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf");
                let body = if gzip {
                    use std::io::Write;
                    let mut encoder =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    encoder.write_all(&body).map_err(|e| e.to_string())?;
                    request = request.header("content-encoding", "gzip");
                    Bytes::from(encoder.finish().map_err(|e| e.to_string())?)
                } else {
                    body
                };
                let response = request.body(body).send().await.map_err(|e| e.to_string())?;
                match response.status().as_u16() {
                    200 => Ok(true),
                    429 | 503 => Ok(false),
                    other => Err(format!("HTTP {other}")),
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // reqwest is built without a bundled TLS provider, like sidewatch.
    sidewatch::tls::install_provider();
    let args = Args::parse();
    let body = request(args.signal, args.batch_size);
    let (path, suffix) = match args.signal {
        SignalKind::Traces => (
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            "/v1/traces",
        ),
        SignalKind::Metrics => (
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            "/v1/metrics",
        ),
        SignalKind::Logs => (
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            "/v1/logs",
        ),
    };
    let totals = Arc::new(Totals::default());
    let deadline = Instant::now() + args.duration;
    let workers = args.connections * args.concurrency;
    // Fixed rate: each worker sends one request every `period`.
    let period = (args.rate > 0).then(|| {
        Duration::from_secs_f64(args.batch_size as f64 * workers as f64 / args.rate as f64)
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let base = match args.protocol {
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(args.endpoint.clone())?
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
                let mut grpc =
                    tonic::client::Grpc::new(channel).max_encoding_message_size(usize::MAX);
                if args.gzip {
                    grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                Client::Grpc(grpc, path)
            }
            Protocol::Http => Client::Http(
                reqwest::Client::builder()
                    .pool_max_idle_per_host(args.concurrency)
                    .build()?,
                format!("{}{suffix}", args.endpoint.trim_end_matches('/')),
            ),
        };
        for _ in 0..args.concurrency {
            let mut client = match &base {
                Client::Grpc(g, p) => Client::Grpc(g.clone(), p),
                Client::Http(c, u) => Client::Http(c.clone(), u.clone()),
            };
            let body = body.clone();
            let totals = totals.clone();
            let (batch, gzip, max_requests) =
                (args.batch_size as u64, args.gzip, args.max_requests);
            tasks.push(tokio::spawn(async move {
                let mut latencies_micros = Vec::new();
                let mut next = Instant::now();
                while Instant::now() < deadline
                    && totals.requests.fetch_add(1, Ordering::Relaxed) < max_requests
                {
                    if let Some(period) = period {
                        tokio::time::sleep_until(next.into()).await;
                        next += period;
                    }
                    let sent = Instant::now();
                    match client.send(body.clone(), gzip).await {
                        Ok(true) => {
                            totals.accepted_items.fetch_add(batch, Ordering::Relaxed);
                        }
                        Ok(false) => {
                            totals.refused_items.fetch_add(batch, Ordering::Relaxed);
                            // Honour the collector's request to back off, briefly.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) => {
                            if totals.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("request failed: {e}");
                            }
                        }
                    }
                    latencies_micros.push(sent.elapsed().as_micros() as u64);
                }
                latencies_micros
            }));
        }
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    let accepted = totals.accepted_items.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "requests": latencies.len(),
            "accepted_items": accepted,
            "refused_items": totals.refused_items.load(Ordering::Relaxed),
            "errors": totals.errors.load(Ordering::Relaxed),
            "seconds": elapsed,
            "accepted_items_per_second": accepted as f64 / elapsed,
            "latency_p50_micros": percentile(0.5),
            "latency_p99_micros": percentile(0.99),
        })
    );
    Ok(())
}
