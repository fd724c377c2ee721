//! OpenTelemetry consistent probability sampling (the W3C `ot` tracestate
//! member): 56-bit randomness (`rv`, or the low 7 bytes of the trace id)
//! against a 56-bit rejection threshold (`th`), sampled when
//! `randomness >= threshold`. Pure: no I/O, no clock.
//!
//! Written from the OpenTelemetry specification ("TraceState handling"
//! and "Probability sampling") and checked against the vectors the
//! Collector's probabilistic sampler is tested with (see the tests below).

/// 2^56: the number of distinct randomness values.
pub const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
/// The smallest probability a threshold can express.
pub const MIN_PROBABILITY: f64 = 1.0 / MAX_ADJUSTED_COUNT as f64;
const HEX_DIGITS: u32 = 14;

/// A rejection threshold: values below it are not sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Threshold(pub u64);

impl Threshold {
    pub const ALWAYS: Threshold = Threshold(0);
    pub const NEVER: Threshold = Threshold(MAX_ADJUSTED_COUNT);

    pub fn should_sample(self, randomness: u64) -> bool {
        randomness >= self.0
    }

    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED_COUNT - self.0.min(MAX_ADJUSTED_COUNT)) as f64 / MAX_ADJUSTED_COUNT as f64
    }

    /// The `th` value: 14 hex digits without trailing zeros, `0` for
    /// always; `None` for never (it has no encoding).
    pub fn tvalue(self) -> Option<String> {
        if self.0 >= MAX_ADJUSTED_COUNT {
            return None;
        }
        if self.0 == 0 {
            return Some("0".into());
        }
        let text = format!("{:014x}", self.0);
        Some(text.trim_end_matches('0').to_string())
    }

    /// Parses a `th` value: 1 to 14 hex digits, right-padded with zeros.
    pub fn parse(text: &str) -> Option<Threshold> {
        if text.is_empty() || text.len() > HEX_DIGITS as usize {
            return None;
        }
        let value = u64::from_str_radix(text, 16).ok()?;
        Some(Threshold(value << (4 * (HEX_DIGITS - text.len() as u32))))
    }

    /// The threshold for `probability` rounded to `precision` significant
    /// hex digits (leading zeros of the rejection probability do not count
    /// against it); precision 14 or more is exact.
    pub fn from_probability(probability: f64, precision: u32) -> Threshold {
        if probability >= 1.0 {
            return Threshold::ALWAYS;
        }
        let probability = probability.max(MIN_PROBABILITY);
        let scaled = (probability * MAX_ADJUSTED_COUNT as f64).round() as u64;
        let mut rejected = MAX_ADJUSTED_COUNT - scaled.min(MAX_ADJUSTED_COUNT);
        let mut precision = precision;
        let mut reject = 1.0 - probability;
        while reject * 16.0 < 1.0 && precision < HEX_DIGITS {
            reject *= 16.0;
            precision += 1;
        }
        if precision < HEX_DIGITS {
            let shift = 4 * (HEX_DIGITS - precision);
            rejected += 1 << (shift - 1);
            rejected >>= shift;
            rejected <<= shift;
        }
        Threshold(rejected.min(MAX_ADJUSTED_COUNT))
    }
}

/// The randomness a trace id carries by W3C Trace Context Level 2: its
/// low 56 bits. `None` for the invalid all-zero id.
pub fn trace_id_randomness(trace_id: &[u8]) -> Option<u64> {
    if trace_id.len() != 16 || trace_id.iter().all(|b| *b == 0) {
        return None;
    }
    Some(
        trace_id[9..]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
    )
}

/// A span's tracestate with its `ot` member taken apart; the other
/// members are kept as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceState {
    /// `rv` as written (its case is kept) and its value.
    pub randomness: Option<(String, u64)>,
    pub threshold: Option<Threshold>,
    /// Other `ot` sub-keys, `key:value`, in order.
    ot_extra: Vec<String>,
    /// Other list members, `key=value`, in order.
    members: Vec<String>,
}

impl TraceState {
    /// Parses `raw`; `Err` when the `ot` member is malformed (a bad `rv`
    /// or `th`), as the Collector refuses it.
    pub fn parse(raw: &str) -> Result<TraceState, String> {
        let mut state = TraceState::default();
        for member in raw.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let Some(ot) = member.strip_prefix("ot=") else {
                state.members.push(member.to_string());
                continue;
            };
            for part in ot.split(';').filter(|p| !p.is_empty()) {
                let (key, value) = part
                    .split_once(':')
                    .ok_or_else(|| format!("tracestate ot member: `{part}` is not key:value"))?;
                match key {
                    "rv" => {
                        let valid = value.len() == HEX_DIGITS as usize;
                        let parsed = u64::from_str_radix(value, 16).ok().filter(|_| valid);
                        let rv = parsed.ok_or_else(|| {
                            format!("tracestate rv `{value}`: expected 14 hex digits")
                        })?;
                        state.randomness = Some((value.to_string(), rv));
                    }
                    "th" => {
                        state.threshold = Some(Threshold::parse(value).ok_or_else(|| {
                            format!("tracestate th `{value}`: expected 1 to 14 hex digits")
                        })?);
                    }
                    _ => state.ot_extra.push(part.to_string()),
                }
            }
        }
        Ok(state)
    }

    /// The tracestate text: the `ot` member first (W3C moves a modified
    /// member to the front), `rv` then `th` then other sub-keys.
    pub fn serialize(&self) -> String {
        let mut ot = Vec::new();
        if let Some((text, _)) = &self.randomness {
            ot.push(format!("rv:{text}"));
        }
        if let Some(tvalue) = self.threshold.and_then(Threshold::tvalue) {
            ot.push(format!("th:{tvalue}"));
        }
        ot.extend(self.ot_extra.iter().cloned());
        let mut members = Vec::new();
        if !ot.is_empty() {
            members.push(format!("ot={}", ot.join(";")));
        }
        members.extend(self.members.iter().cloned());
        members.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_round_to_the_precision_as_the_collector_does() {
        // The Collector's tracestate tests: 1 % exact, 1 % at 3 digits,
        // 40 % at 3 digits, 60 % at 4 digits, 50 %, 100 %.
        let tv = |p: f64, precision| Threshold::from_probability(p, precision).tvalue().unwrap();
        assert_eq!(tv(0.01, 14), "fd70a3d70a3d71");
        assert_eq!(tv(0.01, 3), "fd7");
        assert_eq!(tv(0.4, 3), "99a");
        assert_eq!(tv(0.6, 4), "6666");
        assert_eq!(tv(0.5, 4), "8");
        assert_eq!(tv(1.0, 4), "0");
        assert_eq!(Threshold::NEVER.tvalue(), None);
    }

    #[test]
    fn tracestate_keeps_other_members_and_normalises_th() {
        let mut state = TraceState::parse("ot=rv:90000000000000;th:80000000000000").unwrap();
        assert_eq!(state.threshold, Some(Threshold(0x80000000000000)));
        assert_eq!(state.serialize(), "ot=rv:90000000000000;th:8");
        state = TraceState::parse("congo=t61rcWkgMzE,ot=rv:FD70A3D70A3D71;x:y").unwrap();
        assert_eq!(state.randomness.as_ref().unwrap().1, 0xFD70A3D70A3D71);
        state.threshold = Some(Threshold::from_probability(0.01, 14));
        assert_eq!(
            state.serialize(),
            "ot=rv:FD70A3D70A3D71;th:fd70a3d70a3d71;x:y,congo=t61rcWkgMzE"
        );
        assert!(TraceState::parse("ot=rv:123").is_err());
        assert!(TraceState::parse("ot=th:xyz").is_err());
        assert_eq!(TraceState::parse("").unwrap().serialize(), "");
    }

    #[test]
    fn trace_id_randomness_is_the_low_seven_bytes() {
        let mut id = [0xfeu8; 16];
        id[9..].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0]);
        assert_eq!(trace_id_randomness(&id), Some(0x80000000000000));
        assert_eq!(trace_id_randomness(&[0; 16]), None);
        assert_eq!(trace_id_randomness(&[1; 8]), None);
    }
}
