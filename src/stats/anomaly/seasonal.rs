//! The seasonal memory of one series: for each phase bucket of the period
//! (288 five-minute buckets of a day by default), the values seen in that
//! bucket over the last `periods` periods, and their median.
//!
//! Stored flat, one allocation per series made on first use: 288 x 3
//! values take 7 KiB, where a rolling-median structure per bucket took
//! about 43 KiB. The median of so few values is a small sort.

#[derive(Debug, Clone)]
pub struct Seasonal {
    buckets: usize,
    periods: usize,
    /// `buckets x periods` values, each bucket a ring.
    values: Vec<f64>,
    /// Per bucket: values held (up to `periods`) and the next slot.
    filled: Vec<(u16, u16)>,
}

impl Seasonal {
    pub fn new(buckets: usize, periods: usize) -> Self {
        Seasonal {
            buckets: buckets.max(1),
            periods: periods.clamp(1, u16::MAX as usize),
            values: Vec::new(),
            filled: Vec::new(),
        }
    }

    pub fn push(&mut self, bucket: usize, value: f64) {
        if self.values.is_empty() {
            self.values = vec![0.0; self.buckets * self.periods];
            self.filled = vec![(0, 0); self.buckets];
        }
        let (held, next) = &mut self.filled[bucket];
        self.values[bucket * self.periods + *next as usize] = value;
        *next = ((*next as usize + 1) % self.periods) as u16;
        *held = (*held + 1).min(self.periods as u16);
    }

    pub fn len(&self, bucket: usize) -> usize {
        self.filled
            .get(bucket)
            .map_or(0, |(held, _)| *held as usize)
    }

    pub fn median(&self, bucket: usize) -> f64 {
        let held = self.len(bucket);
        let start = bucket * self.periods;
        let values = &self.values[start..start + held];
        // Scored on every point: sort on the stack when the few values fit.
        let mut small = [0.0f64; 16];
        if held <= small.len() {
            let sorted = &mut small[..held];
            sorted.copy_from_slice(values);
            sorted.sort_by(f64::total_cmp);
            super::robust::median_of_sorted(sorted)
        } else {
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            super::robust::median_of_sorted(&sorted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::anomaly::robust::RollingMedian;

    #[test]
    fn matches_a_rolling_median_per_bucket() {
        let mut flat = Seasonal::new(4, 3);
        let mut reference: Vec<RollingMedian> = (0..4).map(|_| RollingMedian::new(3)).collect();
        for i in 0..50u32 {
            let bucket = (i as usize * 7) % 4;
            let value = f64::from((i * 37) % 11);
            flat.push(bucket, value);
            reference[bucket].push(value);
            for (b, median) in reference.iter().enumerate() {
                assert_eq!(flat.len(b), median.len());
                if flat.len(b) > 0 {
                    assert_eq!(flat.median(b), median.median());
                }
            }
        }
    }
}
