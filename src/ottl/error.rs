//! OTTL errors: compile errors carry the byte offset in the statement they
//! are about (shown as a column); evaluation errors are what `error_mode`
//! decides about at run time.

use std::fmt;

/// A statement or condition that does not compile: bad syntax, a path the
/// context does not have, a function outside the subset, a bad argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Byte offset in the statement text.
    pub offset: usize,
    pub message: String,
}

impl CompileError {
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        CompileError {
            offset,
            message: message.into(),
        }
    }

    /// The column (counted in characters, from 1) of the offset in `text`.
    pub fn column(&self, text: &str) -> usize {
        let end = self.offset.min(text.len());
        text[..end].chars().count() + 1
    }

    /// The message with its column, as config errors print it.
    pub fn located(&self, text: &str) -> String {
        format!(
            "column {} of the statement: {}",
            self.column(text),
            self.message
        )
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.message)
    }
}

/// A statement that failed on one item: a value of the wrong type, a
/// conversion that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

impl EvalError {
    pub fn new(message: impl Into<String>) -> Self {
        EvalError(message.into())
    }
}
