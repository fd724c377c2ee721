//! A mergeable quantile sketch with a relative-error guarantee, after
//! DDSketch (Masson, Rim, Lee, VLDB 2019).
//!
//! Positive values x map to bucket ceil(log_gamma(x)) with
//! gamma = (1 + a) / (1 - a); every value in a bucket is within a relative
//! error `a` of the bucket's representative 2 gamma^i / (gamma + 1). So any
//! quantile read from the sketch is within `a` (relative) of a value whose
//! rank is exactly the requested one. Negative values use a mirrored store;
//! values too small to index count as zero. Count, sum, min and max are
//! exact. Sketches with the same accuracy merge by adding buckets, which is
//! associative and commutative, so windows merge sub-windows without
//! keeping samples.
//!
//! Stores are dense (a Vec of counts from the lowest index seen), which is
//! compact for latency data: two decades at 1 % take about 230 buckets.
//! `max_buckets` bounds memory by collapsing the lowest buckets, which only
//! affects the lowest quantiles.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SketchError {
    #[error("relative accuracy must be in (0, 1), got {0}")]
    InvalidAccuracy(f64),
    #[error("cannot merge sketches of different accuracy ({0} and {1})")]
    AccuracyMismatch(f64, f64),
}

/// Values closer to zero than this count as zero.
const MIN_INDEXABLE: f64 = 1e-12;

#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    /// Index of `counts[0]`.
    offset: i32,
    /// u32 halves memory; a bucket saturates at 4 billion values, far
    /// beyond what one sub-window of one series sees.
    counts: Vec<u32>,
    total: u64,
}

impl Store {
    #[inline]
    fn add(&mut self, index: i32, n: u64, max_buckets: usize) {
        if self.counts.is_empty() {
            self.offset = index;
            self.counts.push(0);
        }
        let mut index = index;
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            if self.counts.len() + grow > max_buckets {
                // Collapse: values below the kept range join the lowest bucket.
                index = self.offset;
            } else {
                let mut counts = vec![0u32; grow];
                counts.extend_from_slice(&self.counts);
                self.counts = counts;
                self.offset = index;
            }
        } else if index >= self.offset + self.counts.len() as i32 {
            let needed = (index - self.offset) as usize + 1;
            if needed > max_buckets {
                // Shift the window up, folding the lowest buckets together.
                let shift = needed - max_buckets;
                let folded = self
                    .counts
                    .iter()
                    .take(shift + 1)
                    .fold(0u32, |a, c| a.saturating_add(*c));
                self.counts.drain(..shift.min(self.counts.len()));
                if self.counts.is_empty() {
                    self.counts.push(0);
                }
                self.counts[0] = folded;
                self.offset += shift as i32;
            }
            let needed = (index - self.offset) as usize + 1;
            // Grow by what is needed plus a little, not by doubling: many
            // sketches live at once and each should stay small.
            self.counts
                .reserve_exact(needed.saturating_sub(self.counts.len()) + 16);
            self.counts.resize(needed, 0);
        }
        let slot = &mut self.counts[(index - self.offset) as usize];
        *slot = slot.saturating_add(n.min(u32::MAX as u64) as u32);
        self.total = self.total.saturating_add(n);
    }

    fn merge(&mut self, other: &Store, max_buckets: usize) {
        for (i, count) in other.counts.iter().enumerate() {
            if *count > 0 {
                self.add(other.offset + i as i32, u64::from(*count), max_buckets);
            }
        }
    }

    /// The bucket index holding the `rank`-th value (0-based), ascending.
    fn index_at_rank(&self, rank: u64) -> Option<i32> {
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += u64::from(*count);
            if seen > rank {
                return Some(self.offset + i as i32);
            }
        }
        None
    }

    /// Same, counting from the highest bucket down.
    fn index_at_rank_descending(&self, rank: u64) -> Option<i32> {
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate().rev() {
            seen += u64::from(*count);
            if seen > rank {
                return Some(self.offset + i as i32);
            }
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DDSketch {
    relative_accuracy: f64,
    gamma: f64,
    /// 1 / ln(gamma), so an index is one multiplication after the log.
    multiplier: f64,
    max_buckets: usize,
    positive: Store,
    negative: Store,
    zero_count: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl DDSketch {
    pub const DEFAULT_MAX_BUCKETS: usize = 2048;

    pub fn new(relative_accuracy: f64) -> Result<Self, SketchError> {
        if !(relative_accuracy > 0.0 && relative_accuracy < 1.0) {
            return Err(SketchError::InvalidAccuracy(relative_accuracy));
        }
        let gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy);
        Ok(DDSketch {
            relative_accuracy,
            gamma,
            multiplier: 1.0 / gamma.ln(),
            max_buckets: Self::DEFAULT_MAX_BUCKETS,
            positive: Store::default(),
            negative: Store::default(),
            zero_count: 0,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        })
    }

    pub fn with_max_buckets(mut self, max_buckets: usize) -> Self {
        self.max_buckets = max_buckets.max(1);
        self
    }

    pub fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }

    #[inline]
    fn index(&self, magnitude: f64) -> i32 {
        // Clamped well inside i32, so the store's `offset + len` cannot
        // overflow even with a tiny relative accuracy.
        ((magnitude.ln() * self.multiplier).ceil() as i32).clamp(-(1 << 30), 1 << 30)
    }

    #[inline]
    fn representative(&self, index: i32) -> f64 {
        2.0 * self.gamma.powi(index) / (self.gamma + 1.0)
    }

    #[inline]
    pub fn add(&mut self, value: f64) {
        self.add_n(value, 1);
    }

    /// Adds `value` `n` times; NaN and infinities are ignored (they have
    /// no bucket: an infinite magnitude's index is past i32's range).
    /// Counts saturate, so data-model-breaking input cannot overflow them.
    #[inline]
    pub fn add_n(&mut self, value: f64, n: u64) {
        if !value.is_finite() || n == 0 {
            return;
        }
        if value > MIN_INDEXABLE {
            let index = self.index(value);
            self.positive.add(index, n, self.max_buckets);
        } else if value < -MIN_INDEXABLE {
            let index = self.index(-value);
            self.negative.add(index, n, self.max_buckets);
        } else {
            self.zero_count = self.zero_count.saturating_add(n);
        }
        self.count = self.count.saturating_add(n);
        self.sum += value * n as f64;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &DDSketch) -> Result<(), SketchError> {
        if other.relative_accuracy != self.relative_accuracy {
            return Err(SketchError::AccuracyMismatch(
                self.relative_accuracy,
                other.relative_accuracy,
            ));
        }
        if other.count == 0 {
            return Ok(());
        }
        self.positive.merge(&other.positive, self.max_buckets);
        self.negative.merge(&other.negative, self.max_buckets);
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        self.count = self.count.saturating_add(other.count);
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        Ok(())
    }

    /// The value at quantile `q` in [0, 1], using the lower rank
    /// floor(q (n - 1)); `None` when empty. Within the relative accuracy
    /// of the exact value at that rank, and never outside [min, max].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        let value = if rank < self.negative.total {
            // Negatives: the most negative (largest magnitude) first.
            let index = self.negative.index_at_rank_descending(rank)?;
            -self.representative(index)
        } else if rank < self.negative.total + self.zero_count {
            0.0
        } else {
            let index = self
                .positive
                .index_at_rank(rank - self.negative.total - self.zero_count)?;
            self.representative(index)
        };
        Some(value.clamp(self.min, self.max))
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn clear(&mut self) {
        self.positive.counts.clear();
        self.positive.total = 0;
        self.negative.counts.clear();
        self.negative.total = 0;
        self.zero_count = 0;
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
    }

    /// Heap and inline bytes this sketch holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.positive.counts.capacity() + self.negative.counts.capacity()) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(values: &mut [f64], q: f64) -> f64 {
        values.sort_by(f64::total_cmp);
        values[(q * (values.len() - 1) as f64).floor() as usize]
    }

    fn assert_within(sketch: &DDSketch, values: &mut [f64], accuracy: f64) {
        for q in [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let want = exact(values, q);
            let got = sketch.quantile(q).unwrap();
            assert!(
                (got - want).abs() <= accuracy * want.abs() + 1e-12,
                "q {q}: got {got}, exact {want}, n {}",
                values.len()
            );
        }
    }

    /// A small deterministic generator, so tests need no dependency.
    struct Lcg(u64);
    impl Lcg {
        fn unit(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f64 {
            (-2.0 * self.unit().ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
        }
    }

    #[test]
    fn quantiles_within_accuracy_on_uniform_heavy_tailed_and_adversarial_data() {
        let mut rng = Lcg(42);
        type Generator = (&'static str, Box<dyn FnMut(&mut Lcg) -> f64>);
        let generators: Vec<Generator> = vec![
            ("uniform", Box::new(|r| r.unit() * 1000.0)),
            ("lognormal", Box::new(|r| (3.0 + 1.5 * r.normal()).exp())),
            ("pareto", Box::new(|r| 1.0 / r.unit().powf(1.0 / 1.2))),
            (
                "huge range",
                Box::new(|r| 10f64.powf(r.unit() * 18.0 - 9.0)),
            ),
            ("duplicates", Box::new(|r| (r.unit() * 4.0).floor() + 1.0)),
            (
                "negative and positive",
                Box::new(|r| (r.unit() - 0.5) * 1e6),
            ),
            ("near zero", Box::new(|r| r.unit() * 1e-6)),
        ];
        for (name, mut generate) in generators {
            for n in [1usize, 2, 10, 1000, 20_000] {
                // 18 decades need ~2100 buckets: room enough not to collapse.
                let mut sketch = DDSketch::new(0.01).unwrap().with_max_buckets(4096);
                let mut values: Vec<f64> = (0..n).map(|_| generate(&mut rng)).collect();
                for v in &values {
                    sketch.add(*v);
                }
                assert_eq!(sketch.count(), n as u64, "{name}");
                assert_within(&sketch, &mut values, 0.01);
            }
        }
    }

    #[test]
    fn merge_is_associative_and_commutative() {
        let mut rng = Lcg(7);
        let parts: Vec<DDSketch> = (0..3)
            .map(|i| {
                let mut s = DDSketch::new(0.02).unwrap();
                for _ in 0..500 {
                    s.add((rng.normal() + i as f64).exp());
                }
                s
            })
            .collect();
        let merged = |order: &[usize]| {
            let mut s = DDSketch::new(0.02).unwrap();
            for &i in order {
                s.merge(&parts[i]).unwrap();
            }
            s
        };
        let reference = merged(&[0, 1, 2]);
        for order in [[2, 1, 0], [1, 0, 2], [0, 2, 1]] {
            let other = merged(&order);
            for q in [0.0, 0.3, 0.5, 0.9, 0.99, 1.0] {
                assert_eq!(other.quantile(q), reference.quantile(q));
            }
            assert_eq!(other.count(), reference.count());
        }
        // (a + b) + c == a + (b + c)
        let mut left = parts[0].clone();
        left.merge(&parts[1]).unwrap();
        left.merge(&parts[2]).unwrap();
        let mut right = parts[1].clone();
        right.merge(&parts[2]).unwrap();
        let mut a = parts[0].clone();
        a.merge(&right).unwrap();
        for q in [0.1, 0.5, 0.99] {
            assert_eq!(left.quantile(q), a.quantile(q));
        }
        assert!(DDSketch::new(0.01).unwrap().merge(&parts[0]).is_err());
    }

    #[test]
    fn collapsing_keeps_high_quantiles_accurate() {
        let mut sketch = DDSketch::new(0.01).unwrap().with_max_buckets(64);
        let mut values: Vec<f64> = (1..=10_000).map(|i| i as f64).collect();
        for v in &values {
            sketch.add(*v);
        }
        assert!(sketch.positive.counts.len() <= 64);
        for q in [0.9, 0.99, 1.0] {
            let want = exact(&mut values, q);
            assert!((sketch.quantile(q).unwrap() - want).abs() <= 0.01 * want);
        }
    }

    #[test]
    fn empty_nan_and_bad_accuracy() {
        let mut sketch = DDSketch::new(0.01).unwrap();
        assert_eq!(sketch.quantile(0.5), None);
        sketch.add(f64::NAN);
        assert!(sketch.is_empty());
        assert!(DDSketch::new(0.0).is_err());
        assert!(DDSketch::new(1.0).is_err());
    }
}
