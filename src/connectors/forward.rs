//! `forward`: passes batches unchanged to pipelines of the same signal, to
//! split or join pipelines (for example one receiver, two processor chains).

use std::time::SystemTime;

use serde::Deserialize;

use crate::processors::Processor;
use crate::signal::Batch;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {}

pub struct Forward;

impl Processor for Forward {
    fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
        out.push(batch);
    }

    fn accepts_wire(&self) -> bool {
        true
    }
}

impl crate::components::compiled::CompiledConnector for ForwardConfig {
    fn build(
        &self,
        _: &crate::components::compiled::ConnectorContext<'_>,
    ) -> Box<dyn crate::processors::Processor> {
        Box::new(Forward)
    }
}
