//! `prometheus` exporter: a scrape endpoint (default 127.0.0.1:9464) that
//! serves the metrics it receives in the Prometheus text format, or
//! OpenMetrics when the scraper asks for it (`Accept`).
//!
//! - `naming`: metric and label names per the compatibility specification;
//! - `store`: latest value of every series, delta accumulation, expiry;
//! - `encode`: the two text formats.

pub mod encode;
pub mod naming;
pub mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{ExportError, Exporter};
use crate::config::endpoint::ListenAddress;
use crate::signal::Batch;
use encode::{Format, encode};
use store::MetricStore;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusExporterConfig {
    #[serde(default = "default_endpoint")]
    pub endpoint: ListenAddress,
    /// A series not updated for this long disappears from the endpoint.
    #[serde(default = "default_expiration", with = "crate::config::duration")]
    pub metric_expiration: Duration,
    /// Series kept at most; new series beyond it are dropped and counted.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

fn default_endpoint() -> ListenAddress {
    ListenAddress::loopback(9464)
}

fn default_expiration() -> Duration {
    Duration::from_secs(300)
}

fn default_max_series() -> usize {
    100_000
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub struct PrometheusExporter {
    store: Arc<Mutex<MetricStore>>,
    pub address: SocketAddr,
    stop: CancellationToken,
}

impl PrometheusExporter {
    /// Binds the scrape endpoint at once, so a port in use fails start-up.
    pub fn new(config: &PrometheusExporterConfig) -> Result<Self, String> {
        let listener = config
            .endpoint
            .resolve()
            .and_then(std::net::TcpListener::bind)
            .map_err(|e| format!("cannot listen on {}: {e}", config.endpoint))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let store = Arc::new(Mutex::new(MetricStore::new(
            config.metric_expiration.as_nanos() as u64,
            config.max_series,
        )));
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(scrape))
            .with_state(store.clone());
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "prometheus scrape endpoint failed");
            }
        });
        tracing::info!(listener = "prometheus", %address, "listening");
        Ok(PrometheusExporter {
            store,
            address,
            stop,
        })
    }
}

async fn scrape(
    State(store): State<Arc<Mutex<MetricStore>>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let body = {
        let mut store = crate::pipeline::contain::lock(&store, "prometheus");
        store.expire(now_nanos());
        encode(&store, format)
    };
    ([(header::CONTENT_TYPE, format.content_type())], body)
}

#[async_trait::async_trait]
impl Exporter for PrometheusExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        if let Batch::Metrics(request) = batch {
            crate::pipeline::contain::lock(&self.store, "prometheus")
                .ingest(&request.resource_metrics, now_nanos());
        }
        Ok(())
    }

    async fn shutdown(&self) {
        self.stop.cancel();
    }
}

impl crate::components::compiled::CompiledExporter for PrometheusExporterConfig {
    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        let _ = context;
        Ok(std::sync::Arc::new(PrometheusExporter::new(self)?))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<PrometheusExporterConfig>(
        value,
        path,
        decoder,
        crate::exporters::compile::no_tls,
        |_, _, _| true,
    )
}
