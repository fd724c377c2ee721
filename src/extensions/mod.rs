//! The Collector's `extensions:` section and `service.extensions`.
//!
//! `health_check` is served (health_check.rs); `file_storage` names a
//! directory that an exporter's `sending_queue.storage: file_storage/x`
//! refers to, and becomes that exporter's persistent queue directory;
//! `zpages` and `pprof` are accepted with a warning naming what is
//! missing. Anything else is refused plainly.

pub mod health_check;

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone)]
pub enum ExtensionConfig {
    HealthCheck(health_check::HealthCheckConfig),
    FileStorage(FileStorageConfig),
    /// Accepted for compatibility; does nothing (a warning said so).
    Inert,
}

/// The Collector's `file_storage`: its `directory` holds one persistent
/// queue per exporter that refers to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStorageConfig {
    pub directory: PathBuf,
    /// Accepted with the Collector's meaning: create the directory if it
    /// is missing (sidewatch's queue always does).
    #[serde(default)]
    pub create_directory: bool,
    /// The Collector's bbolt settings; sidewatch's log needs none of them.
    #[serde(default)]
    pub timeout: Option<yaml_serde::Value>,
    #[serde(default)]
    pub compaction: Option<yaml_serde::Value>,
    #[serde(default)]
    pub fsync: Option<bool>,
}

impl FileStorageConfig {
    /// The queue directory of the exporter `exporter_id` (its `/` made safe
    /// for a file name), as the Collector keeps one file per component.
    pub fn queue_directory(&self, exporter_id: &str) -> PathBuf {
        self.directory
            .join(format!("exporter_{}", exporter_id.replace('/', "_")))
    }
}
