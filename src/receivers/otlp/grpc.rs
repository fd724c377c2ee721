//! OTLP/gRPC: the three `Export` services on one tonic server.
//!
//! We serve them through our own codec rather than the generated servers
//! so answers follow the OTLP specification instead of tonic's defaults: a
//! malformed message is INVALID_ARGUMENT (tonic says INTERNAL), an oversize
//! one RESOURCE_EXHAUSTED without RetryInfo (tonic says OUT_OF_RANGE, which
//! clients retry forever), and a full queue RESOURCE_EXHAUSTED with
//! RetryInfo, which clients retry after the delay.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{GrpcConfig, MIB};
use crate::datamodel::ids::CheckIds;
use crate::pipeline::in_flight::Reservation;
use crate::pipeline::{Consumer, Refused};
use crate::receivers::ReceiverContext;
use crate::signal::{Batch, Signal};
use crate::telemetry::ReceiverStats;
use crate::wire::EncodedBatch;

/// What differs between the three OTLP services.
pub trait OtlpService: Send + Sync + 'static {
    type Request: prost::Message + Default + CheckIds + Send + 'static;
    type Response: prost::Message + Default + Send + 'static;
    const NAME: &'static str;
    const PATH: &'static str;
    const SIGNAL: Signal;
    fn into_batch(request: Self::Request) -> Batch;
}

pub struct Traces;
pub struct Metrics;
pub struct Logs;

impl OtlpService for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const SIGNAL: Signal = Signal::Traces;
    fn into_batch(request: Self::Request) -> Batch {
        Batch::Traces(request.into())
    }
}

impl OtlpService for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const SIGNAL: Signal = Signal::Metrics;
    fn into_batch(request: Self::Request) -> Batch {
        Batch::Metrics(request.into())
    }
}

impl OtlpService for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const SIGNAL: Signal = Signal::Logs;
    fn into_batch(request: Self::Request) -> Batch {
        Batch::Logs(request.into())
    }
}

pub async fn start(
    config: &GrpcConfig,
    context: &ReceiverContext,
    auth: Option<Arc<super::auth::Authenticator>>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(config.endpoint.0).await?;
    let address = listener.local_addr()?;
    let max_bytes = config.max_recv_msg_size_mib.saturating_mul(MIB);
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(config.max_concurrent_streams)
        // Pings find peers that vanished without closing, so their
        // connection slots are freed.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .add_service(Service::<Traces>::new(context, max_bytes, auth.clone()))
        .add_service(Service::<Metrics>::new(context, max_bytes, auth.clone()))
        .add_service(Service::<Logs>::new(context, max_bytes, auth));
    let shutdown = context.shutdown.clone();
    let stats = context
        .telemetry
        .listener(&context.id, "grpc", config.max_connections);
    let tls = match &config.tls {
        Some(tls) => Some(
            tls.acceptor(&[b"h2"])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let task = tokio::spawn(async move {
        let accepted = crate::telemetry::connections::accept_loop(listener, stats, tls);
        let incoming = crate::telemetry::connections::incoming(accepted);
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "OTLP/gRPC server failed");
        }
    });
    Ok((address, task))
}

struct Handler {
    consumer: Option<Consumer>,
    stats: Arc<ReceiverStats>,
    auth: Option<Arc<super::auth::Authenticator>>,
}

pub struct Service<S> {
    handler: Arc<Handler>,
    max_bytes: usize,
    _service: PhantomData<fn() -> S>,
}

impl<S> Clone for Service<S> {
    fn clone(&self) -> Self {
        Service {
            handler: self.handler.clone(),
            max_bytes: self.max_bytes,
            _service: PhantomData,
        }
    }
}

impl<S: OtlpService> Service<S> {
    fn new(
        context: &ReceiverContext,
        max_bytes: usize,
        auth: Option<Arc<super::auth::Authenticator>>,
    ) -> Self {
        Service {
            handler: Arc::new(Handler {
                consumer: context.consumers.get(S::SIGNAL).cloned(),
                stats: context.telemetry.receiver(&context.id, "grpc", S::SIGNAL),
                auth,
            }),
            max_bytes,
            _service: PhantomData,
        }
    }
}

impl<S: OtlpService> NamedService for Service<S> {
    const NAME: &'static str = S::NAME;
}

impl<S: OtlpService> tower_service::Service<http::Request<tonic::body::Body>> for Service<S> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let handler = self.handler.clone();
        let max_bytes = self.max_bytes;
        Box::pin(async move {
            let started = std::time::Instant::now();
            if request.uri().path() != S::PATH {
                return Ok(Status::unimplemented(format!(
                    "unknown method {}",
                    request.uri().path()
                ))
                .into_http());
            }
            if let Some(auth) = &handler.auth
                && !auth.admits(
                    request
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .map(|v| v.as_bytes()),
                )
            {
                handler.stats.answered(started, true);
                return Ok(Status::unauthenticated("missing or invalid credentials").into_http());
            }
            if let Some(consumer) = &handler.consumer
                && let Err(refused) = consumer.admits_memory()
            {
                // Before reading the body: a refused request costs nothing.
                handler.stats.answered(started, true);
                return Ok(retry_later(refused).into_http());
            }
            // The body's bytes count against the in-flight budget as they
            // arrive (a gRPC request declares no length up front); the
            // reservation is held until the request is answered.
            let reservation = match &handler.consumer {
                Some(consumer) => match consumer.reserve(0) {
                    Ok(reservation) => reservation.map(|r| Arc::new(Mutex::new(r))),
                    Err(refused) => return Ok(retry_later(refused).into_http()),
                },
                None => None,
            };
            let request = match &reservation {
                Some(reservation) => request.map(|body| {
                    tonic::body::Body::new(Budgeted {
                        inner: body,
                        reservation: reservation.clone(),
                    })
                }),
                None => request,
            };
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            accept.enable(CompressionEncoding::Zstd);
            let mut grpc = Grpc::new(OtlpCodec::<S> {
                encoded: handler
                    .consumer
                    .as_ref()
                    .is_some_and(|c| c.accepts_encoded()),
                _service: PhantomData,
            })
            .apply_compression_config(accept, EnabledCompressionEncodings::default())
            .apply_max_message_size_config(Some(max_bytes), None);
            let reached_handler = Arc::new(AtomicBool::new(false));
            let unary = Unary::<S> {
                handler: handler.clone(),
                reached: reached_handler.clone(),
                _service: PhantomData,
            };
            let mut response = grpc.unary(unary, request).await;
            if !reached_handler.load(Ordering::Relaxed) {
                // The request failed before decoding completed.
                follow_otlp_codes(&mut response);
            }
            // A unary success carries its status in the trailers; an error
            // is a trailers-only response with the status in the headers.
            let failed = response
                .headers()
                .get("grpc-status")
                .is_some_and(|code| code.as_bytes() != b"0");
            handler.stats.answered(started, failed);
            drop(reservation);
            Ok(response)
        })
    }
}

fn retry_later(refused: Refused) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        refused.to_string(),
        ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
    )
}

/// A request body whose bytes are reserved in the in-flight budget as
/// they arrive; past the budget it fails with a retryable status, which
/// tonic answers with.
struct Budgeted {
    inner: tonic::body::Body,
    reservation: Arc<Mutex<Reservation>>,
}

impl http_body::Body for Budgeted {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Status>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let mut reservation = self.reservation.lock().unwrap_or_else(|e| e.into_inner());
            if !reservation.grow(data.len()) {
                return Poll::Ready(Some(Err(retry_later(Refused::InFlightBytes))));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Maps tonic's answers to failed decoding onto the codes OTLP asks for.
fn follow_otlp_codes(response: &mut http::Response<tonic::body::Body>) {
    let headers = response.headers_mut();
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    let replacement = match code.map(Code::from) {
        Some(Code::OutOfRange) => Code::ResourceExhausted,
        Some(Code::Internal) => Code::InvalidArgument,
        _ => return,
    };
    headers.insert("grpc-status", http::HeaderValue::from(replacement as i32));
}

struct Unary<S> {
    handler: Arc<Handler>,
    reached: Arc<AtomicBool>,
    _service: PhantomData<fn() -> S>,
}

impl<S: OtlpService> UnaryService<Incoming<S::Request>> for Unary<S> {
    type Response = S::Response;
    type Future = BoxFuture<'static, Result<tonic::Response<S::Response>, Status>>;

    fn call(&mut self, request: tonic::Request<Incoming<S::Request>>) -> Self::Future {
        self.reached.store(true, Ordering::Relaxed);
        let handler = self.handler.clone();
        Box::pin(async move {
            let stats = &handler.stats;
            let Some(consumer) = &handler.consumer else {
                return Err(Status::unimplemented(format!(
                    "no pipeline receives {} from this receiver",
                    S::SIGNAL
                )));
            };
            let batch = match request.into_inner() {
                Incoming::Decoded(request) => S::into_batch(request),
                Incoming::Encoded(encoded) => Batch::Encoded(Arc::new(encoded)),
            };
            let items = batch.item_count() as u64;
            match consumer.consume(batch).await {
                Ok(()) => {
                    stats.accepted_items.fetch_add(items, Ordering::Relaxed);
                    Ok(tonic::Response::new(S::Response::default()))
                }
                Err(refused) => {
                    stats.refused_items.fetch_add(items, Ordering::Relaxed);
                    Err(match refused {
                        Refused::QueueFull { .. } => Status::with_error_details(
                            Code::ResourceExhausted,
                            refused.to_string(),
                            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
                        ),
                        Refused::MemoryLimit | Refused::InFlightBytes => retry_later(refused),
                        Refused::ShuttingDown | Refused::Storage { .. } => {
                            Status::unavailable(refused.to_string())
                        }
                        Refused::Malformed(_) => Status::invalid_argument(refused.to_string()),
                        Refused::ComponentFailed(_) => Status::internal(refused.to_string()),
                    })
                }
            }
        })
    }
}

/// A request as the codec hands it over.
enum Incoming<T> {
    Decoded(T),
    /// Validated by the wire scanner, still encoded.
    Encoded(EncodedBatch),
}

/// prost encoding, with decode errors reported as INVALID_ARGUMENT; or,
/// with `encoded`, validation without decoding.
struct OtlpCodec<S> {
    encoded: bool,
    _service: PhantomData<fn() -> S>,
}

impl<S: OtlpService> Codec for OtlpCodec<S> {
    type Encode = S::Response;
    type Decode = Incoming<S::Request>;
    type Encoder = OtlpEncoder<S::Response>;
    type Decoder = OtlpDecoder<S>;

    fn encoder(&mut self) -> Self::Encoder {
        OtlpEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder {
            encoded: self.encoded,
            _service: PhantomData,
        }
    }
}

struct OtlpEncoder<T>(PhantomData<fn(T)>);

impl<T: prost::Message> Encoder for OtlpEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

struct OtlpDecoder<S> {
    encoded: bool,
    _service: PhantomData<fn() -> S>,
}

impl<S: OtlpService> Decoder for OtlpDecoder<S> {
    type Item = Incoming<S::Request>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        if self.encoded {
            let bytes = src.copy_to_bytes(src.remaining());
            return EncodedBatch::parse(S::SIGNAL, bytes)
                .map(|encoded| Some(Incoming::Encoded(encoded)))
                .map_err(|e| Status::invalid_argument(format!("invalid OTLP protobuf: {e}")));
        }
        let request = <S::Request as prost::Message>::decode(src)
            .map_err(|e| Status::invalid_argument(format!("invalid OTLP protobuf: {e}")))?;
        request
            .check_ids()
            .map_err(|e| Status::invalid_argument(format!("invalid OTLP protobuf: {e}")))?;
        Ok(Some(Incoming::Decoded(request)))
    }
}
