//! InfluxDB line protocol (`measurement,tag=v field=1.5,n=3i,ok=t 1700000000000000000`)
//! as the exec receiver reads a command's output. Every numeric or boolean
//! field is one sample named `<measurement>_<field>`, as Telegraf's
//! OpenTelemetry output names them; string fields are not metrics and are
//! counted as skipped.

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ns: Option<u64>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub points: Vec<Point>,
    pub skipped_fields: usize,
}

/// Splits at `separator` outside backslash escapes and double quotes.
fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next @ (',' | ' ' | '=' | '"' | '\\')) => out.push(next),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field_value(text: &str) -> Option<Option<f64>> {
    if text.starts_with('"') {
        return Some(None);
    }
    match text {
        "t" | "T" | "true" | "True" | "TRUE" => return Some(Some(1.0)),
        "f" | "F" | "false" | "False" | "FALSE" => return Some(Some(0.0)),
        _ => {}
    }
    let number = text
        .strip_suffix('i')
        .or_else(|| text.strip_suffix('u'))
        .unwrap_or(text);
    number.parse::<f64>().ok().map(Some)
}

/// Parses every line; the first bad one is an error naming its line.
pub fn parse(body: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    for (index, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}", index + 1);
        let sections = split_unescaped(line, ' ');
        let sections: Vec<&str> = sections.into_iter().filter(|s| !s.is_empty()).collect();
        let (series, fields, timestamp) = match sections.as_slice() {
            [series, fields] => (*series, *fields, None),
            [series, fields, ts] => (*series, *fields, Some(*ts)),
            _ => return Err(bad("expected `measurement[,tags] fields [timestamp]`")),
        };
        let timestamp_ns = match timestamp {
            Some(ts) => Some(ts.parse::<u64>().map_err(|_| bad("bad timestamp"))?),
            None => None,
        };
        let mut series_parts = split_unescaped(series, ',').into_iter();
        let measurement = unescape(series_parts.next().unwrap_or(""));
        if measurement.is_empty() {
            return Err(bad("no measurement"));
        }
        let mut tags = Vec::new();
        for tag in series_parts {
            let kv = split_unescaped(tag, '=');
            let [k, v] = kv.as_slice() else {
                return Err(bad("a tag is not key=value"));
            };
            tags.push((unescape(k), unescape(v)));
        }
        for field in split_unescaped(fields, ',') {
            let Some((key, value)) = field.split_once('=') else {
                return Err(bad("a field is not key=value"));
            };
            match field_value(value) {
                Some(Some(value)) => parsed.points.push(Point {
                    name: format!("{measurement}_{}", unescape(key)),
                    tags: tags.clone(),
                    value,
                    timestamp_ns,
                }),
                Some(None) => parsed.skipped_fields += 1,
                None => return Err(bad(&format!("field {key} has a bad value {value:?}"))),
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_tags_escapes_and_types() {
        let parsed = parse(
            "cpu,host=a\\ b,region=eu usage=0.5,count=3i,up=t,note=\"x, y=z\" 1700000000000000000\n# comment\nmem free=10u\n",
        )
        .unwrap();
        assert_eq!(parsed.skipped_fields, 1);
        let names: Vec<_> = parsed
            .points
            .iter()
            .map(|p| (p.name.as_str(), p.value))
            .collect();
        assert_eq!(
            names,
            [
                ("cpu_usage", 0.5),
                ("cpu_count", 3.0),
                ("cpu_up", 1.0),
                ("mem_free", 10.0)
            ]
        );
        assert_eq!(parsed.points[0].tags[0], ("host".into(), "a b".into()));
        assert_eq!(
            parsed.points[0].timestamp_ns,
            Some(1_700_000_000_000_000_000)
        );
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(parse("cpu\n").unwrap_err().starts_with("line 1"));
        assert!(
            parse("ok v=1\ncpu v=abc\n")
                .unwrap_err()
                .starts_with("line 2")
        );
        assert!(parse("cpu,tag v=1\n").is_err());
    }
}
