//! Exporters: deliver batches to a destination.
//!
//! Contract: `export` sends one batch and says whether a failure is worth
//! retrying. The [`queue`] runner owns the exporter's bounded queue, its
//! workers, the retry loop with backoff, and the counters; an exporter never
//! retries by itself.

pub mod alert_payload;
pub mod alertmanager;
pub mod compile;
pub mod compress;
pub mod debug;
pub mod email;
pub mod file;
mod grpc_precompressed;
pub mod http;
pub mod influxdb;
pub mod kafka;
pub mod loadbalancing;
pub mod otlp;
pub mod otlphttp;
pub mod prometheus;
pub mod prometheusremotewrite;
pub mod queue;
mod queue_batch;
pub mod settings;
pub mod store;
pub mod wal;
pub mod webhook;

use std::time::Duration;

use crate::signal::Batch;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ExportError {
    /// Worth trying again, after `retry_after` if the destination said so.
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (bad request, auth, unknown service).
    #[error("{message}")]
    Permanent { message: String },
    /// The destination took the batch but rejected `rejected` items of it;
    /// OTLP says such a request must not be retried.
    #[error("{rejected} items rejected: {message}")]
    PartiallyRejected { rejected: u64, message: String },
}

impl ExportError {
    pub fn retryable(message: impl Into<String>) -> Self {
        ExportError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        ExportError::Permanent {
            message: message.into(),
        }
    }
}

/// An error and its sources, `outer: inner: innermost`: tonic's own text
/// ("transport error") says nothing of the cause ("Connection refused").
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[async_trait::async_trait]
pub trait Exporter: Send + Sync {
    /// Sends one batch, in whichever form it comes (`Batch::to_protobuf`
    /// for bytes, free for a wire batch; a wire batch reaches only an
    /// exporter that `reads_wire`, the others get it decoded). Called
    /// concurrently by the queue's workers.
    async fn export(&self, batch: &Batch) -> Result<(), ExportError>;

    /// Whether this exporter sends the OTLP protobuf encoding as it is:
    /// its queue then holds each batch in wire form, encoded once on entry
    /// and several times smaller than decoded, and receivers feeding only
    /// such exporters keep the bytes they received without decoding them.
    fn reads_wire(&self) -> bool {
        false
    }

    /// Called once after the queue has drained, before exit.
    async fn shutdown(&self) {}
}
