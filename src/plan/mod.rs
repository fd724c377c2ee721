//! Compiles a config file into a validated [`Plan`], the second stage after
//! src/config/'s YAML parsing: every component's config is decoded and
//! compiled by its registry row (src/components/) into the form its
//! builder takes, pipelines are checked (signals on every edge, connectors,
//! cycles, unused components), and every error is collected at once, each
//! with its YAML path, line and what was expected. Runtime code sees only
//! the plan.

mod compile;
pub mod fold_batch;
pub mod otelcol;
mod raw;

use std::path::Path;

pub use compile::{PipelinePlan, Plan, ServicePlan, TelemetryPlan};

use crate::config::{self, ConfigError, ConfigErrors};

/// A compiled config and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub plan: Plan,
    pub warnings: Vec<ConfigError>,
}

pub fn load_file(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = config::read_file(path)?;
    load_str(&text, &path.display().to_string())
}

pub fn load_str(text: &str, source_name: &str) -> Result<Loaded, ConfigErrors> {
    load_str_with_env(text, source_name, &|name| std::env::var(name).ok())
}

/// As [`load_str`], with the environment given, so tests need not mutate
/// the process environment.
pub fn load_str_with_env(
    text: &str,
    source_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let (value, mut decoder) = config::parse(text, source_name, env)?;
    let plan = compile::compile(&value, &mut decoder);
    let (plan, warnings) = decoder.finish(source_name, plan)?;
    Ok(Loaded { plan, warnings })
}
