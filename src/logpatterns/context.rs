//! Token classes decided by the neighbouring tokens rather than by the
//! token alone: a month or weekday name is a date only next to a number or
//! another such name (`Sun Jul  3 10:05:25`, but not `may be`), and a unit
//! only right after a number (`5.4 KB`, `30 ms`).

const UNITS: &[&str] = &[
    "B", "KB", "kB", "MB", "GB", "TB", "PB", "KiB", "MiB", "GiB", "TiB", "ns", "us", "µs", "ms",
    "s", "sec", "secs", "min", "mins",
];

/// A unit, optionally followed by punctuation: returns that punctuation.
pub fn unit_suffix(token: &str) -> Option<&str> {
    let end = token
        .find(|c: char| c.is_ascii_punctuation())
        .unwrap_or(token.len());
    let (word, rest) = token.split_at(end);
    (UNITS.contains(&word) && rest.bytes().all(|b| b.is_ascii_punctuation())).then_some(rest)
}

/// A month or weekday name, optionally followed by `,` (`Jul`, `Monday,`).
pub fn is_date_name(token: &str) -> bool {
    let word = token.strip_suffix(',').unwrap_or(token);
    let bytes = word.as_bytes();
    if !(3..=9).contains(&bytes.len()) {
        return false;
    }
    // `| 0x20` lowercases ASCII letters and maps nothing else onto one.
    let full = match [bytes[0] | 0x20, bytes[1] | 0x20, bytes[2] | 0x20] {
        [b'j', b'a', b'n'] => "january",
        [b'f', b'e', b'b'] => "february",
        [b'm', b'a', b'r'] => "march",
        [b'a', b'p', b'r'] => "april",
        [b'm', b'a', b'y'] => "may",
        [b'j', b'u', b'n'] => "june",
        [b'j', b'u', b'l'] => "july",
        [b'a', b'u', b'g'] => "august",
        [b's', b'e', b'p'] => "september",
        [b'o', b'c', b't'] => "october",
        [b'n', b'o', b'v'] => "november",
        [b'd', b'e', b'c'] => "december",
        [b'm', b'o', b'n'] => "monday",
        [b't', b'u', b'e'] => "tuesday",
        [b'w', b'e', b'd'] => "wednesday",
        [b't', b'h', b'u'] => "thursday",
        [b'f', b'r', b'i'] => "friday",
        [b's', b'a', b't'] => "saturday",
        [b's', b'u', b'n'] => "sunday",
        _ => return false,
    };
    bytes.len() == 3 || full.eq_ignore_ascii_case(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_names_in_any_case_with_an_optional_comma() {
        for name in ["Jul", "jul", "JULY", "Sun", "Wednesday", "dec,"] {
            assert!(is_date_name(name), "{name}");
        }
        for word in ["Julius", "sept", "mayday", "Ju", "sunny"] {
            assert!(!is_date_name(word), "{word}");
        }
    }

    #[test]
    fn units_keep_the_punctuation_after_them() {
        assert_eq!(unit_suffix("KB"), Some(""));
        assert_eq!(unit_suffix("KB),"), Some("),"));
        assert_eq!(unit_suffix("ms"), Some(""));
        assert_eq!(unit_suffix("KBytes"), None);
        assert_eq!(unit_suffix("bytes"), None);
    }
}
