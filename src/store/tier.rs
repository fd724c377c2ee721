//! Retention tiers and the rollup of one step. A tier of resolution `raw`
//! keeps every sample; a coarser one keeps, per step, the five aggregates
//! from which averages, extremes, counts and rates stay right: min, max,
//! sum, count and last, stamped with the time of the step's last sample
//! (so `last` sits where the raw sample was, and rate over a counter's
//! `last` values matches rate over the raw samples at those times).

use std::time::Duration;

use serde::Deserialize;

use super::engine::Point;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// 0 for raw.
    pub resolution_ms: i64,
    pub keep_ms: i64,
}

impl Tier {
    pub fn is_raw(&self) -> bool {
        self.resolution_ms == 0
    }

    /// Value columns in this tier's chunks.
    pub fn width(&self) -> usize {
        if self.is_raw() { 1 } else { 5 }
    }

    /// raw 1h, 5m 1d, 1h 30d, 1d 1y.
    pub fn defaults() -> Vec<Tier> {
        const MINUTE: i64 = 60_000;
        const HOUR: i64 = 60 * MINUTE;
        const DAY: i64 = 24 * HOUR;
        vec![
            Tier {
                resolution_ms: 0,
                keep_ms: HOUR,
            },
            Tier {
                resolution_ms: 5 * MINUTE,
                keep_ms: DAY,
            },
            Tier {
                resolution_ms: HOUR,
                keep_ms: 30 * DAY,
            },
            Tier {
                resolution_ms: DAY,
                keep_ms: 365 * DAY,
            },
        ]
    }
}

/// `retention: [{ resolution: raw | <duration>, keep: <duration> }]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub resolution: String,
    #[serde(with = "crate::config::duration")]
    pub keep: Duration,
}

/// Compiles the configured tiers: exactly one raw tier, resolutions
/// distinct, every `keep` at least its resolution. Errors name the index.
pub fn compile(configs: &[TierConfig]) -> Result<Vec<Tier>, (usize, String)> {
    let mut tiers = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        let resolution_ms = if c.resolution == "raw" {
            0
        } else {
            let parsed = crate::config::duration::parse_duration(&c.resolution).map_err(|e| {
                (
                    i,
                    format!(
                        "resolution: expected `raw` or a duration such as 5m, got {:?}: {e}",
                        c.resolution
                    ),
                )
            })?;
            if parsed.as_millis() == 0 {
                return Err((i, "resolution: must be `raw` or longer than 0".into()));
            }
            parsed.as_millis() as i64
        };
        let keep_ms = c.keep.as_millis() as i64;
        if keep_ms < resolution_ms || keep_ms == 0 {
            return Err((i, "keep: must be at least the resolution".into()));
        }
        if tiers
            .iter()
            .any(|t: &Tier| t.resolution_ms == resolution_ms)
        {
            return Err((i, "resolution: appears twice".into()));
        }
        tiers.push(Tier {
            resolution_ms,
            keep_ms,
        });
    }
    if !tiers.iter().any(Tier::is_raw) {
        return Err((0, "one tier must have `resolution: raw`".into()));
    }
    tiers.sort_by_key(|t| t.resolution_ms);
    Ok(tiers)
}

/// The step being aggregated in a rollup tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenBucket {
    pub bucket: i64,
    pub last_time: i64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: f64,
    pub last: f64,
}

impl OpenBucket {
    pub fn new(bucket: i64, time: i64, value: f64) -> Self {
        OpenBucket {
            bucket,
            last_time: time,
            min: value,
            max: value,
            sum: value,
            count: 1.0,
            last: value,
        }
    }

    pub fn add(&mut self, time: i64, value: f64) {
        self.last_time = time;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sum += value;
        self.count += 1.0;
        self.last = value;
    }

    /// The chunk row: time and columns in [`point_of`]'s order.
    pub fn row(&self) -> (i64, Vec<f64>) {
        (
            self.last_time,
            vec![self.min, self.max, self.sum, self.count, self.last],
        )
    }
}

pub fn point_of(time: i64, values: &[f64]) -> Point {
    Point {
        time,
        min: values[0],
        max: values[1],
        sum: values[2],
        count: values[3],
        last: values[4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(resolution: &str, keep: u64) -> TierConfig {
        TierConfig {
            resolution: resolution.into(),
            keep: Duration::from_secs(keep),
        }
    }

    #[test]
    fn compiles_and_sorts_tiers() {
        let tiers = compile(&[config("1h", 86400), config("raw", 600)]).unwrap();
        assert_eq!(tiers[0].resolution_ms, 0);
        assert_eq!(tiers[1].resolution_ms, 3_600_000);
    }

    #[test]
    fn rejects_missing_raw_and_bad_resolution() {
        assert_eq!(
            compile(&[config("5m", 86400)]).unwrap_err().1,
            "one tier must have `resolution: raw`"
        );
        assert!(
            compile(&[config("raw", 60), config("fast", 60)])
                .unwrap_err()
                .1
                .starts_with("resolution: expected `raw` or a duration")
        );
        assert_eq!(
            compile(&[config("raw", 60), config("1h", 60)]).unwrap_err(),
            (1, "keep: must be at least the resolution".into())
        );
    }
}
