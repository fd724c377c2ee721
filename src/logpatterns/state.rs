//! Saving and restoring a miner, so a restart keeps its templates and ids:
//! `Miner::save` writes JSON bytes (readable, diffable, and small next to
//! the logs it describes); `Miner::restore` reads them back and rebuilds the
//! tree and indexes, continuing exactly where the saved miner stopped.
//!
//! Restoring with another configuration keeps the templates: a smaller
//! `max_templates` evicts the least recently used down to the cap, and a
//! different tree shape refiles every template from its own tokens.

use serde::{Deserialize, Serialize};

use super::config::{ConfigError, MinerConfig};
use super::miner::{Cluster, Miner};
use super::template::{self, Literal, PatternId, Token};
use super::tree::Route;

const FORMAT: &str = "sidewatch.logpatterns.v1";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("miner state is not valid JSON of the expected shape: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("miner state has format {found:?}, expected {FORMAT:?}")]
    Format { found: String },
    #[error("miner state holds an invalid template: {0}")]
    Template(String),
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
}

#[derive(Serialize, Deserialize)]
struct State {
    format: String,
    config: MinerConfig,
    lines: u64,
    learned: u64,
    evicted: u64,
    merged: u64,
    /// Oldest first: the order the tree's leaves list them in.
    templates: Vec<TemplateState>,
}

#[derive(Serialize, Deserialize)]
struct TemplateState {
    id: String,
    /// Literal text, or `null` for a `<*>` position.
    tokens: Vec<Option<String>>,
    route_length: usize,
    route: Vec<String>,
    count: u64,
    first_seen: u64,
    last_seen: u64,
    aliases: Vec<String>,
}

impl Miner {
    /// The miner's full state as JSON bytes.
    pub fn save(&self) -> Vec<u8> {
        let mut clusters: Vec<&Cluster> = self.clusters.iter().flatten().collect();
        clusters.sort_by_key(|c| c.first_seen);
        let state = State {
            format: FORMAT.to_string(),
            config: self.config.clone(),
            lines: self.lines,
            learned: self.learned,
            evicted: self.evicted,
            merged: self.merged,
            templates: clusters
                .into_iter()
                .map(|c| TemplateState {
                    id: c.id.to_string(),
                    tokens: c
                        .tokens
                        .iter()
                        .map(|t| match t {
                            Token::Literal(literal) => Some(literal.text().to_string()),
                            Token::Wildcard => None,
                        })
                        .collect(),
                    route_length: c.route.length,
                    route: c.route.keys.iter().map(|k| k.to_string()).collect(),
                    count: c.count,
                    first_seen: c.first_seen,
                    last_seen: c.last_seen,
                    aliases: c.aliases.iter().map(|a| a.to_string()).collect(),
                })
                .collect(),
        };
        serde_json::to_vec(&state).expect("the state is plain data")
    }

    /// A miner continuing from saved bytes, with the saved configuration.
    pub fn restore(bytes: &[u8]) -> Result<Miner, StateError> {
        Self::restore_inner(bytes, None)
    }

    /// A miner continuing from saved bytes, with a new configuration.
    pub fn restore_with(config: MinerConfig, bytes: &[u8]) -> Result<Miner, StateError> {
        Self::restore_inner(bytes, Some(config))
    }

    fn restore_inner(bytes: &[u8], config: Option<MinerConfig>) -> Result<Miner, StateError> {
        let state: State = serde_json::from_slice(bytes)?;
        if state.format != FORMAT {
            return Err(StateError::Format {
                found: state.format,
            });
        }
        state.config.validate()?;
        let config = config.unwrap_or_else(|| state.config.clone());
        config.validate()?;
        let refile = config.tree_depth != state.config.tree_depth
            || config.max_children != state.config.max_children;
        let mut clusters = Vec::with_capacity(state.templates.len());
        let mut ids = std::collections::HashSet::new();
        for saved in state.templates {
            let cluster = cluster_from(saved, &config, refile)?;
            for id in std::iter::once(&cluster.id).chain(&cluster.aliases) {
                if !ids.insert(*id) {
                    return Err(StateError::Template(format!("id {id} appears twice")));
                }
            }
            clusters.push(cluster);
        }
        let mut miner = Miner::from_parts(
            config,
            clusters,
            state.lines,
            state.learned,
            state.evicted,
            state.merged,
        );
        miner.evict_down_to_cap();
        Ok(miner)
    }
}

fn parse_id(text: &str) -> Result<PatternId, StateError> {
    text.parse()
        .map_err(|_| StateError::Template(format!("{text:?} is not a pattern id")))
}

fn cluster_from(
    saved: TemplateState,
    config: &MinerConfig,
    refile: bool,
) -> Result<Cluster, StateError> {
    let id = parse_id(&saved.id)?;
    let tokens: Vec<Token> = saved
        .tokens
        .into_iter()
        .map(|t| match t {
            Some(text) if !text.is_empty() && !text.contains(|c: char| c.is_ascii_whitespace()) => {
                Ok(Token::Literal(Literal::new(&text)))
            }
            Some(text) => Err(StateError::Template(format!(
                "template {id} has the token {text:?}"
            ))),
            None => Ok(Token::Wildcard),
        })
        .collect::<Result<_, _>>()?;
    let route = if refile {
        Route::of_template(&tokens, config.tree_depth)
    } else {
        Route {
            length: saved.route_length,
            keys: saved
                .route
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
        }
    };
    if route.length != tokens.len() || route.keys.len() > tokens.len() {
        return Err(StateError::Template(format!(
            "template {id} is filed under a route that does not fit it"
        )));
    }
    if saved.first_seen > saved.last_seen {
        return Err(StateError::Template(format!(
            "template {id} was last seen before it was first seen"
        )));
    }
    let aliases = saved
        .aliases
        .iter()
        .map(|a| parse_id(a))
        .collect::<Result<_, _>>()?;
    Ok(Cluster {
        id,
        text: template::render(&tokens),
        tokens,
        route,
        count: saved.count,
        first_seen: saved.first_seen,
        last_seen: saved.last_seen,
        aliases,
    })
}
