//! `sidewatch test`: unit tests for a config, in the spirit of `vector
//! test` and `promtool test rules`. Each case names inputs (metric series in
//! promtool's notation, spans, log records) and expectations (the alerts
//! firing at given times, points, spans and records the exporters
//! received); it runs through the real graph in event time, as
//! `sidewatch replay` does, so every processor and connector takes part.
//! Cases come from a tests file (`--tests`, which may name its config) or
//! from the config's own `tests:` section.

mod check;
mod inputs;
mod outputs;
mod series;
mod spec;

use std::path::{Path, PathBuf};

use crate::config::{self, ConfigErrors, YamlPath};
use crate::plan::Plan;

pub use check::{CaseResult, Failure};

/// Where the cases are: the tests file's text and name, and the config.
pub struct Suite {
    pub source_name: String,
    text: String,
    file: spec::TestsFile,
    /// The config the tests file names, resolved against its folder.
    pub config: Option<PathBuf>,
}

/// Event time of the first input when a file sets no `start`:
/// 2026-01-01T00:00:00Z.
const DEFAULT_START: f64 = 1_767_225_600.0;

/// Reads the cases of `path`: a tests file, or a config with a `tests:`
/// section. Errors name the YAML path and line.
pub fn load(path: &Path) -> Result<Suite, ConfigErrors> {
    let text = config::read_file(path)?;
    let source_name = path.display().to_string();
    let (value, mut decoder) =
        config::parse(&text, &source_name, &|name| std::env::var(name).ok())?;
    let tests_value = match &value {
        // A config: only its `tests:` section (and `start`) are read here.
        yaml_serde::Value::Mapping(map) if map.contains_key("service") => {
            let mut section = yaml_serde::Mapping::new();
            if let Some(tests) = map.get("tests") {
                section.insert("tests".into(), tests.clone());
            }
            yaml_serde::Value::Mapping(section)
        }
        other => other.clone(),
    };
    if !matches!(&tests_value, yaml_serde::Value::Mapping(m) if m.contains_key("tests")) {
        decoder.error(
            YamlPath::root(),
            "no `tests:`: expected a list of cases, each with a name, inputs and `expect`",
        );
    }
    let file: Option<spec::TestsFile> = decoder.decode(&tests_value, &YamlPath::root());
    let (file, _warnings) = decoder.finish(&source_name, file)?;
    let config = file
        .config
        .as_ref()
        .map(|c| path.parent().unwrap_or_else(|| Path::new(".")).join(c));
    Ok(Suite {
        source_name,
        text,
        file,
        config,
    })
}

impl Suite {
    pub fn len(&self) -> usize {
        self.file.tests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.file.tests.is_empty()
    }

    fn start(&self) -> Result<f64, String> {
        use yaml_serde::Value;
        match &self.file.start {
            None => Ok(DEFAULT_START),
            Some(Value::Number(n)) => n.as_f64().ok_or_else(|| "start: not a number".into()),
            Some(Value::String(s)) => {
                crate::timestamp::parse_unix_seconds(s).map_err(|e| format!("start: {e}"))
            }
            Some(_) => Err("start: expected Unix seconds or an RFC 3339 time".into()),
        }
    }

    /// Runs every case through `plan`, each on a fresh graph.
    pub fn run(&self, plan: &Plan) -> Result<Vec<CaseResult>, String> {
        let start = self.start()?;
        let lines = config::locate::LineIndex::build(&self.text);
        self.file
            .tests
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let at = YamlPath::root().key("tests").index(i);
                check::run_case(plan, case, start, &at, &lines)
            })
            .collect()
    }
}
