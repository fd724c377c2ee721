//! The OTTL grammar, written with `winnow` parser combinators: statements
//! (`editor(args) where condition`) and bare conditions (the filter
//! processor's). What is parsed here is syntax only; paths and function
//! names are checked against a context in `compile`.
//!
//! ```text
//! statement  = call [ "where" or ] EOF
//! condition  = or EOF
//! or         = and { "or" and }
//! and        = term { "and" term }
//! term       = "not" term | "(" or ")" | value [ op value ]
//! op         = "==" | "!=" | "<=" | ">=" | "<" | ">"
//! value      = string | bytes | number | "true" | "false" | "nil"
//!            | list | map | Converter "(" args ")" keys | ENUM | path
//! path       = name { "." name } keys
//! keys       = { "[" ( string | int ) "]" }
//! args       = [ [ name "=" ] value { "," [ name "=" ] value } ]
//! ```
//!
//! `not` binds tightest, then `and`, then `or`, as in the OTTL spec.

use winnow::ascii::{digit0, digit1, hex_digit1, multispace0};
use winnow::combinator::{
    alt, cut_err, delimited, eof, not, opt, peek, preceded, repeat, separated, terminated,
};
use winnow::error::{ContextError, ErrMode, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::stream::{LocatingSlice, Location};
use winnow::token::{any, one_of, take_while};

use super::ast::{
    Argument, BoolExpr, Call, CompareOp, Expr, Key, Literal, PathExpr, Spanned, Statement,
};
use super::error::CompileError;

type Input<'a> = LocatingSlice<&'a str>;
type Parsed<T> = winnow::ModalResult<T>;

/// Parses one statement: `set(attributes["k"], "v") where name == "x"`.
pub fn parse_statement(text: &str) -> Result<Statement, CompileError> {
    run(text, statement)
}

/// Parses one condition: `attributes["k"] == "v" and not IsMatch(name, "x")`.
pub fn parse_condition(text: &str) -> Result<BoolExpr, CompileError> {
    run(text, condition)
}

fn run<T>(
    text: &str,
    mut parser: impl FnMut(&mut Input<'_>) -> Parsed<T>,
) -> Result<T, CompileError> {
    parser.parse(LocatingSlice::new(text)).map_err(|error| {
        let offset = error.offset();
        let expected = describe(error.inner());
        let found = match text[offset..].chars().next() {
            None => "the end of the statement".to_string(),
            Some(_) => {
                let rest: String = text[offset..].chars().take(12).collect();
                format!("`{rest}`")
            }
        };
        CompileError::new(
            offset,
            format!("invalid OTTL: expected {expected}, found {found}"),
        )
    })
}

/// What the innermost failing rule expected, in words.
fn describe(error: &ContextError) -> String {
    let expected: Vec<String> = error
        .context()
        .filter_map(|c| match c {
            StrContext::Expected(StrContextValue::Description(d)) => Some(d.to_string()),
            StrContext::Expected(StrContextValue::CharLiteral(c)) => Some(format!("`{c}`")),
            StrContext::Expected(StrContextValue::StringLiteral(s)) => Some(format!("`{s}`")),
            _ => None,
        })
        .collect();
    if expected.is_empty() {
        "a valid statement".into()
    } else {
        expected.join(" or ")
    }
}

fn expected(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::Description(what))
}

fn ws(i: &mut Input<'_>) -> Parsed<()> {
    multispace0.void().parse_next(i)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn name<'a>(i: &mut Input<'a>) -> Parsed<&'a str> {
    (
        one_of(|c: char| c.is_ascii_alphabetic()),
        take_while(0.., is_name_char),
    )
        .take()
        .parse_next(i)
}

/// A keyword: the word, not followed by a name character.
fn keyword<'a>(word: &'static str) -> impl Parser<Input<'a>, (), ErrMode<ContextError>> {
    terminated(word, not(one_of(is_name_char))).void()
}

fn statement(i: &mut Input<'_>) -> Parsed<Statement> {
    ws(i)?;
    let start = i.current_token_start();
    let editor_name =
        cut_err(name.context(expected("an editor such as set(...)"))).parse_next(i)?;
    ws(i)?;
    if !editor_name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return cut_err(fail_with("an editor (a lowercase name such as set)")).parse_next(i);
    }
    let args = cut_err(arguments).parse_next(i)?;
    ws(i)?;
    let condition = opt(preceded((keyword("where"), ws), cut_err(or_expr))).parse_next(i)?;
    ws(i)?;
    cut_err(eof.context(expected("`where` or the end of the statement"))).parse_next(i)?;
    Ok(Statement {
        editor: Call {
            name: editor_name.to_string(),
            offset: start,
            args,
            keys: Vec::new(),
        },
        condition,
    })
}

fn condition(i: &mut Input<'_>) -> Parsed<BoolExpr> {
    ws(i)?;
    let expr = cut_err(or_expr).parse_next(i)?;
    ws(i)?;
    cut_err(eof.context(expected("`and`, `or` or the end of the condition"))).parse_next(i)?;
    Ok(expr)
}

/// Fails with a description of what was expected here.
fn fail_with<'a, T>(what: &'static str) -> impl Parser<Input<'a>, T, ErrMode<ContextError>> {
    winnow::combinator::fail.context(expected(what))
}

fn or_expr(i: &mut Input<'_>) -> Parsed<BoolExpr> {
    let first = and_expr(i)?;
    let mut rest: Vec<BoolExpr> =
        repeat(0.., preceded((ws, keyword("or"), ws), cut_err(and_expr))).parse_next(i)?;
    if rest.is_empty() {
        return Ok(first);
    }
    rest.insert(0, first);
    Ok(BoolExpr::Or(rest))
}

fn and_expr(i: &mut Input<'_>) -> Parsed<BoolExpr> {
    let first = term(i)?;
    let mut rest: Vec<BoolExpr> =
        repeat(0.., preceded((ws, keyword("and"), ws), cut_err(term))).parse_next(i)?;
    if rest.is_empty() {
        return Ok(first);
    }
    rest.insert(0, first);
    Ok(BoolExpr::And(rest))
}

fn term(i: &mut Input<'_>) -> Parsed<BoolExpr> {
    ws(i)?;
    alt((
        preceded((keyword("not"), ws), cut_err(term)).map(|t| BoolExpr::Not(Box::new(t))),
        delimited(
            ('(', ws),
            cut_err(or_expr),
            cut_err((ws, ')')).context(expected("`)`")),
        ),
        comparison,
    ))
    .parse_next(i)
}

fn comparison(i: &mut Input<'_>) -> Parsed<BoolExpr> {
    let left = value(i)?;
    let op = opt(preceded(ws, compare_op)).parse_next(i)?;
    match op {
        None => Ok(BoolExpr::Value(left)),
        Some(op) => {
            ws(i)?;
            let right = cut_err(value).parse_next(i)?;
            Ok(BoolExpr::Compare { left, op, right })
        }
    }
}

fn compare_op(i: &mut Input<'_>) -> Parsed<CompareOp> {
    alt((
        "==".value(CompareOp::Equal),
        "!=".value(CompareOp::NotEqual),
        "<=".value(CompareOp::LessOrEqual),
        ">=".value(CompareOp::GreaterOrEqual),
        "<".value(CompareOp::Less),
        ">".value(CompareOp::Greater),
    ))
    .parse_next(i)
}

fn arguments(i: &mut Input<'_>) -> Parsed<Vec<Argument>> {
    '('.context(StrContext::Expected(StrContextValue::CharLiteral('(')))
        .parse_next(i)?;
    ws(i)?;
    let args: Vec<Argument> = separated(0.., argument, (ws, ',', ws)).parse_next(i)?;
    ws(i)?;
    cut_err(')'.context(expected("`,` or `)`"))).parse_next(i)?;
    Ok(args)
}

fn argument(i: &mut Input<'_>) -> Parsed<Argument> {
    let arg_name = opt(terminated(name, (ws, '=', not('='), ws))).parse_next(i)?;
    let value = value(i)?;
    Ok(Argument {
        name: arg_name.map(str::to_string),
        value,
    })
}

fn value(i: &mut Input<'_>) -> Parsed<Spanned<Expr>> {
    let offset = i.current_token_start();
    let node = alt((
        string.map(|s| Expr::Literal(Literal::String(s))),
        bytes.map(|b| Expr::Literal(Literal::Bytes(b))),
        number.map(Expr::Literal),
        list,
        map,
        named_value,
        fail_with("a value (a string, number, path, list or converter)"),
    ))
    .parse_next(i)?;
    Ok(Spanned { node, offset })
}

/// A value that starts with a name: a literal word, a converter, an enum
/// or a path.
fn named_value(i: &mut Input<'_>) -> Parsed<Expr> {
    let offset = i.current_token_start();
    let first = name(i)?;
    match first {
        "true" => return Ok(Expr::Literal(Literal::Bool(true))),
        "false" => return Ok(Expr::Literal(Literal::Bool(false))),
        "nil" => return Ok(Expr::Literal(Literal::Nil)),
        _ => {}
    }
    let calls = opt(peek((ws, '('))).parse_next(i)?.is_some();
    if first.starts_with(|c: char| c.is_ascii_uppercase()) {
        if calls {
            ws(i)?;
            let args = cut_err(arguments).parse_next(i)?;
            let keys = keys(i)?;
            return Ok(Expr::Converter(Call {
                name: first.to_string(),
                offset,
                args,
                keys,
            }));
        }
        if first
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Ok(Expr::Enum(first.to_string()));
        }
        return cut_err(fail_with("`(` after a converter name")).parse_next(i);
    }
    if calls {
        return cut_err(fail_with(
            "a value; editors (lowercase functions) cannot be used as values, converters start with an uppercase letter",
        ))
        .parse_next(i);
    }
    let mut names = vec![first.to_string()];
    let more: Vec<&str> = repeat(
        0..,
        preceded('.', cut_err(name.context(expected("a name after `.`")))),
    )
    .parse_next(i)?;
    names.extend(more.into_iter().map(str::to_string));
    let keys = keys(i)?;
    Ok(Expr::Path(PathExpr { names, keys }))
}

fn keys(i: &mut Input<'_>) -> Parsed<Vec<Spanned<Key>>> {
    repeat(0.., key).parse_next(i)
}

fn key(i: &mut Input<'_>) -> Parsed<Spanned<Key>> {
    '['.parse_next(i)?;
    ws(i)?;
    let offset = i.current_token_start();
    let node = cut_err(
        alt((
            string.map(Key::String),
            number.verify_map(|n| match n {
                Literal::Int(i) => Some(Key::Int(i)),
                _ => None,
            }),
        ))
        .context(expected("a string or integer key")),
    )
    .parse_next(i)?;
    ws(i)?;
    cut_err(']'.context(expected("`]`"))).parse_next(i)?;
    Ok(Spanned { node, offset })
}

fn list(i: &mut Input<'_>) -> Parsed<Expr> {
    '['.parse_next(i)?;
    ws(i)?;
    let items: Vec<Spanned<Expr>> = separated(0.., value, (ws, ',', ws)).parse_next(i)?;
    ws(i)?;
    cut_err(']'.context(expected("`,` or `]`"))).parse_next(i)?;
    Ok(Expr::List(items))
}

fn map(i: &mut Input<'_>) -> Parsed<Expr> {
    '{'.parse_next(i)?;
    ws(i)?;
    let entries: Vec<(String, Spanned<Expr>)> = separated(
        0..,
        (
            cut_err(string.context(expected("a string key"))),
            (ws, cut_err(':'.context(expected("`:`"))), ws),
            cut_err(value),
        )
            .map(|(k, _, v)| (k, v)),
        (ws, ',', ws),
    )
    .parse_next(i)?;
    ws(i)?;
    cut_err('}'.context(expected("`,` or `}`"))).parse_next(i)?;
    Ok(Expr::Map(entries))
}

/// A double-quoted string with Go's escapes (`\\`, `\"`, `\n`, `\t`, `\r`).
fn string(i: &mut Input<'_>) -> Parsed<String> {
    '"'.parse_next(i)?;
    let mut text = String::new();
    loop {
        let c = cut_err(any.context(expected("a closing `\"`"))).parse_next(i)?;
        match c {
            '"' => return Ok(text),
            '\\' => {
                let escaped = cut_err(one_of(['\\', '"', 'n', 't', 'r']).context(expected(
                    "an escape: \\\\, \\\", \\n, \\t or \\r (write \\\\ for a backslash)",
                )))
                .parse_next(i)?;
                text.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => other,
                });
            }
            other => text.push(other),
        }
    }
}

fn bytes(i: &mut Input<'_>) -> Parsed<Vec<u8>> {
    "0x".parse_next(i)?;
    let digits =
        cut_err(hex_digit1.context(expected("hexadecimal digits after 0x"))).parse_next(i)?;
    if digits.len() % 2 != 0 {
        return cut_err(fail_with("an even number of hexadecimal digits")).parse_next(i);
    }
    hex::decode(digits).or_else(|_| cut_err(fail_with("hexadecimal digits")).parse_next(i))
}

fn number(i: &mut Input<'_>) -> Parsed<Literal> {
    let text = (
        opt(one_of(['+', '-'])),
        alt(((digit1, opt(('.', digit0))).void(), ('.', digit1).void())),
    )
        .take()
        .parse_next(i)?;
    // A number runs into a name (`1abc`): not a number at all.
    not(one_of(|c: char| c.is_ascii_alphabetic() || c == '_')).parse_next(i)?;
    if text.contains('.') {
        text.parse::<f64>()
            .map(Literal::Double)
            .or_else(|_| cut_err(fail_with("a number")).parse_next(i))
    } else {
        text.parse::<i64>()
            .map(Literal::Int)
            .or_else(|_| cut_err(fail_with("an integer that fits in 64 bits")).parse_next(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(names: &[&str], keys: Vec<Key>) -> Expr {
        Expr::Path(PathExpr {
            names: names.iter().map(|s| s.to_string()).collect(),
            keys: keys
                .into_iter()
                .map(|node| Spanned { node, offset: 0 })
                .collect(),
        })
    }

    /// The tree without offsets, to compare shapes.
    fn strip(expr: &Expr) -> Expr {
        match expr {
            Expr::Path(p) => Expr::Path(PathExpr {
                names: p.names.clone(),
                keys: p
                    .keys
                    .iter()
                    .map(|k| Spanned {
                        node: k.node.clone(),
                        offset: 0,
                    })
                    .collect(),
            }),
            other => other.clone(),
        }
    }

    #[test]
    fn parses_an_editor_with_a_where_clause() {
        let s = parse_statement(r#"set(attributes["env"], "prod") where resource.attributes["service.name"] == "api" and not IsMatch(name, "^GET")"#)
            .unwrap();
        assert_eq!(s.editor.name, "set");
        assert_eq!(s.editor.args.len(), 2);
        assert_eq!(
            strip(&s.editor.args[0].value.node),
            path(&["attributes"], vec![Key::String("env".into())])
        );
        assert_eq!(
            s.editor.args[1].value.node,
            Expr::Literal(Literal::String("prod".into()))
        );
        let Some(BoolExpr::And(parts)) = s.condition else {
            panic!("expected and")
        };
        assert_eq!(parts.len(), 2);
        assert!(matches!(
            &parts[0],
            BoolExpr::Compare {
                op: CompareOp::Equal,
                ..
            }
        ));
        let BoolExpr::Not(inner) = &parts[1] else {
            panic!("expected not")
        };
        let BoolExpr::Value(Spanned {
            node: Expr::Converter(call),
            ..
        }) = &**inner
        else {
            panic!("expected converter")
        };
        assert_eq!(call.name, "IsMatch");
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_group() {
        let c = parse_condition("a == 1 or b == 2 and c == 3").unwrap();
        let BoolExpr::Or(parts) = c else { panic!() };
        assert!(matches!(parts[1], BoolExpr::And(_)));
        let c = parse_condition("(a == 1 or b == 2) and c == 3").unwrap();
        let BoolExpr::And(parts) = c else { panic!() };
        assert!(matches!(parts[0], BoolExpr::Or(_)));
    }

    #[test]
    fn parses_literals_lists_maps_enums_and_indexed_converters() {
        let s = parse_statement(r#"f(1, -2, 1.5, -.5, true, false, nil, 0x0a0B, ["a", 1], {"k": "v"}, SPAN_KIND_SERVER, Split(name, ",")[1], "a\"b\\c\n")"#).unwrap();
        let values: Vec<Expr> = s.editor.args.iter().map(|a| a.value.node.clone()).collect();
        assert_eq!(values[0], Expr::Literal(Literal::Int(1)));
        assert_eq!(values[1], Expr::Literal(Literal::Int(-2)));
        assert_eq!(values[2], Expr::Literal(Literal::Double(1.5)));
        assert_eq!(values[3], Expr::Literal(Literal::Double(-0.5)));
        assert_eq!(values[4], Expr::Literal(Literal::Bool(true)));
        assert_eq!(values[6], Expr::Literal(Literal::Nil));
        assert_eq!(values[7], Expr::Literal(Literal::Bytes(vec![0x0a, 0x0b])));
        assert!(matches!(&values[8], Expr::List(items) if items.len() == 2));
        assert!(matches!(&values[9], Expr::Map(entries) if entries[0].0 == "k"));
        assert_eq!(values[10], Expr::Enum("SPAN_KIND_SERVER".into()));
        let Expr::Converter(split) = &values[11] else {
            panic!()
        };
        assert_eq!(split.keys[0].node, Key::Int(1));
        assert_eq!(
            values[12],
            Expr::Literal(Literal::String("a\"b\\c\n".into()))
        );
    }

    #[test]
    fn records_offsets_of_functions_and_values() {
        let s = parse_statement(r#"  set(name, Concat([name, "x"], "-"))"#).unwrap();
        assert_eq!(s.editor.offset, 2);
        assert_eq!(s.editor.args[1].value.offset, 12);
        let Expr::Converter(c) = &s.editor.args[1].value.node else {
            panic!()
        };
        assert_eq!(c.offset, 12);
    }

    #[test]
    fn names_what_was_expected_and_where() {
        let e = parse_statement(r#"set(name, "x") wher name == "a""#).unwrap_err();
        assert_eq!(e.offset, 15);
        assert!(
            e.message.contains("`where` or the end of the statement"),
            "{}",
            e.message
        );
        let e = parse_statement(r#"set(name, "x"#).unwrap_err();
        assert!(e.message.contains("closing `\"`"), "{}", e.message);
        let e = parse_condition(r#"name == "#).unwrap_err();
        assert!(e.message.contains("a value"), "{}", e.message);
        let e = parse_statement(r#"set(name, "\d")"#).unwrap_err();
        assert!(e.message.contains("an escape"), "{}", e.message);
        let e = parse_statement(r#"set(name, delete_key(attributes, "x"))"#).unwrap_err();
        assert!(e.message.contains("editors"), "{}", e.message);
        let e = parse_statement(r#"Set(name, "x")"#).unwrap_err();
        assert!(e.message.contains("editor"), "{}", e.message);
    }

    #[test]
    fn keywords_are_whole_words() {
        // `notes` and `order` are paths, not `not` and `or`.
        let c = parse_condition(r#"notes == "x" or order == 1"#).unwrap();
        let BoolExpr::Or(parts) = c else { panic!() };
        assert!(
            matches!(&parts[0], BoolExpr::Compare { left: Spanned { node: Expr::Path(p), .. }, .. } if p.names == ["notes"])
        );
    }
}
