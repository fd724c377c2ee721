//! The Collector's attribute actions, shared by the `attributes` and
//! `resource` processors: insert, update, upsert, delete, hash, extract,
//! convert, applied in order to one attribute list.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use regex::Regex;
use serde::Deserialize;

use crate::ottl::value::Value as OttlValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Insert,
    Update,
    Upsert,
    Delete,
    Hash,
    Extract,
    Convert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvertedType {
    Int,
    Double,
    String,
}

/// One entry of `actions:` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub key: Option<String>,
    pub action: ActionKind,
    pub value: Option<yaml_serde::Value>,
    pub from_attribute: Option<String>,
    /// delete and hash: every key matching this regex; extract: the regex
    /// whose named groups become attributes.
    pub pattern: Option<String>,
    pub converted_type: Option<ConvertedType>,
}

#[derive(Debug, Clone)]
pub struct Action {
    kind: ActionKind,
    key: Option<String>,
    value: Option<AnyValue>,
    from_attribute: Option<String>,
    pattern: Option<Regex>,
    converted_type: Option<ConvertedType>,
}

impl RawAction {
    /// Checks what the action needs: (field, message) on failure.
    pub fn compile(&self) -> Result<Action, (&'static str, String)> {
        let pattern = match &self.pattern {
            Some(p) => Some(Regex::new(p).map_err(|e| ("pattern", crate::config::one_line(&e)))?),
            None => None,
        };
        let needs_key = !matches!(
            (self.kind(), &pattern),
            (ActionKind::Delete | ActionKind::Hash, Some(_))
        );
        if needs_key && self.key.is_none() {
            return Err(("key", "expected the attribute's key".into()));
        }
        match self.action {
            ActionKind::Insert | ActionKind::Update | ActionKind::Upsert
                if self.value.is_some() == self.from_attribute.is_some() =>
            {
                return Err((
                    "value",
                    "expected exactly one of value and from_attribute".into(),
                ));
            }
            ActionKind::Extract => match &pattern {
                Some(p) if p.capture_names().flatten().next().is_some() => {}
                _ => {
                    return Err((
                        "pattern",
                        "extract needs a pattern with named groups, like ^/api/(?P<version>v\\d+)/"
                            .into(),
                    ));
                }
            },
            ActionKind::Convert if self.converted_type.is_none() => {
                return Err(("converted_type", "expected int, double or string".into()));
            }
            _ => {}
        }
        Ok(Action {
            kind: self.action,
            key: self.key.clone(),
            value: self.value.as_ref().map(yaml_to_any),
            from_attribute: self.from_attribute.clone(),
            pattern,
            converted_type: self.converted_type,
        })
    }

    fn kind(&self) -> ActionKind {
        self.action
    }
}

fn yaml_to_any(value: &yaml_serde::Value) -> AnyValue {
    use yaml_serde::Value as Y;
    let value = match value {
        Y::Bool(b) => any_value::Value::BoolValue(*b),
        Y::Number(n) if n.is_i64() => any_value::Value::IntValue(n.as_i64().unwrap_or_default()),
        Y::Number(n) => any_value::Value::DoubleValue(n.as_f64().unwrap_or_default()),
        Y::String(s) => any_value::Value::StringValue(s.clone()),
        other => any_value::Value::StringValue(
            yaml_serde::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
    };
    AnyValue { value: Some(value) }
}

fn text(value: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.to_string())),
    }
}

fn position(attributes: &[KeyValue], key: &str) -> Option<usize> {
    attributes.iter().position(|kv| kv.key == key)
}

fn set(attributes: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    match position(attributes, key) {
        Some(i) => attributes[i].value = Some(value),
        None => attributes.push(KeyValue {
            key: key.to_string(),
            value: Some(value),
            ..Default::default()
        }),
    }
}

/// SHA-256 of the value's text, in hex (the Collector's `hash`).
fn hashed(value: Option<&AnyValue>) -> AnyValue {
    let plain = OttlValue::from_any(value).to_text().unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, plain.as_bytes());
    text(&hex::encode(digest.as_ref()))
}

fn converted(value: Option<&AnyValue>, to: ConvertedType) -> Option<AnyValue> {
    let current = OttlValue::from_any(value);
    let converted = match to {
        ConvertedType::String => any_value::Value::StringValue(current.to_text()?),
        ConvertedType::Int => any_value::Value::IntValue(match current {
            OttlValue::Int(i) => i,
            OttlValue::Double(d) => d as i64,
            OttlValue::Bool(b) => b as i64,
            OttlValue::String(s) => s.trim().parse().ok()?,
            _ => return None,
        }),
        ConvertedType::Double => any_value::Value::DoubleValue(match current {
            OttlValue::Int(i) => i as f64,
            OttlValue::Double(d) => d,
            OttlValue::Bool(b) => b as u8 as f64,
            OttlValue::String(s) => s.trim().parse().ok()?,
            _ => return None,
        }),
    };
    Some(AnyValue {
        value: Some(converted),
    })
}

impl Action {
    /// Applies this action to `attributes`. A value that cannot be
    /// converted is left as it is, as the Collector does.
    pub fn apply(&self, attributes: &mut Vec<KeyValue>) {
        let key = self.key.as_deref().unwrap_or_default();
        let source = || -> Option<AnyValue> {
            match (&self.value, &self.from_attribute) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(from)) => {
                    position(attributes, from).and_then(|i| attributes[i].value.clone())
                }
                _ => None,
            }
        };
        match self.kind {
            ActionKind::Insert => {
                if position(attributes, key).is_none()
                    && let Some(v) = source()
                {
                    set(attributes, key, v);
                }
            }
            ActionKind::Update => {
                if position(attributes, key).is_some()
                    && let Some(v) = source()
                {
                    set(attributes, key, v);
                }
            }
            ActionKind::Upsert => {
                if let Some(v) = source() {
                    set(attributes, key, v);
                }
            }
            ActionKind::Delete => attributes.retain(|kv| !self.selects(&kv.key)),
            ActionKind::Hash => {
                for kv in attributes.iter_mut().filter(|kv| self.selects(&kv.key)) {
                    kv.value = Some(hashed(kv.value.as_ref()));
                }
            }
            ActionKind::Extract => {
                let Some(pattern) = &self.pattern else { return };
                let Some(subject) = position(attributes, key)
                    .and_then(|i| OttlValue::from_any(attributes[i].value.as_ref()).to_text())
                else {
                    return;
                };
                if let Some(captures) = pattern.captures(&subject) {
                    for name in pattern.capture_names().flatten() {
                        if let Some(found) = captures.name(name) {
                            set(attributes, name, text(found.as_str()));
                        }
                    }
                }
            }
            ActionKind::Convert => {
                let Some(to) = self.converted_type else {
                    return;
                };
                if let Some(i) = position(attributes, key)
                    && let Some(v) = converted(attributes[i].value.as_ref(), to)
                {
                    attributes[i].value = Some(v);
                }
            }
        }
    }

    /// For delete and hash: the key itself, or every key the pattern matches.
    fn selects(&self, candidate: &str) -> bool {
        self.key.as_deref() == Some(candidate)
            || (self.kind != ActionKind::Extract
                && self.pattern.as_ref().is_some_and(|p| p.is_match(candidate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(yaml: &str) -> Action {
        yaml_serde::from_str::<RawAction>(yaml)
            .unwrap()
            .compile()
            .unwrap()
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(text(value)),
            ..Default::default()
        }
    }

    fn get(attributes: &[KeyValue], key: &str) -> Option<OttlValue> {
        position(attributes, key).map(|i| OttlValue::from_any(attributes[i].value.as_ref()))
    }

    #[test]
    fn each_action_as_the_collector_defines_it() {
        let mut a = vec![
            kv("env", "dev"),
            kv("user.email", "a@b"),
            kv("http.url", "/api/v2/users"),
            kv("code", "404"),
        ];
        action("{ key: env, value: prod, action: insert }").apply(&mut a);
        assert_eq!(get(&a, "env"), Some(OttlValue::String("dev".into())));
        action("{ key: env, value: prod, action: update }").apply(&mut a);
        assert_eq!(get(&a, "env"), Some(OttlValue::String("prod".into())));
        action("{ key: region, value: eu, action: update }").apply(&mut a);
        assert_eq!(get(&a, "region"), None);
        action("{ key: region, from_attribute: env, action: upsert }").apply(&mut a);
        assert_eq!(get(&a, "region"), Some(OttlValue::String("prod".into())));
        action("{ key: user.email, action: hash }").apply(&mut a);
        assert_eq!(
            get(&a, "user.email")
                .and_then(|v| v.to_text())
                .map(|t| t.len()),
            Some(64)
        );
        action(r#"{ key: http.url, pattern: '^/api/(?P<version>v\d+)/', action: extract }"#)
            .apply(&mut a);
        assert_eq!(get(&a, "version"), Some(OttlValue::String("v2".into())));
        action("{ key: code, converted_type: int, action: convert }").apply(&mut a);
        assert_eq!(get(&a, "code"), Some(OttlValue::Int(404)));
        action("{ pattern: '^user\\.', action: delete }").apply(&mut a);
        assert_eq!(get(&a, "user.email"), None);
        action("{ key: env, action: delete }").apply(&mut a);
        assert_eq!(get(&a, "env"), None);
    }

    #[test]
    fn refuses_actions_missing_what_they_need() {
        let compile = |yaml: &str| {
            yaml_serde::from_str::<RawAction>(yaml)
                .unwrap()
                .compile()
                .unwrap_err()
                .0
        };
        assert_eq!(compile("{ key: a, action: insert }"), "value");
        assert_eq!(
            compile("{ key: a, action: extract, pattern: 'x' }"),
            "pattern"
        );
        assert_eq!(compile("{ key: a, action: convert }"), "converted_type");
        assert_eq!(compile("{ action: delete }"), "key");
    }
}
