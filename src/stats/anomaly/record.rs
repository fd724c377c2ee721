//! The "beyond everything seen" rule: a value outside the whole range a
//! series has shown is an alarm on its own, without waiting for the
//! likelihood to build up. On NAB it catches most level shifts and spikes
//! on their first point.
//!
//! Pure noise sets new records too, at a rate of about 2/n at point n, so
//! the rule alone raised an alarm every few thousand points of stationary
//! noise. A new extreme alarms only when it passes the old range by
//! `margin` deviations, or when it follows another new extreme within
//! `cluster_points` points (the series is leaving its range, as a drift or
//! a shift does; noise records are isolated). `tolerance` of the range is
//! always allowed, so a flat series does not alarm on rounding, and on a
//! quantised series (integer counts) the margin is at least one step: a
//! count one above its old maximum is the smallest record there can be.

use super::detector::Direction;

#[derive(Debug, Clone)]
pub struct Range {
    min: f64,
    max: f64,
    last_record: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub struct RecordRule {
    /// Fraction of the range a value may pass it by without being a record.
    pub tolerance: f64,
    /// Deviations beyond the range that make a lone record an alarm.
    pub margin: f64,
    /// A record this many points after another one is an alarm at any size.
    pub cluster_points: usize,
    pub direction: Direction,
}

impl Default for Range {
    fn default() -> Self {
        Range {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last_record: None,
        }
    }
}

impl Range {
    /// Whether `value`, the `index`-th point, alarms as a new extreme;
    /// `deviation` is the baseline's scale and `step` the series'
    /// quantisation step (0 if unknown). Call before `extend`.
    pub fn is_alarm(
        &mut self,
        rule: &RecordRule,
        value: f64,
        deviation: f64,
        step: f64,
        index: usize,
    ) -> bool {
        if rule.tolerance <= 0.0 || self.min > self.max {
            return false;
        }
        let tolerance = rule.tolerance * (self.max - self.min);
        let above = value - (self.max + tolerance);
        let below = (self.min - tolerance) - value;
        let excess = match rule.direction {
            Direction::Above => above,
            Direction::Below => below,
            Direction::Both => above.max(below),
        };
        if excess <= 0.0 {
            return false;
        }
        let clustered = self
            .last_record
            .is_some_and(|at| index - at <= rule.cluster_points);
        self.last_record = Some(index);
        clustered || excess >= (rule.margin * deviation).max(step)
    }

    pub fn extend(&mut self, value: f64) {
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: RecordRule = RecordRule {
        tolerance: 0.01,
        margin: 0.25,
        cluster_points: 10,
        direction: Direction::Both,
    };

    fn range(values: &[f64]) -> Range {
        let mut r = Range::default();
        for v in values {
            r.extend(*v);
        }
        r
    }

    #[test]
    fn a_lone_record_needs_the_margin() {
        let mut r = range(&[0.0, 10.0]);
        // Deviation 2: the margin is 0.5 beyond max + 0.1 tolerance.
        assert!(!r.is_alarm(&RULE, 10.05, 2.0, 0.0, 100), "within tolerance");
        assert!(
            !r.is_alarm(&RULE, 10.3, 2.0, 0.0, 200),
            "a lone small record"
        );
        r.extend(10.3);
        assert!(r.is_alarm(&RULE, 11.5, 2.0, 0.0, 400), "beyond the margin");
        assert!(
            r.is_alarm(&RULE, -1.0, 2.0, 0.0, 500),
            "below by more than the margin"
        );
    }

    #[test]
    fn records_in_a_row_alarm_at_any_size() {
        let mut r = range(&[0.0, 10.0]);
        assert!(!r.is_alarm(&RULE, 10.2, 2.0, 0.0, 100));
        r.extend(10.2);
        assert!(
            r.is_alarm(&RULE, 10.4, 2.0, 0.0, 105),
            "second record within 10 points"
        );
        r.extend(10.4);
        assert!(!r.is_alarm(&RULE, 10.6, 2.0, 0.0, 200), "isolated again");
    }

    #[test]
    fn a_count_one_above_its_maximum_is_no_alarm() {
        let mut r = range(&[0.0, 9.0]);
        // Deviation 2 would make the margin 0.5: the step of 1 wins.
        assert!(!r.is_alarm(&RULE, 10.0, 2.0, 1.0, 100));
        r.extend(10.0);
        assert!(r.is_alarm(&RULE, 12.0, 2.0, 1.0, 200));
    }

    #[test]
    fn direction_limits_the_side() {
        let rule = RecordRule {
            direction: Direction::Above,
            ..RULE
        };
        let mut r = range(&[0.0, 10.0]);
        assert!(!r.is_alarm(&rule, -50.0, 1.0, 0.0, 100));
        assert!(r.is_alarm(&rule, 50.0, 1.0, 0.0, 200));
    }
}
