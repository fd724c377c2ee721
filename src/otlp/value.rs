//! Attribute values: reading one as text, and building key-values.

use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};

/// A value as text: strings as they are, numbers in Rust's shortest form,
/// bytes in hex, arrays and maps spelled out. Series labels, debug output
/// and the Prometheus exporter all read attributes through this, so one
/// attribute reads the same everywhere.
pub fn any_value_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex::encode(b),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(any_value_text).collect();
            format!("[{}]", items.join(", "))
        }
        Some(any_value::Value::KvlistValue(kv)) => attributes_text(&kv.values),
        Some(any_value::Value::StringValueStrindex(i)) => format!("strindex:{i}"),
        None => String::new(),
    }
}

/// The text of an optional value: empty when absent.
pub fn option_text(value: Option<&AnyValue>) -> String {
    value.map(any_value_text).unwrap_or_default()
}

/// Key-values as `{k=v, k2=v2}`.
pub fn attributes_text(kvs: &[KeyValue]) -> String {
    let mut out = String::from("{");
    for (i, kv) in kvs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}={}", kv.key, option_text(kv.value.as_ref()));
    }
    out.push('}');
    out
}

/// A number as Prometheus's text format and the `quantile` label spell
/// it: `NaN`, `+Inf`, `-Inf`, else Rust's shortest round-trip form (so two
/// different levels never print alike).
pub fn number_text(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

/// A key-value holding `value`.
pub fn key_value(key: impl Into<String>, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub fn string_kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    key_value(key, any_value::Value::StringValue(value.into()))
}

pub fn double_kv(key: impl Into<String>, value: f64) -> KeyValue {
    key_value(key, any_value::Value::DoubleValue(value))
}

pub fn int_kv(key: impl Into<String>, value: i64) -> KeyValue {
    key_value(key, any_value::Value::IntValue(value))
}

/// A string value, for bodies.
pub fn string_value(value: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_text() {
        let list = AnyValue {
            value: Some(any_value::Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![string_kv("a", "x"), int_kv("b", 2)],
                },
            )),
        };
        assert_eq!(any_value_text(&list), "{a=x, b=2}");
        assert_eq!(option_text(double_kv("d", 0.5).value.as_ref()), "0.5");
        assert_eq!(option_text(None), "");
    }
}
