//! `zipkin`: Zipkin v2 spans over HTTP, `POST /api/v2/spans`, as JSON or
//! protobuf (optionally gzip or zstd), converted to OTLP as the
//! Collector's zipkin receiver does (convert.rs), in its config shape:
//!
//! ```yaml
//! zipkin:
//!   endpoint: 127.0.0.1:9411      # the Collector's default port
//!   max_request_body_size: 4194304
//! ```
//!
//! Answers: 202 once the spans are in every queue they go to (Zipkin's
//! own answer); 400 naming what is malformed; 413 too large; 415 for
//! another Content-Type or Content-Encoding; 503 with Retry-After when a
//! queue is full or sidewatch is stopping. `/api/v1/spans` (Zipkin v1
//! JSON and Thrift) is answered 404 with a message saying so.

pub mod convert;
pub mod model;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::{Receiver, ReceiverContext, StartedReceiver};
use crate::config::endpoint::ListenAddress;
use crate::pipeline::{Consumer, Refused};
use crate::signal::{Batch, Signal};
use crate::telemetry::ReceiverStats;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZipkinConfig {
    pub endpoint: ListenAddress,
    /// Largest accepted body in bytes, as sent and once decompressed.
    pub max_request_body_size: usize,
    /// The Collector's option to type tags (`"1"` as an int): accepted
    /// with `false` only; tags stay strings.
    pub parse_string_tags: bool,
}

impl Default for ZipkinConfig {
    fn default() -> Self {
        ZipkinConfig {
            endpoint: ListenAddress::loopback(9411),
            max_request_body_size: 4 * 1024 * 1024,
            parse_string_tags: false,
        }
    }
}

pub struct ZipkinReceiver {
    config: ZipkinConfig,
}

impl ZipkinReceiver {
    pub fn new(config: ZipkinConfig) -> Self {
        ZipkinReceiver { config }
    }
}

struct Route {
    consumer: Option<Consumer>,
    stats: Arc<ReceiverStats>,
    max_bytes: usize,
}

fn answer(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain")],
        message.into(),
    )
        .into_response()
}

/// Spans of a request body, by its Content-Type and Content-Encoding.
fn decode(
    headers: &HeaderMap,
    body: &[u8],
    max_bytes: usize,
) -> Result<Vec<model::Span>, (StatusCode, String)> {
    let encoding = super::otlp::decode::Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )
    .map_err(|e| (StatusCode::UNSUPPORTED_MEDIA_TYPE, e))?;
    let decompressed;
    let body = match encoding {
        super::otlp::decode::Encoding::Identity => body,
        other => {
            decompressed =
                super::otlp::decode::decompress_within(body, other, max_bytes, &mut |_| true)
                    .map_err(|e| match e {
                        super::otlp::decode::BodyError::TooLarge { limit } => (
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("the decompressed body is larger than {limit} bytes"),
                        ),
                        other => (StatusCode::BAD_REQUEST, other.to_string()),
                    })?;
            &decompressed[..]
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let parsed = match media.as_str() {
        "application/json" | "" => model::from_json(body),
        "application/x-protobuf" | "application/protobuf" => model::from_protobuf(body),
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Type {other:?}: expected application/json or application/x-protobuf"
                ),
            ));
        }
    };
    parsed.map_err(|e| (StatusCode::BAD_REQUEST, e))
}

async fn spans(State(route): State<Arc<Route>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let response = receive(&route, &headers, &body).await;
    route
        .stats
        .answered(started, !response.status().is_success());
    response
}

async fn receive(route: &Route, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(consumer) = &route.consumer else {
        return answer(
            StatusCode::NOT_FOUND,
            "no traces pipeline takes this receiver",
        );
    };
    if let Err(refused) = consumer.admits_memory() {
        return refusal(refused);
    }
    let spans = match decode(headers, body, route.max_bytes) {
        Ok(spans) => spans,
        Err((status, message)) => return answer(status, message),
    };
    let request = convert::to_otlp(spans);
    let batch = Batch::Traces(Arc::new(request));
    let items = batch.item_count() as u64;
    if items == 0 {
        return StatusCode::ACCEPTED.into_response();
    }
    match consumer.consume(batch).await {
        Ok(()) => {
            consumer.accepted_bytes(body.len());
            route
                .stats
                .accepted_items
                .fetch_add(items, Ordering::Relaxed);
            StatusCode::ACCEPTED.into_response()
        }
        Err(refused) => {
            route
                .stats
                .refused_items
                .fetch_add(items, Ordering::Relaxed);
            refusal(refused)
        }
    }
}

fn refusal(refused: Refused) -> Response {
    let status = match refused {
        Refused::Malformed(_) => StatusCode::BAD_REQUEST,
        Refused::ComponentFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = answer(status, refused.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

async fn v1() -> Response {
    answer(
        StatusCode::NOT_FOUND,
        "Zipkin v1 (JSON and Thrift) is not supported by sidewatch: send v2 spans to /api/v2/spans",
    )
}

#[async_trait::async_trait]
impl Receiver for ZipkinReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let listener = tokio::net::TcpListener::bind(self.config.endpoint.resolve()?).await?;
        let address: SocketAddr = listener.local_addr()?;
        let route = Arc::new(Route {
            consumer: context.consumers.get(Signal::Traces).cloned(),
            stats: context
                .telemetry
                .receiver(&context.id, "http", Signal::Traces),
            max_bytes: self.config.max_request_body_size,
        });
        let app = axum::Router::new()
            .route("/api/v2/spans", post(spans).with_state(route))
            .route("/api/v1/spans", post(v1))
            .layer(DefaultBodyLimit::max(self.config.max_request_body_size));
        let shutdown = context.shutdown.clone();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "zipkin receiver stopped");
            }
        });
        Ok(StartedReceiver {
            addresses: vec![(format!("{}/http", context.id), address)],
            tasks: vec![task],
        })
    }
}

impl crate::components::compiled::CompiledReceiver for ZipkinConfig {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(ZipkinReceiver::new(self.clone()))
    }
}

/// The registry's compile step for `zipkin`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    let config: ZipkinConfig = decoder.decode(value, path)?;
    if config.parse_string_tags {
        decoder.error(
            path.key("parse_string_tags"),
            "parse_string_tags: true is not supported by sidewatch: tags stay strings (type them with `transform`, e.g. `set(attributes[\"k\"], Int(attributes[\"k\"]))`)",
        );
        return None;
    }
    Some(std::sync::Arc::new(config))
}

#[cfg(test)]
mod tests;
