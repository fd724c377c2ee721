//! One InfluxDB line-protocol point and its encoding, escaped as
//! InfluxDB 1.x and 2.x read it (their Go parser, checked against the
//! real InfluxDB 1.6 in tests/it/influxdb.rs):
//!
//! - measurement: `,` and space are escaped with `\`;
//! - tag keys, tag values and field keys: `,`, `=` and space;
//! - string field values: `"` and `\`.
//!
//! Hand-written, not the `influxdb-line-protocol` crate's builder: that
//! crate (InfluxDB IOx's) also doubles every backslash in names and tags,
//! which InfluxDB 1.x/2.x keep doubled (`a\b` is stored as `a\\b`), and
//! it leaves to its callers what line protocol cannot say at all: a line
//! break outside a string, an empty tag key or value, a backslash at the
//! end of a name or right before an escaped character (the parser reads
//! it as an escape of what follows), NaN and infinity.

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Float(f64),
    Int(i64),
    Uint(u64),
    Bool(bool),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: String,
    /// Sorted by key when encoded, as InfluxDB prefers.
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, FieldValue)>,
    pub timestamp_ns: i64,
}

const MEASUREMENT: &[char] = &[',', ' '];
const KEY_OR_TAG: &[char] = &[',', '=', ' '];

/// `text` escaped for a name or tag: a line break becomes a space;
/// backslashes the parser would take for an escape (a run of them last,
/// or before a special character) are left out.
fn escape_name(out: &mut String, text: &str, special: &[char]) {
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '\\' {
            // The parser reads backslashes in pairs: a run of them before
            // the end or a special character would eat its escape.
            let after = chars[i..].iter().find(|&&n| n != '\\');
            if after.is_none_or(|n| special.contains(n)) {
                continue;
            }
        }
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// What is left of a name or tag once escaped: empty means nothing.
fn escaped(text: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    escape_name(&mut out, text, special);
    out
}

fn push_value(out: &mut String, value: &FieldValue) {
    use std::fmt::Write;
    match value {
        // `{}` of an f64 is the shortest text that reads back exactly.
        FieldValue::Float(v) => write!(out, "{v}"),
        FieldValue::Int(v) => write!(out, "{v}i"),
        FieldValue::Uint(v) => write!(out, "{v}u"),
        FieldValue::Bool(v) => write!(out, "{v}"),
        FieldValue::Text(v) => {
            out.push('"');
            for c in v.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
            Ok(())
        }
    }
    .expect("writing to a String cannot fail");
}

impl Point {
    /// The point as one line ending in `\n`; `None` when nothing of it can
    /// be written (no measurement, or no field InfluxDB accepts).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let measurement = escaped(&self.measurement, MEASUREMENT);
        if measurement.is_empty() {
            return None;
        }
        let fields: Vec<(String, &FieldValue)> = self
            .fields
            .iter()
            .filter(|(_, value)| !matches!(value, FieldValue::Float(f) if !f.is_finite()))
            .map(|(key, value)| (escaped(key, KEY_OR_TAG), value))
            .filter(|(key, _)| !key.is_empty())
            .collect();
        if fields.is_empty() {
            return None;
        }
        let mut tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|(key, value)| (escaped(key, KEY_OR_TAG), escaped(value, KEY_OR_TAG)))
            .filter(|(key, value)| !key.is_empty() && !value.is_empty())
            .collect();
        // Stable: of two tags of one key the first given stays first, and
        // the later is dropped (InfluxDB would keep either).
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        tags.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut line = measurement;
        for (key, value) in &tags {
            line.push(',');
            line.push_str(key);
            line.push('=');
            line.push_str(value);
        }
        for (i, (key, value)) in fields.iter().enumerate() {
            line.push(if i == 0 { ' ' } else { ',' });
            line.push_str(key);
            line.push('=');
            push_value(&mut line, value);
        }
        line.push(' ');
        line.push_str(&self.timestamp_ns.to_string());
        line.push('\n');
        Some(line.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(measurement: &str, tags: &[(&str, &str)], fields: Vec<(&str, FieldValue)>) -> Point {
        Point {
            measurement: measurement.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            timestamp_ns: 1_700_000_000_000_000_000,
        }
    }

    fn text(p: &Point) -> String {
        String::from_utf8(p.encode().expect("encodes")).unwrap()
    }

    #[test]
    fn escapes_each_part_by_its_own_rules() {
        let p = point(
            "my measurement,x=1",
            &[("tag key,=", "a b,c=d"), ("path", r"C:\dir\x")],
            vec![
                ("field key=,", FieldValue::Text(r#"say "hi" \ bye"#.into())),
                ("n", FieldValue::Int(-3)),
                ("u", FieldValue::Uint(7)),
                ("ok", FieldValue::Bool(true)),
                ("f", FieldValue::Float(1.5)),
                ("tiny", FieldValue::Float(1e-7)),
            ],
        );
        assert_eq!(
            text(&p),
            concat!(
                r"my\ measurement\,x=1,path=C:\dir\x,tag\ key\,\==a\ b\,c\=d ",
                r#"field\ key\=\,="say \"hi\" \\ bye",n=-3i,u=7u,ok=true,f=1.5,tiny=0.0000001 1700000000000000000"#,
                "\n"
            )
        );
    }

    #[test]
    fn backslashes_that_would_escape_are_left_out() {
        let p = point(
            r"m\",
            &[("end", r"a\\"), ("before", r"x\\,y"), ("kept", r"p\\q")],
            vec![(r"f\=", FieldValue::Float(1.0))],
        );
        assert_eq!(
            text(&p),
            "m,before=x\\,y,end=a,kept=p\\\\q f\\==1 1700000000000000000\n"
        );
        let only = point("m", &[("k", r"\\")], vec![("f", FieldValue::Int(1))]);
        assert_eq!(
            text(&only),
            "m f=1i 1700000000000000000\n",
            "nothing left: no tag"
        );
    }

    #[test]
    fn line_breaks_outside_strings_become_spaces() {
        let p = point(
            "a\nb",
            &[("k\r\n", "v\nw")],
            vec![
                ("f\n", FieldValue::Float(1.0)),
                ("s", FieldValue::Text("two\nlines".into())),
            ],
        );
        assert_eq!(
            text(&p),
            "a\\ b,k\\ \\ =v\\ w f\\ =1,s=\"two\nlines\" 1700000000000000000\n"
        );
    }

    #[test]
    fn empty_tags_and_non_finite_values_are_left_out() {
        let p = point(
            "m",
            &[("", "v"), ("k", ""), ("b", "2"), ("a", "1"), ("a", "later")],
            vec![
                ("nan", FieldValue::Float(f64::NAN)),
                ("inf", FieldValue::Float(f64::INFINITY)),
                ("", FieldValue::Float(1.0)),
                ("ok", FieldValue::Float(2.0)),
            ],
        );
        assert_eq!(text(&p), "m,a=1,b=2 ok=2 1700000000000000000\n");
        let none = point("m", &[], vec![("nan", FieldValue::Float(f64::NAN))]);
        assert_eq!(none.encode(), None);
        assert_eq!(
            point("", &[], vec![("f", FieldValue::Int(1))]).encode(),
            None
        );
    }
}
