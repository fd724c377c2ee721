//! Receivers: listen for data and hand it to pipelines through a
//! [`Consumer`] per signal.
//!
//! Contract: `start` binds every listener before it returns (so a port in
//! use is a start-up error and port 0 can be reported), then serves on
//! spawned tasks until the shutdown token fires, finishing in-flight
//! requests before those tasks end.

pub mod checks;
pub mod databases;
pub mod exec;
pub mod filelog;
pub mod hostmetrics;
pub mod internal;
pub mod otlp;
pub mod prometheus;
pub mod zipkin;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Consumer;
use crate::signal::Signal;
use crate::telemetry::Telemetry;

/// The consumers of one receiver, one per signal that has a pipeline.
#[derive(Clone, Default)]
pub struct Consumers {
    pub traces: Option<Consumer>,
    pub metrics: Option<Consumer>,
    pub logs: Option<Consumer>,
}

impl Consumers {
    pub fn get(&self, signal: Signal) -> Option<&Consumer> {
        match signal {
            Signal::Traces => self.traces.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
            Signal::Logs => self.logs.as_ref(),
        }
    }

    pub fn set(&mut self, signal: Signal, consumer: Consumer) {
        match signal {
            Signal::Traces => self.traces = Some(consumer),
            Signal::Metrics => self.metrics = Some(consumer),
            Signal::Logs => self.logs = Some(consumer),
        }
    }
}

pub struct ReceiverContext {
    pub id: String,
    pub consumers: Consumers,
    pub telemetry: Arc<Telemetry>,
    pub shutdown: CancellationToken,
}

pub struct StartedReceiver {
    /// Bound listeners, named like `otlp/grpc`.
    pub addresses: Vec<(String, SocketAddr)>,
    pub tasks: Vec<JoinHandle<()>>,
}

#[async_trait::async_trait]
pub trait Receiver: Send {
    async fn start(self: Box<Self>, context: ReceiverContext) -> std::io::Result<StartedReceiver>;
}

/// Hands a polled receiver's batch (a scrape, a command's output) to its
/// pipeline and counts it; a refusal is logged as `what` dropped.
pub async fn deliver(
    consumer: &Consumer,
    stats: &crate::telemetry::ReceiverStats,
    batch: crate::signal::Batch,
    what: &str,
) {
    use std::sync::atomic::Ordering;
    let items = batch.item_count() as u64;
    stats.requests.fetch_add(1, Ordering::Relaxed);
    match consumer.consume(batch).await {
        Ok(()) => {
            stats.accepted_items.fetch_add(items, Ordering::Relaxed);
        }
        Err(refused) => {
            stats.refused_items.fetch_add(items, Ordering::Relaxed);
            stats.failed_requests.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %refused, items, "{what} dropped: the pipeline refused it");
        }
    }
}
