//! The YAML side of config, a leaf module: parsing and `${env:...}`
//! expansion, YAML paths and lines, located errors, and the value types
//! component configs share (durations, endpoints, secrets, headers, file
//! names, component ids). It imports nothing else of sidewatch, so every
//! component can decode its own config with it; compiling a whole file into
//! a plan of components is src/plan/'s job (the tests in tests/it/layers.rs
//! keep it so).

pub mod component_id;
pub mod duration;
pub mod endpoint;
pub mod error;
pub mod expand;
pub mod files;
pub mod headers;
pub mod locate;
pub mod secret;
pub mod storage;

use std::path::Path;

use serde::de::DeserializeOwned;
use yaml_serde::Value;

pub use component_id::ComponentId;
pub use error::{ConfigError, ConfigErrors, Location, Segment, YamlPath};

use locate::LineIndex;

/// The pipeline that `sidewatch run` uses when given no file.
pub const DEFAULT_PIPELINE: &str = include_str!("../../pipelines/default.yaml");

/// YAML text parsed into a value, `${env:NAME}` expanded (with the
/// environment given, so tests need not mutate the process environment),
/// and the [`Decoder`] that locates errors on the text's lines. The plan
/// compiler (src/plan/) takes it from here and ends with [`Decoder::finish`].
pub fn parse(
    text: &str,
    source_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Value, Decoder), ConfigErrors> {
    let mut decoder = Decoder {
        lines: LineIndex::build(text),
        errors: Vec::new(),
        warnings: Vec::new(),
        suppressed: Vec::new(),
        raised: 0,
    };
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        source_name: source_name.to_string(),
        errors,
    };
    let mut value: Value = match yaml_serde::from_str(text) {
        Ok(Value::Null) => {
            return Err(fail(vec![ConfigError {
                path: YamlPath::root(),
                location: None,
                message: "the config is empty: expected a mapping with `receivers`, `exporters` and `service`".into(),
            }]));
        }
        Ok(value) => value,
        Err(e) => {
            return Err(fail(vec![ConfigError {
                path: YamlPath::root(),
                location: e.location().map(|l| Location {
                    line: l.line(),
                    column: l.column(),
                }),
                message: format!("invalid YAML: {e}"),
            }]));
        }
    };
    let mut expansion_errors = Vec::new();
    expand::expand_env(&mut value, &YamlPath::root(), env, &mut expansion_errors);
    for (path, message) in expansion_errors {
        decoder.error(path.clone(), message);
        // The value is still the unexpanded text: do not report it twice.
        decoder.suppressed.push(path);
    }
    Ok((value, decoder))
}

/// Reads a config file's text, or says why it cannot be read.
pub fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source_name: path.display().to_string(),
        errors: vec![ConfigError {
            path: YamlPath::root(),
            location: None,
            message: format!("cannot read the file: {e}"),
        }],
    })
}

/// An error whose text spans lines (regex errors draw a caret) as the
/// single line a config error must be: its last, most specific line.
pub fn one_line(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let last = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// Turns YAML values into typed configs, collecting located errors.
pub struct Decoder {
    lines: LineIndex,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
    /// Paths already reported; later errors at or under them are noise.
    suppressed: Vec<YamlPath>,
    /// Every error raised, suppressed ones included.
    raised: usize,
}

impl Decoder {
    /// Every error raised so far, suppressed ones included: a decoder that
    /// returned nothing without raising one is a bug the compiler names.
    pub fn errors_raised(&self) -> usize {
        self.raised
    }

    /// The compiled value and the warnings, or every error sorted by line.
    pub fn finish<T>(
        self,
        source_name: &str,
        compiled: Option<T>,
    ) -> Result<(T, Vec<ConfigError>), ConfigErrors> {
        match compiled {
            Some(compiled) if self.errors.is_empty() => Ok((compiled, self.warnings)),
            _ => {
                let mut errors = self.errors;
                errors.sort_by_key(|e| e.location.map_or((usize::MAX, 0), |l| (l.line, l.column)));
                Err(ConfigErrors {
                    source_name: source_name.to_string(),
                    errors,
                })
            }
        }
    }

    pub fn error(&mut self, path: YamlPath, message: impl Into<String>) {
        self.raised += 1;
        if self.suppressed.iter().any(|s| path.0.starts_with(&s.0)) {
            return;
        }
        let location = self.lines.locate(&path);
        self.errors.push(ConfigError {
            path,
            location,
            message: message.into(),
        });
    }

    pub fn warning(&mut self, path: YamlPath, message: impl Into<String>) {
        let location = self.lines.locate(&path);
        self.warnings.push(ConfigError {
            path,
            location,
            message: message.into(),
        });
    }

    /// Deserializes `value` (found at `path`) into `T`; `null` means "all
    /// defaults", as `otlp:` with nothing under it does in the Collector.
    pub fn decode<T: DeserializeOwned>(&mut self, value: &Value, path: &YamlPath) -> Option<T> {
        let value = match value {
            Value::Null => Value::Mapping(Default::default()),
            other => other.clone(),
        };
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(decoded) => Some(decoded),
            Err(e) => {
                let mut at = YamlPath::parse_dotted(path, e.path());
                let mut message = e.inner().to_string();
                if let Some(start) = message.find(NAMELESS_ENUM) {
                    let expected = enum_variants::<T>(&value, e.path())
                        .unwrap_or_else(|| "expected one of this field's names".into());
                    message.replace_range(start.., &expected);
                }
                // serde reports an unknown field at its parent; point at the key.
                if let Some(field) = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                    && at.0.last() != Some(&Segment::Key(field.to_string()))
                {
                    at = at.key(field);
                }
                self.error(at, message);
                None
            }
        }
    }
}

/// What yaml_serde says when an enum gets a number, list or mapping: it
/// does not name the variants.
const NAMELESS_ENUM: &str = "expected a Value::Tagged enum";

/// The variants serde expects at `at`, as "expected one of `a`, `b`": the
/// value there is replaced with a name no enum has, and the second decode
/// fails with serde's unknown-variant message, which lists them.
fn enum_variants<T: DeserializeOwned>(
    value: &Value,
    at: &serde_path_to_error::Path,
) -> Option<String> {
    const PROBE: &str = "\u{0}not a variant";
    let mut probe = value.clone();
    let mut slot = &mut probe;
    for segment in at.iter() {
        slot = match segment {
            serde_path_to_error::Segment::Map { key } => slot.get_mut(key.as_str())?,
            serde_path_to_error::Segment::Seq { index } => slot.get_mut(*index)?,
            _ => return None,
        };
    }
    *slot = Value::String(PROBE.into());
    let error = serde_path_to_error::deserialize::<_, T>(&probe).err()?;
    let message = error.inner().to_string();
    let expected = message.strip_prefix(&format!("unknown variant `{PROBE}`, "))?;
    Some(expected.to_string())
}

#[cfg(test)]
impl Decoder {
    /// Every error so far, rendered as `validate` prints them.
    pub(crate) fn messages(&self) -> Vec<String> {
        self.errors.iter().map(|e| e.to_string()).collect()
    }
}

#[cfg(test)]
pub(crate) fn test_decoder() -> Decoder {
    Decoder {
        lines: LineIndex::default(),
        errors: Vec::new(),
        warnings: Vec::new(),
        suppressed: Vec::new(),
        raised: 0,
    }
}
