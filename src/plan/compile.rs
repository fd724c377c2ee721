//! Compiles raw config into a validated plan: component ids, signals on
//! every edge, connectors, cycles, unused components.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use yaml_serde::Value;

use super::otelcol;
use super::raw::{RawConfig, RawPipeline, RawService, RawTelemetry};
use crate::components::registry::{self, Compile, CompileFn, Kind};
use crate::components::{ConnectorConfig, ExporterConfig, ProcessorConfig, ReceiverConfig};
use crate::config::YamlPath;
use crate::config::endpoint::ListenAddress;
use crate::config::{ComponentId, Decoder};
use crate::extensions::ExtensionConfig;
use crate::pipeline::memory::MemoryLimiterConfig;
use crate::signal::Signal;
use crate::telemetry::sdk_metrics::{PeriodicReaderPlan, Protocol};

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
    /// What the alerts API's writes need (`service.telemetry.auth`).
    pub auth: Option<crate::receivers::otlp::auth::AuthConfig>,
    /// Serve the dashboard at `/` (`service.telemetry.dashboard`).
    pub dashboard: bool,
    /// Readers that push sidewatch's own metrics through the SDK.
    pub readers: Vec<PeriodicReaderPlan>,
    /// `service.telemetry.resource`: the resource of what they push.
    pub resource: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ServicePlan {
    /// In topological order: a pipeline comes before those its connectors feed.
    pub pipelines: Vec<PipelinePlan>,
    pub telemetry: TelemetryPlan,
    pub shutdown_timeout: Duration,
    pub memory_limiter: Option<MemoryLimiterConfig>,
    /// `health_check` extensions listed in `service.extensions`.
    pub health_checks: Vec<(
        ComponentId,
        crate::extensions::health_check::HealthCheckConfig,
    )>,
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
    let mut raw: RawConfig = decoder.decode(value, &root)?;
    let extensions = decode_extensions(decoder, &raw.extensions);
    map_file_storage(decoder, &mut raw.exporters, &extensions);
    let receivers = decode_section(
        decoder,
        "receivers",
        &raw.receivers,
        Kind::Receiver,
        |compile| match compile {
            Compile::Receiver(compile) => Some(compile),
            _ => None,
        },
    );
    let processors = decode_section(
        decoder,
        "processors",
        &raw.processors,
        Kind::Processor,
        |compile| match compile {
            Compile::Processor(compile) => Some(compile),
            _ => None,
        },
    );
    let exporters = decode_section(
        decoder,
        "exporters",
        &raw.exporters,
        Kind::Exporter,
        |compile| match compile {
            Compile::Exporter(compile) => Some(compile),
            _ => None,
        },
    );
    let connectors = decode_section(
        decoder,
        "connectors",
        &raw.connectors,
        Kind::Connector,
        |compile| match compile {
            Compile::Connector(compile) => Some(compile),
            _ => None,
        },
    );

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
    let mut health_checks = Vec::new();
    let mut listed = BTreeSet::new();
    for (i, name) in service.extensions.iter().enumerate() {
        let at = service_path.key("extensions").index(i);
        let Ok(id) = ComponentId::parse(name) else {
            decoder.error(
                at,
                format!("invalid extension id {name:?}: expected `type` or `type/name`"),
            );
            continue;
        };
        listed.insert(id.clone());
        match extensions.get(&id) {
            Some(ExtensionConfig::HealthCheck(config)) => health_checks.push((id, config.clone())),
            Some(_) => {}
            None if raw.extensions.contains_key(name) => {}
            None => decoder.error(
                at,
                format!("extension `{id}` is not defined: expected an entry under `extensions`"),
            ),
        }
    }
    for (id, config) in &extensions {
        if !listed.contains(id) && !matches!(config, ExtensionConfig::FileStorage(_)) {
            decoder.warning(
                root.key("extensions").key(id.to_string()),
                format!("extension `{id}` is defined but not listed in service.extensions, so it does not run"),
            );
        }
    }
    let pipelines_to_compile: Vec<(&String, &Value)> = service
        .pipelines
        .iter()
        .filter(|(id, _)| {
            let profiles = id.split('/').next() == Some("profiles");
            if profiles {
                decoder.warning(
                    service_path.key("pipelines").key(id.to_string()),
                    format!("pipeline `{id}` is ignored: sidewatch does not handle profiles (traces, metrics and logs only)"),
                );
            }
            !profiles
        })
        .collect();
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
    for (pipeline_id, body) in pipelines_to_compile {
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
    let mut pipelines = topological_order(pipelines, &connectors, decoder, &pipelines_path)?;
    let memory_limiter = merge_memory_limiters(
        decoder,
        service.memory_limiter.clone(),
        &processors,
        &used,
        &mut pipelines,
    );
    let telemetry_path = service_path.key("telemetry");
    let (address, readers) = match service.telemetry.metrics.level.as_str() {
        "none" => (None, Vec::new()),
        "basic" | "normal" | "detailed" => {
            let (address, readers) =
                telemetry_readers(decoder, &service.telemetry, &telemetry_path);
            (Some(address), readers)
        }
        other => {
            decoder.error(
                telemetry_path.key("metrics").key("level"),
                format!("unknown level {other:?}: expected none, basic, normal or detailed"),
            );
            (None, Vec::new())
        }
    };
    let resource = telemetry_resource(decoder, &service.telemetry, &telemetry_path, &readers);
    let telemetry = TelemetryPlan {
        address,
        log_filter: service.telemetry.logs.level.clone(),
        log_encoding: service.telemetry.logs.encoding,
        auth: service.telemetry.auth.clone(),
        dashboard: service.telemetry.dashboard,
        readers,
        resource,
    };
    if let Some(auth) = &service.telemetry.auth {
        // The telemetry endpoint serves plain HTTP.
        let at = service_path.key("telemetry").key("auth");
        for (field, message) in auth.validate(true) {
            decoder.error(
                if field == "auth" {
                    at.clone()
                } else {
                    at.key(field)
                },
                message,
            );
        }
    }
    let keep = |section: &'static str, id: &ComponentId| used.contains(&(section, id.clone()));
    Some(Plan {
        receivers: receivers
            .into_iter()
            .filter(|(id, _)| keep("receivers", id))
            .collect(),
        processors: processors
            .into_iter()
            .filter(|(id, c)| {
                keep("processors", id)
                    && crate::components::processor_as::<MemoryLimiterConfig>(c).is_none()
            })
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
            memory_limiter,
            health_checks,
        },
        queue_batching,
    })
}

fn singular(section: &str) -> &str {
    section.strip_suffix('s').unwrap_or(section)
}

fn decode_section<T>(
    decoder: &mut Decoder,
    section: &'static str,
    raw: &BTreeMap<String, Value>,
    kind: Kind,
    compile_fn: fn(Compile) -> Option<CompileFn<T>>,
) -> BTreeMap<ComponentId, T> {
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
        if let Some(message) = registry::alias(kind, &id.type_name).and_then(|a| a.deprecated) {
            decoder.warning(path.clone(), message);
        }
        let Some(compile) =
            registry::lookup(kind, &id.type_name).and_then(|r| compile_fn(r.compile))
        else {
            let message = match otelcol::unsupported(kind, &id.type_name) {
                Some(instead) => format!(
                    "the Collector's `{}` {} is not supported by sidewatch: {instead}",
                    id.type_name,
                    singular(section),
                ),
                None => format!(
                    "unknown {} type `{}`: expected one of {}",
                    singular(section),
                    id.type_name,
                    registry::type_names(kind).join(", ")
                ),
            };
            decoder.error(path, message);
            continue;
        };
        let errors_before = decoder.errors_raised();
        match compile(value, &path, decoder) {
            Some(config) => {
                out.insert(id, config);
            }
            // A registered type whose decoder is missing must not vanish silently.
            None if decoder.errors_raised() == errors_before => {
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
                registry::lookup(kind, &id.type_name).expect("decoded components are registered");
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
            if kind == Kind::Exporter
                && let Some(reason) = self
                    .exporters
                    .get(&id)
                    .and_then(|config| config.refuses_signal(signal))
            {
                self.decoder.error(
                    path,
                    format!("exporter `{id}` cannot take {signal} here: {reason}"),
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
            let info = registry::lookup(Kind::Connector, &id.type_name)
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

/// Decodes `extensions:`: what sidewatch serves, maps or accepts with a
/// warning, and plain errors for the rest.
fn decode_extensions(
    decoder: &mut Decoder,
    raw: &BTreeMap<String, Value>,
) -> BTreeMap<ComponentId, ExtensionConfig> {
    use crate::extensions::{FileStorageConfig, health_check::HealthCheckConfig};
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        let path = YamlPath::root().key("extensions").key(key.clone());
        let id = match ComponentId::parse(key) {
            Ok(id) => id,
            Err(message) => {
                decoder.error(path, message);
                continue;
            }
        };
        let config = match id.type_name.as_str() {
            "health_check" | "healthcheck" => {
                let Some(config) = decoder.decode::<HealthCheckConfig>(value, &path) else {
                    continue;
                };
                let errors = config.validate();
                if config.check_collector_pipeline.is_some() {
                    decoder.warning(
                        path.key("check_collector_pipeline"),
                        "check_collector_pipeline is ignored (the Collector never implemented it either): the status follows the pipelines' start and shutdown",
                    );
                }
                if !errors.is_empty() {
                    for (field, message) in errors {
                        decoder.error(path.key(field), message);
                    }
                    continue;
                }
                ExtensionConfig::HealthCheck(config)
            }
            "file_storage" => match decoder.decode::<FileStorageConfig>(value, &path) {
                Some(config) => ExtensionConfig::FileStorage(config),
                None => continue,
            },
            other => {
                if let Some(missing) = super::otelcol::extension_without_effect(other) {
                    decoder.warning(path, missing);
                    ExtensionConfig::Inert
                } else {
                    let message = match super::otelcol::unsupported_extension(other) {
                        Some(instead) => format!(
                            "the Collector's `{other}` extension is not supported by sidewatch: {instead}"
                        ),
                        None => format!(
                            "unknown extension type `{other}`: expected one of health_check, file_storage, zpages, pprof"
                        ),
                    };
                    decoder.error(path, message);
                    continue;
                }
            }
        };
        out.insert(id, config);
    }
    out
}

/// `sending_queue.storage: file_storage/x`, as the Collector writes it,
/// becomes a directory of its own under that extension's `directory`.
fn map_file_storage(
    decoder: &mut Decoder,
    exporters: &mut BTreeMap<String, Value>,
    extensions: &BTreeMap<ComponentId, ExtensionConfig>,
) {
    for (exporter, value) in exporters.iter_mut() {
        let Some(storage) = value
            .get_mut("sending_queue")
            .and_then(|q| q.get_mut("storage"))
        else {
            continue;
        };
        let Some(id) = storage
            .as_str()
            .and_then(|text| ComponentId::parse(text).ok())
            .filter(|id| id.type_name == "file_storage")
        else {
            continue;
        };
        match extensions.get(&id) {
            Some(ExtensionConfig::FileStorage(config)) => {
                let directory = config.queue_directory(exporter);
                *storage = Value::String(directory.display().to_string());
            }
            _ => decoder.error(
                YamlPath::root()
                    .key("exporters")
                    .key(exporter.clone())
                    .key("sending_queue")
                    .key("storage"),
                format!("extension `{id}` is not defined: expected a `file_storage` entry under `extensions` with a `directory`"),
            ),
        }
    }
}

/// Every `memory_limiter` processor in a pipeline is taken out of it and
/// onto the one process-wide limiter: the lowest limit of them and of
/// `service.memory_limiter` wins, and a warning says so when they differ.
fn merge_memory_limiters(
    decoder: &mut Decoder,
    service: Option<MemoryLimiterConfig>,
    processors: &BTreeMap<ComponentId, ProcessorConfig>,
    used: &BTreeSet<(&'static str, ComponentId)>,
    pipelines: &mut [PipelinePlan],
) -> Option<MemoryLimiterConfig> {
    let limiters: Vec<(&ComponentId, &MemoryLimiterConfig)> = processors
        .iter()
        .filter(|(id, _)| used.contains(&("processors", (*id).clone())))
        .filter_map(|(id, c)| {
            Some((
                id,
                crate::components::processor_as::<MemoryLimiterConfig>(c)?,
            ))
        })
        .collect();
    for pipeline in pipelines.iter_mut() {
        pipeline
            .processors
            .retain(|id| !limiters.iter().any(|(l, _)| *l == id));
    }
    let mut chosen = service.clone();
    for (_, config) in &limiters {
        if chosen
            .as_ref()
            .is_none_or(|c| config.soft_limit_bytes() < c.soft_limit_bytes())
        {
            chosen = Some((*config).clone());
        }
    }
    let Some(limit) = &chosen else {
        return None;
    };
    let distinct = limiters
        .iter()
        .map(|(_, c)| c.soft_limit_bytes())
        .chain(service.as_ref().map(|c| c.soft_limit_bytes()))
        .collect::<BTreeSet<_>>();
    if distinct.len() > 1 {
        for (id, config) in &limiters {
            if config.soft_limit_bytes() != limit.soft_limit_bytes() {
                decoder.warning(
                    YamlPath::root().key("processors").key(id.to_string()),
                    format!(
                        "sidewatch has one memory limit for the whole process: the lowest written applies ({} MiB), not this one ({} MiB)",
                        limit.limit_mib, config.limit_mib
                    ),
                );
            }
        }
    }
    chosen
}

/// The telemetry endpoint (`service.telemetry.metrics.address`, or the
/// Collector's `readers: [{ pull: { exporter: { prometheus: { host,
/// port } } } }]`) and the `periodic` readers that push over OTLP.
fn telemetry_readers(
    decoder: &mut Decoder,
    telemetry: &RawTelemetry,
    path: &YamlPath,
) -> (ListenAddress, Vec<PeriodicReaderPlan>) {
    let metrics = &telemetry.metrics;
    let mut address = metrics.address.clone();
    let mut periodic = Vec::new();
    for (i, reader) in metrics.readers.iter().enumerate() {
        let at = path.key("metrics").key("readers").index(i);
        if let Some(reader) = reader.get("periodic") {
            if let Some(planned) = periodic_reader(decoder, reader, &at.key("periodic")) {
                periodic.push(planned);
            }
            continue;
        }
        let prometheus = reader
            .get("pull")
            .and_then(|p| p.get("exporter"))
            .and_then(|e| e.get("prometheus"));
        let Some(prometheus) = prometheus else {
            decoder.warning(
                at,
                "only `periodic` readers with an OTLP exporter and a `pull` reader with a prometheus exporter (the telemetry endpoint) are used; this reader is ignored",
            );
            continue;
        };
        let host = prometheus
            .get("host")
            .and_then(Value::as_str)
            .unwrap_or("localhost");
        let port = match prometheus.get("port") {
            Some(Value::Number(n)) => n.as_u64(),
            None => Some(8888),
            _ => None,
        };
        let parsed = port
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| "expected a port number".to_string())
            .and_then(|port| {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                ListenAddress::parse(&format!("{host}:{port}"))
            });
        match parsed {
            Ok(from_reader) => match &address {
                Some(written) if *written != from_reader => decoder.error(
                    at,
                    format!("this reader listens on {from_reader} but service.telemetry.metrics.address is {written}: keep one"),
                ),
                _ => address = Some(from_reader),
            },
            Err(message) => decoder.error(at.key("pull").key("exporter").key("prometheus"), message),
        }
    }
    (
        address.unwrap_or_else(|| ListenAddress::loopback(8888)),
        periodic,
    )
}

/// One `periodic` reader in the Collector's (OpenTelemetry configuration
/// schema's) shape: `interval` and `timeout` in milliseconds, and an
/// `exporter` of `otlp: { protocol: grpc | http/protobuf, endpoint,
/// headers }`, or the schema's newer `otlp_grpc` / `otlp_http`.
fn periodic_reader(
    decoder: &mut Decoder,
    reader: &Value,
    at: &YamlPath,
) -> Option<PeriodicReaderPlan> {
    let millis = |decoder: &mut Decoder, key: &str, default: u64| match reader.get(key) {
        None => Some(Duration::from_millis(default)),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|ms| ms > 0) => {
            n.as_u64().map(Duration::from_millis)
        }
        Some(_) => {
            decoder.error(at.key(key), "expected a positive number of milliseconds");
            None
        }
    };
    // The Collector's defaults: every 60 s, 30 s to export.
    let interval = millis(decoder, "interval", 60_000);
    let timeout = millis(decoder, "timeout", 30_000);
    let exporter = reader.get("exporter");
    let (kind, settings) = match exporter.and_then(Value::as_mapping) {
        Some(map) if map.len() == 1 => {
            let (k, v) = map.iter().next()?;
            (k.as_str().unwrap_or_default().to_string(), v.clone())
        }
        _ => {
            decoder.error(
                at.key("exporter"),
                "expected one exporter: otlp, otlp_grpc or otlp_http",
            );
            return None;
        }
    };
    let at = at.key("exporter").key(kind.clone());
    let protocol = match (
        kind.as_str(),
        settings.get("protocol").and_then(Value::as_str),
    ) {
        ("otlp_grpc", _) => Protocol::Grpc,
        ("otlp_http", _) => Protocol::HttpProtobuf,
        ("otlp", Some("grpc")) => Protocol::Grpc,
        ("otlp", Some("http/protobuf") | None) => Protocol::HttpProtobuf,
        ("otlp", Some(other)) => {
            decoder.error(
                at.key("protocol"),
                format!("unknown protocol {other:?}: expected grpc or http/protobuf (http/json is not supported)"),
            );
            return None;
        }
        (other, _) => {
            decoder.error(
                at,
                format!("exporter {other:?} is not supported here: expected otlp, otlp_grpc or otlp_http (console and prometheus push are not built)"),
            );
            return None;
        }
    };
    let Some(endpoint) = settings.get("endpoint").and_then(Value::as_str) else {
        decoder.error(
            at.key("endpoint"),
            "expected the URL to send to, such as http://127.0.0.1:4317",
        );
        return None;
    };
    let endpoint = match (endpoint.parse::<http::Uri>(), protocol) {
        (Ok(uri), _) if uri.scheme().is_none() || uri.authority().is_none() => {
            decoder.error(
                at.key("endpoint"),
                format!("{endpoint:?}: expected a URL with a scheme, such as http://{endpoint}"),
            );
            return None;
        }
        // As the SDK's OTEL_EXPORTER_OTLP_ENDPOINT: a bare base URL gets
        // the metrics path.
        (Ok(uri), Protocol::HttpProtobuf) if matches!(uri.path(), "" | "/") => {
            format!("{}/v1/metrics", endpoint.trim_end_matches('/'))
        }
        (Ok(_), _) => endpoint.to_string(),
        (Err(e), _) => {
            decoder.error(at.key("endpoint"), format!("{endpoint:?}: {e}"));
            return None;
        }
    };
    let mut headers = Vec::new();
    match settings.get("headers") {
        None => {}
        // The schema's list of { name, value } ...
        Some(Value::Sequence(list)) => {
            for (i, entry) in list.iter().enumerate() {
                match (
                    entry.get("name").and_then(Value::as_str),
                    entry.get("value").and_then(Value::as_str),
                ) {
                    (Some(name), Some(value)) => {
                        headers.push((name.to_string(), value.to_string()))
                    }
                    _ => decoder.error(at.key("headers").index(i), "expected { name, value }"),
                }
            }
        }
        // ... or the older map of name: value.
        Some(Value::Mapping(map)) => {
            for (name, value) in map {
                match (name.as_str(), value.as_str()) {
                    (Some(name), Some(value)) => {
                        headers.push((name.to_string(), value.to_string()))
                    }
                    _ => decoder.error(at.key("headers"), "expected string names and values"),
                }
            }
        }
        Some(_) => decoder.error(at.key("headers"), "expected a list of { name, value }"),
    }
    for key in [
        "insecure",
        "compression",
        "temporality_preference",
        "certificate",
        "client_key",
        "client_certificate",
    ] {
        if settings.get(key).is_some() {
            decoder.warning(at.key(key), format!("{key} is ignored: own metrics are sent uncompressed, cumulative, with the system's roots"));
        }
    }
    Some(PeriodicReaderPlan {
        interval: interval?,
        timeout: timeout?,
        protocol,
        endpoint,
        headers,
    })
}

/// `service.telemetry.resource`: the resource of what periodic readers
/// push (strings, numbers and booleans as text; `null` is left out).
fn telemetry_resource(
    decoder: &mut Decoder,
    telemetry: &RawTelemetry,
    path: &YamlPath,
    readers: &[PeriodicReaderPlan],
) -> Vec<(String, String)> {
    if telemetry.resource.is_empty() {
        return Vec::new();
    }
    if readers.is_empty() {
        decoder.warning(
            path.key("resource"),
            "service.telemetry.resource is used only by periodic readers, and there is none: /metrics carries no resource attributes",
        );
    }
    let mut out = Vec::new();
    for (key, value) in &telemetry.resource {
        match value {
            Value::String(s) => out.push((key.clone(), s.clone())),
            Value::Number(n) => out.push((key.clone(), n.to_string())),
            Value::Bool(b) => out.push((key.clone(), b.to_string())),
            Value::Null => {}
            _ => decoder.error(path.key("resource").key(key.clone()), "expected a string"),
        }
    }
    out
}
