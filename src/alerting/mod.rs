//! Threshold alerting: rules, the evaluation engine with Prometheus's
//! alert semantics, templates, persisted state, and alert events.
//!
//! - `rule`: YAML form and validation; `matcher`: label matchers;
//! - `engine`: samples, evaluation, state machine;
//! - `event`: the typed events (alert, anomaly) and their OTLP log record
//!   form; `anomaly_event`: the anomaly incident event;
//! - `learned`: the learned threshold of `op: anomalous`;
//! - `template`: `{{ $labels.x }}` / `{{ $value }}` expansion;
//! - `state`: the state file that survives restarts.

pub mod anomaly_event;
pub mod engine;
pub mod event;
pub mod gate;
pub mod learned;
pub mod live;
pub mod matcher;
pub mod rule;
pub mod silences;
pub mod state;
pub mod template;
