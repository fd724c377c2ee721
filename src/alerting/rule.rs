//! Alert rules: their YAML form, validation with paths, and the compiled
//! form the engine evaluates.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::matcher::Matcher;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The OTLP log severity number of an alert event of this severity.
    pub fn severity_number(self) -> i32 {
        match self {
            Severity::Info => 9,
            Severity::Warning => 13,
            Severity::Error => 17,
            Severity::Critical => 21,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Comparison {
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
    #[serde(rename = "==")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    /// The series' anomaly score (`anomaly.score` from the `anomaly`
    /// connector) at or above its learned threshold.
    #[serde(rename = "anomalous")]
    Anomalous,
}

/// How readily `op: anomalous` fires: the quantile of the series' own
/// score history that is its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Sensitivity {
    Named(SensitivityName),
    /// The quantile itself, in [0.5, 1).
    Quantile(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensitivityName {
    Low,
    Medium,
    High,
}

impl Sensitivity {
    pub fn quantile(self) -> f64 {
        match self {
            Sensitivity::Named(SensitivityName::Low) => 0.9999,
            Sensitivity::Named(SensitivityName::Medium) => 0.999,
            Sensitivity::Named(SensitivityName::High) => 0.99,
            Sensitivity::Quantile(q) => q,
        }
    }
}

/// The metric `op: anomalous` reads, with `anomaly.metric` naming the
/// scored one.
pub const ANOMALY_SCORE_METRIC: &str = "anomaly.score";

impl Comparison {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Greater => value > threshold,
            Comparison::GreaterOrEqual => value >= threshold,
            Comparison::Less => value < threshold,
            Comparison::LessOrEqual => value <= threshold,
            Comparison::Equal => value == threshold,
            Comparison::NotEqual => value != threshold,
            Comparison::Anomalous => value >= threshold,
        }
    }

    fn rising(self) -> Option<bool> {
        match self {
            Comparison::Greater | Comparison::GreaterOrEqual | Comparison::Anomalous => Some(true),
            Comparison::Less | Comparison::LessOrEqual => Some(false),
            Comparison::Equal | Comparison::NotEqual => None,
        }
    }
}

/// How a series' samples become the value compared with the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueFunction {
    /// The latest sample, if younger than the 5-minute lookback.
    #[default]
    Last,
    Avg,
    Min,
    Max,
    Sum,
    Count,
    /// Per-second increase of a counter over the window, across resets.
    Rate,
}

/// How series in one group combine when `group_by` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    #[default]
    Max,
    Min,
    Sum,
    Avg,
    Count,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictConfig {
    /// Samples to fit the line to.
    #[serde(with = "crate::config::duration")]
    pub window: Duration,
    /// Fire when the line crosses the threshold within this much time.
    #[serde(with = "crate::config::duration")]
    pub horizon: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub metric: String,
    #[serde(default)]
    pub matchers: Vec<String>,
    #[serde(default)]
    pub value: ValueFunction,
    #[serde(default, with = "crate::config::duration::option")]
    pub window: Option<Duration>,
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    #[serde(default)]
    pub aggregate: Aggregate,
    pub op: Option<Comparison>,
    /// For `op: anomalous`: low, medium (default), high, or a quantile.
    pub sensitivity: Option<Sensitivity>,
    pub info: Option<f64>,
    pub warning: Option<f64>,
    pub error: Option<f64>,
    pub critical: Option<f64>,
    /// Hysteresis: once firing, the alert resolves only when the value
    /// passes this threshold (below it for `>`, above it for `<`).
    pub resolve: Option<f64>,
    #[serde(default, rename = "for", with = "crate::config::duration")]
    pub for_duration: Duration,
    #[serde(default, with = "crate::config::duration")]
    pub keep_firing_for: Duration,
    /// Re-notify while firing this often; 0 never re-notifies.
    #[serde(default = "default_repeat", with = "crate::config::duration")]
    pub repeat_interval: Duration,
    /// No fire or repeat notification of an alert within this long of its
    /// last notification, even across resolve and fire (a flapping alert);
    /// a fire held back goes out when the cooldown ends if still firing.
    /// Severity changes and the resolve of a notified fire always go out.
    /// 0 is no cooldown.
    #[serde(default, with = "crate::config::duration")]
    pub cooldown: Duration,
    /// Fire when a series (or, with none seen, the rule) gets no data for this long.
    #[serde(default, with = "crate::config::duration::option")]
    pub absent_for: Option<Duration>,
    pub predict: Option<PredictConfig>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn default_repeat() -> Duration {
    Duration::from_secs(4 * 3600)
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub config: RuleConfig,
    pub matchers: Vec<Matcher>,
    pub comparison: Comparison,
    /// Thresholds by severity, lowest severity first.
    pub thresholds: Vec<(Severity, f64)>,
    pub window: Duration,
    /// How samples become the value: `max` over the window for
    /// `op: anomalous` unless another is asked for.
    pub value: ValueFunction,
    /// The metric whose samples the rule reads.
    pub source_metric: String,
    /// For `op: anomalous`: the quantile of the learned threshold.
    pub quantile: Option<f64>,
}

/// The Prometheus lookback: a `last` value older than this is stale.
pub const LOOKBACK: Duration = Duration::from_secs(300);

impl RuleConfig {
    /// Compiles the rule, or lists every problem as (field, message).
    pub fn compile(&self) -> Result<Rule, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push(("name", "the rule name is empty".to_string()));
        }
        let mut matchers = Vec::new();
        for text in &self.matchers {
            match Matcher::parse(text) {
                Ok(m) => matchers.push(m),
                Err(e) => errors.push(("matchers", e)),
            }
        }
        let anomalous = self.op == Some(Comparison::Anomalous);
        let mut thresholds: Vec<(Severity, f64)> = [
            (Severity::Info, self.info),
            (Severity::Warning, self.warning),
            (Severity::Error, self.error),
            (Severity::Critical, self.critical),
        ]
        .into_iter()
        .filter_map(|(s, t)| Some((s, t?)))
        .collect();
        let comparison = match self.op {
            Some(op) => op,
            None if thresholds.is_empty() && self.absent_for.is_some() => Comparison::Greater,
            None => {
                errors.push((
                    "op",
                    "missing `op`: expected one of >, >=, <, <=, ==, !=, anomalous".to_string(),
                ));
                Comparison::Greater
            }
        };
        let quantile = if anomalous {
            let quantile = self.sensitivity.map_or(0.999, Sensitivity::quantile);
            if !(0.5..1.0).contains(&quantile) {
                errors.push((
                    "sensitivity",
                    format!(
                        "sensitivity {quantile} is outside [0.5, 1): expected low, medium, high or a quantile like 0.999"
                    ),
                ));
            }
            for (severity, threshold) in &thresholds {
                if !(0.0..=1.0).contains(threshold) {
                    errors.push((
                        severity.as_str(),
                        format!(
                            "with `op: anomalous` the {} threshold ({threshold}) is a floor on the anomaly score, in [0, 1]",
                            severity.as_str()
                        ),
                    ));
                }
            }
            if thresholds.is_empty() {
                // The learned threshold alone decides: one severity.
                thresholds.push((Severity::Warning, 0.0));
            }
            match Matcher::parse(&format!("anomaly.metric={:?}", self.metric)) {
                Ok(m) => matchers.push(m),
                Err(e) => errors.push(("metric", e)),
            }
            Some(quantile)
        } else {
            if self.sensitivity.is_some() {
                errors.push((
                    "sensitivity",
                    "sensitivity applies to `op: anomalous` only".to_string(),
                ));
            }
            None
        };
        if anomalous && self.predict.is_some() {
            errors.push((
                "predict",
                "`op: anomalous` reads anomaly scores: it cannot forecast".to_string(),
            ));
        }
        if thresholds.is_empty() && self.absent_for.is_none() {
            errors.push((
                "warning",
                "no threshold: expected at least one of info, warning, error, critical (or absent_for)".to_string(),
            ));
        }
        for (severity, threshold) in &thresholds {
            if !threshold.is_finite() {
                errors.push((
                    severity.as_str(),
                    format!("threshold {threshold} is not a finite number"),
                ));
            }
        }
        match comparison.rising() {
            Some(rising) => {
                for pair in thresholds.windows(2) {
                    let ((low, a), (high, b)) = (pair[0], pair[1]);
                    let ordered = if rising { a < b } else { a > b };
                    if !ordered {
                        errors.push((
                            high.as_str(),
                            format!(
                                "threshold order makes no sense: with `{}` the {} threshold ({b}) must be {} the {} threshold ({a})",
                                op_text(comparison),
                                high.as_str(),
                                if rising { "above" } else { "below" },
                                low.as_str()
                            ),
                        ));
                    }
                }
                if let (Some(resolve), Some((lowest, first))) = (self.resolve, thresholds.first()) {
                    let sensible = if rising {
                        resolve < *first
                    } else {
                        resolve > *first
                    };
                    if !sensible {
                        errors.push((
                            "resolve",
                            format!(
                                "resolve threshold {resolve} must be {} the {} threshold ({first}) for hysteresis",
                                if rising { "below" } else { "above" },
                                lowest.as_str()
                            ),
                        ));
                    }
                }
            }
            None => {
                if thresholds.len() > 1 {
                    errors.push((
                        "op",
                        format!(
                            "`{}` takes one threshold, not {}",
                            op_text(comparison),
                            thresholds.len()
                        ),
                    ));
                }
                if self.resolve.is_some() {
                    errors.push((
                        "resolve",
                        format!(
                            "hysteresis needs an ordering comparison, not `{}`",
                            op_text(comparison)
                        ),
                    ));
                }
            }
        }
        // One alarm per incident: the detector publishes a high score on
        // the incident's first point, so the rule looks at the highest
        // score within the window.
        let value = if anomalous && self.value == ValueFunction::Last {
            ValueFunction::Max
        } else {
            self.value
        };
        let needs_window = !matches!(self.value, ValueFunction::Last);
        let window = match (self.window, needs_window) {
            (Some(w), _) if w.is_zero() => {
                errors.push(("window", "the window must be longer than 0".to_string()));
                LOOKBACK
            }
            (Some(w), _) => w,
            (None, true) => {
                errors.push((
                    "window",
                    "this value function needs a `window`, like 5m".to_string(),
                ));
                LOOKBACK
            }
            (None, false) => LOOKBACK,
        };
        if let Some(predict) = &self.predict {
            if predict.window.is_zero() || predict.horizon.is_zero() {
                errors.push((
                    "predict",
                    "predict needs a window and a horizon longer than 0".to_string(),
                ));
            }
            if comparison.rising().is_none() {
                errors.push((
                    "predict",
                    "a forecast needs an ordering comparison (>, >=, <, <=)".to_string(),
                ));
            }
        }
        if let Some(group_by) = &self.group_by
            && group_by.is_empty()
        {
            errors.push((
                "group_by",
                "group_by is empty: remove it for one alert per series".to_string(),
            ));
        }
        if errors.is_empty() {
            Ok(Rule {
                config: self.clone(),
                matchers,
                comparison,
                thresholds,
                window,
                value,
                source_metric: if anomalous {
                    ANOMALY_SCORE_METRIC.to_string()
                } else {
                    self.metric.clone()
                },
                quantile,
            })
        } else {
            Err(errors)
        }
    }
}

pub fn op_text(op: Comparison) -> &'static str {
    match op {
        Comparison::Greater => ">",
        Comparison::GreaterOrEqual => ">=",
        Comparison::Less => "<",
        Comparison::LessOrEqual => "<=",
        Comparison::Equal => "==",
        Comparison::NotEqual => "!=",
        Comparison::Anomalous => "anomalous",
    }
}

impl Rule {
    /// The highest severity whose threshold `value` passes.
    pub fn severity_for(&self, value: f64) -> Option<(Severity, f64)> {
        self.thresholds
            .iter()
            .rev()
            .find(|(_, threshold)| self.comparison.holds(value, *threshold))
            .copied()
    }

    /// The highest severity `value` passes when every threshold is at
    /// least `learned` (the series' learned threshold, `op: anomalous`).
    pub fn severity_for_learned(&self, value: f64, learned: f64) -> Option<(Severity, f64)> {
        self.thresholds
            .iter()
            .rev()
            .map(|(s, t)| (*s, t.max(learned)))
            .find(|(_, threshold)| self.comparison.holds(value, *threshold))
    }

    /// While firing: does `value` still hold the alert, given hysteresis?
    pub fn still_active(&self, value: f64) -> bool {
        if self.quantile.is_some() && self.config.resolve.is_none() {
            // The learned threshold, not the floor, holds it: the caller's
            // verdict already says whether it passed.
            return false;
        }
        match (self.config.resolve, self.thresholds.first()) {
            (Some(resolve), Some(_)) => match self.comparison.rising() {
                Some(true) => value > resolve,
                Some(false) => value < resolve,
                None => self.severity_for(value).is_some(),
            },
            _ => self.severity_for(value).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Result<Rule, Vec<(&'static str, String)>> {
        yaml_serde::from_str::<RuleConfig>(yaml).unwrap().compile()
    }

    #[test]
    fn severities_and_hysteresis() {
        let r = rule(
            "{ name: HighCPU, metric: cpu, op: '>', warning: 0.7, critical: 0.9, resolve: 0.6 }",
        )
        .unwrap();
        assert_eq!(r.severity_for(0.5), None);
        assert_eq!(r.severity_for(0.75), Some((Severity::Warning, 0.7)));
        assert_eq!(r.severity_for(0.95), Some((Severity::Critical, 0.9)));
        assert!(r.still_active(0.65), "above the resolve threshold");
        assert!(!r.still_active(0.55));
    }

    #[test]
    fn anomalous_reads_the_score_of_its_metric_with_a_learned_threshold() {
        let r =
            rule("{ name: A, metric: cpu, op: anomalous, sensitivity: high, for: 1m }").unwrap();
        assert_eq!(r.source_metric, "anomaly.score");
        assert_eq!(r.quantile, Some(0.99));
        assert_eq!(r.value, ValueFunction::Max);
        assert_eq!(r.thresholds, vec![(Severity::Warning, 0.0)]);
        assert_eq!(r.severity_for_learned(0.5, 0.6), None);
        assert_eq!(
            r.severity_for_learned(0.7, 0.6),
            Some((Severity::Warning, 0.6))
        );
        let r =
            rule("{ name: A, metric: cpu, op: anomalous, warning: 0.3, critical: 0.9 }").unwrap();
        assert_eq!(r.quantile, Some(0.999), "medium by default");
        assert_eq!(
            r.severity_for_learned(0.95, 0.5),
            Some((Severity::Critical, 0.9))
        );
        assert_eq!(
            r.severity_for_learned(0.45, 0.5),
            None,
            "below the learned one"
        );
    }

    #[test]
    fn rejects_nonsense() {
        let errors =
            rule("{ name: X, metric: m, op: '>', warning: 0.9, critical: 0.7 }").unwrap_err();
        assert!(
            errors[0].1.contains("threshold order makes no sense"),
            "{errors:?}"
        );
        let errors = rule("{ name: X, metric: m, op: '<', warning: 10, resolve: 5 }").unwrap_err();
        assert!(errors[0].1.contains("must be above"), "{errors:?}");
        let errors = rule("{ name: X, metric: m, op: '>', value: avg, warning: 1 }").unwrap_err();
        assert!(errors[0].1.contains("needs a `window`"), "{errors:?}");
        let errors = rule("{ name: X, metric: m, warning: 1 }").unwrap_err();
        assert!(errors[0].1.contains("missing `op`"), "{errors:?}");
        let errors =
            rule("{ name: X, metric: m, op: '>', warning: 1, sensitivity: high }").unwrap_err();
        assert!(errors[0].1.contains("`op: anomalous` only"), "{errors:?}");
        let errors = rule("{ name: X, metric: m, op: anomalous, sensitivity: 0.2 }").unwrap_err();
        assert!(errors[0].1.contains("outside [0.5, 1)"), "{errors:?}");
        let bad_op =
            yaml_serde::from_str::<RuleConfig>("{ name: X, metric: m, op: '=>', warning: 1 }")
                .unwrap_err();
        assert!(bad_op.to_string().contains("unknown variant"), "{bad_op}");
    }
}
