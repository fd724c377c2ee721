//! The telemetry endpoint: `/healthz`, `/metrics`, `/checks` (the last
//! result of every synthetic check, as JSON) and the Prometheus query API
//! over the store (`query_api`), and the dashboard at `/` (`dashboard`)
//! unless `service.telemetry.dashboard` is false.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{State, Telemetry};

/// Binds the endpoint and serves it until `shutdown`; returns the address.
/// `auth` is what the alerts API's writes need (`service.telemetry.auth`).
pub async fn start(
    address: SocketAddr,
    telemetry: Arc<Telemetry>,
    dashboard: bool,
    shutdown: CancellationToken,
    auth: Option<&crate::receivers::otlp::auth::AuthConfig>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let access = match auth {
        Some(auth) => super::alerts_api::WriteAccess::Credentials(
            crate::receivers::otlp::auth::Authenticator::new(auth)
                .map_err(std::io::Error::other)?,
        ),
        None if bound.ip().is_loopback() => super::alerts_api::WriteAccess::Loopback,
        None => {
            tracing::warn!(address = %bound, "the telemetry endpoint listens beyond loopback without service.telemetry.auth: the alerts API refuses acknowledgements and silences");
            super::alerts_api::WriteAccess::Refused
        }
    };
    let mut app = axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/checks", get(checks))
        .merge(super::query_api::routes())
        .merge(super::alerts_api::routes(Arc::new(access)));
    if dashboard {
        app = app.merge(super::dashboard::routes());
    }
    let app = app.with_state(telemetry);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "telemetry endpoint failed");
        }
    });
    Ok((bound, task))
}

/// 200 while running, 503 while starting or stopping; the body names each
/// exporter whose destination is failing.
async fn healthz(AxumState(telemetry): AxumState<Arc<Telemetry>>) -> impl IntoResponse {
    let state = telemetry.state();
    let failing: Vec<serde_json::Value> = telemetry
        .exporters()
        .iter()
        .filter(|e| e.consecutive_failures.load(Ordering::Relaxed) > 0)
        .map(|e| {
            serde_json::json!({
                "exporter": e.exporter,
                "signal": e.signal.as_str(),
                "consecutive_failures": e.consecutive_failures.load(Ordering::Relaxed),
                "queued_items": e.queued_items.load(Ordering::Relaxed),
            })
        })
        .collect();
    let (code, status) = match state {
        State::Running => (
            StatusCode::OK,
            if failing.is_empty() { "ok" } else { "degraded" },
        ),
        State::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting"),
        State::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
    };
    let body = serde_json::json!({ "status": status, "failing_exporters": failing });
    (code, axum::Json(body))
}

async fn metrics(AxumState(telemetry): AxumState<Arc<Telemetry>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry.render_prometheus(),
    )
}

async fn checks(AxumState(telemetry): AxumState<Arc<Telemetry>>) -> impl IntoResponse {
    axum::Json(super::checks::summary(&telemetry.checks()))
}
