//! The Prometheus text exposition format (0.0.4) and the parts of
//! OpenMetrics 1.0 a scrape meets (`# UNIT`, `# EOF`, `_created`,
//! exemplars, float timestamps), parsed into metric families.
//!
//! Written here rather than taken from a crate: the crates on crates.io
//! (`prometheus-parse` and its ancestor) are regex-driven, do not know
//! OpenMetrics' `_created` or exemplars, and allocate a `String` per line;
//! the format is a small line grammar, and this parser borrows from the
//! body, reports the line of the first error and never panics (a property
//! test feeds it arbitrary text).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl Kind {
    fn parse(text: &str) -> Kind {
        match text {
            "counter" => Kind::Counter,
            "gauge" => Kind::Gauge,
            "histogram" => Kind::Histogram,
            "gaugehistogram" => Kind::GaugeHistogram,
            "summary" => Kind::Summary,
            "info" => Kind::Info,
            "stateset" => Kind::StateSet,
            _ => Kind::Unknown,
        }
    }

    /// Suffixes a sample of a family of this kind may add to its name.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Kind::Counter => &["_total", "_created"],
            Kind::Histogram => &["_bucket", "_sum", "_count", "_created"],
            Kind::GaugeHistogram => &["_bucket", "_gsum", "_gcount"],
            Kind::Summary => &["_sum", "_count", "_created"],
            Kind::Info => &["_info"],
            Kind::Gauge | Kind::StateSet | Kind::Unknown => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The full sample name (`http_requests_total`, `latency_bucket`).
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Milliseconds since the epoch, when the exposition gives one.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub kind: Kind,
    pub help: String,
    pub unit: String,
    pub samples: Vec<Sample>,
}

impl Family {
    /// The part of a sample's name after the family's name ("" for none).
    pub fn suffix<'a>(&self, sample: &'a Sample) -> &'a str {
        sample.name.get(self.name.len()..).unwrap_or("")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole exposition. `openmetrics` selects OpenMetrics rules:
/// timestamps in seconds, exemplars after ` # `, `# EOF` required.
pub fn parse(body: &str, openmetrics: bool) -> Result<Vec<Family>, ParseError> {
    let mut families: Vec<Family> = Vec::new();
    let mut saw_eof = false;
    for (index, raw) in body.lines().enumerate() {
        let line_no = index + 1;
        let error = |message: String| ParseError {
            line: line_no,
            message,
        };
        if saw_eof {
            if raw.trim().is_empty() {
                continue;
            }
            return Err(error("content after # EOF".into()));
        }
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            if comment == "EOF" {
                saw_eof = true;
                continue;
            }
            let mut parts = comment.splitn(3, [' ', '\t']);
            let keyword = parts.next().unwrap_or("");
            let (Some(name), rest) = (parts.next(), parts.next().unwrap_or("")) else {
                continue;
            };
            let name = unquote_name(name);
            match keyword {
                "TYPE" => {
                    let kind = Kind::parse(rest.trim());
                    match families.last_mut() {
                        Some(last) if last.name == name && last.samples.is_empty() => {
                            last.kind = kind
                        }
                        _ => families.push(family(name, kind)),
                    }
                }
                "HELP" | "UNIT" => {
                    let text = if keyword == "HELP" {
                        unescape(rest, false)
                    } else {
                        rest.to_string()
                    };
                    let last = match families.last_mut() {
                        Some(last) if last.name == name => last,
                        _ => {
                            families.push(family(name, Kind::Unknown));
                            families.last_mut().expect("just pushed")
                        }
                    };
                    if keyword == "HELP" {
                        last.help = text;
                    } else {
                        last.unit = text;
                    }
                }
                // Any other comment is a comment.
                _ => {}
            }
            continue;
        }
        let sample = parse_sample(line, openmetrics).map_err(error)?;
        let belongs = families.last().is_some_and(|f| {
            sample.name == f.name
                || sample
                    .name
                    .strip_prefix(f.name.as_str())
                    .is_some_and(|suffix| f.kind.suffixes().contains(&suffix))
        });
        if !belongs {
            families.push(family(&sample.name, Kind::Unknown));
        }
        families
            .last_mut()
            .expect("a family was pushed")
            .samples
            .push(sample);
    }
    if openmetrics && !saw_eof {
        return Err(ParseError {
            line: body.lines().count(),
            message: "OpenMetrics exposition without # EOF (truncated?)".into(),
        });
    }
    Ok(families)
}

fn family(name: &str, kind: Kind) -> Family {
    Family {
        name: name.to_string(),
        kind,
        help: String::new(),
        unit: String::new(),
        samples: Vec::new(),
    }
}

fn unquote_name(name: &str) -> &str {
    name.strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name)
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// `\\`, `\n` and (in label values) `\"`; an unknown escape is kept as is,
/// as Prometheus's own parser does.
fn unescape(text: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// A quoted string starting at `text[0] == '"'`: its unescaped content and
/// the rest after the closing quote.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let body = &text[1..];
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Ok((unescape(&body[..i], true), &body[i + 1..])),
            _ => {}
        }
    }
    Err("unterminated quoted string".into())
}

fn parse_sample(line: &str, openmetrics: bool) -> Result<Sample, String> {
    let line = line.trim_start();
    let name_end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
    let mut name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    if !name.is_empty() && !name.starts_with(is_name_start) {
        return Err(format!("metric name {name:?} starts with a digit"));
    }
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, quoted_name, after) = parse_labels(inner)?;
        labels = parsed;
        if let Some(quoted_name) = quoted_name {
            if !name.is_empty() {
                return Err("a metric name both before and inside the braces".into());
            }
            name = quoted_name;
        }
        rest = after;
    }
    if name.is_empty() {
        return Err(format!("expected a metric name at {:?}", truncate(line)));
    }
    let mut fields = rest.split_ascii_whitespace();
    let value_text = fields
        .next()
        .ok_or_else(|| format!("sample {name} has no value"))?;
    let value = parse_value(value_text).ok_or_else(|| format!("bad value {value_text:?}"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some("#") if openmetrics => None,
        Some(ts) => Some(parse_timestamp(ts, openmetrics)?),
    };
    match fields.next() {
        None => {}
        // An exemplar follows; it is not kept.
        Some("#") if openmetrics => {}
        Some(extra) => return Err(format!("unexpected {extra:?} after the sample of {name}")),
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

type Labels = Vec<(String, String)>;

/// Labels up to the closing brace; a quoted entry without `=` is the
/// metric's name (the UTF-8 names of Prometheus 3).
fn parse_labels(mut text: &str) -> Result<(Labels, Option<String>, &str), String> {
    let mut labels = Vec::new();
    let mut name = None;
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, name, after));
        }
        let (label, after) = if text.starts_with('"') {
            quoted(text)?
        } else {
            let end = text.find(|c: char| !is_name_char(c)).unwrap_or(text.len());
            if end == 0 || !text.starts_with(is_name_start) {
                return Err(format!("expected a label name at {:?}", truncate(text)));
            }
            (text[..end].to_string(), &text[end..])
        };
        let after = after.trim_start();
        if let Some(value_part) = after.strip_prefix('=') {
            let value_part = value_part.trim_start();
            if !value_part.starts_with('"') {
                return Err(format!("label {label} has an unquoted value"));
            }
            let (value, after) = quoted(value_part)?;
            if labels.iter().any(|(k, _)| *k == label) {
                return Err(format!("label {label} given twice"));
            }
            labels.push((label, value));
            text = after;
        } else if name.is_none() && text.starts_with('"') {
            name = Some(label);
            text = after;
        } else {
            return Err(format!("label {label} has no value"));
        }
        text = text.trim_start();
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err(format!("expected , or }} at {:?}", truncate(text)));
        }
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn parse_timestamp(text: &str, openmetrics: bool) -> Result<i64, String> {
    let bad = || format!("bad timestamp {text:?}");
    if openmetrics {
        let seconds: f64 = text.parse().map_err(|_| bad())?;
        if !seconds.is_finite() || seconds.abs() > 9.2e15 {
            return Err(bad());
        }
        Ok((seconds * 1000.0).round() as i64)
    } else {
        text.parse().map_err(|_| bad())
    }
}

fn truncate(text: &str) -> &str {
    let end = text
        .char_indices()
        .nth(40)
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_every_kind_in_text_format() {
        let body = "# HELP http_requests_total The total.\\nSecond line.\n\
# TYPE http_requests_total counter\n\
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
# TYPE latency histogram\n\
latency_bucket{le=\"0.1\"} 2\n\
latency_bucket{le=\"+Inf\"} 5\n\
latency_sum 1.5\n\
latency_count 5\n\
# TYPE rpc summary\n\
rpc{quantile=\"0.5\"} 4.7\n\
rpc_sum 17\n\
rpc_count 4\n\
untyped_thing{path=\"C:\\\\dir\\\\\",q=\"say \\\"hi\\\"\\n\"} NaN\n\
";
        let families = parse(body, false).unwrap();
        let names: Vec<_> = families.iter().map(|f| (f.name.as_str(), f.kind)).collect();
        assert_eq!(
            names,
            [
                ("http_requests_total", Kind::Counter),
                ("latency", Kind::Histogram),
                ("rpc", Kind::Summary),
                ("untyped_thing", Kind::Unknown),
            ]
        );
        assert_eq!(families[0].help, "The total.\nSecond line.");
        assert_eq!(families[0].samples[1].value, 3.0);
        assert_eq!(families[0].samples[1].timestamp_ms, Some(1395066363000));
        assert_eq!(families[1].samples.len(), 4);
        assert_eq!(families[1].samples[1].label("le"), Some("+Inf"));
        assert_eq!(families[1].samples[1].value, 5.0);
        let odd = &families[3].samples[0];
        assert_eq!(odd.label("path"), Some("C:\\dir\\"));
        assert_eq!(odd.label("q"), Some("say \"hi\"\n"));
        assert!(odd.value.is_nan());
    }

    #[test]
    fn openmetrics_counters_units_exemplars_and_eof() {
        let body = "# TYPE foo counter\n# UNIT foo seconds\nfoo_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67\nfoo_created 1520872607.123\n# EOF\n";
        let families = parse(body, true).unwrap();
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].unit, "seconds");
        assert_eq!(families[0].samples[0].timestamp_ms, Some(1520879607789));
        assert_eq!(families[0].suffix(&families[0].samples[1]), "_created");
        assert!(parse("# TYPE foo counter\nfoo_total 1\n", true).is_err());
        assert!(parse("foo 1\n# EOF\nbar 2\n", true).is_err());
    }

    #[test]
    fn utf8_names_in_braces() {
        let families = parse("{\"my.metric\", \"my.label\"=\"v\"} 2\n", false).unwrap();
        assert_eq!(families[0].name, "my.metric");
        assert_eq!(
            families[0].samples[0].labels,
            [("my.label".into(), "v".into())]
        );
    }

    #[test]
    fn errors_name_their_line() {
        for (body, line) in [
            ("ok 1\nbad{a=b} 1\n", 2),
            ("x{a=\"1\",a=\"2\"} 1\n", 1),
            ("x{a=\"1\" 1\n", 1),
            ("x one\n", 1),
            ("x 1 2 3\n", 1),
            ("x{a=\"unterminated} 1\n", 1),
            ("9x 1\n", 1),
        ] {
            let error = parse(body, false).unwrap_err();
            assert_eq!(error.line, line, "{body:?}: {error}");
        }
    }

    #[test]
    fn arbitrary_input_never_panics() {
        use proptest::prelude::*;
        proptest!(|(body in "[a-z_{}=\",#\\\\ .0-9\n+InfNa-]{0,200}")| {
            let _ = parse(&body, false);
            let _ = parse(&body, true);
        });
    }
}
