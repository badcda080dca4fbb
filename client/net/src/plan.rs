//! What `bcfl net plan` runs: route a transfer over a measured bandwidth graph and predict its
//! time.
//!
//! Reads an edge list ([`super::edges`]), removes the given nodes, routes from the source
//! (shortest store-and-forward latency or widest bottleneck), and reports per destination the
//! path and both models' predictions, the seed paper's synchronous and asynchronous totals
//! under both models, the minimum spanning tree of the remaining graph, and the nodes the source
//! cannot reach. Beside the seed paper's totals it gives the contention-aware prediction of
//! [`RouteTree::contended`](bcfl_processor::graph::RouteTree::contended): every member pulling
//! at once along the tree, a node's concurrent transfers sharing its uplink (by default as fast
//! as its fastest link) and optionally a total throughput. The maths is
//! [`bcfl_processor::graph`]; this module is the report around it.
//!
//! The graph comes from an edge list ([`plan_file`]) or from the ledger ([`plan_ledger`]: the
//! median of the newest samples of each on-chain link, without the members a round's on-chain
//! verdict excluded ([`RoundExclusion`]), which the report names). [`render`] prints a report
//! as JSON or tables; the command line itself is in `bcfl-cli`.
//!
//! ```
//! use bcfl_net::edges::graph_from_csv;
//! use bcfl_net::plan::{plan, PlanRequest};
//! use bcfl_processor::graph::Routing;
//!
//! let graph = graph_from_csv("from,to,bytes_per_sec\n1,2,100\n2,3,100\n1,3,10\n")?;
//! let request = PlanRequest {
//!     source: "1".into(),
//!     size_bytes: 1000.0,
//!     removed: vec![],
//!     delay_s: 0.0,
//!     routing: Routing::Shortest,
//!     chunk_bytes: 100.0,
//! };
//! let report = plan(&graph, &request)?;
//! assert_eq!(report.destinations[1].path, ["1", "2", "3"]);
//! assert_eq!(report.totals.store_and_forward.asynchronous_s, 20.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write as _;
use std::path::Path;

use bcfl_processor::graph::{
    BandwidthGraph, DistributionTotals, GraphError, Routing, Sharing, TransferModel, Uplink,
};
use serde::{Deserialize, Serialize};

use super::edges::graph_from_csv;
use super::exclusion::RoundExclusion;
use crate::{NetError, Result};
use bcfl_ledger::rest::RestClient;
use bcfl_ledger::state::BcflReader;

/// The default chunk a pipelined relay forwards: 64 KiB.
pub const DEFAULT_CHUNK_BYTES: f64 = 65_536.0;

/// What to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRequest {
    /// The node the transfer starts from.
    pub source: String,
    /// The message size `M`, bytes.
    pub size_bytes: f64,
    /// Nodes to leave out (e.g. judged anomalous).
    pub removed: Vec<String>,
    /// The fixed delay `D_G` added to both totals, seconds.
    pub delay_s: f64,
    /// How routes are chosen.
    pub routing: Routing,
    /// The chunk a pipelined relay forwards, bytes.
    pub chunk_bytes: f64,
}

/// One destination in a [`PlanReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationReport {
    /// The destination.
    pub node: String,
    /// The node it receives from.
    pub predecessor: String,
    /// The route, source and destination included.
    pub path: Vec<String>,
    /// Links on the route.
    pub hops: usize,
    /// Smallest bandwidth on the route, bytes per second.
    pub bottleneck_bytes_per_sec: f64,
    /// Store-and-forward time `sum M / B_e` (the route's latency), seconds.
    pub store_and_forward_s: f64,
    /// Pipelined time `sum c / B_e + (M - c) / B_min`, seconds.
    pub pipelined_s: f64,
    /// Arrival when every member pulls at once and transfers share capacity (see
    /// [`ContendedReport`]), seconds, `D_G` not included.
    pub contended_s: f64,
}

/// Synchronous (`D_G + sum`) and asynchronous (`D_G + max`) totals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TotalsReport {
    /// Transfers one after another, seconds.
    pub synchronous_s: f64,
    /// Transfers in parallel, seconds.
    pub asynchronous_s: f64,
}

impl From<DistributionTotals> for TotalsReport {
    fn from(t: DistributionTotals) -> Self {
        Self {
            synchronous_s: t.synchronous_s,
            asynchronous_s: t.asynchronous_s,
        }
    }
}

/// The totals under both transfer models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelTotals {
    /// With each route's store-and-forward time.
    pub store_and_forward: TotalsReport,
    /// With each route's pipelined time.
    pub pipelined: TotalsReport,
}

/// The contention-aware prediction (every member at once along the tree, shared capacity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContendedReport {
    /// `independent` (each link its own capacity) or `fastest-link` (a node's transfers share
    /// an uplink as fast as its fastest link).
    pub uplink: String,
    /// The total throughput all transfers share, bytes per second (`None`: unlimited).
    pub total_bytes_per_sec: Option<f64>,
    /// `D_G` + the last arrival, seconds.
    pub asynchronous_s: f64,
    /// `D_G` + one member after another in tree order, each from its predecessor's copy.
    pub sequential_s: f64,
}

/// An edge of the minimum spanning tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MstEdgeReport {
    /// The end with the smaller id.
    pub a: String,
    /// The end with the larger id.
    pub b: String,
    /// The faster direction's bandwidth, bytes per second.
    pub bytes_per_sec: f64,
    /// `M / bytes_per_sec`, seconds.
    pub latency_s: f64,
}

/// The minimum spanning tree (forest) of the remaining graph's undirected view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MstReport {
    /// Sum of the edges' latencies, seconds.
    pub weight_s: f64,
    /// Connected components (1: the tree spans every node).
    pub components: usize,
    /// The edges, sorted by `(a, b)`.
    pub edges: Vec<MstEdgeReport>,
}

/// The result of `bcfl net plan`, as printed with `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanReport {
    /// The source.
    pub source: String,
    /// `shortest` or `widest`.
    pub routing: String,
    /// `M`, bytes.
    pub size_bytes: f64,
    /// The effective chunk `min(chunk, M)`, bytes.
    pub chunk_bytes: f64,
    /// `D_G`, seconds.
    pub delay_s: f64,
    /// The removed nodes (given and excluded by the verdict), sorted.
    pub removed: Vec<String>,
    /// The round whose on-chain verdict removed members, and those members.
    pub excluded_by_verdict: Option<RoundExclusion>,
    /// Nodes left after removal.
    pub nodes: usize,
    /// Directed links left after removal.
    pub links: usize,
    /// Every reached node other than the source, sorted by id.
    pub destinations: Vec<DestinationReport>,
    /// Nodes the source cannot reach, sorted.
    pub unreachable: Vec<String>,
    /// The seed paper's totals over the reached destinations.
    pub totals: ModelTotals,
    /// The contention-aware prediction.
    pub contended: ContendedReport,
    /// The minimum spanning tree of the remaining graph.
    pub mst: MstReport,
}

/// The sharing [`plan`] predicts contention with: uplinks as fast as the fastest link, no total
/// limit.
pub const DEFAULT_SHARING: Sharing = Sharing {
    uplink: Uplink::FastestLink,
    total_bytes_per_sec: None,
};

/// Runs a plan on `graph`, predicting contention with [`DEFAULT_SHARING`].
pub fn plan(graph: &BandwidthGraph, request: &PlanRequest) -> Result<PlanReport, GraphError> {
    plan_with(graph, request, &DEFAULT_SHARING)
}

/// Runs a plan on `graph`, predicting contention under `sharing`.
pub fn plan_with(
    graph: &BandwidthGraph,
    request: &PlanRequest,
    sharing: &Sharing,
) -> Result<PlanReport, GraphError> {
    if request.removed.iter().any(|r| r == &request.source) {
        return Err(GraphError::SourceRemoved(request.source.clone()));
    }
    let model = TransferModel::new(request.size_bytes, request.chunk_bytes)?;
    let remaining = graph.without_nodes(&request.removed)?;
    let tree = remaining.route(&request.source, request.routing, &model)?;
    let routes = tree.routes();
    let totals = ModelTotals {
        store_and_forward: DistributionTotals::store_and_forward(&routes, request.delay_s)?.into(),
        pipelined: DistributionTotals::pipelined(&routes, request.delay_s)?.into(),
    };
    let contended = tree.contended(&remaining, sharing)?;
    let mst = remaining.minimum_spanning_tree(&model);
    let mut removed = request.removed.clone();
    removed.sort();
    removed.dedup();
    Ok(PlanReport {
        source: request.source.clone(),
        routing: request.routing.to_string(),
        size_bytes: model.size_bytes(),
        chunk_bytes: model.chunk_bytes(),
        delay_s: request.delay_s,
        removed,
        excluded_by_verdict: None,
        nodes: remaining.node_count(),
        links: remaining.link_count(),
        destinations: routes
            .iter()
            .zip(&contended.arrivals)
            .map(|(r, arrival)| DestinationReport {
                node: r.destination.to_string(),
                predecessor: r.predecessor.to_string(),
                path: r.path.iter().map(ToString::to_string).collect(),
                hops: r.hops(),
                bottleneck_bytes_per_sec: r.bottleneck_bytes_per_sec,
                store_and_forward_s: r.store_and_forward_s,
                pipelined_s: r.pipelined_s,
                contended_s: arrival.seconds,
            })
            .collect(),
        unreachable: tree.unreachable().iter().map(ToString::to_string).collect(),
        totals,
        contended: ContendedReport {
            uplink: sharing.uplink.to_string(),
            total_bytes_per_sec: sharing.total_bytes_per_sec,
            asynchronous_s: request.delay_s + contended.asynchronous_s,
            sequential_s: request.delay_s + contended.sequential_s,
        },
        mst: MstReport {
            weight_s: mst.weight_s,
            components: mst.components,
            edges: mst
                .edges
                .iter()
                .map(|e| MstEdgeReport {
                    a: e.a.to_string(),
                    b: e.b.to_string(),
                    bytes_per_sec: e.bytes_per_sec,
                    latency_s: e.latency_s,
                })
                .collect(),
        },
    })
}

/// Renders a report as aligned text tables.
pub fn render_table(report: &PlanReport) -> String {
    let mut out = String::new();
    let removed = if report.removed.is_empty() {
        "none".to_owned()
    } else {
        report.removed.join(",")
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "source {}  routing {}  size {} B  chunk {} B  delay {} s  removed {}  ({} nodes, {} links)",
        report.source,
        report.routing,
        report.size_bytes,
        report.chunk_bytes,
        report.delay_s,
        removed,
        report.nodes,
        report.links
    );
    if let Some(exclusion) = &report.excluded_by_verdict {
        let _ = writeln!(out, "{}", exclusion.describe());
    }
    let mut rows = vec![[
        "node".to_owned(),
        "pred".to_owned(),
        "hops".to_owned(),
        "bottleneck B/s".to_owned(),
        "store-fwd s".to_owned(),
        "pipelined s".to_owned(),
        "contended s".to_owned(),
        "path".to_owned(),
    ]];
    for d in &report.destinations {
        rows.push([
            d.node.clone(),
            d.predecessor.clone(),
            d.hops.to_string(),
            format!("{}", d.bottleneck_bytes_per_sec),
            format!("{:.6}", d.store_and_forward_s),
            format!("{:.6}", d.pipelined_s),
            format!("{:.6}", d.contended_s),
            d.path.join(">"),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| match c {
                0 | 1 | 7 => format!("{cell:<w$}"),
                _ => format!("{cell:>w$}"),
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let unreachable = if report.unreachable.is_empty() {
        "none".to_owned()
    } else {
        report.unreachable.join(",")
    };
    let _ = writeln!(out, "unreachable: {unreachable}");
    let (s, p) = (report.totals.store_and_forward, report.totals.pipelined);
    let _ = writeln!(
        out,
        "store-and-forward: synchronous {:.6} s  asynchronous {:.6} s",
        s.synchronous_s, s.asynchronous_s
    );
    let _ = writeln!(
        out,
        "pipelined:         synchronous {:.6} s  asynchronous {:.6} s",
        p.synchronous_s, p.asynchronous_s
    );
    let c = &report.contended;
    let total = c
        .total_bytes_per_sec
        .map_or("unlimited".to_owned(), |t| format!("{t} B/s"));
    let _ = writeln!(
        out,
        "contended (uplink {}, total {total}): one after another {:.6} s  all at once {:.6} s",
        c.uplink, c.sequential_s, c.asynchronous_s
    );
    let edges: Vec<String> = report
        .mst
        .edges
        .iter()
        .map(|e| format!("{}-{}", e.a, e.b))
        .collect();
    let _ = writeln!(
        out,
        "mst: weight {:.6} s  components {}  edges {}",
        report.mst.weight_s,
        report.mst.components,
        edges.join(" ")
    );
    out
}

/// The report as printed: pretty JSON (`json`, with a final newline) or [`render_table`].
pub fn render(report: &PlanReport, json: bool) -> Result<String> {
    if json {
        Ok(serde_json::to_string_pretty(report)? + "\n")
    } else {
        Ok(render_table(report))
    }
}

/// Plans over `graph` after removing `exclusion`'s members (with those given to remove).
pub fn plan_for_round(
    graph: &BandwidthGraph,
    request: &PlanRequest,
    sharing: &Sharing,
    exclusion: Option<&RoundExclusion>,
) -> Result<PlanReport> {
    let mut request = request.clone();
    if let Some(exclusion) = exclusion {
        if exclusion.excludes(&request.source) {
            return Err(NetError::Excluded {
                node: format!("the source {}", request.source),
                verdict: exclusion.describe(),
            });
        }
        request.removed.extend(
            exclusion
                .excluded
                .iter()
                .filter(|n| graph.contains(n))
                .cloned(),
        );
    }
    let mut report = plan_with(graph, &request, sharing)?;
    report.excluded_by_verdict = exclusion.cloned();
    Ok(report)
}

/// Reads the edge list at `path` ([`graph_from_csv`]) and plans over it.
pub fn plan_file(path: &Path, request: &PlanRequest, sharing: &Sharing) -> Result<PlanReport> {
    let graph = read_graph(path)?;
    Ok(plan_with(&graph, request, sharing)?)
}

/// Reads and parses the edge list at `path`, naming it in errors.
pub fn read_graph(path: &Path) -> Result<BandwidthGraph> {
    let text = std::fs::read_to_string(path).map_err(|source| NetError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    graph_from_csv(&text).map_err(|source| NetError::EdgeList {
        path: path.to_owned(),
        source,
    })
}

/// Plans over the ledger's measured links (the median of the newest `window` samples of each),
/// without the members round `round`'s on-chain verdict excluded.
pub async fn plan_ledger(
    ledger: &RestClient,
    window: usize,
    round: Option<u64>,
    request: &PlanRequest,
    sharing: &Sharing,
) -> Result<PlanReport> {
    let state = BcflReader::new(ledger.clone())
        .family_state(None)
        .await
        .map_err(NetError::FamilyState)?;
    let graph = BandwidthGraph::from_ledger_links(state.links.values(), window)
        .map_err(NetError::LedgerGraph)?;
    let exclusion = round
        .map(|round| RoundExclusion::from_state(&state, round))
        .transpose()?;
    plan_for_round(&graph, request, sharing, exclusion.as_ref())
}
