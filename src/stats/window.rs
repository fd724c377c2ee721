//! Sliding time windows made of sub-windows: a 1-minute window of 6 x 10 s
//! sub-windows slides every 10 s by clearing the oldest one, so it never
//! stores samples. Sub-windows are aligned to multiples of their length
//! since the Unix epoch; time is passed in (nanoseconds), so replay and
//! tests drive it.

/// What a sub-window accumulates.
pub trait Mergeable {
    fn merge_from(&mut self, other: &Self);
    fn clear(&mut self);
}

impl Mergeable for super::sketch::DDSketch {
    fn merge_from(&mut self, other: &Self) {
        // Sub-windows are made by one factory, so accuracies always match.
        let _ = self.merge(other);
    }

    fn clear(&mut self) {
        super::sketch::DDSketch::clear(self);
    }
}

#[derive(Debug, Clone)]
pub struct SlidingWindow<T> {
    sub_window_nanos: u64,
    /// Per slot: the sub-window number it holds (time / length), and data.
    slots: Vec<(u64, T)>,
}

impl<T: Mergeable + Clone> SlidingWindow<T> {
    /// A window of `sub_windows` slots of `window / sub_windows` each.
    pub fn new(window_nanos: u64, sub_windows: usize, empty: T) -> Self {
        let sub_windows = sub_windows.max(1);
        SlidingWindow {
            sub_window_nanos: (window_nanos / sub_windows as u64).max(1),
            slots: vec![(u64::MAX, empty); sub_windows],
        }
    }

    fn number(&self, now_nanos: u64) -> u64 {
        now_nanos / self.sub_window_nanos
    }

    /// The sub-window for time `at`, cleared first if it held an expired
    /// one. `None` for times older than the window: they are dropped.
    pub fn at(&mut self, at_nanos: u64, now_nanos: u64) -> Option<&mut T> {
        let current = self.number(now_nanos);
        let number = self.number(at_nanos).min(current);
        if current - number >= self.slots.len() as u64 {
            return None;
        }
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[(number % len) as usize];
        if slot.0 != number {
            slot.1.clear();
            slot.0 = number;
        }
        Some(&mut slot.1)
    }

    /// The merge of every sub-window still inside the window at `now`.
    pub fn merged(&self, now_nanos: u64, mut into: T) -> T {
        into.clear();
        for (number, data) in self.live(now_nanos) {
            let _ = number;
            into.merge_from(data);
        }
        into
    }

    /// Live sub-windows with their numbers.
    pub fn live(&self, now_nanos: u64) -> impl Iterator<Item = (u64, &T)> {
        let current = self.number(now_nanos);
        let len = self.slots.len() as u64;
        self.slots
            .iter()
            .filter(move |(number, _)| {
                *number != u64::MAX && *number <= current && current - number < len
            })
            .map(|(number, data)| (*number, data))
    }

    pub fn sub_window_nanos(&self) -> u64 {
        self.sub_window_nanos
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Default, PartialEq)]
    struct Count(u64);

    impl Mergeable for Count {
        fn merge_from(&mut self, other: &Self) {
            self.0 += other.0;
        }
        fn clear(&mut self) {
            self.0 = 0;
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn slides_evicting_exactly_the_expired_sub_windows() {
        // 60 s of 6 x 10 s.
        let mut window = SlidingWindow::new(60 * S, 6, Count(0));
        for second in 0..120u64 {
            window.at(second * S, second * S).unwrap().0 += 1;
            let now = second * S;
            // Live: the current sub-window and the 5 before it.
            let oldest_live = (now / (10 * S)).saturating_sub(5) * 10;
            let expected = second + 1 - oldest_live;
            assert_eq!(window.merged(now, Count(0)).0, expected, "at {second} s");
        }
    }

    #[test]
    fn a_jump_longer_than_the_window_clears_everything_and_old_data_is_dropped() {
        let mut window = SlidingWindow::new(60 * S, 6, Count(0));
        window.at(5 * S, 5 * S).unwrap().0 += 7;
        assert_eq!(window.merged(500 * S, Count(0)).0, 0);
        assert!(window.at(5 * S, 500 * S).is_none(), "older than the window");
        // Late but inside the window: counted in its own sub-window.
        window.at(480 * S, 500 * S).unwrap().0 += 1;
        assert_eq!(window.merged(500 * S, Count(0)).0, 1);
        assert_eq!(
            window.merged(541 * S, Count(0)).0,
            0,
            "480 s has slid out by 541 s"
        );
    }
}
