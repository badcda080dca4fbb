//! A contention-aware prediction of a distribution: transfers that share capacity slow each
//! other down.
//!
//! The seed paper's totals ([`DistributionTotals`](super::DistributionTotals)) give every route
//! its links to itself. A real distribution along a route tree is different: a source or relay
//! feeding `k` children at once sends over one uplink, and all the transfers of a machine (or
//! of several nodes on one machine) share its CPU. This module predicts the arrival times of a
//! distribution in which every member pulls at once along the tree, with
//!
//! - **one transfer per tree edge** (a relay receives the blob once and forwards it to all its
//!   children, as the client's cut-through transfers do);
//! - **pipelining by chunks**: the blob moves in chunks of `c` bytes (the last may be shorter);
//!   an edge `u -> v` sends chunk `k` once `u` holds it whole, one chunk at a time, and is idle
//!   (using no capacity) while `v` waits for `u`;
//! - **shared capacity** ([`Sharing`]): each edge `u -> v` at most `B_uv`; the edges leaving `u`
//!   together at most `u`'s uplink ([`Uplink`]); all edges together at most an optional total
//!   throughput (e.g. what the machine's CPUs can hash and copy);
//! - **max-min fair rates**: at every moment the sending edges get the max-min fair allocation
//!   under those limits (progressive filling: all rates rise together; an edge freezes when its
//!   link, its parent's uplink or the total is used up; as the limits nest, this is
//!   water-filling per uplink, then over the total).
//!
//! Rates change only when a chunk arrives, so the model is solved exactly as a discrete-event
//! simulation: `chunks x destinations` arrivals, each re-sharing only the two uplinks it
//! affects (`O(k log k)` for `k` children), or every edge when a total couples them (`O(n log
//! n)` per arrival: a 1,000-node tree with 16 chunks takes about 0.13 s without a total and
//! 19 s with one in a debug build). Without
//! sharing ([`Sharing::INDEPENDENT`]) each edge runs at `B_uv`, a path is the flow shop of
//! [`TransferModel::pipelined`](super::TransferModel::pipelined), and the arrival times are that
//! formula (`sum c / B_e + (M - c) / B_min` when `c` divides `M`), which the property tests
//! check.
//!
//! The synchronous counterpart, one member after another in tree order, each fetching from its
//! predecessor (which by then holds the blob), is `sum_v M / B_pred(v),v` (or the total
//! throughput, if smaller): [`ContendedDistribution::sequential_s`]. It is shorter than the seed
//! paper's synchronous total `sum_v L(H -> v)`, which sends every transfer the whole way from
//! the source.
//!
//! ```
//! use bcfl_processor::graph::{BandwidthGraph, Sharing, TransferModel, Uplink};
//!
//! // A source feeding two children over links of 100 B/s; its uplink is also 100 B/s.
//! let graph = BandwidthGraph::from_links([("s", "a", 100.0), ("s", "b", 100.0)])?;
//! let model = TransferModel::new(1000.0, 100.0)?;
//! let tree = graph.shortest_paths("s", &model)?;
//! let alone = tree.contended(&graph, &Sharing::INDEPENDENT)?;
//! assert_eq!(alone.asynchronous_s, 10.0); // each child at 100 B/s
//! let shared = Sharing { uplink: Uplink::FastestLink, total_bytes_per_sec: None };
//! let contended = tree.contended(&graph, &shared)?;
//! assert_eq!(contended.asynchronous_s, 20.0); // 50 B/s each
//! assert_eq!(contended.sequential_s, 20.0); // one after the other at 100 B/s
//! # Ok::<(), bcfl_processor::graph::GraphError>(())
//! ```

use std::fmt;

use super::bandwidth::{BandwidthGraph, NodeId};
use super::error::{GraphError, Result};
use super::routes::RouteTree;

/// The capacity a node's concurrent outgoing transfers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Uplink {
    /// Every link has its own capacity (separately shaped links, as in the network-namespace
    /// test bed): a node's transfers only share the total, if any.
    #[default]
    Independent,
    /// A node's transfers share one uplink as fast as its fastest measured outgoing link (one
    /// network interface; each probe measured one link alone).
    FastestLink,
}

impl Uplink {
    /// `independent` or `fastest-link`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Independent => "independent",
            Self::FastestLink => "fastest-link",
        }
    }
}

impl fmt::Display for Uplink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the transfers of a distribution share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sharing {
    /// How a node's outgoing transfers share its sending capacity.
    pub uplink: Uplink,
    /// Bytes per second all transfers together can move (e.g. CPU-bound hashing and copying
    /// when all nodes share a machine); `None` for no such limit.
    pub total_bytes_per_sec: Option<f64>,
}

impl Sharing {
    /// Nothing shared: each link alone limits its transfer.
    pub const INDEPENDENT: Self = Self {
        uplink: Uplink::Independent,
        total_bytes_per_sec: None,
    };

    fn validate(&self) -> Result<()> {
        match self.total_bytes_per_sec {
            Some(t) if !(t.is_finite() && t > 0.0) => Err(GraphError::InvalidCapacity(t)),
            _ => Ok(()),
        }
    }
}

/// One destination's predicted arrival.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// The destination.
    pub destination: NodeId,
    /// Seconds from the start until it has the whole blob.
    pub seconds: f64,
}

/// The contention-aware prediction of a distribution along a route tree.
#[derive(Debug, Clone, PartialEq)]
pub struct ContendedDistribution {
    /// Every reached destination other than the source, sorted by id.
    pub arrivals: Vec<Arrival>,
    /// All members at once: the last arrival, seconds (0 with no destinations).
    pub asynchronous_s: f64,
    /// One member after another in tree order, each from its predecessor's copy, seconds.
    pub sequential_s: f64,
}

/// A chunk arrival due at `at` on the edge into `node`, valid while the edge's version is
/// `version` (a rate change makes older arrivals stale).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Due {
    at: f64,
    node: usize,
    version: u64,
}

impl Eq for Due {}

impl Ord for Due {
    /// Reversed, so that `BinaryHeap` pops the earliest arrival (ties by node).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then(other.node.cmp(&self.node))
            .then(other.version.cmp(&self.version))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The state of one distribution, chunk by chunk (indices are the tree's node indices; the
/// edge into node `v` is named by `v`).
struct Simulation<'a> {
    tree: &'a RouteTree,
    /// Reached non-source nodes, parents before children.
    order: Vec<usize>,
    /// The children of every node on the tree.
    children: Vec<Vec<usize>>,
    uplink: Vec<f64>,
    total: f64,
    size: f64,
    chunk: f64,
    chunks: usize,
    /// Whole chunks each node holds (the source holds all of them).
    have: Vec<usize>,
    /// Bytes of the chunk each node is receiving, as of `since`.
    partial: Vec<f64>,
    since: Vec<f64>,
    rate: Vec<f64>,
    version: Vec<u64>,
    due: std::collections::BinaryHeap<Due>,
    done: Vec<Option<f64>>,
}

impl Simulation<'_> {
    fn parent(&self, v: usize) -> usize {
        self.tree.predecessor[v].expect("non-source tree nodes have a predecessor")
    }

    /// The length of chunk `k` (the last one may be partial).
    fn chunk_len(&self, k: usize) -> f64 {
        self.chunk.min(self.size - k as f64 * self.chunk)
    }

    /// The edge into `v` is sending: the parent holds the chunk `v` needs next.
    fn busy(&self, v: usize) -> bool {
        self.have[v] < self.chunks && self.have[v] < self.have[self.parent(v)]
    }

    /// The max-min fair rate of each busy edge leaving `u`, water-filling `u`'s uplink.
    fn uplink_rates(&self, u: usize, caps: &mut Vec<f64>) -> Vec<(usize, f64)> {
        caps.clear();
        let busy: Vec<usize> = self.children[u]
            .iter()
            .copied()
            .filter(|&v| self.busy(v))
            .collect();
        caps.extend(busy.iter().map(|&v| self.tree.in_bandwidth[v]));
        let level = water_level(caps, self.uplink[u]);
        busy.into_iter()
            .map(|v| (v, self.tree.in_bandwidth[v].min(level)))
            .collect()
    }

    /// Sets new max-min fair rates on the edges leaving `groups` at time `now` and schedules
    /// their next arrivals. The limits nest (an edge's link, inside its parent's uplink,
    /// inside the total), so progressive filling reduces to water-filling each uplink among
    /// its busy edges, then the total among all edges; with a total, `groups` must be all.
    fn reschedule(&mut self, groups: &[usize], now: f64) {
        let mut caps = Vec::new();
        let mut rates = Vec::new();
        for &u in groups {
            for i in 0..self.children[u].len() {
                let v = self.children[u][i];
                self.partial[v] += self.rate[v] * (now - self.since[v]);
                self.since[v] = now;
                self.rate[v] = 0.0;
                self.version[v] += 1;
            }
            rates.extend(self.uplink_rates(u, &mut caps));
        }
        if self.total.is_finite() {
            let mut demands: Vec<f64> = rates.iter().map(|&(_, r)| r).collect();
            let level = water_level(&mut demands, self.total);
            for (_, r) in &mut rates {
                *r = r.min(level);
            }
        }
        for (v, r) in rates {
            self.rate[v] = r;
            if r > 0.0 {
                let left = (self.chunk_len(self.have[v]) - self.partial[v]).max(0.0);
                self.due.push(Due {
                    at: now + left / r,
                    node: v,
                    version: self.version[v],
                });
            }
        }
    }

    /// Runs from arrival to arrival until every destination holds every chunk.
    fn run(&mut self) -> Result<()> {
        let all: Vec<usize> = (0..self.have.len())
            .filter(|&u| !self.children[u].is_empty())
            .collect();
        self.reschedule(&all, 0.0);
        while let Some(due) = self.due.pop() {
            let v = due.node;
            if due.version != self.version[v] {
                continue;
            }
            self.have[v] += 1;
            self.partial[v] = 0.0;
            self.since[v] = due.at;
            if self.have[v] == self.chunks {
                self.done[v] = Some(due.at);
            }
            // v's arrival changes only the edges into v's siblings' group and out of v,
            // unless a total couples every edge.
            if self.total.is_finite() {
                // Every edge gets a new arrival: the old ones are all stale.
                self.due.clear();
                self.reschedule(&all, due.at);
            } else {
                self.reschedule(&[self.parent(v), v], due.at);
            }
        }
        if self.order.iter().all(|&v| self.have[v] == self.chunks) {
            Ok(())
        } else {
            Err(GraphError::Stalled)
        }
    }
}

/// The water level of `capacity` shared max-min fairly among demands capped at `caps`: each
/// gets `min(cap, level)`; infinite when every cap fits. Sorts `caps`.
fn water_level(caps: &mut [f64], capacity: f64) -> f64 {
    if !capacity.is_finite() {
        return f64::INFINITY;
    }
    caps.sort_by(f64::total_cmp);
    let mut remaining = capacity;
    for (i, cap) in caps.iter().enumerate() {
        let left = (caps.len() - i) as f64;
        if cap * left > remaining {
            return remaining / left;
        }
        remaining -= cap;
    }
    f64::INFINITY
}

impl RouteTree {
    /// The contention-aware prediction of distributing the blob from the source along this
    /// tree, under `sharing` (see the module docs). `graph` must be the graph the tree was
    /// routed on: its outgoing links give the uplinks.
    pub fn contended(
        &self,
        graph: &BandwidthGraph,
        sharing: &Sharing,
    ) -> Result<ContendedDistribution> {
        sharing.validate()?;
        if *graph.nodes() != *self.nodes {
            return Err(GraphError::ForeignTree);
        }
        let n = self.nodes.len();
        let mut children = vec![Vec::new(); n];
        for v in 0..n {
            if let Some(p) = self.predecessor[v] {
                children[p].push(v);
            }
        }
        let mut order = Vec::with_capacity(n);
        let mut queue = std::collections::VecDeque::from([self.source]);
        while let Some(u) = queue.pop_front() {
            for &v in &children[u] {
                order.push(v);
                queue.push_back(v);
            }
        }
        let uplink = (0..n)
            .map(|u| match sharing.uplink {
                Uplink::Independent => f64::INFINITY,
                Uplink::FastestLink => graph
                    .arcs(u)
                    .iter()
                    .map(|a| a.bytes_per_sec)
                    .fold(0.0, f64::max),
            })
            .collect();
        let size = self.model.size_bytes();
        let chunk = self.model.chunk_bytes();
        let chunks = (size / chunk).ceil() as usize;
        let total = sharing.total_bytes_per_sec.unwrap_or(f64::INFINITY);
        let mut have = vec![0; n];
        have[self.source] = chunks;
        let mut sim = Simulation {
            tree: self,
            order,
            children,
            uplink,
            total,
            size,
            chunk,
            chunks,
            have,
            partial: vec![0.0; n],
            since: vec![0.0; n],
            rate: vec![0.0; n],
            version: vec![0; n],
            due: std::collections::BinaryHeap::new(),
            done: vec![None; n],
        };
        sim.run()?;
        let sequential_s = sim
            .order
            .iter()
            .fold(0.0, |sum, &v| sum + size / self.in_bandwidth[v].min(total));
        let mut arrivals: Vec<Arrival> = sim
            .order
            .iter()
            .map(|&v| Arrival {
                destination: self.nodes[v].clone(),
                seconds: sim.done[v].unwrap_or(f64::INFINITY),
            })
            .collect();
        arrivals.sort_by(|a, b| a.destination.cmp(&b.destination));
        let asynchronous_s = arrivals.iter().fold(0.0, |m, a| f64::max(m, a.seconds));
        Ok(ContendedDistribution {
            arrivals,
            asynchronous_s,
            sequential_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::TransferModel;

    const SHARED: Sharing = Sharing {
        uplink: Uplink::FastestLink,
        total_bytes_per_sec: None,
    };

    fn predict(links: &[(&str, &str, f64)], sharing: &Sharing) -> ContendedDistribution {
        let graph = BandwidthGraph::from_links(links.iter().copied()).unwrap();
        let model = TransferModel::new(1000.0, 100.0).unwrap();
        let tree = graph.shortest_paths("s", &model).unwrap();
        tree.contended(&graph, sharing).unwrap()
    }

    fn seconds(d: &ContendedDistribution) -> Vec<(&str, f64)> {
        d.arrivals
            .iter()
            .map(|a| (a.destination.as_str(), a.seconds))
            .collect()
    }

    fn assert_close(got: Vec<(&str, f64)>, want: &[(&str, f64)]) {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((n, t), (wn, wt)) in got.iter().zip(want) {
            assert_eq!(n, wn);
            assert!(
                (t - wt).abs() < 1e-9,
                "{n}: {t} s, expected {wt} s ({got:?})"
            );
        }
    }

    #[test]
    fn a_chain_without_sharing_is_the_pipelined_formula() {
        // M = 1000 B, c = 100 B. s -> a at 100 B/s: 10 s. a -> b at 50 B/s: b starts at 1 s,
        // falls behind a, finishes 20 s later: 21 s = 100/100 + 100/50 + 900/50.
        let d = predict(
            &[("s", "a", 100.0), ("a", "b", 50.0)],
            &Sharing::INDEPENDENT,
        );
        assert_close(seconds(&d), &[("a", 10.0), ("b", 21.0)]);
        // Slow then fast: b is held one chunk behind a until a completes at 20 s, then takes
        // the last chunk at 100 B/s: 21 s again.
        let d = predict(
            &[("s", "a", 50.0), ("a", "b", 100.0)],
            &Sharing::INDEPENDENT,
        );
        assert_close(seconds(&d), &[("a", 20.0), ("b", 21.0)]);
        // 100, 50, 200 B/s: 1 + 2 + 0.5 + 900/50 = 21.5 s (as TransferModel::pipelined).
        let d = predict(
            &[("s", "a", 100.0), ("a", "b", 50.0), ("b", "c", 200.0)],
            &Sharing::INDEPENDENT,
        );
        assert_close(seconds(&d), &[("a", 10.0), ("b", 21.0), ("c", 21.5)]);
        assert_eq!(d.asynchronous_s, 21.5);
        // One after another, each from its predecessor: 10 + 20 + 5 s.
        assert_eq!(d.sequential_s, 35.0);
    }

    #[test]
    fn a_shared_uplink_is_divided_max_min_fairly() {
        // s's uplink is its fastest link, 100 B/s. a is held to 20 B/s by its link, so b gets
        // the other 80 B/s: b at 1000/80 = 12.5 s, a at 1000/20 = 50 s.
        let links = [("s", "a", 20.0), ("s", "b", 100.0)];
        let d = predict(&links, &SHARED);
        assert_close(seconds(&d), &[("a", 50.0), ("b", 12.5)]);
        // Without sharing b would take 10 s.
        let alone = predict(&links, &Sharing::INDEPENDENT);
        assert_close(seconds(&alone), &[("a", 50.0), ("b", 10.0)]);
        assert_eq!(d.sequential_s, 60.0);
    }

    #[test]
    fn a_relay_shares_its_uplink_among_its_children() {
        // s -> a at 100 B/s; a relays to b and c over links of 100 B/s but one 100 B/s uplink.
        // a completes at 10 s. b and c start at 1 s (a holds a chunk), 50 B/s each: 450 B by
        // 10 s, the other 550 B at 50 B/s: 21 s. Unshared they would take 11 s.
        let links = [("s", "a", 100.0), ("a", "b", 100.0), ("a", "c", 100.0)];
        let d = predict(&links, &SHARED);
        assert_close(seconds(&d), &[("a", 10.0), ("b", 21.0), ("c", 21.0)]);
        let alone = predict(&links, &Sharing::INDEPENDENT);
        assert_close(seconds(&alone), &[("a", 10.0), ("b", 11.0), ("c", 11.0)]);
    }

    #[test]
    fn a_total_throughput_limit_is_shared_by_every_transfer() {
        // Two independent 100 B/s links, 100 B/s in total: 50 B/s each, 20 s.
        let capped = Sharing {
            uplink: Uplink::Independent,
            total_bytes_per_sec: Some(100.0),
        };
        let d = predict(&[("s", "a", 100.0), ("s", "b", 100.0)], &capped);
        assert_close(seconds(&d), &[("a", 20.0), ("b", 20.0)]);
        // A chain: a and b both move bytes from 1 s on. a alone for 1 s (100 B), then both
        // at 50 B/s; a completes at 1 + 900/50 = 19 s with b one chunk behind (900 B); b takes
        // its last 100 B alone at 100 B/s: 20 s.
        let d = predict(&[("s", "a", 100.0), ("a", "b", 100.0)], &capped);
        assert_close(seconds(&d), &[("a", 19.0), ("b", 20.0)]);
        // One after another at min(100, total) B/s.
        assert_eq!(d.sequential_s, 20.0);
    }

    #[test]
    fn invalid_requests_are_errors() {
        let graph = BandwidthGraph::from_links([("s", "a", 1.0)]).unwrap();
        let other = BandwidthGraph::from_links([("s", "b", 1.0)]).unwrap();
        let model = TransferModel::new(10.0, 1.0).unwrap();
        let tree = graph.shortest_paths("s", &model).unwrap();
        assert_eq!(
            tree.contended(&other, &Sharing::INDEPENDENT).unwrap_err(),
            GraphError::ForeignTree
        );
        let bad = Sharing {
            uplink: Uplink::Independent,
            total_bytes_per_sec: Some(0.0),
        };
        assert_eq!(
            tree.contended(&graph, &bad).unwrap_err(),
            GraphError::InvalidCapacity(0.0)
        );
        // Unreached nodes are not destinations.
        let lonely = BandwidthGraph::with_nodes(["z"], [("s", "a", 1.0)]).unwrap();
        let tree = lonely.shortest_paths("s", &model).unwrap();
        let d = tree.contended(&lonely, &Sharing::INDEPENDENT).unwrap();
        assert_eq!(d.arrivals.len(), 1);
        assert_eq!(d.asynchronous_s, 10.0);
    }
}
