//! Time in the units sidewatch uses, and the one place they convert.
//!
//! The graph's clock gives a `SystemTime`; OTLP carries Unix nanoseconds
//! (`u64`); alert and anomaly events and the alert engine hold Unix
//! seconds as `f64` (fractions kept, NaN-free by construction). Every
//! component converts through these functions instead of its own copy.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds of `time`; 0 before the epoch.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Unix nanoseconds of `time`, OTLP's unit; 0 before the epoch, saturating
/// in the year 2554.
pub fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Unix seconds as OTLP nanoseconds; negative or NaN seconds are 0.
pub fn nanos_from_seconds(seconds: f64) -> u64 {
    (seconds * 1e9).max(0.0) as u64
}

pub fn seconds_from_nanos(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// The instant `seconds` after the epoch (negative or NaN: the epoch).
pub fn system_time(seconds: f64) -> SystemTime {
    UNIX_EPOCH + Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or_default()
}

/// RFC 3339 with milliseconds, UTC: what Alertmanager's API and the
/// notification texts show.
pub fn rfc3339(seconds: f64) -> String {
    humantime::format_rfc3339_millis(system_time(seconds)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_convert_both_ways() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        assert_eq!(unix_seconds(t), 1_700_000_000.5);
        assert_eq!(unix_nanos(t), 1_700_000_000_500_000_000);
        assert_eq!(nanos_from_seconds(1.5), 1_500_000_000);
        assert_eq!(nanos_from_seconds(-1.0), 0);
        assert_eq!(seconds_from_nanos(2_500_000_000), 2.5);
        assert_eq!(system_time(f64::NAN), UNIX_EPOCH);
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
    }
}
