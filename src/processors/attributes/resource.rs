//! `resource`: the Collector's attribute actions on every resource.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;

use super::actions::{Action, RawAction};
use crate::processors::Processor;
use crate::signal::Batch;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResourceConfig {
    pub attributes: Vec<RawAction>,
}

#[derive(Debug, Clone)]
pub struct ResourceConfig {
    pub actions: Vec<Action>,
}

pub struct ResourceProcessor {
    actions: Vec<Action>,
}

impl ResourceProcessor {
    pub fn new(config: &ResourceConfig) -> Self {
        ResourceProcessor {
            actions: config.actions.clone(),
        }
    }

    fn apply(&self, resource: &mut Option<opentelemetry_proto::tonic::resource::v1::Resource>) {
        let resource = resource.get_or_insert_with(Default::default);
        for action in &self.actions {
            action.apply(&mut resource.attributes);
        }
    }
}

impl Processor for ResourceProcessor {
    fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
        // Edits records and resources: typed events become their log records.
        let batch = match batch.into_otlp().into_decoded() {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "resource: dropping a batch that does not decode");
                return;
            }
        };
        out.push(match batch {
            Batch::Traces(mut r) => {
                for rs in &mut Arc::make_mut(&mut r).resource_spans {
                    self.apply(&mut rs.resource);
                }
                Batch::Traces(r)
            }
            Batch::Metrics(mut r) => {
                for rm in &mut Arc::make_mut(&mut r).resource_metrics {
                    self.apply(&mut rm.resource);
                }
                Batch::Metrics(r)
            }
            Batch::Logs(mut r) => {
                for rl in &mut Arc::make_mut(&mut r).resource_logs {
                    self.apply(&mut rl.resource);
                }
                Batch::Logs(r)
            }
            other @ (Batch::Wire(_) | Batch::Events(_)) => other,
        });
    }
}

impl crate::components::compiled::CompiledProcessor for ResourceConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(ResourceProcessor::new(self))
    }
}

/// The registry's compile step for `resource`.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    let raw: RawResourceConfig = decoder.decode(value, path)?;
    let mut actions = Vec::new();
    let mut valid = true;
    for (i, action) in raw.attributes.iter().enumerate() {
        match action.compile() {
            Ok(a) => actions.push(a),
            Err((field, message)) => {
                valid = false;
                decoder.error(path.key("attributes").index(i).key(field), message);
            }
        }
    }
    valid.then(|| std::sync::Arc::new(ResourceConfig { actions }) as _)
}
