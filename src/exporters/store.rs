//! `store` exporter: keeps metrics on this host in the embedded store
//! (`crate::store`) under `path`, with retention tiers, a series cap and a
//! disk size cap; the telemetry endpoint answers Prometheus queries over
//! it (`crate::telemetry::query_api`).
//!
//! Durability: a batch is acknowledged after its samples are in the
//! write-ahead log (`fsync: always`, the default, syncs before the
//! answer; `never` leaves it to the page cache, which survives a kill of
//! sidewatch but not of the machine). A snapshot every
//! `snapshot_interval` (and at shutdown) lets the log be truncated.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{ExportError, Exporter};
use crate::exporters::wal::Fsync;
use crate::signal::Batch;
use crate::store::tier::{self, TierConfig};
use crate::store::{Store, ingest};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreExporterConfig {
    pub path: PathBuf,
    #[serde(default = "default_retention")]
    pub retention: Vec<TierConfig>,
    /// Series kept at most; samples of new series beyond it are counted
    /// and dropped.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    /// Compressed sample data kept at most; the oldest chunks of the
    /// finest tier go first.
    #[serde(default = "default_max_disk_mib")]
    pub max_disk_mib: u64,
    #[serde(default)]
    pub fsync: Fsync,
    #[serde(
        default = "default_snapshot_interval",
        with = "crate::config::duration"
    )]
    pub snapshot_interval: Duration,
    /// The exporter queue in front of the store; with `storage`, what a
    /// client was told is accepted survives kill -9 before it reaches the
    /// store too.
    #[serde(default)]
    pub sending_queue: crate::exporters::settings::QueueSettings,
}

fn default_retention() -> Vec<TierConfig> {
    [
        ("raw", 3600),
        ("5m", 86_400),
        ("1h", 30 * 86_400),
        ("1d", 365 * 86_400),
    ]
    .into_iter()
    .map(|(resolution, keep)| TierConfig {
        resolution: resolution.into(),
        keep: Duration::from_secs(keep),
    })
    .collect()
}

fn default_max_series() -> usize {
    100_000
}

fn default_max_disk_mib() -> u64 {
    1024
}

fn default_snapshot_interval() -> Duration {
    Duration::from_secs(60)
}

impl StoreExporterConfig {
    pub fn settings(&self) -> crate::exporters::settings::ExporterSettings {
        // One worker: batches reach the store in the order they came, so a
        // series' samples are not refused as out of order because a later
        // batch overtook an earlier one on another worker.
        crate::exporters::settings::ExporterSettings {
            sending_queue: crate::exporters::settings::QueueSettings {
                num_consumers: 1,
                ..self.sending_queue.clone()
            },
            ..Default::default()
        }
    }

    /// What the constructor would refuse, as (field path, message).
    pub fn validate(&self) -> Vec<(Vec<String>, String)> {
        let mut errors = Vec::new();
        if let Err((index, message)) = tier::compile(&self.retention) {
            errors.push((vec!["retention".into(), index.to_string()], message));
        }
        if self.max_series == 0 {
            errors.push((vec!["max_series".into()], "must be at least 1".into()));
        }
        if self.snapshot_interval.is_zero() {
            errors.push((
                vec!["snapshot_interval".into()],
                "must be longer than 0".into(),
            ));
        }
        errors
    }
}

pub struct StoreExporter {
    pub store: Arc<Store>,
    stop: CancellationToken,
}

impl StoreExporter {
    pub fn new(config: &StoreExporterConfig) -> Result<Self, String> {
        let tiers =
            tier::compile(&config.retention).map_err(|(i, m)| format!("retention[{i}]: {m}"))?;
        let (store, opened) = Store::open(
            &config.path,
            tiers,
            config.max_series,
            config.max_disk_mib.saturating_mul(1024 * 1024),
            config.fsync,
        )?;
        tracing::info!(
            path = %config.path.display(),
            series = opened.series,
            replayed_records = opened.replayed_records,
            corrupt_bytes = opened.corrupt_bytes,
            "store opened"
        );
        let store = Arc::new(store);
        let stop = CancellationToken::new();
        let (task_store, token, interval) = (store.clone(), stop.clone(), config.snapshot_interval);
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(interval);
            timer.tick().await;
            loop {
                tokio::select! {
                    _ = timer.tick() => {}
                    _ = token.cancelled() => return,
                }
                let store = task_store.clone();
                match tokio::task::spawn_blocking(move || store.snapshot()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "store snapshot failed; the log keeps the data")
                    }
                    Err(e) => tracing::error!(error = %e, "store snapshot task failed"),
                }
            }
        });
        Ok(StoreExporter { store, stop })
    }
}

#[async_trait::async_trait]
impl Exporter for StoreExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let Batch::Metrics(request) = batch else {
            return Ok(());
        };
        let mut groups = ingest::Groups::new();
        let rejected = ingest::flatten(&request.resource_metrics, &mut groups);
        if rejected > 0 {
            tracing::debug!(rejected, "store: malformed points skipped");
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.append(&groups))
            .await
            .map_err(|e| ExportError::retryable(format!("store append task failed: {e}")))?
            .map_err(|e| ExportError::retryable(format!("store write-ahead log: {e}")))
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.snapshot()).await {
            Ok(Ok(bytes)) => tracing::info!(bytes, "store snapshot written at shutdown"),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "store snapshot at shutdown failed; the log keeps the data")
            }
            Err(e) => tracing::error!(error = %e, "store snapshot task failed"),
        }
    }
}

impl crate::components::compiled::CompiledExporter for StoreExporterConfig {
    fn settings(&self) -> crate::exporters::settings::ExporterSettings {
        self.settings()
    }

    /// Opens the store and hands it to the telemetry endpoint, which
    /// answers queries over it.
    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<Arc<dyn Exporter>, String> {
        let exporter = StoreExporter::new(self)?;
        context
            .telemetry
            .register_store(context.name, exporter.store.clone());
        Ok(Arc::new(exporter))
    }
}

/// The registry's compile step for `store`: each error at its field
/// (numeric segments are indices into `retention`).
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<StoreExporterConfig>(
        value,
        path,
        decoder,
        crate::exporters::compile::no_tls,
        |config, path, decoder| {
            let errors = config.validate();
            let valid = errors.is_empty();
            for (fields, message) in errors {
                let at =
                    fields
                        .iter()
                        .fold(path.clone(), |at, field| match field.parse::<usize>() {
                            Ok(i) => at.index(i),
                            Err(_) => at.key(field),
                        });
                decoder.error(at, message);
            }
            valid
        },
    )
}
