//! Compiles parsed statements and conditions against a context: every
//! path resolved to a typed field, every function looked up in the closed
//! table (`functions`), every regex compiled, once, at validate time.
//! What comes out cannot fail to build; it can only fail on a value.

use super::ast::{self, BoolExpr, CompareOp, Expr, Key, Spanned};
use super::context::Context;
use super::error::CompileError;
use super::functions::{self, Converter, Editor};
use super::grammar;
use super::paths::{self, Path};
use super::value::Value;

/// Something that yields a value when evaluated on a record.
#[derive(Debug, Clone)]
pub enum Getter {
    Literal(Value),
    Path(Path),
    Converter(Box<Converter>, Vec<Key>),
    List(Vec<Getter>),
    Map(Vec<(String, Getter)>),
}

#[derive(Debug, Clone)]
pub enum Condition {
    Or(Vec<Condition>),
    And(Vec<Condition>),
    Not(Box<Condition>),
    Compare(Getter, CompareOp, Getter),
    /// A path or converter that must evaluate to a boolean.
    Value(Getter),
    Constant(bool),
}

/// One compiled statement: an editor and its optional `where` clause.
#[derive(Debug, Clone)]
pub struct Statement {
    pub editor: Editor,
    pub condition: Option<Condition>,
    /// As written, for error messages at run time.
    pub text: String,
}

/// Parses and compiles a statement for `context`.
pub fn statement(text: &str, context: Context) -> Result<Statement, CompileError> {
    let parsed = grammar::parse_statement(text)?;
    compile_statement(&parsed, text, context)
}

pub fn compile_statement(
    parsed: &ast::Statement,
    text: &str,
    context: Context,
) -> Result<Statement, CompileError> {
    let editor = functions::editor(&parsed.editor, context)?;
    let condition = parsed
        .condition
        .as_ref()
        .map(|c| compile_condition(c, context))
        .transpose()?;
    Ok(Statement {
        editor,
        condition,
        text: text.to_string(),
    })
}

/// Parses and compiles a condition for `context`.
pub fn condition(text: &str, context: Context) -> Result<Condition, CompileError> {
    let parsed = grammar::parse_condition(text)?;
    compile_condition(&parsed, context)
}

pub fn compile_condition(parsed: &BoolExpr, context: Context) -> Result<Condition, CompileError> {
    Ok(match parsed {
        BoolExpr::Or(parts) => Condition::Or(
            parts
                .iter()
                .map(|p| compile_condition(p, context))
                .collect::<Result<_, _>>()?,
        ),
        BoolExpr::And(parts) => Condition::And(
            parts
                .iter()
                .map(|p| compile_condition(p, context))
                .collect::<Result<_, _>>()?,
        ),
        BoolExpr::Not(inner) => Condition::Not(Box::new(compile_condition(inner, context)?)),
        BoolExpr::Compare { left, op, right } => {
            Condition::Compare(getter(left, context)?, *op, getter(right, context)?)
        }
        BoolExpr::Value(value) => match &value.node {
            Expr::Literal(ast::Literal::Bool(b)) => Condition::Constant(*b),
            Expr::Path(_) => Condition::Value(getter(value, context)?),
            Expr::Converter(call) => {
                if !functions::returns_bool(&call.name) {
                    return Err(CompileError::new(
                        value.offset,
                        format!(
                            "`{}` does not return a boolean: expected a comparison (`==`, `!=`, `<`, ...) or a boolean converter such as IsMatch",
                            call.name
                        ),
                    ));
                }
                Condition::Value(getter(value, context)?)
            }
            _ => {
                return Err(CompileError::new(
                    value.offset,
                    "expected a boolean: a comparison, `true`, `false`, or a converter such as IsMatch",
                ));
            }
        },
    })
}

/// Compiles a value expression.
pub fn getter(value: &Spanned<Expr>, context: Context) -> Result<Getter, CompileError> {
    Ok(match &value.node {
        Expr::Literal(literal) => Getter::Literal(Value::from_literal(literal)),
        Expr::Path(path) => Getter::Path(paths::resolve(context, path, value.offset)?),
        Expr::Enum(name) => match enum_value(name) {
            Some(number) => Getter::Literal(Value::Int(number)),
            None => {
                return Err(CompileError::new(
                    value.offset,
                    format!(
                        "unknown enum `{name}`: expected SPAN_KIND_*, STATUS_CODE_*, SEVERITY_NUMBER_*, METRIC_DATA_TYPE_* or AGGREGATION_TEMPORALITY_*"
                    ),
                ));
            }
        },
        Expr::Converter(call) => {
            let converter = functions::converter(call, context)?;
            Getter::Converter(
                Box::new(converter),
                call.keys.iter().map(|k| k.node.clone()).collect(),
            )
        }
        Expr::List(items) => Getter::List(
            items
                .iter()
                .map(|i| getter(i, context))
                .collect::<Result<_, _>>()?,
        ),
        Expr::Map(entries) => Getter::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), getter(v, context)?)))
                .collect::<Result<_, CompileError>>()?,
        ),
    })
}

/// The enums of the OTLP protos, as OTTL names them.
pub fn enum_value(name: &str) -> Option<i64> {
    const KINDS: [&str; 6] = [
        "UNSPECIFIED",
        "INTERNAL",
        "SERVER",
        "CLIENT",
        "PRODUCER",
        "CONSUMER",
    ];
    const STATUS: [&str; 3] = ["UNSET", "OK", "ERROR"];
    const TYPES: [&str; 6] = [
        "NONE",
        "GAUGE",
        "SUM",
        "HISTOGRAM",
        "EXPONENTIAL_HISTOGRAM",
        "SUMMARY",
    ];
    const TEMPORALITY: [&str; 3] = ["UNSPECIFIED", "DELTA", "CUMULATIVE"];
    let position =
        |names: &[&str], rest: &str| names.iter().position(|n| *n == rest).map(|i| i as i64);
    if let Some(rest) = name.strip_prefix("SPAN_KIND_") {
        return position(&KINDS, rest);
    }
    if let Some(rest) = name.strip_prefix("STATUS_CODE_") {
        return position(&STATUS, rest);
    }
    if let Some(rest) = name.strip_prefix("METRIC_DATA_TYPE_") {
        return position(&TYPES, rest);
    }
    if let Some(rest) = name.strip_prefix("AGGREGATION_TEMPORALITY_") {
        return position(&TEMPORALITY, rest);
    }
    let rest = name.strip_prefix("SEVERITY_NUMBER_")?;
    if rest == "UNSPECIFIED" {
        return Some(0);
    }
    // TRACE=1, TRACE2..TRACE4, DEBUG=5, ... FATAL4=24.
    const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let (level, step) = match rest.char_indices().find(|(_, c)| c.is_ascii_digit()) {
        Some((at, _)) => (
            &rest[..at],
            rest[at..]
                .parse::<i64>()
                .ok()
                .filter(|s| (2..=4).contains(s))?,
        ),
        None => (rest, 1),
    };
    let base = LEVELS.iter().position(|l| *l == level)? as i64;
    Some(base * 4 + step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_enums_to_their_proto_numbers() {
        assert_eq!(enum_value("SPAN_KIND_SERVER"), Some(2));
        assert_eq!(enum_value("STATUS_CODE_ERROR"), Some(2));
        assert_eq!(enum_value("SEVERITY_NUMBER_TRACE"), Some(1));
        assert_eq!(enum_value("SEVERITY_NUMBER_INFO"), Some(9));
        assert_eq!(enum_value("SEVERITY_NUMBER_WARN3"), Some(15));
        assert_eq!(enum_value("SEVERITY_NUMBER_FATAL4"), Some(24));
        assert_eq!(enum_value("METRIC_DATA_TYPE_SUMMARY"), Some(5));
        assert_eq!(enum_value("AGGREGATION_TEMPORALITY_CUMULATIVE"), Some(2));
        assert_eq!(enum_value("SEVERITY_NUMBER_INFO5"), None);
        assert_eq!(enum_value("SPAN_KIND_NOPE"), None);
    }

    #[test]
    fn refuses_non_boolean_conditions_and_unknown_enums() {
        let e = condition(r#"Concat([name], "")"#, Context::Span).unwrap_err();
        assert!(
            e.message.contains("does not return a boolean"),
            "{}",
            e.message
        );
        let e = condition(r#""x""#, Context::Span).unwrap_err();
        assert!(e.message.contains("expected a boolean"), "{}", e.message);
        let e = condition("kind == SPAN_KIND_SERVERS", Context::Span).unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(e.message.contains("unknown enum"), "{}", e.message);
    }
}
