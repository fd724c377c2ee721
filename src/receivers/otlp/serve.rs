//! Serving accepted connections with hyper, for both OTLP transports (gRPC
//! as HTTP/2 only, OTLP/HTTP as HTTP/1 and HTTP/2), under the listener's
//! deadlines (`deadlines.rs`) and its connection table.
//!
//! Why our own connection loop rather than tonic's server or
//! `axum::serve`: neither closes a connection that never sends a request
//! (hyper's automatic protocol detection waits for the first bytes
//! forever), neither closes kept-alive connections that stay idle, and
//! neither lets a full listener make room by evicting an idle connection.
//! Each connection here is watched by its own task: it is closed at once
//! if it has not sent complete request headers within `handshake_timeout`
//! of the accept, closed gracefully (HTTP/2 GOAWAY, or at the end of the
//! HTTP/1 response) after `idle_timeout` without a request, or when the
//! table evicts it, and every request body runs under the body deadlines.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection_table::Verdict;
use super::deadlines::{DeadlineBody, Deadlines};
use crate::telemetry::connections::Accepted;

/// A request as handlers see it: the body under its deadlines.
pub type Request = http::Request<DeadlineBody<hyper::body::Incoming>>;
pub type Response = http::Response<axum::body::Body>;
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Response> + Send + Sync>;

/// Header bytes a peer may send in one request (HTTP/2: as it counts
/// them; HTTP/1: the read buffer). Large enough that a request with an
/// oversized header (a 1 MiB token, say) still reaches the handler and gets
/// a definite, non-retryable answer, rather than h2's connection-level
/// GOAWAY, which clients retry as UNAVAILABLE, or an HTTP/1 connection
/// closed under a client still writing; handlers refuse anything above
/// [`MAX_HEADER_BYTES`].
const MAX_HEADER_LIST_SIZE: u32 = 1024 * 1024 + 64 * 1024;

/// Header bytes a request may carry; more is answered with 431 (HTTP) or
/// RESOURCE_EXHAUSTED without RetryInfo (gRPC).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The size of a request's headers as HTTP/2 counts it (RFC 9113 6.5.2).
pub fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

pub struct Options {
    pub deadlines: Deadlines,
    /// gRPC: HTTP/2 only, with this many concurrent streams per connection.
    pub grpc_max_concurrent_streams: Option<u32>,
}

/// How long a connection being closed gracefully may take to finish the
/// requests it has; an idle or evicted one has none.
const GRACEFUL_CLOSE: Duration = Duration::from_secs(5);

/// How often a connection's deadlines are looked at, at least.
const RECHECK: Duration = Duration::from_millis(500);

pub async fn serve(
    mut connections: mpsc::Receiver<Accepted>,
    handler: Handler,
    options: Options,
    shutdown: CancellationToken,
) {
    let deadlines = options.deadlines;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if options.grpc_max_concurrent_streams.is_some() {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.read_header_timeout)
        .max_buf_size(MAX_HEADER_LIST_SIZE as usize);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.grpc_max_concurrent_streams)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        // Pings find peers that vanished without closing.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = connections.recv() => accepted,
            _ = shutdown.cancelled() => None,
        };
        let Some(accepted) = accepted else {
            break;
        };
        tracker.spawn(serve_one(
            builder.clone(),
            accepted,
            handler.clone(),
            deadlines,
            shutdown.clone(),
        ));
    }
    // Stop accepting, then let requests in progress finish.
    drop(connections);
    tracker.close();
    tracker.wait().await;
}

async fn serve_one(
    builder: Arc<auto::Builder<TokioExecutor>>,
    accepted: Accepted,
    handler: Handler,
    deadlines: Deadlines,
    shutdown: CancellationToken,
) {
    let Accepted { conn, slot: guard } = accepted;
    let slot = guard.slot().clone();
    let service = {
        let slot = slot.clone();
        hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let active = slot.begin();
            let request = request.map(|body| DeadlineBody::new(body, &deadlines));
            let answer = handler(request);
            async move {
                let response = answer.await;
                drop(active);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = builder.serve_connection(TokioIo::new(conn), service);
    let mut connection = std::pin::pin!(connection);
    // Set once the connection is being closed gracefully: by then it must
    // be gone.
    let mut closing: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let check = match slot.verdict(&deadlines, now) {
            // A request starting or ending moves the deadline: look again
            // at least every RECHECK.
            Verdict::KeepUntil(at) => at.min(now + RECHECK),
            Verdict::NeverSpoke => {
                tracing::debug!("closing a connection that sent no request in time");
                return;
            }
            Verdict::Idle if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + GRACEFUL_CLOSE);
                continue;
            }
            Verdict::Idle => Instant::now() + GRACEFUL_CLOSE,
        };
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "OTLP connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(check), if closing.is_none() => {}
            _ = tokio::time::sleep_until(closing.unwrap_or(check)), if closing.is_some() => return,
            _ = slot.evicted(), if closing.is_none() => {
                if !slot.has_spoken() {
                    return;
                }
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + GRACEFUL_CLOSE);
            }
            _ = shutdown.cancelled(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                // Requests in progress may take as long as a body may.
                closing = Some(Instant::now() + deadlines.read_timeout + GRACEFUL_CLOSE);
            }
        }
    }
}
