//! Components as the plan and the graph see them: the closed
//! [`registry`] of YAML types (one row each: kind, names, description,
//! signals, and the function that compiles its config), and the
//! [`compiled`] contracts a compiled config fulfils to build its
//! component. Adding a component is one row plus its own file.

pub mod compiled;
pub mod registry;

pub use compiled::{
    CompiledConnector, CompiledExporter, CompiledProcessor, CompiledReceiver, ConnectorContext,
    ExporterContext,
};
pub use registry::{Compile, Kind, REGISTRY, Row, lookup, type_names};

/// A compiled config of each kind, as the plan holds it.
pub type ReceiverConfig = std::sync::Arc<dyn CompiledReceiver>;
pub type ProcessorConfig = std::sync::Arc<dyn CompiledProcessor>;
pub type ExporterConfig = std::sync::Arc<dyn CompiledExporter>;
pub type ConnectorConfig = std::sync::Arc<dyn CompiledConnector>;

/// The concrete compiled form of a processor config, where the plan
/// rewrites the graph around one type (`batch`, `memory_limiter`).
pub fn processor_as<T: std::any::Any>(config: &ProcessorConfig) -> Option<&T> {
    let any: &dyn std::any::Any = config.as_ref();
    any.downcast_ref()
}

/// As [`processor_as`], for receivers.
pub fn receiver_as<T: std::any::Any>(config: &ReceiverConfig) -> Option<&T> {
    let any: &dyn std::any::Any = config.as_ref();
    any.downcast_ref()
}

/// As [`processor_as`], for exporters.
pub fn exporter_as<T: std::any::Any>(config: &ExporterConfig) -> Option<&T> {
    let any: &dyn std::any::Any = config.as_ref();
    any.downcast_ref()
}
