//! The per-series anomaly detector: a learned baseline (rolling mean and
//! deviation, EWMA, or rolling median and MAD; optionally per time of day
//! or week), a z-score against it, and a score in [0, 1].
//!
//! Score: the z-score becomes a raw score r = |z| / (|z| + raw_scale) (0 at
//! the baseline, 0.5 at |z| = raw_scale, towards 1 beyond). Raw scores go
//! through the anomaly likelihood (how unusual the last few raw scores are
//! for this series, a Gaussian tail probability) and its log transform, so
//! a series that is always noisy settles down and a change of behaviour
//! stands out: `score` = log-likelihood, in [0, 1]. A value beyond
//! everything seen so far (by more than `spatial_tolerance` of the range
//! seen) scores 1 at once. After an alarm, scores are halved for
//! `refractory_points` so one incident raises one alarm.
//!
//! Seasonality: with `seasonal` set, each point is also predicted by the
//! median of the same phase (e.g. the same 5 minutes of the day) over the
//! last `periods` periods; the detector uses that seasonal residual only
//! while it predicts the series markedly better than the plain baseline,
//! so series without the cycle are not hurt by it.

use serde::{Deserialize, Serialize};

use super::likelihood::{Likelihood, log_likelihood};
use super::robust::RollingMedian;
use super::rolling::RollingStats;
use super::seasonal::Seasonal;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Method {
    /// Mean and standard deviation of the last `window` points.
    RollingZ { window: usize },
    /// Exponentially weighted mean and variance (`alpha` per point).
    Ewma { alpha: f64 },
    /// Median and MAD of the last `window` points (robust to outliers).
    Robust { window: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Above,
    Below,
    #[default]
    Both,
}

/// A seasonal baseline: the series is compared with its own past values at
/// the same phase (for example the same hour of the day).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Seasonality {
    pub period_seconds: u64,
    pub buckets: usize,
    /// Past periods remembered per bucket.
    pub periods: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorConfig {
    pub method: Method,
    pub seasonal: Option<Seasonality>,
    /// Points seen before any score other than 0.
    pub warmup_points: usize,
    /// Deviation floor, absolute: flat series do not explode.
    pub min_deviation: f64,
    /// Deviation floor relative to the baseline's level.
    pub min_relative_deviation: f64,
    pub direction: Direction,
    /// Scores at or above this are anomalous.
    pub threshold: f64,
    pub likelihood_long_window: usize,
    pub likelihood_short_window: usize,
    /// 0 turns the "beyond everything seen" rule off.
    pub spatial_tolerance: f64,
    /// Raw score |z| / (|z| + raw_scale): 0.5 at |z| = raw_scale.
    pub raw_scale: f64,
    /// After a score at or above the threshold, later ones are halved for
    /// this many points: one incident, one alarm.
    pub refractory_points: usize,
}

impl Default for DetectorConfig {
    /// One configuration for every series: the one that scores 60.2 on the
    /// NAB subset in ../shared/nab (README, "Anomaly detection quality").
    fn default() -> Self {
        DetectorConfig {
            method: Method::Ewma { alpha: 0.01 },
            seasonal: Some(Seasonality {
                period_seconds: 86400,
                buckets: 288,
                periods: 3,
            }),
            warmup_points: 150,
            min_deviation: 1e-9,
            min_relative_deviation: 0.001,
            direction: Direction::Both,
            threshold: 0.4,
            likelihood_long_window: 2000,
            likelihood_short_window: 5,
            spatial_tolerance: 0.01,
            raw_scale: 3.0,
            refractory_points: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub zscore: f64,
    pub score: f64,
    pub expected: f64,
    pub is_anomalous: bool,
}

#[derive(Debug, Clone)]
enum Baseline {
    Rolling(RollingStats),
    Ewma {
        mean: f64,
        variance: f64,
        alpha: f64,
        started: bool,
    },
    Robust(RollingMedian),
}

impl Baseline {
    fn new(method: Method) -> Self {
        match method {
            Method::RollingZ { window } => Baseline::Rolling(RollingStats::new(window)),
            Method::Ewma { alpha } => Baseline::Ewma {
                mean: 0.0,
                variance: 0.0,
                alpha: alpha.clamp(1e-6, 1.0),
                started: false,
            },
            Method::Robust { window } => Baseline::Robust(RollingMedian::new(window)),
        }
    }

    /// (centre, scale) before the new point is added.
    fn estimate(&self) -> (f64, f64) {
        match self {
            Baseline::Rolling(r) => (r.mean(), r.std_dev()),
            Baseline::Ewma { mean, variance, .. } => (*mean, variance.sqrt()),
            Baseline::Robust(m) => (m.median(), 1.4826 * m.mad()),
        }
    }

    fn push(&mut self, value: f64) {
        match self {
            Baseline::Rolling(r) => r.push(value),
            Baseline::Ewma {
                mean,
                variance,
                alpha,
                started,
            } => {
                if !*started {
                    *mean = value;
                    *started = true;
                } else {
                    // West's incremental EWMA variance.
                    let diff = value - *mean;
                    let increment = *alpha * diff;
                    *mean += increment;
                    *variance = (1.0 - *alpha) * (*variance + diff * increment);
                }
            }
            Baseline::Robust(m) => m.push(value),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    /// Baseline of residuals from the seasonal prediction.
    baseline: Baseline,
    /// Baseline of the values themselves.
    plain: Baseline,
    seasonal: Option<Seasonal>,
    likelihood: Likelihood,
    seen: usize,
    min: f64,
    max: f64,
    since_alarm: usize,
    /// Mean squared error of the seasonal and the plain prediction: the
    /// seasonal baseline is used only where it predicts this series better.
    seasonal_error: f64,
    plain_error: f64,
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        let seasonal = config.seasonal.map(|s| Seasonal::new(s.buckets, s.periods));
        Detector {
            baseline: Baseline::new(config.method),
            plain: Baseline::new(config.method),
            likelihood: Likelihood::new(
                config.likelihood_long_window,
                config.likelihood_short_window,
                config.warmup_points,
            ),
            seasonal,
            seen: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            since_alarm: usize::MAX,
            seasonal_error: 0.0,
            plain_error: 0.0,
            config,
        }
    }

    fn season_bucket(&self, timestamp_seconds: i64) -> Option<usize> {
        let s = self.config.seasonal?;
        let phase = timestamp_seconds.rem_euclid(s.period_seconds.max(1) as i64) as u64;
        Some(((phase * s.buckets as u64) / s.period_seconds.max(1)) as usize)
    }

    /// Scores one point, then learns from it.
    pub fn observe(&mut self, timestamp_seconds: i64, value: f64) -> Observation {
        if !value.is_finite() {
            return Observation {
                zscore: 0.0,
                score: 0.0,
                expected: f64::NAN,
                is_anomalous: false,
            };
        }
        let bucket = self.season_bucket(timestamp_seconds);
        // Seasonal: compare the residual against this phase's usual value.
        let seasonal_prediction = bucket.and_then(|b| {
            let m = self.seasonal.as_ref()?;
            (m.len(b) >= 2).then(|| m.median(b))
        });
        let (plain_centre, _) = self.plain.estimate();
        if let Some(prediction) = seasonal_prediction {
            // Slow averages (about a week of points) of squared errors.
            let rate = 1.0 / 2000.0;
            self.seasonal_error += rate * ((value - prediction).powi(2) - self.seasonal_error);
            self.plain_error += rate * ((value - plain_centre).powi(2) - self.plain_error);
        }
        let seasonal_level =
            seasonal_prediction.filter(|_| self.seasonal_error < 0.8 * self.plain_error);
        let residual = value - seasonal_level.unwrap_or(0.0);
        let (centre, scale) = if seasonal_level.is_some() {
            self.baseline.estimate()
        } else {
            self.plain.estimate()
        };
        let level = seasonal_level.map_or(centre, |l| l + centre);
        let floor = self
            .config
            .min_deviation
            .max(self.config.min_relative_deviation * level.abs());
        let scale = scale.max(floor);
        let z = (residual - centre) / scale;
        let directed = match self.config.direction {
            Direction::Above => z.max(0.0),
            Direction::Below => (-z).max(0.0),
            Direction::Both => z.abs(),
        };
        let raw = directed / (directed + self.config.raw_scale.max(f64::EPSILON));
        let likelihood = self.likelihood.update(raw.clamp(0.0, 1.0));
        let warm = self.seen >= self.config.warmup_points;
        let mut score = if warm {
            log_likelihood(likelihood)
        } else {
            0.0
        };
        if warm && self.config.spatial_tolerance > 0.0 {
            let tolerance = self.config.spatial_tolerance * (self.max - self.min);
            let beyond = match self.config.direction {
                Direction::Above => value > self.max + tolerance,
                Direction::Below => value < self.min - tolerance,
                Direction::Both => value > self.max + tolerance || value < self.min - tolerance,
            };
            if beyond {
                score = 1.0;
            }
        }
        if score >= self.config.threshold {
            if self.since_alarm < self.config.refractory_points {
                score *= 0.5;
            } else {
                self.since_alarm = 0;
            }
        }
        self.since_alarm = self.since_alarm.saturating_add(1);
        self.baseline
            .push(value - seasonal_prediction.unwrap_or(0.0));
        self.plain.push(value);
        if let (Some(b), Some(seasonal)) = (bucket, self.seasonal.as_mut()) {
            seasonal.push(b, value);
        }
        self.seen += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        Observation {
            zscore: z,
            score,
            expected: level,
            is_anomalous: score >= self.config.threshold,
        }
    }
}

/// Turns per-point anomalies into incidents: one start when the score
/// first crosses the threshold, one end when it has stayed below for
/// `quiet_points` points.
#[derive(Debug, Clone, Default)]
pub struct IncidentTracker {
    quiet_points: usize,
    open: Option<Incident>,
    below_for: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub peak_score: f64,
    pub peak_value: f64,
    pub expected: f64,
    pub zscore: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum IncidentChange {
    Started(Incident),
    Ended(Incident),
}

impl IncidentTracker {
    pub fn new(quiet_points: usize) -> Self {
        IncidentTracker {
            quiet_points: quiet_points.max(1),
            open: None,
            below_for: 0,
        }
    }

    pub fn update(
        &mut self,
        timestamp_seconds: i64,
        value: f64,
        observation: &Observation,
    ) -> Option<IncidentChange> {
        match &mut self.open {
            None if observation.is_anomalous => {
                let incident = Incident {
                    started_at: timestamp_seconds,
                    ended_at: None,
                    peak_score: observation.score,
                    peak_value: value,
                    expected: observation.expected,
                    zscore: observation.zscore,
                };
                self.open = Some(incident.clone());
                self.below_for = 0;
                Some(IncidentChange::Started(incident))
            }
            None => None,
            Some(incident) => {
                if observation.is_anomalous {
                    self.below_for = 0;
                    if observation.score > incident.peak_score {
                        incident.peak_score = observation.score;
                        incident.peak_value = value;
                        incident.zscore = observation.zscore;
                    }
                    return None;
                }
                self.below_for += 1;
                if self.below_for < self.quiet_points {
                    return None;
                }
                let mut ended = self.open.take()?;
                ended.ended_at = Some(timestamp_seconds);
                Some(IncidentChange::Ended(ended))
            }
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(i: usize) -> f64 {
        10.0 + ((i * 7919) % 13) as f64 * 0.1
    }

    #[test]
    fn a_step_change_scores_high_and_a_steady_series_does_not() {
        let mut d = Detector::new(DetectorConfig::default());
        let mut max_before = 0.0f64;
        for i in 0..1000 {
            max_before = max_before.max(d.observe(i as i64 * 60, noisy(i)).score);
        }
        assert!(max_before < 0.5, "steady noise scored {max_before}");
        let jump = d.observe(1000 * 60, 30.0);
        assert_eq!(jump.score, 1.0, "beyond anything seen");
        assert!(jump.zscore > 10.0);
    }

    #[test]
    fn warmup_and_flat_series() {
        let mut d = Detector::new(DetectorConfig::default());
        for i in 0..149 {
            assert_eq!(d.observe(i, 5.0).score, 0.0, "warm-up");
        }
        for i in 149..2000 {
            let o = d.observe(i, 5.0);
            assert!(
                o.score < 0.5,
                "a flat series stays quiet, got {} at {i}",
                o.score
            );
            assert!(o.zscore.is_finite());
        }
    }

    #[test]
    fn direction_above_ignores_drops() {
        let config = DetectorConfig {
            direction: Direction::Above,
            spatial_tolerance: 0.0,
            ..DetectorConfig::default()
        };
        let mut d = Detector::new(config);
        for i in 0..500 {
            d.observe(i, noisy(i as usize));
        }
        let drop = d.observe(500, -100.0);
        assert_eq!(drop.score, 0.0_f64.max(drop.score));
        assert!(drop.score < 0.5, "{drop:?}");
    }

    #[test]
    fn incidents_open_once_and_close_after_quiet_points() {
        let mut tracker = IncidentTracker::new(3);
        let hot = Observation {
            zscore: 5.0,
            score: 0.9,
            expected: 1.0,
            is_anomalous: true,
        };
        let cold = Observation {
            zscore: 0.0,
            score: 0.1,
            expected: 1.0,
            is_anomalous: false,
        };
        assert!(matches!(
            tracker.update(1, 9.0, &hot),
            Some(IncidentChange::Started(_))
        ));
        assert_eq!(tracker.update(2, 9.0, &hot), None);
        assert_eq!(tracker.update(3, 1.0, &cold), None);
        assert_eq!(tracker.update(4, 1.0, &cold), None);
        match tracker.update(5, 1.0, &cold) {
            Some(IncidentChange::Ended(incident)) => {
                assert_eq!((incident.started_at, incident.ended_at), (1, Some(5)))
            }
            other => panic!("expected the end, got {other:?}"),
        }
    }
}
