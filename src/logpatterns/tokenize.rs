//! Splitting a line into masked tokens: whitespace separates tokens, each
//! token is masked (see `mask`), and the line is bounded in tokens and in
//! bytes per token so one huge line cannot make a huge template.

use super::mask::{
    LONG_PLACEHOLDER, MaskConfig, VarClass, is_date_name, looks_variable, mask_token, unit_suffix,
};

/// One token of a line after masking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineToken {
    pub text: String,
    /// Whether masking replaced a part of it, or it holds a digit: such a
    /// token is likely a variable, so the prefix tree routes it by `<*>`.
    pub variable: bool,
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

/// Tokenizes and masks `line`. Tokens past `max_tokens` are folded into one
/// last `<LONG>` token, so overlong lines keep a bounded, stable shape.
pub fn tokenize(line: &str, mask: &MaskConfig, limits: TokenLimits) -> Vec<LineToken> {
    let max_tokens = limits.max_tokens.max(1);
    let raws: Vec<&str> = line.split_ascii_whitespace().collect();
    let mut tokens: Vec<LineToken> = Vec::new();
    let mut scratch = String::new();
    for (i, &raw) in raws.iter().enumerate() {
        let token = if raw.len() > limits.max_token_bytes {
            placeholder(LONG_PLACEHOLDER, "")
        } else if mask.dates && is_date_name(raw) && date_context(&raws, i) {
            placeholder(VarClass::Date.placeholder(), "")
        } else if let Some(suffix) = unit_suffix(raw).filter(|_| {
            mask.units
                && tokens
                    .last()
                    .is_some_and(|t| t.text == VarClass::Number.placeholder())
        }) {
            placeholder(VarClass::Unit.placeholder(), suffix)
        } else {
            mask_token(raw, mask, &mut scratch);
            LineToken {
                variable: looks_variable(&scratch),
                text: scratch.clone(),
            }
        };
        if limits.fold_repeats
            && token.variable
            && tokens.last().is_some_and(|last| last.text == token.text)
        {
            continue;
        }
        if tokens.len() + 1 == max_tokens && i + 1 < raws.len() {
            tokens.push(placeholder(LONG_PLACEHOLDER, ""));
            break;
        }
        tokens.push(token);
    }
    tokens
}

fn placeholder(text: &str, suffix: &str) -> LineToken {
    LineToken {
        text: format!("{text}{suffix}"),
        variable: true,
    }
}

/// A date name is a date when a neighbour is a number or another name.
fn date_context(raws: &[&str], i: usize) -> bool {
    let dated = |j: usize| {
        raws.get(j)
            .is_some_and(|t| t.starts_with(|c: char| c.is_ascii_digit()) || is_date_name(t))
    };
    dated(i + 1) || (i > 0 && dated(i - 1))
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
            .into_iter()
            .map(|t| t.text)
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
