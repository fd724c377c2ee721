//! OTTL, the OpenTelemetry Transformation Language: the subset sidewatch
//! runs in its `filter` and `transform` processors. Pure computation, no
//! async and no I/O, next to `src/stats/`.
//!
//! - `grammar`: the parser (winnow combinators) from text to `ast`;
//! - `context`: the levels statements run at, and context inference;
//! - `paths`: the fields of each context, and path resolution;
//! - `functions`: the closed table of editors and converters;
//! - `compile`: AST to executable form, checked once at validate time;
//! - `record`: the item a statement runs on, and field access;
//! - `eval`: evaluation and `error_mode`;
//! - `value`, `error`: values with OTTL's comparison rules; errors.
//!
//! The README's "OTTL subset" section lists exactly what is supported.

pub mod ast;
pub mod compile;
pub mod context;
pub mod error;
pub mod eval;
pub mod functions;
pub mod grammar;
pub mod paths;
pub mod record;
pub mod value;
pub mod walk;

pub use compile::{Condition, Statement};
pub use context::Context;
pub use error::{CompileError, EvalError};
pub use eval::ErrorMode;
pub use record::{MetricShape, Point, Record};
