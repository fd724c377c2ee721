//! `include` / `exclude` of the Collector's `attributes` processor: which
//! spans, log records and data points the actions apply to, by service,
//! span name, metric name, log body, attributes and resource attributes,
//! matched exactly (`strict`) or by regular expression (`regexp`). Each
//! property written must match (one of its values); an item is processed
//! when it matches `include` (if given) and does not match `exclude`.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use regex::Regex;
use serde::Deserialize;

use crate::ottl::value::Value as OttlValue;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    #[default]
    Strict,
    Regexp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyValue {
    pub key: String,
    /// Absent: the key being there is enough.
    pub value: Option<yaml_serde::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub match_type: MatchType,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub span_names: Vec<String>,
    #[serde(default)]
    pub metric_names: Vec<String>,
    #[serde(default)]
    pub log_bodies: Vec<String>,
    #[serde(default)]
    pub attributes: Vec<RawKeyValue>,
    #[serde(default)]
    pub resources: Vec<RawKeyValue>,
}

#[derive(Debug, Clone)]
enum Pattern {
    Strict(String),
    Regexp(Regex),
}

impl Pattern {
    fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Strict(s) => s == text,
            Pattern::Regexp(r) => r.is_match(text),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    services: Vec<Pattern>,
    span_names: Vec<Pattern>,
    metric_names: Vec<Pattern>,
    log_bodies: Vec<Pattern>,
    attributes: Vec<(String, Option<Pattern>)>,
    resources: Vec<(String, Option<Pattern>)>,
}

/// What one item offers to be matched on.
pub struct Item<'a> {
    pub resource: &'a [KeyValue],
    pub attributes: &'a [KeyValue],
    pub span_name: Option<&'a str>,
    pub metric_name: Option<&'a str>,
    pub log_body: Option<String>,
}

fn text_of(attributes: &[KeyValue], key: &str) -> Option<Option<String>> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| OttlValue::from_any(kv.value.as_ref()).to_text())
}

impl RawMatch {
    /// (field, message) for a regular expression that does not compile.
    pub fn compile(&self) -> Result<Matcher, (String, String)> {
        let pattern = |field: String, text: &str| -> Result<Pattern, (String, String)> {
            match self.match_type {
                MatchType::Strict => Ok(Pattern::Strict(text.to_string())),
                MatchType::Regexp => Regex::new(text)
                    .map(Pattern::Regexp)
                    .map_err(|e| (field, crate::config::one_line(&e))),
            }
        };
        let list = |name: &str, texts: &[String]| -> Result<Vec<Pattern>, (String, String)> {
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| pattern(format!("{name}[{i}]"), t))
                .collect()
        };
        let pairs = |name: &str, kvs: &[RawKeyValue]| {
            kvs.iter()
                .enumerate()
                .map(|(i, kv)| {
                    let value = match &kv.value {
                        None => None,
                        Some(yaml_serde::Value::String(s)) => {
                            Some(pattern(format!("{name}[{i}].value"), s)?)
                        }
                        Some(other) => Some(Pattern::Strict(
                            yaml_serde::to_string(other)
                                .unwrap_or_default()
                                .trim()
                                .to_string(),
                        )),
                    };
                    Ok((kv.key.clone(), value))
                })
                .collect::<Result<Vec<_>, (String, String)>>()
        };
        Ok(Matcher {
            services: list("services", &self.services)?,
            span_names: list("span_names", &self.span_names)?,
            metric_names: list("metric_names", &self.metric_names)?,
            log_bodies: list("log_bodies", &self.log_bodies)?,
            attributes: pairs("attributes", &self.attributes)?,
            resources: pairs("resources", &self.resources)?,
        })
    }
}

impl Matcher {
    pub fn matches(&self, item: &Item<'_>) -> bool {
        let any = |patterns: &[Pattern], text: Option<&str>| {
            patterns.is_empty() || text.is_some_and(|t| patterns.iter().any(|p| p.matches(t)))
        };
        let service = text_of(item.resource, "service.name").flatten();
        let all_present = |wanted: &[(String, Option<Pattern>)], attributes: &[KeyValue]| {
            wanted
                .iter()
                .all(|(key, value)| match text_of(attributes, key) {
                    None => false,
                    Some(found) => value
                        .as_ref()
                        .is_none_or(|p| found.as_deref().is_some_and(|f| p.matches(f))),
                })
        };
        any(&self.services, service.as_deref())
            && any(&self.span_names, item.span_name)
            && any(&self.metric_names, item.metric_name)
            && any(&self.log_bodies, item.log_body.as_deref())
            && all_present(&self.attributes, item.attributes)
            && all_present(&self.resources, item.resource)
    }
}
