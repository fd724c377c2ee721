//! The `operators:` of `filelog`, in the Collector's shape: a list of
//! `{ type: ..., ... }` applied in order to every entry.
//!
//! - `regex_parser`: named groups of `regex` into `parse_to` (attributes);
//! - `json_parser`: a JSON object into `parse_to` (attributes);
//! - `time_parser`: `layout_type: strptime | epoch` onto the timestamp;
//! - `severity_parser`: a value onto severity number and text, by a
//!   `mapping` of levels to values (`5xx`-style ranges allowed);
//! - `move` (`from`, `to`) and `add` (`field`, `value`).
//!
//! The parsers also take the Collector's embedded `timestamp:` and
//! `severity:` blocks. An entry a parser cannot parse goes on unchanged
//! (`on_error: send`, the default) or is dropped (`on_error: drop`);
//! either way it is counted.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValueList, any_value};
use serde::Deserialize;

use super::entry::Entry;
use super::field::{Field, string_value, text_of};

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperatorConfig {
    RegexParser {
        #[serde(default)]
        id: Option<String>,
        regex: String,
        #[serde(default)]
        parse_from: Option<String>,
        #[serde(default)]
        parse_to: Option<String>,
        #[serde(default)]
        on_error: OnError,
        #[serde(default)]
        timestamp: Option<TimeConfig>,
        #[serde(default)]
        severity: Option<SeverityConfig>,
    },
    JsonParser {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        parse_from: Option<String>,
        #[serde(default)]
        parse_to: Option<String>,
        #[serde(default)]
        on_error: OnError,
        #[serde(default)]
        timestamp: Option<TimeConfig>,
        #[serde(default)]
        severity: Option<SeverityConfig>,
    },
    TimeParser {
        #[serde(default)]
        id: Option<String>,
        #[serde(flatten)]
        time: TimeConfig,
        #[serde(default)]
        on_error: OnError,
    },
    SeverityParser {
        #[serde(default)]
        id: Option<String>,
        #[serde(flatten)]
        severity: SeverityConfig,
        #[serde(default)]
        on_error: OnError,
    },
    Move {
        #[serde(default)]
        id: Option<String>,
        from: String,
        to: String,
    },
    Add {
        #[serde(default)]
        id: Option<String>,
        field: String,
        value: yaml_serde::Value,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Send,
    Drop,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutType {
    #[default]
    Strptime,
    Epoch,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimeConfig {
    pub parse_from: String,
    #[serde(default)]
    pub layout_type: LayoutType,
    /// strptime directives (`%d/%b/%Y:%H:%M:%S %z`), or for `epoch` one of
    /// `s`, `ms`, `us`, `ns`, `s.ms` (fractional seconds).
    pub layout: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeverityConfig {
    pub parse_from: String,
    /// Level name (trace, debug, info, warn, error, fatal) to the values
    /// that mean it: strings (case-insensitive), numbers, or `5xx`.
    #[serde(default)]
    pub mapping: BTreeMap<String, OneOrMany>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    // A list first: `One` would take a list as one value.
    Many(Vec<yaml_serde::Value>),
    One(yaml_serde::Value),
}

/// An operator ready to run; built from a config that `compile` accepted.
#[derive(Debug, Clone)]
pub enum Operator {
    Regex {
        regex: regex::Regex,
        from: Field,
        to: Field,
        on_error: OnError,
    },
    Json {
        from: Field,
        to: Field,
        on_error: OnError,
    },
    Time {
        from: Field,
        layout_type: LayoutType,
        layout: String,
        on_error: OnError,
    },
    Severity {
        from: Field,
        /// (lower-cased value, severity number), first match wins.
        exact: Vec<(String, i32)>,
        /// (first digit, severity number) for `Nxx` ranges.
        ranges: Vec<(u8, i32)>,
        on_error: OnError,
    },
    Move {
        from: Field,
        to: Field,
    },
    Add {
        field: Field,
        value: AnyValue,
    },
}

/// What running the operators on one entry gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Parsed,
    /// A parser failed; the entry goes on as it was after the operators
    /// before it.
    Failed,
    /// A parser failed with `on_error: drop`.
    Dropped,
}

const LEVELS: [(&str, i32); 6] = [
    ("trace", 1),
    ("debug", 5),
    ("info", 9),
    ("warn", 13),
    ("error", 17),
    ("fatal", 21),
];

/// The values every severity parser knows without a mapping.
const DEFAULT_NAMES: [(&str, i32); 14] = [
    ("trace", 1),
    ("debug", 5),
    ("info", 9),
    ("information", 9),
    ("notice", 10),
    ("warn", 13),
    ("warning", 13),
    ("error", 17),
    ("err", 17),
    ("crit", 21),
    ("critical", 21),
    ("fatal", 21),
    ("alert", 22),
    ("emerg", 23),
];

fn field(text: &str, name: &str, errors: &mut Vec<(String, String)>) -> Field {
    Field::parse(text).unwrap_or_else(|e| {
        errors.push((name.to_string(), e));
        Field::Body
    })
}

fn yaml_to_any(value: &yaml_serde::Value) -> Option<AnyValue> {
    use yaml_serde::Value;
    Some(match value {
        Value::String(s) => string_value(s.clone()),
        Value::Bool(b) => AnyValue {
            value: Some(any_value::Value::BoolValue(*b)),
        },
        Value::Number(n) => match n.as_i64() {
            Some(i) => AnyValue {
                value: Some(any_value::Value::IntValue(i)),
            },
            None => AnyValue {
                value: Some(any_value::Value::DoubleValue(n.as_f64()?)),
            },
        },
        _ => return None,
    })
}

fn compile_time(time: &TimeConfig, errors: &mut Vec<(String, String)>, at: &str) -> Operator {
    let from = field(&time.parse_from, &format!("{at}parse_from"), errors);
    match time.layout_type {
        LayoutType::Epoch => {
            if !["s", "ms", "us", "ns", "s.ms", "s.us", "s.ns"].contains(&time.layout.as_str()) {
                errors.push((
                    format!("{at}layout"),
                    format!(
                        "`{}` is not an epoch layout: expected s, ms, us, ns or s.ms",
                        time.layout
                    ),
                ));
            }
        }
        LayoutType::Strptime => {
            // chrono reports a bad directive only when parsing; format
            // once to catch it at validation.
            use std::fmt::Write as _;
            let items = chrono::format::StrftimeItems::new(&time.layout);
            let mut probe = String::new();
            let date = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH.fixed_offset();
            if write!(probe, "{}", date.format_with_items(items)).is_err() {
                errors.push((
                    format!("{at}layout"),
                    format!("`{}` is not a valid strptime layout", time.layout),
                ));
            }
        }
    }
    Operator::Time {
        from,
        layout_type: time.layout_type,
        layout: time.layout.clone(),
        on_error: OnError::Send,
    }
}

fn compile_severity(
    severity: &SeverityConfig,
    errors: &mut Vec<(String, String)>,
    at: &str,
) -> Operator {
    let from = field(&severity.parse_from, &format!("{at}parse_from"), errors);
    let mut exact = Vec::new();
    let mut ranges = Vec::new();
    for (level, values) in &severity.mapping {
        let Some(&(_, number)) = LEVELS.iter().find(|(name, _)| name == level) else {
            errors.push((
                format!("{at}mapping.{level}"),
                format!(
                    "`{level}` is not a level: expected trace, debug, info, warn, error or fatal"
                ),
            ));
            continue;
        };
        let values = match values {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v.as_slice(),
        };
        for value in values {
            let text = match value {
                yaml_serde::Value::String(s) => s.to_ascii_lowercase(),
                yaml_serde::Value::Number(n) => n.to_string(),
                _ => {
                    errors.push((
                        format!("{at}mapping.{level}"),
                        "expected a string, a number or a range like 5xx".to_string(),
                    ));
                    continue;
                }
            };
            match text.as_bytes() {
                [digit @ b'1'..=b'9', b'x', b'x'] => ranges.push((digit - b'0', number)),
                _ => exact.push((text, number)),
            }
        }
    }
    for (name, number) in DEFAULT_NAMES {
        exact.push((name.to_string(), number));
    }
    Operator::Severity {
        from,
        exact,
        ranges,
        on_error: OnError::Send,
    }
}

fn with_on_error(mut op: Operator, on_error: OnError) -> Operator {
    match &mut op {
        Operator::Time { on_error: e, .. } | Operator::Severity { on_error: e, .. } => {
            *e = on_error
        }
        _ => {}
    }
    op
}

/// Compiles the operators, or lists every problem as (field path relative
/// to the operator, message), keyed by operator index.
pub fn compile(configs: &[OperatorConfig]) -> Result<Vec<Operator>, Vec<(usize, String, String)>> {
    let mut out = Vec::new();
    let mut all_errors = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let mut errors = Vec::new();
        let body = || "body".to_string();
        match config {
            OperatorConfig::RegexParser {
                regex,
                parse_from,
                parse_to,
                on_error,
                timestamp,
                severity,
                ..
            } => {
                let from = field(
                    &parse_from.clone().unwrap_or_else(body),
                    "parse_from",
                    &mut errors,
                );
                let to = parse_to_field(parse_to.as_deref(), &mut errors);
                match regex::Regex::new(regex) {
                    Ok(regex) if regex.capture_names().flatten().next().is_some() => {
                        out.push(Operator::Regex {
                            regex,
                            from,
                            to,
                            on_error: *on_error,
                        })
                    }
                    Ok(_) => errors.push((
                        "regex".into(),
                        "the regex has no named group (?P<name>...), so it would parse nothing"
                            .into(),
                    )),
                    Err(e) => errors.push(("regex".into(), crate::config::one_line(&e))),
                }
                embedded(timestamp, severity, *on_error, &mut out, &mut errors);
            }
            OperatorConfig::JsonParser {
                parse_from,
                parse_to,
                on_error,
                timestamp,
                severity,
                ..
            } => {
                let from = field(
                    &parse_from.clone().unwrap_or_else(body),
                    "parse_from",
                    &mut errors,
                );
                let to = parse_to_field(parse_to.as_deref(), &mut errors);
                out.push(Operator::Json {
                    from,
                    to,
                    on_error: *on_error,
                });
                embedded(timestamp, severity, *on_error, &mut out, &mut errors);
            }
            OperatorConfig::TimeParser { time, on_error, .. } => {
                let op = compile_time(time, &mut errors, "");
                out.push(with_on_error(op, *on_error));
            }
            OperatorConfig::SeverityParser {
                severity, on_error, ..
            } => {
                let op = compile_severity(severity, &mut errors, "");
                out.push(with_on_error(op, *on_error));
            }
            OperatorConfig::Move { from, to, .. } => {
                let from = field(from, "from", &mut errors);
                let to = field(to, "to", &mut errors);
                out.push(Operator::Move { from, to });
            }
            OperatorConfig::Add {
                field: f, value, ..
            } => {
                let target = field(f, "field", &mut errors);
                match yaml_to_any(value) {
                    Some(value) => out.push(Operator::Add {
                        field: target,
                        value,
                    }),
                    None => errors.push((
                        "value".into(),
                        "expected a string, a number or a boolean".into(),
                    )),
                }
            }
        }
        all_errors.extend(errors.into_iter().map(|(f, m)| (i, f, m)));
    }
    if all_errors.is_empty() {
        Ok(out)
    } else {
        Err(all_errors)
    }
}

/// `parse_to`: `attributes` (the default), `body`, or a map field.
fn parse_to_field(parse_to: Option<&str>, errors: &mut Vec<(String, String)>) -> Field {
    match parse_to.unwrap_or("attributes") {
        "attributes" => Field::Attribute(String::new()),
        "resource" => Field::Resource(String::new()),
        "body" => Field::Body,
        other => {
            errors.push((
                "parse_to".into(),
                format!("`{other}` is not a parse target: expected attributes, resource or body"),
            ));
            Field::Attribute(String::new())
        }
    }
}

fn embedded(
    timestamp: &Option<TimeConfig>,
    severity: &Option<SeverityConfig>,
    on_error: OnError,
    out: &mut Vec<Operator>,
    errors: &mut Vec<(String, String)>,
) {
    if let Some(time) = timestamp {
        out.push(with_on_error(
            compile_time(time, errors, "timestamp."),
            on_error,
        ));
    }
    if let Some(severity) = severity {
        out.push(with_on_error(
            compile_severity(severity, errors, "severity."),
            on_error,
        ));
    }
}

/// Writes parsed (key, value) pairs into the `parse_to` target.
fn write_parsed(entry: &mut Entry, to: &Field, pairs: Vec<(String, AnyValue)>) {
    match to {
        Field::Attribute(_) => {
            for (k, v) in pairs {
                super::field::insert(&mut entry.attributes, &k, v);
            }
        }
        Field::Resource(_) => {
            for (k, v) in pairs {
                super::field::insert(&mut entry.resource, &k, v);
            }
        }
        _ => {
            let values = pairs
                .into_iter()
                .map(
                    |(key, value)| opentelemetry_proto::tonic::common::v1::KeyValue {
                        key,
                        value: Some(value),
                        ..Default::default()
                    },
                )
                .collect();
            entry.body = Some(AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList { values })),
            });
        }
    }
}

fn json_to_any(value: serde_json::Value) -> AnyValue {
    use serde_json::Value;
    let value = match value {
        Value::Null => None,
        Value::Bool(b) => Some(any_value::Value::BoolValue(b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(any_value::Value::IntValue(i)),
            None => Some(any_value::Value::DoubleValue(
                n.as_f64().unwrap_or(f64::NAN),
            )),
        },
        Value::String(s) => Some(any_value::Value::StringValue(s)),
        Value::Array(items) => Some(any_value::Value::ArrayValue(
            opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: items.into_iter().map(json_to_any).collect(),
            },
        )),
        Value::Object(map) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: map
                .into_iter()
                .map(
                    |(key, v)| opentelemetry_proto::tonic::common::v1::KeyValue {
                        key,
                        value: Some(json_to_any(v)),
                        ..Default::default()
                    },
                )
                .collect(),
        })),
    };
    AnyValue { value }
}

/// Nanoseconds since the epoch of `text` in `layout`, if it parses.
pub fn parse_time(text: &str, layout_type: LayoutType, layout: &str) -> Option<u64> {
    let text = text.trim();
    match layout_type {
        LayoutType::Epoch => {
            let scale = match layout {
                "s" | "s.ms" | "s.us" | "s.ns" => 1e9,
                "ms" => 1e6,
                "us" => 1e3,
                _ => 1.0,
            };
            if let Ok(whole) = text.parse::<u64>() {
                return whole.checked_mul(scale as u64);
            }
            let value: f64 = text.parse().ok()?;
            (value.is_finite() && value >= 0.0).then_some((value * scale) as u64)
        }
        LayoutType::Strptime => {
            let nanos =
                |t: chrono::DateTime<chrono::Utc>| u64::try_from(t.timestamp_nanos_opt()?).ok();
            if let Ok(t) = chrono::DateTime::parse_from_str(text, layout) {
                return nanos(t.to_utc());
            }
            // No zone in the layout: the time is taken as UTC.
            let naive = chrono::NaiveDateTime::parse_from_str(text, layout).ok()?;
            nanos(naive.and_utc())
        }
    }
}

impl Operator {
    /// Runs on `entry`; false when it could not parse its input.
    fn apply(&self, entry: &mut Entry) -> Result<(), OnError> {
        match self {
            Operator::Regex {
                regex,
                from,
                to,
                on_error,
            } => {
                let Some(text) = from.get(entry).and_then(text_of) else {
                    return Err(*on_error);
                };
                let Some(captures) = regex.captures(&text) else {
                    return Err(*on_error);
                };
                let pairs: Vec<(String, AnyValue)> = regex
                    .capture_names()
                    .flatten()
                    .filter_map(|name| {
                        Some((
                            name.to_string(),
                            string_value(captures.name(name)?.as_str()),
                        ))
                    })
                    .collect();
                drop(captures);
                write_parsed(entry, to, pairs);
                Ok(())
            }
            Operator::Json { from, to, on_error } => {
                let Some(text) = from.get(entry).and_then(text_of) else {
                    return Err(*on_error);
                };
                let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text) else {
                    return Err(*on_error);
                };
                let pairs = map.into_iter().map(|(k, v)| (k, json_to_any(v))).collect();
                write_parsed(entry, to, pairs);
                Ok(())
            }
            Operator::Time {
                from,
                layout_type,
                layout,
                on_error,
            } => {
                let parsed = from
                    .get(entry)
                    .and_then(text_of)
                    .and_then(|t| parse_time(&t, *layout_type, layout));
                match parsed {
                    Some(nanos) => {
                        entry.time_unix_nano = nanos;
                        Ok(())
                    }
                    None => Err(*on_error),
                }
            }
            Operator::Severity {
                from,
                exact,
                ranges,
                on_error,
            } => {
                let Some(text) = from.get(entry).and_then(text_of).map(|t| t.into_owned()) else {
                    return Err(*on_error);
                };
                let lower = text.trim().to_ascii_lowercase();
                let number = exact
                    .iter()
                    .find(|(v, _)| *v == lower)
                    .map(|(_, n)| *n)
                    .or_else(|| {
                        let bytes = lower.as_bytes();
                        let is_code = bytes.len() == 3 && bytes.iter().all(u8::is_ascii_digit);
                        is_code
                            .then(|| ranges.iter().find(|(d, _)| *d == bytes[0] - b'0'))
                            .flatten()
                            .map(|(_, n)| *n)
                    });
                match number {
                    Some(number) => {
                        entry.severity_number = number;
                        entry.severity_text = text.trim().to_string();
                        Ok(())
                    }
                    None => Err(*on_error),
                }
            }
            Operator::Move { from, to } => {
                if let Some(value) = from.take(entry) {
                    to.set(entry, value);
                }
                Ok(())
            }
            Operator::Add { field, value } => {
                field.set(entry, value.clone());
                Ok(())
            }
        }
    }
}

/// Runs every operator in order. A failing parser leaves the entry as it
/// was and the rest still run (a `move` after a failed regex moves
/// nothing); with `on_error: drop` the entry is dropped.
pub fn run(operators: &[Operator], entry: &mut Entry) -> Outcome {
    let mut outcome = Outcome::Parsed;
    for op in operators {
        match op.apply(entry) {
            Ok(()) => {}
            Err(OnError::Drop) => return Outcome::Dropped,
            Err(OnError::Send) => outcome = Outcome::Failed,
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(yaml: &str) -> Vec<Operator> {
        let configs: Vec<OperatorConfig> = yaml_serde::from_str(yaml).unwrap();
        compile(&configs).unwrap()
    }

    fn line(text: &str) -> Entry {
        Entry {
            body: Some(string_value(text)),
            ..Default::default()
        }
    }

    fn attribute(entry: &Entry, key: &str) -> Option<String> {
        Field::Attribute(key.into())
            .get(entry)
            .and_then(text_of)
            .map(|t| t.into_owned())
    }

    #[test]
    fn parses_an_nginx_access_line_with_time_and_severity() {
        let ops = ops(r#"
- type: regex_parser
  regex: '^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+)'
  timestamp: { parse_from: attributes.time, layout: '%d/%b/%Y:%H:%M:%S %z' }
  severity: { parse_from: attributes.status, mapping: { info: [2xx, 3xx], warn: 4xx, error: 5xx } }
- type: move
  from: attributes.status
  to: attributes["http.response.status_code"]
- type: add
  field: resource.service.name
  value: nginx
"#);
        let mut entry =
            line(r#"10.0.0.1 - - [03/Dec/2026:09:24:47 +0000] "GET /api/users HTTP/1.1" 503 12"#);
        assert_eq!(run(&ops, &mut entry), Outcome::Parsed);
        assert_eq!(
            attribute(&entry, "http.response.status_code").as_deref(),
            Some("503")
        );
        assert_eq!(attribute(&entry, "status"), None);
        assert_eq!(entry.severity_number, 17);
        assert_eq!(entry.severity_text, "503");
        assert_eq!(entry.time_unix_nano, 1_796_289_887 * 1_000_000_000);
        assert_eq!(entry.resource.len(), 1);
    }

    #[test]
    fn a_line_that_does_not_parse_passes_through_raw() {
        let ops = ops("[ { type: regex_parser, regex: '^(?P<a>\\d+)$' } ]");
        let mut entry = line("not a number");
        assert_eq!(run(&ops, &mut entry), Outcome::Failed);
        assert_eq!(entry, line("not a number"));
        let drop = ops_drop();
        assert_eq!(run(&drop, &mut line("x")), Outcome::Dropped);
    }

    fn ops_drop() -> Vec<Operator> {
        ops("[ { type: json_parser, on_error: drop } ]")
    }

    #[test]
    fn json_fields_become_attributes_and_levels_map_by_default() {
        let ops = ops(r#"
- { type: json_parser, severity: { parse_from: attributes.level }, timestamp: { parse_from: attributes.ts, layout_type: epoch, layout: s.ms } }
"#);
        let mut entry = line(r#"{"level":"WARNING","msg":"disk","ts":1.5,"n":3}"#);
        assert_eq!(run(&ops, &mut entry), Outcome::Parsed);
        assert_eq!(entry.severity_number, 13);
        assert_eq!(entry.time_unix_nano, 1_500_000_000);
        assert_eq!(attribute(&entry, "msg").as_deref(), Some("disk"));
        assert_eq!(attribute(&entry, "n").as_deref(), Some("3"));
    }

    #[test]
    fn every_bad_operator_is_reported() {
        let configs: Vec<OperatorConfig> = yaml_serde::from_str(
            r#"
- { type: regex_parser, regex: '(' }
- { type: time_parser, parse_from: nowhere.x, layout_type: epoch, layout: days }
- { type: severity_parser, parse_from: body, mapping: { loud: [x] } }
"#,
        )
        .unwrap();
        let errors = compile(&configs).unwrap_err();
        let fields: Vec<(usize, &str)> = errors.iter().map(|(i, f, _)| (*i, f.as_str())).collect();
        assert_eq!(
            fields,
            vec![
                (0, "regex"),
                (1, "parse_from"),
                (1, "layout"),
                (2, "mapping.loud")
            ]
        );
    }
}
