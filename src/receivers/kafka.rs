//! `kafka` receiver: a member of a consumer group reading OTLP export
//! requests (protobuf or JSON) from a topic per signal, with the
//! Collector's config (`brokers`, `group_id`, `initial_offset`, per-signal
//! `traces: { topic, encoding }`).
//!
//! At-least-once: a message's offset is stored only once its batch is in
//! every exporter queue of its pipelines (`Consumer::consume` answered),
//! and librdkafka commits stored offsets every `autocommit.interval` and
//! when partitions are revoked. While the pipeline refuses (a full queue)
//! the same message is offered again after a pause, so backpressure stops
//! consumption instead of dropping data. A message that cannot be decoded
//! is counted, logged and skipped: it would fail the same way forever.
//! A crash loses nothing acknowledged; what was consumed after the last
//! commit is read again by whoever owns the partition next (duplicates).
//!
//! One group member subscribes to the topics of every signal that has a
//! pipeline; a rebalance is logged with the partitions gained or lost.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, TopicPartitionList};
use serde::Deserialize;

use super::{Consumers, Receiver, ReceiverContext, StartedReceiver};
use crate::kafka::{
    AUTH_REFUSED, Auth, Encoding, SignalTopic, check_brokers, default_brokers, default_topic,
};
use crate::pipeline::Refused;
use crate::signal::{Batch, Signal};
use crate::telemetry::ReceiverStats;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InitialOffset {
    /// Only what is produced after the group first joins.
    #[default]
    Latest,
    /// Everything the topic still holds.
    Earliest,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoCommit {
    /// `false` commits after every message instead (slower).
    pub enable: bool,
    #[serde(with = "crate::config::duration")]
    pub interval: Duration,
}

impl Default for AutoCommit {
    fn default() -> Self {
        AutoCommit {
            enable: true,
            interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaReceiverConfig {
    #[serde(default = "default_brokers")]
    pub brokers: Vec<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub encoding: Option<Encoding>,
    #[serde(default)]
    pub traces: SignalTopic,
    #[serde(default)]
    pub metrics: SignalTopic,
    #[serde(default)]
    pub logs: SignalTopic,
    #[serde(default = "default_group_id")]
    pub group_id: String,
    #[serde(default)]
    pub initial_offset: InitialOffset,
    #[serde(default)]
    pub autocommit: AutoCommit,
    /// How long the group waits for a silent member before giving its
    /// partitions to the others (what a kill -9 costs).
    #[serde(default = "default_session_timeout", with = "crate::config::duration")]
    pub session_timeout: Duration,
    #[serde(default = "default_heartbeat", with = "crate::config::duration")]
    pub heartbeat_interval: Duration,
    #[serde(default)]
    pub auth: Auth,
}

fn default_group_id() -> String {
    "otel-collector".to_string()
}

fn default_session_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_heartbeat() -> Duration {
    Duration::from_secs(3)
}

impl KafkaReceiverConfig {
    fn signal_topic(&self, signal: Signal) -> &SignalTopic {
        match signal {
            Signal::Traces => &self.traces,
            Signal::Metrics => &self.metrics,
            Signal::Logs => &self.logs,
        }
    }

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

    pub fn validate(&self) -> Vec<(Vec<&'static str>, String)> {
        let mut errors = Vec::new();
        if let Some(problem) = check_brokers(&self.brokers) {
            errors.push((vec!["brokers"], problem));
        }
        if let Some(kind) = self.auth.refused() {
            errors.push((vec!["auth", kind], AUTH_REFUSED.to_string()));
        }
        if self.group_id.is_empty() {
            errors.push((
                vec!["group_id"],
                "is empty: expected the consumer group's name, e.g. sidewatch".to_string(),
            ));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
            errors.push((
                vec!["heartbeat_interval"],
                "must be more than 0 and less than session_timeout (a third of it is usual)"
                    .to_string(),
            ));
        }
        if self.autocommit.interval.is_zero() {
            errors.push((
                vec!["autocommit", "interval"],
                "must be more than 0, e.g. 1s".to_string(),
            ));
        }
        errors
    }
}

pub struct KafkaReceiver {
    config: KafkaReceiverConfig,
}

impl KafkaReceiver {
    pub fn new(config: KafkaReceiverConfig) -> Self {
        KafkaReceiver { config }
    }
}

/// Logs what a rebalance moved: the stateful components behind this
/// member start over for the partitions it gains (see the README's
/// "Scaling out").
struct GroupContext {
    id: String,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        if let Rebalance::Revoke(partitions) = rebalance {
            tracing::info!(receiver = %self.id, partitions = %partition_text(partitions), count = partitions.count(), "kafka rebalance: partitions revoked");
        }
    }

    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(receiver = %self.id, partitions = %partition_text(partitions), count = partitions.count(), "kafka rebalance: partitions assigned");
            }
            Rebalance::Error(error) => {
                tracing::warn!(receiver = %self.id, %error, "kafka rebalance failed");
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

fn partition_text(partitions: &TopicPartitionList) -> String {
    let items: Vec<String> = partitions
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect();
    items.join(" ")
}

/// What one topic feeds.
struct Route {
    topic: String,
    signal: Signal,
    encoding: Encoding,
    consumer: crate::pipeline::Consumer,
    stats: Arc<ReceiverStats>,
}

fn decode(payload: &[u8], signal: Signal, encoding: Encoding) -> Result<Batch, String> {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest as Logs;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest as Metrics;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as Traces;
    use prost::Message as _;
    let batch = match (encoding, signal) {
        (Encoding::OtlpProto, Signal::Traces) => {
            Traces::decode(payload).map(|r| Batch::Traces(r.into()))
        }
        (Encoding::OtlpProto, Signal::Metrics) => {
            Metrics::decode(payload).map(|r| Batch::Metrics(r.into()))
        }
        (Encoding::OtlpProto, Signal::Logs) => Logs::decode(payload).map(|r| Batch::Logs(r.into())),
        (Encoding::OtlpJson, signal) => {
            let batch = match signal {
                Signal::Traces => {
                    serde_json::from_slice::<Traces>(payload).map(|r| Batch::Traces(r.into()))
                }
                Signal::Metrics => {
                    serde_json::from_slice::<Metrics>(payload).map(|r| Batch::Metrics(r.into()))
                }
                Signal::Logs => {
                    serde_json::from_slice::<Logs>(payload).map(|r| Batch::Logs(r.into()))
                }
            };
            return batch
                .map_err(|e| format!("invalid OTLP/JSON: {e}"))
                .and_then(checked);
        }
    };
    batch
        .map_err(|e| format!("invalid OTLP protobuf: {e}"))
        .and_then(checked)
}

fn checked(batch: Batch) -> Result<Batch, String> {
    crate::signal::check_ids(&batch).map_err(|e| e.to_string())?;
    Ok(batch)
}

/// Offers one message's batch until the pipeline takes it; false if
/// shutdown came first (the offset is then not stored).
async fn hand_over(
    route: &Route,
    message: &BorrowedMessage<'_>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    let started = Instant::now();
    let batch = match decode(
        message.payload().unwrap_or_default(),
        route.signal,
        route.encoding,
    ) {
        Ok(batch) => batch,
        Err(error) => {
            route.stats.answered(started, true);
            tracing::warn!(
                topic = %route.topic,
                partition = message.partition(),
                offset = message.offset(),
                %error,
                "kafka message skipped: not an OTLP export request"
            );
            return true;
        }
    };
    let items = batch.item_count() as u64;
    let mut pause = Duration::from_millis(50);
    loop {
        match route.consumer.consume(batch.clone()).await {
            Ok(()) => {
                route
                    .stats
                    .accepted_items
                    .fetch_add(items, Ordering::Relaxed);
                route.stats.answered(started, false);
                return true;
            }
            Err(refused @ (Refused::Malformed(_) | Refused::ComponentFailed(_))) => {
                route
                    .stats
                    .refused_items
                    .fetch_add(items, Ordering::Relaxed);
                route.stats.answered(started, true);
                tracing::warn!(topic = %route.topic, offset = message.offset(), error = %refused, "kafka message skipped");
                return true;
            }
            Err(refused) => {
                tracing::debug!(topic = %route.topic, error = %refused, "pipeline busy; offering the message again");
                tokio::select! {
                    // Shutting down: leave the offset for the next owner.
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn run(
    consumer: StreamConsumer<GroupContext>,
    routes: Vec<Route>,
    commit_each: bool,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "kafka receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(route) = routes.iter().find(|r| r.topic == message.topic()) else {
            continue;
        };
        if !hand_over(route, &message, &shutdown).await {
            break;
        }
        if let Err(error) = consumer.store_offset_from_message(&message) {
            tracing::warn!(%error, "storing the kafka offset failed");
        }
        if commit_each && let Err(error) = consumer.commit_message(&message, CommitMode::Async) {
            tracing::warn!(%error, "committing the kafka offset failed");
        }
    }
    // What reached the queues is committed before leaving the group, so
    // the next owner starts after it.
    if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(%error, "final kafka commit");
    }
    consumer.unsubscribe();
}

#[async_trait::async_trait]
impl Receiver for KafkaReceiver {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver> {
        let config = &self.config;
        let routes: Vec<Route> = Signal::ALL
            .into_iter()
            .filter_map(|signal| {
                let consumer = Consumers::get(&context.consumers, signal)?.clone();
                Some(Route {
                    topic: config.topic(signal),
                    signal,
                    encoding: config.encoding(signal),
                    consumer,
                    stats: context.telemetry.receiver(&context.id, "kafka", signal),
                })
            })
            .collect();
        for (i, route) in routes.iter().enumerate() {
            if let Some(other) = routes[..i].iter().find(|r| r.topic == route.topic) {
                return Err(std::io::Error::other(format!(
                    "{} and {} read the same topic `{}`: a message says nothing of its signal, so set traces.topic, metrics.topic and logs.topic apart",
                    other.signal, route.signal, route.topic
                )));
            }
        }
        let mut client = rdkafka::ClientConfig::new();
        client
            .set("bootstrap.servers", config.brokers.join(","))
            .set(
                "client.id",
                config.client_id.as_deref().unwrap_or("sidewatch"),
            )
            .set("group.id", &config.group_id)
            .set(
                "auto.offset.reset",
                match config.initial_offset {
                    InitialOffset::Latest => "latest",
                    InitialOffset::Earliest => "earliest",
                },
            )
            .set("enable.auto.commit", config.autocommit.enable.to_string())
            .set(
                "auto.commit.interval.ms",
                config.autocommit.interval.as_millis().to_string(),
            )
            // Offsets are stored by hand, once the data is in the queues.
            .set("enable.auto.offset.store", "false")
            .set(
                "session.timeout.ms",
                config.session_timeout.as_millis().to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                config.heartbeat_interval.as_millis().to_string(),
            );
        let consumer: StreamConsumer<GroupContext> = client
            .create_with_context(GroupContext {
                id: context.id.clone(),
            })
            .map_err(|e| std::io::Error::other(format!("creating the Kafka consumer: {e}")))?;
        let topics: Vec<&str> = routes.iter().map(|r| r.topic.as_str()).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| std::io::Error::other(format!("subscribing to {topics:?}: {e}")))?;
        let commit_each = !config.autocommit.enable;
        let task = tokio::spawn(run(consumer, routes, commit_each, context.shutdown.clone()));
        Ok(StartedReceiver {
            addresses: Vec::new(),
            tasks: vec![task],
        })
    }
}

impl crate::components::compiled::CompiledReceiver for KafkaReceiverConfig {
    fn build(&self) -> Box<dyn crate::receivers::Receiver> {
        Box::new(KafkaReceiver::new(self.clone()))
    }
}

/// The registry's compile step for the `kafka` receiver.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledReceiver>> {
    let config: KafkaReceiverConfig = decoder.decode(value, path)?;
    crate::components::compiled::report_at(config.validate(), path, decoder)
        .then(|| std::sync::Arc::new(config) as _)
}
