//! The syntax tree the grammar produces, before paths and functions are
//! resolved against a context. Every node that can be wrong on its own
//! keeps its byte offset in the statement, so compile errors name a column.

/// A node and where it starts in the statement text (a byte offset).
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub offset: usize,
}

/// `editor(args) where condition`.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub editor: Call,
    pub condition: Option<BoolExpr>,
}

/// A function invocation: an editor (lowercase name) or a converter
/// (uppercase name, optionally indexed: `Split(x, ",")[0]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub offset: usize,
    pub args: Vec<Argument>,
    pub keys: Vec<Spanned<Key>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Argument {
    /// `name = value`; OTTL allows it, this subset refuses it by name.
    pub name: Option<String>,
    pub value: Spanned<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Path(PathExpr),
    Converter(Call),
    Enum(String),
    List(Vec<Spanned<Expr>>),
    Map(Vec<(String, Spanned<Expr>)>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    Bytes(Vec<u8>),
}

/// `resource.attributes["k"]`: dotted lowercase names, then keys.
#[derive(Debug, Clone, PartialEq)]
pub struct PathExpr {
    pub names: Vec<String>,
    pub keys: Vec<Spanned<Key>>,
}

impl PathExpr {
    /// The path as written, for messages.
    pub fn text(&self) -> String {
        let mut text = self.names.join(".");
        for key in &self.keys {
            match &key.node {
                Key::String(k) => text.push_str(&format!("[{k:?}]")),
                Key::Int(i) => text.push_str(&format!("[{i}]")),
            }
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    String(String),
    Int(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl CompareOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Equal => "==",
            CompareOp::NotEqual => "!=",
            CompareOp::Less => "<",
            CompareOp::LessOrEqual => "<=",
            CompareOp::Greater => ">",
            CompareOp::GreaterOrEqual => ">=",
        }
    }
}

/// A boolean expression: `not` binds tightest, then `and`, then `or`.
#[derive(Debug, Clone, PartialEq)]
pub enum BoolExpr {
    Or(Vec<BoolExpr>),
    And(Vec<BoolExpr>),
    Not(Box<BoolExpr>),
    Compare {
        left: Spanned<Expr>,
        op: CompareOp,
        right: Spanned<Expr>,
    },
    /// A boolean literal, a converter returning a boolean, or a path.
    Value(Spanned<Expr>),
}
