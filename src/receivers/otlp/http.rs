//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf or
//! JSON bodies, as the OTLP specification defines them.
//!
//! Answers: 200 with an export response in the request's format; 400 for a
//! malformed body, 413 when too large, 415 for an unsupported Content-Type
//! or Content-Encoding, 503 with Retry-After when a queue is full. Error
//! bodies are a `google.rpc.Status`, as the specification asks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::HttpConfig;
use super::decode::{self, BodyError, Encoding, Format};
use crate::pipeline::{Consumer, Refused};
use crate::receivers::ReceiverContext;
use crate::signal::WireBatch;
use crate::signal::{Batch, Signal};
use crate::telemetry::ReceiverStats;

struct Route {
    consumer: Option<Consumer>,
    stats: Arc<ReceiverStats>,
    signal: Signal,
    max_bytes: usize,
    auth: Option<Arc<super::auth::Authenticator>>,
}

pub async fn start(
    config: &HttpConfig,
    context: &ReceiverContext,
    auth: Option<Arc<super::auth::Authenticator>>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(config.endpoint.resolve()?).await?;
    let address = listener.local_addr()?;
    let route = |signal: Signal| {
        Arc::new(Route {
            consumer: context.consumers.get(signal).cloned(),
            stats: context.telemetry.receiver(&context.id, "http", signal),
            signal,
            max_bytes: config.max_request_body_size,
            auth: auth.clone(),
        })
    };
    let app = axum::Router::new()
        .route(
            &config.traces_url_path,
            post(export).with_state(route(Signal::Traces)),
        )
        .route(
            &config.metrics_url_path,
            post(export).with_state(route(Signal::Metrics)),
        )
        .route(
            &config.logs_url_path,
            post(export).with_state(route(Signal::Logs)),
        )
        // We enforce our own limit, after decompression too.
        .layer(axum::extract::DefaultBodyLimit::disable());
    let shutdown = context.shutdown.clone();
    let stats = context
        .telemetry
        .listener(&context.id, "http", config.max_connections);
    let tls = match &config.tls {
        Some(tls) => Some(
            tls.acceptor(&[b"h2", b"http/1.1"])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let table =
        super::connection_table::ConnectionTable::new(config.max_connections, stats.clone());
    let options = super::serve::Options {
        deadlines: config.deadlines(),
        grpc_max_concurrent_streams: None,
    };
    let cors = config.cors.clone().map(Arc::new);
    let handler: super::serve::Handler = Arc::new(move |request: super::serve::Request| {
        let mut app = app.clone();
        let cors = cors.clone();
        Box::pin(async move {
            // Preflights are answered before routing: no route takes OPTIONS.
            if let Some(preflight) = cors
                .as_ref()
                .and_then(|c| c.preflight(request.method(), request.headers()))
            {
                return preflight;
            }
            let origin = request.headers().get(header::ORIGIN).cloned();
            // The router's errors are Infallible.
            let mut response = match tower_service::Service::call(&mut app, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if let Some(cors) = &cors {
                cors.decorate(origin.as_ref(), &mut response);
            }
            response
        })
    });
    let task = tokio::spawn(async move {
        let connections = crate::telemetry::connections::accept_loop(
            listener,
            stats,
            table,
            tls,
            options.deadlines.handshake_timeout,
        );
        super::serve::serve(connections, handler, options, shutdown).await;
    });
    Ok((address, task))
}

/// A `google.rpc.Status`, the error body OTLP/HTTP specifies.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error_response(
    status: StatusCode,
    grpc_code: tonic::Code,
    message: String,
    format: Format,
) -> Response {
    let body = match format {
        Format::Protobuf => RpcStatus {
            code: grpc_code as i32,
            message,
        }
        .encode_to_vec(),
        Format::Json => serde_json::json!({ "code": grpc_code as i32, "message": message })
            .to_string()
            .into_bytes(),
    };
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// How much of an unread body is read and discarded after an early
/// answer, as a multiple of the body limit, and for how long at most.
const DRAIN_FACTOR: usize = 4;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

async fn export(State(route): State<Arc<Route>>, headers: HeaderMap, body: Body) -> Response {
    let started = std::time::Instant::now();
    let mut body = body;
    let response = if super::serve::header_bytes(&headers) > super::serve::MAX_HEADER_BYTES {
        error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            tonic::Code::ResourceExhausted,
            format!(
                "request headers are larger than the limit of {} bytes",
                super::serve::MAX_HEADER_BYTES
            ),
            Format::Json,
        )
    } else if let Some(auth) = &route.auth
        && !auth.admits(&headers)
    {
        let format = Format::from_content_type(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        )
        .unwrap_or(Format::Json);
        let mut response = error_response(
            StatusCode::UNAUTHORIZED,
            tonic::Code::Unauthenticated,
            "missing or invalid credentials".to_string(),
            format,
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer, Basic realm=\"sidewatch\""),
        );
        response
    } else if let Some(consumer) = &route.consumer
        && let Err(refused) = consumer.admits_memory()
    {
        // Before reading the body: a refused request costs nothing.
        refused_response(refused, Format::Json)
    } else {
        handle(&route, &headers, &mut body).await
    };
    route
        .stats
        .answered(started, !response.status().is_success());
    if http_body::Body::is_end_stream(&body)
        || drain(&mut body, route.max_bytes.saturating_mul(DRAIN_FACTOR)).await
    {
        response
    } else {
        close_unread(response)
    }
}

/// Reads and discards what is left of a body answered early, up to
/// `limit` bytes and [`DRAIN_TIME`]: a client that writes its whole body
/// before reading (Python's urllib, curl without Expect) then reads the
/// answer, where closing at once would fail its write with a broken pipe
/// and make it retry the same request. True when the body was read to
/// its end, so the connection may serve another request.
async fn drain(body: &mut Body, limit: usize) -> bool {
    let mut discarded = 0usize;
    let read_to_end = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            if let Some(data) = frame.data_ref() {
                discarded += data.len();
                if discarded > limit {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read_to_end)
        .await
        .unwrap_or(false)
}

/// An answer given before the request body was read to its end: the
/// connection is closed after it rather than left for a next request
/// that would be read from the middle of the unread body (or find the
/// connection reset under it).
fn close_unread(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

async fn handle(route: &Route, headers: &HeaderMap, body: &mut Body) -> Response {
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let format = match Format::from_content_type(header_str(header::CONTENT_TYPE)) {
        Ok(format) => format,
        Err(message) => {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                message,
                Format::Json,
            );
        }
    };
    let fail = |status: StatusCode, code: tonic::Code, message: String| {
        error_response(status, code, message, format)
    };
    let encoding = match Encoding::from_header(header_str(header::CONTENT_ENCODING)) {
        Ok(encoding) => encoding,
        Err(message) => {
            return fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                message,
            );
        }
    };
    let Some(consumer) = &route.consumer else {
        return fail(
            StatusCode::NOT_FOUND,
            tonic::Code::Unimplemented,
            format!("no pipeline receives {} from this receiver", route.signal),
        );
    };
    let too_large = |limit: usize| {
        fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = header_str(header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > route.max_bytes) {
        return too_large(route.max_bytes);
    }
    // The body's bytes are reserved before it is read: as declared, or
    // the most it may be when undeclared (chunked).
    let mut reservation = match consumer.reserve(declared.unwrap_or(route.max_bytes)) {
        Ok(reservation) => reservation,
        Err(refused) => return refused_response(refused, format),
    };
    let raw = match http_body_util::Limited::new(body, route.max_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(route.max_bytes),
        Err(e) if super::deadlines::is_timeout(&*e) => {
            return fail(
                StatusCode::REQUEST_TIMEOUT,
                tonic::Code::DeadlineExceeded,
                e.to_string(),
            );
        }
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                format!("cannot read the request body: {e}"),
            );
        }
    };
    if let Some(reservation) = &mut reservation {
        reservation.shrink_to(raw.len());
    }
    // Again once the body is in: many requests admitted together (a flood
    // that arrived before memory rose) must not all be decompressed and
    // queued.
    if let Err(refused) = consumer.admits_memory() {
        return refused_response(refused, format);
    }
    let bytes: bytes::Bytes = match encoding {
        Encoding::Identity => raw,
        // The decompressed bytes are reserved as the output grows.
        _ => match decode::decompress_within(&raw, encoding, route.max_bytes, &mut |more| {
            reservation.as_mut().is_none_or(|r| r.grow(more))
        }) {
            Ok(out) => {
                if let Some(reservation) = &mut reservation {
                    reservation.shrink_to(raw.len() + out.len());
                }
                out.into()
            }
            Err(BodyError::TooLarge { limit }) => return too_large(limit),
            Err(BodyError::OverBudget) => return refused_response(Refused::InFlightBytes, format),
            Err(BodyError::Malformed(message)) => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    tonic::Code::InvalidArgument,
                    message,
                );
            }
        },
    };
    let body_bytes = bytes.len();
    let decoded = match route.signal {
        // Validated, counted and passed on as received.
        _ if format == Format::Protobuf && consumer.accepts_wire() => {
            WireBatch::parse(route.signal, bytes)
                .map(|encoded| Batch::Wire(Arc::new(encoded)))
                .map_err(|e| BodyError::Malformed(format!("invalid OTLP protobuf: {e}")))
        }
        Signal::Traces => decode::decode::<ExportTraceServiceRequest>(&bytes, format)
            .map(|r| Batch::Traces(r.into())),
        Signal::Metrics => decode::decode::<ExportMetricsServiceRequest>(&bytes, format)
            .map(|r| Batch::Metrics(r.into())),
        Signal::Logs => decode::decode::<ExportLogsServiceRequest>(&bytes, format)
            .map(|r| Batch::Logs(r.into())),
    };
    let batch = match decoded {
        Ok(batch) => batch,
        Err(e) => {
            return fail(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                e.to_string(),
            );
        }
    };
    let items = batch.item_count() as u64;
    match consumer.consume(batch).await {
        Ok(()) => {
            consumer.accepted_bytes(body_bytes);
            route
                .stats
                .accepted_items
                .fetch_add(items, Ordering::Relaxed);
            success(route.signal, format)
        }
        Err(refused) => {
            route
                .stats
                .refused_items
                .fetch_add(items, Ordering::Relaxed);
            refused_response(refused, format)
        }
    }
}

/// The answer to a refused request: 503 with Retry-After for everything
/// retryable, 400 for data the scanner passed and prost did not.
fn refused_response(refused: Refused, format: Format) -> Response {
    let code = match refused {
        Refused::Malformed(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                refused.to_string(),
                format,
            );
        }
        Refused::ComponentFailed(_) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::Internal,
                refused.to_string(),
                format,
            );
        }
        Refused::QueueFull { .. } | Refused::MemoryLimit | Refused::InFlightBytes => {
            tonic::Code::ResourceExhausted
        }
        Refused::ShuttingDown | Refused::Storage { .. } => tonic::Code::Unavailable,
    };
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        code,
        refused.to_string(),
        format,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

fn success(signal: Signal, format: Format) -> Response {
    let body = match (signal, format) {
        (_, Format::Json) => b"{}".to_vec(),
        (Signal::Traces, Format::Protobuf) => ExportTraceServiceResponse::default().encode_to_vec(),
        (Signal::Metrics, Format::Protobuf) => {
            ExportMetricsServiceResponse::default().encode_to_vec()
        }
        (Signal::Logs, Format::Protobuf) => ExportLogsServiceResponse::default().encode_to_vec(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}
