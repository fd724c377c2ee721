//! What a component's config compiles into, once, when the config is
//! validated: its validated form (regexes compiled, rules parsed,
//! detectors and sketch parameters checked), which builds the component
//! and cannot fail on anything `validate` accepted. Only exporters may
//! still fail at start, on the world changing in between (a port taken, a
//! directory removed), never on the config.
//!
//! Each trait is `Any`, so the plan can look at a concrete form where
//! it rewrites the graph (`batch` folded into queues, `memory_limiter`
//! moved onto the service) by downcasting, without a match arm per type.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use yaml_serde::Value;

use crate::clock::Clock;
use crate::config::storage::Storage;
use crate::config::{Decoder, YamlPath};
use crate::exporters::Exporter;
use crate::exporters::settings::ExporterSettings;
use crate::processors::Processor;
use crate::receivers::Receiver;
use crate::signal::Signal;
use crate::telemetry::Telemetry;

pub trait CompiledReceiver: Any + Debug + Send + Sync {
    fn build(&self) -> Box<dyn Receiver>;
}

pub trait CompiledProcessor: Any + Debug + Send + Sync {
    fn build(&self) -> Box<dyn Processor>;
}

/// What an exporter is built for.
pub struct ExporterContext<'a> {
    /// The id as written (`webhook/ops`), for its logs.
    pub name: &'a str,
    pub signal: Signal,
    pub clock: &'a Clock,
    /// Self-telemetry, where an exporter offers something to the
    /// telemetry endpoint (the `store` its query API).
    pub telemetry: &'a Arc<Telemetry>,
}

pub trait CompiledExporter: Any + Debug + Send + Sync {
    /// Queue, retry and timeout settings; exporters without a remote
    /// destination use the defaults.
    fn settings(&self) -> ExporterSettings {
        ExporterSettings::default()
    }

    /// Fails only on the world (a port taken, a file that cannot be
    /// created), never on the config: `compile` checked that.
    fn build(&self, context: &ExporterContext<'_>) -> Result<Arc<dyn Exporter>, String>;

    /// Why this config cannot serve `signal`, where that depends on the
    /// config and not only on the type (a routing key for metrics only in
    /// a traces pipeline); the pipeline check reports it at the reference.
    fn refuses_signal(&self, _signal: crate::signal::Signal) -> Option<String> {
        None
    }
}

/// What a connector is built for.
pub struct ConnectorContext<'a> {
    /// The id as written (`alert/cpu`): state files are named after it.
    pub id: &'a str,
    /// Access to the live state files: none in a replay.
    pub storage: Storage,
}

pub trait CompiledConnector: Any + Debug + Send + Sync {
    fn build(&self, context: &ConnectorContext<'_>) -> Box<dyn Processor>;
}

/// A registry row's compile step for a config that serde alone validates.
pub fn receiver<T: CompiledReceiver + DeserializeOwned>(
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<Arc<dyn CompiledReceiver>> {
    decoder
        .decode::<T>(value, path)
        .map(|c| Arc::new(c) as Arc<dyn CompiledReceiver>)
}

/// As [`receiver`], for processors.
pub fn processor<T: CompiledProcessor + DeserializeOwned>(
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<Arc<dyn CompiledProcessor>> {
    decoder
        .decode::<T>(value, path)
        .map(|c| Arc::new(c) as Arc<dyn CompiledProcessor>)
}

/// As [`receiver`], for exporters.
pub fn exporter<T: CompiledExporter + DeserializeOwned>(
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<Arc<dyn CompiledExporter>> {
    decoder
        .decode::<T>(value, path)
        .map(|c| Arc::new(c) as Arc<dyn CompiledExporter>)
}

/// As [`receiver`], for connectors.
pub fn connector<T: CompiledConnector + DeserializeOwned>(
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<Arc<dyn CompiledConnector>> {
    decoder
        .decode::<T>(value, path)
        .map(|c| Arc::new(c) as Arc<dyn CompiledConnector>)
}

/// Reports `errors` (field under `path`, message) and says whether there
/// were none: the shape most `validate` methods return.
pub fn report(errors: Vec<(&'static str, String)>, path: &YamlPath, decoder: &mut Decoder) -> bool {
    let valid = errors.is_empty();
    for (field, message) in errors {
        decoder.error(path.key(field), message);
    }
    valid
}

/// As [`report`], for `validate` methods that name nested keys
/// (`["autocommit", "interval"]`).
pub fn report_at<K: AsRef<[&'static str]>>(
    errors: Vec<(K, String)>,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> bool {
    let valid = errors.is_empty();
    for (keys, message) in errors {
        let at = keys
            .as_ref()
            .iter()
            .fold(path.clone(), |at, key| at.key(*key));
        decoder.error(at, message);
    }
    valid
}
