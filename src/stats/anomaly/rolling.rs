//! Rolling mean and variance over the last N values, O(1) per update with
//! eviction. Sums are kept relative to a shift (the first value seen) so
//! cancellation stays small for series far from zero.
//!
//! The values are a ring held inline up to 8 (the likelihood's short
//! window of 5 is read every point: no separate allocation to miss in the
//! cache), on the heap beyond.

use smallvec::SmallVec;

#[derive(Debug, Clone)]
pub struct RollingStats {
    capacity: usize,
    values: SmallVec<[f64; 8]>,
    /// The oldest value's index once the ring is full.
    oldest: usize,
    shift: Option<f64>,
    sum: f64,
    sum_squares: f64,
}

impl RollingStats {
    pub fn new(capacity: usize) -> Self {
        RollingStats {
            capacity: capacity.max(1),
            values: SmallVec::new(),
            oldest: 0,
            shift: None,
            sum: 0.0,
            sum_squares: 0.0,
        }
    }

    pub fn push(&mut self, value: f64) {
        let shift = *self.shift.get_or_insert(value);
        if self.values.len() == self.capacity {
            let old = std::mem::replace(&mut self.values[self.oldest], value);
            self.oldest += 1;
            if self.oldest == self.capacity {
                self.oldest = 0;
            }
            let d = old - shift;
            self.sum -= d;
            self.sum_squares -= d * d;
        } else {
            self.values.push(value);
        }
        let d = value - shift;
        self.sum += d;
        self.sum_squares += d * d;
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn mean(&self) -> f64 {
        if self.values.is_empty() {
            return 0.0;
        }
        self.shift.unwrap_or(0.0) + self.sum / self.values.len() as f64
    }

    /// Sample variance (n - 1); 0 with fewer than two values.
    pub fn variance(&self) -> f64 {
        let n = self.values.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        ((self.sum_squares - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }

    pub fn std_dev(&self) -> f64 {
        self.variance().sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_computation_with_eviction() {
        let mut rolling = RollingStats::new(50);
        let values: Vec<f64> = (0..500)
            .map(|i| 1e6 + ((i * 37) % 101) as f64 * 0.5)
            .collect();
        for (i, v) in values.iter().enumerate() {
            rolling.push(*v);
            let window = &values[i.saturating_sub(49)..=i];
            let n = window.len() as f64;
            let mean = window.iter().sum::<f64>() / n;
            let variance = if n < 2.0 {
                0.0
            } else {
                window.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
            };
            assert!((rolling.mean() - mean).abs() < 1e-6, "mean at {i}");
            assert!(
                (rolling.variance() - variance).abs() < 1e-6 * variance.max(1.0),
                "variance at {i}"
            );
        }
    }
}
