//! The miner's settings, with defaults chosen by measurement on ten loghub
//! systems (one configuration for all of them; see the README), and their
//! validation.

use serde::{Deserialize, Serialize};

use super::mask::MaskConfig;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("similarity_threshold must be in [0, 1], got {0}")]
    SimilarityThreshold(f64),
    #[error("wildcard_weight must be in [0, 1], got {0}")]
    WildcardWeight(f64),
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("{name} must be at most {max}, got {value}")]
    TooLarge {
        name: &'static str,
        max: usize,
        value: usize,
    },
}

/// Bounds on the per-line limits, so a line's masked text always fits the
/// tokenizer's 32-bit offsets (4096 x 64 KiB = 256 MiB).
pub const MAX_LINE_TOKENS: usize = 4096;
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Bounds the tree's recursion; Drain uses 2 to 4 levels.
pub const MAX_TREE_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// A line joins the most similar template if at least this share of
    /// its tokens agree.
    pub similarity_threshold: f64,
    /// How much a `<*>` position counts as agreeing.
    pub wildcard_weight: f64,
    /// After this many lines, a template's plain-word literals are
    /// frozen: a line that differs in one is another template (0: never).
    pub freeze_after: u64,
    /// When a template generalises, merge into it the templates of its
    /// tree leaf that it now covers.
    pub merge_subsumed: bool,
    /// Prefix-tree levels below the token-count level.
    pub tree_depth: usize,
    /// Children per tree node before new tokens share the `<*>` branch.
    pub max_children: usize,
    /// Templates kept; learning one more evicts the least recently used.
    pub max_templates: usize,
    /// A run of identical variable tokens counts as one (lists of ids).
    pub fold_repeats: bool,
    /// Tokens per line; the rest of a longer line folds into `<LONG>`.
    pub max_line_tokens: usize,
    /// Bytes per token; a longer token becomes `<LONG>`.
    pub max_token_bytes: usize,
    pub masking: MaskConfig,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            similarity_threshold: 0.7,
            wildcard_weight: 1.0,
            freeze_after: 3,
            merge_subsumed: true,
            tree_depth: 2,
            max_children: 100,
            max_templates: 10_000,
            fold_repeats: true,
            max_line_tokens: 256,
            max_token_bytes: 1024,
            masking: MaskConfig::default(),
        }
    }
}

impl MinerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.similarity_threshold) {
            return Err(ConfigError::SimilarityThreshold(self.similarity_threshold));
        }
        if !(0.0..=1.0).contains(&self.wildcard_weight) {
            return Err(ConfigError::WildcardWeight(self.wildcard_weight));
        }
        for (name, value) in [
            ("max_children", self.max_children),
            ("max_templates", self.max_templates),
            ("max_line_tokens", self.max_line_tokens),
            ("max_token_bytes", self.max_token_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        for (name, max, value) in [
            ("max_line_tokens", MAX_LINE_TOKENS, self.max_line_tokens),
            ("max_token_bytes", MAX_TOKEN_BYTES, self.max_token_bytes),
            ("tree_depth", MAX_TREE_DEPTH, self.tree_depth),
        ] {
            if value > max {
                return Err(ConfigError::TooLarge { name, max, value });
            }
        }
        Ok(())
    }
}
