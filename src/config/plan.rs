//! Compiles raw config into a validated plan: component ids, signals on
//! every edge, connectors, cycles, unused components.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use yaml_serde::Value;

use super::Decoder;
use super::endpoint::ListenAddress;
use super::error::YamlPath;
use super::raw::{RawConfig, RawPipeline, RawService};
use crate::components::{
    self, ConnectorConfig, ExporterConfig, Kind, ProcessorConfig, ReceiverConfig,
};
use crate::signal::Signal;

/// `type` or `type/name`, as in the OpenTelemetry Collector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    pub type_name: String,
    pub name: Option<String>,
}

impl ComponentId {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (type_name, name) = match text.split_once('/') {
            Some((t, n)) => (t, Some(n)),
            None => (text, None),
        };
        let valid_type = !type_name.is_empty()
            && type_name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_type {
            return Err(format!(
                "invalid component id {text:?}: expected `type` or `type/name`, the type in lowercase letters, digits and `_`"
            ));
        }
        if name.is_some_and(str::is_empty) {
            return Err(format!(
                "invalid component id {text:?}: the name after `/` is empty"
            ));
        }
        Ok(ComponentId {
            type_name: type_name.to_string(),
            name: name.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.type_name, name),
            None => f.write_str(&self.type_name),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PipelinePlan {
    pub id: String,
    pub signal: Signal,
    /// Receivers and connectors feeding this pipeline.
    pub receivers: Vec<ComponentId>,
    pub processors: Vec<ComponentId>,
    /// Exporters and connectors this pipeline feeds.
    pub exporters: Vec<ComponentId>,
}

#[derive(Debug, Clone)]
pub struct TelemetryPlan {
    /// `None` when the endpoint is switched off (`level: none`).
    pub address: Option<ListenAddress>,
    pub log_filter: Option<String>,
    pub log_encoding: crate::telemetry::logs::LogEncoding,
}

#[derive(Debug, Clone)]
pub struct ServicePlan {
    /// In topological order: a pipeline comes before those its connectors feed.
    pub pipelines: Vec<PipelinePlan>,
    pub telemetry: TelemetryPlan,
    pub shutdown_timeout: Duration,
    pub memory_limiter: Option<crate::pipeline::memory::MemoryLimiterConfig>,
}

/// A validated config; only components used by a pipeline are kept.
#[derive(Debug, Clone)]
pub struct Plan {
    pub receivers: BTreeMap<ComponentId, ReceiverConfig>,
    pub processors: BTreeMap<ComponentId, ProcessorConfig>,
    pub exporters: BTreeMap<ComponentId, ExporterConfig>,
    pub connectors: BTreeMap<ComponentId, ConnectorConfig>,
    pub service: ServicePlan,
    /// `batch` processors moved into persistent queues (`fold_batch`):
    /// per (exporter, signal), the batching its queue takes unless it has
    /// `sending_queue.batch` of its own.
    pub queue_batching: super::fold_batch::FoldedBatches,
}

pub(super) fn compile(value: &Value, decoder: &mut Decoder) -> Option<Plan> {
    let root = YamlPath::root();
    let raw: RawConfig = decoder.decode(value, &root)?;
    let receivers = decode_section(
        decoder,
        "receivers",
        &raw.receivers,
        Kind::Receiver,
        components::decode_receiver,
    );
    let processors = decode_section(
        decoder,
        "processors",
        &raw.processors,
        Kind::Processor,
        components::decode_processor,
    );
    let exporters = decode_section(
        decoder,
        "exporters",
        &raw.exporters,
        Kind::Exporter,
        components::decode_exporter,
    );
    let connectors = decode_section(
        decoder,
        "connectors",
        &raw.connectors,
        Kind::Connector,
        components::decode_connector,
    );
    for id in raw.extensions.keys() {
        decoder.error(
            root.key("extensions").key(id.clone()),
            "sidewatch has no extensions: remove this entry",
        );
    }

    let service_path = root.key("service");
    let Some(service_value) = &raw.service else {
        decoder.error(
            root,
            "missing `service`: expected `service.pipelines` naming at least one pipeline",
        );
        return None;
    };
    let service: RawService = decoder.decode(service_value, &service_path)?;
    if let Some(limiter) = &service.memory_limiter {
        for (field, message) in limiter.validate() {
            decoder.error(service_path.key("memory_limiter").key(field), message);
        }
    }
    if !service.extensions.is_empty() {
        decoder.error(
            service_path.key("extensions"),
            "sidewatch has no extensions: remove this list",
        );
    }
    let pipelines_path = service_path.key("pipelines");
    if service.pipelines.is_empty() {
        decoder.error(pipelines_path.clone(), "no pipelines: expected at least one, like `traces: { receivers: [otlp], exporters: [debug] }`");
    }

    let mut checker = Checker {
        decoder,
        receivers: &receivers,
        processors: &processors,
        exporters: &exporters,
        connectors: &connectors,
        used: BTreeSet::new(),
        written_ids: [
            ("receivers", &raw.receivers),
            ("processors", &raw.processors),
            ("exporters", &raw.exporters),
            ("connectors", &raw.connectors),
        ]
        .into_iter()
        .flat_map(|(section, map)| {
            map.keys()
                .filter_map(move |k| Some((section, ComponentId::parse(k).ok()?)))
        })
        .collect(),
        connector_inputs: BTreeMap::new(),
        connector_outputs: BTreeMap::new(),
    };
    let mut pipelines = Vec::new();
    for (pipeline_id, body) in &service.pipelines {
        if let Some(p) = checker.pipeline(pipeline_id, body, &pipelines_path) {
            pipelines.push(p);
        }
    }
    checker.connectors_are_consistent(&pipelines_path);
    let used = std::mem::take(&mut checker.used);
    for (section, ids) in [
        ("receivers", receivers.keys().collect::<Vec<_>>()),
        ("processors", processors.keys().collect()),
        ("exporters", exporters.keys().collect()),
        ("connectors", connectors.keys().collect()),
    ] {
        for id in ids {
            if !used.contains(&(section, id.clone())) {
                decoder.warning(
                    root.key(section).key(id.to_string()),
                    format!(
                        "{} `{id}` is defined but no pipeline uses it",
                        singular(section)
                    ),
                );
            }
        }
    }
    let queue_batching = super::fold_batch::fold(
        &mut pipelines,
        &processors,
        &exporters,
        &connectors,
        decoder,
        &pipelines_path,
    );
    let pipelines = topological_order(pipelines, &connectors, decoder, &pipelines_path)?;
    let telemetry = TelemetryPlan {
        address: match service.telemetry.metrics.level.as_str() {
            "none" => None,
            "basic" | "normal" | "detailed" => Some(service.telemetry.metrics.address),
            other => {
                decoder.error(
                    service_path.key("telemetry").key("metrics").key("level"),
                    format!("unknown level {other:?}: expected none, basic, normal or detailed"),
                );
                None
            }
        },
        log_filter: service.telemetry.logs.level.clone(),
        log_encoding: service.telemetry.logs.encoding,
    };
    let keep = |section: &'static str, id: &ComponentId| used.contains(&(section, id.clone()));
    Some(Plan {
        receivers: receivers
            .into_iter()
            .filter(|(id, _)| keep("receivers", id))
            .collect(),
        processors: processors
            .into_iter()
            .filter(|(id, _)| keep("processors", id))
            .collect(),
        exporters: exporters
            .into_iter()
            .filter(|(id, _)| keep("exporters", id))
            .collect(),
        connectors: connectors
            .into_iter()
            .filter(|(id, _)| keep("connectors", id))
            .collect(),
        service: ServicePlan {
            pipelines,
            telemetry,
            shutdown_timeout: service.shutdown_timeout,
            memory_limiter: service.memory_limiter.clone(),
        },
        queue_batching,
    })
}

fn singular(section: &str) -> &str {
    section.strip_suffix('s').unwrap_or(section)
}

type DecodeFn<'a, T> = dyn Fn(&str, &Value, &YamlPath, &mut Decoder) -> Option<T> + 'a;

fn decode_section<T>(
    decoder: &mut Decoder,
    section: &'static str,
    raw: &BTreeMap<String, Value>,
    kind: Kind,
    decode: impl Fn(&str, &Value, &YamlPath, &mut Decoder) -> Option<T>,
) -> BTreeMap<ComponentId, T> {
    let decode: &DecodeFn<T> = &decode;
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        let path = YamlPath::root().key(section).key(key.clone());
        let id = match ComponentId::parse(key) {
            Ok(id) => id,
            Err(message) => {
                decoder.error(path, message);
                continue;
            }
        };
        if components::lookup(kind, &id.type_name).is_none() {
            decoder.error(
                path,
                format!(
                    "unknown {} type `{}`: expected one of {}",
                    singular(section),
                    id.type_name,
                    components::type_names(kind).join(", ")
                ),
            );
            continue;
        }
        let errors_before = decoder.raised;
        match decode(&id.type_name, value, &path, decoder) {
            Some(config) => {
                out.insert(id, config);
            }
            // A registered type whose decoder is missing must not vanish silently.
            None if decoder.raised == errors_before => {
                decoder.error(
                    path,
                    format!(
                        "internal error: `{}` is registered but cannot be decoded",
                        id.type_name
                    ),
                );
            }
            None => {}
        }
    }
    out
}

struct Checker<'a> {
    decoder: &'a mut Decoder,
    receivers: &'a BTreeMap<ComponentId, ReceiverConfig>,
    processors: &'a BTreeMap<ComponentId, ProcessorConfig>,
    exporters: &'a BTreeMap<ComponentId, ExporterConfig>,
    connectors: &'a BTreeMap<ComponentId, ConnectorConfig>,
    used: BTreeSet<(&'static str, ComponentId)>,
    /// Every id written in a section, valid or not: a reference to one whose
    /// body had errors is not reported again as undefined.
    written_ids: BTreeSet<(&'static str, ComponentId)>,
    /// Per connector: the pipelines (and their signals) it is an exporter in.
    connector_inputs: BTreeMap<ComponentId, Vec<(String, Signal)>>,
    /// Per connector: the pipelines (and their signals) it is a receiver in.
    connector_outputs: BTreeMap<ComponentId, Vec<(String, Signal)>>,
}

impl Checker<'_> {
    fn pipeline(
        &mut self,
        pipeline_id: &str,
        body: &Value,
        pipelines_path: &YamlPath,
    ) -> Option<PipelinePlan> {
        let path = pipelines_path.key(pipeline_id);
        let signal_name = pipeline_id.split('/').next().unwrap_or_default();
        let signal = Signal::parse(signal_name);
        if signal.is_none() {
            self.decoder.error(
                path.clone(),
                format!("unknown signal `{signal_name}` in pipeline id `{pipeline_id}`: expected traces, metrics or logs, optionally followed by /name"),
            );
        }
        let raw: RawPipeline = self.decoder.decode(body, &path)?;
        let signal = signal?;
        if raw.receivers.is_empty() {
            self.decoder.error(
                path.key("receivers"),
                "a pipeline needs at least one receiver",
            );
        }
        if raw.exporters.is_empty() {
            self.decoder.error(
                path.key("exporters"),
                "a pipeline needs at least one exporter",
            );
        }
        let receivers = self.references(
            &raw.receivers,
            &path.key("receivers"),
            "receivers",
            pipeline_id,
            signal,
        );
        let processors = self.references(
            &raw.processors,
            &path.key("processors"),
            "processors",
            pipeline_id,
            signal,
        );
        let exporters = self.references(
            &raw.exporters,
            &path.key("exporters"),
            "exporters",
            pipeline_id,
            signal,
        );
        Some(PipelinePlan {
            id: pipeline_id.to_string(),
            signal,
            receivers,
            processors,
            exporters,
        })
    }

    fn references(
        &mut self,
        names: &[String],
        list_path: &YamlPath,
        section: &'static str,
        pipeline_id: &str,
        signal: Signal,
    ) -> Vec<ComponentId> {
        let mut ids = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, name) in names.iter().enumerate() {
            let path = list_path.index(i);
            let id = match ComponentId::parse(name) {
                Ok(id) => id,
                Err(message) => {
                    self.decoder.error(path, message);
                    continue;
                }
            };
            if !seen.insert(id.clone()) {
                self.decoder
                    .error(path, format!("`{id}` is listed twice in this pipeline"));
                continue;
            }
            let (kind, defined) = match section {
                "receivers" => (Kind::Receiver, self.receivers.contains_key(&id)),
                "processors" => (Kind::Processor, self.processors.contains_key(&id)),
                _ => (Kind::Exporter, self.exporters.contains_key(&id)),
            };
            let is_connector = section != "processors" && self.connectors.contains_key(&id);
            if is_connector {
                self.used.insert(("connectors", id.clone()));
                let side = if section == "receivers" {
                    &mut self.connector_outputs
                } else {
                    &mut self.connector_inputs
                };
                side.entry(id.clone())
                    .or_default()
                    .push((pipeline_id.to_string(), signal));
                ids.push(id);
                continue;
            }
            let written = self.written_ids.contains(&(section, id.clone()))
                || (section != "processors"
                    && self.written_ids.contains(&("connectors", id.clone())));
            if !defined && written {
                continue;
            }
            if !defined {
                let also = if section == "processors" {
                    ""
                } else {
                    " or `connectors`"
                };
                self.decoder.error(
                    path,
                    format!("{} `{id}` is not defined: expected a component defined under `{section}`{also}", singular(section)),
                );
                continue;
            }
            self.used.insert((section, id.clone()));
            let info =
                components::lookup(kind, &id.type_name).expect("decoded components are registered");
            if !info.signals.contains(&signal) {
                let supported: Vec<&str> = info.signals.iter().map(|s| s.as_str()).collect();
                self.decoder.error(
                    path,
                    format!(
                        "{} `{id}` does not support {signal}: it handles {}",
                        singular(section),
                        supported.join(", ")
                    ),
                );
                continue;
            }
            ids.push(id);
        }
        ids
    }

    fn connectors_are_consistent(&mut self, pipelines_path: &YamlPath) {
        for id in self.connectors.keys() {
            let inputs = self.connector_inputs.get(id).cloned().unwrap_or_default();
            let outputs = self.connector_outputs.get(id).cloned().unwrap_or_default();
            let path = YamlPath::root().key("connectors").key(id.to_string());
            if inputs.is_empty() != outputs.is_empty() {
                let missing = if inputs.is_empty() {
                    "exporter"
                } else {
                    "receiver"
                };
                self.decoder.error(
                    path,
                    format!("connector `{id}` must be used as an exporter in one pipeline and as a receiver in another, but no pipeline uses it as {missing}"),
                );
                continue;
            }
            let info = components::lookup(Kind::Connector, &id.type_name)
                .expect("decoded components are registered");
            for (from_pipeline, from) in &inputs {
                for (to_pipeline, to) in &outputs {
                    if !info.connects.contains(&(*from, *to)) {
                        let supported: Vec<String> = info
                            .connects
                            .iter()
                            .map(|(a, b)| format!("{a} -> {b}"))
                            .collect();
                        self.decoder.error(
                            pipelines_path.key(to_pipeline.clone()).key("receivers"),
                            format!(
                                "connector `{id}` cannot connect {from} (pipeline `{from_pipeline}`) to {to} (pipeline `{to_pipeline}`): it supports {}",
                                supported.join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Orders pipelines so each comes before the pipelines its connectors feed,
/// and reports a cycle through connectors as an error.
fn topological_order(
    pipelines: Vec<PipelinePlan>,
    connectors: &BTreeMap<ComponentId, ConnectorConfig>,
    decoder: &mut Decoder,
    pipelines_path: &YamlPath,
) -> Option<Vec<PipelinePlan>> {
    let feeds = |from: &PipelinePlan| -> Vec<(ComponentId, usize)> {
        let mut next = Vec::new();
        for exporter in from
            .exporters
            .iter()
            .filter(|e| connectors.contains_key(*e))
        {
            for (j, to) in pipelines.iter().enumerate() {
                if to.receivers.contains(exporter) {
                    next.push((exporter.clone(), j));
                }
            }
        }
        next
    };
    let edges: Vec<Vec<(ComponentId, usize)>> = pipelines.iter().map(feeds).collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; pipelines.len()];
    let mut order = Vec::new();
    fn visit(
        node: usize,
        edges: &[Vec<(ComponentId, usize)>],
        state: &mut [u8],
        order: &mut Vec<usize>,
        stack: &mut Vec<(usize, Option<ComponentId>)>,
    ) -> Result<(), Vec<(usize, Option<ComponentId>)>> {
        state[node] = 1;
        for (via, next) in &edges[node] {
            stack.push((*next, Some(via.clone())));
            match state[*next] {
                1 => {
                    let start = stack.iter().position(|(n, _)| n == next).unwrap_or(0);
                    return Err(stack[start..].to_vec());
                }
                0 => visit(*next, edges, state, order, stack)?,
                _ => {}
            }
            stack.pop();
        }
        state[node] = 2;
        order.push(node);
        Ok(())
    }
    for start in 0..pipelines.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, None)];
        if let Err(cycle) = visit(start, &edges, &mut state, &mut order, &mut stack) {
            let first = cycle[0].0;
            let names: Vec<&str> = cycle
                .iter()
                .map(|(n, _)| pipelines[*n].id.as_str())
                .collect();
            let text = names.join(" -> ");
            let via: Vec<String> = cycle
                .iter()
                .skip(1)
                .filter_map(|(_, v)| v.as_ref().map(ToString::to_string))
                .collect();
            decoder.error(
                pipelines_path.key(pipelines[first].id.clone()),
                format!(
                    "connector cycle: {text} (through {}): data would loop forever",
                    via.join(", ")
                ),
            );
            return None;
        }
    }
    order.reverse();
    let mut slots: Vec<Option<PipelinePlan>> = pipelines.into_iter().map(Some).collect();
    Some(order.into_iter().filter_map(|i| slots[i].take()).collect())
}
