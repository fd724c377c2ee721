//! Human durations in config: `500ms`, `10s`, `2m`, `1h30m`, `3d`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

const EXPECTED: &str = "a duration with a unit, like 500ms, 10s, 2m or 1h30m";

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty duration: expected {EXPECTED}"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: expected {EXPECTED}"))?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "" => {
                return Err(format!(
                    "duration {text:?} has no unit: expected {EXPECTED}"
                ));
            }
            unit => {
                return Err(format!(
                    "unknown unit {unit:?} in duration {text:?}: expected one of ns, us, ms, s, m, h, d"
                ));
            }
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("duration {text:?} is out of range"))
}

/// `#[serde(with = "crate::config::duration")]` for `Duration` fields.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = DurationText::deserialize(deserializer)?;
    parse_duration(&text.0).map_err(serde::de::Error::custom)
}

/// `#[serde(default, with = "crate::config::duration::option")]` for
/// `Option<Duration>` fields.
pub mod option {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<DurationText>::deserialize(deserializer)? {
            Some(text) => parse_duration(&text.0)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Accepts strings only: a bare number would be ambiguous about its unit.
struct DurationText(String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationText, E> {
                if v == 0 {
                    return Ok(DurationText("0".into()));
                }
                Err(E::custom(format!(
                    "duration {v} has no unit: expected {EXPECTED}"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationText, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit: expected {EXPECTED}"
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DurationText, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit: expected {EXPECTED}"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A list of durations, `[1m, 5m]`, for `deserialize_with`.
pub fn list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<std::time::Duration>, D::Error> {
    use serde::Deserialize;
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|t| parse_duration(t).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86400)));
    }

    #[test]
    fn rejects_missing_or_unknown_units() {
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("10 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_duration("fast")
                .unwrap_err()
                .contains("invalid duration")
        );
    }
}
