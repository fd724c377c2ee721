//! A counting OTLP/gRPC sink for benchmarks: decodes every request (as a
//! real backend would), counts spans, data points and log records, and
//! serves the counts as JSON on `GET /counts`; `POST /pause` makes it
//! answer UNAVAILABLE from then on.
//!
//!   cargo run --release --example otlp_sink -- --grpc 127.0.0.1:14317 --http 127.0.0.1:14318

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:14317")]
    grpc: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:14318")]
    http: SocketAddr,
    /// Answer each export only after this many milliseconds: a slow
    /// backend.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    data_points: AtomicU64,
    log_records: AtomicU64,
    requests: AtomicU64,
    /// After `POST /pause`, every export is answered UNAVAILABLE, so a
    /// harness can read final counts before killing the sink without a
    /// delivery slipping in between.
    paused: std::sync::atomic::AtomicBool,
    delay: std::time::Duration,
}

impl Counts {
    async fn slow(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    fn check(&self) -> Result<(), Status> {
        if self.paused.load(Ordering::SeqCst) {
            return Err(Status::unavailable("paused"));
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Sink(Arc<Counts>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        r: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.slow().await;
        self.0.check()?;
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.spans.fetch_add(
            sidewatch::signal::span_count(r.get_ref()) as u64,
            Ordering::Relaxed,
        );
        Ok(Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Sink {
    async fn export(
        &self,
        r: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.0.slow().await;
        self.0.check()?;
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.data_points.fetch_add(
            sidewatch::signal::data_point_count(r.get_ref()) as u64,
            Ordering::Relaxed,
        );
        Ok(Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Sink {
    async fn export(
        &self,
        r: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.0.slow().await;
        self.0.check()?;
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.log_records.fetch_add(
            sidewatch::signal::log_record_count(r.get_ref()) as u64,
            Ordering::Relaxed,
        );
        Ok(Response::new(Default::default()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let counts = Arc::new(Counts {
        delay: std::time::Duration::from_millis(args.delay_ms),
        ..Default::default()
    });
    let sink = Sink(counts.clone());
    let paused = counts.clone();
    let http = axum::Router::new()
        .route(
            "/pause",
            axum::routing::post(move || {
                paused.paused.store(true, Ordering::SeqCst);
                async {}
            }),
        )
        .route(
            "/counts",
            axum::routing::get(move || {
                let c = counts.clone();
                async move {
                    axum::Json(serde_json::json!({
                        "spans": c.spans.load(Ordering::Relaxed),
                        "data_points": c.data_points.load(Ordering::Relaxed),
                        "log_records": c.log_records.load(Ordering::Relaxed),
                        "requests": c.requests.load(Ordering::Relaxed),
                    }))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(args.http).await?;
    tokio::spawn(async move { axum::serve(listener, http).await });
    eprintln!(
        "otlp_sink: gRPC on {}, counts on http://{}/counts",
        args.grpc, args.http
    );
    let max = 64 * 1024 * 1024;
    tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(sink.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(max),
        )
        .add_service(
            MetricsServiceServer::new(sink.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(max),
        )
        .add_service(
            LogsServiceServer::new(sink)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(max),
        )
        .serve_with_shutdown(args.grpc, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
