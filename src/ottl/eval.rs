//! Evaluation: getters yield values, conditions yield booleans, and a
//! statement runs its editor when its `where` clause holds. `error_mode`
//! says what a caller does when one of these fails on an item.

use serde::Deserialize;

use super::ast::Key;
use super::compile::{Condition, Getter, Statement};
use super::error::EvalError;
use super::functions;
use super::record::Record;
use super::value::{Value, compare};

/// What a processor does when a statement or condition fails on an item,
/// as in the Collector: `ignore` logs and goes on, `silent` goes on,
/// `propagate` fails the whole batch (which is then dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorMode {
    Ignore,
    Silent,
    Propagate,
}

pub fn evaluate(getter: &Getter, record: &Record<'_>) -> Result<Value, EvalError> {
    Ok(match getter {
        Getter::Literal(value) => value.clone(),
        Getter::Path(path) => record.get(path)?,
        Getter::Converter(converter, keys) => {
            let value = functions::run_converter(converter, record)?;
            index_value(value, keys)?
        }
        Getter::List(items) => Value::List(
            items
                .iter()
                .map(|i| evaluate(i, record))
                .collect::<Result<_, _>>()?,
        ),
        Getter::Map(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), evaluate(v, record)?)))
                .collect::<Result<_, EvalError>>()?,
        ),
    })
}

/// `Split(x, ",")[1]`: indexes a converter's result.
fn index_value(mut value: Value, keys: &[Key]) -> Result<Value, EvalError> {
    for key in keys {
        value = match (value, key) {
            (Value::List(items), Key::Int(i)) => {
                let len = items.len();
                usize::try_from(*i)
                    .ok()
                    .and_then(|i| items.into_iter().nth(i))
                    .ok_or_else(|| {
                        EvalError::new(format!("index {i} is out of range (length {len})"))
                    })?
            }
            (Value::Map(entries), Key::String(k)) => entries
                .into_iter()
                .find(|(key, _)| key == k)
                .map_or(Value::Nil, |(_, v)| v),
            (other, key) => {
                return Err(EvalError::new(format!(
                    "a {} cannot be indexed by {key:?}",
                    other.type_name()
                )));
            }
        };
    }
    Ok(value)
}

pub fn test(condition: &Condition, record: &Record<'_>) -> Result<bool, EvalError> {
    Ok(match condition {
        Condition::Or(parts) => {
            for part in parts {
                if test(part, record)? {
                    return Ok(true);
                }
            }
            false
        }
        Condition::And(parts) => {
            for part in parts {
                if !test(part, record)? {
                    return Ok(false);
                }
            }
            true
        }
        Condition::Not(inner) => !test(inner, record)?,
        Condition::Compare(left, op, right) => {
            compare(&evaluate(left, record)?, *op, &evaluate(right, record)?)
        }
        Condition::Value(getter) => match evaluate(getter, record)? {
            Value::Bool(b) => b,
            other => {
                return Err(EvalError::new(format!(
                    "expected a boolean, got a {}",
                    other.type_name()
                )));
            }
        },
        Condition::Constant(b) => *b,
    })
}

/// Runs `statement` on `record` if its condition holds.
pub fn execute(statement: &Statement, record: &mut Record<'_>) -> Result<(), EvalError> {
    if let Some(condition) = &statement.condition
        && !test(condition, record)?
    {
        return Ok(());
    }
    functions::run_editor(&statement.editor, record)
}
