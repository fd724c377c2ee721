//! `alert` connector: metrics in, alert events out (typed, in a logs
//! pipeline; OTLP exporters send them as log records with event name
//! `sidewatch.alert`), so a logs pipeline delivers them to Alertmanager,
//! webhooks, Slack, email or any OTLP backend:
//!
//! ```yaml
//! connectors:
//!   alert: { evaluation_interval: 15s, rules: [ { name: HighCPU, metric: system.cpu.utilization, op: ">", warning: 0.7, for: 2m } ] }
//! service:
//!   pipelines:
//!     metrics: { receivers: [hostmetrics], exporters: [alert] }
//!     logs/alerts: { receivers: [alert], exporters: [alertmanager] }
//! ```
//!
//! Data points feed the engine as they pass; rules are evaluated every
//! `evaluation_interval` on the pipeline's clock (event time in replay).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use serde::Deserialize;

use crate::alerting::engine::{Engine, Labels};
use crate::alerting::event::{AlertEvent, Event};
use crate::alerting::rule::{Rule, RuleConfig};
use crate::alerting::state;
use crate::components::compiled::{CompiledConnector, ConnectorContext};
use crate::config::storage::{StatePath, Storage};
use crate::config::{Decoder, YamlPath};
use crate::otlp::time::unix_seconds;
use crate::otlp::value::any_value_text;
use crate::processors::Processor;
use crate::processors::state_write::StateWrite;
use crate::signal::Batch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub evaluation_interval: Duration,
    /// Where alert state survives restarts; none keeps it in memory only.
    pub state_file: Option<StatePath>,
    /// Series held at once across all rules; samples of further series are
    /// dropped and counted.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    pub rules: Vec<RuleConfig>,
}

/// The config as written, rules still raw, so each rule is decoded on
/// its own and every broken rule is reported, not just the first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertConfig {
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub evaluation_interval: Duration,
    pub state_file: Option<StatePath>,
    #[serde(default = "default_max_series")]
    pub max_series: usize,
    pub rules: Vec<yaml_serde::Value>,
}

/// A validated `alert` config: every rule compiled.
#[derive(Debug, Clone)]
pub struct CompiledAlert {
    evaluation_interval: Duration,
    state_file: Option<StatePath>,
    max_series: usize,
    rules: Vec<Rule>,
}

impl AlertConfig {
    /// The validated form, or every rule's problems as (rule index,
    /// field, message).
    pub fn compile(&self) -> Result<CompiledAlert, Vec<(usize, &'static str, String)>> {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            match rule.compile() {
                Ok(rule) => rules.push(rule),
                Err(problems) => {
                    errors.extend(problems.into_iter().map(|(field, m)| (i, field, m)));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CompiledAlert {
            evaluation_interval: self.evaluation_interval,
            state_file: self.state_file.clone(),
            max_series: self.max_series,
            rules,
        })
    }
}

/// The registry's compile step for `alert`: each rule is decoded on its
/// own, so every broken rule is reported, each at its own path.
pub fn compile(
    value: &yaml_serde::Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<std::sync::Arc<dyn CompiledConnector>> {
    let raw: RawAlertConfig = decoder.decode(value, path)?;
    let mut rules = Vec::new();
    let mut valid = true;
    for (i, rule) in raw.rules.iter().enumerate() {
        match decoder.decode::<RuleConfig>(rule, &path.key("rules").index(i)) {
            Some(rule) => rules.push(rule),
            None => valid = false,
        }
    }
    let config = AlertConfig {
        evaluation_interval: raw.evaluation_interval,
        state_file: raw.state_file,
        max_series: raw.max_series,
        rules,
    };
    match config.compile() {
        Ok(compiled) if valid => Some(std::sync::Arc::new(compiled)),
        Ok(_) => None,
        Err(errors) => {
            for (i, field, message) in errors {
                decoder.error(path.key("rules").index(i).key(field), message);
            }
            None
        }
    }
}

impl CompiledConnector for CompiledAlert {
    fn build(&self, context: &ConnectorContext<'_>) -> Box<dyn Processor> {
        Box::new(AlertConnector::new(self, context.storage))
    }
}

fn default_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_max_series() -> usize {
    100_000
}

/// Missed evaluations run after a clock jump, at most: a week of 1m
/// evaluations, enough for any `absent_for` or `for` a rule sensibly has.
const MAX_CATCH_UP: usize = 10_080;

pub struct AlertConnector {
    engine: Engine,
    interval: Duration,
    next_evaluation: Option<SystemTime>,
    state_file: Option<PathBuf>,
    /// The bytes last handed out to be written: unchanged state is not
    /// written again.
    last_saved: Option<Vec<u8>>,
    stats: std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>,
}

impl AlertConnector {
    /// State is restored from, and saved to, the state file only if
    /// `storage` grants it (a replay does not).
    pub fn new(config: &CompiledAlert, storage: Storage) -> Self {
        let mut engine = Engine::new(config.rules.clone());
        engine.max_series = config.max_series;
        let state_file = config
            .state_file
            .as_ref()
            .and_then(|s| s.resolve(storage))
            .map(Path::to_path_buf);
        if let Some(path) = &state_file {
            engine.restore(state::load(path));
        }
        AlertConnector {
            engine,
            interval: config.evaluation_interval,
            next_evaluation: None,
            state_file,
            last_saved: None,
            stats: std::sync::Arc::new(crate::telemetry::cardinality::CardinalityStats::new(
                config.max_series,
            )),
        }
    }

    /// Evaluates at `now` and returns the events (for tests); the state
    /// file, if any, is written before returning.
    pub fn evaluate(&mut self, now: SystemTime) -> Vec<AlertEvent> {
        let events = self.engine.evaluate(unix_seconds(now));
        if let Some(write) = self.take_state_write()
            && let Err(e) = write.write()
        {
            tracing::error!(path = %write.path.display(), error = %e, "cannot save alert state");
        }
        events
    }

    /// The state file's new content, if it changed since the last one
    /// handed out. Cheap (no I/O): called under the connector's lock.
    fn state_write(&mut self) -> Option<StateWrite> {
        let path = self.state_file.as_ref()?;
        let bytes = state::encode(&self.engine.snapshot());
        if self.last_saved.as_deref() == Some(bytes.as_slice()) {
            return None;
        }
        self.last_saved = Some(bytes.clone());
        Some(StateWrite {
            path: path.clone(),
            bytes,
        })
    }

    pub fn observe_batch(&mut self, batch: &Batch, now: SystemTime) {
        let Batch::Metrics(request) = batch else {
            return;
        };
        let now = unix_seconds(now);
        for resource in &request.resource_metrics {
            let mut base = Labels::new();
            for kv in resource.resource.iter().flat_map(|r| &r.attributes) {
                base.insert(
                    kv.key.clone(),
                    kv.value.as_ref().map(any_value_text).unwrap_or_default(),
                );
            }
            for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                if !self.engine.wants(&metric.name) {
                    continue;
                }
                let (points, monotonic) = match &metric.data {
                    Some(Data::Gauge(g)) => (&g.data_points, false),
                    Some(Data::Sum(s)) => (&s.data_points, s.is_monotonic),
                    _ => continue,
                };
                for point in points {
                    let value = match crate::datamodel::points::number(point, monotonic) {
                        Ok(Some(value)) => value,
                        Ok(None) => continue,
                        Err(violation) => {
                            crate::telemetry::dropped::count(
                                crate::telemetry::dropped::Component::Alert,
                                violation,
                            );
                            continue;
                        }
                    };
                    let mut labels = base.clone();
                    for kv in &point.attributes {
                        labels.insert(
                            kv.key.clone(),
                            kv.value.as_ref().map(any_value_text).unwrap_or_default(),
                        );
                    }
                    let time = if point.time_unix_nano > 0 {
                        point.time_unix_nano as f64 / 1e9
                    } else {
                        now
                    };
                    self.engine.observe(&metric.name, &labels, time, value);
                }
            }
        }
    }
}

/// Alert events as one batch of typed events.
pub fn events_to_batch(events: Vec<AlertEvent>) -> Batch {
    Batch::Events(
        events
            .into_iter()
            .map(Event::Alert)
            .collect::<Vec<_>>()
            .into(),
    )
}

impl Processor for AlertConnector {
    fn process(&mut self, batch: Batch, now: SystemTime, _out: &mut Vec<Batch>) {
        self.observe_batch(&batch, now);
        self.stats
            .publish(self.engine.series_count(), self.engine.overflowed_samples);
    }

    fn cardinality(
        &self,
    ) -> Option<std::sync::Arc<crate::telemetry::cardinality::CardinalityStats>> {
        Some(self.stats.clone())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(crate::processors::schedule::tick_for(self.interval))
    }

    /// Evaluates every `evaluation_interval` on the clock it is given.
    /// When the clock jumps past several evaluations (replay crossing a gap
    /// in the data, a paused process), the missed ones run at their own
    /// times first, as they would have live: absence and `for` are judged
    /// in event time, not only at the next data point.
    fn tick(&mut self, now: SystemTime, out: &mut Vec<Batch>) {
        let mut due = *self.next_evaluation.get_or_insert(now);
        if now < due {
            return;
        }
        let mut events = Vec::new();
        let mut missed = 0;
        while due + self.interval <= now && !self.interval.is_zero() {
            if missed == MAX_CATCH_UP {
                tracing::warn!(
                    skipped_until = %humantime::format_rfc3339_seconds(now),
                    evaluations = MAX_CATCH_UP,
                    "alert evaluation fell far behind its clock; evaluations after the first ones are skipped"
                );
                break;
            }
            events.extend(self.engine.evaluate(unix_seconds(due)));
            due += self.interval;
            missed += 1;
        }
        events.extend(self.engine.evaluate(unix_seconds(now)));
        self.next_evaluation = Some(if now >= due + self.interval {
            now + self.interval
        } else {
            due + self.interval
        });
        if !events.is_empty() {
            out.push(events_to_batch(events));
        }
    }

    /// The runtime writes this after releasing the connector's lock and
    /// before delivering the events of the same tick.
    fn take_state_write(&mut self) -> Option<StateWrite> {
        self.state_write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::event::Transition;
    use std::time::UNIX_EPOCH;

    fn connector(rule: &str, interval: &str) -> AlertConnector {
        let config = AlertConfig {
            evaluation_interval: crate::config::duration::parse_duration(interval).unwrap(),
            state_file: None,
            max_series: 10,
            rules: vec![yaml_serde::from_str(rule).unwrap()],
        };
        AlertConnector::new(&config.compile().unwrap(), Storage::NONE)
    }

    fn point(seconds: f64) -> Batch {
        crate::replay::gauge_batch("up", seconds, 1.0)
    }

    fn tick(connector: &mut AlertConnector, seconds: f64) -> Vec<(Transition, f64)> {
        let mut out = Vec::new();
        connector.tick(UNIX_EPOCH + Duration::from_secs_f64(seconds), &mut out);
        out.iter()
            .flat_map(|b| crate::exporters::alert_payload::events(b).0)
            .map(|e| (e.transition, e.emitted_at))
            .collect()
    }

    #[test]
    fn a_clock_jump_runs_the_missed_evaluations_at_their_own_times() {
        let mut c = connector("{ name: Down, metric: up, absent_for: 1m }", "10s");
        c.observe_batch(&point(0.0), UNIX_EPOCH);
        assert!(tick(&mut c, 0.0).is_empty());
        // Data again at 300 s; the evaluations from 10 s on run first, each
        // seeing only the points before it.
        c.observe_batch(&point(300.0), UNIX_EPOCH);
        assert_eq!(
            tick(&mut c, 300.0),
            vec![(Transition::Fired, 70.0), (Transition::Resolved, 300.0)]
        );
        assert!(tick(&mut c, 305.0).is_empty(), "next evaluation at 310 s");
    }

    #[test]
    fn a_jump_of_years_catches_up_a_bounded_number_of_evaluations() {
        let mut c = connector("{ name: Down, metric: up, absent_for: 1m }", "1s");
        c.observe_batch(&point(0.0), UNIX_EPOCH);
        assert!(tick(&mut c, 0.0).is_empty());
        let years = 10.0 * 365.0 * 86400.0;
        // Still absent at the end: the 4h repeat is due by then.
        assert_eq!(
            tick(&mut c, years),
            vec![(Transition::Fired, 61.0), (Transition::Repeated, years)]
        );
        assert!(
            tick(&mut c, years + 0.5).is_empty(),
            "realigned on the clock after the bounded catch-up"
        );
    }
}
