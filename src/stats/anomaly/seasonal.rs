//! The seasonal memory of one series: for each phase bucket of the period
//! (288 five-minute buckets of a day by default), the mean value the series
//! had in that bucket in each of the last `periods` periods, and the median
//! of those means as the prediction.
//!
//! One slot per bucket and period, not per point: a series scraped every
//! 10 s puts 30 points into a five-minute bucket each day, and a ring of
//! points would hold only the last few minutes of today instead of the
//! same minutes of the last three days. Slots are `f32` (a prediction
//! needs no more precision than the deviation it is compared with), so the
//! daily memory takes 288 x (8 + 4 x 4) bytes = 6.8 KiB per series,
//! allocated on first use, each bucket's head beside its slots.

#[derive(Debug, Clone)]
pub struct Seasonal {
    buckets: usize,
    periods: usize,
    /// Per bucket, side by side so one point touches one or two cache
    /// lines, not one for the head and another for the slots: the head
    /// (period number of the newest slot; then the points averaged into
    /// it, slots held up to `periods` and the newest slot, packed) and the
    /// `periods` per-period means as f32 bits, a ring.
    words: Vec<u32>,
}

/// The packed second head word of a bucket.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    count: u16,
    held: u8,
    newest: u8,
}

impl Head {
    fn unpack(word: u32) -> Head {
        Head {
            count: word as u16,
            held: (word >> 16) as u8,
            newest: (word >> 24) as u8,
        }
    }

    fn pack(self) -> u32 {
        u32::from(self.count) | u32::from(self.held) << 16 | u32::from(self.newest) << 24
    }
}

/// Head words before a bucket's slots.
const HEAD: usize = 2;

impl Seasonal {
    pub fn new(buckets: usize, periods: usize) -> Self {
        Seasonal {
            buckets: buckets.max(1),
            // One slot more than the periods remembered: the current
            // period's slot fills while the past ones predict.
            periods: periods.clamp(1, 15) + 1,
            words: Vec::new(),
        }
    }

    fn stride(&self) -> usize {
        HEAD + self.periods
    }

    /// (period number, head, slots) of `bucket`, if allocated.
    fn bucket(&self, bucket: usize) -> Option<(u32, Head, &[u32])> {
        let base = bucket * self.stride();
        let words = self.words.get(base..base + self.stride())?;
        Some((words[0], Head::unpack(words[1]), &words[HEAD..]))
    }

    /// Adds a value seen in `bucket` during period number `period`.
    pub fn push(&mut self, bucket: usize, period: u64, value: f64) {
        if self.words.is_empty() {
            self.words = vec![0; self.buckets * self.stride()];
        }
        let period = period as u32;
        let periods = self.periods;
        let base = bucket * self.stride();
        let words = &mut self.words[base..base + HEAD + periods];
        let mut head = Head::unpack(words[1]);
        if head.held > 0 && words[0] == period {
            // Same period: fold into the running mean of the newest slot.
            head.count = head.count.saturating_add(1);
            let slot = &mut words[HEAD + head.newest as usize];
            let old = f32::from_bits(*slot);
            *slot = (old + ((value - f64::from(old)) / f64::from(head.count)) as f32).to_bits();
            words[1] = head.pack();
            return;
        }
        head.newest = if head.held == 0 {
            0
        } else {
            ((head.newest as usize + 1) % periods) as u8
        };
        head.held = (head.held as usize + 1).min(periods) as u8;
        head.count = 1;
        words[0] = period;
        words[1] = head.pack();
        words[HEAD + head.newest as usize] = (value as f32).to_bits();
    }

    /// Past periods held for `bucket` (at most the periods remembered),
    /// not counting the current one (`period`), whose slot is still filling.
    pub fn len(&self, bucket: usize, period: u64) -> usize {
        self.bucket(bucket).map_or(0, |(newest_period, h, _)| {
            let current = h.held > 0 && newest_period == period as u32;
            (h.held as usize - usize::from(current)).min(self.periods - 1)
        })
    }

    /// Median of the past periods' means for `bucket`, newest first up to
    /// the periods remembered (the current period's slot excluded, so a
    /// shift today is not predicted by itself).
    pub fn median(&self, bucket: usize, period: u64) -> f64 {
        let Some((newest_period, h, slots)) = self.bucket(bucket) else {
            return 0.0;
        };
        let current = h.held > 0 && newest_period == period as u32;
        let mut small = [0.0f64; 16];
        let n = self.len(bucket, period);
        for (j, value) in small.iter_mut().take(n).enumerate() {
            let back = j + usize::from(current);
            let slot = (h.newest as usize + self.periods - back) % self.periods;
            *value = f64::from(f32::from_bits(slots[slot]));
        }
        let sorted = &mut small[..n];
        sorted.sort_by(f64::total_cmp);
        super::robust::median_of_sorted(sorted)
    }

    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicts_the_median_of_past_period_means() {
        let mut s = Seasonal::new(4, 3);
        // Bucket 1 over four periods, several points per period.
        for (period, values) in [(10, [1.0, 3.0]), (11, [10.0, 10.0]), (12, [5.0, 7.0])] {
            for v in values {
                s.push(1, period, v);
            }
        }
        // Period 13 has not started: past means 2, 10, 6.
        assert_eq!(s.len(1, 13), 3);
        assert_eq!(s.median(1, 13), 6.0);
        // While period 13 fills, its own slot is not used for prediction.
        s.push(1, 13, 100.0);
        assert_eq!(s.len(1, 13), 3);
        assert_eq!(s.median(1, 13), 6.0);
        // Period 14: the oldest (10) is gone, 13's mean counts.
        assert_eq!(s.len(1, 14), 3);
        assert_eq!(s.median(1, 14), 10.0);
        assert_eq!(s.len(0, 14), 0);
    }

    #[test]
    fn a_fast_scraped_series_remembers_days_not_minutes() {
        // 30 points per bucket per period: the prediction is yesterday's
        // level, not the last few points of today.
        let mut s = Seasonal::new(1, 3);
        for period in 0..3u64 {
            for _ in 0..30 {
                s.push(0, period, period as f64);
            }
        }
        assert_eq!(s.median(0, 3), 1.0);
    }
}
