//! Throughput of the `filelog` receiver: writes an nginx-style access log
//! of `--lines` lines, then times sidewatch (in this process) reading it
//! from the beginning and delivering every record to a counting OTLP/gRPC
//! sink on 127.0.0.1, once without operators and once with the access-log
//! regex, timestamp, severity and three moves of pipelines/logs.yaml.
//! The figure is end to end: read, parse, batch, encode, gRPC, decode.
//!
//!   cargo run --release --example filelog_throughput -- --lines 1000000

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use tonic::{Request, Response, Status};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
}

#[derive(Clone, Default)]
struct Sink(Arc<AtomicU64>);

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        r: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let n = sidewatch::signal::log_record_count(r.get_ref()) as u64;
        self.0.fetch_add(n, Ordering::Relaxed);
        Ok(Response::new(Default::default()))
    }
}

const OPERATORS: &str = r#"
    operators:
      - type: regex_parser
        regex: '^(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>[^ "?]+)[^"]*" (?P<status>\d{3}) (?P<bytes>\d+)'
        timestamp: { parse_from: attributes.time, layout: "%d/%b/%Y:%H:%M:%S %z" }
        severity: { parse_from: attributes.status, mapping: { info: [2xx, 3xx], warn: 4xx, error: 5xx } }
      - { type: move, from: attributes.status, to: 'attributes["http.response.status_code"]' }
      - { type: move, from: attributes.method, to: 'attributes["http.request.method"]' }
      - { type: move, from: attributes.path, to: 'attributes["url.path"]' }
"#;

async fn run(file: &std::path::Path, operators: &str, lines: u64) -> f64 {
    let received = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = listener.local_addr().unwrap();
    // The OTLP exporter compresses with gzip by default, as the Collector's does.
    let service = LogsServiceServer::new(Sink(received.clone()))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Zstd);
    let server = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
    });
    let yaml = format!(
        r#"
receivers:
  filelog:
    include: [{file}]
    start_at: beginning
    poll_interval: 50ms
{operators}
exporters:
  otlp: {{ endpoint: "http://{sink}" }}
service:
  telemetry: {{ metrics: {{ address: 127.0.0.1:0 }} }}
  pipelines:
    logs: {{ receivers: [filelog], exporters: [otlp] }}
"#,
        file = file.display()
    );
    let loaded = sidewatch::plan::load_str(&yaml, "filelog_throughput").expect("valid config");
    let started = Instant::now();
    let collector = sidewatch::pipeline::build::start(&loaded.plan)
        .await
        .expect("starts");
    // Bounded: at most 10 minutes.
    while received.load(Ordering::Relaxed) < lines && started.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    collector.shutdown().await;
    server.abort();
    assert_eq!(got, lines, "every line delivered");
    lines as f64 / elapsed
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.log");
    {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for i in 0..args.lines {
            let status = [200, 200, 200, 304, 404, 500][(i % 6) as usize];
            writeln!(
                out,
                r#"192.0.2.{} - - [03/Dec/2026:09:{:02}:{:02} +0000] "GET /api/items/{i}?page=2 HTTP/1.1" {status} {} "-" "Mozilla/5.0""#,
                i % 250,
                (i / 60) % 60,
                i % 60,
                200 + i % 5000
            )
            .unwrap();
        }
    }
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!("{} lines, {:.1} MB", args.lines, bytes as f64 / 1e6);
    for (name, operators) in [
        ("no operators", ""),
        ("nginx regex + timestamp + severity + 3 moves", OPERATORS),
    ] {
        let rate = run(&file, operators, args.lines).await;
        println!("{name}: {:.0} lines/s", rate);
    }
}
