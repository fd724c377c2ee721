//! Anomaly likelihood, after Numenta's post-processing of raw anomaly
//! scores (Ahmad et al., "Unsupervised real-time anomaly detection for
//! streaming data", Neurocomputing 2017): model recent raw scores as a
//! Gaussian (mean and variance over a long window), average the last few
//! raw scores, and report how unlikely that short average is under the
//! model: likelihood = 1 - Q((short - mean) / sigma). A series whose raw
//! scores are always noisy stops alarming; a change in its behaviour
//! stands out. A log transform spreads the top of the range, where the
//! interesting values crowd near 1.
//!
//! The long window holds raw scores quantised to 16 bits (steps of
//! 1.5e-5, far below the 1e-4 sigma floor) with integer sums: 2000 scores
//! take 4 KiB instead of 16, and the sums never drift.

use super::rolling::RollingStats;

#[derive(Debug, Clone)]
pub struct Likelihood {
    long: QuantisedWindow,
    short: RollingStats,
    learning: usize,
    seen: usize,
    /// Floor on sigma so a perfectly regular series does not divide by 0.
    min_sigma: f64,
}

/// The last `capacity` values in [0, 1] as u16, with exact integer sums.
#[derive(Debug, Clone)]
struct QuantisedWindow {
    capacity: usize,
    values: Vec<u16>,
    next: usize,
    sum: u64,
    sum_squares: u64,
}

const STEPS: f64 = u16::MAX as f64;

impl QuantisedWindow {
    fn new(capacity: usize) -> Self {
        QuantisedWindow {
            capacity: capacity.max(1),
            values: Vec::new(),
            next: 0,
            sum: 0,
            sum_squares: 0,
        }
    }

    fn push(&mut self, value: f64) {
        let q = round_non_negative(value.clamp(0.0, 1.0) * STEPS);
        if self.values.len() < self.capacity {
            if self.values.capacity() == 0 {
                self.values.reserve_exact(self.capacity);
            }
            self.values.push(q);
        } else {
            let old = std::mem::replace(&mut self.values[self.next], q);
            self.sum -= u64::from(old);
            self.sum_squares -= u64::from(old) * u64::from(old);
            self.next = (self.next + 1) % self.capacity;
        }
        self.sum += u64::from(q);
        self.sum_squares += u64::from(q) * u64::from(q);
    }

    fn len(&self) -> usize {
        self.values.len()
    }

    fn mean(&self) -> f64 {
        if self.values.is_empty() {
            return 0.0;
        }
        self.sum as f64 / self.values.len() as f64 / STEPS
    }

    /// Sample standard deviation (n - 1).
    fn std_dev(&self) -> f64 {
        let n = self.values.len() as u128;
        if n < 2 {
            return 0.0;
        }
        // Under 2^16 values the exact numerator fits in 64 bits (n x sum of
        // squares < 2^16 x 2^16 x 2^32), and 128-bit products and their
        // conversion to f64 cost a library call each point. Both give the
        // same exact integer, so the same f64.
        let numerator = if n < 1 << 16 {
            let n = n as u64;
            (n * self.sum_squares - self.sum * self.sum) as f64
        } else {
            (n * u128::from(self.sum_squares) - u128::from(self.sum).pow(2)) as f64
        };
        // n x (n - 1) as u64: the same exact integer (far below 2^53), but
        // u128 to f64 is a library call each point.
        (numerator / (n * (n - 1)) as u64 as f64).sqrt() / STEPS
    }

    fn heap_bytes(&self) -> usize {
        self.values.capacity() * 2
    }
}

/// `x.round() as u16` for x in [0, 65535]: `f64::round` is a library call
/// on x86-64 without SSE4.1. x - trunc(x) is exact there, so halves round
/// up exactly as `round` does.
fn round_non_negative(x: f64) -> u16 {
    let whole = x as u16;
    if x - f64::from(whole) >= 0.5 {
        whole + 1
    } else {
        whole
    }
}

/// The Gaussian upper tail probability Q(z) = P(Z > z).
pub fn gaussian_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes erfcc, |error| < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398
                                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

impl Likelihood {
    pub fn new(long_window: usize, short_window: usize, learning: usize) -> Self {
        Likelihood {
            long: QuantisedWindow::new(long_window),
            short: RollingStats::new(short_window),
            learning,
            seen: 0,
            min_sigma: 0.0001,
        }
    }

    /// Feeds one raw score in [0, 1]; returns the likelihood in [0, 1]
    /// (0.5 while learning).
    pub fn update(&mut self, raw: f64) -> f64 {
        self.seen += 1;
        self.short.push(raw);
        let result = if self.seen <= self.learning || self.long.len() < 2 {
            0.5
        } else {
            let sigma = self.long.std_dev().max(self.min_sigma);
            let z = (self.short.mean() - self.long.mean()) / sigma;
            1.0 - gaussian_tail(z)
        };
        self.long.push(raw);
        result
    }

    /// Heap bytes held (the long window; the short one is a few values).
    pub fn heap_bytes(&self) -> usize {
        self.long.heap_bytes()
    }
}

/// Spreads likelihoods near 1: 0.9 -> 0.1, 0.999 -> 0.3, 0.99999 -> 0.5,
/// as Numenta's log-likelihood does.
pub fn log_likelihood(likelihood: f64) -> f64 {
    ((1.0000000001 - likelihood).ln() / (1.0 - 0.9999999999f64).ln()).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_probabilities() {
        assert!((gaussian_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((gaussian_tail(1.96) - 0.025).abs() < 1e-4);
        assert!((gaussian_tail(-1.96) - 0.975).abs() < 1e-4);
    }

    #[test]
    fn a_burst_of_high_raw_scores_is_unlikely() {
        let mut l = Likelihood::new(500, 5, 50);
        let mut last = 0.0;
        for i in 0..400 {
            last = l.update(if i % 7 == 0 { 0.2 } else { 0.05 });
        }
        assert!(last < 0.9);
        for _ in 0..5 {
            last = l.update(0.9);
        }
        assert!(last > 0.999, "{last}");
        assert!(log_likelihood(last) > 0.3);
    }

    #[test]
    fn rounding_matches_the_standard_library() {
        let mut x = 0.0f64;
        while x <= STEPS {
            for y in [
                x,
                x.next_up(),
                x.next_down().max(0.0),
                x + 0.5,
                (x + 0.5).next_down(),
            ] {
                if y <= STEPS {
                    assert_eq!(round_non_negative(y), y.round() as u16, "{y}");
                }
            }
            x += 0.25;
        }
    }

    #[test]
    fn the_quantised_window_matches_floating_statistics() {
        let mut q = QuantisedWindow::new(300);
        let mut f = RollingStats::new(300);
        for i in 0..2000u32 {
            let v = f64::from((i * 7919) % 1000) / 1000.0;
            q.push(v);
            f.push(v);
            assert!((q.mean() - f.mean()).abs() < 2e-5, "mean at {i}");
            assert!((q.std_dev() - f.std_dev()).abs() < 2e-5, "sigma at {i}");
        }
    }
}
