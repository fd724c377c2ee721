//! The online miner: `observe(line)` masks and tokenizes the line, finds
//! the most similar template among the prefix tree's candidates, and
//! either generalises it or learns a new one; it returns the pattern id the
//! line belongs to. Deterministic: the same lines in the same order give
//! the same ids, and a restored miner continues exactly where it stopped.
//!
//! Matching, after Drain: a candidate of the same length matches when the
//! share of equal positions (a `<*>` counting as equal) reaches
//! `similarity_threshold`. One addition: once a template has matched
//! `freeze_after` lines, its plain words (no digit, no placeholder) are
//! frozen, and a line that differs in one of them is another template
//! (`Starting installer initialization.` / `... finalization.`).
//!
//! Ids: a template's id is the hash of its text when first learned. When it
//! generalises (a token becomes `<*>`), it keeps that id, and the hash of
//! the new text is recorded as an alias of it, so a lookup by either text's
//! hash finds the pattern. A new template whose hash is already taken is
//! salted until free, so two live templates never share an id. When a
//! template generalises so that it covers other templates of its tree leaf
//! (a frozen word that turned out to vary: `for root` / `for <*>`), they
//! merge into it: the merged template keeps the oldest id, and the other
//! ids become its aliases (`Match::merged` names them, once).
//!
//! Memory: at most `max_templates` templates; learning one more evicts the
//! least recently matched, and the eviction is counted.

use std::collections::{BTreeSet, HashMap};

use super::config::{ConfigError, MinerConfig};
use super::template::{self, PatternId, Token};
use super::tokenize::{Line, TokenLimits, tokenize_into};
use super::tree::{Route, Tree, TreeShape};

/// What `observe` learned about one line.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<'a> {
    pub pattern_id: PatternId,
    /// The template as it is after this line (with `<*>` and placeholders).
    pub template: &'a str,
    /// This line created the template.
    pub is_new: bool,
    /// This line made an existing template more general.
    pub generalised: bool,
    /// The template evicted to make room for a new one, if any.
    pub evicted: Option<PatternId>,
    /// Lines this template has matched, this one included.
    pub count: u64,
    /// Templates this line's template absorbed as it generalised (it now
    /// covers them): their ids are aliases of `pattern_id` from now on.
    pub merged: &'a [PatternId],
}

#[derive(Debug, Clone)]
pub(super) struct Cluster {
    pub id: PatternId,
    pub tokens: Vec<Token>,
    pub text: String,
    pub route: Route,
    pub count: u64,
    /// Logical time (lines observed) of the last match, for LRU eviction.
    pub last_seen: u64,
    pub first_seen: u64,
    /// The other ids that resolve to this template: hashes of the texts it
    /// had after generalising, and the ids of templates merged into it.
    pub aliases: Vec<PatternId>,
}

/// Counters, for self-telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinerStats {
    pub lines: u64,
    pub templates: usize,
    pub learned: u64,
    pub evicted: u64,
    /// Templates merged into a more general one.
    pub merged: u64,
}

#[derive(Debug)]
pub struct Miner {
    pub(super) config: MinerConfig,
    /// Slots indexed by cluster key; `None` is a free slot.
    pub(super) clusters: Vec<Option<Cluster>>,
    free: Vec<u32>,
    tree: Tree,
    /// Every live id and alias, to the cluster key holding it.
    ids: HashMap<PatternId, u32>,
    /// (last seen, cluster key): the first entry is the least recently used.
    lru: BTreeSet<(u64, u32)>,
    pub(super) lines: u64,
    pub(super) learned: u64,
    pub(super) evicted: u64,
    pub(super) merged: u64,
    /// The tokens of the line being observed, kept to reuse its buffers.
    line: Line,
    /// Ids merged away by the line being observed.
    merged_now: Vec<PatternId>,
}

impl Default for Miner {
    fn default() -> Self {
        Miner::with_valid(MinerConfig::default())
    }
}

impl Miner {
    /// A miner with no templates yet; the configuration is validated.
    pub fn new(config: MinerConfig) -> Result<Miner, ConfigError> {
        config.validate()?;
        Ok(Miner::with_valid(config))
    }

    fn with_valid(config: MinerConfig) -> Miner {
        Miner {
            config,
            clusters: Vec::new(),
            free: Vec::new(),
            tree: Tree::default(),
            ids: HashMap::new(),
            lru: BTreeSet::new(),
            lines: 0,
            learned: 0,
            evicted: 0,
            merged: 0,
            line: Line::default(),
            merged_now: Vec::new(),
        }
    }

    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    fn shape(&self) -> TreeShape {
        TreeShape {
            depth: self.config.tree_depth,
            max_children: self.config.max_children,
        }
    }

    pub(super) fn limits(&self) -> TokenLimits {
        TokenLimits {
            max_tokens: self.config.max_line_tokens,
            max_token_bytes: self.config.max_token_bytes,
            fold_repeats: self.config.fold_repeats,
        }
    }

    /// Learns from one line and says which pattern it belongs to.
    pub fn observe(&mut self, line: &str) -> Match<'_> {
        self.lines += 1;
        let now = self.lines;
        self.merged_now.clear();
        let mut tokens = std::mem::take(&mut self.line);
        tokenize_into(line, &self.config.masking, self.limits(), &mut tokens);
        let (key, generalised, evicted) = match self.best_match(&tokens) {
            Some(key) => (key, self.absorb(key, &tokens, now), None),
            None => {
                let (key, evicted) = self.learn(&tokens, now);
                (key, false, Some(evicted))
            }
        };
        self.line = tokens;
        let cluster = self.clusters[key as usize].as_ref().expect("live");
        Match {
            pattern_id: cluster.id,
            template: &cluster.text,
            is_new: evicted.is_some(),
            generalised,
            evicted: evicted.flatten(),
            count: cluster.count,
            merged: &self.merged_now,
        }
    }

    /// Counts a line into a template, generalising it where they differ;
    /// returns whether it generalised.
    fn absorb(&mut self, key: u32, tokens: &Line, now: u64) -> bool {
        let cluster = self.clusters[key as usize].as_mut().expect("live");
        let generalised = template::generalise(&mut cluster.tokens, tokens);
        self.lru.remove(&(cluster.last_seen, key));
        self.lru.insert((now, key));
        cluster.count += 1;
        cluster.last_seen = now;
        if generalised {
            cluster.text = template::render(&cluster.tokens);
            let alias = PatternId::of_text(&cluster.text);
            if let std::collections::hash_map::Entry::Vacant(entry) = self.ids.entry(alias) {
                entry.insert(key);
                cluster.aliases.push(alias);
            }
            if self.config.merge_subsumed {
                self.merge_subsumed(key);
            }
        }
        generalised
    }

    /// Merges into the template at `key` every template of its leaf that
    /// it now covers (each of their positions equal, or `<*>` in it): they
    /// were the same pattern, split before a position showed it varies.
    /// The merged template keeps the oldest id; the others become aliases.
    fn merge_subsumed(&mut self, key: u32) {
        let general = self.clusters[key as usize].as_ref().expect("live");
        let covered: Vec<u32> = self
            .tree
            .leaf(&general.route)
            .iter()
            .copied()
            .filter(|&other| {
                other != key
                    && template::covers(
                        &general.tokens,
                        &self.clusters[other as usize].as_ref().expect("live").tokens,
                    )
            })
            .collect();
        for other in covered {
            let absorbed = self.clusters[other as usize].take().expect("live");
            self.tree.remove(&absorbed.route, other);
            self.lru.remove(&(absorbed.last_seen, other));
            self.free.push(other);
            self.merged += 1;
            let survivor = self.clusters[key as usize].as_mut().expect("live");
            let mut gone = absorbed.id;
            if absorbed.first_seen < survivor.first_seen {
                gone = std::mem::replace(&mut survivor.id, absorbed.id);
                survivor.first_seen = absorbed.first_seen;
            }
            survivor.aliases.push(gone);
            survivor.aliases.extend(&absorbed.aliases);
            survivor.count += absorbed.count;
            for id in std::iter::once(absorbed.id).chain(absorbed.aliases) {
                self.ids.insert(id, key);
            }
            self.merged_now.push(gone);
        }
    }

    /// The candidate with the highest similarity at or above the
    /// threshold; ties go to the more general, then the older template.
    fn best_match(&self, tokens: &Line) -> Option<u32> {
        let threshold = self.config.similarity_threshold;
        let mut best: Option<(f64, usize, u64, u32)> = None;
        for &key in self.tree.candidates(tokens, self.shape()) {
            let cluster = self.clusters[key as usize].as_ref().expect("live");
            let Some(comparison) = template::compare(
                &cluster.tokens,
                tokens,
                self.config.wildcard_weight,
                threshold,
            ) else {
                continue;
            };
            let (sim, wildcards) = (comparison.similarity, comparison.wildcards);
            if sim < threshold {
                continue;
            }
            if self.config.freeze_after > 0
                && cluster.count >= self.config.freeze_after
                && comparison.differs_in_a_word
            {
                continue;
            }
            let better = best.is_none_or(|(s, w, first, _)| {
                (sim, wildcards, std::cmp::Reverse(cluster.first_seen))
                    > (s, w, std::cmp::Reverse(first))
            });
            if better {
                best = Some((sim, wildcards, cluster.first_seen, key));
            }
        }
        best.map(|(_, _, _, key)| key)
    }

    /// Learns a new template from `tokens`: its cluster key, and the
    /// template evicted to make room for it, if any.
    fn learn(&mut self, tokens: &Line, now: u64) -> (u32, Option<PatternId>) {
        let evicted = if self.live() >= self.config.max_templates.max(1) {
            self.evict_lru()
        } else {
            None
        };
        let route = self.tree.route_for(tokens, self.shape());
        let template_tokens = template::from_line(tokens);
        let text = template::render(&template_tokens);
        let id = self.free_id(&text);
        let key = match self.free.pop() {
            Some(key) => key,
            None => {
                self.clusters.push(None);
                (self.clusters.len() - 1) as u32
            }
        };
        self.tree.insert(&route, key);
        self.ids.insert(id, key);
        self.lru.insert((now, key));
        self.learned += 1;
        self.clusters[key as usize] = Some(Cluster {
            id,
            tokens: template_tokens,
            text,
            route,
            count: 1,
            last_seen: now,
            first_seen: now,
            aliases: Vec::new(),
        });
        (key, evicted)
    }

    fn free_id(&self, text: &str) -> PatternId {
        let mut id = PatternId::of_text(text);
        let mut salt = 0;
        while self.ids.contains_key(&id) {
            salt += 1;
            id = PatternId::of_text_salted(text, salt);
        }
        id
    }

    fn evict_lru(&mut self) -> Option<PatternId> {
        let (_, key) = self.lru.pop_first()?;
        let cluster = self.clusters[key as usize].take()?;
        self.tree.remove(&cluster.route, key);
        self.ids.remove(&cluster.id);
        for alias in &cluster.aliases {
            self.ids.remove(alias);
        }
        self.free.push(key);
        self.evicted += 1;
        Some(cluster.id)
    }

    /// Evicts least recently used templates until within the cap.
    pub(super) fn evict_down_to_cap(&mut self) {
        while self.live() > self.config.max_templates.max(1) {
            self.evict_lru();
        }
    }

    fn live(&self) -> usize {
        self.clusters.len() - self.free.len()
    }

    /// The template text of a pattern, by its id or any of its aliases.
    pub fn template(&self, id: PatternId) -> Option<&str> {
        let key = *self.ids.get(&id)?;
        self.clusters[key as usize]
            .as_ref()
            .map(|c| c.text.as_str())
    }

    /// The id an alias (or id) resolves to.
    pub fn resolve(&self, id: PatternId) -> Option<PatternId> {
        let key = *self.ids.get(&id)?;
        self.clusters[key as usize].as_ref().map(|c| c.id)
    }

    /// Live templates: id, text and lines matched, oldest first.
    pub fn templates(&self) -> impl Iterator<Item = (PatternId, &str, u64)> {
        let mut live: Vec<&Cluster> = self.clusters.iter().flatten().collect();
        live.sort_by_key(|c| c.first_seen);
        live.into_iter().map(|c| (c.id, c.text.as_str(), c.count))
    }

    pub fn stats(&self) -> MinerStats {
        MinerStats {
            lines: self.lines,
            templates: self.live(),
            learned: self.learned,
            evicted: self.evicted,
            merged: self.merged,
        }
    }

    /// An estimate of the heap bytes the miner holds: templates, tree,
    /// indexes and buffers, by their sizes and capacities (the allocator's
    /// own overhead comes on top). O(templates + tree nodes): for
    /// telemetry, not for every line.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let clusters: usize = self
            .clusters
            .iter()
            .flatten()
            .map(|c| {
                c.tokens.capacity() * size_of::<Token>()
                    + c.tokens.iter().map(|t| t.text().len()).sum::<usize>()
                    + c.text.capacity()
                    + c.route.keys.capacity() * size_of::<Box<str>>()
                    + c.route.keys.iter().map(|k| k.len()).sum::<usize>()
                    + c.aliases.capacity() * size_of::<PatternId>()
            })
            .sum();
        // A hash map entry costs its key and value plus a control byte;
        // a B-tree entry about its size again in node overhead.
        let ids = self.ids.capacity() * (size_of::<(PatternId, u32)>() + 1);
        let lru = self.lru.len() * 2 * size_of::<(u64, u32)>();
        self.clusters.capacity() * size_of::<Option<Cluster>>()
            + self.free.capacity() * size_of::<u32>()
            + clusters
            + ids
            + lru
            + self.tree.memory_bytes()
            + self.line.memory_bytes()
    }

    /// Rebuilds the indexes of a miner whose clusters were just restored.
    pub(super) fn from_parts(
        config: MinerConfig,
        clusters: Vec<Cluster>,
        lines: u64,
        learned: u64,
        evicted: u64,
        merged: u64,
    ) -> Miner {
        let mut miner = Miner::with_valid(config);
        miner.lines = lines;
        miner.learned = learned;
        miner.evicted = evicted;
        miner.merged = merged;
        for (key, cluster) in clusters.into_iter().enumerate() {
            let key = key as u32;
            miner.tree.insert(&cluster.route, key);
            miner.ids.insert(cluster.id, key);
            for alias in &cluster.aliases {
                miner.ids.insert(*alias, key);
            }
            miner.lru.insert((cluster.last_seen, key));
            miner.clusters.push(Some(cluster));
        }
        miner
    }
}
