//! The closed table of OTTL functions sidewatch supports: each one's
//! arguments are checked and compiled here (regexes once, at validate
//! time), and each one runs here. A name outside the table is refused with
//! the list of what is supported. Semantics follow the Collector's
//! `pkg/ottl/ottlfuncs` README.

use regex::Regex;

use super::ast::{Argument, Call, Expr, Literal};
use super::compile::{self, Getter};
use super::context::Context;
use super::error::{CompileError, EvalError};
use super::eval;
use super::paths::{self, Path};
use super::record::Record;
use super::value::Value;

/// Editors: (name, signature).
pub const EDITORS: &[(&str, &str)] = &[
    ("set", "set(target, value)"),
    ("delete_key", "delete_key(target, key)"),
    (
        "delete_matching_keys",
        "delete_matching_keys(target, pattern)",
    ),
    ("keep_keys", "keep_keys(target, keys[])"),
    ("truncate_all", "truncate_all(target, limit)"),
    ("limit", "limit(target, limit, priority_keys[])"),
    (
        "replace_pattern",
        "replace_pattern(target, regex, replacement)",
    ),
    (
        "replace_all_patterns",
        "replace_all_patterns(target, mode, regex, replacement)",
    ),
];

/// Converters: (name, signature).
pub const CONVERTERS: &[(&str, &str)] = &[
    ("IsMatch", "IsMatch(target, pattern)"),
    ("Concat", "Concat(values[], delimiter)"),
    ("Split", "Split(target, delimiter)"),
    ("ConvertCase", "ConvertCase(target, toCase)"),
    ("Int", "Int(value)"),
    ("Double", "Double(value)"),
    ("String", "String(value)"),
];

#[derive(Debug, Clone)]
pub enum Editor {
    Set {
        target: Path,
        value: Getter,
    },
    DeleteKey {
        target: Path,
        key: String,
    },
    DeleteMatchingKeys {
        target: Path,
        pattern: Regex,
    },
    KeepKeys {
        target: Path,
        keys: Vec<String>,
    },
    TruncateAll {
        target: Path,
        limit: usize,
    },
    Limit {
        target: Path,
        limit: usize,
        priority_keys: Vec<String>,
    },
    ReplacePattern {
        target: Path,
        pattern: Regex,
        replacement: Getter,
    },
    ReplaceAllPatterns {
        target: Path,
        keys: bool,
        pattern: Regex,
        replacement: Getter,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Lower,
    Upper,
    Snake,
    Camel,
}

#[derive(Debug, Clone)]
pub enum Converter {
    IsMatch {
        target: Getter,
        pattern: Regex,
    },
    Concat {
        values: Vec<Getter>,
        delimiter: String,
    },
    Split {
        target: Getter,
        delimiter: String,
    },
    ConvertCase {
        target: Getter,
        case: Case,
    },
    Int(Getter),
    Double(Getter),
    String(Getter),
}

pub fn returns_bool(converter: &str) -> bool {
    converter == "IsMatch"
}

fn signature(table: &[(&str, &'static str)], name: &str) -> &'static str {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, s)| *s)
}

fn names(table: &[(&str, &str)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// Checks the argument count and refuses named arguments.
fn arguments<'c>(
    call: &'c Call,
    table: &[(&str, &'static str)],
) -> Result<&'c [Argument], CompileError> {
    let signature = signature(table, &call.name);
    if let Some(named) = call.args.iter().find(|a| a.name.is_some()) {
        return Err(CompileError::new(
            named.value.offset,
            format!(
                "named arguments are not supported: write `{}` with its arguments in order",
                signature
            ),
        ));
    }
    let expected = signature.matches(',').count() + usize::from(!signature.ends_with("()"));
    if call.args.len() != expected {
        let optional = if call.args.len() > expected
            && matches!(
                call.name.as_str(),
                "replace_pattern" | "replace_all_patterns"
            ) {
            " (the optional function and replacementFormat arguments are not supported)"
        } else {
            ""
        };
        return Err(CompileError::new(
            call.offset,
            format!(
                "`{}` takes {expected} argument{}, got {}: expected `{signature}`{optional}",
                call.name,
                if expected == 1 { "" } else { "s" },
                call.args.len()
            ),
        ));
    }
    Ok(&call.args)
}

fn path_arg(
    arg: &Argument,
    context: Context,
    call: &str,
    what: &str,
) -> Result<Path, CompileError> {
    match &arg.value.node {
        Expr::Path(path) => paths::resolve(context, path, arg.value.offset),
        _ => Err(CompileError::new(
            arg.value.offset,
            format!("`{call}`: expected {what} as a path such as attributes[\"key\"]"),
        )),
    }
}

fn map_path_arg(arg: &Argument, context: Context, call: &str) -> Result<Path, CompileError> {
    let path = path_arg(arg, context, call, "the target map")?;
    if !path.may_be_map() {
        return Err(CompileError::new(
            arg.value.offset,
            format!(
                "`{call}`: `{}` is not a map: expected a map path such as attributes or resource.attributes",
                path.text
            ),
        ));
    }
    Ok(path)
}

fn writable(path: Path, offset: usize) -> Result<Path, CompileError> {
    if !path.writable {
        return Err(CompileError::new(
            offset,
            format!("`{}` is read-only", path.text),
        ));
    }
    Ok(path)
}

fn string_arg(arg: &Argument, call: &str, what: &str) -> Result<String, CompileError> {
    match &arg.value.node {
        Expr::Literal(Literal::String(s)) => Ok(s.clone()),
        _ => Err(CompileError::new(
            arg.value.offset,
            format!("`{call}`: expected {what} as a string literal"),
        )),
    }
}

fn limit_arg(arg: &Argument, call: &str) -> Result<usize, CompileError> {
    match &arg.value.node {
        Expr::Literal(Literal::Int(i)) if *i >= 0 => Ok(usize::try_from(*i).unwrap_or(usize::MAX)),
        _ => Err(CompileError::new(
            arg.value.offset,
            format!("`{call}`: expected the limit as an integer >= 0"),
        )),
    }
}

fn string_list_arg(arg: &Argument, call: &str, what: &str) -> Result<Vec<String>, CompileError> {
    let Expr::List(items) = &arg.value.node else {
        return Err(CompileError::new(
            arg.value.offset,
            format!("`{call}`: expected {what} as a list of strings, such as [\"a\", \"b\"]"),
        ));
    };
    items
        .iter()
        .map(|item| match &item.node {
            Expr::Literal(Literal::String(s)) => Ok(s.clone()),
            _ => Err(CompileError::new(
                item.offset,
                format!("`{call}`: expected {what} as a list of strings"),
            )),
        })
        .collect()
}

fn regex_arg(arg: &Argument, call: &str) -> Result<Regex, CompileError> {
    let pattern = string_arg(arg, call, "the pattern")?;
    Regex::new(&pattern).map_err(|e| {
        CompileError::new(
            arg.value.offset,
            format!(
                "`{call}`: invalid regex {pattern:?}: {}",
                crate::config::one_line(&e)
            ),
        )
    })
}

fn unknown(call: &Call, editor: bool) -> CompileError {
    let (kind, table, other_kind, other) = if editor {
        ("editor", EDITORS, "converter", CONVERTERS)
    } else {
        ("converter", CONVERTERS, "editor", EDITORS)
    };
    let hint = if other.iter().any(|(n, _)| *n == call.name) {
        format!(" (`{}` is a {other_kind})", call.name)
    } else {
        String::new()
    };
    CompileError::new(
        call.offset,
        format!(
            "`{}` is not in sidewatch's OTTL subset{hint}: expected one of the {kind}s {}",
            call.name,
            names(table)
        ),
    )
}

/// Compiles an editor invocation.
pub fn editor(call: &Call, context: Context) -> Result<Editor, CompileError> {
    let name = call.name.as_str();
    if !EDITORS.iter().any(|(n, _)| *n == name) {
        return Err(unknown(call, true));
    }
    let args = arguments(call, EDITORS)?;
    Ok(match name {
        "set" => Editor::Set {
            target: writable(
                path_arg(&args[0], context, name, "the target")?,
                args[0].value.offset,
            )?,
            value: compile::getter(&args[1].value, context)?,
        },
        "delete_key" => Editor::DeleteKey {
            target: map_path_arg(&args[0], context, name)?,
            key: string_arg(&args[1], name, "the key")?,
        },
        "delete_matching_keys" => Editor::DeleteMatchingKeys {
            target: map_path_arg(&args[0], context, name)?,
            pattern: regex_arg(&args[1], name)?,
        },
        "keep_keys" => Editor::KeepKeys {
            target: map_path_arg(&args[0], context, name)?,
            keys: string_list_arg(&args[1], name, "the keys")?,
        },
        "truncate_all" => Editor::TruncateAll {
            target: map_path_arg(&args[0], context, name)?,
            limit: limit_arg(&args[1], name)?,
        },
        "limit" => {
            let limit = limit_arg(&args[1], name)?;
            let priority_keys = string_list_arg(&args[2], name, "the priority keys")?;
            if priority_keys.len() > limit {
                return Err(CompileError::new(
                    args[2].value.offset,
                    format!(
                        "`limit`: {} priority keys cannot all be kept within a limit of {limit}",
                        priority_keys.len()
                    ),
                ));
            }
            Editor::Limit {
                target: map_path_arg(&args[0], context, name)?,
                limit,
                priority_keys,
            }
        }
        "replace_pattern" => Editor::ReplacePattern {
            target: writable(
                path_arg(&args[0], context, name, "the target")?,
                args[0].value.offset,
            )?,
            pattern: regex_arg(&args[1], name)?,
            replacement: compile::getter(&args[2].value, context)?,
        },
        "replace_all_patterns" => {
            let mode = string_arg(&args[1], name, "the mode (\"key\" or \"value\")")?;
            let keys = match mode.as_str() {
                "key" => true,
                "value" => false,
                other => {
                    return Err(CompileError::new(
                        args[1].value.offset,
                        format!(
                            "`replace_all_patterns`: invalid mode {other:?}: expected \"key\" or \"value\""
                        ),
                    ));
                }
            };
            Editor::ReplaceAllPatterns {
                target: map_path_arg(&args[0], context, name)?,
                keys,
                pattern: regex_arg(&args[2], name)?,
                replacement: compile::getter(&args[3].value, context)?,
            }
        }
        _ => return Err(unknown(call, true)),
    })
}

/// Compiles a converter invocation.
pub fn converter(call: &Call, context: Context) -> Result<Converter, CompileError> {
    let name = call.name.as_str();
    if !CONVERTERS.iter().any(|(n, _)| *n == name) {
        return Err(unknown(call, false));
    }
    let args = arguments(call, CONVERTERS)?;
    let value = |i: usize| compile::getter(&args[i].value, context);
    Ok(match name {
        "IsMatch" => Converter::IsMatch {
            target: value(0)?,
            pattern: regex_arg(&args[1], name)?,
        },
        "Concat" => {
            let Getter::List(values) = value(0)? else {
                return Err(CompileError::new(
                    args[0].value.offset,
                    "`Concat`: expected the values as a list, such as [name, \"-\", attributes[\"k\"]]",
                ));
            };
            Converter::Concat {
                values,
                delimiter: string_arg(&args[1], name, "the delimiter")?,
            }
        }
        "Split" => Converter::Split {
            target: value(0)?,
            delimiter: string_arg(&args[1], name, "the delimiter")?,
        },
        "ConvertCase" => {
            let case = string_arg(&args[1], name, "the case")?;
            let case = match case.as_str() {
                "lower" => Case::Lower,
                "upper" => Case::Upper,
                "snake" => Case::Snake,
                "camel" => Case::Camel,
                other => {
                    return Err(CompileError::new(
                        args[1].value.offset,
                        format!(
                            "`ConvertCase`: invalid case {other:?}: expected \"lower\", \"upper\", \"snake\" or \"camel\""
                        ),
                    ));
                }
            };
            Converter::ConvertCase {
                target: value(0)?,
                case,
            }
        }
        "Int" => Converter::Int(value(0)?),
        "Double" => Converter::Double(value(0)?),
        "String" => Converter::String(value(0)?),
        _ => return Err(unknown(call, false)),
    })
}

/// Runs an editor on a record.
pub fn run_editor(editor: &Editor, record: &mut Record<'_>) -> Result<(), EvalError> {
    match editor {
        Editor::Set { target, value } => {
            let value = eval::evaluate(value, record)?;
            record.set(target, value)
        }
        Editor::DeleteKey { target, key } => {
            record.map_mut(target)?.retain(|kv| &kv.key != key);
            Ok(())
        }
        Editor::DeleteMatchingKeys { target, pattern } => {
            record
                .map_mut(target)?
                .retain(|kv| !pattern.is_match(&kv.key));
            Ok(())
        }
        Editor::KeepKeys { target, keys } => {
            record.map_mut(target)?.retain(|kv| keys.contains(&kv.key));
            Ok(())
        }
        Editor::TruncateAll { target, limit } => {
            for kv in record.map_mut(target)?.iter_mut() {
                if let Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                ) = kv.value.as_mut().and_then(|v| v.value.as_mut())
                {
                    truncate(s, *limit);
                }
            }
            Ok(())
        }
        Editor::Limit {
            target,
            limit,
            priority_keys,
        } => {
            let map = record.map_mut(target)?;
            if map.len() <= *limit {
                return Ok(());
            }
            // Priority keys stay; then the first others, in order.
            let mut room = limit
                - map
                    .iter()
                    .filter(|kv| priority_keys.contains(&kv.key))
                    .count();
            map.retain(|kv| {
                if priority_keys.contains(&kv.key) {
                    return true;
                }
                if room > 0 {
                    room -= 1;
                    return true;
                }
                false
            });
            Ok(())
        }
        Editor::ReplacePattern {
            target,
            pattern,
            replacement,
        } => {
            let Value::String(original) = record.get(target)? else {
                // Only strings are rewritten, as in the Collector.
                return Ok(());
            };
            let replacement = replacement_text(replacement, record)?;
            let replaced = pattern.replace_all(&original, replacement.as_str());
            if let std::borrow::Cow::Owned(changed) = replaced {
                record.set(target, Value::String(changed))?;
            }
            Ok(())
        }
        Editor::ReplaceAllPatterns {
            target,
            keys,
            pattern,
            replacement,
        } => {
            let replacement = replacement_text(replacement, record)?;
            for kv in record.map_mut(target)?.iter_mut() {
                if *keys {
                    if let std::borrow::Cow::Owned(changed) =
                        pattern.replace_all(&kv.key, replacement.as_str())
                    {
                        kv.key = changed;
                    }
                } else if let Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                ) = kv.value.as_mut().and_then(|v| v.value.as_mut())
                    && let std::borrow::Cow::Owned(changed) =
                        pattern.replace_all(s, replacement.as_str())
                {
                    *s = changed;
                }
            }
            Ok(())
        }
    }
}

fn replacement_text(replacement: &Getter, record: &Record<'_>) -> Result<String, EvalError> {
    match eval::evaluate(replacement, record)? {
        Value::String(s) => Ok(s),
        other => Err(EvalError::new(format!(
            "the replacement is a {}, expected a string",
            other.type_name()
        ))),
    }
}

/// Cuts `text` to at most `limit` bytes without splitting a character.
fn truncate(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
}

/// Runs a converter on a record.
pub fn run_converter(converter: &Converter, record: &Record<'_>) -> Result<Value, EvalError> {
    Ok(match converter {
        Converter::IsMatch { target, pattern } => match eval::evaluate(target, record)?.to_text() {
            Some(text) => Value::Bool(pattern.is_match(&text)),
            None => Value::Bool(false),
        },
        Converter::Concat { values, delimiter } => {
            let mut out = String::new();
            for (i, getter) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(delimiter);
                }
                match eval::evaluate(getter, record)? {
                    // Go prints a nil string pointer as <nil>.
                    Value::Nil => out.push_str("<nil>"),
                    // Maps and lists are left out, as in the Collector.
                    Value::Map(_) | Value::List(_) => {}
                    other => out.push_str(&other.to_text().unwrap_or_default()),
                }
            }
            Value::String(out)
        }
        Converter::Split { target, delimiter } => match eval::evaluate(target, record)? {
            Value::Nil => Value::Nil,
            Value::String(s) => Value::List(
                s.split(delimiter.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            ),
            other => {
                return Err(EvalError::new(format!(
                    "Split: expected a string, got a {}",
                    other.type_name()
                )));
            }
        },
        Converter::ConvertCase { target, case } => match eval::evaluate(target, record)? {
            Value::String(s) => Value::String(convert_case(&s, *case)),
            other => {
                return Err(EvalError::new(format!(
                    "ConvertCase: expected a string, got a {}",
                    other.type_name()
                )));
            }
        },
        Converter::Int(value) => match eval::evaluate(value, record)? {
            Value::Int(i) => Value::Int(i),
            // Truncation towards zero, saturating at the i64 range.
            Value::Double(d) if d.is_finite() => Value::Int(d.trunc() as i64),
            Value::Bool(b) => Value::Int(i64::from(b)),
            Value::String(s) => s.trim().parse::<i64>().map_or(Value::Nil, Value::Int),
            _ => Value::Nil,
        },
        Converter::Double(value) => match eval::evaluate(value, record)? {
            Value::Double(d) => Value::Double(d),
            Value::Int(i) => Value::Double(i as f64),
            Value::Bool(b) => Value::Double(if b { 1.0 } else { 0.0 }),
            Value::String(s) => s.trim().parse::<f64>().map_or(Value::Nil, Value::Double),
            _ => Value::Nil,
        },
        Converter::String(value) => match eval::evaluate(value, record)?.to_text() {
            Some(text) => Value::String(text),
            None => Value::Nil,
        },
    })
}

/// The words of an identifier: split at `_`, `-`, `.`, spaces and at
/// lower-to-upper case changes (`myHTTPServer` is my, HTTP, Server).
fn words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && !current.is_empty()
            && (chars[i - 1].is_lowercase()
                || chars[i - 1].is_ascii_digit()
                || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                    && chars[i - 1].is_uppercase());
        if boundary {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn convert_case(text: &str, case: Case) -> String {
    match case {
        Case::Lower => text.to_lowercase(),
        Case::Upper => text.to_uppercase(),
        Case::Snake => words(text)
            .iter()
            .map(|w| w.to_lowercase())
            .collect::<Vec<_>>()
            .join("_"),
        Case::Camel => words(text)
            .iter()
            .map(|w| {
                let lower = w.to_lowercase();
                let mut chars = lower.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                    None => String::new(),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_case_as_the_collector_documents() {
        assert_eq!(convert_case("MY_METRIC", Case::Lower), "my_metric");
        assert_eq!(convert_case("my_metric", Case::Upper), "MY_METRIC");
        assert_eq!(convert_case("myMetric", Case::Snake), "my_metric");
        assert_eq!(convert_case("my_metric", Case::Camel), "MyMetric");
        assert_eq!(convert_case("myHTTPServer", Case::Snake), "my_http_server");
        assert_eq!(
            convert_case("http.server.duration", Case::Camel),
            "HttpServerDuration"
        );
    }

    #[test]
    fn truncates_at_a_character_boundary() {
        let mut s = "héllo".to_string();
        truncate(&mut s, 2);
        assert_eq!(s, "h");
        let mut s = "hello".to_string();
        truncate(&mut s, 10);
        assert_eq!(s, "hello");
    }
}
