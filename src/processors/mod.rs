//! Processors: synchronous transformations of batches inside a pipeline.
//!
//! Contract: `process`, `tick` and `flush` never block and never do I/O;
//! time is passed in, so tests never sleep and replay can drive event time.
//! A processor may hold items back (batching) and emit them later from
//! `tick` or `flush`; it must never drop an item it was given unless that is
//! its documented purpose. Connectors implement the same trait: they
//! consume batches of one signal and emit batches of another.
//!
//! A component that keeps state on disk (the alert connector) does not
//! write it itself: `take_state_write` hands the bytes to its runtime,
//! which writes them outside the component's lock (`state_write`), so
//! requests on the pipeline never wait for an fsync.

pub mod attributes;
pub mod batch;
pub mod filter;
pub mod memory_limiter;
pub mod percentiles;
pub mod probabilistic_sampler;
pub mod resourcedetection;
pub mod schedule;
pub mod state_write;
pub mod tail_sampling;
pub mod transform;
pub mod window_gauges;

use std::time::{Duration, SystemTime};

use crate::signal::Batch;

pub trait Processor: Send {
    /// Consumes `batch` and pushes what it emits now onto `out`.
    fn process(&mut self, batch: Batch, now: SystemTime, out: &mut Vec<Batch>);

    /// How often `tick` wants to run; `None` means never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Emits what has become due by `now` (timeouts, window ends).
    fn tick(&mut self, _now: SystemTime, _out: &mut Vec<Batch>) {}

    /// Emits everything held back, as of `now`; called once at shutdown
    /// (and at the end of a replay).
    fn flush(&mut self, _now: SystemTime, _out: &mut Vec<Batch>) {}

    /// State to persist after `tick` or `flush`, if it changed: the
    /// runtime writes it atomically, off this component's lock, before it
    /// delivers what that `tick` or `flush` emitted.
    fn take_state_write(&mut self) -> Option<state_write::StateWrite> {
        None
    }

    /// Registers the component's own counters under its id; called once
    /// when the graph is built (a processor in several pipelines shares
    /// them).
    fn register_telemetry(&mut self, _id: &str, _telemetry: &crate::telemetry::Telemetry) {}

    /// Whether `process` takes `Batch::Wire` as it is, without looking
    /// inside (batching, admission). The others are given the batch
    /// decoded (once: `WireBatch` keeps it), so none has to handle both.
    fn accepts_wire(&self) -> bool {
        false
    }

    /// Series counts for self-telemetry, for components that keep state
    /// per series.
    fn cardinality(
        &self,
    ) -> Option<std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>> {
        None
    }
}

/// Runs `batches` through `chain[start..]`, in order.
pub fn run_chain(
    chain: &mut [Box<dyn Processor>],
    start: usize,
    batches: Vec<Batch>,
    now: SystemTime,
) -> Vec<Batch> {
    let mut current = batches;
    for processor in chain.iter_mut().skip(start) {
        if current.is_empty() {
            break;
        }
        let mut next = Vec::with_capacity(current.len());
        for batch in current {
            processor.process(batch, now, &mut next);
        }
        current = next;
    }
    current
}
