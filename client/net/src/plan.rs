//! `bcfl net plan`: route a transfer over a measured bandwidth graph and predict its time.
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
//! The graph comes from an edge list (`--bandwidth FILE`) or from the ledger (`--ledger`: the
//! median of the newest samples of each on-chain link); `--round N` (with `--ledger`) removes
//! the members round N's on-chain verdict excluded ([`RoundExclusion`]) and reports them.
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
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use bcfl_processor::graph::{
    BandwidthGraph, DistributionTotals, GraphError, Routing, Sharing, TransferModel, Uplink,
};
use serde::{Deserialize, Serialize};

use super::edges::graph_from_csv;
use super::exclusion::RoundExclusion;
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

/// How routes are chosen, as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoutingArg {
    /// Least store-and-forward latency (Bellman-Ford over M / B).
    Shortest,
    /// Largest bottleneck bandwidth (best for pipelined relays).
    Widest,
}

impl From<RoutingArg> for Routing {
    fn from(r: RoutingArg) -> Self {
        match r {
            RoutingArg::Shortest => Routing::Shortest,
            RoutingArg::Widest => Routing::Widest,
        }
    }
}

/// How a node's concurrent transfers share its uplink, as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UplinkArg {
    /// Every link has its own capacity (separately shaped links).
    Independent,
    /// A node's transfers share an uplink as fast as its fastest measured link.
    FastestLink,
}

impl From<UplinkArg> for Uplink {
    fn from(u: UplinkArg) -> Self {
        match u {
            UplinkArg::Independent => Uplink::Independent,
            UplinkArg::FastestLink => Uplink::FastestLink,
        }
    }
}

/// How the contention-aware prediction shares capacity.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SharingArgs {
    /// How a node's concurrent transfers share its uplink.
    #[arg(long, value_enum, default_value_t = UplinkArg::FastestLink)]
    pub uplink: UplinkArg,
    /// Throughput all transfers share together (e.g. the CPUs' hashing rate when all nodes
    /// run on one machine), bytes per second [default: unlimited].
    #[arg(long, value_name = "BYTES_PER_SEC")]
    pub total_rate: Option<f64>,
}

impl SharingArgs {
    /// The sharing these arguments describe.
    pub fn sharing(&self) -> Sharing {
        Sharing {
            uplink: self.uplink.into(),
            total_bytes_per_sec: self.total_rate,
        }
    }
}

/// Arguments of `bcfl net plan`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct NetPlanArgs {
    /// CSV edge list with header `from,to,bytes_per_sec`.
    #[arg(long, value_name = "FILE", required_unless_present = "ledger")]
    pub bandwidth: Option<PathBuf>,
    /// Take the graph from the ledger's measured links instead of a file.
    #[arg(long, conflicts_with = "bandwidth")]
    pub ledger: bool,
    /// Ledger links: the median of this many newest samples per link.
    #[arg(long, default_value_t = 5, conflicts_with = "bandwidth")]
    pub window: usize,
    /// Remove the members round N's on-chain anomaly verdict excluded (with --ledger).
    #[arg(long, value_name = "N", conflicts_with = "bandwidth")]
    pub round: Option<u64>,
    /// The node the transfer starts from.
    #[arg(long, value_name = "NODE")]
    pub source: String,
    /// Message size M in bytes (e.g. 4194304 or 4.2e6).
    #[arg(long, value_name = "BYTES")]
    pub size: f64,
    /// Nodes to remove before routing, comma-separated.
    #[arg(long, value_name = "NODES", value_delimiter = ',')]
    pub remove: Vec<String>,
    /// Fixed delay D_G added to the totals, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub delay: f64,
    /// How routes are chosen.
    #[arg(long, value_enum, default_value_t = RoutingArg::Shortest)]
    pub routing: RoutingArg,
    /// Chunk size a pipelined relay forwards, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_CHUNK_BYTES)]
    pub chunk: f64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sharing: SharingArgs,
}

impl NetPlanArgs {
    /// The request these arguments describe.
    pub fn request(&self) -> PlanRequest {
        PlanRequest {
            source: self.source.clone(),
            size_bytes: self.size,
            removed: self.remove.clone(),
            delay_s: self.delay,
            routing: self.routing.into(),
            chunk_bytes: self.chunk,
        }
    }
}

fn render(report: &PlanReport, json: bool) -> anyhow::Result<String> {
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
) -> anyhow::Result<PlanReport> {
    let mut request = request.clone();
    if let Some(exclusion) = exclusion {
        anyhow::ensure!(
            !exclusion.excludes(&request.source),
            "the source {} is excluded by {}",
            request.source,
            exclusion.describe()
        );
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

/// Reads the edge list, plans, and renders the report as JSON (`json`) or tables. Needs
/// `--bandwidth`; [`run`] also serves `--ledger`.
pub fn plan_output(args: &NetPlanArgs, json: bool) -> anyhow::Result<String> {
    let path = args
        .bandwidth
        .as_ref()
        .context("--bandwidth FILE is needed without a ledger")?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let graph = graph_from_csv(&text).with_context(|| format!("parsing {}", path.display()))?;
    let report = plan_with(&graph, &args.request(), &args.sharing.sharing())?;
    render(&report, json)
}

/// Plans over the ledger's measured links (and round `args.round`'s exclusions).
pub async fn ledger_plan_output(
    args: &NetPlanArgs,
    ledger: &RestClient,
    json: bool,
) -> anyhow::Result<String> {
    let state = BcflReader::new(ledger.clone())
        .family_state(None)
        .await
        .context("reading the family state")?;
    let graph = BandwidthGraph::from_ledger_links(state.links.values(), args.window)
        .context("building the graph from the ledger's links")?;
    let exclusion = args
        .round
        .map(|round| RoundExclusion::from_state(&state, round))
        .transpose()?;
    let report = plan_for_round(
        &graph,
        &args.request(),
        &args.sharing.sharing(),
        exclusion.as_ref(),
    )?;
    render(&report, json)
}

/// `bcfl net plan`: prints the plan to standard output (a closed pipe is not an error); the
/// ledger is read only with `--ledger`.
pub async fn run(
    args: &NetPlanArgs,
    ledger: impl FnOnce() -> anyhow::Result<RestClient>,
    json: bool,
) -> anyhow::Result<()> {
    let output = if args.ledger {
        ledger_plan_output(args, &ledger()?, json).await?
    } else {
        plan_output(args, json)?
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing the plan"),
        _ => Ok(()),
    }
}
