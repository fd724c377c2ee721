//! Drain's fixed-depth prefix tree: the first level splits lines by token
//! count, the next `depth` levels by their first tokens (a token that looks
//! variable goes down the `<*>` branch, and so does any new token once a
//! node has `max_children`), and each leaf lists the clusters to compare a
//! line with. The tree only narrows the search; it never decides a match.
//!
//! A cluster is filed under the route its first line took, which is kept
//! with the cluster, so a restored tree is the same tree.

use fnv::FnvHashMap as HashMap;

use super::template::{Token, WILDCARD};
use super::tokenize::Line;

/// Where a cluster is filed: its token count and its prefix keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub length: usize,
    pub keys: Vec<Box<str>>,
}

impl Route {
    /// The route of a template's own tokens, for refiling templates under
    /// a new tree shape: literals that look variable and wildcards go down
    /// `<*>`, as they would have from the first line.
    pub fn of_template(tokens: &[Token], depth: usize) -> Route {
        Route {
            length: tokens.len(),
            keys: tokens
                .iter()
                .take(depth)
                .map(|t| match t {
                    Token::Literal(literal) if literal.is_plain_word() => literal.text().into(),
                    _ => WILDCARD.into(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// Cluster keys, in the order they were filed.
    clusters: Vec<u32>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.clusters.is_empty()
    }

    fn memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Box<str>, Node)>() + 1;
        self.children.capacity() * entry
            + self.clusters.capacity() * std::mem::size_of::<u32>()
            + self
                .children
                .iter()
                .map(|(key, child)| key.len() + child.memory_bytes())
                .sum::<usize>()
    }
}

#[derive(Debug, Default)]
pub struct Tree {
    by_length: HashMap<usize, Node>,
}

/// How the tree picks prefix keys.
#[derive(Debug, Clone, Copy)]
pub struct TreeShape {
    pub depth: usize,
    pub max_children: usize,
}

impl Tree {
    /// The clusters a line may belong to: the leaf reached by following
    /// its tokens, taking `<*>` where the token has no branch.
    pub fn candidates(&self, line: &Line, shape: TreeShape) -> &[u32] {
        let Some(mut node) = self.by_length.get(&line.len()) else {
            return &[];
        };
        for token in line.iter().take(shape.depth) {
            let own = if token.variable {
                None
            } else {
                node.children.get(token.text)
            };
            match own.or_else(|| node.children.get(WILDCARD)) {
                Some(child) => node = child,
                None => return &[],
            }
        }
        &node.clusters
    }

    /// The route a new cluster made from `line` is filed under.
    pub fn route_for(&self, line: &Line, shape: TreeShape) -> Route {
        let mut keys = Vec::new();
        let mut node = self.by_length.get(&line.len());
        for token in line.iter().take(shape.depth) {
            let key: &str = if token.variable {
                WILDCARD
            } else {
                match node {
                    Some(n)
                        if !n.children.contains_key(token.text)
                            && n.children.len() >= shape.max_children =>
                    {
                        WILDCARD
                    }
                    _ => token.text,
                }
            };
            node = node.and_then(|n| n.children.get(key));
            keys.push(key.into());
        }
        Route {
            length: line.len(),
            keys,
        }
    }

    /// The clusters filed under exactly `route`.
    pub fn leaf(&self, route: &Route) -> &[u32] {
        let mut node = self.by_length.get(&route.length);
        for key in &route.keys {
            node = node.and_then(|n| n.children.get(key));
        }
        node.map_or(&[], |n| &n.clusters)
    }

    /// Estimated heap bytes of the nodes, keys and cluster lists.
    pub fn memory_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(usize, Node)>() + 1;
        self.by_length.capacity() * entry
            + self
                .by_length
                .values()
                .map(Node::memory_bytes)
                .sum::<usize>()
    }

    pub fn insert(&mut self, route: &Route, cluster: u32) {
        let mut node = self.by_length.entry(route.length).or_default();
        for key in &route.keys {
            node = node.children.entry(key.clone()).or_default();
        }
        node.clusters.push(cluster);
    }

    /// Removes a cluster and prunes the nodes left empty.
    pub fn remove(&mut self, route: &Route, cluster: u32) {
        fn remove_in(node: &mut Node, keys: &[Box<str>], cluster: u32) {
            match keys.split_first() {
                None => node.clusters.retain(|&c| c != cluster),
                Some((key, rest)) => {
                    if let Some(child) = node.children.get_mut(key) {
                        remove_in(child, rest, cluster);
                        if child.is_empty() {
                            node.children.remove(key);
                        }
                    }
                }
            }
        }
        if let Some(node) = self.by_length.get_mut(&route.length) {
            remove_in(node, &route.keys, cluster);
            if node.is_empty() {
                self.by_length.remove(&route.length);
            }
        }
    }
}
