//! Series identity: which data points are one series. `anomaly` keys its
//! baselines by it and the `kafka` exporter's `partition_by: series` keys
//! messages by it, so a series that one instance computes on is the same
//! series the partitioner kept together.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;

use super::value::any_value_text;

/// The labels of a point: resource attributes, then the point's own (a
/// point attribute wins over a resource attribute of the same name).
pub fn labels(resource: &[KeyValue], point: &[KeyValue]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for attribute in resource.iter().chain(point) {
        labels.insert(
            attribute.key.clone(),
            attribute
                .value
                .as_ref()
                .map(any_value_text)
                .unwrap_or_default(),
        );
    }
    labels
}

/// `metric{k="v",...}`, labels sorted by name.
pub fn identity(metric: &str, labels: &BTreeMap<String, String>) -> String {
    format!(
        "{}{{{}}}",
        metric,
        labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::value::string_kv;

    #[test]
    fn point_attributes_win_and_order_does_not_matter() {
        let resource = [string_kv("host", "a"), string_kv("service.name", "shop")];
        let point = [string_kv("host", "b")];
        let key = identity("cpu", &labels(&resource, &point));
        assert_eq!(key, r#"cpu{host="b",service.name="shop"}"#);
        let reversed = [string_kv("service.name", "shop"), string_kv("host", "a")];
        assert_eq!(identity("cpu", &labels(&reversed, &point)), key);
    }
}
