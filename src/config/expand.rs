//! `${env:VAR}`, `${VAR}` (the Collector's bare form) and
//! `${env:VAR:-default}` expansion in scalar values.
//!
//! Expansion runs on parsed values, not on the raw text, so a variable can
//! never inject YAML structure. A scalar that is exactly one reference is
//! re-read as a YAML scalar, so `port: ${env:PORT}` yields a number, as in
//! the OpenTelemetry Collector. `$$` writes a literal `$` (so `$${env:X}`
//! stays text).

use yaml_serde::Value;

use super::error::YamlPath;

/// Expands every string in `value`; problems are pushed to `errors` with
/// their path.
pub fn expand_env(
    value: &mut Value,
    path: &YamlPath,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<(YamlPath, String)>,
) {
    match value {
        Value::String(text) => {
            if !text.contains('$') {
                return;
            }
            match expand_str(text, lookup) {
                Ok(Expanded::Whole(replacement)) => {
                    *value = yaml_serde::from_str::<Value>(&replacement)
                        .ok()
                        .filter(|v| !matches!(v, Value::Mapping(_) | Value::Sequence(_)))
                        .unwrap_or(Value::String(replacement));
                }
                Ok(Expanded::Text(replacement)) => *text = replacement,
                Err(message) => errors.push((path.clone(), message)),
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &path.index(i), lookup, errors);
            }
        }
        Value::Mapping(mapping) => {
            for (key, item) in mapping.iter_mut() {
                let key = match key {
                    Value::String(s) => s.clone(),
                    other => yaml_serde::to_string(other).unwrap_or_default(),
                };
                expand_env(item, &path.key(key.trim_end().to_string()), lookup, errors);
            }
        }
        Value::Tagged(tagged) => expand_env(&mut tagged.value, path, lookup, errors),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[derive(Debug, PartialEq)]
pub enum Expanded {
    /// The whole scalar was one reference.
    Whole(String),
    Text(String),
}

pub fn expand_str(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Expanded, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut references = 0;
    let mut literal = false;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        // `$$` is a literal `$`, as in the Collector (`$${env:X}` keeps
        // the reference as text).
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
            literal = true;
            continue;
        }
        if !tail.starts_with("${") {
            out.push('$');
            rest = &tail[1..];
            literal = true;
            continue;
        }
        let Some(end) = tail.find('}') else {
            return Err(format!(
                "unterminated `${{` in {text:?}: expected `${{env:NAME}}`"
            ));
        };
        let reference = &tail[2..end];
        // `${NAME}` is the Collector's older, bare spelling of `${env:NAME}`;
        // any other `scheme:` (file, http, yaml) is not supported.
        let spec = match reference.strip_prefix("env:") {
            Some(spec) => spec,
            None if !reference
                .split(":-")
                .next()
                .unwrap_or_default()
                .contains(':') =>
            {
                reference
            }
            None => {
                return Err(format!(
                    "unsupported reference `${{{reference}}}`: expected `${{env:NAME}}`, `${{NAME}}` or `${{env:NAME:-default}}`"
                ));
            }
        };
        let (name, default) = match spec.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (spec, None),
        };
        if !is_valid_name(name) {
            return Err(format!(
                "invalid environment variable name {name:?}: expected letters, digits and `_`, not starting with a digit"
            ));
        }
        match (lookup(name), default) {
            (Some(found), _) => out.push_str(&found),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set and has no default: set it or write `${{env:{name}:-default}}`"
                ));
            }
        }
        references += 1;
        rest = &tail[end + 1..];
    }
    let whole = references == 1 && !literal && text.starts_with("${") && text.ends_with('}');
    out.push_str(rest);
    Ok(if whole {
        Expanded::Whole(out)
    } else {
        Expanded::Text(out)
    })
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("4317".into()),
            "HOST" => Some("127.0.0.1".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_references_defaults_and_escapes() {
        assert_eq!(
            expand_str("${env:HOST}:${env:PORT}", &env),
            Ok(Expanded::Text("127.0.0.1:4317".into()))
        );
        assert_eq!(
            expand_str("${env:PORT}", &env),
            Ok(Expanded::Whole("4317".into()))
        );
        assert_eq!(
            expand_str("${env:MISSING:-10s}", &env),
            Ok(Expanded::Whole("10s".into()))
        );
        assert_eq!(
            expand_str("a$${env:X}", &env),
            Ok(Expanded::Text("a${env:X}".into()))
        );
        assert_eq!(
            expand_str("cost $5", &env),
            Ok(Expanded::Text("cost $5".into()))
        );
        assert_eq!(
            expand_str("${HOST}:${PORT:-1}", &env),
            Ok(Expanded::Text("127.0.0.1:4317".into()))
        );
        assert_eq!(
            expand_str("${MISSING:-x}", &env),
            Ok(Expanded::Whole("x".into()))
        );
        assert_eq!(
            expand_str("a$$b$$$${HOST}", &env),
            Ok(Expanded::Text("a$b$${HOST}".into()))
        );
    }

    #[test]
    fn names_the_missing_variable() {
        let err = expand_str("${env:MISSING}", &env).unwrap_err();
        assert!(err.contains("MISSING is not set"), "{err}");
        let err = expand_str("${file:/etc/x}", &env).unwrap_err();
        assert!(err.contains("unsupported reference"), "{err}");
    }

    #[test]
    fn whole_reference_becomes_a_typed_scalar() {
        let mut value: Value =
            yaml_serde::from_str("port: ${env:PORT}\nname: x${env:PORT}").unwrap();
        let mut errors = Vec::new();
        expand_env(&mut value, &YamlPath::root(), &env, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(value["port"], Value::Number(4317.into()));
        assert_eq!(value["name"], Value::String("x4317".into()));
    }
}
