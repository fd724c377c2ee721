//! OTTL contexts: the level of the telemetry tree a statement runs at
//! (once per resource, scope, span, span event, metric, data point or log
//! record), which parent levels its paths may reach, which signal each
//! belongs to, and inference of the context from path prefixes, as the
//! Collector's transform processor does since v0.120.

use crate::signal::Signal;

use super::ast::{BoolExpr, Call, Expr, Statement};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Context {
    Resource,
    Scope,
    Span,
    SpanEvent,
    Metric,
    DataPoint,
    Log,
}

impl Context {
    pub const ALL: [Context; 7] = [
        Context::Resource,
        Context::Scope,
        Context::Span,
        Context::SpanEvent,
        Context::Metric,
        Context::DataPoint,
        Context::Log,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Context::Resource => "resource",
            Context::Scope => "scope",
            Context::Span => "span",
            Context::SpanEvent => "spanevent",
            Context::Metric => "metric",
            Context::DataPoint => "datapoint",
            Context::Log => "log",
        }
    }

    /// A context name as it appears in config (`context: span`) or as a
    /// path prefix; `instrumentation_scope` is the older name of `scope`.
    pub fn parse(name: &str) -> Option<Context> {
        match name {
            "instrumentation_scope" => Some(Context::Scope),
            _ => Context::ALL.into_iter().find(|c| c.as_str() == name),
        }
    }

    /// The contexts whose paths a statement running in `self` may use:
    /// itself and the levels above it.
    pub fn reaches(self) -> &'static [Context] {
        match self {
            Context::Resource => &[Context::Resource],
            Context::Scope => &[Context::Resource, Context::Scope],
            Context::Span => &[Context::Resource, Context::Scope, Context::Span],
            Context::SpanEvent => &[
                Context::Resource,
                Context::Scope,
                Context::Span,
                Context::SpanEvent,
            ],
            Context::Metric => &[Context::Resource, Context::Scope, Context::Metric],
            Context::DataPoint => &[
                Context::Resource,
                Context::Scope,
                Context::Metric,
                Context::DataPoint,
            ],
            Context::Log => &[Context::Resource, Context::Scope, Context::Log],
        }
    }

    /// The contexts statements of `signal` may run in, top down.
    pub fn of_signal(signal: Signal) -> &'static [Context] {
        match signal {
            Signal::Traces => &[
                Context::Resource,
                Context::Scope,
                Context::Span,
                Context::SpanEvent,
            ],
            Signal::Metrics => &[
                Context::Resource,
                Context::Scope,
                Context::Metric,
                Context::DataPoint,
            ],
            Signal::Logs => &[Context::Resource, Context::Scope, Context::Log],
        }
    }
}

/// The context prefixes (`span.`, `resource.`) of every path in a
/// statement or condition, with the offset of each path.
pub fn prefixes_in_statement(statement: &Statement, out: &mut Vec<(Context, usize)>) {
    prefixes_in_call(&statement.editor, out);
    if let Some(condition) = &statement.condition {
        prefixes_in_condition(condition, out);
    }
}

pub fn prefixes_in_condition(condition: &BoolExpr, out: &mut Vec<(Context, usize)>) {
    match condition {
        BoolExpr::Or(parts) | BoolExpr::And(parts) => {
            parts.iter().for_each(|p| prefixes_in_condition(p, out))
        }
        BoolExpr::Not(inner) => prefixes_in_condition(inner, out),
        BoolExpr::Compare { left, right, .. } => {
            prefixes_in_expr(&left.node, left.offset, out);
            prefixes_in_expr(&right.node, right.offset, out);
        }
        BoolExpr::Value(value) => prefixes_in_expr(&value.node, value.offset, out),
    }
}

fn prefixes_in_call(call: &Call, out: &mut Vec<(Context, usize)>) {
    for arg in &call.args {
        prefixes_in_expr(&arg.value.node, arg.value.offset, out);
    }
}

fn prefixes_in_expr(expr: &Expr, offset: usize, out: &mut Vec<(Context, usize)>) {
    match expr {
        Expr::Path(path) => {
            if path.names.len() > 1
                && let Some(context) = Context::parse(&path.names[0])
            {
                out.push((context, offset));
            }
        }
        Expr::Converter(call) => prefixes_in_call(call, out),
        Expr::List(items) => items
            .iter()
            .for_each(|i| prefixes_in_expr(&i.node, i.offset, out)),
        Expr::Map(entries) => entries
            .iter()
            .for_each(|(_, v)| prefixes_in_expr(&v.node, v.offset, out)),
        Expr::Literal(_) | Expr::Enum(_) => {}
    }
}

/// The one context that can run statements using all of `prefixes`: the
/// lowest level named, provided every other one is above it. `Err` says
/// why not, with the index of the offending prefix (`None` when no path
/// names a context).
pub fn infer(
    signal: Signal,
    prefixes: &[(Context, usize)],
) -> Result<Context, (Option<usize>, String)> {
    let allowed = Context::of_signal(signal);
    let names: Vec<&str> = allowed.iter().map(|c| c.as_str()).collect();
    for (at, (context, _)) in prefixes.iter().enumerate() {
        if !allowed.contains(context) {
            return Err((
                Some(at),
                format!(
                    "`{}` paths do not exist in {} statements: expected paths starting with {}",
                    context.as_str(),
                    signal.as_str(),
                    names.join(", ")
                ),
            ));
        }
    }
    let Some(lowest) = prefixes.iter().map(|(c, _)| *c).max() else {
        return Err((
            None,
            format!(
                "cannot infer the context: no path starts with one of {}; prefix paths with their context (`span.attributes`) or give `context:` with the statements",
                names.join(", ")
            ),
        ));
    };
    for (at, (context, _)) in prefixes.iter().enumerate() {
        if !lowest.reaches().contains(context) {
            return Err((
                Some(at),
                format!(
                    "`{}` and `{}` paths cannot be used together: no context reaches both; put them in separate groups",
                    context.as_str(),
                    lowest.as_str()
                ),
            ));
        }
    }
    Ok(lowest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ottl::grammar::parse_statement;

    fn infer_for(signal: Signal, statements: &[&str]) -> Result<Context, (Option<usize>, String)> {
        let mut prefixes = Vec::new();
        for s in statements {
            prefixes_in_statement(&parse_statement(s).unwrap(), &mut prefixes);
        }
        infer(signal, &prefixes)
    }

    #[test]
    fn infers_the_lowest_context_named() {
        assert_eq!(
            infer_for(
                Signal::Metrics,
                &[r#"set(metric.description, "x") where datapoint.attributes["t"] == "p""#]
            ),
            Ok(Context::DataPoint)
        );
        assert_eq!(
            infer_for(
                Signal::Metrics,
                &[
                    r#"set(resource.attributes["t"], "p")"#,
                    r#"set(metric.description, "x")"#
                ]
            ),
            Ok(Context::Metric)
        );
        assert_eq!(
            infer_for(Signal::Traces, &[r#"set(spanevent.name, span.name)"#]),
            Ok(Context::SpanEvent)
        );
        assert_eq!(
            infer_for(Signal::Logs, &[r#"set(resource.attributes["a"], "b")"#]),
            Ok(Context::Resource)
        );
    }

    #[test]
    fn refuses_what_cannot_be_inferred() {
        let (_, message) = infer_for(Signal::Logs, &[r#"set(span.name, "x")"#]).unwrap_err();
        assert!(
            message.contains("do not exist in logs statements"),
            "{message}"
        );
        let (_, message) =
            infer_for(Signal::Traces, &[r#"set(attributes["a"], "b")"#]).unwrap_err();
        assert!(message.contains("cannot infer the context"), "{message}");
    }
}
