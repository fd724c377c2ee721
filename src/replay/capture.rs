//! The exporter replay puts in place of every configured one. It writes
//! each batch it is given as one OTLP/JSON line (the `file` exporter's
//! format) to its own file, in order, and hands it to the report's
//! collector; nothing is held, so memory stays flat however long the
//! history. It sits behind the exporter's real queue, with one worker
//! (order kept), no retries and no log on disk.

use std::io::Write;
use std::sync::{Arc, Mutex};

use super::report::Collector;
use crate::exporters::settings::{ExporterSettings, QueueSettings, RetrySettings};
use crate::exporters::{ExportError, Exporter};
use crate::signal::Batch;

/// One (exporter, signal) file, and the first error writing it.
pub struct Sink {
    pub name: String,
    file: std::io::BufWriter<std::fs::File>,
    pub error: Option<String>,
}

impl Sink {
    pub fn create(path: &std::path::Path) -> Result<Sink, String> {
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Sink {
            name: path.display().to_string(),
            file: std::io::BufWriter::new(file),
            error: None,
        })
    }

    fn write(&mut self, batch: &Batch) -> std::io::Result<()> {
        match &*batch.otlp() {
            Batch::Traces(r) => serde_json::to_writer(&mut self.file, &**r),
            Batch::Metrics(r) => serde_json::to_writer(&mut self.file, &**r),
            Batch::Logs(r) => serde_json::to_writer(&mut self.file, &**r),
            Batch::Wire(_) | Batch::Events(_) => {
                return Err(std::io::Error::other("an undecoded batch"));
            }
        }?;
        self.file.write_all(b"\n")
    }

    /// Flushes the file; the first error met, if any.
    pub fn finish(&mut self) -> Result<(), String> {
        if let Err(e) = self.file.flush() {
            self.error.get_or_insert(e.to_string());
        }
        match &self.error {
            Some(e) => Err(format!("cannot write {}: {e}", self.name)),
            None => Ok(()),
        }
    }
}

pub struct CaptureExporter {
    pub sink: Arc<Mutex<Sink>>,
    pub collector: Arc<Mutex<Collector>>,
}

#[async_trait::async_trait]
impl Exporter for CaptureExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let batch = batch
            .decoded()
            .map_err(|e| ExportError::permanent(format!("a batch does not decode: {e}")))?;
        {
            let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
            if sink.error.is_none()
                && let Err(e) = sink.write(batch)
            {
                sink.error = Some(e.to_string());
            }
        }
        self.collector
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(batch);
        Ok(())
    }
}

/// Queue settings for a capture: one worker keeps the order; the queue is
/// in memory whatever the config says, so a replay never touches the live
/// queue's log.
pub fn settings() -> ExporterSettings {
    ExporterSettings {
        sending_queue: QueueSettings {
            num_consumers: 1,
            storage: None,
            ..QueueSettings::default()
        },
        retry_on_failure: RetrySettings {
            enabled: false,
            ..RetrySettings::default()
        },
        ..ExporterSettings::default()
    }
}
