//! Splitting a line into masked tokens: whitespace separates tokens, each
//! token is masked (see `mask`), and the line is bounded in tokens and in
//! bytes per token so one huge line cannot make a huge template.

use super::context::{is_date_name, unit_suffix};
use super::mask::{LONG_PLACEHOLDER, MaskConfig, VarClass, looks_variable, mask_token};
use super::template::token_hash;

/// A line after masking: the masked text of every token, one after the
/// other in one buffer, and where each token starts and ends. The miner
/// keeps one and refills it for every line, so tokenizing allocates
/// nothing once the buffers have grown to the longest line.
#[derive(Debug, Default, Clone)]
pub struct Line {
    text: String,
    tokens: Vec<Span>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
    hash: u64,
    variable: bool,
}

/// One token of a line after masking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineToken<'a> {
    pub text: &'a str,
    /// Whether it holds a digit or a placeholder: such a token is likely a
    /// variable, so the prefix tree routes it by `<*>` and it never freezes.
    pub variable: bool,
    /// `template::token_hash` of the text.
    pub hash: u64,
}

impl Line {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<LineToken<'_>> {
        self.tokens.get(i).map(|span| self.token(span))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = LineToken<'_>> {
        self.tokens.iter().map(|span| self.token(span))
    }

    fn token(&self, span: &Span) -> LineToken<'_> {
        LineToken {
            text: &self.text[span.start as usize..span.end as usize],
            variable: span.variable,
            hash: span.hash,
        }
    }

    /// Heap bytes of the buffers.
    pub fn memory_bytes(&self) -> usize {
        self.text.capacity() + self.tokens.capacity() * std::mem::size_of::<Span>()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.tokens.clear();
    }

    /// Ends the token whose text was appended since `start`, or drops it
    /// when it repeats the token before it and `fold` says so.
    fn finish(&mut self, start: usize, variable: bool, fold: bool) {
        let end = self.text.len();
        let hash = token_hash(&self.text[start..end]);
        if fold
            && variable
            && let Some(last) = self.tokens.last()
            && last.variable
            && last.hash == hash
            && self.text[last.start as usize..last.end as usize] == self.text[start..end]
        {
            self.text.truncate(start);
            return;
        }
        self.tokens.push(Span {
            start: start as u32,
            end: end as u32,
            hash,
            variable,
        });
    }

    fn last_is(&self, text: &str) -> bool {
        self.tokens
            .last()
            .is_some_and(|last| &self.text[last.start as usize..last.end as usize] == text)
    }
}

/// Limits and folding applied while tokenizing.
#[derive(Debug, Clone, Copy)]
pub struct TokenLimits {
    pub max_tokens: usize,
    pub max_token_bytes: usize,
    /// Fold a run of identical variable tokens into one, so a list of
    /// values (`delete blk_1 blk_2 blk_3`) has the shape of a single one.
    pub fold_repeats: bool,
}

/// Tokenizes and masks `line` into `out`. Tokens past `max_tokens` are
/// folded into one last `<LONG>` token, so overlong lines keep a bounded,
/// stable shape.
pub fn tokenize_into(line: &str, mask: &MaskConfig, limits: TokenLimits, out: &mut Line) {
    out.clear();
    let max_tokens = limits.max_tokens.max(1);
    let mut raws = line.split_ascii_whitespace().peekable();
    let mut previous: Option<&str> = None;
    while let Some(raw) = raws.next() {
        let next = raws.peek().copied();
        if out.len() + 1 == max_tokens && next.is_some() {
            let start = out.text.len();
            out.text.push_str(LONG_PLACEHOLDER);
            out.finish(start, true, false);
            break;
        }
        let start = out.text.len();
        let variable = if raw.len() > limits.max_token_bytes {
            out.text.push_str(LONG_PLACEHOLDER);
            true
        } else if mask.dates && is_date_name(raw) && date_context(previous, next) {
            out.text.push_str(VarClass::Date.placeholder());
            true
        } else if let Some(suffix) = (mask.units && out.last_is(VarClass::Number.placeholder()))
            .then(|| unit_suffix(raw))
            .flatten()
        {
            out.text.push_str(VarClass::Unit.placeholder());
            out.text.push_str(suffix);
            true
        } else {
            mask_token(raw, mask, &mut out.text) || looks_variable(raw)
        };
        out.finish(start, variable, limits.fold_repeats);
        previous = Some(raw);
    }
}

/// `tokenize_into` a new `Line`.
pub fn tokenize(line: &str, mask: &MaskConfig, limits: TokenLimits) -> Line {
    let mut out = Line::default();
    tokenize_into(line, mask, limits, &mut out);
    out
}

/// A date name is a date when a neighbour is a number or another name.
fn date_context(previous: Option<&str>, next: Option<&str>) -> bool {
    let dated = |t: &str| t.starts_with(|c: char| c.is_ascii_digit()) || is_date_name(t);
    next.is_some_and(dated) || previous.is_some_and(dated)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TokenLimits = TokenLimits {
        max_tokens: 8,
        max_token_bytes: 16,
        fold_repeats: true,
    };

    fn texts(line: &str) -> Vec<String> {
        tokenize(line, &MaskConfig::default(), LIMITS)
            .iter()
            .map(|t| t.text.to_string())
            .collect()
    }

    #[test]
    fn splits_on_any_whitespace_and_masks_each_token() {
        assert_eq!(
            texts("  connect\tfrom 10.0.0.1 \n took 5ms "),
            ["connect", "from", "<IP>", "took", "<DURATION>"]
        );
    }

    #[test]
    fn bounds_tokens_per_line_and_bytes_per_token() {
        assert_eq!(
            texts("a b c d e f g h i j k"),
            ["a", "b", "c", "d", "e", "f", "g", LONG_PLACEHOLDER]
        );
        assert_eq!(
            texts("x aaaaaaaaaaaaaaaaaaaaaaa y"),
            ["x", LONG_PLACEHOLDER, "y"]
        );
    }

    #[test]
    fn marks_tokens_with_digits_as_variable() {
        let tokens = tokenize("user admin2 root", &MaskConfig::none(), LIMITS);
        let variable: Vec<bool> = tokens.iter().map(|t| t.variable).collect();
        assert_eq!(variable, [false, true, false]);
    }
}
