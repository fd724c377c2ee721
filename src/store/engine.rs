//! The store's in-memory engine: series (sorted label sets, `__name__`
//! among them) with one chunk list per retention tier, a postings index
//! from label pairs to series, the series cap, retention by time and
//! eviction by size. Pure: no I/O and no clock; "now" is the newest
//! sample time seen, so replay and tests are deterministic. `persist`
//! puts it on disk.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use super::chunk::Chunk;
use super::tier::{OpenBucket, Tier};

/// Sorted by name; includes `__name__`.
pub type Labels = Vec<(String, String)>;

/// A label name and a predicate on its value ("" when absent).
pub type LabelMatcher<'a> = (&'a str, &'a dyn Fn(&str) -> bool);

/// Rows per chunk before it is sealed (Prometheus uses 120).
pub const CHUNK_ROWS: usize = 120;

/// One point as a query sees it: a raw sample has all five equal to its
/// value and `count` 1; a rollup row carries its step's aggregates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub time: i64,
    pub last: f64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: f64,
}

impl Point {
    pub fn raw(time: i64, value: f64) -> Self {
        Point {
            time,
            last: value,
            min: value,
            max: value,
            sum: value,
            count: 1.0,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct TierData {
    pub sealed: VecDeque<Chunk>,
    pub head: Chunk,
    /// Rollup tiers: the step being aggregated.
    pub open: Option<OpenBucket>,
}

#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub labels: Arc<Labels>,
    pub tiers: Vec<TierData>,
    pub last_time: i64,
    pub last_value: f64,
}

/// Why a sample was not stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub samples: u64,
    /// Not later than the series' last sample (duplicates on WAL replay
    /// land here too, which makes replay idempotent).
    pub out_of_order: u64,
    /// New series refused by `max_series`.
    pub series_overflow: u64,
    /// Chunks dropped to stay under `max_bytes`.
    pub evicted_chunks: u64,
}

pub struct Engine {
    pub(crate) tiers: Vec<Tier>,
    pub(crate) series: Vec<Option<Series>>,
    free: Vec<u32>,
    by_labels: HashMap<Arc<Labels>, u32>,
    /// label name -> value -> series ids.
    postings: BTreeMap<String, BTreeMap<String, BTreeSet<u32>>>,
    max_series: usize,
    live_series: usize,
    /// Compressed bytes held in chunks (the snapshot's size, less labels).
    chunk_bytes: usize,
    max_bytes: u64,
    pub(crate) newest: i64,
    pub counts: Counts,
}

impl Engine {
    pub fn new(tiers: Vec<Tier>, max_series: usize, max_bytes: u64) -> Self {
        Engine {
            tiers,
            series: Vec::new(),
            free: Vec::new(),
            by_labels: HashMap::new(),
            postings: BTreeMap::new(),
            max_series,
            live_series: 0,
            chunk_bytes: 0,
            max_bytes,
            newest: i64::MIN,
            counts: Counts::default(),
        }
    }

    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    pub fn series_count(&self) -> usize {
        self.live_series
    }

    /// Compressed sample bytes in memory (chunks only).
    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    fn new_tier_data(tier: &Tier) -> TierData {
        TierData {
            sealed: VecDeque::new(),
            head: Chunk::new(tier.width()),
            open: None,
        }
    }

    /// The id of `labels`' series, created if the cap allows.
    fn series_id(&mut self, labels: &Labels) -> Option<u32> {
        if let Some(id) = self.by_labels.get(labels) {
            return Some(*id);
        }
        if self.live_series >= self.max_series {
            self.counts.series_overflow += 1;
            return None;
        }
        let labels = Arc::new(labels.clone());
        let series = Series {
            labels: labels.clone(),
            tiers: self.tiers.iter().map(Self::new_tier_data).collect(),
            last_time: i64::MIN,
            last_value: 0.0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.series[id as usize] = Some(series);
                id
            }
            None => {
                self.series.push(Some(series));
                (self.series.len() - 1) as u32
            }
        };
        for (name, value) in labels.iter() {
            self.postings
                .entry(name.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(id);
        }
        self.by_labels.insert(labels, id);
        self.live_series += 1;
        Some(id)
    }

    /// Adds one sample; `accumulate` adds `value` to the series' last
    /// value first (OTLP delta sums become cumulative counters).
    pub fn append(&mut self, labels: &Labels, time: i64, value: f64, accumulate: bool) {
        let Some(id) = self.series_id(labels) else {
            return;
        };
        let Some(series) = self.series[id as usize].as_mut() else {
            return;
        };
        if time <= series.last_time {
            self.counts.out_of_order += 1;
            return;
        }
        let value = if accumulate && series.last_time != i64::MIN {
            series.last_value + value
        } else {
            value
        };
        series.last_time = time;
        series.last_value = value;
        self.counts.samples += 1;
        self.newest = self.newest.max(time);
        for (tier, data) in self.tiers.iter().zip(series.tiers.iter_mut()) {
            let row = if tier.is_raw() {
                Some((time, vec![value]))
            } else {
                let step = tier.resolution_ms;
                let bucket = time.div_euclid(step) * step;
                match &mut data.open {
                    Some(open) if open.bucket == bucket => {
                        open.add(time, value);
                        None
                    }
                    open => {
                        let closed = open.take().map(|o| o.row());
                        *open = Some(OpenBucket::new(bucket, time, value));
                        closed
                    }
                }
            };
            if let Some((row_time, values)) = row {
                let before = data.head.encoded_bytes();
                data.head.push(row_time, &values);
                self.chunk_bytes += data.head.encoded_bytes() - before;
                if data.head.len() >= CHUNK_ROWS {
                    let full = std::mem::replace(&mut data.head, Chunk::new(tier.width()));
                    data.sealed.push_back(full);
                }
            }
        }
    }

    /// Drops chunks past each tier's `keep` and series left with nothing,
    /// then evicts the oldest chunks (finest tier first) while over
    /// `max_bytes`.
    pub fn enforce_retention(&mut self) {
        if self.newest == i64::MIN {
            return;
        }
        let mut freed = 0usize;
        let mut emptied = Vec::new();
        for (id, slot) in self.series.iter_mut().enumerate() {
            let Some(series) = slot else { continue };
            for (tier, data) in self.tiers.iter().zip(series.tiers.iter_mut()) {
                let cutoff = self.newest - tier.keep_ms;
                while data.sealed.front().is_some_and(|c| c.last_time() < cutoff) {
                    if let Some(chunk) = data.sealed.pop_front() {
                        freed += chunk.encoded_bytes();
                    }
                }
                if !data.head.is_empty() && data.head.last_time() < cutoff {
                    freed += data.head.encoded_bytes();
                    data.head = Chunk::new(tier.width());
                }
                if data.open.as_ref().is_some_and(|o| o.last_time < cutoff) {
                    data.open = None;
                }
            }
            let longest = self.tiers.iter().map(|t| t.keep_ms).max().unwrap_or(0);
            if series.last_time < self.newest - longest {
                emptied.push(id as u32);
            }
        }
        self.chunk_bytes = self.chunk_bytes.saturating_sub(freed);
        for id in emptied {
            self.remove_series(id);
        }
        self.evict_to_size();
    }

    fn evict_to_size(&mut self) {
        let limit = self.max_bytes as usize;
        for tier in 0..self.tiers.len() {
            while self.chunk_bytes > limit {
                // The series whose oldest sealed chunk in this tier is oldest.
                let oldest = self
                    .series
                    .iter()
                    .enumerate()
                    .filter_map(|(id, s)| {
                        let s = s.as_ref()?;
                        Some((s.tiers[tier].sealed.front()?.first_time(), id))
                    })
                    .min();
                let Some((_, id)) = oldest else { break };
                if let Some(chunk) = self.series[id]
                    .as_mut()
                    .and_then(|s| s.tiers[tier].sealed.pop_front())
                {
                    self.chunk_bytes = self.chunk_bytes.saturating_sub(chunk.encoded_bytes());
                    self.counts.evicted_chunks += 1;
                }
            }
        }
    }

    fn remove_series(&mut self, id: u32) {
        let Some(series) = self.series[id as usize].take() else {
            return;
        };
        for data in &series.tiers {
            let bytes: usize = data.sealed.iter().map(Chunk::encoded_bytes).sum();
            self.chunk_bytes = self
                .chunk_bytes
                .saturating_sub(bytes + data.head.encoded_bytes());
        }
        for (name, value) in series.labels.iter() {
            if let Some(values) = self.postings.get_mut(name) {
                if let Some(ids) = values.get_mut(value) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(name);
                }
            }
        }
        self.by_labels.remove(&series.labels);
        self.free.push(id);
        self.live_series -= 1;
    }

    /// Series whose labels satisfy `matches` for every `(name, predicate)`;
    /// a predicate sees "" for a missing label, as PromQL's matchers do.
    pub fn select_ids(&self, matchers: &[LabelMatcher]) -> Vec<u32> {
        // Start from the smallest candidate set a matcher that rejects ""
        // gives through the postings; otherwise from every series.
        let mut candidates: Option<BTreeSet<u32>> = None;
        for (name, predicate) in matchers {
            if predicate("") {
                continue;
            }
            let mut ids = BTreeSet::new();
            if let Some(values) = self.postings.get(*name) {
                for (value, set) in values {
                    if predicate(value) {
                        ids.extend(set);
                    }
                }
            }
            candidates = Some(match candidates {
                Some(c) => c.intersection(&ids).copied().collect(),
                None => ids,
            });
        }
        let all = || {
            self.series
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_some())
                .map(|(i, _)| i as u32)
                .collect::<Vec<_>>()
        };
        let ids = match candidates {
            Some(c) => c.into_iter().collect(),
            None => all(),
        };
        ids.into_iter()
            .filter(|id| {
                let Some(series) = self.series[*id as usize].as_ref() else {
                    return false;
                };
                matchers.iter().all(|(name, predicate)| {
                    let value = series
                        .labels
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("");
                    predicate(value)
                })
            })
            .collect()
    }

    pub fn labels_of(&self, id: u32) -> Option<Arc<Labels>> {
        self.series
            .get(id as usize)?
            .as_ref()
            .map(|s| s.labels.clone())
    }

    /// The tier a query should read: the coarsest whose resolution is at
    /// most `resolution_ms` and whose retention reaches back to `start`;
    /// else the finest tier that reaches `start`; else the longest kept.
    pub fn pick_tier(&self, start: i64, resolution_ms: i64) -> usize {
        let reaches = |t: &Tier| self.newest == i64::MIN || start >= self.newest - t.keep_ms;
        let fitting = self
            .tiers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.resolution_ms <= resolution_ms.max(0) && reaches(t))
            .max_by_key(|(_, t)| t.resolution_ms);
        if let Some((i, _)) = fitting {
            return i;
        }
        if let Some((i, _)) = self
            .tiers
            .iter()
            .enumerate()
            .filter(|(_, t)| reaches(t))
            .min_by_key(|(_, t)| t.resolution_ms)
        {
            return i;
        }
        self.tiers
            .iter()
            .enumerate()
            .max_by_key(|(_, t)| t.keep_ms)
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Points of series `id` in tier `tier` with `start <= time <= end`.
    pub fn points(&self, id: u32, tier: usize, start: i64, end: i64) -> Vec<Point> {
        let mut out = Vec::new();
        let Some(series) = self.series.get(id as usize).and_then(|s| s.as_ref()) else {
            return out;
        };
        let Some(data) = series.tiers.get(tier) else {
            return out;
        };
        let raw = self.tiers[tier].is_raw();
        for chunk in data.sealed.iter().chain(std::iter::once(&data.head)) {
            if chunk.is_empty() || chunk.last_time() < start || chunk.first_time() > end {
                continue;
            }
            chunk.for_each(|time, values| {
                if time < start || time > end {
                    return;
                }
                out.push(if raw {
                    Point::raw(time, values[0])
                } else {
                    super::tier::point_of(time, values)
                });
            });
        }
        if let Some(open) = &data.open {
            let (time, values) = open.row();
            if time >= start && time <= end {
                out.push(super::tier::point_of(time, &values));
            }
        }
        out
    }

    /// Every label name, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.postings.keys().cloned().collect()
    }

    /// Every value of label `name`, sorted.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.postings
            .get(name)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Puts back a series read from a snapshot.
    pub(crate) fn restore_series(&mut self, series: Series) {
        let labels = series.labels.clone();
        if self.by_labels.contains_key(&labels) {
            return;
        }
        for data in &series.tiers {
            self.chunk_bytes += data.sealed.iter().map(Chunk::encoded_bytes).sum::<usize>()
                + data.head.encoded_bytes();
        }
        self.newest = self.newest.max(series.last_time);
        let id = self.series.len() as u32;
        for (name, value) in labels.iter() {
            self.postings
                .entry(name.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(id);
        }
        self.series.push(Some(series));
        self.by_labels.insert(labels, id);
        self.live_series += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(name: &str, instance: &str) -> Labels {
        vec![
            ("__name__".into(), name.into()),
            ("instance".into(), instance.into()),
        ]
    }

    fn engine() -> Engine {
        Engine::new(Tier::defaults(), 10, u64::MAX)
    }

    #[test]
    fn rollup_keeps_min_max_sum_count_last_per_step() {
        let mut e = engine();
        let l = labels("m", "a");
        // 5m step: samples at 0..=290s (one step), then one in the next.
        for (i, v) in [3.0, 1.0, 4.0, 1.0, 5.0].iter().enumerate() {
            e.append(&l, i as i64 * 60_000, *v, false);
        }
        e.append(&l, 300_000, 9.0, false);
        let id = e.select_ids(&[("__name__", &|v: &str| v == "m")])[0];
        let five = e.points(id, 1, 0, i64::MAX);
        assert_eq!(five.len(), 2);
        assert_eq!(
            five[0],
            Point {
                time: 240_000,
                last: 5.0,
                min: 1.0,
                max: 5.0,
                sum: 14.0,
                count: 5.0
            }
        );
        assert_eq!(five[1].last, 9.0);
        assert_eq!(e.points(id, 0, 0, i64::MAX).len(), 6);
    }

    #[test]
    fn series_beyond_the_cap_are_counted_not_stored() {
        let mut e = Engine::new(Tier::defaults(), 2, u64::MAX);
        for i in 0..5 {
            e.append(&labels("m", &i.to_string()), 1, 1.0, false);
        }
        assert_eq!(e.series_count(), 2);
        assert_eq!(e.counts.series_overflow, 3);
    }

    #[test]
    fn retention_drops_old_raw_chunks_but_keeps_rollups() {
        let mut e = engine();
        let l = labels("m", "a");
        // Three hours at 10 s.
        for i in 0..1080 {
            e.append(&l, i * 10_000, i as f64, false);
        }
        e.enforce_retention();
        let id = e.select_ids(&[("instance", &|v: &str| v == "a")])[0];
        let raw = e.points(id, 0, 0, i64::MAX);
        assert!(raw[0].time >= e.newest - 3_600_000 - CHUNK_ROWS as i64 * 10_000);
        assert_eq!(e.points(id, 1, 0, i64::MAX)[0].time, 290_000);
    }

    #[test]
    fn size_cap_evicts_oldest_raw_chunks_first() {
        let mut e = Engine::new(Tier::defaults(), 10, 400);
        let l = labels("m", "a");
        for i in 0..1000 {
            e.append(&l, i * 10_000, (i * 7 % 13) as f64, false);
        }
        e.enforce_retention();
        assert!(e.chunk_bytes() <= 400);
        assert!(e.counts.evicted_chunks > 0);
    }

    #[test]
    fn duplicates_and_old_samples_are_counted() {
        let mut e = engine();
        let l = labels("m", "a");
        e.append(&l, 10, 1.0, false);
        e.append(&l, 10, 1.0, false);
        e.append(&l, 5, 1.0, false);
        assert_eq!(e.counts.out_of_order, 2);
        assert_eq!(e.counts.samples, 1);
    }

    #[test]
    fn delta_points_accumulate() {
        let mut e = engine();
        let l = labels("m", "a");
        e.append(&l, 1, 2.0, true);
        e.append(&l, 2, 3.0, true);
        let id = e.select_ids(&[])[0];
        assert_eq!(e.points(id, 0, 0, 10)[1].last, 5.0);
    }
}
