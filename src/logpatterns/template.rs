//! A template: the tokens of a pattern, each a literal (possibly holding
//! masked placeholders such as `<NUM>`) or the wildcard `<*>` that a
//! position becomes once lines disagree there. Rendering, similarity to a
//! line and generalisation live here; the pattern id is derived from the
//! rendered text.

use std::hash::Hasher;

use super::mask::looks_variable;
use super::tokenize::LineToken;

pub const WILDCARD: &str = "<*>";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    Literal(Box<str>),
    Wildcard,
}

impl Token {
    pub fn text(&self) -> &str {
        match self {
            Token::Literal(text) => text,
            Token::Wildcard => WILDCARD,
        }
    }
}

/// A stable 64-bit pattern id: FNV-1a of the template text as first
/// learned. FNV-1a is fully specified (no per-process seed, no change
/// between Rust versions), so ids survive restarts and upgrades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatternId(pub u64);

impl PatternId {
    pub fn of_text(text: &str) -> PatternId {
        let mut hasher = fnv::FnvHasher::default();
        hasher.write(text.as_bytes());
        PatternId(hasher.finish())
    }

    /// The id of `text` salted with `salt`, to resolve a hash collision
    /// deterministically.
    pub fn of_text_salted(text: &str, salt: u32) -> PatternId {
        let mut hasher = fnv::FnvHasher::default();
        hasher.write(text.as_bytes());
        hasher.write(b"#");
        hasher.write(&salt.to_be_bytes());
        PatternId(hasher.finish())
    }
}

impl std::fmt::Display for PatternId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::str::FromStr for PatternId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(PatternId)
    }
}

pub fn from_line(tokens: &[LineToken]) -> Vec<Token> {
    tokens
        .iter()
        .map(|t| Token::Literal(t.text.as_str().into()))
        .collect()
}

pub fn render(tokens: &[Token]) -> String {
    let mut text = String::with_capacity(tokens.iter().map(|t| t.text().len() + 1).sum());
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(token.text());
    }
    text
}

/// Similarity of a line to a template of the same length, as in Drain:
/// the share of positions whose literal equals the line's token; a
/// wildcard counts `wildcard_weight` (0 in Drain, which makes a template
/// that has generalised much harder to match). Also returns the number of
/// wildcards, to break ties towards the more general template.
pub fn similarity(template: &[Token], line: &[LineToken], wildcard_weight: f64) -> (f64, usize) {
    debug_assert_eq!(template.len(), line.len());
    if template.is_empty() {
        return (1.0, 0);
    }
    let mut same = 0.0;
    let mut wildcards = 0;
    for (t, l) in template.iter().zip(line) {
        match t {
            Token::Wildcard => {
                wildcards += 1;
                same += wildcard_weight;
            }
            Token::Literal(text) if **text == *l.text => same += 1.0,
            Token::Literal(_) => {}
        }
    }
    (same / template.len() as f64, wildcards)
}

/// Whether the line differs from one of the template's plain-word literals
/// (no digit, no placeholder): `tty=NODEVssh` against `tty=:0` does, while
/// `port=<NUM>` against `port=<HEX>` does not.
pub fn differs_in_a_word(template: &[Token], line: &[LineToken]) -> bool {
    template.iter().zip(line).any(|(t, l)| match t {
        Token::Literal(text) => **text != *l.text && is_plain_word(text),
        Token::Wildcard => false,
    })
}

/// A token with no digit and no masked placeholder.
pub fn is_plain_word(text: &str) -> bool {
    !looks_variable(text)
}

/// Turns every position where the line disagrees into a wildcard. Returns
/// whether the template changed.
pub fn generalise(template: &mut [Token], line: &[LineToken]) -> bool {
    let mut changed = false;
    for (t, l) in template.iter_mut().zip(line) {
        if let Token::Literal(text) = t
            && **text != *l.text
        {
            *t = Token::Wildcard;
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(words: &[&str]) -> Vec<LineToken> {
        words
            .iter()
            .map(|w| LineToken {
                text: w.to_string(),
                variable: false,
            })
            .collect()
    }

    #[test]
    fn ids_are_fnv1a_of_the_text() {
        // FNV-1a 64 of the empty string is its offset basis.
        assert_eq!(PatternId::of_text("").0, 0xcbf29ce484222325);
        assert_eq!(PatternId::of_text("a").0, 0xaf63dc4c8601ec8c);
        let id = PatternId::of_text("user <*> logged in");
        assert_eq!(id.to_string().parse::<PatternId>(), Ok(id));
        assert_ne!(
            PatternId::of_text_salted("x", 1),
            PatternId::of_text_salted("x", 2)
        );
    }

    #[test]
    fn similarity_counts_equal_literals_and_weighs_wildcards() {
        let mut template = from_line(&line(&["user", "bob", "logged", "in"]));
        assert_eq!(
            similarity(&template, &line(&["user", "ann", "logged", "in"]), 0.0).0,
            0.75
        );
        assert!(generalise(
            &mut template,
            &line(&["user", "ann", "logged", "in"])
        ));
        assert_eq!(render(&template), "user <*> logged in");
        assert_eq!(
            similarity(&template, &line(&["user", "eve", "logged", "in"]), 0.0),
            (0.75, 1)
        );
        assert_eq!(
            similarity(&template, &line(&["user", "eve", "logged", "in"]), 1.0).0,
            1.0
        );
        assert!(!generalise(
            &mut template,
            &line(&["user", "eve", "logged", "in"])
        ));
    }
}
