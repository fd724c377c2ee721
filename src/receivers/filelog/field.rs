//! Field paths of the `filelog` operators, in the Collector's notation:
//! `body`, `body.key` (when the body is a map), `attributes.key` and
//! `resource.key`; a key may also be written `attributes["a.b"]`.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};

use super::entry::Entry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Body,
    BodyKey(String),
    Attribute(String),
    Resource(String),
}

impl Field {
    pub fn parse(text: &str) -> Result<Field, String> {
        let text = text.trim();
        if text == "body" {
            return Ok(Field::Body);
        }
        for (prefix, make) in [
            ("body", Field::BodyKey as fn(String) -> Field),
            ("attributes", Field::Attribute),
            ("resource", Field::Resource),
        ] {
            let Some(rest) = text.strip_prefix(prefix) else {
                continue;
            };
            let key = if let Some(key) = rest.strip_prefix('.') {
                key
            } else if let Some(inner) = rest.strip_prefix("[\"").and_then(|r| r.strip_suffix("\"]"))
            {
                inner
            } else {
                continue;
            };
            if key.is_empty() {
                break;
            }
            return Ok(make(key.to_string()));
        }
        Err(format!(
            "`{text}` is not a field: expected body, body.<key>, attributes.<key> or resource.<key>"
        ))
    }

    pub fn get<'a>(&self, entry: &'a Entry) -> Option<&'a AnyValue> {
        match self {
            Field::Body => entry.body.as_ref(),
            Field::BodyKey(key) => match entry.body.as_ref()?.value.as_ref()? {
                any_value::Value::KvlistValue(list) => find(&list.values, key),
                _ => None,
            },
            Field::Attribute(key) => find(&entry.attributes, key),
            Field::Resource(key) => find(&entry.resource, key),
        }
    }

    pub fn take(&self, entry: &mut Entry) -> Option<AnyValue> {
        match self {
            Field::Body => entry.body.take(),
            Field::BodyKey(key) => match entry.body.as_mut()?.value.as_mut()? {
                any_value::Value::KvlistValue(list) => remove(&mut list.values, key),
                _ => None,
            },
            Field::Attribute(key) => remove(&mut entry.attributes, key),
            Field::Resource(key) => remove(&mut entry.resource, key),
        }
    }

    pub fn set(&self, entry: &mut Entry, value: AnyValue) {
        match self {
            Field::Body => entry.body = Some(value),
            Field::BodyKey(key) => {
                let is_map = matches!(
                    entry.body.as_ref().and_then(|b| b.value.as_ref()),
                    Some(any_value::Value::KvlistValue(_))
                );
                if !is_map {
                    entry.body = Some(AnyValue {
                        value: Some(any_value::Value::KvlistValue(KeyValueList::default())),
                    });
                }
                if let Some(AnyValue {
                    value: Some(any_value::Value::KvlistValue(list)),
                }) = entry.body.as_mut()
                {
                    insert(&mut list.values, key, value);
                }
            }
            Field::Attribute(key) => insert(&mut entry.attributes, key, value),
            Field::Resource(key) => insert(&mut entry.resource, key, value),
        }
    }
}

fn find<'a>(list: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    list.iter().find(|kv| kv.key == key)?.value.as_ref()
}

fn remove(list: &mut Vec<KeyValue>, key: &str) -> Option<AnyValue> {
    let at = list.iter().position(|kv| kv.key == key)?;
    list.remove(at).value
}

pub fn insert(list: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    match list.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = Some(value),
        None => list.push(KeyValue {
            key: key.to_string(),
            value: Some(value),
            ..Default::default()
        }),
    }
}

pub fn string_value(text: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(text.into())),
    }
}

/// A value as text, for parsers that read text (regex, time, severity).
pub fn text_of(value: &AnyValue) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    Some(match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Cow::Borrowed(s.as_str()),
        any_value::Value::IntValue(i) => Cow::Owned(i.to_string()),
        any_value::Value::DoubleValue(d) => Cow::Owned(d.to_string()),
        any_value::Value::BoolValue(b) => Cow::Owned(b.to_string()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_collector_notations() {
        assert_eq!(Field::parse("body"), Ok(Field::Body));
        assert_eq!(
            Field::parse("attributes.http.status"),
            Ok(Field::Attribute("http.status".into()))
        );
        assert_eq!(
            Field::parse("attributes[\"a.b\"]"),
            Ok(Field::Attribute("a.b".into()))
        );
        assert_eq!(
            Field::parse("resource.host"),
            Ok(Field::Resource("host".into()))
        );
        assert_eq!(Field::parse("body.msg"), Ok(Field::BodyKey("msg".into())));
        assert!(Field::parse("attributes.").is_err());
        assert!(Field::parse("attrs.x").is_err());
    }
}
