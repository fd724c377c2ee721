//! The per-series anomaly detector: several baselines at once, a z-score
//! against the one that predicts the series best, and a score in [0, 1].
//!
//! Baselines: the plain one (EWMA by default; rolling mean and deviation
//! or rolling median and MAD on request) and, for each cycle in `seasonal`
//! (a day and a week by default), the median of the same phase over the
//! last few periods with a baseline of the residuals from it. Each series
//! uses the seasonal prediction whose slow mean squared error is lowest
//! relative to the plain baseline's over the same points, and only while
//! it is below 0.8 of it, so series without the cycle are not hurt by it.
//!
//! Score: the z-score becomes a raw score r = |z| / (|z| + raw_scale) (0 at
//! the baseline, 0.5 at |z| = raw_scale, towards 1 beyond). Raw scores go
//! through the anomaly likelihood (how unusual the last few raw scores are
//! for this series, a Gaussian tail probability) and its log transform, so
//! a series that is always noisy settles down and a change of behaviour
//! stands out: `score` = log-likelihood, in [0, 1]. A new extreme beyond
//! everything seen scores 1 at once (`record`: by a margin of deviations
//! and at least one quantisation step, or several in a row). After an alarm, further alarms within `refractory_points` score 0
//! (one incident, one alarm) unless |z| reaches `escalation` times the
//! alarm's; the observation stays `is_anomalous`, so the incident stays open.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::baseline::Baseline;
pub use super::baseline::Method;
use super::likelihood::{Likelihood, log_likelihood};
use super::record::{Range, RecordRule};
use super::seasonal::Seasonal;

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

impl Seasonality {
    pub const DAILY: Seasonality = Seasonality {
        period_seconds: 86_400,
        buckets: 288,
        periods: 3,
    };
    pub const WEEKLY: Seasonality = Seasonality {
        period_seconds: 604_800,
        buckets: 336,
        periods: 3,
    };

    /// (bucket, period number) of a timestamp.
    fn position(&self, timestamp_seconds: i64) -> (usize, u64) {
        let period = self.period_seconds.max(1) as i64;
        let phase = timestamp_seconds.rem_euclid(period) as u64;
        let bucket = (phase * self.buckets as u64) / period as u64;
        (bucket as usize, timestamp_seconds.div_euclid(period) as u64)
    }

    /// The timestamps [start, end) that share `position`'s answer: bucket
    /// b holds the phases whose floor(phase x buckets / period) is b, i.e.
    /// from ceil(b x period / buckets) up to the next bucket's start.
    fn bucket_span(&self, (bucket, period_number): (usize, u64)) -> (i64, i64) {
        let period = u128::from(self.period_seconds.max(1));
        let buckets = (self.buckets as u128).max(1);
        let phase_start = |b: u128| ((b * period).div_ceil(buckets)) as i64;
        let b = bucket as u128;
        // An overflow (absurd periods) gives an empty span: every point
        // then takes the division, as before.
        (period_number as i64)
            .checked_mul(period as i64)
            .and_then(|start| {
                Some((
                    start.checked_add(phase_start(b))?,
                    start.checked_add(phase_start(b + 1))?,
                ))
            })
            .unwrap_or((0, 0))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectorConfig {
    pub method: Method,
    /// Seasonal baselines tried beside the plain one; each series uses the
    /// one that predicts it best, or none.
    pub seasonal: Vec<Seasonality>,
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
    /// Fraction of the range a new extreme may pass it by unnoticed; 0
    /// turns the "beyond everything seen" rule off.
    pub spatial_tolerance: f64,
    /// Deviations beyond the range that make a lone new extreme an alarm.
    pub record_margin: f64,
    /// A new extreme within this many points of the last one alarms at
    /// any size.
    pub record_cluster_points: usize,
    /// Raw score |z| / (|z| + raw_scale): 0.5 at |z| = raw_scale.
    pub raw_scale: f64,
    /// After an alarm, further alarms score 0 for this many points: one
    /// incident, one alarm.
    pub refractory_points: usize,
    /// ... unless |z| reaches this many times the alarm's (0: never).
    pub escalation: f64,
}

impl Default for DetectorConfig {
    /// One configuration for every series: the one measured on the NAB
    /// subset in ../shared/nab (README, "Anomaly detection").
    fn default() -> Self {
        DetectorConfig {
            method: Method::Ewma { alpha: 0.005 },
            seasonal: vec![Seasonality::DAILY, Seasonality::WEEKLY],
            warmup_points: 150,
            min_deviation: 1e-9,
            min_relative_deviation: 0.001,
            direction: Direction::Both,
            threshold: 0.3,
            likelihood_long_window: 2000,
            likelihood_short_window: 5,
            spatial_tolerance: 0.01,
            record_margin: 0.25,
            record_cluster_points: 10,
            raw_scale: 3.0,
            refractory_points: 100,
            escalation: 3.0,
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

/// One seasonal baseline of one series and how well it predicts it.
#[derive(Debug, Clone)]
struct SeasonalBaseline {
    memory: Seasonal,
    /// Baseline of the residuals from the seasonal prediction.
    residual: Baseline,
    /// Slow mean squared errors (about a week of five-minute points) of
    /// this prediction and of the plain baseline over the same points.
    error: f64,
    plain_error: f64,
    /// This point's prediction and (bucket, period), between scoring and
    /// learning.
    prediction: Option<f64>,
    position: (usize, u64),
    /// The timestamps [start, end) of `position`'s bucket: the position
    /// costs 64-bit divisions, and consecutive points of a series mostly
    /// fall in the same bucket (30 ten-second points in five minutes).
    span: (i64, i64),
}

/// Weight of each point in the slow prediction errors.
const ERROR_RATE: f64 = 1.0 / 2000.0;

/// The parts of `DetectorConfig` read every point, one copy shared by
/// every series cloned from the same detector (the connector clones a
/// template per new series): one cache line for all series instead of two
/// more in each series' state.
#[derive(Debug, Clone)]
struct Params {
    direction: Direction,
    warmup_points: usize,
    min_deviation: f64,
    min_relative_deviation: f64,
    threshold: f64,
    raw_scale: f64,
    refractory_points: usize,
    escalation: f64,
    record_rule: RecordRule,
    /// One per entry of `Detector::seasonal`.
    cycles: Vec<Seasonality>,
}

/// A series' state lies in one struct (seasonal baselines inline up to
/// two, the default), apart from the seasonal slots and the likelihood's
/// long window: at 10k series the state no longer fits in the caches, and
/// each separate allocation read per point was one more miss. Clone a
/// fresh detector to start many series: they share one `Params`.
#[derive(Debug, Clone)]
pub struct Detector {
    params: Arc<Params>,
    /// Baseline of the values themselves.
    plain: Baseline,
    seasonal: SmallVec<[SeasonalBaseline; 2]>,
    likelihood: Likelihood,
    range: Range,
    seen: usize,
    since_alarm: usize,
    /// |z| of the last alarm, for escalation.
    alarm_zscore: f64,
    /// The smallest change between two points so far: the quantisation
    /// step of a series of counts, tiny for a continuous one.
    step: f64,
    last_value: Option<f64>,
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        let seasonal: SmallVec<[SeasonalBaseline; 2]> = config
            .seasonal
            .iter()
            .map(|cycle| SeasonalBaseline {
                memory: Seasonal::new(cycle.buckets, cycle.periods),
                residual: Baseline::new(config.method),
                error: 0.0,
                plain_error: 0.0,
                prediction: None,
                position: (0, 0),
                span: (0, 0),
            })
            .collect();
        Detector {
            plain: Baseline::new(config.method),
            seasonal,
            likelihood: Likelihood::new(
                config.likelihood_long_window,
                config.likelihood_short_window,
                config.warmup_points,
            ),
            range: Range::default(),
            seen: 0,
            since_alarm: usize::MAX,
            alarm_zscore: 0.0,
            step: f64::INFINITY,
            last_value: None,
            params: Params {
                direction: config.direction,
                warmup_points: config.warmup_points,
                min_deviation: config.min_deviation,
                min_relative_deviation: config.min_relative_deviation,
                threshold: config.threshold,
                raw_scale: config.raw_scale,
                refractory_points: config.refractory_points,
                escalation: config.escalation,
                record_rule: RecordRule {
                    tolerance: config.spatial_tolerance,
                    margin: config.record_margin,
                    cluster_points: config.record_cluster_points,
                    direction: config.direction,
                },
                cycles: config.seasonal.clone(),
            }
            .into(),
        }
    }

    /// Heap bytes held by this series' state.
    pub fn heap_bytes(&self) -> usize {
        let spilled = if self.seasonal.spilled() {
            self.seasonal.capacity() * std::mem::size_of::<SeasonalBaseline>()
        } else {
            0
        };
        self.likelihood.heap_bytes()
            + spilled
            + self
                .seasonal
                .iter()
                .map(|s| s.memory.heap_bytes())
                .sum::<usize>()
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
        let (plain_centre, plain_scale) = self.plain.estimate();
        // The seasonal prediction that beats the plain baseline by the
        // widest ratio, if any beats it by 20 %.
        let mut chosen = None;
        let mut best_ratio = 0.8;
        let params = &*self.params;
        for ((i, s), cycle) in self.seasonal.iter_mut().enumerate().zip(&params.cycles) {
            if !(s.span.0..s.span.1).contains(&timestamp_seconds) {
                s.position = cycle.position(timestamp_seconds);
                s.span = cycle.bucket_span(s.position);
                // The median reads only past periods' slots, and only this
                // position's (current) slot changes while points stay in
                // its span: the prediction holds for the whole span.
                let (bucket, period) = s.position;
                s.prediction =
                    (s.memory.len(bucket, period) >= 2).then(|| s.memory.median(bucket, period));
            }
            if let Some(prediction) = s.prediction {
                s.error += ERROR_RATE * ((value - prediction).powi(2) - s.error);
                s.plain_error += ERROR_RATE * ((value - plain_centre).powi(2) - s.plain_error);
                if s.error < best_ratio * s.plain_error {
                    best_ratio = s.error / s.plain_error;
                    chosen = Some(i);
                }
            }
        }
        let (level, z, scale) = match chosen {
            Some(i) => {
                let s = &self.seasonal[i];
                let prediction = s.prediction.unwrap_or_default();
                let (centre, scale) = s.residual.estimate();
                let level = prediction + centre;
                let scale = scale.max(self.floor(level));
                (level, (value - level) / scale, scale)
            }
            None => {
                let scale = plain_scale.max(self.floor(plain_centre));
                (plain_centre, (value - plain_centre) / scale, scale)
            }
        };
        let directed = match self.params.direction {
            Direction::Above => z.max(0.0),
            Direction::Below => (-z).max(0.0),
            Direction::Both => z.abs(),
        };
        let raw = directed / (directed + self.params.raw_scale.max(f64::EPSILON));
        let likelihood = self.likelihood.update(raw.clamp(0.0, 1.0));
        let warm = self.seen >= self.params.warmup_points;
        let mut score = if warm {
            log_likelihood(likelihood)
        } else {
            0.0
        };
        let step = if self.step.is_finite() {
            self.step
        } else {
            0.0
        };
        if warm
            && self
                .range
                .is_alarm(&self.params.record_rule, value, scale, step, self.seen)
        {
            score = 1.0;
        }
        let is_anomalous = score >= self.params.threshold;
        if is_anomalous {
            let refractory = self.since_alarm < self.params.refractory_points;
            let escalates = self.params.escalation > 0.0
                && z.abs() >= self.params.escalation * self.alarm_zscore;
            if refractory && !escalates {
                score = 0.0;
            } else {
                self.since_alarm = 0;
                self.alarm_zscore = z.abs();
            }
        }
        self.since_alarm = self.since_alarm.saturating_add(1);
        self.plain.push(value);
        for s in &mut self.seasonal {
            s.residual.push(value - s.prediction.unwrap_or(0.0));
            let (bucket, period) = s.position;
            s.memory.push(bucket, period, value);
        }
        if let Some(last) = self.last_value
            && value != last
        {
            self.step = self.step.min((value - last).abs());
        }
        self.last_value = Some(value);
        self.seen += 1;
        self.range.extend(value);
        Observation {
            zscore: z,
            score,
            expected: level,
            is_anomalous,
        }
    }

    fn floor(&self, level: f64) -> f64 {
        self.params
            .min_deviation
            .max(self.params.min_relative_deviation * level.abs())
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
    use super::super::stationary_noise::Rng;
    use super::*;

    /// 200 points of N(100, 2) every 10 s, then `after`.
    fn noise_then(seed: u64, after: f64) -> Vec<(i64, f64)> {
        let mut rng = Rng::new(seed);
        (0..200)
            .map(|_| 100.0 + 2.0 * rng.gauss())
            .chain([after])
            .enumerate()
            .map(|(i, v)| (1_700_000_000 + i as i64 * 10, v))
            .collect()
    }

    #[test]
    fn a_bucket_span_holds_exactly_the_timestamps_of_its_position() {
        for cycle in [
            Seasonality::DAILY,
            Seasonality::WEEKLY,
            Seasonality {
                period_seconds: 1000,
                buckets: 7,
                periods: 3,
            },
            Seasonality {
                period_seconds: 5,
                buckets: 12,
                periods: 3,
            },
        ] {
            for t in (-3_000i64..3_000).chain(1_700_000_000..1_700_003_000) {
                let position = cycle.position(t);
                let (start, end) = cycle.bucket_span(position);
                assert!((start..end).contains(&t), "{cycle:?} at {t}");
                assert_eq!(cycle.position(start), position, "{cycle:?} at {t}");
                assert_eq!(cycle.position(end - 1), position, "{cycle:?} at {t}");
                assert_ne!(cycle.position(start - 1), position, "{cycle:?} at {t}");
                assert_ne!(cycle.position(end), position, "{cycle:?} at {t}");
            }
        }
    }

    #[test]
    fn a_series_state_takes_at_most_32_kib() {
        // Issue 21's budget, with every allocation made: both seasonal
        // memories and a full likelihood window (2,100 five-minute points).
        let template = Detector::new(DetectorConfig::default());
        let mut d = template.clone();
        for i in 0..2_100 {
            d.observe(i * 300, 10.0 + (i % 5) as f64);
        }
        let heap = d.heap_bytes();
        // The slots (24 bytes a bucket) and the 2,000 u16 scores are counted.
        assert!(heap >= (288 + 336) * 24 + 2_000 * 2, "{heap}");
        let total = heap + std::mem::size_of::<Detector>();
        assert!(total <= 32 * 1024, "{total} bytes per series");
    }

    #[test]
    fn a_shift_right_after_a_false_alarm_is_published_in_full() {
        // Seed 9 raises a false alarm at point 184 (a young range); the
        // shift 16 points later used to be halved to 0.5.
        let mut d = Detector::new(DetectorConfig::default());
        let points = noise_then(9, 130.0);
        let scores: Vec<Observation> = points.iter().map(|(t, v)| d.observe(*t, *v)).collect();
        assert!(
            scores[150..200].iter().any(|o| o.score >= 0.3),
            "the false alarm"
        );
        let shift = scores[200];
        assert_eq!(shift.score, 1.0, "{shift:?}");
        assert!(shift.is_anomalous);
    }

    #[test]
    fn an_alarm_is_not_repeated_within_the_refractory() {
        let mut d = Detector::new(DetectorConfig::default());
        let mut points = noise_then(11, 130.0);
        points.extend((201..230).map(|i| (1_700_000_000 + i * 10, 130.0)));
        let scores: Vec<Observation> = points.iter().map(|(t, v)| d.observe(*t, *v)).collect();
        assert_eq!(scores[200].score, 1.0);
        // One alarm: the shifted points after it publish no second one.
        assert!(scores[201..230].iter().all(|o| o.score < 0.3));
    }

    #[test]
    fn replaying_a_prefix_gives_identical_scores() {
        // Causal and deterministic: a score depends only on the points
        // before it, so scoring a prefix alone gives the same numbers.
        let mut rng = Rng::new(3);
        let points: Vec<(i64, f64)> = (0..20_000)
            .map(|i| {
                let daily = (i as f64 * std::f64::consts::TAU / 288.0).sin() * 10.0;
                let shift = if i > 15_000 { 25.0 } else { 0.0 };
                (i as i64 * 300, 50.0 + daily + shift + rng.gauss())
            })
            .collect();
        let run = |n: usize| -> Vec<(u64, u64)> {
            let mut d = Detector::new(DetectorConfig::default());
            points[..n]
                .iter()
                .map(|(t, v)| {
                    let o = d.observe(*t, *v);
                    (o.score.to_bits(), o.zscore.to_bits())
                })
                .collect()
        };
        let full = run(points.len());
        for n in [1, 151, 2_000, 9_999, 15_001] {
            assert_eq!(run(n), full[..n], "prefix of {n} points");
        }
        assert!(
            full[15_001..15_010]
                .iter()
                .any(|(s, _)| f64::from_bits(*s) >= 0.3)
        );
    }

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
