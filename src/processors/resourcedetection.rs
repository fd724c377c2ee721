//! `resourcedetection` with the Collector's `env` and `system` detectors:
//! resource attributes found once at start-up (from
//! `OTEL_RESOURCE_ATTRIBUTES`, and host.name, host.id, os.type, host.arch
//! from this machine) are set on every resource passing through. Other
//! detectors (cloud metadata servers, docker, Kubernetes) cannot be tested
//! here and are refused when the config is read.

use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::Deserialize;

use super::Processor;
use crate::signal::Batch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detector {
    Env,
    System,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDetectionConfig {
    pub detectors: Vec<Detector>,
    /// Replace attributes the data already has (the Collector's default).
    #[serde(default = "yes", rename = "override")]
    pub override_existing: bool,
    /// How long detection may take: accepted; local detectors are instant.
    #[serde(default, with = "crate::config::duration::option")]
    pub timeout: Option<std::time::Duration>,
    #[serde(default)]
    pub system: SystemDetectorConfig,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemDetectorConfig {
    /// `os` (the kernel's host name); `dns` and `cname` fall back to it.
    #[serde(default)]
    pub hostname_sources: Vec<String>,
    /// Per attribute `{ enabled: bool }`, as the Collector writes it.
    #[serde(default)]
    pub resource_attributes: std::collections::BTreeMap<String, Enabled>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enabled {
    pub enabled: bool,
}

impl ResourceDetectionConfig {
    /// The attributes the detectors find, in detector order (a later
    /// detector does not replace an earlier one, as in the Collector).
    pub fn detect(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = Vec::new();
        let mut add = |key: &str, value: String| {
            if !found.iter().any(|(k, _)| k == key) && !value.is_empty() {
                found.push((key.to_string(), value));
            }
        };
        for detector in &self.detectors {
            match detector {
                Detector::Env => {
                    for (key, value) in parse_resource_attributes(
                        &env("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default(),
                    ) {
                        add(&key, value);
                    }
                }
                Detector::System => {
                    let enabled = |key: &str, default: bool| {
                        self.system
                            .resource_attributes
                            .get(key)
                            .map_or(default, |e| e.enabled)
                    };
                    if enabled("host.name", true) {
                        add(
                            "host.name",
                            sysinfo::System::host_name().unwrap_or_default(),
                        );
                    }
                    if enabled("os.type", true) {
                        add("os.type", std::env::consts::OS.to_string());
                    }
                    if enabled("host.id", false) {
                        let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
                        add("host.id", id.trim().to_string());
                    }
                    if enabled("host.arch", false) {
                        add("host.arch", host_arch().to_string());
                    }
                }
            }
        }
        found
    }
}

/// The OpenTelemetry name of this machine's architecture.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

/// `key1=value1,key2=value2`, values percent-decoded, as the SDK
/// specification defines `OTEL_RESOURCE_ATTRIBUTES`.
pub fn parse_resource_attributes(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()).then(|| (key.to_string(), percent_decode(value.trim())))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct ResourceDetectionProcessor {
    attributes: Vec<(String, String)>,
    override_existing: bool,
}

impl ResourceDetectionProcessor {
    pub fn new(config: &ResourceDetectionConfig) -> Self {
        let attributes = config.detect(&|name| std::env::var(name).ok());
        tracing::info!(?attributes, "resourcedetection: detected");
        ResourceDetectionProcessor {
            attributes,
            override_existing: config.override_existing,
        }
    }

    fn apply(&self, resource: &mut Option<Resource>) {
        let resource = resource.get_or_insert_with(Default::default);
        for (key, value) in &self.attributes {
            let value = Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.clone())),
            });
            match resource.attributes.iter_mut().find(|kv| kv.key == *key) {
                Some(existing) if self.override_existing => existing.value = value,
                Some(_) => {}
                None => resource.attributes.push(KeyValue {
                    key: key.clone(),
                    value,
                    ..Default::default()
                }),
            }
        }
    }
}

impl Processor for ResourceDetectionProcessor {
    fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
        // Edits records and resources: typed events become their log records.
        let batch = match batch.into_otlp().into_decoded() {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "resourcedetection: dropping a batch that does not decode");
                return;
            }
        };
        let batch = match batch {
            Batch::Traces(mut request) => {
                for r in &mut std::sync::Arc::make_mut(&mut request).resource_spans {
                    self.apply(&mut r.resource);
                }
                Batch::Traces(request)
            }
            Batch::Metrics(mut request) => {
                for r in &mut std::sync::Arc::make_mut(&mut request).resource_metrics {
                    self.apply(&mut r.resource);
                }
                Batch::Metrics(request)
            }
            Batch::Logs(mut request) => {
                for r in &mut std::sync::Arc::make_mut(&mut request).resource_logs {
                    self.apply(&mut r.resource);
                }
                Batch::Logs(request)
            }
            other @ (Batch::Wire(_) | Batch::Events(_)) => other,
        };
        out.push(batch);
    }
}

impl crate::components::compiled::CompiledProcessor for ResourceDetectionConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(ResourceDetectionProcessor::new(self))
    }
}

/// The registry's compile step for `resourcedetection`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    let mut refused = false;
    let detectors = value
        .get("detectors")
        .and_then(yaml_serde::Value::as_sequence);
    for (i, detector) in detectors.into_iter().flatten().enumerate() {
        let name = detector.as_str().unwrap_or_default();
        if !matches!(name, "env" | "system") {
            refused = true;
            decoder.error(
                path.key("detectors").index(i),
                format!("the `{name}` detector is not supported by sidewatch: only env and system (cloud, docker and Kubernetes detectors need metadata services that cannot be tested here; set their attributes with OTEL_RESOURCE_ATTRIBUTES and the env detector)"),
            );
        }
    }
    if refused {
        return None;
    }
    crate::components::compiled::processor::<ResourceDetectionConfig>(value, path, decoder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_then_system_without_replacing_earlier_detectors() {
        let config: ResourceDetectionConfig = yaml_serde::from_str(
            "{ detectors: [env, system], system: { resource_attributes: { host.arch: { enabled: true } } } }",
        )
        .unwrap();
        let env = |name: &str| {
            (name == "OTEL_RESOURCE_ATTRIBUTES")
                .then(|| "service.name=api,host.name=from%20env".to_string())
        };
        let found = config.detect(&env);
        assert_eq!(found[0], ("service.name".into(), "api".into()));
        assert_eq!(found[1], ("host.name".into(), "from env".into()));
        assert!(found.iter().any(|(k, v)| k == "os.type" && v == "linux"));
        assert!(found.iter().any(|(k, _)| k == "host.arch"));
        assert_eq!(found.iter().filter(|(k, _)| k == "host.name").count(), 1);
    }

    #[test]
    fn sets_resource_attributes_on_every_resource() {
        let processor = ResourceDetectionProcessor {
            attributes: vec![("host.name".into(), "h".into())],
            override_existing: false,
        };
        let mut resource = Some(Resource {
            attributes: vec![KeyValue {
                key: "host.name".into(),
                value: None,
                ..Default::default()
            }],
            ..Default::default()
        });
        processor.apply(&mut resource);
        assert_eq!(resource.as_ref().unwrap().attributes.len(), 1);
        let mut empty = None;
        processor.apply(&mut empty);
        assert_eq!(empty.unwrap().attributes[0].key, "host.name");
    }
}
