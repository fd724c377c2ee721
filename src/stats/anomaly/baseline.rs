//! A baseline: what a series (or its residual from a seasonal prediction)
//! is expected to be, and how far it usually strays: EWMA, rolling mean
//! and deviation, or rolling median and MAD.

use serde::{Deserialize, Serialize};

use super::robust::RollingMedian;
use super::rolling::RollingStats;

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

/// The windowed methods are boxed: the default EWMA is read every point
/// and stays four words inline in the series' state.
#[derive(Debug, Clone)]
pub enum Baseline {
    Rolling(Box<RollingStats>),
    Ewma {
        mean: f64,
        variance: f64,
        alpha: f64,
        started: bool,
    },
    Robust(Box<RollingMedian>),
}

impl Baseline {
    pub fn new(method: Method) -> Self {
        match method {
            Method::RollingZ { window } => Baseline::Rolling(Box::new(RollingStats::new(window))),
            Method::Ewma { alpha } => Baseline::Ewma {
                mean: 0.0,
                variance: 0.0,
                alpha: alpha.clamp(1e-6, 1.0),
                started: false,
            },
            Method::Robust { window } => Baseline::Robust(Box::new(RollingMedian::new(window))),
        }
    }

    /// (centre, scale) before the new point is added.
    pub fn estimate(&self) -> (f64, f64) {
        match self {
            Baseline::Rolling(r) => (r.mean(), r.std_dev()),
            Baseline::Ewma { mean, variance, .. } => (*mean, variance.sqrt()),
            Baseline::Robust(m) => (m.median(), 1.4826 * m.mad()),
        }
    }

    pub fn push(&mut self, value: f64) {
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
