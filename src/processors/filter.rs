//! `filter`: drops telemetry that matches OTTL conditions, in the
//! Collector's config shape:
//!
//! ```yaml
//! filter:
//!   error_mode: ignore            # ignore | silent | propagate (default)
//!   traces:  { span: [...], spanevent: [...] }
//!   metrics: { metric: [...], datapoint: [...] }
//!   logs:    { log_record: [...] }
//! ```
//!
//! Conditions in one list are ORed: an item matching any is dropped. Spans
//! are filtered before their events, metrics before their data points; a
//! scope left without items, a resource left without scopes and a metric
//! left without data points are removed too, as in the Collector. A
//! condition that fails on an item counts as not matching under `ignore`
//! and `silent`; under `propagate` the whole batch is dropped.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

use crate::config::{Decoder, YamlPath};
use crate::ottl::compile::Condition;
use crate::ottl::eval::{self, ErrorMode};
use crate::ottl::{Context, Record, grammar, walk};
use crate::processors::Processor;
use crate::processors::transform::{Failures, report};
use crate::signal::Batch;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilterConfig {
    error_mode: Option<ErrorMode>,
    #[serde(default)]
    traces: RawTraces,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    logs: RawLogs,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTraces {
    #[serde(default)]
    span: Vec<String>,
    #[serde(default)]
    spanevent: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default)]
    metric: Vec<String>,
    #[serde(default)]
    datapoint: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    #[serde(default)]
    log_record: Vec<String>,
}

/// The conditions of one level, ORed.
#[derive(Debug, Clone)]
pub struct Level {
    pub context: Context,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub error_mode: ErrorMode,
    /// Per signal, the levels in the order they are filtered.
    pub traces: Arc<Vec<Level>>,
    pub metrics: Arc<Vec<Level>>,
    pub logs: Arc<Vec<Level>>,
}

impl FilterConfig {
    pub fn decode(
        value: &yaml_serde::Value,
        path: &YamlPath,
        decoder: &mut Decoder,
    ) -> Option<FilterConfig> {
        let raw: RawFilterConfig = decoder.decode(value, path)?;
        let mut valid = true;
        let mut level = |context: Context,
                         at: YamlPath,
                         texts: &[String],
                         decoder: &mut Decoder|
         -> Option<Level> {
            let mut conditions = Vec::new();
            for (i, text) in texts.iter().enumerate() {
                let compiled = grammar::parse_condition(text)
                    .and_then(|parsed| crate::ottl::compile::compile_condition(&parsed, context));
                match compiled {
                    Ok(c) => conditions.push(c),
                    Err(e) => {
                        report(decoder, at.index(i), text, &e);
                        valid = false;
                    }
                }
            }
            (!conditions.is_empty()).then_some(Level {
                context,
                conditions,
            })
        };
        let traces = path.key("traces");
        let metrics = path.key("metrics");
        let logs = path.key("logs");
        let traces: Vec<Level> = [
            level(Context::Span, traces.key("span"), &raw.traces.span, decoder),
            level(
                Context::SpanEvent,
                traces.key("spanevent"),
                &raw.traces.spanevent,
                decoder,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let metrics: Vec<Level> = [
            level(
                Context::Metric,
                metrics.key("metric"),
                &raw.metrics.metric,
                decoder,
            ),
            level(
                Context::DataPoint,
                metrics.key("datapoint"),
                &raw.metrics.datapoint,
                decoder,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let logs: Vec<Level> = level(
            Context::Log,
            logs.key("log_record"),
            &raw.logs.log_record,
            decoder,
        )
        .into_iter()
        .collect();
        valid.then(|| FilterConfig {
            // The Collector's filter defaults to propagate.
            error_mode: raw.error_mode.unwrap_or(ErrorMode::Propagate),
            traces: Arc::new(traces),
            metrics: Arc::new(metrics),
            logs: Arc::new(logs),
        })
    }
}

pub struct FilterProcessor {
    config: FilterConfig,
}

/// Whether any condition of `level` holds for `record`: the item is then
/// dropped (the visitor returns `false`, "do not keep").
fn keep(
    level: &Level,
    mode: ErrorMode,
    record: &mut Record<'_>,
    failures: &mut Failures,
) -> Result<bool, String> {
    for condition in &level.conditions {
        match eval::test(condition, record) {
            Ok(true) => return Ok(false),
            Ok(false) => {}
            Err(e) => {
                failures.handle(mode, &format!("a {} condition", level.context.as_str()), e)?
            }
        }
    }
    Ok(true)
}

impl FilterProcessor {
    pub fn new(config: FilterConfig) -> Self {
        FilterProcessor { config }
    }

    /// The batch without what matched; `Err` under `error_mode:
    /// propagate` when a condition failed.
    pub fn filter(&self, batch: Batch, failures: &mut Failures) -> Result<Batch, String> {
        let mode = self.config.error_mode;
        let levels = match batch.signal() {
            crate::signal::Signal::Traces => &self.config.traces,
            crate::signal::Signal::Metrics => &self.config.metrics,
            crate::signal::Signal::Logs => &self.config.logs,
        };
        if levels.is_empty() {
            return Ok(batch);
        }
        // Conditions read log records: typed events are rewritten as theirs.
        let batch = batch
            .into_otlp()
            .into_decoded()
            .map_err(|e| format!("decoding the batch: {e}"))?;
        Ok(match batch {
            Batch::Traces(mut request) => {
                let r = Arc::make_mut(&mut request);
                for level in levels.iter() {
                    walk::traces(r, level.context, |rec| keep(level, mode, rec, failures))?;
                }
                walk::prune_traces(r);
                Batch::Traces(request)
            }
            Batch::Metrics(mut request) => {
                let r = Arc::make_mut(&mut request);
                for level in levels.iter() {
                    walk::metrics(r, level.context, |rec| keep(level, mode, rec, failures))?;
                }
                walk::prune_metrics(r);
                Batch::Metrics(request)
            }
            Batch::Logs(mut request) => {
                let r = Arc::make_mut(&mut request);
                for level in levels.iter() {
                    walk::logs(r, level.context, |rec| keep(level, mode, rec, failures))?;
                }
                walk::prune_logs(r);
                Batch::Logs(request)
            }
            other @ (Batch::Wire(_) | Batch::Events(_)) => other,
        })
    }
}

impl Processor for FilterProcessor {
    fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
        let items = batch.item_count();
        let mut failures = Failures::default();
        match self.filter(batch, &mut failures) {
            Ok(batch) if batch.is_empty() => {}
            Ok(batch) => out.push(batch),
            Err(error) => tracing::error!(
                items,
                "filter: dropping a batch (error_mode: propagate): {error}"
            ),
        }
        failures.log("filter");
    }
}

impl crate::components::compiled::CompiledProcessor for FilterConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(FilterProcessor::new(self.clone()))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    FilterConfig::decode(value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::tests::{batch_names, traces};

    fn config(yaml: &str) -> Result<FilterConfig, Vec<String>> {
        let loaded = crate::plan::load_str(
            &format!(
                "receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }} }}\nprocessors:\n  filter: {{ {yaml} }}\nexporters: {{ debug: {{}} }}\nservice: {{ pipelines: {{ traces: {{ receivers: [otlp], processors: [filter], exporters: [debug] }} }} }}\n"
            ),
            "f.yaml",
        );
        match loaded {
            Ok(loaded) => match loaded.plan.processors.values().next() {
                Some(c) => Ok(crate::components::processor_as::<FilterConfig>(c)
                    .unwrap()
                    .clone()),
                _ => panic!("no filter"),
            },
            Err(e) => Err(e.errors.iter().map(|e| e.to_string()).collect()),
        }
    }

    #[test]
    fn drops_matching_spans_and_empty_parents() {
        let c =
            config(r#"traces: { span: [ 'IsMatch(name, "-1$")', 'name == "nothing"' ] }"#).unwrap();
        let p = FilterProcessor::new(c);
        let request = traces(&[&[2], &[1]]);
        let names = batch_names(&Batch::Traces(request.clone().into()));
        let out = p
            .filter(Batch::Traces(request.into()), &mut Failures::default())
            .unwrap();
        let kept = batch_names(&out);
        assert_eq!(
            kept.len(),
            names.len() - names.iter().filter(|n| n.ends_with("-1")).count()
        );
        assert!(kept.iter().all(|n| !n.ends_with("-1")));
    }

    #[test]
    fn a_failing_condition_keeps_the_item_unless_propagate() {
        // A bare int is not a boolean: the condition fails on every span.
        let c = config("error_mode: ignore, traces: { span: [ 'span.kind' ] }").unwrap();
        let mut failures = Failures::default();
        let out = FilterProcessor::new(c)
            .filter(Batch::Traces(traces(&[&[2]]).into()), &mut failures)
            .unwrap();
        assert_eq!(out.item_count(), 2);
        assert_eq!(failures.count, 2);
        let c = config("traces: { span: [ 'span.kind' ] }").unwrap();
        assert_eq!(c.error_mode, ErrorMode::Propagate);
        let error = FilterProcessor::new(c)
            .filter(
                Batch::Traces(traces(&[&[2]]).into()),
                &mut Failures::default(),
            )
            .unwrap_err();
        assert!(error.contains("expected a boolean"), "{error}");
    }

    #[test]
    fn names_the_condition_and_column_of_errors() {
        let errors = config("logs: { log_record: [ 'severity_number < SEVERITY_NUMBER_WARN', 'IsMatch(body, \"a\") and Len(body) > 3' ] }").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("processors.filter.logs.log_record[1] (line 3, column"),
            "{}",
            errors[0]
        );
        assert!(
            errors[0]
                .contains("column 24 of the statement: `Len` is not in sidewatch's OTTL subset"),
            "{}",
            errors[0]
        );
    }
}
