//! A `batch` processor in front of a persistent queue becomes that
//! queue's batching (`sending_queue.batch`).
//!
//! Why: a batch processor holds data in memory after the client has been
//! answered, so a crash loses what it holds, although the user asked for a
//! persistent queue. Batching inside the queue forms the same batches from
//! what is already in the queue's log. The processor moves when it is the
//! last one of its pipeline and the pipeline feeds only exporters (their
//! queues take its settings unless they have `sending_queue.batch`
//! already); otherwise it stays, with a warning saying why and what to do.

use std::collections::BTreeMap;

use super::PipelinePlan;
use crate::components::{ConnectorConfig, ExporterConfig, ProcessorConfig, processor_as};
use crate::config::{ComponentId, Decoder, YamlPath};
use crate::exporters::settings::{QueueBatchSettings, Sizer};
use crate::processors::batch::BatchConfig;
use crate::signal::Signal;

/// Batching a queue takes from a processor that was moved into it.
#[derive(Debug, Clone)]
pub struct FoldedBatch {
    pub settings: QueueBatchSettings,
    /// `processor `batch` of pipeline `traces``, for logs and warnings.
    pub from: String,
}

/// Per (exporter, signal) queue, the batching moved into it.
pub type FoldedBatches = BTreeMap<(ComponentId, Signal), FoldedBatch>;

fn settings_of(config: &BatchConfig) -> QueueBatchSettings {
    QueueBatchSettings {
        flush_timeout: config.timeout,
        min_size: config.send_batch_size,
        max_size: config.send_batch_max_size,
        sizer: Sizer::Items,
    }
}

pub(super) fn fold(
    pipelines: &mut [PipelinePlan],
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
    exporters: &BTreeMap<ComponentId, ExporterConfig>,
    connectors: &BTreeMap<ComponentId, ConnectorConfig>,
    decoder: &mut Decoder,
    pipelines_path: &YamlPath,
) -> FoldedBatches {
    let mut folded = FoldedBatches::new();
    for pipeline in pipelines.iter_mut() {
        let persistent: Vec<&ComponentId> = pipeline
            .exporters
            .iter()
            .filter(|id| {
                exporters
                    .get(*id)
                    .is_some_and(|c| c.settings().sending_queue.storage.is_some())
            })
            .collect();
        let Some(queue) = persistent.first().map(|id| id.to_string()) else {
            continue;
        };
        let batches: Vec<usize> = pipeline
            .processors
            .iter()
            .enumerate()
            .filter(|(_, id)| {
                processors
                    .get(*id)
                    .and_then(processor_as::<BatchConfig>)
                    .is_some()
            })
            .map(|(i, _)| i)
            .collect();
        let pipeline_id = pipeline.id.clone();
        let path = |i: usize| {
            pipelines_path
                .key(pipeline_id.clone())
                .key("processors")
                .index(i)
        };
        let last = pipeline.processors.len().saturating_sub(1);
        let connector = pipeline
            .exporters
            .iter()
            .find(|id| connectors.contains_key(*id));
        for &i in &batches {
            let id = &pipeline.processors[i];
            let why_not = if i != last {
                Some(format!(
                    "it cannot move into that queue because `{}` follows it: put `{id}` last",
                    pipeline.processors[i + 1]
                ))
            } else {
                connector.map(|c| {
                    format!(
                        "it cannot move into that queue because this pipeline also feeds connector `{c}`: split the pipeline"
                    )
                })
            };
            if let Some(why_not) = why_not {
                decoder.warning(
                    path(i),
                    format!(
                        "processor `{id}` holds data in memory after clients are answered, in front of the persistent queue of exporter `{queue}`, so a crash loses what it holds; {why_not}, or remove it and give exporter `{queue}` `sending_queue.batch`"
                    ),
                );
            }
        }
        let Some(&i) = batches.last().filter(|&&i| i == last) else {
            continue;
        };
        if connector.is_some() {
            continue;
        }
        let id = pipeline.processors.remove(i);
        let Some(config) = processors.get(&id).and_then(processor_as::<BatchConfig>) else {
            continue;
        };
        let candidate = FoldedBatch {
            settings: settings_of(config),
            from: format!("processor `{id}` of pipeline `{}`", pipeline.id),
        };
        for exporter in &pipeline.exporters {
            let Some(config) = exporters.get(exporter) else {
                continue;
            };
            if config.settings().sending_queue.batch.is_some() {
                // Its own batching wins; the processor is simply not needed.
                continue;
            }
            match folded.get(&(exporter.clone(), pipeline.signal)) {
                None => {
                    folded.insert((exporter.clone(), pipeline.signal), candidate.clone());
                }
                Some(existing) if existing.settings == candidate.settings => {}
                Some(existing) => decoder.warning(
                    path(i),
                    format!(
                        "exporter `{exporter}` already batches {} with the settings of {}; the settings of processor `{id}` are not used for it",
                        pipeline.signal, existing.from
                    ),
                ),
            }
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load(exporters: &str) -> crate::plan::Loaded {
        let yaml = format!(
            r#"
receivers:
  otlp: {{ protocols: {{ grpc: {{ endpoint: "127.0.0.1:0" }} }} }}
processors:
  batch: {{ send_batch_size: 500, send_batch_max_size: 1000, timeout: 1s }}
exporters:
{exporters}
service:
  pipelines:
    traces: {{ receivers: [otlp], processors: [batch], exporters: [otlp, debug] }}
    logs: {{ receivers: [otlp], exporters: [otlp] }}
"#
        );
        crate::plan::load_str(&yaml, "test").unwrap_or_else(|e| panic!("{e}"))
    }

    fn traces(loaded: &crate::plan::Loaded) -> &PipelinePlan {
        let pipelines = &loaded.plan.service.pipelines;
        pipelines.iter().find(|p| p.id == "traces").unwrap()
    }

    fn id(text: &str) -> ComponentId {
        ComponentId::parse(text).unwrap()
    }

    #[test]
    fn a_last_batch_before_persistent_queues_moves_into_every_queue_it_feeds() {
        let loaded = load(
            "  otlp: { endpoint: http://127.0.0.1:9, sending_queue: { storage: /nonexistent } }\n  debug: {}",
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let traces = traces(&loaded);
        assert!(traces.processors.is_empty(), "{:?}", traces.processors);
        let expected = QueueBatchSettings {
            flush_timeout: Duration::from_secs(1),
            min_size: 500,
            max_size: 1000,
            sizer: Sizer::Items,
        };
        let batching = &loaded.plan.queue_batching;
        assert_eq!(batching[&(id("otlp"), Signal::Traces)].settings, expected);
        // The in-memory queue of the same pipeline batches the same way.
        assert_eq!(batching[&(id("debug"), Signal::Traces)].settings, expected);
        // Pipelines without the processor are left alone.
        assert!(!batching.contains_key(&(id("otlp"), Signal::Logs)));
    }

    #[test]
    fn a_queue_with_its_own_batching_keeps_it_and_without_storage_nothing_moves() {
        let own = load(
            "  otlp: { endpoint: http://127.0.0.1:9, sending_queue: { storage: /nonexistent, batch: { min_size: 7 } } }\n  debug: {}",
        );
        assert!(traces(&own).processors.is_empty());
        assert!(
            !own.plan
                .queue_batching
                .contains_key(&(id("otlp"), Signal::Traces))
        );
        let memory = load("  otlp: { endpoint: http://127.0.0.1:9 }\n  debug: {}");
        assert_eq!(traces(&memory).processors, vec![id("batch")]);
        assert!(memory.plan.queue_batching.is_empty());
    }
}
