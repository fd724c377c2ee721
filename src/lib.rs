//! sidewatch: an OpenTelemetry pipeline processor.
//!
//! - `config`: YAML model, env expansion, located errors, the compiled plan;
//! - `components`: the closed registry of component types;
//! - `pipeline`: the running graph, backpressure, start and shutdown;
//! - `receivers`, `processors`, `connectors`, `exporters`: the components;
//! - `logpatterns`: online log-template mining (pure; the engine only);
//! - `signal`, `batching`: the OTLP batch type and its splitting;
//! - `telemetry`: self-monitoring counters and the /metrics endpoint.

pub mod alerting;
pub mod batching;
pub mod components;
pub mod config;
pub mod connectors;
pub mod exporters;
pub mod logpatterns;
pub mod ottl;
pub mod pipeline;
pub mod processors;
pub mod receivers;
pub mod replay;
pub mod signal;
pub mod stats;
pub mod telemetry;
pub mod timestamp;
pub mod tls;
pub mod wire;
