//! The exporter replay puts in place of every configured one: it keeps
//! each batch it is given, in order, so replay can write what each
//! exporter would have received. Behind the exporter's real queue, with one
//! worker (order kept), no retries (it never fails) and no log on disk.

use std::sync::{Arc, Mutex};

use crate::exporters::settings::{ExporterSettings, QueueSettings, RetrySettings};
use crate::exporters::{ExportError, Exporter};
use crate::signal::Batch;

/// The batches one (exporter, signal) queue delivered, in order.
pub type Captured = Arc<Mutex<Vec<Batch>>>;

pub struct CaptureExporter {
    pub captured: Captured,
}

#[async_trait::async_trait]
impl Exporter for CaptureExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        // A batch is behind an `Arc`: keeping it copies a pointer.
        self.captured
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(batch.clone());
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
