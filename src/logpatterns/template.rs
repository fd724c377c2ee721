//! A template: the tokens of a pattern, each a literal (possibly holding
//! masked placeholders such as `<NUM>`) or the wildcard `<*>` that a
//! position becomes once lines disagree there. Rendering, similarity to a
//! line and generalisation live here; the pattern id is derived from the
//! rendered text.

use std::hash::Hasher;

use super::mask::looks_variable;
use super::tokenize::{Line, LineToken};

pub const WILDCARD: &str = "<*>";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    Literal(Literal),
    Wildcard,
}

impl Token {
    pub fn text(&self) -> &str {
        match self {
            Token::Literal(literal) => literal.text(),
            Token::Wildcard => WILDCARD,
        }
    }
}

/// A literal token with what comparing it needs at hand: the hash of its
/// text (most tokens that differ are told apart without reading them) and
/// whether it is a plain word (which can freeze).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Literal {
    text: Box<str>,
    hash: u64,
    plain: bool,
}

impl Literal {
    pub fn new(text: &str) -> Literal {
        Literal {
            text: text.into(),
            hash: token_hash(text),
            plain: is_plain_word(text),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_plain_word(&self) -> bool {
        self.plain
    }

    pub fn matches(&self, token: &LineToken) -> bool {
        self.hash == token.hash && *self.text == *token.text
    }
}

/// The hash tokens are compared by before their text.
pub fn token_hash(text: &str) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(text.as_bytes());
    hasher.finish()
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

pub fn from_line(line: &Line) -> Vec<Token> {
    line.iter()
        .map(|t| Token::Literal(Literal::new(t.text)))
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

/// How a line compares with a template of the same length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// As in Drain: the share of positions whose literal equals the
    /// line's token, a wildcard counting `wildcard_weight` (0 in Drain,
    /// which makes a template that has generalised harder to match).
    pub similarity: f64,
    /// Wildcards in the template, to break ties towards the more general.
    pub wildcards: usize,
    /// The line differs from one of the template's plain-word literals (no
    /// digit, no placeholder): `tty=NODEVssh` against `tty=:0` does, while
    /// `port=<NUM>` against `port=<HEX>` does not.
    pub differs_in_a_word: bool,
}

/// Compares a line with a template of the same length; `None` as soon as
/// the similarity can no longer reach `threshold`.
pub fn compare(
    template: &[Token],
    line: &Line,
    wildcard_weight: f64,
    threshold: f64,
) -> Option<Comparison> {
    debug_assert_eq!(template.len(), line.len());
    if template.is_empty() {
        return Some(Comparison {
            similarity: 1.0,
            wildcards: 0,
            differs_in_a_word: false,
        });
    }
    let n = template.len() as f64;
    // A margin below the threshold keeps float rounding from pruning a
    // line that would just reach it.
    let reachable = threshold * n - 1e-9;
    let mut same = 0.0;
    let mut wildcards = 0;
    let mut differs_in_a_word = false;
    for (i, (t, l)) in template.iter().zip(line.iter()).enumerate() {
        match t {
            Token::Wildcard => {
                wildcards += 1;
                same += wildcard_weight;
            }
            Token::Literal(literal) if literal.matches(&l) => same += 1.0,
            Token::Literal(literal) => {
                differs_in_a_word |= literal.is_plain_word();
                if same + ((template.len() - i - 1) as f64) < reachable {
                    return None;
                }
            }
        }
    }
    Some(Comparison {
        similarity: same / n,
        wildcards,
        differs_in_a_word,
    })
}

/// A token with no digit and no masked placeholder.
pub fn is_plain_word(text: &str) -> bool {
    !looks_variable(text)
}

/// Whether `general` covers `specific`: same length, and at each position
/// the same literal or a wildcard in `general`.
pub fn covers(general: &[Token], specific: &[Token]) -> bool {
    general.len() == specific.len()
        && general
            .iter()
            .zip(specific)
            .all(|(g, s)| matches!(g, Token::Wildcard) || g == s)
}

/// Turns every position where the line disagrees into a wildcard. Returns
/// whether the template changed.
pub fn generalise(template: &mut [Token], line: &Line) -> bool {
    let mut changed = false;
    for (t, l) in template.iter_mut().zip(line.iter()) {
        if let Token::Literal(literal) = t
            && !literal.matches(&l)
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

    fn line(words: &[&str]) -> Line {
        let limits = super::super::tokenize::TokenLimits {
            max_tokens: 64,
            max_token_bytes: 64,
            fold_repeats: false,
        };
        super::super::tokenize::tokenize(
            &words.join(" "),
            &super::super::mask::MaskConfig::none(),
            limits,
        )
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
        let ann = line(&["user", "ann", "logged", "in"]);
        let c = compare(&template, &ann, 0.0, 0.5).expect("reaches 0.5");
        assert_eq!(
            (c.similarity, c.wildcards, c.differs_in_a_word),
            (0.75, 0, true)
        );
        assert!(generalise(&mut template, &ann));
        assert_eq!(render(&template), "user <*> logged in");
        let eve = line(&["user", "eve", "logged", "in"]);
        let c = compare(&template, &eve, 0.0, 0.5).expect("reaches 0.5");
        assert_eq!(
            (c.similarity, c.wildcards, c.differs_in_a_word),
            (0.75, 1, false)
        );
        assert_eq!(
            compare(&template, &eve, 1.0, 0.5).map(|c| c.similarity),
            Some(1.0)
        );
        assert!(!generalise(&mut template, &eve));
    }

    #[test]
    fn a_template_covers_those_it_equals_or_generalises() {
        let mut general = from_line(&line(&["for", "root", "from", "x"]));
        general[1] = Token::Wildcard;
        assert!(covers(
            &general,
            &from_line(&line(&["for", "root", "from", "x"]))
        ));
        assert!(covers(&general, &general.clone()));
        assert!(!covers(
            &general,
            &from_line(&line(&["for", "root", "from", "y"]))
        ));
        assert!(!covers(
            &general,
            &from_line(&line(&["for", "root", "from"]))
        ));
        assert!(!covers(
            &from_line(&line(&["for", "root", "from", "x"])),
            &general
        ));
    }

    #[test]
    fn comparing_stops_once_the_threshold_is_out_of_reach() {
        let template = from_line(&line(&["a", "b", "c", "d"]));
        assert_eq!(
            compare(&template, &line(&["x", "y", "c", "d"]), 0.0, 0.75),
            None
        );
        let c = compare(&template, &line(&["x", "b", "c", "d"]), 0.0, 0.75);
        assert_eq!(c.map(|c| c.similarity), Some(0.75));
        let numbers = from_line(&line(&["port", "<NUM>"]));
        let c = compare(&numbers, &line(&["port", "<HEX>"]), 0.0, 0.5).expect("reaches");
        assert!(!c.differs_in_a_word, "placeholders are not words");
    }
}
