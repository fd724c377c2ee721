//! `health_check`: an HTTP endpoint answering as the Collector's does,
//! 200 with `{"status":"Server available","upSince":...,"uptime":...}`
//! while the pipelines run and 503 with `"Server not available"` while
//! starting or shutting down, so load balancers and Kubernetes probes
//! written for the Collector work unchanged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::endpoint::ListenAddress;
use crate::telemetry::{State, Telemetry};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// The Collector's default is localhost:13133.
    #[serde(default = "default_endpoint")]
    pub endpoint: ListenAddress,
    #[serde(default = "default_path")]
    pub path: String,
    /// Fixed bodies instead of the JSON status.
    #[serde(default)]
    pub response_body: Option<ResponseBody>,
    /// Deprecated in the Collector and not implemented there either;
    /// accepted so configs that carry it still load.
    #[serde(default)]
    pub check_collector_pipeline: Option<yaml_serde::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseBody {
    #[serde(default)]
    pub healthy: Option<String>,
    #[serde(default)]
    pub unhealthy: Option<String>,
}

fn default_endpoint() -> ListenAddress {
    ListenAddress::loopback(13133)
}

fn default_path() -> String {
    "/".into()
}

impl HealthCheckConfig {
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut errors = Vec::new();
        if !self.path.starts_with('/') {
            errors.push(("path", format!("{:?} must start with `/`", self.path)));
        }
        errors
    }
}

struct Served {
    telemetry: Arc<Telemetry>,
    body: Option<ResponseBody>,
    up_since: SystemTime,
}

/// Binds and serves until `shutdown`; returns the bound address.
pub async fn start(
    config: &HealthCheckConfig,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(config.endpoint.resolve()?).await?;
    let bound = listener.local_addr()?;
    let served = Arc::new(Served {
        telemetry,
        body: config.response_body.clone(),
        up_since: SystemTime::now(),
    });
    let app = axum::Router::new()
        .route(&config.path, axum::routing::get(health))
        .with_state(served);
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "health_check endpoint failed");
        }
    });
    Ok((bound, task))
}

async fn health(AxumState(served): AxumState<Arc<Served>>) -> Response {
    let available = served.telemetry.state() == State::Running;
    let code = if available {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let fixed = served.body.as_ref().and_then(|b| {
        if available {
            b.healthy.clone()
        } else {
            b.unhealthy.clone()
        }
    });
    if let Some(text) = fixed {
        return (code, text).into_response();
    }
    let uptime = SystemTime::now()
        .duration_since(served.up_since)
        .unwrap_or_default();
    let body = serde_json::json!({
        "status": if available { "Server available" } else { "Server not available" },
        "upSince": humantime::format_rfc3339_nanos(served.up_since).to_string(),
        "uptime": go_duration(uptime),
    });
    (code, axum::Json(body)).into_response()
}

/// A duration as Go's `time.Duration.String` prints it (`1h2m3.5s`), the
/// Collector's `uptime` format.
fn go_duration(duration: Duration) -> String {
    let total = duration.as_secs_f64();
    let hours = (total / 3600.0).floor();
    let minutes = ((total - hours * 3600.0) / 60.0).floor();
    let seconds = total - hours * 3600.0 - minutes * 60.0;
    let seconds = format!("{seconds:.9}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string();
    match (hours as u64, minutes as u64) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_as_go_prints_it() {
        assert_eq!(go_duration(Duration::from_millis(49_013)), "49.013s");
        assert_eq!(go_duration(Duration::from_secs(62)), "1m2s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
    }
}
