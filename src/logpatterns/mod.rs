//! Log-pattern mining: learns the templates of log lines online (after
//! Drain: He, Zhu, Zheng, Lyu, ICWS 2017) so a connector can count lines
//! per template, stamp each record with its pattern id, and notice a kind
//! of line never seen before. Pure: no async, no I/O, no clock.
//!
//! - `mask`: typed placeholders for numbers, hex, IPs, UUIDs, durations,
//!   paths; `context`: the dates and units that depend on their neighbours;
//! - `tokenize`: a line into bounded, masked tokens;
//! - `template`: template tokens, similarity, generalisation, pattern ids;
//! - `tree`: the fixed-depth prefix tree that narrows the search;
//! - `miner`: `Miner::observe`, the template cap and eviction;
//! - `state`: saving and restoring a miner as JSON bytes;
//! - `config`: settings, defaults and validation.

pub mod config;
pub mod context;
pub mod mask;
pub mod miner;
pub mod state;
pub mod template;
pub mod tokenize;
pub mod tree;

pub use config::{ConfigError, MinerConfig};
pub use miner::{Match, Miner, MinerStats};
pub use state::StateError;
pub use template::PatternId;

#[cfg(test)]
mod tests;
