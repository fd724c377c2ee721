//! Rolling median and median absolute deviation (MAD) over the last N
//! values: a baseline that a few outliers cannot drag, unlike mean and
//! standard deviation. Kept as a sorted buffer beside the arrival order:
//! O(N) per update by memmove, which for the window sizes used (hundreds)
//! costs less than a tree.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct RollingMedian {
    capacity: usize,
    arrival: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl RollingMedian {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RollingMedian {
            capacity,
            arrival: VecDeque::with_capacity(capacity),
            sorted: Vec::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, value: f64) {
        if self.arrival.len() == self.capacity
            && let Some(old) = self.arrival.pop_front()
        {
            let at = self.sorted.partition_point(|v| *v < old);
            self.sorted.remove(at);
        }
        let at = self.sorted.partition_point(|v| *v < value);
        self.sorted.insert(at, value);
        self.arrival.push_back(value);
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn median(&self) -> f64 {
        median_of_sorted(&self.sorted)
    }

    /// The median of |x - median|: scale it by 1.4826 for a Gaussian sigma.
    pub fn mad(&self) -> f64 {
        let median = self.median();
        let mut deviations: Vec<f64> = self.sorted.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        median_of_sorted(&deviations)
    }

    pub fn min(&self) -> Option<f64> {
        self.sorted.first().copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.sorted.last().copied()
    }
}

pub fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad_ignore_outliers_and_evict() {
        let mut m = RollingMedian::new(5);
        for v in [1.0, 2.0, 3.0, 4.0, 1000.0] {
            m.push(v);
        }
        assert_eq!(m.median(), 3.0);
        assert_eq!(m.mad(), 1.0);
        for v in [10.0, 10.0, 10.0] {
            m.push(v);
        }
        // Window is now 4, 1000, 10, 10, 10.
        assert_eq!(m.median(), 10.0);
        assert_eq!((m.min(), m.max()), (Some(4.0), Some(1000.0)));
    }
}
