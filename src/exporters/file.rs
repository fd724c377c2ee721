//! `file` exporter: one OTLP/JSON export request per line, rotating by size.
//!
//! Rotation renames `path` to `path.1` (older backups shift up and the
//! oldest beyond `max_backups` is deleted), then starts a new `path`. All
//! signals written to one path share one writer, so lines never interleave
//! and rotation happens once.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde::Deserialize;

use super::{ExportError, Exporter};
use crate::signal::{Batch, Signal};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExporterConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub rotation: Option<Rotation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rotation {
    /// Start a new file once this one would pass this size.
    pub max_megabytes: u64,
    /// Rotated files kept; older ones are deleted.
    pub max_backups: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_megabytes: 100,
            max_backups: 100,
        }
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Option<Rotation>,
}

impl Writer {
    fn open(path: &Path, rotation: Option<Rotation>) -> std::io::Result<Writer> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some(rotation) = &self.rotation {
            let limit = rotation.max_megabytes.saturating_mul(1024 * 1024);
            if self.size > 0 && self.size + line.len() as u64 + 1 > limit {
                self.rotate(rotation.max_backups)?;
            }
        }
        self.file.write_all(line)?;
        self.file.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    fn rotate(&mut self, max_backups: usize) -> std::io::Result<()> {
        self.file.flush()?;
        let backup = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        if max_backups == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(backup(max_backups));
            for n in (1..max_backups).rev() {
                if backup(n).exists() {
                    std::fs::rename(backup(n), backup(n + 1))?;
                }
            }
            std::fs::rename(&self.path, backup(1))?;
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// One writer per path for the whole process.
fn shared_writer(path: &Path, rotation: Option<Rotation>) -> std::io::Result<Arc<Mutex<Writer>>> {
    static WRITERS: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<Writer>>>>> = OnceLock::new();
    let mut writers = WRITERS
        .get_or_init(Default::default)
        .lock()
        .expect("file writers lock");
    if let Some(writer) = writers.get(path).and_then(Weak::upgrade) {
        return Ok(writer);
    }
    let writer = Arc::new(Mutex::new(Writer::open(path, rotation)?));
    writers.insert(path.to_path_buf(), Arc::downgrade(&writer));
    Ok(writer)
}

pub struct FileExporter {
    writer: Arc<Mutex<Writer>>,
}

impl FileExporterConfig {
    /// What opening the file at start would refuse, found without creating
    /// it: a missing directory, or a path that is not a regular file.
    pub fn validate(&self) -> Result<(), String> {
        let path = &self.path;
        match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_file() => std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map(|_| ())
                .map_err(|e| format!("cannot open {} for appending: {e}", path.display())),
            Ok(_) => Err(format!("{} is not a regular file", path.display())),
            Err(_) => {
                let parent = match path.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
                if parent.is_dir() {
                    Ok(())
                } else {
                    Err(format!(
                        "cannot create {}: the directory {} does not exist",
                        path.display(),
                        parent.display()
                    ))
                }
            }
        }
    }
}

impl FileExporter {
    pub fn new(config: FileExporterConfig, _signal: Signal) -> Result<Self, String> {
        let writer = shared_writer(&config.path, config.rotation)
            .map_err(|e| format!("cannot open {}: {e}", config.path.display()))?;
        Ok(FileExporter { writer })
    }
}

#[async_trait::async_trait]
impl Exporter for FileExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let line = batch.to_json().map_err(ExportError::permanent)?;
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            writer.lock().expect("file writer lock").write_line(&line)
        })
        .await
        .map_err(|e| ExportError::retryable(format!("writer task: {e}")))?
        .map_err(|e| ExportError::retryable(format!("write: {e}")))
    }

    async fn shutdown(&self) {
        let writer = self.writer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            writer.lock().expect("file writer lock").file.sync_all()
        })
        .await;
    }
}

impl crate::components::compiled::CompiledExporter for FileExporterConfig {
    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        Ok(std::sync::Arc::new(FileExporter::new(
            self.clone(),
            context.signal,
        )?))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<FileExporterConfig>(
        value,
        path,
        decoder,
        crate::exporters::compile::no_tls,
        |c, path, decoder| match c.validate() {
            Ok(()) => true,
            Err(message) => {
                decoder.error(path.key("path"), message);
                false
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::tests::traces;

    #[tokio::test]
    async fn writes_json_lines_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let exporter = FileExporter::new(
            FileExporterConfig {
                path: path.clone(),
                rotation: Some(Rotation {
                    max_megabytes: 0,
                    max_backups: 2,
                }),
            },
            Signal::Traces,
        )
        .unwrap();
        for _ in 0..4 {
            exporter
                .export(&Batch::Traces(traces(&[&[2]]).into()))
                .await
                .unwrap();
        }
        // A zero limit rotates before every line after the first: the live
        // file and two backups remain, the oldest line is gone.
        let live = std::fs::read_to_string(&path).unwrap();
        assert_eq!(live.lines().count(), 1);
        let parsed: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
            serde_json::from_str(live.trim()).unwrap();
        assert_eq!(crate::signal::span_count(&parsed), 2);
        assert!(dir.path().join("out.jsonl.1").exists());
        assert!(dir.path().join("out.jsonl.2").exists());
        assert!(!dir.path().join("out.jsonl.3").exists());
    }
}
