//! The learned threshold of `op: anomalous`: a quantile of the series' own
//! anomaly-score history, so a series whose scores are often high needs a
//! higher score to alert than a calm one.
//!
//! History is a histogram of 200 bins over [0, 1] (800 bytes per series);
//! counts halve when they reach 2^24, so old behaviour fades. Until the
//! history holds ten points beyond the quantile on average (10 / (1 - q)
//! points: 10,000 for `medium`), the threshold is the prior: the score a
//! well-calibrated series passes with probability 1 - q, which is the
//! log-likelihood transform of q (0.2, 0.3, 0.4 for high, medium, low).
//! The learned threshold is never below the prior.

use crate::stats::anomaly::likelihood::log_likelihood;

const BINS: usize = 200;
const HALVE_AT: u32 = 1 << 24;

#[derive(Debug, Clone)]
pub struct ScoreHistory {
    counts: Box<[u32; BINS]>,
    total: u32,
}

impl Default for ScoreHistory {
    fn default() -> Self {
        ScoreHistory {
            counts: Box::new([0; BINS]),
            total: 0,
        }
    }
}

/// The score a well-calibrated series passes with probability 1 - q.
pub fn prior(quantile: f64) -> f64 {
    log_likelihood(quantile)
}

impl ScoreHistory {
    pub fn push(&mut self, score: f64) {
        if !score.is_finite() {
            return;
        }
        let bin = ((score.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1);
        self.counts[bin] += 1;
        self.total += 1;
        if self.total >= HALVE_AT {
            self.total = 0;
            for c in self.counts.iter_mut() {
                *c /= 2;
                self.total += *c;
            }
        }
    }

    /// The empirical `quantile` (upper bin edge), once enough is seen.
    pub fn quantile(&self, quantile: f64) -> Option<f64> {
        let tail = 1.0 - quantile;
        if tail <= 0.0 || f64::from(self.total) < 10.0 / tail {
            return None;
        }
        let allowed = tail * f64::from(self.total);
        let mut above = 0u64;
        for bin in (0..BINS).rev() {
            above += u64::from(self.counts[bin]);
            if above as f64 > allowed {
                return Some((bin + 1) as f64 / BINS as f64);
            }
        }
        Some(0.0)
    }

    /// The threshold for `quantile`: the learned one, at least the prior.
    pub fn threshold(&self, quantile: f64) -> f64 {
        let prior = prior(quantile);
        self.quantile(quantile).map_or(prior, |q| q.max(prior))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prior_holds_until_the_history_is_long_enough() {
        let mut h = ScoreHistory::default();
        assert!((h.threshold(0.999) - 0.3).abs() < 1e-6);
        for _ in 0..9_999 {
            h.push(0.5);
        }
        assert!(
            (h.threshold(0.999) - 0.3).abs() < 1e-6,
            "9,999 points: prior"
        );
        h.push(0.5);
        assert!((h.threshold(0.999) - 0.505).abs() < 1e-9, "learned");
    }

    #[test]
    fn a_noisy_series_learns_a_higher_threshold_than_a_calm_one() {
        let (mut calm, mut noisy) = (ScoreHistory::default(), ScoreHistory::default());
        for i in 0..2_000u32 {
            calm.push(0.01);
            noisy.push(if i % 20 == 0 { 0.6 } else { 0.1 });
        }
        // high sensitivity: the 0.99 quantile, 1,000 points needed.
        assert!((calm.threshold(0.99) - prior(0.99)).abs() < 1e-9);
        assert!((noisy.threshold(0.99) - 0.605).abs() < 1e-9);
    }
}
