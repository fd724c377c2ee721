//! Least-squares linear regression over (time, value) samples, with the
//! semantics of Prometheus's `predict_linear`: fit the samples in a window,
//! then read the line at a future time.

/// A fitted line `value = intercept + slope * (t - origin)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    pub origin: f64,
    pub intercept: f64,
    pub slope: f64,
}

impl Line {
    pub fn at(&self, t: f64) -> f64 {
        self.intercept + self.slope * (t - self.origin)
    }

    /// When the line reaches `threshold`, if it ever does from `origin` on.
    pub fn crossing_time(&self, threshold: f64) -> Option<f64> {
        if self.slope == 0.0 {
            return None;
        }
        let t = self.origin + (threshold - self.intercept) / self.slope;
        (t >= self.origin).then_some(t)
    }
}

/// Fits `samples` (time in seconds, value); `origin` is where the
/// intercept is read, as Prometheus reads it at the evaluation time.
/// Needs at least two samples at distinct times.
pub fn fit(samples: impl Iterator<Item = (f64, f64)> + Clone, origin: f64) -> Option<Line> {
    let (mut n, mut sum_t, mut sum_v, mut sum_tt, mut sum_tv) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (t, v) in samples {
        // Centre times on the origin for numerical stability.
        let t = t - origin;
        n += 1.0;
        sum_t += t;
        sum_v += v;
        sum_tt += t * t;
        sum_tv += t * v;
    }
    if n < 2.0 {
        return None;
    }
    let covariance = sum_tv - sum_t * sum_v / n;
    let variance = sum_tt - sum_t * sum_t / n;
    if variance.abs() < f64::EPSILON {
        return None;
    }
    let slope = covariance / variance;
    let intercept = sum_v / n - slope * sum_t / n;
    Some(Line {
        origin,
        intercept,
        slope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_line_exactly_and_predicts() {
        let samples: Vec<(f64, f64)> = (0..10)
            .map(|i| (1000.0 + i as f64 * 60.0, 50.0 + 2.0 * i as f64))
            .collect();
        let now = 1000.0 + 9.0 * 60.0;
        let line = fit(samples.iter().copied(), now).unwrap();
        assert!((line.slope - 2.0 / 60.0).abs() < 1e-12);
        assert!((line.at(now) - 68.0).abs() < 1e-9);
        // 100 is reached 16 minutes after `now`.
        assert!((line.crossing_time(100.0).unwrap() - (now + 16.0 * 60.0)).abs() < 1e-6);
        assert_eq!(line.crossing_time(0.0), None, "in the past");
    }

    #[test]
    fn needs_two_distinct_times() {
        assert!(fit([(1.0, 1.0)].into_iter(), 1.0).is_none());
        assert!(fit([(1.0, 1.0), (1.0, 2.0)].into_iter(), 1.0).is_none());
    }
}
