//! A real OTLP/gRPC backend (tonic, the generated services) that records
//! what it receives and can be told to fail.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

#[derive(Default)]
pub struct Recorded {
    pub traces: Mutex<Vec<ExportTraceServiceRequest>>,
    pub metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    pub logs: Mutex<Vec<ExportLogsServiceRequest>>,
    /// While set, every export is answered UNAVAILABLE.
    pub unavailable: AtomicBool,
    pub calls: AtomicU64,
}

impl Recorded {
    pub fn span_count(&self) -> usize {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .map(sidewatch::signal::span_count)
            .sum()
    }

    /// The names of every span received (duplicates collapse).
    pub fn span_names(&self) -> std::collections::BTreeSet<String> {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn data_point_count(&self) -> usize {
        self.metrics
            .lock()
            .unwrap()
            .iter()
            .map(sidewatch::signal::data_point_count)
            .sum()
    }

    pub fn log_record_count(&self) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .map(sidewatch::signal::log_record_count)
            .sum()
    }

    fn check(&self) -> Result<(), Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(Status::unavailable("backend told to fail"));
        }
        Ok(())
    }
}

#[derive(Clone)]
struct Service(Arc<Recorded>);

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.0.check()?;
        self.0.traces.lock().unwrap().push(request.into_inner());
        Ok(Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.0.check()?;
        self.0.metrics.lock().unwrap().push(request.into_inner());
        Ok(Response::new(Default::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Service {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.0.check()?;
        self.0.logs.lock().unwrap().push(request.into_inner());
        Ok(Response::new(Default::default()))
    }
}

pub struct Backend {
    pub address: SocketAddr,
    pub recorded: Arc<Recorded>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    /// Starts on `address` (port 0 for any free port).
    pub async fn start(address: SocketAddr) -> Backend {
        // A fixed port comes back after a pause, and another test's
        // free-port probe may hold it for a moment: try again for a while.
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(address).await {
                Ok(listener) => break listener,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && address.port() != 0
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("bind backend on {address}: {e}"),
            }
        };
        let address = listener.local_addr().unwrap();
        let recorded = Arc::new(Recorded::default());
        let service = Service(recorded.clone());
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(
                    TraceServiceServer::new(service.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd),
                )
                .add_service(
                    MetricsServiceServer::new(service.clone())
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd),
                )
                .add_service(
                    LogsServiceServer::new(service)
                        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                        .accept_compressed(tonic::codec::CompressionEncoding::Zstd),
                )
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    token.cancelled_owned(),
                )
                .await
                .expect("backend serve");
        });
        Backend {
            address,
            recorded,
            stop,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Polls `done` every 20 ms until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}
