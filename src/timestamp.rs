//! Timestamps in the forms historical data uses: Unix seconds (integer or
//! fractional), or `YYYY-MM-DD HH:MM:SS` / RFC 3339 (`T`, fraction, `Z`),
//! read as UTC.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146097 + day_of_era - 719468
}

/// Unix seconds of `text`, or a message saying what was expected.
pub fn parse_unix_seconds(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok(seconds);
    }
    let expected =
        || format!("invalid timestamp {text:?}: expected Unix seconds or YYYY-MM-DD HH:MM:SS");
    let (date, time) = text.split_once([' ', 'T']).ok_or_else(expected)?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day)), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return Err(expected());
    };
    let time = time.trim_end_matches('Z');
    let mut time_parts = time.split(':');
    let (Some(hour), Some(minute), second) = (
        time_parts.next(),
        time_parts.next(),
        time_parts.next().unwrap_or("0"),
    ) else {
        return Err(expected());
    };
    let (hour, minute, second): (i64, i64, f64) = (
        hour.parse().map_err(|_| expected())?,
        minute.parse().map_err(|_| expected())?,
        second.parse().map_err(|_| expected())?,
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second >= 61.0
    {
        return Err(expected());
    }
    Ok((days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60) as f64 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_and_numbers() {
        assert_eq!(parse_unix_seconds("1970-01-01 00:00:00"), Ok(0.0));
        assert_eq!(parse_unix_seconds("2014-07-01 00:30:00"), Ok(1404174600.0));
        assert_eq!(
            parse_unix_seconds("2014-07-01T00:30:00.5Z"),
            Ok(1404174600.5)
        );
        assert_eq!(parse_unix_seconds("1404174600"), Ok(1404174600.0));
        assert!(parse_unix_seconds("yesterday").is_err());
        assert!(parse_unix_seconds("2014-13-01 00:00:00").is_err());
    }
}
