//! `transform`: edits telemetry with OTTL statements, in the Collector's
//! config shape: `trace_statements`, `metric_statements` and
//! `log_statements`, each a list of statements (context inferred per
//! statement from its path prefixes) or of groups
//! `{ context, conditions, statements, error_mode }` (context given, or
//! inferred for the whole group when left out). Groups run in order, each
//! over the whole batch.
//!
//! Every statement is parsed and compiled at validate time; a function
//! outside sidewatch's OTTL subset, an unknown path or a bad regex is a
//! config error naming the YAML path, line and the column in the
//! statement. At run time a failing statement is handled by `error_mode`
//! (default `ignore`): `ignore` logs (once per batch, with a count) and
//! goes on, `silent` goes on, `propagate` drops the batch.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use yaml_serde::Value;

use crate::config::{Decoder, YamlPath};
use crate::ottl::compile::{self, Condition, Statement};
use crate::ottl::context::{self, Context};
use crate::ottl::eval::{self, ErrorMode};
use crate::ottl::{CompileError, EvalError, Record, grammar, walk};
use crate::processors::Processor;
use crate::signal::{Batch, Signal};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransformConfig {
    error_mode: Option<ErrorMode>,
    #[serde(default)]
    trace_statements: Vec<Value>,
    #[serde(default)]
    metric_statements: Vec<Value>,
    #[serde(default)]
    log_statements: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    context: Option<String>,
    #[serde(default)]
    conditions: Vec<String>,
    statements: Vec<String>,
    error_mode: Option<ErrorMode>,
}

/// Statements that run together at one context.
#[derive(Debug, Clone)]
pub struct Group {
    pub context: Context,
    /// ORed: the statements run on items where one holds (all, if none).
    pub conditions: Vec<Condition>,
    pub statements: Vec<Statement>,
    pub error_mode: ErrorMode,
}

/// The validated config: compiled groups per signal.
#[derive(Debug, Clone, Default)]
pub struct TransformConfig {
    pub traces: Arc<Vec<Group>>,
    pub metrics: Arc<Vec<Group>>,
    pub logs: Arc<Vec<Group>>,
}

/// Reports a compile error of the statement `text` found at `path`.
pub fn report(decoder: &mut Decoder, path: YamlPath, text: &str, error: &CompileError) {
    decoder.error(path, error.located(text));
}

/// A statement or condition, parsed, with where it is in the YAML.
struct Written<T> {
    path: YamlPath,
    text: String,
    parsed: T,
}

impl TransformConfig {
    /// Decodes and compiles the `transform` body at `path`; `None` after
    /// reporting every error found.
    pub fn decode(
        value: &Value,
        path: &YamlPath,
        decoder: &mut Decoder,
    ) -> Option<TransformConfig> {
        let raw: RawTransformConfig = decoder.decode(value, path)?;
        let mode = raw.error_mode.unwrap_or(ErrorMode::Ignore);
        let mut valid = true;
        let mut groups = |signal: Signal, key: &str, items: &[Value], decoder: &mut Decoder| {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = path.key(key).index(i);
                match compile_item(signal, item, &at, mode, decoder) {
                    Some(group) => out.push(group),
                    None => valid = false,
                }
            }
            Arc::new(out)
        };
        let config = TransformConfig {
            traces: groups(
                Signal::Traces,
                "trace_statements",
                &raw.trace_statements,
                decoder,
            ),
            metrics: groups(
                Signal::Metrics,
                "metric_statements",
                &raw.metric_statements,
                decoder,
            ),
            logs: groups(Signal::Logs, "log_statements", &raw.log_statements, decoder),
        };
        valid.then_some(config)
    }
}

fn compile_item(
    signal: Signal,
    item: &Value,
    path: &YamlPath,
    default_mode: ErrorMode,
    decoder: &mut Decoder,
) -> Option<Group> {
    match item {
        Value::String(text) => {
            let statement = parse_all(std::slice::from_ref(text), path, false, decoder)?;
            compile_group(signal, None, path, &[], &statement, default_mode, decoder)
        }
        Value::Mapping(_) => {
            let raw: RawGroup = decoder.decode(item, path)?;
            let context = match &raw.context {
                None => None,
                Some(name) => match Context::parse(&name.to_lowercase()) {
                    Some(c) if Context::of_signal(signal).contains(&c) => Some(c),
                    _ => {
                        let names: Vec<&str> = Context::of_signal(signal)
                            .iter()
                            .map(|c| c.as_str())
                            .collect();
                        decoder.error(
                            path.key("context"),
                            format!(
                                "unknown {} context {name:?}: expected one of {}",
                                signal.as_str(),
                                names.join(", ")
                            ),
                        );
                        return None;
                    }
                },
            };
            let statements = parse_all(&raw.statements, &path.key("statements"), false, decoder);
            let conditions = parse_all(&raw.conditions, &path.key("conditions"), true, decoder);
            let (statements, conditions) = (statements?, conditions?);
            compile_group(
                signal,
                context,
                path,
                &conditions,
                &statements,
                raw.error_mode.unwrap_or(default_mode),
                decoder,
            )
        }
        _ => {
            decoder.error(
                path.clone(),
                "expected an OTTL statement (a string) or a group `{ context, conditions, statements, error_mode }`",
            );
            None
        }
    }
}

enum Parsed {
    Statement(crate::ottl::ast::Statement),
    Condition(crate::ottl::ast::BoolExpr),
}

/// Parses every text (statements, or conditions), reporting each syntax
/// error; `path` is the list's path, or a flat statement's own.
fn parse_all(
    texts: &[String],
    path: &YamlPath,
    conditions: bool,
    decoder: &mut Decoder,
) -> Option<Vec<Written<Parsed>>> {
    let flat = texts.len() == 1
        && !conditions
        && path
            .0
            .last()
            .is_some_and(|s| matches!(s, crate::config::Segment::Index(_)));
    let mut out = Vec::new();
    let mut valid = true;
    for (i, text) in texts.iter().enumerate() {
        let at = if flat { path.clone() } else { path.index(i) };
        let parsed = if conditions {
            grammar::parse_condition(text).map(Parsed::Condition)
        } else {
            grammar::parse_statement(text).map(Parsed::Statement)
        };
        match parsed {
            Ok(parsed) => out.push(Written {
                path: at,
                text: text.clone(),
                parsed,
            }),
            Err(e) => {
                report(decoder, at, text, &e);
                valid = false;
            }
        }
    }
    valid.then_some(out)
}

fn compile_group(
    signal: Signal,
    context: Option<Context>,
    path: &YamlPath,
    conditions: &[Written<Parsed>],
    statements: &[Written<Parsed>],
    error_mode: ErrorMode,
    decoder: &mut Decoder,
) -> Option<Group> {
    let context = match context {
        Some(context) => context,
        None => {
            let mut prefixes = Vec::new();
            let mut owners = Vec::new();
            for (i, written) in conditions.iter().chain(statements).enumerate() {
                let before = prefixes.len();
                match &written.parsed {
                    Parsed::Statement(s) => context::prefixes_in_statement(s, &mut prefixes),
                    Parsed::Condition(c) => context::prefixes_in_condition(c, &mut prefixes),
                }
                owners.extend(std::iter::repeat_n(i, prefixes.len() - before));
            }
            match context::infer(signal, &prefixes) {
                Ok(context) => context,
                Err((at, message)) => {
                    let all: Vec<&Written<Parsed>> = conditions.iter().chain(statements).collect();
                    let (written, offset) = match at {
                        Some(at) => (all.get(owners[at]).copied(), prefixes[at].1),
                        None => (all.first().copied(), 0),
                    };
                    match written {
                        Some(w) => report(
                            decoder,
                            w.path.clone(),
                            &w.text,
                            &CompileError::new(offset, message),
                        ),
                        None => decoder.error(path.clone(), message),
                    }
                    return None;
                }
            }
        }
    };
    let mut valid = true;
    let mut compiled_conditions = Vec::new();
    let mut compiled_statements = Vec::new();
    for written in conditions.iter().chain(statements) {
        let result = match &written.parsed {
            Parsed::Condition(c) => {
                compile::compile_condition(c, context).map(|c| compiled_conditions.push(c))
            }
            Parsed::Statement(s) => compile::compile_statement(s, &written.text, context)
                .map(|s| compiled_statements.push(s)),
        };
        if let Err(e) = result {
            report(decoder, written.path.clone(), &written.text, &e);
            valid = false;
        }
    }
    valid.then_some(Group {
        context,
        conditions: compiled_conditions,
        statements: compiled_statements,
        error_mode,
    })
}

/// Errors met in one batch: logged once, with a count.
#[derive(Default)]
pub struct Failures {
    pub count: usize,
    pub first: Option<String>,
}

impl Failures {
    /// Applies `mode` to a failure of `what`: `Err` only to propagate.
    pub fn handle(&mut self, mode: ErrorMode, what: &str, error: EvalError) -> Result<(), String> {
        match mode {
            ErrorMode::Propagate => Err(format!("{what}: {error}")),
            ErrorMode::Silent => Ok(()),
            ErrorMode::Ignore => {
                self.count += 1;
                if self.first.is_none() {
                    self.first = Some(format!("{what}: {error}"));
                }
                Ok(())
            }
        }
    }

    pub fn log(&self, processor: &str) {
        if let Some(first) = &self.first {
            tracing::warn!(
                processor,
                errors = self.count,
                "OTTL errors ignored in a batch (error_mode: ignore); the first: {first}"
            );
        }
    }
}

/// Runs a group's statements on one record.
fn run_group(
    group: &Group,
    record: &mut Record<'_>,
    failures: &mut Failures,
) -> Result<bool, String> {
    if !group.conditions.is_empty() {
        let mut any = false;
        for condition in &group.conditions {
            match eval::test(condition, record) {
                Ok(true) => {
                    any = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => failures.handle(group.error_mode, "a group condition", e)?,
            }
        }
        if !any {
            return Ok(true);
        }
    }
    for statement in &group.statements {
        if let Err(e) = eval::execute(statement, record) {
            failures.handle(
                group.error_mode,
                &format!("statement `{}`", statement.text),
                e,
            )?;
        }
    }
    Ok(true)
}

pub struct TransformProcessor {
    config: TransformConfig,
}

impl TransformProcessor {
    pub fn new(config: TransformConfig) -> Self {
        TransformProcessor { config }
    }

    /// Runs the groups for the batch's signal; `Err` when a statement
    /// failed under `error_mode: propagate`.
    pub fn transform(&self, batch: Batch, failures: &mut Failures) -> Result<Batch, String> {
        let groups = match batch.signal() {
            Signal::Traces => &self.config.traces,
            Signal::Metrics => &self.config.metrics,
            Signal::Logs => &self.config.logs,
        };
        if groups.is_empty() {
            return Ok(batch);
        }
        // Conditions read log records: typed events are rewritten as theirs.
        let batch = batch
            .into_otlp()
            .into_decoded()
            .map_err(|e| format!("decoding the batch: {e}"))?;
        Ok(match batch {
            Batch::Traces(mut request) => {
                let request_mut = Arc::make_mut(&mut request);
                for group in groups.iter() {
                    walk::traces(request_mut, group.context, |r| {
                        run_group(group, r, failures)
                    })?;
                }
                Batch::Traces(request)
            }
            Batch::Metrics(mut request) => {
                let request_mut = Arc::make_mut(&mut request);
                for group in groups.iter() {
                    walk::metrics(request_mut, group.context, |r| {
                        run_group(group, r, failures)
                    })?;
                }
                Batch::Metrics(request)
            }
            Batch::Logs(mut request) => {
                let request_mut = Arc::make_mut(&mut request);
                for group in groups.iter() {
                    walk::logs(request_mut, group.context, |r| {
                        run_group(group, r, failures)
                    })?;
                }
                Batch::Logs(request)
            }
            other @ (Batch::Wire(_) | Batch::Events(_)) => other,
        })
    }
}

impl Processor for TransformProcessor {
    fn process(&mut self, batch: Batch, _now: SystemTime, out: &mut Vec<Batch>) {
        let items = batch.item_count();
        let mut failures = Failures::default();
        match self.transform(batch, &mut failures) {
            Ok(batch) => out.push(batch),
            Err(error) => tracing::error!(
                items,
                "transform: dropping a batch (error_mode: propagate): {error}"
            ),
        }
        failures.log("transform");
    }
}

impl crate::components::compiled::CompiledProcessor for TransformConfig {
    fn build(&self) -> Box<dyn crate::processors::Processor> {
        Box::new(TransformProcessor::new(self.clone()))
    }
}

/// The registry's compile step.
pub fn compile(
    value: &yaml_serde::Value,
    path: &crate::config::YamlPath,
    decoder: &mut crate::config::Decoder,
) -> Option<std::sync::Arc<dyn crate::components::compiled::CompiledProcessor>> {
    TransformConfig::decode(value, path, decoder).map(|c| std::sync::Arc::new(c) as _)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batching::tests::traces;

    fn config(yaml: &str) -> Result<TransformConfig, Vec<String>> {
        let loaded = crate::plan::load_str(
            &format!(
                "receivers: {{ otlp: {{ protocols: {{ grpc: {{ endpoint: 127.0.0.1:0 }} }} }} }}\nprocessors:\n  transform:\n{yaml}\nexporters: {{ debug: {{}} }}\nservice: {{ pipelines: {{ traces: {{ receivers: [otlp], processors: [transform], exporters: [debug] }} }} }}\n"
            ),
            "t.yaml",
        );
        match loaded {
            Ok(loaded) => match loaded.plan.processors.values().next() {
                Some(c) => Ok(crate::components::processor_as::<TransformConfig>(c)
                    .unwrap()
                    .clone()),
                _ => panic!("no transform"),
            },
            Err(e) => Err(e.errors.iter().map(|e| e.to_string()).collect()),
        }
    }

    fn span_names(batch: &Batch) -> Vec<String> {
        crate::batching::tests::batch_names(batch)
    }

    #[test]
    fn runs_flat_and_grouped_statements_in_order() {
        let c = config(
            r#"    trace_statements:
      - set(span.attributes["step"], 1)
      - context: span
        statements:
          - set(name, Concat([name, "x"], "-")) where attributes["step"] == 1
          - set(resource.attributes["seen"], true)"#,
        )
        .unwrap();
        assert_eq!(c.traces.len(), 2);
        assert_eq!(c.traces[0].context, Context::Span);
        let processor = TransformProcessor::new(c);
        let mut failures = Failures::default();
        let out = processor
            .transform(Batch::Traces(traces(&[&[2]]).into()), &mut failures)
            .unwrap();
        assert!(
            span_names(&out).iter().all(|n| n.ends_with("-x")),
            "{:?}",
            span_names(&out)
        );
        let Batch::Traces(r) = &out else { panic!() };
        assert_eq!(
            r.resource_spans[0]
                .resource
                .as_ref()
                .unwrap()
                .attributes
                .last()
                .unwrap()
                .key,
            "seen"
        );
        assert_eq!(failures.count, 0);
    }

    #[test]
    fn refuses_functions_outside_the_subset_with_path_line_and_column() {
        let errors = config(
            r#"    trace_statements:
      - context: span
        statements:
          - set(name, "a")
          - merge_maps(attributes, resource.attributes, "upsert")
    log_statements:
      - set(log.body, ParseJSON(log.body))"#,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(
            errors[0],
            "processors.transform.trace_statements[0].statements[1] (line 8, column 13): column 1 of the statement: `merge_maps` is not in sidewatch's OTTL subset: expected one of the editors set, delete_key, delete_matching_keys, keep_keys, truncate_all, limit, replace_pattern, replace_all_patterns"
        );
        assert!(errors[1].starts_with("processors.transform.log_statements[0] (line 10, column 9): column 15 of the statement: `ParseJSON` is not in sidewatch's OTTL subset"), "{}", errors[1]);
    }

    #[test]
    fn refuses_bad_regexes_contexts_and_uninferable_statements() {
        let errors = config(
            r#"    trace_statements:
      - replace_pattern(span.name, "(", "x")
      - set(attributes["a"], "b")
      - context: metric
        statements: [ 'set(name, "x")' ]"#,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].contains("column 28 of the statement: `replace_pattern`: invalid regex"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("cannot infer the context"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("trace_statements[2].context")
                && errors[2].contains("unknown traces context"),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn error_modes_ignore_or_drop_the_batch() {
        // Setting a string field to an int fails on every span.
        let yaml = |mode: &str| {
            format!(
                "    error_mode: {mode}\n    trace_statements:\n      - set(span.name, 1)\n      - set(span.attributes[\"after\"], true)"
            )
        };
        let processor = TransformProcessor::new(config(&yaml("ignore")).unwrap());
        let mut failures = Failures::default();
        let out = processor
            .transform(Batch::Traces(traces(&[&[3]]).into()), &mut failures)
            .unwrap();
        assert_eq!(failures.count, 3);
        assert_eq!(out.item_count(), 3);
        let processor = TransformProcessor::new(config(&yaml("propagate")).unwrap());
        let error = processor
            .transform(
                Batch::Traces(traces(&[&[3]]).into()),
                &mut Failures::default(),
            )
            .unwrap_err();
        assert!(error.contains("cannot set `span.name` to a int"), "{error}");
        let mut out = Vec::new();
        let mut p = TransformProcessor::new(config(&yaml("propagate")).unwrap());
        p.process(
            Batch::Traces(traces(&[&[3]]).into()),
            SystemTime::UNIX_EPOCH,
            &mut out,
        );
        assert!(out.is_empty());
    }
}
