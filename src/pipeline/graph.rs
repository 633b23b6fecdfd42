//! The stage graph: edges from outputs to the deps that read them, and every graph error found before
//! anything runs (two stages writing one path, nested outputs, a stage reading its own output, cycles,
//! deps nobody writes that do not exist).
//!
//! ```text
//!   prepare ──out data/clean──▶ train ──out model.bin──▶ evaluate
//!        └────────────────────────────────────────────────▲   (evaluate also reads data/clean)
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::path::Path;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::pipeline::{Diagnostic, Pipeline, is_within};

/// The checked graph of a pipeline. Node `i` is `pipeline.stages[i]`.
#[derive(Debug)]
pub struct Dag {
    graph: DiGraph<usize, Edge>,
    order: Vec<usize>,
    /// Deps that do not exist and that no stage writes, by stage: an error only for a stage that a
    /// run needs (see [`Dag::missing_deps`]).
    missing: Vec<(usize, Diagnostic)>,
}

/// Why `from` must run before `to`: `to`'s dep reads `from`'s output.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The output of the upstream stage.
    pub out: String,
    /// The dep of the downstream stage.
    pub dep: String,
}

impl Dag {
    /// Builds and checks the graph; `root` is where deps are looked for.
    pub fn build(pipeline: &Pipeline, root: &Path) -> Result<Dag, Vec<Diagnostic>> {
        let stages = &pipeline.stages;
        let mut errors = Vec::new();
        let mut missing = Vec::new();
        let mut graph: DiGraph<usize, Edge> = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..stages.len()).map(|i| graph.add_node(i)).collect();
        // Every output path with its stage, sorted so nested paths sit next to each other.
        let mut outs: Vec<OutRef> = stages
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.outs.iter().map(move |o| (o.path.path.as_str(), i, o)))
            .collect();
        outs.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        let outs = outs;
        for (a, b) in outs.iter().zip(outs.iter().skip(1)) {
            let (owner, other) = (&stages[a.1].name, &stages[b.1].name);
            if a.0 == b.0 {
                errors.push(pipeline.diagnostic(
                    b.2.path.pos,
                    format!("output `{}` of stage `{other}` is also an output of stage `{owner}`", b.0),
                ).with_help("each path may be written by one stage only"));
            }
        }
        for (i, a) in outs.iter().enumerate() {
            for b in outs[i + 1..].iter().take_while(|b| b.0.starts_with(a.0)) {
                if a.0 != b.0 && is_within(b.0, a.0) {
                    errors.push(
                        pipeline
                            .diagnostic(
                                b.2.path.pos,
                                format!(
                                    "output `{}` of stage `{}` is inside output `{}` of stage `{}`",
                                    b.0, stages[b.1].name, a.0, stages[a.1].name
                                ),
                            )
                            .with_help("outputs may not overlap; write to separate folders"),
                    );
                }
            }
        }
        for (to, stage) in stages.iter().enumerate() {
            for dep in &stage.deps {
                let producers = producers_of(&outs, &dep.path);
                for (out, from, _) in &producers {
                    if *from == to {
                        errors.push(pipeline.diagnostic(
                            dep.pos,
                            format!("stage `{}` depends on its own output `{out}`", stage.name),
                        ));
                    } else if !graph.contains_edge(nodes[*from], nodes[to]) {
                        graph.add_edge(
                            nodes[*from],
                            nodes[to],
                            Edge {
                                out: out.to_string(),
                                dep: dep.path.clone(),
                            },
                        );
                    }
                }
                if producers.is_empty() && !root.join(&dep.path).exists() {
                    missing.push((
                        to,
                        pipeline
                            .diagnostic(dep.pos, format!("dep `{}` does not exist and no stage writes it", dep.path))
                            .with_help("check the path (deps are relative to the workspace root, or to `wdir`)"),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        match file_ordered_toposort(&graph) {
            Some(order) => Ok(Dag {
                graph,
                order,
                missing,
            }),
            None => Err(vec![cycle_error(pipeline, &graph)]),
        }
    }

    /// The missing deps of the `selected` stages (what a run of them needs and cannot find).
    pub fn missing_deps(&self, selected: &[bool]) -> Vec<Diagnostic> {
        self.missing
            .iter()
            .filter(|(stage, _)| selected[*stage])
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// Stage indices, every stage after all of its upstream stages (file order among equals).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The stages whose outputs stage `i` reads, with the edges.
    pub fn upstream(&self, i: usize) -> impl Iterator<Item = (usize, &Edge)> {
        self.graph
            .edges_directed(NodeIndex::new(i), petgraph::Direction::Incoming)
            .map(|e| (e.source().index(), e.weight()))
    }

    /// The stages that read stage `i`'s outputs.
    pub fn downstream(&self, i: usize) -> BTreeSet<usize> {
        self.graph
            .neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing)
            .map(|n| n.index())
            .collect()
    }

    /// Every stage, as (from, to, edge).
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize, &Edge)> {
        self.graph
            .edge_references()
            .map(|e| (e.source().index(), e.target().index(), e.weight()))
    }

    /// The stages in `targets` (names, or `foreach` group names) and everything they need; all
    /// stages when `targets` is empty. Unknown names are an error with a suggestion.
    pub fn select(&self, pipeline: &Pipeline, targets: &[String]) -> Result<Vec<bool>, String> {
        let n = pipeline.stages.len();
        if targets.is_empty() {
            return Ok(vec![true; n]);
        }
        let mut selected = vec![false; n];
        let mut stack = Vec::new();
        for target in targets {
            let matches: Vec<usize> = (0..n)
                .filter(|&i| {
                    let s = &pipeline.stages[i];
                    s.name == *target || s.group.as_deref() == Some(target)
                })
                .collect();
            if matches.is_empty() {
                let names = pipeline.stages.iter().map(|s| s.name.as_str());
                let hint = crate::pipeline::diagnostic::did_you_mean(target, names)
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                return Err(format!("no stage `{target}` in `{}`{hint}", pipeline.file));
            }
            stack.extend(matches);
        }
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut selected[i], true) {
                stack.extend(self.upstream(i).map(|(u, _)| u));
            }
        }
        Ok(selected)
    }
}

/// Kahn's algorithm taking the earliest stage in file order whenever several are ready, so listings
/// and runs follow the file. `None` when there is a cycle.
fn file_ordered_toposort(graph: &DiGraph<usize, Edge>) -> Option<Vec<usize>> {
    let mut waiting: Vec<usize> = graph
        .node_indices()
        .map(|n| {
            graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..waiting.len())
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(waiting.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for next in graph.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Outgoing) {
            waiting[next.index()] -= 1;
            if waiting[next.index()] == 0 {
                ready.push(Reverse(next.index()));
            }
        }
    }
    (order.len() == waiting.len()).then_some(order)
}

type OutRef<'p> = (&'p str, usize, &'p crate::pipeline::Out);

/// The outputs that overlap `dep` (the dep is inside them, or they are inside the dep), found by
/// binary search in the sorted output list so a 1,000-stage pipeline builds its graph in microseconds.
fn producers_of<'a, 'p>(outs: &'a [OutRef<'p>], dep: &str) -> Vec<&'a OutRef<'p>> {
    if dep == "." {
        return outs.iter().collect();
    }
    let mut found = Vec::new();
    let mut prefix = dep;
    loop {
        let start = outs.partition_point(|o| o.0 < prefix);
        found.extend(outs[start..].iter().take_while(|o| o.0 == prefix));
        match prefix.rfind('/') {
            Some(cut) => prefix = &prefix[..cut],
            None => break,
        }
    }
    let inside = format!("{dep}/");
    let start = outs.partition_point(|o| o.0 < inside.as_str());
    found.extend(
        outs[start..]
            .iter()
            .take_while(|o| o.0.starts_with(&inside)),
    );
    found
}

/// A diagnostic for the first cycle found: `a -> b -> a`, and the edge to cut.
fn cycle_error(pipeline: &Pipeline, graph: &DiGraph<usize, Edge>) -> Diagnostic {
    let component = kosaraju_scc(graph)
        .into_iter()
        .find(|c| c.len() > 1)
        .expect("toposort failed, so a cycle exists");
    // Walk the cycle inside the component, starting at its first stage in file order.
    let start = *component
        .iter()
        .min_by_key(|n| graph[**n])
        .expect("non-empty");
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = graph
            .neighbors_directed(current, petgraph::Direction::Outgoing)
            .filter(|n| component.contains(n))
            .min_by_key(|n| graph[*n])
            .expect("every node of a cycle has a successor in it");
        if let Some(at) = path.iter().position(|n| *n == next) {
            path.drain(..at);
            path.push(next);
            break;
        }
        path.push(next);
        current = next;
    }
    let names: Vec<&str> = path
        .iter()
        .map(|n| pipeline.stages[graph[*n]].name.as_str())
        .collect();
    let (from, to) = (path[path.len() - 2], path[path.len() - 1]);
    let edge = graph
        .edges_connecting(from, to)
        .next()
        .expect("consecutive cycle nodes are connected")
        .weight();
    let to_stage = &pipeline.stages[graph[to]];
    let pos = to_stage
        .deps
        .iter()
        .find(|d| d.path == edge.dep)
        .map_or(to_stage.pos, |d| d.pos);
    pipeline
        .diagnostic(
            pos,
            format!("the stages form a cycle: {}", names.join(" -> ")),
        )
        .with_help(format!(
            "cut an edge: `{}` reads `{}`, which `{}` writes",
            to_stage.name, edge.dep, pipeline.stages[graph[from]].name
        ))
}
