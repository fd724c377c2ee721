//! `kafka` exporter: each batch as OTLP export requests (protobuf or
//! JSON) on a topic per signal, with librdkafka (`rdkafka`) as the client.
//!
//! - `config`: the Collector's YAML shape and the librdkafka settings;
//! - `partition`: message keys, splitting a batch into one request per key.
//!
//! An export succeeds only when the broker has acknowledged every message
//! of the batch (each delivery report is awaited), so the queue in front
//! answers the client and drops the batch only then. A failed or timed-out
//! delivery is retried by the queue, whole: messages of the batch that did
//! arrive are sent again (at-least-once; the receiver counts nothing
//! twice by itself).

pub mod config;
pub mod partition;

use std::time::Duration;

use prost::Message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::{ExportError, Exporter};
use crate::signal::{Batch, Signal};
use config::Encoding;
pub use config::KafkaExporterConfig;
use partition::KeyBy;

/// A message's key (none: any partition) and value.
type KeyedMessage = (Option<String>, Vec<u8>);

pub struct KafkaExporter {
    producer: FutureProducer,
    topic: String,
    encoding: Encoding,
    key_by: KeyBy,
    timeout: Duration,
}

impl KafkaExporter {
    /// Builds the producer; librdkafka connects lazily, so an unreachable
    /// broker is an export failure (retried), not a start-up error.
    pub fn new(config: &KafkaExporterConfig, signal: Signal) -> Result<Self, String> {
        let producer: FutureProducer = config
            .client_config()
            .create()
            .map_err(|e| format!("creating the Kafka producer: {e}"))?;
        let key_by = match (&config.partition_by, signal) {
            (Some(partition_by), _) => KeyBy::from_partition_by(partition_by),
            (None, Signal::Traces) if config.partition_traces_by_id => KeyBy::TraceId,
            (None, Signal::Metrics) if config.partition_metrics_by_resource_attributes => {
                KeyBy::Resource
            }
            (None, Signal::Logs) if config.partition_logs_by_resource_attributes => KeyBy::Resource,
            _ => KeyBy::Nothing,
        };
        Ok(KafkaExporter {
            producer,
            topic: config.topic(signal),
            encoding: config.encoding(signal),
            key_by,
            timeout: config.timeout,
        })
    }

    /// The batch as (key, value) messages.
    fn messages(&self, batch: &Batch) -> Result<Vec<KeyedMessage>, ExportError> {
        let batch = batch
            .decoded()
            .map_err(|e| ExportError::permanent(format!("decoding the batch: {e}")))?;
        let batch = batch.otlp();
        let encoding = self.encoding;
        fn encode<M: Message + serde::Serialize>(
            parts: Vec<(Option<String>, M)>,
            encoding: Encoding,
        ) -> Result<Vec<KeyedMessage>, ExportError> {
            parts
                .into_iter()
                .map(|(key, request)| {
                    let value = match encoding {
                        Encoding::OtlpProto => request.encode_to_vec(),
                        Encoding::OtlpJson => serde_json::to_vec(&request)
                            .map_err(|e| ExportError::permanent(format!("JSON encoding: {e}")))?,
                    };
                    Ok((key, value))
                })
                .collect()
        }
        match &*batch {
            Batch::Traces(r) => encode(partition::split_traces(r, &self.key_by), encoding),
            Batch::Metrics(r) => encode(partition::split_metrics(r, &self.key_by), encoding),
            Batch::Logs(r) => encode(partition::split_logs(r, &self.key_by), encoding),
            Batch::Wire(_) | Batch::Events(_) => Err(ExportError::permanent(
                "internal: the batch was not decoded to OTLP",
            )),
        }
    }
}

/// Whether resending can help: a message too large for the broker, an
/// unknown topic with auto-creation off, or a refused authorisation will
/// fail the same way again.
fn classify(error: &KafkaError) -> ExportError {
    let message = format!("Kafka delivery failed: {error}");
    match error.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::InvalidTopic,
        ) => ExportError::permanent(message),
        _ => ExportError::retryable(message),
    }
}

#[async_trait::async_trait]
impl Exporter for KafkaExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        if batch.is_empty() {
            return Ok(());
        }
        let messages = self.messages(batch)?;
        // Enqueue all, then await every delivery report: the batch's
        // messages travel together in librdkafka's own batching.
        let deliveries = messages.iter().map(|(key, value)| {
            let mut record = FutureRecord::<String, Vec<u8>>::to(&self.topic).payload(value);
            if let Some(key) = key {
                record = record.key(key);
            }
            self.producer.send(record, self.timeout)
        });
        let results = futures::future::join_all(deliveries).await;
        let mut first_error = None;
        let mut failed = 0usize;
        for result in results {
            if let Err((error, _message)) = result {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            None => Ok(()),
            Some(error) => {
                tracing::debug!(failed, total = messages.len(), %error, "Kafka delivery failed");
                Err(classify(&error))
            }
        }
    }

    async fn shutdown(&self) {
        // The queue drained already; whatever librdkafka still buffers is
        // delivery reports in flight. `flush` blocks: off the runtime.
        let producer = self.producer.clone();
        let timeout = self.timeout;
        let _ = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
    }
}

impl crate::components::compiled::CompiledExporter for KafkaExporterConfig {
    fn settings(&self) -> crate::exporters::settings::ExporterSettings {
        KafkaExporterConfig::settings(self)
    }

    fn build(
        &self,
        context: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        Ok(std::sync::Arc::new(KafkaExporter::new(
            self,
            context.signal,
        )?))
    }
}

/// The registry's compile step for the `kafka` exporter.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    crate::exporters::compile::checked::<KafkaExporterConfig>(
        value,
        path,
        decoder,
        crate::exporters::compile::no_tls,
        |c, path, decoder| crate::components::compiled::report_at(c.validate(), path, decoder),
    )
}
