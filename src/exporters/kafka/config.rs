//! The `kafka` exporter's and receiver's YAML, in the Collector's shape
//! (`brokers`, per-signal `traces: { topic, encoding }`, `producer`,
//! `auth`), and the librdkafka settings it compiles to. Shared by the
//! receiver: brokers, topics, encodings and `auth` mean the same on both
//! sides.

use std::time::Duration;

use serde::Deserialize;

use crate::exporters::settings::{ExporterSettings, QueueSettings, RetrySettings};
use crate::signal::Signal;

pub use crate::kafka::{
    AUTH_REFUSED, Auth, Encoding, SignalTopic, check_brokers, default_brokers, default_topic,
};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProducerCompression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl ProducerCompression {
    fn codec(self) -> &'static str {
        match self {
            ProducerCompression::None => "none",
            ProducerCompression::Gzip => "gzip",
            ProducerCompression::Snappy => "snappy",
            ProducerCompression::Lz4 => "lz4",
            ProducerCompression::Zstd => "zstd",
        }
    }
}

/// `producer:`, with the Collector's names and defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Producer {
    /// The largest message the broker is sent; a bigger batch is refused
    /// (not retried): split it with `sending_queue.batch.max_size`.
    pub max_message_bytes: usize,
    /// 0: none, 1: the leader, -1: every in-sync replica.
    pub required_acks: i32,
    pub compression: ProducerCompression,
    /// Accepted for the Collector's sake; librdkafka batches by itself.
    pub flush_max_messages: usize,
}

impl Default for Producer {
    fn default() -> Self {
        Producer {
            max_message_bytes: 1_000_000,
            required_acks: 1,
            compression: ProducerCompression::None,
            flush_max_messages: 0,
        }
    }
}

/// `partition_by`: sidewatch's own message key, which sends everything of
/// one key to one partition, so that the one consumer owning it sees the
/// whole of each series.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PartitionBy {
    /// `series`: metric points by their series identity (metric name,
    /// resource and point attributes), spans by `service.name`, log
    /// records by their resource.
    Named(PartitionName),
    /// A list of attributes, looked up on the item first, then on its
    /// resource, e.g. `[service.name]`.
    Attributes(Vec<String>),
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PartitionName {
    Series,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaExporterConfig {
    #[serde(default = "default_brokers")]
    pub brokers: Vec<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// The Collector's older single topic, for every signal.
    #[serde(default)]
    pub topic: Option<String>,
    /// The Collector's older single encoding, for every signal.
    #[serde(default)]
    pub encoding: Option<Encoding>,
    #[serde(default)]
    pub traces: SignalTopic,
    #[serde(default)]
    pub metrics: SignalTopic,
    #[serde(default)]
    pub logs: SignalTopic,
    #[serde(default)]
    pub partition_traces_by_id: bool,
    #[serde(default)]
    pub partition_metrics_by_resource_attributes: bool,
    #[serde(default)]
    pub partition_logs_by_resource_attributes: bool,
    #[serde(default)]
    pub partition_by: Option<PartitionBy>,
    #[serde(default)]
    pub producer: Producer,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default = "default_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub sending_queue: QueueSettings,
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

impl KafkaExporterConfig {
    pub fn settings(&self) -> ExporterSettings {
        ExporterSettings {
            timeout: self.timeout,
            sending_queue: self.sending_queue.clone(),
            retry_on_failure: self.retry_on_failure.clone(),
        }
    }

    fn signal_topic(&self, signal: Signal) -> &SignalTopic {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }

    /// The per-signal topic, else the single `topic`, else the Collector's
    /// default name.
    pub fn topic(&self, signal: Signal) -> String {
        self.signal_topic(signal)
            .topic
            .clone()
            .or_else(|| self.topic.clone())
            .unwrap_or_else(|| default_topic(signal).to_string())
    }

    pub fn encoding(&self, signal: Signal) -> Encoding {
        self.signal_topic(signal)
            .encoding
            .or(self.encoding)
            .unwrap_or_default()
    }

    /// Every problem `validate` reports, each at its key path.
    pub fn validate(&self) -> Vec<(Vec<&'static str>, String)> {
        let mut errors = Vec::new();
        if let Some(problem) = check_brokers(&self.brokers) {
            errors.push((vec!["brokers"], problem));
        }
        if let Some(kind) = self.auth.refused() {
            errors.push((vec!["auth", kind], AUTH_REFUSED.to_string()));
        }
        if self.producer.compression == ProducerCompression::Zstd {
            errors.push((
                vec!["producer", "compression"],
                "zstd is not built into this Kafka client: expected none, gzip, snappy or lz4"
                    .to_string(),
            ));
        }
        if !matches!(self.producer.required_acks, -1..=1) {
            errors.push((
                vec!["producer", "required_acks"],
                format!(
                    "{} is not an acks level: expected 0 (none), 1 (the leader) or -1 (every in-sync replica)",
                    self.producer.required_acks
                ),
            ));
        }
        if self.producer.max_message_bytes < 1000 {
            errors.push((
                vec!["producer", "max_message_bytes"],
                "must be at least 1000 bytes, e.g. 1000000".to_string(),
            ));
        }
        if self.timeout.is_zero() {
            errors.push((
                vec!["timeout"],
                "must be more than 0: the time a message may wait for the broker's acknowledgement, e.g. 5s".to_string(),
            ));
        }
        if let Some(PartitionBy::Attributes(attributes)) = &self.partition_by
            && (attributes.is_empty() || attributes.iter().any(String::is_empty))
        {
            errors.push((
                vec!["partition_by"],
                "expected `series` or a list of attribute names such as [service.name]".to_string(),
            ));
        }
        let collector_keys = [
            self.partition_traces_by_id,
            self.partition_metrics_by_resource_attributes,
            self.partition_logs_by_resource_attributes,
        ];
        if self.partition_by.is_some() && collector_keys.into_iter().any(|on| on) {
            errors.push((
                vec!["partition_by"],
                "cannot be combined with partition_traces_by_id or partition_*_by_resource_attributes: each message has one key; choose one".to_string(),
            ));
        }
        errors
    }

    /// librdkafka's producer settings. Acks are awaited per message
    /// (`message.timeout.ms` bounds the wait), so an export succeeds only
    /// once the broker holds every message of the batch.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers.join(","))
            .set(
                "client.id",
                self.client_id.as_deref().unwrap_or("sidewatch"),
            )
            .set("acks", self.producer.required_acks.to_string())
            .set(
                "message.max.bytes",
                self.producer.max_message_bytes.to_string(),
            )
            .set("compression.codec", self.producer.compression.codec())
            .set("message.timeout.ms", self.timeout.as_millis().to_string())
            // Batches form in the sending queue: send what arrives now.
            .set("linger.ms", "5");
        config
    }
}
