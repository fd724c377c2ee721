//! The rule engine: keeps recent samples per series, evaluates every rule
//! at a given time, and moves alert instances through inactive, pending,
//! firing and resolved with Prometheus's semantics:
//!
//! - a condition that starts holding makes a pending instance (activeAt =
//!   now); it fires at the first evaluation where now - activeAt >= `for`
//!   (so `for: 0` fires at once);
//! - a pending instance whose condition stops holding is dropped silently;
//! - a firing one resolves at the first evaluation where the condition has
//!   not held for `keep_firing_for`, and is kept 15 minutes as resolved.
//!
//! On top: severities (the highest threshold passed), hysteresis (`resolve`),
//! re-notification every `repeat_interval`, a `cooldown` between
//! notifications of one alert, absence (`absent_for`) and forecasts
//! (`predict`). Time is passed in: live, replay and tests alike.
//!
//! Cooldown: a fire (also a re-fire after a resolve) or a repeat within
//! `cooldown` of the alert's last notification is held back; if the alert
//! still fires when the cooldown ends, the fire goes out then, so an outage
//! that starts with flapping is never lost. A held-back fire that resolves
//! ends silently: a receiver never gets a resolve for a fire it was not
//! told of, and always gets the resolve of one it was. Severity changes
//! always go out (an escalation must page; and Alertmanager must not keep
//! showing a severity the alert has left) and count as notifications.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use super::event::{AlertEvent, Status, Transition};
use super::gate::{Candidate, Episode, Gate, Open};
use super::learned::ScoreHistory;
use super::rule::{Aggregate, LOOKBACK, Rule, Severity, ValueFunction};
use super::template::{TemplateData, render};
use crate::stats::forecast;

pub type Labels = BTreeMap<String, String>;

/// Resolved instances are remembered this long, as Prometheus does.
const RESOLVED_RETENTION: f64 = 15.0 * 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

/// One alert: a series (or a group of series) of one rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub labels: Labels,
    pub state: State,
    pub active_at: f64,
    pub fired_at: Option<f64>,
    pub resolved_at: Option<f64>,
    /// First evaluation at which the condition stopped holding while firing.
    pub inactive_since: Option<f64>,
    pub severity: Severity,
    /// The value at the last evaluation at which the condition held.
    pub value: f64,
    /// (evaluation time, value) of the latest evaluation that had a value
    /// for this instance, held or not: what a resolve reports.
    #[serde(default)]
    pub latest: Option<(f64, f64)>,
    pub threshold: f64,
    /// Kept across resolve and re-fire, for `cooldown`.
    pub last_notified_at: Option<f64>,
    /// Firing, but the fire was held back by `cooldown`: nobody was told.
    #[serde(default)]
    pub held_back: bool,
    pub predicted_crossing_at: Option<f64>,
    /// When the severity last changed; `None` means since `active_at`.
    #[serde(default)]
    pub severity_since: Option<f64>,
    /// Firing and told, but a severity change was muted by a silence: it
    /// goes out once nothing mutes it.
    #[serde(default)]
    pub unsent_change: bool,
}

impl Instance {
    pub fn episode(&self) -> Episode {
        Episode {
            active_at: self.active_at,
            severity_since: self.severity_since.unwrap_or(self.active_at),
        }
    }
}

/// A pending or firing alert as the alerts API lists it.
#[derive(Debug, Clone)]
pub struct ActiveAlert {
    pub fingerprint: String,
    pub rule: String,
    /// As receivers see them: `alertname` and `severity` included.
    pub labels: Labels,
    pub annotations: Labels,
    pub state: State,
    pub severity: Severity,
    pub active_at: f64,
    pub value: f64,
    pub episode: Episode,
}

/// Samples of one series of one metric, shared by every rule reading it.
#[derive(Debug, Default)]
struct Series {
    /// Key within its rules' instances: the labels, canonical.
    key: String,
    labels: Labels,
    samples: VecDeque<(f64, f64)>,
    /// Every score seen, for the learned threshold of `op: anomalous`.
    scores: Option<ScoreHistory>,
    /// Bumped when the slot is reused, so rules drop stale references.
    generation: u32,
    live: bool,
}

struct RuleRuntime {
    rule: Rule,
    /// Series this rule reads: (slot, generation).
    members: Vec<(usize, u32)>,
    instances: HashMap<String, Instance>,
    first_evaluation: Option<f64>,
    /// Instances restored from the state file that have not seen data since:
    /// right after a restart, no data yet is not a condition that stopped.
    restored: HashSet<String>,
}

pub struct Engine {
    rules: Vec<RuleRuntime>,
    by_metric: HashMap<String, Vec<usize>>,
    /// How far back each metric's samples are kept: the longest need of
    /// the rules reading it.
    retention: HashMap<String, f64>,
    /// Absence watched on this metric: silent series are kept.
    watches_absence: HashSet<String>,
    series: Vec<Series>,
    metric_of: Vec<String>,
    free: Vec<usize>,
    index: HashMap<(String, String), usize>,
    /// Series held at most; samples of new series beyond it are dropped.
    pub max_series: usize,
    pub overflowed_samples: u64,
}

/// What the condition says for one instance at one evaluation.
struct Verdict {
    value: f64,
    /// The severity and threshold passed, if any.
    passed: Option<(Severity, f64)>,
    predicted_crossing_at: Option<f64>,
}

pub fn series_key(labels: &Labels) -> String {
    let mut key = String::new();
    for (k, v) in labels {
        key.push_str(k);
        key.push('\u{1f}');
        key.push_str(v);
        key.push('\u{1e}');
    }
    key
}

impl Engine {
    pub fn new(rules: Vec<Rule>) -> Engine {
        let mut by_metric: HashMap<String, Vec<usize>> = HashMap::new();
        let mut retention: HashMap<String, f64> = HashMap::new();
        let mut watches_absence = HashSet::new();
        let rules: Vec<RuleRuntime> = rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                let metric = rule.source_metric.clone();
                by_metric.entry(metric.clone()).or_default().push(i);
                let mut keep = rule.window.as_secs_f64().max(LOOKBACK.as_secs_f64());
                if let Some(p) = &rule.config.predict {
                    keep = keep.max(p.window.as_secs_f64());
                }
                if let Some(absent) = rule.config.absent_for {
                    keep = keep.max(absent.as_secs_f64());
                    watches_absence.insert(metric.clone());
                }
                let entry = retention.entry(metric).or_insert(0.0);
                *entry = entry.max(keep);
                RuleRuntime {
                    rule,
                    members: Vec::new(),
                    instances: HashMap::new(),
                    first_evaluation: None,
                    restored: HashSet::new(),
                }
            })
            .collect();
        Engine {
            rules,
            by_metric,
            retention,
            watches_absence,
            series: Vec::new(),
            metric_of: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            max_series: usize::MAX,
            overflowed_samples: 0,
        }
    }

    /// Series held now, across all metrics.
    pub fn series_count(&self) -> usize {
        self.series.len() - self.free.len()
    }

    /// True when some rule reads `metric`.
    pub fn wants(&self, metric: &str) -> bool {
        self.by_metric.contains_key(metric)
    }

    /// Records one data point (time in unix seconds).
    pub fn observe(&mut self, metric: &str, labels: &Labels, time: f64, value: f64) {
        let Some(rule_indexes) = self.by_metric.get(metric) else {
            return;
        };
        if !value.is_finite() {
            return;
        }
        let key = series_key(labels);
        let slot = match self.index.get(&(metric.to_string(), key.clone())) {
            Some(slot) => *slot,
            None => {
                let readers: Vec<usize> = rule_indexes
                    .iter()
                    .copied()
                    .filter(|&r| {
                        self.rules[r]
                            .rule
                            .matchers
                            .iter()
                            .all(|m| m.matches(labels))
                    })
                    .collect();
                if readers.is_empty() {
                    return;
                }
                if self.series_count() >= self.max_series {
                    // Folding into one series would make a meaningless
                    // alert: drop, count, and say so once per 10k.
                    if self.overflowed_samples.is_multiple_of(10_000) {
                        tracing::warn!(
                            max_series = self.max_series,
                            metric,
                            "alert rules hold max_series series; samples of new series are dropped"
                        );
                    }
                    self.overflowed_samples += 1;
                    return;
                }
                let slot = match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.series.push(Series::default());
                        self.metric_of.push(String::new());
                        self.series.len() - 1
                    }
                };
                let generation = self.series[slot].generation.wrapping_add(1);
                let learns = readers
                    .iter()
                    .any(|&r| self.rules[r].rule.quantile.is_some());
                self.series[slot] = Series {
                    key: key.clone(),
                    labels: labels.clone(),
                    samples: VecDeque::new(),
                    scores: learns.then(ScoreHistory::default),
                    generation,
                    live: true,
                };
                self.metric_of[slot] = metric.to_string();
                for r in readers {
                    self.rules[r].members.push((slot, generation));
                }
                self.index.insert((metric.to_string(), key), slot);
                slot
            }
        };
        let series = &mut self.series[slot];
        // Out-of-order points are dropped: windows assume time order.
        if series.samples.back().is_none_or(|(t, _)| time > *t) {
            series.samples.push_back((time, value));
            if let Some(scores) = &mut series.scores {
                scores.push(value);
            }
        }
    }

    /// Evaluates every rule at `now` (unix seconds) and returns the events.
    pub fn evaluate(&mut self, now: f64) -> Vec<AlertEvent> {
        self.evaluate_gated(now, &Open)
    }

    /// As [`Engine::evaluate`], with `gate` muting notifications (the
    /// alerts API's acknowledgements and silences): a muted fire is held
    /// back as `cooldown` holds it, and goes out once nothing mutes it.
    pub fn evaluate_gated(&mut self, now: f64, gate: &dyn Gate) -> Vec<AlertEvent> {
        // Expire old samples once, for every rule reading them.
        for slot in 0..self.series.len() {
            if !self.series[slot].live {
                continue;
            }
            let metric = &self.metric_of[slot];
            let horizon = now
                - self
                    .retention
                    .get(metric)
                    .copied()
                    .unwrap_or(LOOKBACK.as_secs_f64());
            let series = &mut self.series[slot];
            while series.samples.front().is_some_and(|(t, _)| *t < horizon) {
                series.samples.pop_front();
            }
            // Forget series with no samples left, unless absence is
            // watched: a silent series is what such a rule looks for.
            if series.samples.is_empty() && !self.watches_absence.contains(metric) {
                series.live = false;
                let key = (metric.clone(), std::mem::take(&mut series.key));
                self.index.remove(&key);
                self.free.push(slot);
            }
        }
        let mut events = Vec::new();
        for runtime in &mut self.rules {
            runtime.evaluate(&self.series, now, gate, &mut events);
        }
        events
    }

    /// Every pending and firing alert, with the labels and annotations
    /// receivers would see now.
    pub fn active_alerts(&self) -> Vec<ActiveAlert> {
        let mut out = Vec::new();
        for runtime in &self.rules {
            for (key, instance) in &runtime.instances {
                if instance.state == State::Resolved {
                    continue;
                }
                let data = template_data(instance, instance.value);
                out.push(ActiveAlert {
                    fingerprint: fingerprint(&runtime.rule.config.name, key),
                    rule: runtime.rule.config.name.clone(),
                    labels: alert_labels(&runtime.rule, instance),
                    annotations: annotations(&runtime.rule, &data),
                    state: instance.state,
                    severity: instance.severity,
                    active_at: instance.active_at,
                    value: instance.value,
                    episode: instance.episode(),
                });
            }
        }
        out
    }

    /// Every instance, for persistence: rule name -> instance key -> instance.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, Instance>> {
        self.rules
            .iter()
            .map(|r| {
                (
                    r.rule.config.name.clone(),
                    r.instances
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )
            })
            .collect()
    }

    /// Restores instances saved by [`Engine::snapshot`] for rules that
    /// still exist.
    pub fn restore(&mut self, mut saved: BTreeMap<String, BTreeMap<String, Instance>>) {
        for runtime in &mut self.rules {
            if let Some(instances) = saved.remove(&runtime.rule.config.name) {
                runtime.restored = instances.keys().cloned().collect();
                runtime.instances = instances.into_iter().collect();
            }
        }
    }
}

impl RuleRuntime {
    fn evaluate(
        &mut self,
        all: &[Series],
        now: f64,
        gate: &dyn Gate,
        events: &mut Vec<AlertEvent>,
    ) {
        let first = *self.first_evaluation.get_or_insert(now);
        self.members
            .retain(|(slot, generation)| all[*slot].live && all[*slot].generation == *generation);
        let in_restart_grace = now - first < LOOKBACK.as_secs_f64();
        if !in_restart_grace {
            self.restored.clear();
        }
        let absent_for = self.rule.config.absent_for.map(|d| d.as_secs_f64());
        let absent_severity = self
            .rule
            .thresholds
            .last()
            .map(|(s, _)| *s)
            .unwrap_or(Severity::Critical);
        // Keys whose condition holds this round; every other instance stopped.
        let mut active: HashSet<String> = HashSet::new();
        let mut groups: BTreeMap<String, (Labels, Vec<f64>, Option<f64>)> = BTreeMap::new();
        let grouped = self.rule.config.group_by.is_some();
        // Reused for every member: no allocation per series and evaluation.
        let mut absent_key = String::new();
        for member in 0..self.members.len() {
            let series = &all[self.members[member].0];
            // Event time: a sample after `now` (an evaluation caught up
            // after a gap, in replay or after a pause) is not seen yet.
            let last_seen = series
                .samples
                .iter()
                .rev()
                .map(|(t, _)| *t)
                .find(|t| *t <= now);
            // Range selectors include their left edge in Prometheus 2.x,
            // the version the semantics tests run against.
            let silent = match (absent_for, last_seen) {
                (Some(limit), Some(t)) => now - t > limit,
                (Some(_), None) => true,
                _ => false,
            };
            if silent {
                let key = format!("absent\u{1e}{}", series.key);
                let verdict = Verdict {
                    value: f64::NAN,
                    passed: Some((absent_severity, f64::NAN)),
                    predicted_crossing_at: None,
                };
                let labels = || {
                    let mut labels = series.labels.clone();
                    labels.insert("alert.reason".into(), "absent".into());
                    labels
                };
                self.apply(&key, labels, &verdict, now, gate, &mut active, events);
                continue;
            }
            if absent_for.is_some() && !self.instances.is_empty() {
                absent_key.clear();
                absent_key.push_str("absent\u{1e}");
                absent_key.push_str(&series.key);
                if let Some(absent) = self.instances.get_mut(absent_key.as_str())
                    && let Some((_, value)) = series.samples.iter().rev().find(|(t, _)| *t <= now)
                {
                    // Data is back: the value that ends the absence.
                    absent.latest = Some((now, *value));
                }
            }
            if self.rule.thresholds.is_empty() {
                continue;
            }
            let Some((value, crossing)) = self.value_of(series, now) else {
                continue;
            };
            if !grouped {
                let passed = match (self.rule.quantile, &series.scores) {
                    (Some(q), Some(scores)) => {
                        self.rule.severity_for_learned(value, scores.threshold(q))
                    }
                    (Some(q), None) => self
                        .rule
                        .severity_for_learned(value, super::learned::prior(q)),
                    (None, _) => self.rule.severity_for(value),
                };
                let verdict = Verdict {
                    value,
                    passed,
                    predicted_crossing_at: crossing,
                };
                // The common case, nothing to do, costs one lookup.
                if verdict.passed.is_some() || self.instances.contains_key(series.key.as_str()) {
                    self.apply(
                        &series.key,
                        || series.labels.clone(),
                        &verdict,
                        now,
                        gate,
                        &mut active,
                        events,
                    );
                }
            } else {
                {
                    let group_by = self.rule.config.group_by.as_deref().unwrap_or_default();
                    let labels: Labels = group_by
                        .iter()
                        .filter_map(|g| Some((g.clone(), series.labels.get(g)?.clone())))
                        .collect();
                    let entry = groups
                        .entry(series_key(&labels))
                        .or_insert_with(|| (labels, Vec::new(), None));
                    entry.1.push(value);
                    entry.2 = match (entry.2, crossing) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            }
        }
        for (key, (labels, values, crossing)) in groups {
            let value = aggregate(self.rule.config.aggregate, &values);
            // A group has no history of its own: the prior.
            let passed = match self.rule.quantile {
                Some(q) => self
                    .rule
                    .severity_for_learned(value, super::learned::prior(q)),
                None => self.rule.severity_for(value),
            };
            let verdict = Verdict {
                value,
                passed,
                predicted_crossing_at: crossing,
            };
            self.apply(
                &key,
                || labels.clone(),
                &verdict,
                now,
                gate,
                &mut active,
                events,
            );
        }
        if let Some(limit) = absent_for
            && self.members.is_empty()
            && now - first > limit
        {
            let verdict = Verdict {
                value: f64::NAN,
                passed: Some((absent_severity, f64::NAN)),
                predicted_crossing_at: None,
            };
            let labels = || {
                [("alert.reason".to_string(), "absent".to_string())]
                    .into_iter()
                    .collect()
            };
            self.apply(
                "absent\u{1e}",
                labels,
                &verdict,
                now,
                gate,
                &mut active,
                events,
            );
        }

        // Instances whose condition did not hold this round.
        let keep_firing_for = self.rule.config.keep_firing_for.as_secs_f64();
        // A resolved instance remembers its last notification for cooldown.
        let retention = RESOLVED_RETENTION.max(self.rule.config.cooldown.as_secs_f64());
        let mut dropped = Vec::new();
        for (key, instance) in self.instances.iter_mut() {
            if active.contains(key) || (in_restart_grace && self.restored.contains(key)) {
                continue;
            }
            match instance.state {
                State::Pending => dropped.push(key.clone()),
                State::Firing => {
                    let since = *instance.inactive_since.get_or_insert(now);
                    if now - since >= keep_firing_for {
                        instance.state = State::Resolved;
                        instance.resolved_at = Some(now);
                        instance.unsent_change = false;
                        if !std::mem::take(&mut instance.held_back) {
                            events.push(event(
                                &self.rule,
                                key,
                                instance,
                                Transition::Resolved,
                                now,
                            ));
                        }
                    }
                }
                State::Resolved => {
                    if instance.resolved_at.is_some_and(|t| now - t >= retention) {
                        dropped.push(key.clone());
                    }
                }
            }
        }
        for key in dropped {
            self.instances.remove(&key);
        }
    }

    /// Applies one verdict to its instance: creates it when the condition
    /// starts holding, fires it after `for`, notes severity changes and
    /// repeats. A verdict that does not hold is left to the caller.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        key: &str,
        labels: impl FnOnce() -> Labels,
        verdict: &Verdict,
        now: f64,
        gate: &dyn Gate,
        active: &mut HashSet<String>,
        events: &mut Vec<AlertEvent>,
    ) {
        if !self.restored.is_empty() {
            self.restored.remove(key);
        }
        if let Some(instance) = self.instances.get_mut(key) {
            instance.latest = Some((now, verdict.value));
        }
        let existing = self.instances.get(key);
        let firing = existing.is_some_and(|i| i.state == State::Firing);
        // Hysteresis: a firing instance stays active above `resolve`.
        let holds = verdict.passed.is_some()
            || (firing && verdict.value.is_finite() && self.rule.still_active(verdict.value));
        if !holds {
            return;
        }
        active.insert(key.to_string());
        let lowest = self.rule.thresholds.first().copied();
        let (severity, threshold) = verdict
            .passed
            .or_else(|| existing.map(|i| (i.severity, i.threshold)))
            .or(lowest)
            .unwrap_or((Severity::Critical, f64::NAN));
        if !matches!(existing, Some(i) if i.state != State::Resolved) {
            // A re-fire after a resolve is the same alert to `cooldown`.
            let last_notified_at = existing.and_then(|i| i.last_notified_at);
            self.instances.insert(
                key.to_string(),
                Instance {
                    labels: labels(),
                    state: State::Pending,
                    active_at: now,
                    fired_at: None,
                    resolved_at: None,
                    inactive_since: None,
                    severity,
                    value: verdict.value,
                    latest: Some((now, verdict.value)),
                    threshold,
                    last_notified_at,
                    held_back: false,
                    predicted_crossing_at: verdict.predicted_crossing_at,
                    severity_since: None,
                    unsent_change: false,
                },
            );
        }
        let instance = self
            .instances
            .get_mut(key)
            .expect("present or just inserted");
        instance.inactive_since = None;
        instance.value = verdict.value;
        instance.predicted_crossing_at = verdict.predicted_crossing_at;
        let previous_severity = instance.severity;
        instance.severity = severity;
        instance.threshold = threshold;
        if severity != previous_severity {
            instance.severity_since = Some(now);
        }
        let cooldown = self.rule.config.cooldown.as_secs_f64();
        let cooling = instance
            .last_notified_at
            .is_some_and(|t| now - t < cooldown);
        let rule = &self.rule;
        // Asked only when a notification is due: most evaluations notify
        // nothing, and an open gate is never asked.
        let muted = |instance: &Instance| {
            !gate.is_open()
                && gate.mutes(&Candidate {
                    fingerprint: &fingerprint(&rule.config.name, key),
                    labels: &alert_labels(rule, instance),
                    episode: instance.episode(),
                    now,
                })
        };
        if instance.state == State::Pending
            && now - instance.active_at >= rule.config.for_duration.as_secs_f64()
        {
            instance.state = State::Firing;
            instance.fired_at = Some(now);
            if cooling || muted(instance) {
                instance.held_back = true;
            } else {
                instance.last_notified_at = Some(now);
                events.push(event(rule, key, instance, Transition::Fired, now));
            }
        } else if instance.state == State::Firing && instance.held_back {
            if !cooling && !muted(instance) {
                instance.held_back = false;
                instance.last_notified_at = Some(now);
                events.push(event(rule, key, instance, Transition::Fired, now));
            }
        } else if instance.state == State::Firing {
            let repeat = rule.config.repeat_interval.as_secs_f64();
            if severity != previous_severity || instance.unsent_change {
                // A silence holds a severity change back until it ends; an
                // acknowledgement ends with it (a new episode).
                if muted(instance) {
                    instance.unsent_change = true;
                } else {
                    instance.unsent_change = false;
                    instance.last_notified_at = Some(now);
                    events.push(event(rule, key, instance, Transition::SeverityChanged, now));
                }
            } else if repeat > 0.0
                && !cooling
                && instance.last_notified_at.is_some_and(|t| now - t >= repeat)
                && !muted(instance)
            {
                instance.last_notified_at = Some(now);
                events.push(event(rule, key, instance, Transition::Repeated, now));
            }
        }
    }

    /// The series' value at `now`, and for forecasts the crossing time.
    fn value_of(&self, series: &Series, now: f64) -> Option<(f64, Option<f64>)> {
        if let Some(predict) = &self.rule.config.predict {
            let start = now - predict.window.as_secs_f64();
            let samples = series
                .samples
                .iter()
                .copied()
                .filter(|(t, _)| *t >= start && *t <= now);
            let line = forecast::fit(samples, now)?;
            let predicted = line.at(now + predict.horizon.as_secs_f64());
            let crossing = self
                .rule
                .severity_for(predicted)
                .and_then(|(_, threshold)| line.crossing_time(threshold));
            return Some((predicted, crossing));
        }
        let window = self.rule.window.as_secs_f64();
        let in_window = || {
            series
                .samples
                .iter()
                .copied()
                .filter(move |(t, _)| *t > now - window && *t <= now)
        };
        let value = match self.rule.value {
            ValueFunction::Last => {
                let (t, v) = *series.samples.iter().rev().find(|(t, _)| *t <= now)?;
                (now - t <= LOOKBACK.as_secs_f64()).then_some(v)?
            }
            ValueFunction::Avg => {
                let (n, sum) = in_window().fold((0usize, 0.0), |(n, s), (_, v)| (n + 1, s + v));
                (n > 0).then(|| sum / n as f64)?
            }
            ValueFunction::Min => in_window().map(|(_, v)| v).reduce(f64::min)?,
            ValueFunction::Max => in_window().map(|(_, v)| v).reduce(f64::max)?,
            ValueFunction::Sum => {
                let mut any = false;
                let sum = in_window()
                    .inspect(|_| any = true)
                    .map(|(_, v)| v)
                    .sum::<f64>();
                any.then_some(sum)?
            }
            ValueFunction::Count => in_window().count() as f64,
            ValueFunction::Rate => {
                let samples: Vec<(f64, f64)> = in_window().collect();
                if samples.len() < 2 {
                    return None;
                }
                // A drop means the counter restarted from zero.
                let increase: f64 = samples
                    .windows(2)
                    .map(|w| {
                        if w[1].1 >= w[0].1 {
                            w[1].1 - w[0].1
                        } else {
                            w[1].1
                        }
                    })
                    .sum();
                let span = samples[samples.len() - 1].0 - samples[0].0;
                (span > 0.0).then(|| increase / span)?
            }
        };
        Some((value, None))
    }
}

fn aggregate(how: Aggregate, values: &[f64]) -> f64 {
    match how {
        Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Aggregate::Sum => values.iter().sum(),
        Aggregate::Avg => values.iter().sum::<f64>() / values.len().max(1) as f64,
        Aggregate::Count => values.len() as f64,
    }
}

fn fingerprint(rule: &str, key: &str) -> String {
    let mut hasher = DefaultHasher::new();
    rule.hash(&mut hasher);
    key.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn template_data(instance: &Instance, value: f64) -> TemplateData<'_> {
    TemplateData {
        labels: &instance.labels,
        value,
        threshold: instance.threshold,
        severity: instance.severity.as_str(),
    }
}

/// The labels receivers see: the series' (or group's), the rule's own
/// (rendered with the firing value), `alertname` and `severity`.
fn alert_labels(rule: &Rule, instance: &Instance) -> Labels {
    let data = template_data(instance, instance.value);
    let mut labels = instance.labels.clone();
    for (k, v) in &rule.config.labels {
        labels.insert(k.clone(), render(v, &data));
    }
    labels.insert("alertname".into(), rule.config.name.clone());
    labels.insert("severity".into(), instance.severity.as_str().into());
    labels
}

fn annotations(rule: &Rule, data: &TemplateData<'_>) -> Labels {
    rule.config
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), render(v, data)))
        .collect()
}

/// The event for `transition` of `instance`. A resolved event reports the
/// value that resolved it (NaN when there was none: the series went
/// silent) and the firing value beside it; annotations are rendered with
/// the value reported, labels with the firing value, since labels name
/// the alert and must match the ones it fired with.
fn event(
    rule: &Rule,
    key: &str,
    instance: &Instance,
    transition: Transition,
    now: f64,
) -> AlertEvent {
    let resolved = transition == Transition::Resolved;
    let value = if resolved {
        instance
            .latest
            .filter(|(at, _)| *at == now)
            .map_or(f64::NAN, |(_, value)| value)
    } else {
        instance.value
    };
    let labels = alert_labels(rule, instance);
    let annotations = annotations(rule, &template_data(instance, value));
    AlertEvent {
        rule: rule.config.name.clone(),
        status: if resolved {
            Status::Resolved
        } else {
            Status::Firing
        },
        transition,
        severity: instance.severity,
        labels,
        annotations,
        value,
        firing_value: resolved.then_some(instance.value),
        threshold: instance.threshold,
        starts_at: instance.active_at,
        ends_at: resolved.then_some(now),
        predicted_crossing_at: instance.predicted_crossing_at,
        fingerprint: fingerprint(&rule.config.name, key),
        emitted_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::rule::RuleConfig;

    fn engine(yaml: &str) -> Engine {
        Engine::new(vec![
            yaml_serde::from_str::<RuleConfig>(yaml)
                .unwrap()
                .compile()
                .unwrap(),
        ])
    }

    fn labels(host: &str) -> Labels {
        [("host".to_string(), host.to_string())]
            .into_iter()
            .collect()
    }

    fn transitions(events: &[AlertEvent]) -> Vec<(&str, Transition)> {
        events
            .iter()
            .map(|e| (e.severity.as_str(), e.transition))
            .collect()
    }

    #[test]
    fn fires_only_after_for_duration_and_resolves() {
        let mut e = engine("{ name: High, metric: cpu, op: '>', warning: 0.7, for: 2m }");
        let mut fired_at = None;
        for step in 0..10 {
            let t = step as f64 * 30.0;
            let value = if step < 8 { 0.8 } else { 0.1 };
            e.observe("cpu", &labels("a"), t, value);
            for ev in e.evaluate(t) {
                if ev.transition == Transition::Fired {
                    fired_at = Some(t);
                }
                if ev.transition == Transition::Resolved {
                    assert_eq!(t, 240.0);
                    assert_eq!(ev.ends_at, Some(240.0));
                }
            }
        }
        assert_eq!(
            fired_at,
            Some(120.0),
            "pending at 0, firing once 2m have passed"
        );
    }

    #[test]
    fn pending_that_stops_holding_never_notifies() {
        let mut e = engine("{ name: High, metric: cpu, op: '>', warning: 0.7, for: 2m }");
        let mut all = Vec::new();
        for (t, v) in [(0.0, 0.9), (60.0, 0.9), (90.0, 0.1), (120.0, 0.9)] {
            e.observe("cpu", &labels("a"), t, v);
            all.extend(e.evaluate(t));
        }
        assert!(all.is_empty(), "{all:?}");
    }

    #[test]
    fn severity_changes_and_hysteresis_hold_until_resolve_threshold() {
        let mut e = engine(
            "{ name: High, metric: cpu, op: '>', warning: 0.7, critical: 0.9, resolve: 0.5 }",
        );
        let mut seen = Vec::new();
        for (t, v) in [(0.0, 0.75), (30.0, 0.95), (60.0, 0.6), (90.0, 0.4)] {
            e.observe("cpu", &labels("a"), t, v);
            seen.extend(e.evaluate(t));
        }
        assert_eq!(
            transitions(&seen),
            vec![
                ("warning", Transition::Fired),
                ("critical", Transition::SeverityChanged),
                ("critical", Transition::Resolved)
            ]
        );
        assert_eq!(
            seen[2].emitted_at, 90.0,
            "0.6 is above resolve: still firing at 60"
        );
    }

    #[test]
    fn keep_firing_for_delays_resolution() {
        let mut e =
            engine("{ name: High, metric: cpu, op: '>', warning: 0.7, keep_firing_for: 1m }");
        let mut resolved_at = None;
        for step in 0..8 {
            let t = step as f64 * 20.0;
            e.observe("cpu", &labels("a"), t, if step < 2 { 0.9 } else { 0.1 });
            if e.evaluate(t)
                .iter()
                .any(|ev| ev.transition == Transition::Resolved)
            {
                resolved_at = Some(t);
            }
        }
        assert_eq!(
            resolved_at,
            Some(100.0),
            "inactive since 40, resolved 60 s later"
        );
    }

    #[test]
    fn a_resolve_reports_the_value_that_resolved_it() {
        let mut e = engine(
            "{ name: Hot, metric: t, op: '>', critical: 90, annotations: { summary: 'at {{ $value }}' } }",
        );
        e.observe("t", &labels("a"), 0.0, 95.0);
        let fired = e.evaluate(0.0);
        assert_eq!((fired[0].value, fired[0].firing_value), (95.0, None));
        e.observe("t", &labels("a"), 60.0, 50.0);
        let resolved = e.evaluate(60.0);
        assert_eq!(resolved[0].transition, Transition::Resolved);
        assert_eq!(resolved[0].value, 50.0);
        assert_eq!(resolved[0].firing_value, Some(95.0));
        assert_eq!(resolved[0].annotations["summary"], "at 50");

        // A series that goes silent resolves with no value, not the old one.
        e.observe("t", &labels("b"), 100.0, 97.0);
        assert_eq!(e.evaluate(100.0).len(), 1);
        let silent = e.evaluate(100.0 + LOOKBACK.as_secs_f64() + 1.0);
        assert_eq!(silent[0].transition, Transition::Resolved);
        assert!(silent[0].value.is_nan());
        assert_eq!(silent[0].firing_value, Some(97.0));
    }

    /// Evaluates every minute for `minutes`, the value at each minute from
    /// `value`; returns (transition, severity, minute) of every event.
    fn run_minutes(
        e: &mut Engine,
        minutes: std::ops::Range<u32>,
        value: impl Fn(u32) -> f64,
    ) -> Vec<(Transition, &'static str, u32)> {
        let mut seen = Vec::new();
        for minute in minutes {
            let t = f64::from(minute) * 60.0;
            e.observe("m", &labels("a"), t, value(minute));
            for ev in e.evaluate(t) {
                seen.push((ev.transition, ev.severity.as_str(), minute));
            }
        }
        seen
    }

    fn flapping(minute: u32) -> f64 {
        if minute.is_multiple_of(2) { 15.0 } else { 1.0 }
    }

    #[test]
    fn cooldown_holds_back_the_refires_of_a_flapping_alert() {
        use Transition::{Fired, Resolved};
        let rule = "{ name: Flap, metric: m, op: '>', warning: 10 }";
        let without = run_minutes(&mut engine(rule), 0..30, flapping);
        assert_eq!(
            without.len(),
            30,
            "a notification every minute: {without:?}"
        );

        let cooled = "{ name: Flap, metric: m, op: '>', warning: 10, cooldown: 10m }";
        assert_eq!(
            run_minutes(&mut engine(cooled), 0..30, flapping),
            vec![
                (Fired, "warning", 0),
                (Resolved, "warning", 1),
                // Fires at 2..8 are within 10m of the notification at 0.
                (Fired, "warning", 10),
                (Resolved, "warning", 11),
                (Fired, "warning", 20),
                (Resolved, "warning", 21),
            ]
        );
    }

    #[test]
    fn a_held_back_fire_goes_out_when_the_cooldown_ends_if_still_firing() {
        use Transition::{Fired, Resolved};
        let mut e = engine("{ name: Flap, metric: m, op: '>', warning: 10, cooldown: 10m }");
        // Flaps, then stays high from minute 4 on.
        let seen = run_minutes(&mut e, 0..40, |m| if m < 4 { flapping(m) } else { 15.0 });
        assert_eq!(
            seen,
            vec![
                (Fired, "warning", 0),
                (Resolved, "warning", 1),
                (Fired, "warning", 10)
            ]
        );
    }

    #[test]
    fn cooldown_lets_severity_changes_through_and_stretches_repeats() {
        use Transition::{Fired, Repeated, SeverityChanged};
        let mut e = engine(
            "{ name: Hot, metric: m, op: '>', warning: 10, critical: 20, repeat_interval: 1m, cooldown: 10m }",
        );
        let seen = run_minutes(&mut e, 0..25, |m| if m == 0 { 15.0 } else { 25.0 });
        assert_eq!(
            seen,
            vec![
                (Fired, "warning", 0),
                (SeverityChanged, "critical", 1),
                // Repeats are due every minute, but 10m from the last one.
                (Repeated, "critical", 11),
                (Repeated, "critical", 21),
            ]
        );
    }

    #[test]
    fn cooldown_survives_a_restart() {
        let rule = "{ name: Flap, metric: m, op: '>', warning: 10, cooldown: 1h }";
        let mut before = engine(rule);
        let seen = run_minutes(&mut before, 0..2, flapping);
        assert_eq!(seen.len(), 2, "fired and resolved: {seen:?}");
        let saved = serde_json::to_string(&before.snapshot()).unwrap();
        let mut after = engine(rule);
        after.restore(serde_json::from_str(&saved).unwrap());
        assert_eq!(
            run_minutes(&mut after, 2..30, flapping),
            vec![],
            "every re-fire is within the hour"
        );
    }

    #[test]
    fn absent_series_fires() {
        let mut e = engine("{ name: Down, metric: up, absent_for: 1m }");
        e.observe("up", &labels("a"), 0.0, 1.0);
        assert!(e.evaluate(30.0).is_empty());
        assert!(
            e.evaluate(60.0).is_empty(),
            "a sample exactly 1m old still counts"
        );
        let events = e.evaluate(61.0);
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].labels.get("alert.reason").map(String::as_str),
            Some("absent")
        );
        assert_eq!(events[0].labels.get("host").map(String::as_str), Some("a"));
        e.observe("up", &labels("a"), 90.0, 1.0);
        let back = e.evaluate(90.0);
        assert_eq!(back[0].transition, Transition::Resolved);
        assert_eq!(back[0].value, 1.0, "the value that ended the absence");
    }

    #[test]
    fn forecast_fires_with_the_predicted_crossing_time() {
        let mut e = engine(
            "{ name: DiskFull, metric: disk.used, op: '>=', critical: 100, predict: { window: 1h, horizon: 3d } }",
        );
        // 1 % a day from 97.5 %: full 2.5 days after t = 0.
        let per_second = 1.0 / 86400.0;
        let full_at = 2.5 * 86400.0;
        let mut fired = Vec::new();
        for step in 0..=60 {
            let t = step as f64 * 60.0;
            e.observe("disk.used", &labels("a"), t, 97.5 + per_second * t);
            fired.extend(
                e.evaluate(t)
                    .into_iter()
                    .filter(|e| e.transition == Transition::Fired),
            );
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].emitted_at, 60.0, "needs two samples to fit a line");
        let crossing = fired[0].predicted_crossing_at.unwrap();
        assert!((crossing - full_at).abs() < 1.0, "{crossing} vs {full_at}");
    }

    #[test]
    fn group_by_aggregates_series_into_one_alert() {
        let mut e = engine(
            "{ name: Errors, metric: errors, op: '>', warning: 10, group_by: [service], aggregate: sum }",
        );
        for (host, value) in [("a", 6.0), ("b", 6.0)] {
            let mut l = labels(host);
            l.insert("service".into(), "api".into());
            e.observe("errors", &l, 0.0, value);
        }
        let events = e.evaluate(0.0);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].value, 12.0);
        assert_eq!(
            events[0].labels.get("service").map(String::as_str),
            Some("api")
        );
        assert!(!events[0].labels.contains_key("host"));
    }

    #[test]
    fn rate_handles_counter_resets() {
        let mut e =
            engine("{ name: R, metric: c, op: '>', warning: 0.5, value: rate, window: 5m }");
        for (t, v) in [(0.0, 0.0), (60.0, 60.0), (120.0, 10.0), (180.0, 70.0)] {
            e.observe("c", &labels("a"), t, v);
        }
        let events = e.evaluate(180.0);
        assert!((events[0].value - 130.0 / 180.0).abs() < 1e-9);
    }

    #[test]
    fn anomalous_fires_above_the_learned_threshold_and_resolves_below_it() {
        let mut e = engine("{ name: Odd, metric: cpu, op: anomalous, sensitivity: high }");
        let mut l = labels("a");
        l.insert("anomaly.metric".into(), "cpu".into());
        // 1,000 scores, one in ten at 0.5: the learned 0.99 quantile is 0.505.
        for i in 0..1000u32 {
            let t = f64::from(i);
            e.observe("anomaly.score", &l, t, if i % 10 == 0 { 0.5 } else { 0.05 });
        }
        // Scores of another metric are not this rule's.
        let mut other = labels("a");
        other.insert("anomaly.metric".into(), "memory".into());
        e.observe("anomaly.score", &other, 1000.0, 1.0);
        assert!(
            e.evaluate(1000.0).is_empty(),
            "0.5 is usual for this series"
        );
        e.observe("anomaly.score", &l, 1001.0, 0.9);
        let fired = e.evaluate(1001.0);
        assert_eq!(transitions(&fired), vec![("warning", Transition::Fired)]);
        assert!((fired[0].threshold - 0.505).abs() < 1e-9, "{fired:?}");
        // The high score leaves the 5m window: resolved.
        e.observe("anomaly.score", &l, 1400.0, 0.05);
        let resolved = e.evaluate(1400.0);
        assert_eq!(
            transitions(&resolved),
            vec![("warning", Transition::Resolved)]
        );
    }

    #[test]
    fn snapshot_and_restore_keep_for_progress() {
        let rule = "{ name: High, metric: cpu, op: '>', warning: 0.7, for: 2m }";
        let mut before = engine(rule);
        before.observe("cpu", &labels("a"), 0.0, 0.9);
        assert!(before.evaluate(0.0).is_empty());
        let saved = serde_json::to_string(&before.snapshot()).unwrap();
        let mut after = engine(rule);
        after.restore(serde_json::from_str(&saved).unwrap());
        after.observe("cpu", &labels("a"), 120.0, 0.9);
        let events = after.evaluate(120.0);
        assert_eq!(
            events.len(),
            1,
            "the pending time before the restart counts"
        );
        assert_eq!(events[0].starts_at, 0.0);
    }
}
