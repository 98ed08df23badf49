//! Import cycles between sibling modules.
//!
//! A reference from module A to module B is an edge between the children of their lowest
//! common ancestor L that contain A and B (`core::audit::drift::x` using
//! `core::audit::render::y` is `drift -> render` under `core::audit`). When A or B is L
//! itself (a parent using its child, a child its parent) it is no edge. Each cycle in a
//! sibling graph is reported once (rotated to start at its least module); for every edge
//! that lies on some cycle, the shortest cycle through it is reported, so each edge that
//! has to go is shown with an example of the reference that makes it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::tree::ModPath;

/// A reference from one module to another, both resolved to modules of the tree.
#[derive(Debug, Clone)]
pub struct Reference {
    pub from: ModPath,
    pub to: ModPath,
    pub file: String,
    pub line: usize,
    /// What was named, from the crate root.
    pub path: Vec<String>,
}

impl Reference {
    fn example(&self) -> String {
        let mut named = String::from("crate");
        for seg in &self.path {
            named.push_str("::");
            named.push_str(seg);
        }
        format!("{}:{} uses {named}", self.file, self.line)
    }
}

type Graph<'a> = BTreeMap<String, BTreeMap<String, &'a Reference>>;

/// `cycle: a -> b (file:LINE uses crate::b::x) -> a (file:LINE uses crate::a::y)`, one
/// line per cycle, sorted.
pub fn find(references: &[Reference]) -> Vec<String> {
    // Lowest common ancestor -> its children's graph, the first reference kept per edge.
    let mut graphs: BTreeMap<ModPath, Graph> = BTreeMap::new();
    for r in references {
        let common = r.from.iter().zip(&r.to).take_while(|(a, b)| a == b).count();
        if common == r.from.len() || common == r.to.len() {
            continue;
        }
        graphs
            .entry(r.from[..common].to_vec())
            .or_default()
            .entry(r.from[common].clone())
            .or_default()
            .entry(r.to[common].clone())
            .or_insert(r);
    }

    let mut out = Vec::new();
    for (parent, graph) in &graphs {
        let mut cycles = BTreeSet::new();
        for (u, targets) in graph {
            for v in targets.keys() {
                if let Some(back) = shortest_path(graph, v, u) {
                    // u -> v -> ... -> u, without the closing u.
                    let mut cycle = vec![u.clone()];
                    cycle.extend(back[..back.len() - 1].iter().cloned());
                    let least = (0..cycle.len())
                        .min_by_key(|&i| &cycle[i])
                        .unwrap_or_default();
                    cycle.rotate_left(least);
                    cycles.insert(cycle);
                }
            }
        }
        let prefix: String = parent.iter().map(|p| format!("{p}::")).collect();
        for cycle in cycles {
            let mut line = format!("cycle: {prefix}{}", cycle[0]);
            for (i, from) in cycle.iter().enumerate() {
                let to = &cycle[(i + 1) % cycle.len()];
                let example = graph[from][to].example();
                line.push_str(&format!(" -> {prefix}{to} ({example})"));
            }
            out.push(line);
        }
    }
    out
}

/// The shortest path `from` -> ... -> `to` (both included), breadth first in name order.
fn shortest_path(graph: &Graph, from: &str, to: &str) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to.to_string()];
            let mut at = to;
            while let Some(prev) = came_from.get(at) {
                path.push(prev.to_string());
                at = prev;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(node).into_iter().flat_map(|t| t.keys()) {
            if seen.insert(next.as_str()) {
                came_from.insert(next.as_str(), node);
                queue.push_back(next.as_str());
            }
        }
    }
    None
}
