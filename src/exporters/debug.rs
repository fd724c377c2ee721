//! `debug` exporter: a concise summary of what arrives (`basic`), or every
//! span, data point and log record with its attributes (`detailed`).
//! Output goes to the log (stderr), like the Collector's debug exporter.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use serde::Deserialize;

use super::{ExportError, Exporter};
use crate::otlp::value::{any_value_text, attributes_text as attributes};
use crate::signal::{Batch, metric_point_count};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    #[default]
    Basic,
    Normal,
    Detailed,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebugExporterConfig {
    #[serde(default)]
    pub verbosity: Verbosity,
}

pub struct DebugExporter {
    config: DebugExporterConfig,
}

impl DebugExporter {
    pub fn new(config: DebugExporterConfig) -> Self {
        DebugExporter { config }
    }
}

#[async_trait::async_trait]
impl Exporter for DebugExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        tracing::info!(target: "sidewatch::debug", "{}", summary(batch));
        if self.config.verbosity != Verbosity::Basic {
            let detailed = self.config.verbosity == Verbosity::Detailed;
            for line in describe(batch, detailed) {
                tracing::info!(target: "sidewatch::debug", "{line}");
            }
        }
        Ok(())
    }
}

/// One line: how many resources and items of which signal.
pub fn summary(batch: &Batch) -> String {
    match batch {
        Batch::Events(e) => format!("logs: {} sidewatch events", e.len()),
        Batch::Traces(r) => format!(
            "traces: {} resource spans, {} spans",
            r.resource_spans.len(),
            batch.item_count()
        ),
        Batch::Metrics(r) => {
            let metrics: usize = r
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .map(|s| s.metrics.len())
                .sum();
            format!(
                "metrics: {} resource metrics, {metrics} metrics, {} data points",
                r.resource_metrics.len(),
                batch.item_count()
            )
        }
        Batch::Logs(r) => format!(
            "logs: {} resource logs, {} log records",
            r.resource_logs.len(),
            batch.item_count()
        ),
        Batch::Wire(e) => format!(
            "{}: {} resources, {} {} (encoded)",
            e.signal,
            e.records.len(),
            e.items,
            e.signal.item_name()
        ),
    }
}

/// One line per item; attributes too when `detailed`.
pub fn describe(batch: &Batch, detailed: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let attrs = |kvs: &[KeyValue]| {
        if detailed {
            format!(" {}", attributes(kvs))
        } else {
            String::new()
        }
    };
    let batch = batch.otlp();
    let batch = match batch.decoded() {
        Ok(batch) => batch,
        Err(e) => return vec![format!("cannot decode the batch: {e}")],
    };
    match batch {
        Batch::Wire(_) | Batch::Events(_) => {}
        Batch::Traces(r) => {
            for resource in &r.resource_spans {
                let resource_attrs = resource
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default();
                lines.push(format!("resource{}", attrs(resource_attrs)));
                for span in resource.scope_spans.iter().flat_map(|s| &s.spans) {
                    let micros = span
                        .end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano)
                        / 1000;
                    lines.push(format!(
                        "  span {} trace={} span={} duration={micros}us{}",
                        span.name,
                        hex::encode(&span.trace_id),
                        hex::encode(&span.span_id),
                        attrs(&span.attributes)
                    ));
                }
            }
        }
        Batch::Metrics(r) => {
            for resource in &r.resource_metrics {
                let resource_attrs = resource
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default();
                lines.push(format!("resource{}", attrs(resource_attrs)));
                for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                    lines.push(format!(
                        "  metric {} unit={:?} points={}",
                        metric.name,
                        metric.unit,
                        metric_point_count(metric)
                    ));
                    if !detailed {
                        continue;
                    }
                    let points: Vec<(String, &[KeyValue])> = match &metric.data {
                        Some(Data::Gauge(g)) => g
                            .data_points
                            .iter()
                            .map(|p| (number(&p.value), p.attributes.as_slice()))
                            .collect(),
                        Some(Data::Sum(s)) => s
                            .data_points
                            .iter()
                            .map(|p| (number(&p.value), p.attributes.as_slice()))
                            .collect(),
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| {
                                (
                                    format!("count={} sum={:?}", p.count, p.sum),
                                    p.attributes.as_slice(),
                                )
                            })
                            .collect(),
                        Some(Data::ExponentialHistogram(h)) => h
                            .data_points
                            .iter()
                            .map(|p| {
                                (
                                    format!("count={} sum={:?}", p.count, p.sum),
                                    p.attributes.as_slice(),
                                )
                            })
                            .collect(),
                        Some(Data::Summary(s)) => s
                            .data_points
                            .iter()
                            .map(|p| {
                                (
                                    format!("count={} sum={}", p.count, p.sum),
                                    p.attributes.as_slice(),
                                )
                            })
                            .collect(),
                        None => Vec::new(),
                    };
                    for (value, point_attrs) in points {
                        lines.push(format!("    {value}{}", attrs(point_attrs)));
                    }
                }
            }
        }
        Batch::Logs(r) => {
            for resource in &r.resource_logs {
                let resource_attrs = resource
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or_default();
                lines.push(format!("resource{}", attrs(resource_attrs)));
                for record in resource.scope_logs.iter().flat_map(|s| &s.log_records) {
                    let body = record.body.as_ref().map(any_value_text).unwrap_or_default();
                    lines.push(format!(
                        "  log {} {body:?}{}",
                        record.severity_text,
                        attrs(&record.attributes)
                    ));
                }
            }
        }
    }
    lines
}

fn number(value: &Option<number_data_point::Value>) -> String {
    match value {
        Some(number_data_point::Value::AsDouble(v)) => v.to_string(),
        Some(number_data_point::Value::AsInt(v)) => v.to_string(),
        None => "none".into(),
    }
}

impl crate::components::compiled::CompiledExporter for DebugExporterConfig {
    fn build(
        &self,
        _: &crate::components::compiled::ExporterContext<'_>,
    ) -> Result<std::sync::Arc<dyn crate::exporters::Exporter>, String> {
        Ok(std::sync::Arc::new(DebugExporter::new(self.clone())))
    }
}

/// The registry's compile step for `debug` (and `logging`, whose old
/// `loglevel` reads as a verbosity).
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledExporter>> {
    let mut value = value.clone();
    if value.get("loglevel").is_some() {
        // The `logging` exporter's old setting: debug printed every item,
        // the other levels a summary.
        let level = value
            .as_mapping_mut()
            .and_then(|m| m.remove("loglevel"))
            .and_then(|l| l.as_str().map(str::to_string))
            .unwrap_or_default();
        let verbosity = if level == "debug" {
            "detailed"
        } else {
            "basic"
        };
        decoder.warning(
            path.key("loglevel"),
            format!(
                "loglevel is the logging exporter's old setting: read as `verbosity: {verbosity}`"
            ),
        );
        if let Some(m) = value.as_mapping_mut() {
            m.entry("verbosity".into()).or_insert(verbosity.into());
        }
    }
    crate::exporters::compile::checked::<DebugExporterConfig>(
        &value,
        path,
        decoder,
        crate::exporters::compile::no_tls,
        |_, _, _| true,
    )
}
