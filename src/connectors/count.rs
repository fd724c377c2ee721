//! `count` connector: traces, metrics or logs in; counters out, in the
//! Collector's `count` connector shape:
//!
//! ```yaml
//! connectors:
//!   count:
//!     logs:
//!       log.error.count:
//!         description: Log records of severity ERROR or above.
//!         conditions: ['severity_number >= SEVERITY_NUMBER_ERROR']
//!         attributes: [{ key: service.name, default_value: unknown }]
//! ```
//!
//! Sections `spans`, `spanevents`, `metrics`, `datapoints` and `logs` each
//! map a metric name to `description`, `conditions` (OTTL, ORed; none
//! counts everything) and `attributes` (not for `metrics`). A section left
//! out counts everything under the Collector's default name
//! (`trace.span.count`, `trace.span.event.count`, `metric.count`,
//! `metric.data_point.count`, `log.record.count`); a section with metrics
//! replaces its default.
//!
//! As in the Collector: an attribute is looked up on the item, then its
//! scope, then its resource; an item missing one without a
//! `default_value` is not counted by that metric. Each incoming batch
//! emits, per resource (its attributes copied), one monotonic delta sum per
//! metric with a count, one int point per set of attribute values. Points
//! carry the pipeline clock's time rather than the newest item's
//! timestamp (the Collector's choice), so alert windows and replay agree.
//! A condition that fails to evaluate counts as not matching and is
//! logged once per batch.
//!
//! Items are visited through the OTTL `Record`, which lends them mutably:
//! a batch shared with another exporter of the pipeline is copied once
//! (`Arc::unwrap_or_clone`); an unshared one is used as it is.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::Deserialize;
use yaml_serde::Value;

use crate::config::{Decoder, YamlPath};
use crate::ottl::compile::Condition;
use crate::ottl::eval::{self, ErrorMode};
use crate::ottl::{Context, MetricShape, Point, Record, grammar};
use crate::processors::Processor;
use crate::processors::transform::{Failures, report};
use crate::signal::Batch;

pub const SCOPE_NAME: &str = "sidewatch/count";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCountConfig {
    #[serde(default)]
    spans: BTreeMap<String, RawMetric>,
    #[serde(default)]
    spanevents: BTreeMap<String, RawMetric>,
    #[serde(default)]
    metrics: BTreeMap<String, RawMetric>,
    #[serde(default)]
    datapoints: BTreeMap<String, RawMetric>,
    #[serde(default)]
    logs: BTreeMap<String, RawMetric>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    description: Option<String>,
    #[serde(default)]
    conditions: Vec<String>,
    #[serde(default)]
    attributes: Vec<RawAttribute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAttribute {
    key: String,
    default_value: Option<Value>,
}

/// One attribute a count is split by.
#[derive(Debug, Clone)]
pub struct CountAttribute {
    pub key: String,
    /// Used when neither the item, its scope nor its resource has `key`.
    pub default_value: Option<AnyValue>,
}

/// One counter: its name, what it counts and how it is split.
#[derive(Debug, Clone)]
pub struct CountMetric {
    pub name: String,
    pub description: String,
    /// ORed; empty counts every item.
    pub conditions: Vec<Condition>,
    pub attributes: Vec<CountAttribute>,
}

/// The validated config: the counters of each level.
#[derive(Debug, Clone)]
pub struct CountConfig {
    pub spans: Arc<Vec<CountMetric>>,
    pub span_events: Arc<Vec<CountMetric>>,
    pub metrics: Arc<Vec<CountMetric>>,
    pub data_points: Arc<Vec<CountMetric>>,
    pub logs: Arc<Vec<CountMetric>>,
}

/// The sections: YAML key, OTTL context, default name and description.
const SECTIONS: [(&str, Context, &str, &str); 5] = [
    (
        "spans",
        Context::Span,
        "trace.span.count",
        "The number of spans observed.",
    ),
    (
        "spanevents",
        Context::SpanEvent,
        "trace.span.event.count",
        "The number of span events observed.",
    ),
    (
        "metrics",
        Context::Metric,
        "metric.count",
        "The number of metrics observed.",
    ),
    (
        "datapoints",
        Context::DataPoint,
        "metric.data_point.count",
        "The number of data points observed.",
    ),
    (
        "logs",
        Context::Log,
        "log.record.count",
        "The number of log records observed.",
    ),
];

/// A YAML scalar as an attribute value.
fn any_value(value: &Value) -> Option<AnyValue> {
    let value = match value {
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64()?),
        },
        _ => return None,
    };
    Some(AnyValue { value: Some(value) })
}

impl CountConfig {
    /// Decodes and compiles the `count` body at `path`; `None` after
    /// reporting every error found.
    pub fn decode(value: &Value, path: &YamlPath, decoder: &mut Decoder) -> Option<CountConfig> {
        let mut raw: RawCountConfig = decoder.decode(value, path)?;
        let mut valid = true;
        let mut compiled: Vec<Vec<CountMetric>> = Vec::new();
        for (key, context, default_name, default_description) in SECTIONS {
            let section = match key {
                "spans" => std::mem::take(&mut raw.spans),
                "spanevents" => std::mem::take(&mut raw.spanevents),
                "metrics" => std::mem::take(&mut raw.metrics),
                "datapoints" => std::mem::take(&mut raw.datapoints),
                _ => std::mem::take(&mut raw.logs),
            };
            let at = path.key(key);
            if section.is_empty() {
                compiled.push(vec![CountMetric {
                    name: default_name.to_string(),
                    description: default_description.to_string(),
                    conditions: Vec::new(),
                    attributes: Vec::new(),
                }]);
                continue;
            }
            let mut metrics = Vec::new();
            for (name, metric) in section {
                let at = at.key(name.clone());
                if name.trim().is_empty() {
                    decoder.error(at.clone(), "expected a metric name, got an empty one");
                    valid = false;
                }
                let mut conditions = Vec::new();
                for (i, text) in metric.conditions.iter().enumerate() {
                    let condition = grammar::parse_condition(text).and_then(|parsed| {
                        crate::ottl::compile::compile_condition(&parsed, context)
                    });
                    match condition {
                        Ok(c) => conditions.push(c),
                        Err(e) => {
                            report(decoder, at.key("conditions").index(i), text, &e);
                            valid = false;
                        }
                    }
                }
                if context == Context::Metric && !metric.attributes.is_empty() {
                    decoder.error(
                        at.key("attributes"),
                        "metrics have no attributes to count by: expected attributes under spans, spanevents, datapoints or logs",
                    );
                    valid = false;
                }
                let mut attributes = Vec::new();
                for (i, attribute) in metric.attributes.iter().enumerate() {
                    let at = at.key("attributes").index(i);
                    if attribute.key.is_empty() {
                        decoder.error(at.key("key"), "expected an attribute key, got an empty one");
                        valid = false;
                    }
                    let default_value = match &attribute.default_value {
                        None => None,
                        Some(v) => match any_value(v) {
                            Some(v) => Some(v),
                            None => {
                                decoder.error(
                                    at.key("default_value"),
                                    "expected a string, number or boolean",
                                );
                                valid = false;
                                None
                            }
                        },
                    };
                    attributes.push(CountAttribute {
                        key: attribute.key.clone(),
                        default_value,
                    });
                }
                metrics.push(CountMetric {
                    description: metric
                        .description
                        .unwrap_or_else(|| default_description.to_string()),
                    name,
                    conditions,
                    attributes,
                });
            }
            compiled.push(metrics);
        }
        if !valid {
            return None;
        }
        let mut compiled = compiled.into_iter().map(Arc::new);
        let mut next = || compiled.next().unwrap_or_default();
        Some(CountConfig {
            spans: next(),
            span_events: next(),
            metrics: next(),
            data_points: next(),
            logs: next(),
        })
    }
}

/// One metric's counts: per encoded set of attribute values, the
/// attributes and the count.
type Counts = BTreeMap<Vec<u8>, (Vec<KeyValue>, i64)>;

/// Counts of one level's metrics within one resource.
struct Tally<'m> {
    metrics: &'m [CountMetric],
    counts: Vec<Counts>,
}

impl<'m> Tally<'m> {
    fn new(metrics: &'m [CountMetric]) -> Self {
        Tally {
            metrics,
            counts: metrics.iter().map(|_| BTreeMap::new()).collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(BTreeMap::is_empty)
    }

    /// Counts `record` into every metric it matches.
    fn update(&mut self, record: &Record<'_>, failures: &mut Failures) {
        let own = own_attributes(record);
        let find = |attributes: &[KeyValue], key: &str| {
            attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone())
        };
        let scope = record.scope.as_ref().map_or(&[][..], |s| &s.attributes[..]);
        let resource = record
            .resource
            .as_ref()
            .map_or(&[][..], |r| &r.attributes[..]);
        'metrics: for (metric, counts) in self.metrics.iter().zip(&mut self.counts) {
            let mut values = Vec::with_capacity(metric.attributes.len());
            for attribute in &metric.attributes {
                let value = find(own, &attribute.key)
                    .or_else(|| find(scope, &attribute.key))
                    .or_else(|| find(resource, &attribute.key))
                    .or_else(|| attribute.default_value.clone());
                match value {
                    Some(value) => values.push(KeyValue {
                        key: attribute.key.clone(),
                        value: Some(value),
                        ..Default::default()
                    }),
                    // Missing an attribute with no default: not counted.
                    None => continue 'metrics,
                }
            }
            if !metric.conditions.is_empty() {
                let mut matched = false;
                for condition in &metric.conditions {
                    match eval::test(condition, record) {
                        Ok(true) => {
                            matched = true;
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            let what = format!("a condition of {}", metric.name);
                            // Ignore never returns Err.
                            let _ = failures.handle(ErrorMode::Ignore, &what, e);
                        }
                    }
                }
                if !matched {
                    continue;
                }
            }
            // The keys are the metric's, in order: the values identify the set.
            let key: Vec<u8> = values
                .iter()
                .flat_map(|kv| {
                    kv.value
                        .as_ref()
                        .map(|v| v.encode_length_delimited_to_vec())
                        .unwrap_or_default()
                })
                .collect();
            counts.entry(key).or_insert_with(|| (values, 0)).1 += 1;
        }
    }

    fn into_metrics(self, start: u64, time: u64, out: &mut Vec<Metric>) {
        for (metric, counts) in self.metrics.iter().zip(self.counts) {
            if counts.is_empty() {
                continue;
            }
            out.push(Metric {
                name: metric.name.clone(),
                description: metric.description.clone(),
                unit: "1".into(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: counts
                        .into_values()
                        .map(|(attributes, count)| NumberDataPoint {
                            attributes,
                            start_time_unix_nano: start,
                            time_unix_nano: time,
                            value: Some(number_data_point::Value::AsInt(count)),
                            ..Default::default()
                        })
                        .collect(),
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            });
        }
    }
}

/// The attributes of the item itself: the point, event, log or span (a
/// metric has none).
fn own_attributes<'r>(record: &'r Record<'_>) -> &'r [KeyValue] {
    match &record.point {
        Some(Point::Number(p)) => return &p.attributes,
        Some(Point::Histogram(p)) => return &p.attributes,
        Some(Point::ExponentialHistogram(p)) => return &p.attributes,
        Some(Point::Summary(p)) => return &p.attributes,
        None => {}
    }
    if record.metric.is_some() {
        return &[];
    }
    if let Some(event) = &record.event {
        return &event.attributes;
    }
    if let Some(log) = &record.log {
        return &log.attributes;
    }
    record.span.as_ref().map_or(&[][..], |s| &s.attributes[..])
}

pub struct CountConnector {
    config: CountConfig,
    /// Unix nanoseconds of the last emission: the start of the next deltas.
    last_emit: Option<u64>,
}

impl CountConnector {
    pub fn new(config: CountConfig) -> Self {
        CountConnector {
            config,
            last_emit: None,
        }
    }

    fn traces<'s>(
        &'s self,
        request: &mut ExportTraceServiceRequest,
        failures: &mut Failures,
        emit: &mut Vec<(Resource, Vec<Tally<'s>>)>,
    ) {
        for rs in &mut request.resource_spans {
            let mut spans = Tally::new(&self.config.spans);
            let mut events = Tally::new(&self.config.span_events);
            let resource = &mut rs.resource;
            for ss in &mut rs.scope_spans {
                let scope = &mut ss.scope;
                for span in &mut ss.spans {
                    // Lent apart so an event and its span can both be borrowed.
                    let mut span_events = std::mem::take(&mut span.events);
                    {
                        let mut record = Record::new(resource, scope);
                        record.span = Some(span);
                        spans.update(&record, failures);
                    }
                    for event in &mut span_events {
                        let mut record = Record::new(resource, scope);
                        record.span = Some(span);
                        record.event = Some(event);
                        events.update(&record, failures);
                    }
                    span.events = span_events;
                }
            }
            push(emit, resource, vec![spans, events]);
        }
    }

    fn metrics<'s>(
        &'s self,
        request: &mut ExportMetricsServiceRequest,
        failures: &mut Failures,
        emit: &mut Vec<(Resource, Vec<Tally<'s>>)>,
    ) {
        for rm in &mut request.resource_metrics {
            let mut metrics = Tally::new(&self.config.metrics);
            let mut points = Tally::new(&self.config.data_points);
            let resource = &mut rm.resource;
            for sm in &mut rm.scope_metrics {
                let scope = &mut sm.scope;
                for m in &mut sm.metrics {
                    let shape = MetricShape::of(m.data.as_ref());
                    {
                        let mut record = Record::new(resource, scope);
                        record.metric_shape = shape;
                        record.metric = Some(m);
                        metrics.update(&record, failures);
                    }
                    // Lent apart so a point and its metric can both be borrowed.
                    let mut data = m.data.take();
                    macro_rules! count {
                        ($points:expr, $variant:ident) => {
                            for point in $points.iter_mut() {
                                let mut record = Record::new(resource, scope);
                                record.metric_shape = shape;
                                record.metric = Some(m);
                                record.point = Some(Point::$variant(point));
                                points.update(&record, failures);
                            }
                        };
                    }
                    match &mut data {
                        Some(metric::Data::Gauge(g)) => count!(g.data_points, Number),
                        Some(metric::Data::Sum(s)) => count!(s.data_points, Number),
                        Some(metric::Data::Histogram(h)) => count!(h.data_points, Histogram),
                        Some(metric::Data::ExponentialHistogram(h)) => {
                            count!(h.data_points, ExponentialHistogram)
                        }
                        Some(metric::Data::Summary(s)) => count!(s.data_points, Summary),
                        None => {}
                    }
                    m.data = data;
                }
            }
            push(emit, resource, vec![metrics, points]);
        }
    }

    fn logs<'s>(
        &'s self,
        request: &mut ExportLogsServiceRequest,
        failures: &mut Failures,
        emit: &mut Vec<(Resource, Vec<Tally<'s>>)>,
    ) {
        for rl in &mut request.resource_logs {
            let mut logs = Tally::new(&self.config.logs);
            let resource = &mut rl.resource;
            for sl in &mut rl.scope_logs {
                let scope = &mut sl.scope;
                for log in &mut sl.log_records {
                    let mut record = Record::new(resource, scope);
                    record.log = Some(log);
                    logs.update(&record, failures);
                }
            }
            push(emit, resource, vec![logs]);
        }
    }
}

/// Keeps a resource's tallies if anything was counted in it.
fn push<'m>(
    emit: &mut Vec<(Resource, Vec<Tally<'m>>)>,
    resource: &Option<Resource>,
    tallies: Vec<Tally<'m>>,
) {
    if tallies.iter().all(Tally::is_empty) {
        return;
    }
    let resource = Resource {
        attributes: resource
            .as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    emit.push((resource, tallies));
}

impl Processor for CountConnector {
    fn process(&mut self, batch: Batch, now: SystemTime, out: &mut Vec<Batch>) {
        // Conditions read log records: typed events are counted as theirs.
        let batch = match batch.into_otlp().into_decoded() {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!("count: dropping a batch that does not decode: {e}");
                return;
            }
        };
        let time = crate::otlp::time::unix_nanos(now);
        let start = self.last_emit.unwrap_or(time).min(time);
        let mut failures = Failures::default();
        let mut emit = Vec::new();
        match batch {
            // Owned when unshared, else copied once (see the header).
            Batch::Traces(request) => {
                let mut request = Arc::unwrap_or_clone(request);
                self.traces(&mut request, &mut failures, &mut emit);
            }
            Batch::Metrics(request) => {
                let mut request = Arc::unwrap_or_clone(request);
                self.metrics(&mut request, &mut failures, &mut emit);
            }
            Batch::Logs(request) => {
                let mut request = Arc::unwrap_or_clone(request);
                self.logs(&mut request, &mut failures, &mut emit);
            }
            Batch::Wire(_) | Batch::Events(_) => {}
        }
        failures.log("count");
        if emit.is_empty() {
            return;
        }
        let resource_metrics = emit
            .into_iter()
            .map(|(resource, tallies)| {
                let mut metrics = Vec::new();
                for tally in tallies {
                    tally.into_metrics(start, time, &mut metrics);
                }
                ResourceMetrics {
                    resource: Some(resource),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: SCOPE_NAME.into(),
                            ..Default::default()
                        }),
                        metrics,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect();
        self.last_emit = Some(time);
        out.push(Batch::Metrics(Arc::new(ExportMetricsServiceRequest {
            resource_metrics,
        })));
    }
}

impl crate::components::compiled::CompiledConnector for CountConfig {
    fn build(
        &self,
        _: &crate::components::compiled::ConnectorContext<'_>,
    ) -> Box<dyn crate::processors::Processor> {
        Box::new(CountConnector::new(self.clone()))
    }
}

/// The registry's compile step for `count`.
pub fn compile(
    value: &Value,
    path: &YamlPath,
    decoder: &mut Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledConnector>> {
    CountConfig::decode(value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::tests::traces;
    use opentelemetry_proto::tonic::metrics::v1::Gauge;
    use opentelemetry_proto::tonic::trace::v1::span::Event;

    fn config(yaml: &str) -> CountConfig {
        let mut decoder = crate::config::test_decoder();
        let value: Value = yaml_serde::from_str(yaml).unwrap();
        CountConfig::decode(&value, &YamlPath::root().key("count"), &mut decoder)
            .expect("the config is valid")
    }

    fn text(key: &str, value: &str) -> KeyValue {
        crate::receivers::hostmetrics::string_attribute(key, value)
    }

    /// (metric, attribute values, count) of everything emitted.
    fn counts(out: &[Batch]) -> Vec<(String, Vec<String>, i64)> {
        let mut found = Vec::new();
        for batch in out {
            let Batch::Metrics(request) = batch else {
                panic!("metrics out")
            };
            for m in request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
            {
                let Some(metric::Data::Sum(sum)) = &m.data else {
                    panic!("a sum")
                };
                for p in &sum.data_points {
                    let values = p
                        .attributes
                        .iter()
                        .map(|kv| crate::otlp::value::any_value_text(kv.value.as_ref().unwrap()))
                        .collect();
                    let Some(number_data_point::Value::AsInt(n)) = p.value else {
                        panic!("an int")
                    };
                    found.push((m.name.clone(), values, n));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn counts_spans_and_events_under_the_default_names() {
        let mut request = traces(&[&[2, 1]]);
        request.resource_spans[0].scope_spans[0].spans[0].events = vec![Event::default(); 3];
        let mut connector = CountConnector::new(config("{}"));
        let mut out = Vec::new();
        connector.process(
            Batch::Traces(Arc::new(request)),
            SystemTime::now(),
            &mut out,
        );
        assert_eq!(
            counts(&out),
            vec![
                ("trace.span.count".into(), vec![], 3),
                ("trace.span.event.count".into(), vec![], 3),
            ]
        );
    }

    #[test]
    fn looks_attributes_up_on_item_scope_then_resource_and_skips_items_without() {
        let mut request = traces(&[&[2, 1], &[1]]);
        let rs = &mut request.resource_spans;
        rs[0].resource = Some(Resource {
            attributes: vec![text("env", "prod"), text("team", "a")],
            ..Default::default()
        });
        rs[0].scope_spans[0].spans[0].attributes = vec![text("env", "test")];
        rs[0].scope_spans[1].scope = Some(InstrumentationScope {
            attributes: vec![text("env", "scope")],
            ..Default::default()
        });
        let yaml = r#"
spans:
  by.env: { attributes: [{ key: env }] }
  by.team: { attributes: [{ key: team, default_value: none }] }
  named: { conditions: ['name == "span-2"', 'name == "span-4"'] }
"#;
        let mut connector = CountConnector::new(config(yaml));
        let mut out = Vec::new();
        let shared = Arc::new(request);
        // Shared with another exporter: counted on a copy, the batch untouched.
        connector.process(Batch::Traces(shared.clone()), SystemTime::now(), &mut out);
        assert_eq!(crate::signal::span_count(&shared), 4);
        assert_eq!(
            counts(&out),
            vec![
                ("by.env".into(), vec!["prod".into()], 1),
                ("by.env".into(), vec!["scope".into()], 1),
                ("by.env".into(), vec!["test".into()], 1),
                ("by.team".into(), vec!["a".into()], 3),
                ("by.team".into(), vec!["none".into()], 1),
                ("named".into(), vec![], 1),
                ("named".into(), vec![], 1),
            ]
        );
        // One resource metrics per counted resource, its attributes copied.
        let Batch::Metrics(m) = &out[0] else { panic!() };
        assert_eq!(m.resource_metrics.len(), 2);
        assert_eq!(
            m.resource_metrics[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .len(),
            2
        );
    }

    #[test]
    fn counts_metrics_and_data_points_with_conditions() {
        let point = |env: &str| NumberDataPoint {
            attributes: vec![text("env", env)],
            ..Default::default()
        };
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "a".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![point("prod"), point("prod"), point("test")],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "b".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: vec![point("test")],
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let yaml = r#"
metrics:
  metric.b.count: { conditions: ['name == "b"'] }
datapoints:
  prod.count: { conditions: ['attributes["env"] == "prod"'], attributes: [{ key: env }] }
"#;
        let mut connector = CountConnector::new(config(yaml));
        let mut out = Vec::new();
        connector.process(
            Batch::Metrics(Arc::new(request)),
            SystemTime::now(),
            &mut out,
        );
        assert_eq!(
            counts(&out),
            vec![
                ("metric.b.count".into(), vec![], 1),
                ("prod.count".into(), vec!["prod".into()], 2),
            ]
        );
    }

    #[test]
    fn nothing_counted_emits_nothing() {
        let mut connector =
            CountConnector::new(config("logs: { none: { conditions: ['body == \"x\"'] } }"));
        let mut out = Vec::new();
        connector.process(
            Batch::Logs(Arc::new(ExportLogsServiceRequest::default())),
            SystemTime::now(),
            &mut out,
        );
        assert!(out.is_empty());
    }
}
