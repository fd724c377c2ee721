//! OTLP metrics to line-protocol points in the two schemas of the
//! Collector's `influxdb` exporter (InfluxData's otel2influx), which are
//! those of Telegraf's Prometheus input:
//!
//! - `telegraf-prometheus-v1`: a measurement per metric; fields `gauge`,
//!   `counter`, `count`, `sum`, a field per bucket bound (cumulative,
//!   `+Inf` last) or per quantile;
//! - `telegraf-prometheus-v2`: one measurement `prometheus`; the field is
//!   the metric name (`_count`, `_sum`, `_bucket` with an `le` tag; a
//!   summary's quantiles with a `quantile` tag).
//!
//! Tags are the data point's attributes, then `otel.library.name` and
//! `otel.library.version` of the scope, then the resource's attributes (on
//! a clash the first wins). Neither schema defines delta sums, delta
//! histograms or exponential histograms: they are counted as left out,
//! as the Collector drops them.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, NumberDataPoint, ResourceMetrics, SummaryDataPoint,
    metric, number_data_point,
};

use super::lines::{FieldValue, Point};
use crate::otlp::value::any_value_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Schema {
    #[serde(rename = "telegraf-prometheus-v1")]
    V1,
    #[serde(rename = "telegraf-prometheus-v2")]
    V2,
}

/// Points of a request, and how many data points had no mapping.
#[derive(Debug, Default)]
pub struct Converted {
    pub points: Vec<Point>,
    pub left_out: usize,
}

/// The bit of `DataPointFlags` saying the point holds no value.
const NO_RECORDED_VALUE: u32 = 1;

fn tags_of(point: &[KeyValue], base: &[(String, String)]) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = point
        .iter()
        .map(|kv| (kv.key.clone(), any_value_text_opt(kv)))
        .collect();
    tags.extend_from_slice(base);
    tags
}

fn any_value_text_opt(kv: &KeyValue) -> String {
    kv.value.as_ref().map(any_value_text).unwrap_or_default()
}

fn number(point: &NumberDataPoint) -> Option<f64> {
    match point.value? {
        number_data_point::Value::AsDouble(v) => Some(v),
        number_data_point::Value::AsInt(v) => Some(v as f64),
    }
}

/// A bound as Prometheus writes `le` (`0.5`, `10`, `1e-06` stays `0.000001`).
fn bound_text(bound: f64) -> String {
    format!("{bound}")
}

pub fn convert(resource_metrics: &[ResourceMetrics], schema: Schema, now_ns: i64) -> Converted {
    let mut out = Converted::default();
    for rm in resource_metrics {
        let resource: Vec<(String, String)> = rm
            .resource
            .iter()
            .flat_map(|r| r.attributes.iter())
            .map(|kv| (kv.key.clone(), any_value_text_opt(kv)))
            .collect();
        for sm in &rm.scope_metrics {
            let mut base = Vec::new();
            if let Some(scope) = &sm.scope {
                base.push(("otel.library.name".to_string(), scope.name.clone()));
                base.push(("otel.library.version".to_string(), scope.version.clone()));
            }
            base.extend(resource.iter().cloned());
            for m in &sm.metrics {
                let mut writer = Writer {
                    name: &m.name,
                    base: &base,
                    schema,
                    now_ns,
                    out: &mut out,
                };
                match &m.data {
                    Some(metric::Data::Gauge(g)) => {
                        for p in &g.data_points {
                            writer.number(p, "gauge");
                        }
                    }
                    Some(metric::Data::Sum(s)) => {
                        let cumulative =
                            s.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                        for p in &s.data_points {
                            if !s.is_monotonic {
                                // An up-down counter is a gauge to Prometheus.
                                writer.number(p, "gauge");
                            } else if cumulative {
                                writer.number(p, "counter");
                            } else {
                                writer.out.left_out += 1;
                            }
                        }
                    }
                    Some(metric::Data::Histogram(h)) => {
                        let cumulative =
                            h.aggregation_temporality == AggregationTemporality::Cumulative as i32;
                        for p in &h.data_points {
                            if cumulative {
                                writer.histogram(p);
                            } else {
                                writer.out.left_out += 1;
                            }
                        }
                    }
                    Some(metric::Data::Summary(s)) => {
                        for p in &s.data_points {
                            writer.summary(p);
                        }
                    }
                    Some(metric::Data::ExponentialHistogram(e)) => {
                        writer.out.left_out += e.data_points.len();
                    }
                    None => {}
                }
            }
        }
    }
    out
}

struct Writer<'a> {
    name: &'a str,
    base: &'a [(String, String)],
    schema: Schema,
    now_ns: i64,
    out: &'a mut Converted,
}

impl Writer<'_> {
    fn time(&self, time_unix_nano: u64) -> i64 {
        if time_unix_nano == 0 {
            self.now_ns
        } else {
            i64::try_from(time_unix_nano).unwrap_or(i64::MAX)
        }
    }

    fn measurement(&self) -> String {
        match self.schema {
            Schema::V1 => self.name.to_string(),
            Schema::V2 => "prometheus".to_string(),
        }
    }

    /// The field key: V1's fixed name, or V2's metric name plus suffix.
    fn key(&self, v1: &str, v2_suffix: &str) -> String {
        match self.schema {
            Schema::V1 => v1.to_string(),
            Schema::V2 => format!("{}{v2_suffix}", self.name),
        }
    }

    fn push(&mut self, tags: Vec<(String, String)>, fields: Vec<(String, f64)>, time: i64) {
        self.out.points.push(Point {
            measurement: self.measurement(),
            tags,
            fields: fields
                .into_iter()
                .map(|(k, v)| (k, FieldValue::Float(v)))
                .collect(),
            timestamp_ns: time,
        });
    }

    fn number(&mut self, p: &NumberDataPoint, v1_field: &str) {
        let Some(value) = number(p).filter(|_| p.flags & NO_RECORDED_VALUE == 0) else {
            self.out.left_out += 1;
            return;
        };
        let key = self.key(v1_field, "");
        self.push(
            tags_of(&p.attributes, self.base),
            vec![(key, value)],
            self.time(p.time_unix_nano),
        );
    }

    fn histogram(&mut self, p: &HistogramDataPoint) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            self.out.left_out += 1;
            return;
        }
        let time = self.time(p.time_unix_nano);
        let tags = tags_of(&p.attributes, self.base);
        let mut totals = vec![(self.key("count", "_count"), p.count as f64)];
        if let Some(sum) = p.sum {
            totals.push((self.key("sum", "_sum"), sum));
        }
        // OTLP counts per bucket; Prometheus (and both schemas) count
        // everything at or below the bound.
        let mut buckets = Vec::new();
        let mut cumulative = 0u64;
        for (i, count) in p.bucket_counts.iter().enumerate() {
            cumulative += count;
            let le = match p.explicit_bounds.get(i) {
                Some(bound) => bound_text(*bound),
                None => "+Inf".to_string(),
            };
            buckets.push((le, cumulative as f64));
        }
        match self.schema {
            Schema::V1 => {
                totals.extend(buckets);
                self.push(tags, totals, time);
            }
            Schema::V2 => {
                self.push(tags.clone(), totals, time);
                let key = format!("{}_bucket", self.name);
                for (le, count) in buckets {
                    let mut tags = tags.clone();
                    tags.insert(0, ("le".to_string(), le));
                    self.push(tags, vec![(key.clone(), count)], time);
                }
            }
        }
    }

    fn summary(&mut self, p: &SummaryDataPoint) {
        if p.flags & NO_RECORDED_VALUE != 0 {
            self.out.left_out += 1;
            return;
        }
        let time = self.time(p.time_unix_nano);
        let tags = tags_of(&p.attributes, self.base);
        let mut totals = vec![
            (self.key("count", "_count"), p.count as f64),
            (self.key("sum", "_sum"), p.sum),
        ];
        match self.schema {
            Schema::V1 => {
                for q in &p.quantile_values {
                    totals.push((bound_text(q.quantile), q.value));
                }
                self.push(tags, totals, time);
            }
            Schema::V2 => {
                self.push(tags.clone(), totals, time);
                for q in &p.quantile_values {
                    let mut tags = tags.clone();
                    tags.insert(0, ("quantile".to_string(), bound_text(q.quantile)));
                    self.push(tags, vec![(self.name.to_string(), q.value)], time);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, Metric,
        ScopeMetrics, Sum, Summary, summary_data_point::ValueAtQuantile,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    const T: u64 = 1_700_000_000_000_000_000;

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn num(v: f64) -> NumberDataPoint {
        NumberDataPoint {
            attributes: vec![kv("route", "/a")],
            time_unix_nano: T,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        }
    }

    fn metrics() -> Vec<ResourceMetrics> {
        let m = |name: &str, data| Metric {
            name: name.into(),
            data: Some(data),
            ..Default::default()
        };
        let cumulative = AggregationTemporality::Cumulative as i32;
        vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop"), kv("route", "resource-loses")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                metrics: vec![
                    m(
                        "temp",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![num(21.5)],
                        }),
                    ),
                    m(
                        "reqs",
                        metric::Data::Sum(Sum {
                            data_points: vec![num(42.0)],
                            aggregation_temporality: cumulative,
                            is_monotonic: true,
                        }),
                    ),
                    m(
                        "inflight",
                        metric::Data::Sum(Sum {
                            data_points: vec![num(-2.0)],
                            aggregation_temporality: cumulative,
                            is_monotonic: false,
                        }),
                    ),
                    m(
                        "delta",
                        metric::Data::Sum(Sum {
                            data_points: vec![num(1.0)],
                            aggregation_temporality: AggregationTemporality::Delta as i32,
                            is_monotonic: true,
                        }),
                    ),
                    m(
                        "lat",
                        metric::Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: T,
                                count: 10,
                                sum: Some(4.5),
                                bucket_counts: vec![3, 5, 2],
                                explicit_bounds: vec![0.1, 0.5],
                                ..Default::default()
                            }],
                            aggregation_temporality: cumulative,
                        }),
                    ),
                    m(
                        "q",
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                time_unix_nano: T,
                                count: 4,
                                sum: 8.0,
                                quantile_values: vec![ValueAtQuantile {
                                    quantile: 0.99,
                                    value: 3.0,
                                }],
                                ..Default::default()
                            }],
                        }),
                    ),
                    m(
                        "exp",
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint::default()],
                            aggregation_temporality: cumulative,
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    fn lines(schema: Schema) -> (Vec<String>, usize) {
        let c = convert(&metrics(), schema, 1);
        let text = c
            .points
            .iter()
            .map(|p| String::from_utf8(p.encode().unwrap()).unwrap())
            .collect();
        (text, c.left_out)
    }

    #[test]
    fn v1_maps_each_kind_to_its_own_measurement() {
        let (lines, left_out) = lines(Schema::V1);
        let tags = "otel.library.name=lib,otel.library.version=1.0";
        let t = T;
        assert_eq!(
            lines,
            [
                format!("temp,{tags},route=/a,service.name=shop gauge=21.5 {t}\n"),
                format!("reqs,{tags},route=/a,service.name=shop counter=42 {t}\n"),
                format!("inflight,{tags},route=/a,service.name=shop gauge=-2 {t}\n"),
                format!(
                    "lat,{tags},route=resource-loses,service.name=shop count=10,sum=4.5,0.1=3,0.5=8,+Inf=10 {t}\n"
                ),
                format!(
                    "q,{tags},route=resource-loses,service.name=shop count=4,sum=8,0.99=3 {t}\n"
                ),
            ]
        );
        assert_eq!(left_out, 2, "the delta sum and the exponential histogram");
    }

    #[test]
    fn v2_puts_everything_in_the_prometheus_measurement() {
        let (lines, left_out) = lines(Schema::V2);
        let tags = "otel.library.name=lib,otel.library.version=1.0";
        let t = T;
        assert_eq!(
            lines,
            [
                format!("prometheus,{tags},route=/a,service.name=shop temp=21.5 {t}\n"),
                format!("prometheus,{tags},route=/a,service.name=shop reqs=42 {t}\n"),
                format!("prometheus,{tags},route=/a,service.name=shop inflight=-2 {t}\n"),
                format!(
                    "prometheus,{tags},route=resource-loses,service.name=shop lat_count=10,lat_sum=4.5 {t}\n"
                ),
                format!(
                    "prometheus,le=0.1,{tags},route=resource-loses,service.name=shop lat_bucket=3 {t}\n"
                ),
                format!(
                    "prometheus,le=0.5,{tags},route=resource-loses,service.name=shop lat_bucket=8 {t}\n"
                ),
                format!(
                    "prometheus,le=+Inf,{tags},route=resource-loses,service.name=shop lat_bucket=10 {t}\n"
                ),
                format!(
                    "prometheus,{tags},route=resource-loses,service.name=shop q_count=4,q_sum=8 {t}\n"
                ),
                format!(
                    "prometheus,{tags},quantile=0.99,route=resource-loses,service.name=shop q=3 {t}\n"
                ),
            ]
        );
        assert_eq!(left_out, 2);
    }

    #[test]
    fn points_without_a_value_or_time_are_handled() {
        let mut rm = metrics();
        let gauge = &mut rm[0].scope_metrics[0].metrics[0];
        let Some(metric::Data::Gauge(g)) = &mut gauge.data else {
            panic!("the first metric is the gauge")
        };
        g.data_points[0].time_unix_nano = 0;
        g.data_points.push(NumberDataPoint {
            flags: NO_RECORDED_VALUE,
            ..num(1.0)
        });
        rm[0].scope_metrics[0].metrics.truncate(1);
        let c = convert(&rm, Schema::V1, 99);
        assert_eq!(c.points.len(), 1);
        assert_eq!(c.points[0].timestamp_ns, 99, "no time: now");
        assert_eq!(c.left_out, 1, "no recorded value");
    }
}
