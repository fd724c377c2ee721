//! Masking: the variable parts of a token (numbers, hex, IP addresses,
//! UUIDs, durations, paths) are replaced by a typed placeholder such as
//! `<NUM>` before mining, so `took 12ms` and `took 3s` look alike from the
//! start and the miner spends its similarity budget on the words that
//! matter. The classes that depend on the neighbouring tokens (dates,
//! units) are in `context`; each class can be switched off in
//! [`MaskConfig`].
//!
//! A hand-written byte scanner rather than a list of regexes: one pass per
//! token that skips letters quickly, no allocation, and the classes can look
//! at the bytes around them (an IP address is only one when it is not part
//! of a longer dotted run).

use serde::{Deserialize, Serialize};

/// The placeholder classes, as they appear in templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VarClass {
    Number,
    Hex,
    Ip,
    Uuid,
    Duration,
    Date,
    Unit,
    Path,
}

impl VarClass {
    pub const ALL: [VarClass; 8] = [
        VarClass::Number,
        VarClass::Hex,
        VarClass::Ip,
        VarClass::Uuid,
        VarClass::Duration,
        VarClass::Date,
        VarClass::Unit,
        VarClass::Path,
    ];

    pub fn placeholder(self) -> &'static str {
        match self {
            VarClass::Number => "<NUM>",
            VarClass::Hex => "<HEX>",
            VarClass::Ip => "<IP>",
            VarClass::Uuid => "<UUID>",
            VarClass::Duration => "<DURATION>",
            VarClass::Date => "<DATE>",
            VarClass::Unit => "<UNIT>",
            VarClass::Path => "<PATH>",
        }
    }
}

/// Whether a (masked) token looks like a variable: it holds a digit or a
/// placeholder. Such tokens never route the prefix tree and never freeze.
pub fn looks_variable(text: &str) -> bool {
    let mut angle = false;
    for b in text.bytes() {
        if b.is_ascii_digit() {
            return true;
        }
        angle |= b == b'<';
    }
    angle
        && (text.contains(LONG_PLACEHOLDER)
            || VarClass::ALL.iter().any(|c| text.contains(c.placeholder())))
}

/// What a token longer than the configured limit becomes.
pub const LONG_PLACEHOLDER: &str = "<LONG>";

/// Which classes are masked. Defaults: all of them, chosen by measuring
/// grouping accuracy on ten loghub systems (see the README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskConfig {
    pub numbers: bool,
    /// Digit runs glued to letters (`eth0`, `t761`, `blk_123`) are masked
    /// too; off, only free-standing numbers are.
    pub digits_in_words: bool,
    pub hex: bool,
    /// Hex runs without a `0x` prefix need at least this many characters
    /// and both a digit and a letter, so words like `cafe` stay words.
    pub hex_min_len: usize,
    pub ip: bool,
    pub uuid: bool,
    pub durations: bool,
    /// Month and weekday names next to a number or to each other
    /// (`Sun Jul  3 10:05:25 2005`).
    pub dates: bool,
    /// A size or time unit standing after a number (`5.4 KB`, `30 ms`):
    /// programs pick the unit by magnitude, so it varies with the value.
    pub units: bool,
    /// File paths of two or more segments (`/var/lib/x`, `C:\Windows\x`).
    pub paths: bool,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            numbers: true,
            digits_in_words: true,
            hex: true,
            hex_min_len: 4,
            ip: true,
            uuid: true,
            durations: true,
            dates: true,
            units: true,
            paths: true,
        }
    }
}

impl MaskConfig {
    /// No masking at all (the miner then only learns by generalising).
    pub fn none() -> Self {
        MaskConfig {
            numbers: false,
            digits_in_words: false,
            hex: false,
            hex_min_len: usize::MAX,
            ip: false,
            uuid: false,
            durations: false,
            dates: false,
            units: false,
            paths: false,
        }
    }
}

const DURATION_UNITS: &[&str] = &[
    "ns", "us", "µs", "ms", "s", "sec", "secs", "m", "min", "mins", "h", "hr", "hrs", "d",
];

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Appends `token`, masked, to `out`. Returns whether anything was masked.
pub fn mask_token(token: &str, config: &MaskConfig, out: &mut String) -> bool {
    let bytes = token.as_bytes();
    let mut masked = false;
    let mut i = 0;
    let mut literal_start = 0;
    while i < bytes.len() {
        if let Some((class, end)) = match_at(bytes, i, config) {
            out.push_str(&token[literal_start..i]);
            out.push_str(class.placeholder());
            masked = true;
            i = end;
            literal_start = end;
        } else if bytes[i].is_ascii_alphabetic() {
            // No class starts inside a word except at a digit: skip to the
            // next digit or non-letter.
            i = run(bytes, i + 1, |b| b.is_ascii_alphabetic());
        } else {
            i += char_len(bytes[i]);
        }
    }
    out.push_str(&token[literal_start..]);
    masked
}

fn char_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// The class and end of a variable starting at `i`, if one does.
fn match_at(bytes: &[u8], i: usize, config: &MaskConfig) -> Option<(VarClass, usize)> {
    let at_boundary = i == 0 || !is_word_byte(bytes[i - 1]);
    let b = bytes[i];
    if config.paths
        && at_boundary
        && let Some(end) = path_at(bytes, i)
    {
        return Some((VarClass::Path, end));
    }
    if at_boundary && is_hex(b) {
        if config.uuid
            && let Some(end) = uuid_at(bytes, i)
        {
            return Some((VarClass::Uuid, end));
        }
        if config.ip
            && let Some(end) = ipv6_at(bytes, i)
        {
            return Some((VarClass::Ip, end));
        }
    }
    if at_boundary && b.is_ascii_digit() {
        if config.ip
            && let Some(end) = ipv4_at(bytes, i)
        {
            return Some((VarClass::Ip, end));
        }
        if config.hex
            && b == b'0'
            && matches!(bytes.get(i + 1), Some(b'x' | b'X'))
            && bytes.get(i + 2).is_some_and(|&b| is_hex(b))
        {
            let end = run(bytes, i + 2, is_hex);
            if ends_word(bytes, end) {
                return Some((VarClass::Hex, end));
            }
        }
    }
    if at_boundary && config.hex && is_hex(b) {
        let end = run(bytes, i, is_hex);
        let span = &bytes[i..end];
        let digits = span.iter().any(u8::is_ascii_digit);
        let letters = span.iter().any(u8::is_ascii_alphabetic);
        // Eight or more of a-f alone (`ffffffff`) is a value, not a word.
        if span.len() >= config.hex_min_len
            && ends_word(bytes, end)
            && letters
            && (digits || span.len() >= 8)
        {
            return Some((VarClass::Hex, end));
        }
    }
    let signed =
        (b == b'-' || b == b'+') && at_boundary && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
    if (b.is_ascii_digit() || signed) && (at_boundary || config.digits_in_words) {
        let start = if signed { i + 1 } else { i };
        let mut end = run(bytes, start, |b| b.is_ascii_digit());
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = run(bytes, end + 1, |b| b.is_ascii_digit());
        }
        if config.durations
            && let Some(unit_end) = duration_unit(bytes, end)
        {
            return Some((VarClass::Duration, unit_end));
        }
        if config.numbers && (config.digits_in_words || ends_word(bytes, end)) {
            return Some((VarClass::Number, end));
        }
    }
    None
}

fn run(bytes: &[u8], from: usize, class: impl Fn(u8) -> bool) -> usize {
    let mut end = from;
    while end < bytes.len() && class(bytes[end]) {
        end += 1;
    }
    end
}

fn ends_word(bytes: &[u8], end: usize) -> bool {
    end >= bytes.len() || !is_word_byte(bytes[end])
}

fn duration_unit(bytes: &[u8], end: usize) -> Option<usize> {
    let rest = &bytes[end..];
    DURATION_UNITS
        .iter()
        .filter(|unit| rest.starts_with(unit.as_bytes()))
        .map(|unit| end + unit.len())
        .filter(|&unit_end| ends_word(bytes, unit_end))
        .max()
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || b >= 0x80
        || matches!(b, b'.' | b'_' | b'-' | b'~' | b'+' | b'@' | b'%' | b'*')
}

/// A Unix path (`/a/b...`) or a Windows one (`C:\a\b...`) of two or more
/// segments; a trailing `.` is punctuation.
fn path_at(bytes: &[u8], i: usize) -> Option<usize> {
    let (separator, start) = match bytes.get(i..i + 3) {
        Some([drive, b':', b'\\']) if drive.is_ascii_alphabetic() => (b'\\', i + 2),
        _ if bytes[i] == b'/' && (i == 0 || bytes[i - 1] != b'/') => (b'/', i),
        _ => return None,
    };
    let mut end = start;
    let mut segments = 0;
    while bytes.get(end) == Some(&separator) {
        let segment_end = run(bytes, end + 1, is_path_byte);
        if segment_end == end + 1 {
            break;
        }
        segments += 1;
        end = segment_end;
    }
    while end > start && bytes[end - 1] == b'.' {
        end -= 1;
    }
    (segments >= 2).then_some(end)
}

fn uuid_at(bytes: &[u8], i: usize) -> Option<usize> {
    let mut p = i;
    for (n, len) in [8, 4, 4, 4, 12].into_iter().enumerate() {
        if n > 0 {
            if bytes.get(p) != Some(&b'-') {
                return None;
            }
            p += 1;
        }
        if run(bytes, p, is_hex) != p + len {
            return None;
        }
        p += len;
    }
    ends_word(bytes, p).then_some(p)
}

/// Four dotted octets, then an optional `:port`; not part of a longer
/// dotted run (a version like `1.2.3.4.5` is not an address).
fn ipv4_at(bytes: &[u8], i: usize) -> Option<usize> {
    let mut p = i;
    for n in 0..4 {
        if n > 0 {
            if bytes.get(p) != Some(&b'.') {
                return None;
            }
            p += 1;
        }
        let end = run(bytes, p, |b| b.is_ascii_digit());
        if end == p || end - p > 3 {
            return None;
        }
        let octet: u32 = std::str::from_utf8(&bytes[p..end]).ok()?.parse().ok()?;
        if octet > 255 {
            return None;
        }
        p = end;
    }
    if bytes.get(p) == Some(&b'.') && bytes.get(p + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    if bytes.get(p) == Some(&b':') && bytes.get(p + 1).is_some_and(u8::is_ascii_digit) {
        p = run(bytes, p + 1, |b| b.is_ascii_digit());
    }
    ends_word(bytes, p).then_some(p)
}

/// An IPv6 address as the standard library parses it, with at least two
/// colons, so times like `12:30` are not addresses.
fn ipv6_at(bytes: &[u8], i: usize) -> Option<usize> {
    let end = run(bytes, i, |b| is_hex(b) || b == b':' || b == b'.');
    let mut candidate = &bytes[i..end];
    // A trailing `:` or `.` is punctuation, not part of the address.
    while let [rest @ .., b':' | b'.'] = candidate {
        if candidate.ends_with(b"::") {
            break;
        }
        candidate = rest;
    }
    if candidate.iter().filter(|&&b| b == b':').count() < 2 {
        return None;
    }
    let text = std::str::from_utf8(candidate).ok()?;
    text.parse::<std::net::Ipv6Addr>().ok()?;
    let end = i + candidate.len();
    ends_word(bytes, end).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(token: &str) -> String {
        let mut out = String::new();
        mask_token(token, &MaskConfig::default(), &mut out);
        out
    }

    #[test]
    fn masks_each_class_and_keeps_the_punctuation_around_it() {
        assert_eq!(mask("1973"), "<NUM>");
        assert_eq!(mask("(HWID=1973)"), "(HWID=<NUM>)");
        assert_eq!(mask("-42"), "<NUM>");
        assert_eq!(mask("3.25"), "<NUM>");
        assert_eq!(mask("0x7fed806eb5d"), "<HEX>");
        assert_eq!(mask("9f4ef63"), "<HEX>");
        assert_eq!(mask("10.10.34.11"), "<IP>");
        assert_eq!(mask("/10.10.34.11:45307"), "/<IP>");
        assert_eq!(mask("fe80::1"), "<IP>");
        assert_eq!(mask("[2001:db8::7]:443"), "[<IP>]:<NUM>");
        assert_eq!(mask("123e4567-e89b-12d3-a456-426614174000"), "<UUID>");
        assert_eq!(mask("10ms"), "<DURATION>");
        assert_eq!(mask("took=1.5s,"), "took=<DURATION>,");
        assert_eq!(mask("(/var/lib/ganglia/x.rrd):"), "(<PATH>):");
        assert_eq!(mask("'/udev/vcs2'"), "'<PATH>'");
        assert_eq!(mask(r"C:\Windows\winsxs\x.dll,"), "<PATH>,");
        assert_eq!(mask("/etc/cron.hourly."), "<PATH>.");
    }

    #[test]
    fn leaves_words_alone() {
        assert_eq!(mask("cafe"), "cafe");
        assert_eq!(mask("decade"), "decade");
        assert_eq!(mask("ffffffff"), "<HEX>");
        assert_eq!(mask("terminating"), "terminating");
        assert_eq!(mask("12:30"), "<NUM>:<NUM>");
        assert_eq!(mask("1.2.3.4.5"), "<NUM>.<NUM>.<NUM>");
        assert_eq!(mask("/proc"), "/proc");
        assert_eq!(mask("and/or"), "and/or");
    }

    #[test]
    fn digits_in_words_follow_the_switch() {
        let mut out = String::new();
        let mut config = MaskConfig::default();
        mask_token("eth0", &config, &mut out);
        assert_eq!(out, "eth<NUM>");
        out.clear();
        config.digits_in_words = false;
        mask_token("eth0", &config, &mut out);
        assert_eq!(out, "eth0");
        out.clear();
        mask_token("t761", &config, &mut out);
        assert_eq!(out, "t761");
        out.clear();
        // `_` separates words, so the number after it stands free.
        mask_token("blk_-123", &config, &mut out);
        assert_eq!(out, "blk_<NUM>");
    }

    #[test]
    fn none_masks_nothing() {
        let mut out = String::new();
        assert!(!mask_token(
            "10.0.0.1:80 0x1f 12ms",
            &MaskConfig::none(),
            &mut out
        ));
        assert_eq!(out, "10.0.0.1:80 0x1f 12ms");
    }
}
