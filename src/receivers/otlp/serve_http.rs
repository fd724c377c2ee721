//! Serving the OTLP/HTTP routes on accepted connections with hyper,
//! configured rather than through `axum::serve`: HTTP/1 requests must send
//! their headers within `header_read_timeout` (without a timer hyper
//! waits forever, so a client dribbling bytes could hold a connection slot
//! indefinitely), HTTP/2 connections are pinged, and shutdown lets open
//! connections finish their requests.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::telemetry::connections::Conn;

pub async fn serve(
    mut connections: mpsc::Receiver<Conn>,
    app: axum::Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    loop {
        let conn = tokio::select! {
            conn = connections.recv() => conn,
            _ = shutdown.cancelled() => None,
        };
        let Some(conn) = conn else {
            break;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection(TokioIo::new(conn), service)
            .into_owned();
        let served = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::debug!(error = %e, "OTLP/HTTP connection ended with an error");
            }
        });
    }
    // Stop accepting, then let requests in progress finish.
    drop(connections);
    graceful.shutdown().await;
}
