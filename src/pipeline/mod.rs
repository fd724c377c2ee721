//! The running graph: pipelines, their processor chains, fan-out to
//! exporter queues and connectors, and the consumer handle receivers use.
//!
//! Admission happens before any processing: if a queue this batch would
//! reach is full, the receiver refuses the request with a retryable answer.
//! Once admitted, a batch is delivered by waiting for queue room, never
//! dropped, and the client is answered only after its data is in every
//! queue. (`build` wires the graph, starts and stops it; `contain` keeps a
//! component's panic to the request that caused it.)
//!
//! Time: nothing here reads the system clock. `now` comes from the graph's
//! [`Clock`] (the consumer reads it per request, tickers per tick), so the
//! same graph runs live on wall time and in `sidewatch replay` on event
//! time.
//!
//! State files: a component's `take_state_write` is taken under its lock
//! and written after the lock is released (`state_writer`), before what the
//! same tick or flush emitted is delivered.

pub mod build;
pub mod contain;
pub mod in_flight;
pub mod memory;
mod state_writer;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::future::BoxFuture;

use crate::clock::Clock;
use crate::exporters::queue::{QueueSender, SendError};
use crate::processors::{Processor, run_chain};
use crate::signal::{Batch, Signal};
use state_writer::{Numbered, StateWriter};

/// Why a batch was not admitted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refused {
    #[error("the queue of exporter `{exporter}` is full; retry later")]
    QueueFull { exporter: Arc<str> },
    #[error("sidewatch is shutting down")]
    ShuttingDown,
    #[error("sidewatch's memory is above its limit; retry later")]
    MemoryLimit,
    #[error("too many request bytes in flight; retry later")]
    InFlightBytes,
    /// The exporter's persistent queue could not store the data (a full
    /// disk, say): nothing is acknowledged that is not stored.
    #[error("the queue of exporter `{exporter}` cannot store data: {message}; retry later")]
    Storage { exporter: Arc<str>, message: String },
    /// Accepted by the wire scanner but not by prost: a disagreement
    /// between the two, answered like any malformed request.
    #[error("invalid OTLP protobuf: {0}")]
    Malformed(String),
    /// A processor or connector panicked on this data (a bug; see the
    /// log). Not retryable: the same data would fail again.
    #[error("{0}")]
    ComponentFailed(String),
}

pub(crate) enum Target {
    Exporter(QueueSender),
    Connector(Arc<ConnectorRuntime>),
}

pub struct PipelineRuntime {
    pub id: String,
    pub signal: Signal,
    /// `None` when the pipeline has no processors: no lock on that path.
    chain: Option<Mutex<Vec<Box<dyn Processor>>>>,
    targets: Vec<Target>,
    /// Every processor and target takes encoded batches as they are.
    accepts_wire: bool,
    state_writer: StateWriter,
}

pub struct ConnectorRuntime {
    pub id: String,
    state: Mutex<Box<dyn Processor>>,
    downstream: Vec<Arc<PipelineRuntime>>,
    /// The connector and every pipeline it feeds take encoded batches.
    accepts_wire: bool,
    state_accepts_wire: bool,
    state_writer: StateWriter,
}

impl PipelineRuntime {
    pub(crate) fn new(
        id: String,
        signal: Signal,
        processors: Vec<Box<dyn Processor>>,
        targets: Vec<Target>,
    ) -> Self {
        let accepts_wire = processors.iter().all(|p| p.accepts_wire())
            && targets.iter().all(|target| match target {
                Target::Exporter(queue) => queue.prefers_wire(),
                Target::Connector(connector) => connector.accepts_wire,
            });
        PipelineRuntime {
            id,
            signal,
            chain: (!processors.is_empty()).then(|| Mutex::new(processors)),
            targets,
            accepts_wire,
            state_writer: StateWriter::default(),
        }
    }

    /// Whether receivers may hand this pipeline encoded batches.
    pub fn accepts_wire(&self) -> bool {
        self.accepts_wire
    }

    /// The first full queue this pipeline's data would reach, if any
    /// (queues that block on overflow make the request wait instead).
    pub fn full_queue(&self) -> Option<Arc<str>> {
        for target in &self.targets {
            match target {
                Target::Exporter(queue) if queue.is_full() && !queue.block_on_overflow => {
                    return Some(queue.name.clone());
                }
                Target::Exporter(_) => {}
                Target::Connector(connector) => {
                    for pipeline in &connector.downstream {
                        if let Some(full) = pipeline.full_queue() {
                            return Some(full);
                        }
                    }
                }
            }
        }
        None
    }

    /// Runs the processors and delivers the result; the batch has been
    /// admitted already.
    pub fn consume_admitted(
        &self,
        batch: Batch,
        now: SystemTime,
    ) -> BoxFuture<'_, Result<(), Refused>> {
        Box::pin(async move {
            let batch = if self.accepts_wire {
                batch
            } else {
                batch
                    .into_decoded()
                    .map_err(|e| Refused::Malformed(e.to_string()))?
            };
            let outputs = match &self.chain {
                None => vec![batch],
                Some(chain) => {
                    let mut chain = contain::lock(chain, &self.id);
                    contain::run(&self.id, || run_chain(&mut chain, 0, vec![batch], now))
                        .map_err(Refused::ComponentFailed)?
                }
            };
            let mut result = Ok(());
            for output in outputs {
                let delivered = self.deliver(output, now).await;
                result = result.and(delivered);
            }
            result
        })
    }

    /// Delivers to every target; the first storage failure is returned so
    /// the client is refused (it retries; targets that took the data then
    /// see a duplicate, which is allowed, rather than a loss).
    async fn deliver(&self, batch: Batch, now: SystemTime) -> Result<(), Refused> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut result = Ok(());
        // `repeat_n` moves the batch into the last target instead of
        // cloning it: a processor downstream then owns it outright and
        // `Arc::make_mut` / `unwrap_or_clone` copy nothing.
        let copies = std::iter::repeat_n(batch, self.targets.len());
        for (target, batch) in self.targets.iter().zip(copies) {
            match target {
                Target::Exporter(queue) => match queue.send(batch).await {
                    Ok(()) => {}
                    Err(SendError::Closed) => {
                        tracing::error!(exporter = %queue.name, pipeline = %self.id, "exporter queue closed before delivery");
                    }
                    Err(SendError::Storage(message)) => {
                        tracing::error!(exporter = %queue.name, pipeline = %self.id, error = %message, "refusing data the queue cannot store");
                        result = result.and(Err(Refused::Storage {
                            exporter: queue.name.clone(),
                            message,
                        }));
                    }
                },
                Target::Connector(connector) => {
                    let delivered = connector.consume(batch, now).await;
                    result = result.and(delivered);
                }
            }
        }
        result
    }

    async fn deliver_logged(&self, batch: Batch, now: SystemTime) {
        if let Err(e) = self.deliver(batch, now).await {
            tracing::error!(pipeline = %self.id, error = %e, "data emitted by a processor was not stored");
        }
    }

    /// Runs due processor ticks and delivers what they emit.
    pub async fn tick(&self, now: SystemTime) {
        self.run_timed(now, |processor, now, out| processor.tick(now, out))
            .await;
    }

    /// Flushes every processor in order and delivers the result, then
    /// flushes the connectors this pipeline feeds.
    pub async fn flush(&self, now: SystemTime) {
        self.run_timed(now, |processor, now, out| processor.flush(now, out))
            .await;
        for target in &self.targets {
            if let Target::Connector(connector) = target {
                connector.flush(now).await;
            }
        }
    }

    /// Calls `step` (tick or flush) on each processor in order, running
    /// what one emits through the rest of the chain; then, with the chain's
    /// lock released, writes the state files they handed over and delivers
    /// the output.
    async fn run_timed(
        &self,
        now: SystemTime,
        step: impl Fn(&mut dyn Processor, SystemTime, &mut Vec<Batch>),
    ) {
        let Some(chain) = &self.chain else {
            return;
        };
        let (outputs, writes) = {
            let mut chain = contain::lock(chain, &self.id);
            contain::run(&self.id, || {
                let mut outputs = Vec::new();
                let mut writes = Vec::new();
                for i in 0..chain.len() {
                    let mut emitted = Vec::new();
                    step(chain[i].as_mut(), now, &mut emitted);
                    if let Some(write) = chain[i].take_state_write() {
                        writes.push(self.state_writer.number(write));
                    }
                    if !emitted.is_empty() {
                        outputs.extend(run_chain(&mut chain, i + 1, emitted, now));
                    }
                }
                (outputs, writes)
            })
            .unwrap_or_default()
        };
        self.state_writer.write(writes, &self.id).await;
        for output in outputs {
            self.deliver_logged(output, now).await;
        }
    }

    pub fn tick_interval(&self) -> Option<std::time::Duration> {
        let chain = contain::lock(self.chain.as_ref()?, &self.id);
        chain.iter().filter_map(|p| p.tick_interval()).min()
    }
}

impl ConnectorRuntime {
    pub(crate) fn new(
        id: String,
        state: Box<dyn Processor>,
        downstream: Vec<Arc<PipelineRuntime>>,
    ) -> Self {
        let state_accepts_wire = state.accepts_wire();
        ConnectorRuntime {
            id,
            accepts_wire: state_accepts_wire && downstream.iter().all(|p| p.accepts_wire),
            state_accepts_wire,
            state: Mutex::new(state),
            downstream,
            state_writer: StateWriter::default(),
        }
    }

    async fn consume(&self, batch: Batch, now: SystemTime) -> Result<(), Refused> {
        let batch = if self.state_accepts_wire {
            batch
        } else {
            batch
                .into_decoded()
                .map_err(|e| Refused::Malformed(e.to_string()))?
        };
        let outputs = {
            let mut state = contain::lock(&self.state, &self.id);
            contain::run(&self.id, || {
                let mut outputs = Vec::new();
                state.process(batch, now, &mut outputs);
                outputs
            })
            .map_err(Refused::ComponentFailed)?
        };
        self.send_downstream(outputs, now).await
    }

    async fn send_downstream(&self, outputs: Vec<Batch>, now: SystemTime) -> Result<(), Refused> {
        let mut result = Ok(());
        for output in outputs {
            let targets: Vec<_> = self
                .downstream
                .iter()
                .filter(|p| p.signal == output.signal())
                .collect();
            let copies = std::iter::repeat_n(output, targets.len());
            for (pipeline, output) in targets.into_iter().zip(copies) {
                let delivered = pipeline.consume_admitted(output, now).await;
                result = result.and(delivered);
            }
        }
        result
    }

    pub async fn tick(&self, now: SystemTime) {
        let (outputs, writes) = self.run_timed(|state, out| state.tick(now, out));
        // The state goes to disk before the events of this tick go out, so
        // a restart never sends a notification twice; the connector's lock
        // is released meanwhile, so requests do not wait for the fsync.
        self.state_writer.write(writes, &self.id).await;
        if let Err(e) = self.send_downstream(outputs, now).await {
            tracing::error!(connector = %self.id, error = %e, "data emitted by a connector was not stored");
        }
    }

    async fn flush(&self, now: SystemTime) {
        let (outputs, writes) = self.run_timed(|state, out| state.flush(now, out));
        self.state_writer.write(writes, &self.id).await;
        if let Err(e) = self.send_downstream(outputs, now).await {
            tracing::error!(connector = %self.id, error = %e, "data flushed by a connector was not stored");
        }
    }

    /// Runs `step` under the connector's lock and takes the state file it
    /// left to write, numbered while still under the lock.
    fn run_timed(
        &self,
        step: impl FnOnce(&mut dyn Processor, &mut Vec<Batch>),
    ) -> (Vec<Batch>, Vec<Numbered>) {
        let mut state = contain::lock(&self.state, &self.id);
        contain::run(&self.id, || {
            let mut outputs = Vec::new();
            step(state.as_mut(), &mut outputs);
            let writes = state
                .take_state_write()
                .map(|write| self.state_writer.number(write))
                .into_iter()
                .collect();
            (outputs, writes)
        })
        .unwrap_or_default()
    }

    pub fn tick_interval(&self) -> Option<std::time::Duration> {
        contain::lock(&self.state, &self.id).tick_interval()
    }
}

/// What a receiver holds for one signal: every pipeline it feeds.
#[derive(Clone)]
pub struct Consumer {
    pipelines: Arc<[Arc<PipelineRuntime>]>,
    closed: tokio_util::sync::CancellationToken,
    memory: Option<Arc<memory::MemoryLimiter>>,
    /// Every pipeline reached only forwards: fixed once the graph is built.
    accepts_wire: bool,
    clock: Clock,
}

impl Consumer {
    pub(crate) fn new(
        pipelines: Vec<Arc<PipelineRuntime>>,
        closed: tokio_util::sync::CancellationToken,
        memory: Option<Arc<memory::MemoryLimiter>>,
        clock: Clock,
    ) -> Self {
        Consumer {
            accepts_wire: pipelines.iter().all(|p| p.accepts_wire()),
            pipelines: pipelines.into(),
            closed,
            memory,
            clock,
        }
    }

    /// Whether requests may be handed over encoded (validated, not
    /// decoded): true when every pipeline they reach only forwards them.
    pub fn accepts_wire(&self) -> bool {
        self.accepts_wire
    }

    /// Whether a request may be read and decoded at all: false while
    /// memory is above the limiter's soft limit. Receivers ask this first.
    pub fn admits_memory(&self) -> Result<(), Refused> {
        match &self.memory {
            Some(memory) if !memory.admits() => Err(Refused::MemoryLimit),
            _ => Ok(()),
        }
    }

    /// Tells the memory limiter that a request of `bytes` was accepted, so
    /// it counts before the next sample of resident memory sees it.
    pub fn accepted_bytes(&self, bytes: usize) {
        if let Some(memory) = &self.memory {
            memory.accepted(bytes);
        }
    }

    /// Reserves `bytes` of the in-flight budget for a request about to be
    /// read (`None` without a memory limiter), or refuses it.
    pub fn reserve(&self, bytes: usize) -> Result<Option<in_flight::Reservation>, Refused> {
        match &self.memory {
            None => Ok(None),
            Some(memory) => match memory.in_flight.reserve(bytes) {
                Some(reservation) => Ok(Some(reservation)),
                None => Err(Refused::InFlightBytes),
            },
        }
    }

    /// Admits and delivers a batch, answering only once it is in every
    /// queue it goes to; or refuses it whole, with nothing delivered.
    pub async fn consume(&self, batch: Batch) -> Result<(), Refused> {
        if self.closed.is_cancelled() {
            return Err(Refused::ShuttingDown);
        }
        for pipeline in self.pipelines.iter() {
            if let Some(exporter) = pipeline.full_queue() {
                return Err(Refused::QueueFull { exporter });
            }
        }
        let now = self.clock.now();
        let mut result = Ok(());
        let copies = std::iter::repeat_n(batch, self.pipelines.len());
        for (pipeline, batch) in self.pipelines.iter().zip(copies) {
            let delivered = pipeline.consume_admitted(batch, now).await;
            result = result.and(delivered);
        }
        result
    }
}
