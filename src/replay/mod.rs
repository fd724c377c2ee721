//! `sidewatch replay`: runs a config's whole graph (every processor and
//! connector: red, percentiles, anomaly, alert, batch, ...) over history in
//! event time, to backtest a configuration before it is deployed.
//!
//! It is the live graph (`pipeline::build::build_graph`) on a manual clock:
//! each input is handed to the pipelines its signal reaches from a receiver
//! at the input's event time, and every ticker runs at its interval in
//! event time (`schedule`), as fast as the CPU allows. Exporters are
//! replaced by captures (`capture`), so nothing is sent anywhere; what each
//! would have received is written as OTLP/JSON lines, the `file` exporter's
//! format. From those, `report` gives the anomaly scores as CSV, the alert
//! and anomaly events as JSON lines, and counts.

mod capture;
mod input;
mod report;
mod schedule;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

#[cfg(test)]
pub(crate) use input::gauge_batch;
pub use report::ReplayReport;
pub(crate) use report::file_name;

use crate::clock::Clock;
use crate::pipeline::PipelineRuntime;
use crate::pipeline::build::{Purpose, build_graph};
use crate::plan::Plan;
use crate::signal::Signal;
use crate::telemetry::Telemetry;

/// Replays `input` through the whole graph of `plan`, writing what each
/// exporter would have received into `exporters_dir`; `metric` names a CSV
/// input's series.
pub fn replay(
    plan: &Plan,
    input: &Path,
    metric: &str,
    exporters_dir: &Path,
) -> Result<ReplayReport, String> {
    let (format, inputs) = input::read(input, metric)?;
    std::fs::create_dir_all(exporters_dir)
        .map_err(|e| format!("cannot create {}: {e}", exporters_dir.display()))?;
    // One thread: the graph's tasks (queue workers) interleave with the
    // driver deterministically, and replay needs no more.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run(plan, format, inputs, exporters_dir))
}

async fn run(
    plan: &Plan,
    format: input::Format,
    inputs: Vec<input::Input>,
    exporters_dir: &Path,
) -> Result<ReplayReport, String> {
    let start = inputs
        .iter()
        .map(|i| i.at)
        .find(|at| *at > UNIX_EPOCH)
        .unwrap_or(UNIX_EPOCH);
    let (clock, hand) = Clock::manual(start);
    let telemetry = Telemetry::default();
    let collector = Arc::new(Mutex::new(report::Collector::default()));
    let mut sinks = Vec::new();
    let mut files = Vec::new();
    let graph = build_graph(
        plan,
        &telemetry,
        Purpose::Replay,
        &mut |id, _config, signal| {
            let path = exporters_dir.join(report::file_name(&id.to_string(), signal));
            let sink = Arc::new(Mutex::new(capture::Sink::create(&path)?));
            sinks.push(sink.clone());
            files.push(path);
            let exporter: Arc<dyn crate::exporters::Exporter> =
                Arc::new(capture::CaptureExporter {
                    sink,
                    collector: collector.clone(),
                });
            Ok((exporter, capture::settings()))
        },
    )
    .map_err(|e| e.to_string())?;

    // Input enters where a receiver's data would: the pipelines of its
    // signal that have a receiver other than a connector.
    let entry = |signal: Signal| -> Vec<Arc<PipelineRuntime>> {
        plan.service
            .pipelines
            .iter()
            .zip(&graph.pipelines)
            .filter(|(p, _)| {
                p.signal == signal && p.receivers.iter().any(|r| plan.receivers.contains_key(r))
            })
            .map(|(_, runtime)| runtime.clone())
            .collect()
    };
    let entries: Vec<(Signal, Vec<Arc<PipelineRuntime>>)> =
        Signal::ALL.into_iter().map(|s| (s, entry(s))).collect();

    let mut schedule = schedule::Schedule::new(graph.timed(), start, hand.clone());
    let mut skipped = 0;
    for input in &inputs {
        let signal = input.batch.signal();
        let pipelines = entries
            .iter()
            .find(|(s, _)| *s == signal)
            .map(|(_, p)| p.as_slice())
            .unwrap_or_default();
        if pipelines.is_empty() {
            skipped += 1;
            continue;
        }
        // Ticks due before this input run first, each at its own time; ticks
        // due at its time run after it, as a live ticker would see it.
        schedule.run_until(input.at, false).await;
        hand.advance_to(input.at);
        let now = clock.now();
        for pipeline in pipelines {
            pipeline
                .consume_admitted(input.batch.clone(), now)
                .await
                .map_err(|e| format!("pipeline {}: {e}", pipeline.id))?;
        }
        schedule.run_until(now, true).await;
    }
    if skipped == inputs.len() && !inputs.is_empty() {
        return Err(
            "no input reached a pipeline: no pipeline takes the input's signal from a receiver"
                .into(),
        );
    }
    // The end of the input is a shutdown: everything held back is flushed,
    // in topological order, at the last event time.
    for pipeline in &graph.pipelines {
        pipeline.flush(clock.now()).await;
    }
    // Captures never fail, so draining takes only as long as the copying.
    let deadline = Instant::now() + Duration::from_secs(3600);
    for queue in graph.queues {
        queue.drain(deadline).await;
    }
    for sink in &sinks {
        sink.lock().unwrap_or_else(|e| e.into_inner()).finish()?;
    }
    drop(sinks);
    let collector = std::mem::take(&mut *collector.lock().unwrap_or_else(|e| e.into_inner()));
    let mut report = report::build(format, &inputs, collector);
    report.exporter_files = files;
    report.skipped_inputs = skipped;
    report.ticks = schedule.ticks;
    Ok(report)
}
