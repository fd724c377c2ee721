//! OTLP/gRPC: the three `Export` services, served on our own HTTP/2
//! connection loop (`serve.rs`) with our own unary framing.
//!
//! Why not tonic's server: answers follow the OTLP specification instead of
//! tonic's defaults (a malformed message is INVALID_ARGUMENT, not INTERNAL;
//! an oversize one RESOURCE_EXHAUSTED without RetryInfo, not OUT_OF_RANGE,
//! which clients retry forever; a full queue RESOURCE_EXHAUSTED with
//! RetryInfo), connections follow the listener's deadlines, and a gzip or
//! zstd message is decompressed here, its output reserved in the in-flight
//! budget before it is allocated (tonic inflates it outside any budget, so
//! concurrent compressed requests could take memory far past the limit).
//!
//! A unary gRPC request body is one length-prefixed message: a flag byte
//! (1 = compressed with the `grpc-encoding`), a 4-byte big-endian length,
//! the message. The answer is the response message followed by trailers
//! with `grpc-status`, or, for an error, headers only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
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
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::decode::{self, BodyError, Encoding};
use super::serve::{self, Request, Response};
use super::{GrpcConfig, MIB};
use crate::datamodel::ids::CheckIds;
use crate::pipeline::in_flight::Reservation;
use crate::pipeline::{Consumer, Refused};
use crate::receivers::ReceiverContext;
use crate::signal::WireBatch;
use crate::signal::{Batch, Signal};
use crate::telemetry::ReceiverStats;

/// What differs between the three OTLP services.
pub trait OtlpService: Send + Sync + 'static {
    type Request: prost::Message + Default + CheckIds + Send + 'static;
    type Response: prost::Message + Default + Send + 'static;
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
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const SIGNAL: Signal = Signal::Traces;
    fn into_batch(request: Self::Request) -> Batch {
        Batch::Traces(request.into())
    }
}

impl OtlpService for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const SIGNAL: Signal = Signal::Metrics;
    fn into_batch(request: Self::Request) -> Batch {
        Batch::Metrics(request.into())
    }
}

impl OtlpService for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
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
    let listener = TcpListener::bind(config.endpoint.resolve()?).await?;
    let address = listener.local_addr()?;
    let max_bytes = config.max_recv_msg_size_mib.saturating_mul(MIB);
    let endpoint = |signal: Signal| {
        Arc::new(Endpoint {
            consumer: context.consumers.get(signal).cloned(),
            stats: context.telemetry.receiver(&context.id, "grpc", signal),
            auth: auth.clone(),
            max_bytes,
        })
    };
    let (traces, metrics, logs) = (
        endpoint(Signal::Traces),
        endpoint(Signal::Metrics),
        endpoint(Signal::Logs),
    );
    let handler: serve::Handler = Arc::new(move |request: Request| {
        let path = request.uri().path();
        if path == Traces::PATH {
            Box::pin(export::<Traces>(traces.clone(), request))
        } else if path == Metrics::PATH {
            Box::pin(export::<Metrics>(metrics.clone(), request))
        } else if path == Logs::PATH {
            Box::pin(export::<Logs>(logs.clone(), request))
        } else {
            let status = Status::unimplemented(format!("unknown method {path}"));
            Box::pin(async move { status_response(status) })
        }
    });
    let shutdown = context.shutdown.clone();
    let stats = context
        .telemetry
        .listener(&context.id, "grpc", config.max_connections);
    let table =
        super::connection_table::ConnectionTable::new(config.max_connections, stats.clone());
    let tls = match &config.tls {
        Some(tls) => Some(
            tls.acceptor(&[b"h2"])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let options = serve::Options {
        deadlines: config.deadlines(),
        grpc_max_concurrent_streams: Some(config.max_concurrent_streams),
    };
    let task = tokio::spawn(async move {
        let accepted = crate::telemetry::connections::accept_loop(
            listener,
            stats,
            table,
            tls,
            options.deadlines.handshake_timeout,
        );
        serve::serve(accepted, handler, options, shutdown).await;
    });
    Ok((address, task))
}

/// One service's state.
struct Endpoint {
    consumer: Option<Consumer>,
    stats: Arc<ReceiverStats>,
    auth: Option<Arc<super::auth::Authenticator>>,
    max_bytes: usize,
}

async fn export<S: OtlpService>(endpoint: Arc<Endpoint>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let answer = answer::<S>(&endpoint, request).await;
    endpoint.stats.answered(started, answer.is_err());
    match answer {
        Ok(()) => success::<S>(),
        Err(status) => status_response(status),
    }
}

/// Why a request was not accepted, as the gRPC status the client gets.
async fn answer<S: OtlpService>(endpoint: &Endpoint, request: Request) -> Result<(), Status> {
    let (parts, mut body) = request.into_parts();
    if serve::header_bytes(&parts.headers) > serve::MAX_HEADER_BYTES {
        // Not retryable: the same request would be refused again.
        return Err(Status::resource_exhausted(format!(
            "request headers are larger than the limit of {} bytes",
            serve::MAX_HEADER_BYTES
        )));
    }
    if let Some(auth) = &endpoint.auth
        && !auth.admits(&parts.headers)
    {
        return Err(Status::unauthenticated("missing or invalid credentials"));
    }
    let Some(consumer) = &endpoint.consumer else {
        return Err(Status::unimplemented(format!(
            "no pipeline receives {} from this receiver",
            S::SIGNAL
        )));
    };
    // Before reading the body: a refused request costs nothing.
    consumer.admits_memory().map_err(retry_later)?;
    let encoding = match parts.headers.get("grpc-encoding").map(|v| v.to_str()) {
        None => Encoding::Identity,
        Some(Ok(value)) => Encoding::from_header(Some(value)).map_err(|_| {
            Status::unimplemented(format!(
                "unsupported grpc-encoding {value:?}: expected gzip, zstd or identity"
            ))
        })?,
        Some(Err(_)) => return Err(Status::unimplemented("unreadable grpc-encoding")),
    };
    // The body's bytes count against the in-flight budget as they arrive
    // (a gRPC request declares no length up front), the decompressed bytes
    // before they are allocated; all is held until the request is answered.
    let mut reservation = consumer.reserve(0).map_err(retry_later)?;
    let (compressed, message) =
        read_message(&mut body, endpoint.max_bytes, &mut reservation).await?;
    drop(body);
    // Again once the body is in: many requests admitted together (a flood
    // that arrived before memory rose) must not all be decompressed and
    // queued.
    consumer.admits_memory().map_err(retry_later)?;
    let message = if compressed {
        if encoding == Encoding::Identity {
            return Err(Status::invalid_argument(
                "a compressed message without grpc-encoding",
            ));
        }
        let out = decode::decompress_within(&message, encoding, endpoint.max_bytes, &mut |more| {
            reservation.as_mut().is_none_or(|r| r.grow(more))
        })
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => too_large(limit),
            BodyError::OverBudget => retry_later(Refused::InFlightBytes),
            BodyError::Malformed(message) => Status::invalid_argument(message),
        })?;
        drop(message);
        if let Some(reservation) = &mut reservation {
            reservation.shrink_to(out.len());
        }
        Bytes::from(out)
    } else {
        message
    };
    let message_bytes = message.len();
    let batch = if consumer.accepts_wire() {
        // Validated, counted and passed on as received.
        WireBatch::parse(S::SIGNAL, message)
            .map(|encoded| Batch::Wire(Arc::new(encoded)))
            .map_err(|e| Status::invalid_argument(format!("invalid OTLP protobuf: {e}")))?
    } else {
        let request = <S::Request as prost::Message>::decode(message)
            .map_err(|e| Status::invalid_argument(format!("invalid OTLP protobuf: {e}")))?;
        request
            .check_ids()
            .map_err(|e| Status::invalid_argument(format!("invalid OTLP protobuf: {e}")))?;
        S::into_batch(request)
    };
    let items = batch.item_count() as u64;
    let stats = &endpoint.stats;
    let consumed = consumer.consume(batch).await;
    drop(reservation);
    match consumed {
        Ok(()) => {
            consumer.accepted_bytes(message_bytes);
            stats.accepted_items.fetch_add(items, Ordering::Relaxed);
            Ok(())
        }
        Err(refused) => {
            stats.refused_items.fetch_add(items, Ordering::Relaxed);
            Err(match refused {
                Refused::QueueFull { .. } | Refused::MemoryLimit | Refused::InFlightBytes => {
                    retry_later(refused)
                }
                Refused::ShuttingDown | Refused::Storage { .. } => {
                    Status::unavailable(refused.to_string())
                }
                Refused::Malformed(_) => Status::invalid_argument(refused.to_string()),
                Refused::ComponentFailed(_) => Status::internal(refused.to_string()),
            })
        }
    }
}

/// Reads the one length-prefixed message of a unary request: whether it
/// is compressed, and its bytes. Each chunk is reserved before it is kept;
/// a declared length over `max_bytes` is refused before the rest arrives.
async fn read_message(
    body: &mut super::deadlines::DeadlineBody<hyper::body::Incoming>,
    max_bytes: usize,
    reservation: &mut Option<Reservation>,
) -> Result<(bool, Bytes), Status> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0usize;
    let mut declared: Option<usize> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if super::deadlines::is_timeout(&*e) {
                Status::deadline_exceeded(e.to_string())
            } else {
                Status::cancelled(format!("cannot read the request: {e}"))
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if let Some(reservation) = reservation
            && !reservation.grow(data.len())
        {
            return Err(retry_later(Refused::InFlightBytes));
        }
        received += data.len();
        chunks.push(data);
        if declared.is_none() && received >= 5 {
            let prefix = concat_prefix(&chunks);
            let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
            if length > max_bytes {
                return Err(too_large(max_bytes));
            }
            declared = Some(length);
        }
        if declared.is_some_and(|length| received > 5 + length) {
            return Err(Status::invalid_argument(
                "a unary request carries exactly one message",
            ));
        }
    }
    let Some(length) = declared else {
        return Err(Status::invalid_argument("the request carries no message"));
    };
    if received < 5 + length {
        return Err(Status::invalid_argument("the request message is truncated"));
    }
    let whole = if chunks.len() == 1 {
        chunks.pop().unwrap_or_default()
    } else {
        let mut whole = Vec::with_capacity(received);
        for chunk in chunks.drain(..) {
            whole.extend_from_slice(&chunk);
        }
        Bytes::from(whole)
    };
    match whole[0] {
        0 => Ok((false, whole.slice(5..))),
        1 => Ok((true, whole.slice(5..))),
        flag => Err(Status::invalid_argument(format!(
            "unknown message flag {flag}"
        ))),
    }
}

/// The first five bytes of the chunks (at least five arrived).
fn concat_prefix(chunks: &[Bytes]) -> [u8; 5] {
    let mut prefix = [0u8; 5];
    let mut filled = 0;
    for chunk in chunks {
        let take = (5 - filled).min(chunk.len());
        prefix[filled..filled + take].copy_from_slice(&chunk[..take]);
        filled += take;
        if filled == 5 {
            break;
        }
    }
    prefix
}

fn too_large(limit: usize) -> Status {
    // Without RetryInfo: the same message would be refused again.
    Status::resource_exhausted(format!(
        "the request message is larger than the limit of {limit} bytes"
    ))
}

fn retry_later(refused: Refused) -> Status {
    Status::with_error_details(
        Code::ResourceExhausted,
        refused.to_string(),
        ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
    )
}

/// An error as a trailers-only response.
fn status_response(status: Status) -> Response {
    status.into_http()
}

/// The empty export response, then `grpc-status: 0` in the trailers.
fn success<S: OtlpService>() -> Response {
    let message = prost::Message::encode_to_vec(&S::Response::default());
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = [
        Ok::<_, Infallible>(Frame::data(Bytes::from(framed))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let mut response = http::Response::new(axum::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}
