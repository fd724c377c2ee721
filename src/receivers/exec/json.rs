//! JSON output of a command as metrics: every number or boolean is a gauge
//! named by the dotted path of its keys; strings beside numbers in the same
//! object become attributes of those numbers; the objects of an array are
//! read one by one under the array's key. So
//! `{"disks": [{"device": "sda", "free": 10}]}` is `disks.free{device="sda"} 10`.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub value: f64,
}

/// Deeper nesting than this is not read (a bound against hostile output).
const MAX_DEPTH: usize = 16;

pub fn parse(body: &str) -> Result<Vec<Point>, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let mut points = Vec::new();
    walk(&value, "", &[], 0, &mut points);
    Ok(points)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk(
    value: &Value,
    prefix: &str,
    inherited: &[(String, String)],
    depth: usize,
    out: &mut Vec<Point>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            let mut attributes = inherited.to_vec();
            for (k, v) in map {
                if let Value::String(s) = v {
                    attributes.push((k.clone(), s.clone()));
                }
            }
            for (k, v) in map {
                let name = join(prefix, k);
                match v {
                    Value::Number(n) => {
                        if let Some(value) = n.as_f64() {
                            out.push(Point {
                                name,
                                attributes: attributes.clone(),
                                value,
                            });
                        }
                    }
                    Value::Bool(b) => out.push(Point {
                        name,
                        attributes: attributes.clone(),
                        value: if *b { 1.0 } else { 0.0 },
                    }),
                    Value::Object(_) | Value::Array(_) => {
                        walk(v, &name, &attributes, depth + 1, out)
                    }
                    Value::String(_) | Value::Null => {}
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, prefix, inherited, depth + 1, out);
            }
        }
        Value::Number(n) if !prefix.is_empty() => {
            if let Some(value) = n.as_f64() {
                out.push(Point {
                    name: prefix.to_string(),
                    attributes: inherited.to_vec(),
                    value,
                });
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_attributes_and_arrays() {
        let points = parse(
            r#"{"queue": {"depth": 4, "ok": true}, "disks": [{"device": "sda", "free": 10}, {"device": "sdb", "free": 20}], "name": "x"}"#,
        )
        .unwrap();
        let got: Vec<_> = points
            .iter()
            .map(|p| (p.name.as_str(), p.value, p.attributes.len()))
            .collect();
        assert_eq!(
            got,
            [
                ("disks.free", 10.0, 2),
                ("disks.free", 20.0, 2),
                ("queue.depth", 4.0, 1),
                ("queue.ok", 1.0, 1),
            ]
        );
        assert_eq!(points[1].attributes[1], ("device".into(), "sdb".into()));
        assert!(parse("{").is_err());
    }
}
