//! `bcfl net plan`: route a transfer over measured bandwidths and predict its time.
//!
//! The arguments become a [`PlanRequest`] and a [`Sharing`]; the planning and the report are
//! [`bcfl_net::plan`]'s.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use bcfl_ledger::rest::RestClient;
use bcfl_net::plan::{plan_file, plan_ledger, render, PlanRequest, DEFAULT_CHUNK_BYTES};
use bcfl_processor::graph::{Routing, Sharing, Uplink};
use clap::{Args, Subcommand, ValueEnum};

/// `bcfl net ...`: routing and transfer planning over measured bandwidths.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub(crate) enum NetCommand {
    /// Route a transfer of SIZE bytes from SOURCE over a bandwidth edge list (or the ledger's
    /// links) and predict its time (store-and-forward and pipelined, synchronous and
    /// asynchronous totals, contention-aware, MST).
    Plan(NetPlanArgs),
}

impl NetCommand {
    /// Runs the command, printing JSON when `json` is set and tables otherwise; `ledger` is
    /// called only by commands that read the ledger (`plan --ledger`).
    pub(crate) async fn run(
        &self,
        ledger: impl FnOnce() -> anyhow::Result<RestClient>,
        json: bool,
    ) -> anyhow::Result<()> {
        match self {
            Self::Plan(args) => plan(args, ledger, json).await,
        }
    }
}

/// How routes are chosen, as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoutingArg {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UplinkArg {
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
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct SharingArgs {
    /// How a node's concurrent transfers share its uplink.
    #[arg(long, value_enum, default_value_t = UplinkArg::FastestLink)]
    pub(crate) uplink: UplinkArg,
    /// Throughput all transfers share together (e.g. the CPUs' hashing rate when all nodes
    /// run on one machine), bytes per second [default: unlimited].
    #[arg(long, value_name = "BYTES_PER_SEC")]
    pub(crate) total_rate: Option<f64>,
}

impl SharingArgs {
    /// The sharing these arguments describe.
    pub(crate) fn sharing(&self) -> Sharing {
        Sharing {
            uplink: self.uplink.into(),
            total_bytes_per_sec: self.total_rate,
        }
    }
}

/// Arguments of `bcfl net plan`.
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct NetPlanArgs {
    /// CSV edge list with header `from,to,bytes_per_sec`.
    #[arg(long, value_name = "FILE", required_unless_present = "ledger")]
    bandwidth: Option<PathBuf>,
    /// Take the graph from the ledger's measured links instead of a file.
    #[arg(long, conflicts_with = "bandwidth")]
    ledger: bool,
    /// Ledger links: the median of this many newest samples per link.
    #[arg(long, default_value_t = 5, conflicts_with = "bandwidth")]
    window: usize,
    /// Remove the members round N's on-chain anomaly verdict excluded (with --ledger).
    #[arg(long, value_name = "N", conflicts_with = "bandwidth")]
    round: Option<u64>,
    /// The node the transfer starts from.
    #[arg(long, value_name = "NODE")]
    source: String,
    /// Message size M in bytes (e.g. 4194304 or 4.2e6).
    #[arg(long, value_name = "BYTES")]
    size: f64,
    /// Nodes to remove before routing, comma-separated.
    #[arg(long, value_name = "NODES", value_delimiter = ',')]
    remove: Vec<String>,
    /// Fixed delay D_G added to the totals, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    delay: f64,
    /// How routes are chosen.
    #[arg(long, value_enum, default_value_t = RoutingArg::Shortest)]
    routing: RoutingArg,
    /// Chunk size a pipelined relay forwards, bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_CHUNK_BYTES)]
    chunk: f64,
    #[command(flatten)]
    sharing: SharingArgs,
}

impl NetPlanArgs {
    /// The request these arguments describe.
    fn request(&self) -> PlanRequest {
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

/// Plans and renders the report: over the ledger's links with `--ledger` (`ledger` is called
/// only then), else over `--bandwidth`.
async fn plan_output(
    args: &NetPlanArgs,
    ledger: impl FnOnce() -> anyhow::Result<RestClient>,
    json: bool,
) -> anyhow::Result<String> {
    let (request, sharing) = (args.request(), args.sharing.sharing());
    let report = if args.ledger {
        plan_ledger(&ledger()?, args.window, args.round, &request, &sharing).await?
    } else {
        let path = args
            .bandwidth
            .as_ref()
            .context("--bandwidth FILE is needed without a ledger")?;
        plan_file(path, &request, &sharing)?
    };
    Ok(render(&report, json)?)
}

/// `bcfl net plan`: prints the plan to standard output (a closed pipe is not an error); the
/// ledger is read only with `--ledger`.
async fn plan(
    args: &NetPlanArgs,
    ledger: impl FnOnce() -> anyhow::Result<RestClient>,
    json: bool,
) -> anyhow::Result<()> {
    let output = plan_output(args, ledger, json).await?;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing the plan"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "from,to,bytes_per_sec\n1,2,100\n1,3,60\n3,4,50\n2,4,10\n5,1,10\n";

    fn args(path: PathBuf) -> NetPlanArgs {
        NetPlanArgs {
            bandwidth: Some(path),
            ledger: false,
            window: 5,
            round: None,
            source: "1".into(),
            size: 6000.0,
            remove: vec![],
            delay: 1.0,
            routing: RoutingArg::Shortest,
            chunk: 600.0,
            sharing: SharingArgs {
                uplink: UplinkArg::FastestLink,
                total_rate: None,
            },
        }
    }

    fn no_ledger() -> anyhow::Result<RestClient> {
        unreachable!("a plan over a file reads no ledger")
    }

    #[tokio::test]
    async fn output_from_a_file_as_json_and_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bw.csv");
        std::fs::write(&path, CSV).unwrap();
        let args = args(path.clone());
        let json = plan_output(&args, no_ledger, true).await.unwrap();
        let report: bcfl_net::plan::PlanReport = serde_json::from_str(&json).unwrap();
        assert_eq!(
            report,
            bcfl_net::plan::plan(
                &bcfl_net::edges::graph_from_csv(CSV).unwrap(),
                &args.request()
            )
            .unwrap()
        );
        let table = plan_output(&args, no_ledger, false).await.unwrap();
        assert_eq!(table, bcfl_net::plan::render_table(&report));

        std::fs::write(&path, "from,to,bytes_per_sec\n1,2,100\n1,2,5\n").unwrap();
        let err = plan_output(&args, no_ledger, false).await.unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains(&format!("parsing {}", path.display()))
                && message.contains("line 3: link 1 -> 2 duplicates line 2"),
            "{message}"
        );
    }
}
