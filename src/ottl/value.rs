//! The values OTTL expressions produce, their conversion to and from OTLP
//! `AnyValue`, and the comparison rules of the OTTL spec: numbers of
//! different types compare as floats, values of different types are only
//! "not equal", and maps and lists support `==` and `!=` only.

use std::cmp::Ordering;

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue, KeyValueList, any_value,
};

use super::ast::{CompareOp, Literal};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    pub fn from_literal(literal: &Literal) -> Value {
        match literal {
            Literal::Nil => Value::Nil,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Int(*i),
            Literal::Double(d) => Value::Double(*d),
            Literal::String(s) => Value::String(s.clone()),
            Literal::Bytes(b) => Value::Bytes(b.clone()),
        }
    }

    pub fn from_any(value: Option<&AnyValue>) -> Value {
        let Some(inner) = value.and_then(|v| v.value.as_ref()) else {
            return Value::Nil;
        };
        match inner {
            any_value::Value::StringValue(s) => Value::String(s.clone()),
            any_value::Value::BoolValue(b) => Value::Bool(*b),
            any_value::Value::IntValue(i) => Value::Int(*i),
            any_value::Value::DoubleValue(d) => Value::Double(*d),
            any_value::Value::BytesValue(b) => Value::Bytes(b.clone()),
            any_value::Value::ArrayValue(a) => {
                Value::List(a.values.iter().map(|v| Value::from_any(Some(v))).collect())
            }
            any_value::Value::KvlistValue(kv) => Value::Map(map_from_attributes(&kv.values)),
            // Only profiles use string tables; there is nothing to resolve here.
            any_value::Value::StringValueStrindex(_) => Value::Nil,
        }
    }

    /// The OTLP form; `Nil` is an `AnyValue` without a value.
    pub fn into_any(self) -> AnyValue {
        let value = match self {
            Value::Nil => None,
            Value::Bool(b) => Some(any_value::Value::BoolValue(b)),
            Value::Int(i) => Some(any_value::Value::IntValue(i)),
            Value::Double(d) => Some(any_value::Value::DoubleValue(d)),
            Value::String(s) => Some(any_value::Value::StringValue(s)),
            Value::Bytes(b) => Some(any_value::Value::BytesValue(b)),
            Value::List(items) => Some(any_value::Value::ArrayValue(ArrayValue {
                values: items.into_iter().map(Value::into_any).collect(),
            })),
            Value::Map(entries) => Some(any_value::Value::KvlistValue(KeyValueList {
                values: entries
                    .into_iter()
                    .map(|(key, value)| KeyValue {
                        key,
                        value: Some(value.into_any()),
                        ..Default::default()
                    })
                    .collect(),
            })),
        };
        AnyValue { value }
    }

    /// The text OTTL's string conversions give (`String`, `Concat`,
    /// `IsMatch`): numbers as Go's strconv writes them, bytes in hex, maps
    /// and lists as JSON. `None` for nil.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Value::Nil => return None,
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Double(d) => format_double(*d),
            Value::String(s) => s.clone(),
            Value::Bytes(b) => hex::encode(b),
            Value::List(_) | Value::Map(_) => self.to_json().to_string(),
        })
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Double(d) => serde_json::Number::from_f64(*d)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => s.clone().into(),
            Value::Bytes(b) => hex::encode(b).into(),
            Value::List(items) => items.iter().map(Value::to_json).collect(),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

/// Go's `strconv.FormatFloat(d, 'f', -1, 64)`: the shortest text that
/// reads back as `d`, without an exponent.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{d}")
    }
}

pub fn map_from_attributes(attributes: &[KeyValue]) -> Vec<(String, Value)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), Value::from_any(kv.value.as_ref())))
        .collect()
}

/// `left op right` under OTTL's comparison rules.
pub fn compare(left: &Value, op: CompareOp, right: &Value) -> bool {
    let ordering = match (left, right) {
        (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
        (Value::Int(a), Value::Double(b)) => (*a as f64).partial_cmp(b),
        (Value::Double(a), Value::Int(b)) => a.partial_cmp(&(*b as f64)),
        (Value::Double(a), Value::Double(b)) => a.partial_cmp(b),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Bytes(a), Value::Bytes(b)) => Some(a.cmp(b)),
        // nil equals nil, and nothing else holds.
        (Value::Nil, Value::Nil) => return op == CompareOp::Equal,
        // Maps and lists: equality only.
        (Value::List(_), Value::List(_)) | (Value::Map(_), Value::Map(_)) => {
            return match op {
                CompareOp::Equal => left == right,
                CompareOp::NotEqual => left != right,
                _ => false,
            };
        }
        // Different types are not equal, and not ordered.
        _ => return op == CompareOp::NotEqual,
    };
    let Some(ordering) = ordering else {
        // NaN: only "not equal" holds.
        return op == CompareOp::NotEqual;
    };
    match op {
        CompareOp::Equal => ordering == Ordering::Equal,
        CompareOp::NotEqual => ordering != Ordering::Equal,
        CompareOp::Less => ordering == Ordering::Less,
        CompareOp::LessOrEqual => ordering != Ordering::Greater,
        CompareOp::Greater => ordering == Ordering::Greater,
        CompareOp::GreaterOrEqual => ordering != Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_spec_comparison_table() {
        use CompareOp::*;
        assert!(compare(&Value::Int(1), Less, &Value::Double(1.5)));
        assert!(compare(&Value::Double(2.0), Equal, &Value::Int(2)));
        assert!(compare(
            &Value::String("a".into()),
            Less,
            &Value::String("b".into())
        ));
        assert!(compare(&Value::Bool(false), Less, &Value::Bool(true)));
        // Different types: only != holds.
        assert!(compare(
            &Value::String("1".into()),
            NotEqual,
            &Value::Int(1)
        ));
        assert!(!compare(&Value::String("1".into()), Equal, &Value::Int(1)));
        assert!(!compare(&Value::String("1".into()), Less, &Value::Int(2)));
        // nil equals only nil.
        assert!(compare(&Value::Nil, Equal, &Value::Nil));
        assert!(!compare(&Value::Nil, LessOrEqual, &Value::Nil));
        assert!(compare(&Value::Nil, NotEqual, &Value::String("".into())));
        // Maps compare for equality only.
        let m = Value::Map(vec![("k".into(), Value::Int(1))]);
        assert!(compare(&m, Equal, &m.clone()));
        assert!(!compare(&m, Less, &m.clone()));
        assert!(compare(
            &Value::Double(f64::NAN),
            NotEqual,
            &Value::Double(f64::NAN)
        ));
    }

    #[test]
    fn converts_to_text_as_go_does() {
        assert_eq!(Value::Double(2.0).to_text().unwrap(), "2");
        assert_eq!(Value::Double(1.25).to_text().unwrap(), "1.25");
        assert_eq!(Value::Bytes(vec![0xab, 1]).to_text().unwrap(), "ab01");
        assert_eq!(
            Value::Map(vec![("a".into(), Value::List(vec![Value::Int(1)]))])
                .to_text()
                .unwrap(),
            r#"{"a":[1]}"#
        );
        assert_eq!(Value::Nil.to_text(), None);
    }

    #[test]
    fn round_trips_through_any_value() {
        let v = Value::Map(vec![
            ("s".into(), Value::String("x".into())),
            (
                "l".into(),
                Value::List(vec![Value::Bool(true), Value::Double(0.5)]),
            ),
        ]);
        assert_eq!(Value::from_any(Some(&v.clone().into_any())), v);
    }
}
