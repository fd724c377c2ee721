//! `attributes` and `resource` processors in the Collector's shapes: a
//! list of actions (actions.rs) applied to the attributes of each span,
//! log record and metric data point (`attributes`, filtered by `include`
//! and `exclude`, matching.rs) or to each resource (`resource`,
//! resource.rs).

pub mod actions;
pub mod matching;
pub mod resource;

use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use serde::Deserialize;

use actions::{Action, RawAction};
use matching::{Item, Matcher, RawMatch};

use super::Processor;
use crate::ottl::value::Value as OttlValue;
use crate::signal::Batch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttributesConfig {
    pub actions: Vec<RawAction>,
    pub include: Option<RawMatch>,
    pub exclude: Option<RawMatch>,
}

#[derive(Debug, Clone)]
pub struct AttributesConfig {
    pub actions: Vec<Action>,
    pub include: Option<Matcher>,
    pub exclude: Option<Matcher>,
}

impl RawAttributesConfig {
    /// Errors as (path under the processor, message).
    pub fn compile(&self) -> Result<AttributesConfig, Vec<(Vec<String>, String)>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        for (i, action) in self.actions.iter().enumerate() {
            match action.compile() {
                Ok(a) => compiled.push(a),
                Err((field, message)) => errors.push((
                    vec!["actions".into(), format!("[{i}]"), field.into()],
                    message,
                )),
            }
        }
        let mut matcher =
            |name: &str, raw: &Option<RawMatch>| match raw.as_ref().map(RawMatch::compile) {
                Some(Ok(m)) => Some(m),
                Some(Err((field, message))) => {
                    errors.push((vec![name.to_string(), field], message));
                    None
                }
                None => None,
            };
        let include = matcher("include", &self.include);
        let exclude = matcher("exclude", &self.exclude);
        if errors.is_empty() {
            Ok(AttributesConfig {
                actions: compiled,
                include,
                exclude,
            })
        } else {
            Err(errors)
        }
    }
}

pub struct AttributesProcessor {
    config: AttributesConfig,
}

impl AttributesProcessor {
    pub fn new(config: &AttributesConfig) -> Self {
        AttributesProcessor {
            config: config.clone(),
        }
    }

    fn selected(&self, item: &Item<'_>) -> bool {
        self.config.include.as_ref().is_none_or(|m| m.matches(item))
            && !self
                .config
                .exclude
                .as_ref()
                .is_some_and(|m| m.matches(item))
    }

    /// Runs the actions on `attributes` if the item is selected.
    fn edit(
        &self,
        resource: &[KeyValue],
        attributes: &mut Vec<KeyValue>,
        span_name: Option<&str>,
        metric_name: Option<&str>,
        log_body: Option<String>,
    ) {
        let item = Item {
            resource,
            attributes,
            span_name,
            metric_name,
            log_body,
        };
        if self.selected(&item) {
            for action in &self.config.actions {
                action.apply(attributes);
            }
        }
    }
}

impl Processor for AttributesProcessor {
    fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
        // Edits records and resources: typed events become their log records.
        let batch = match batch.into_otlp().into_decoded() {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "attributes: dropping a batch that does not decode");
                return;
            }
        };
        out.push(match batch {
            Batch::Traces(mut r) => {
                for rs in &mut Arc::make_mut(&mut r).resource_spans {
                    let resource = rs
                        .resource
                        .as_ref()
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default();
                    for span in rs.scope_spans.iter_mut().flat_map(|s| s.spans.iter_mut()) {
                        let name = std::mem::take(&mut span.name);
                        self.edit(&resource, &mut span.attributes, Some(&name), None, None);
                        span.name = name;
                    }
                }
                Batch::Traces(r)
            }
            Batch::Logs(mut r) => {
                for rl in &mut Arc::make_mut(&mut r).resource_logs {
                    let resource = rl
                        .resource
                        .as_ref()
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default();
                    for record in rl
                        .scope_logs
                        .iter_mut()
                        .flat_map(|s| s.log_records.iter_mut())
                    {
                        let body = OttlValue::from_any(record.body.as_ref()).to_text();
                        self.edit(&resource, &mut record.attributes, None, None, body);
                    }
                }
                Batch::Logs(r)
            }
            Batch::Metrics(mut r) => {
                for rm in &mut Arc::make_mut(&mut r).resource_metrics {
                    let resource = rm
                        .resource
                        .as_ref()
                        .map(|r| r.attributes.clone())
                        .unwrap_or_default();
                    for metric in rm
                        .scope_metrics
                        .iter_mut()
                        .flat_map(|s| s.metrics.iter_mut())
                    {
                        let name = metric.name.clone();
                        let each = |attributes: &mut Vec<KeyValue>| {
                            self.edit(&resource, attributes, None, Some(&name), None)
                        };
                        match &mut metric.data {
                            Some(Data::Gauge(g)) => g
                                .data_points
                                .iter_mut()
                                .for_each(|p| each(&mut p.attributes)),
                            Some(Data::Sum(s)) => s
                                .data_points
                                .iter_mut()
                                .for_each(|p| each(&mut p.attributes)),
                            Some(Data::Histogram(h)) => h
                                .data_points
                                .iter_mut()
                                .for_each(|p| each(&mut p.attributes)),
                            Some(Data::ExponentialHistogram(h)) => h
                                .data_points
                                .iter_mut()
                                .for_each(|p| each(&mut p.attributes)),
                            Some(Data::Summary(s)) => s
                                .data_points
                                .iter_mut()
                                .for_each(|p| each(&mut p.attributes)),
                            None => {}
                        }
                    }
                }
                Batch::Metrics(r)
            }
            other @ (Batch::Wire(_) | Batch::Events(_)) => other,
        });
    }
}

impl crate::components::compiled::CompiledProcessor for AttributesConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(AttributesProcessor::new(self))
    }
}

/// The registry's compile step for `attributes`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    let raw: RawAttributesConfig = decoder.decode(value, path)?;
    match raw.compile() {
        Ok(config) => Some(std::sync::Arc::new(config)),
        Err(errors) => {
            for (keys, message) in errors {
                let at = keys.iter().fold(path.clone(), |at, k| {
                    match k
                        .strip_prefix('[')
                        .and_then(|k| k.strip_suffix(']'))
                        .and_then(|k| k.parse().ok())
                    {
                        Some(i) => at.index(i),
                        None => at.key(k.clone()),
                    }
                });
                decoder.error(at, message);
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn include_and_exclude_select_spans_by_service_name_and_attribute() {
        let raw: RawAttributesConfig = yaml_serde::from_str(
            r#"
actions: [ { key: touched, value: "yes", action: insert } ]
include: { match_type: regexp, services: ["^api"], span_names: ["^GET "] }
exclude: { match_type: strict, attributes: [ { key: http.route, value: /healthz } ] }
"#,
        )
        .unwrap();
        let mut processor = AttributesProcessor::new(&raw.compile().unwrap());
        let span = |name: &str, route: &str| Span {
            name: name.into(),
            attributes: vec![kv("http.route", route)],
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "api-gateway")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span("GET /users", "/users"),
                        span("GET /healthz", "/healthz"),
                        span("POST /users", "/users"),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mut out = Vec::new();
        processor.process(
            Batch::Traces(Arc::new(request)),
            SystemTime::UNIX_EPOCH,
            &mut out,
        );
        let Batch::Traces(r) = &out[0] else { panic!() };
        let touched: Vec<bool> = r.resource_spans[0].scope_spans[0]
            .spans
            .iter()
            .map(|s| s.attributes.iter().any(|kv| kv.key == "touched"))
            .collect();
        assert_eq!(touched, vec![true, false, false]);
    }

    #[test]
    fn names_the_action_that_does_not_compile() {
        let raw: RawAttributesConfig = yaml_serde::from_str(
            "actions: [ { key: a, action: insert }, { key: b, action: extract, pattern: '(' } ]",
        )
        .unwrap();
        let errors = raw.compile().unwrap_err();
        assert_eq!(errors[0].0, vec!["actions", "[0]", "value"]);
        assert_eq!(errors[1].0, vec!["actions", "[1]", "pattern"]);
    }
}
