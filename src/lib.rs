//! sidewatch: an OpenTelemetry pipeline processor.
//!
//! - `config`: YAML model, env expansion, located errors, the compiled plan;
//! - `components`: the closed registry of component types;
//! - `pipeline`: the running graph, backpressure, start and shutdown;
//! - `clock`: the graph's time, wall time live and event time in replay;
//! - `replay`: the whole graph over history, on event time;
//! - `receivers`, `processors`, `connectors`, `exporters`: the components;
//! - `logpatterns`: online log-template mining (pure; the engine only);
//! - `datamodel`: OTLP rules protobuf cannot express (id lengths, bucket
//!   counts), checked where data enters or is used;
//! - `signal`, `batching`: the OTLP batch type and its splitting;
//! - `otlp`: helpers over OTLP values and time every component shares;
//! - `store`: the embedded time-series store and PromQL over it;
//! - `telemetry`: self-monitoring counters and the /metrics endpoint.

pub mod alerting;
pub mod batching;
pub mod clock;
pub mod components;
pub mod config;
pub mod configtest;
pub mod connectors;
pub mod datamodel;
pub mod exporters;
pub mod extensions;
pub mod kafka;
pub mod logpatterns;
pub mod otlp;
pub mod ottl;
pub mod pipeline;
pub mod plan;
pub mod processors;
pub mod receivers;
pub mod replay;
pub mod signal;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod timestamp;
pub mod tls;
pub mod wire;
