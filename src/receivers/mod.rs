//! Receivers: listen for data and hand it to pipelines through a
//! [`Consumer`] per signal.
//!
//! Contract: `start` binds every listener before it returns (so a port in
//! use is a start-up error and port 0 can be reported), then serves on
//! spawned tasks until the shutdown token fires, finishing in-flight
//! requests before those tasks end.

pub mod checks;
pub mod hostmetrics;
pub mod internal;
pub mod otlp;

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
